#!/usr/bin/env bash
# Sets up paywatch on a fresh Debian 12 machine and runs it on the example configuration with an
# embedded SQLite database under ./var/ (no root needed except for the package install).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg in libsqlite3-dev libcurl4-openssl-dev libsystemd-dev libssl-dev openssl pkg-config sqlite3; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi

swift build -c release --product paywatch
swift build -c release --product fake-gateway
mkdir -p var
# The example config, with the database in ./var instead of /var/lib/paywatch. A relative sqlite
# path is relative to the config file's folder, so "paywatch.db" beside var/paywatch.toml.
sed 's|^url = "sqlite:///var/lib/paywatch/paywatch.db"|url = "sqlite://paywatch.db"|' config/paywatch.toml > var/paywatch.toml
bin=.build/release/paywatch
$bin check-config --config var/paywatch.toml >/dev/null
$bin migrate --config var/paywatch.toml
# The example channels POST to a webhook gateway on 127.0.0.1:8025. Without a real one, start the
# bundled loopback sink there so messages have somewhere to go (it accepts everything).
if ! (exec 3<>/dev/tcp/127.0.0.1/8025) 2>/dev/null; then
  .build/release/fake-gateway 8025 --no-stdin > var/gateway.log 2>&1 &
  gateway=$!
  trap 'kill $gateway 2>/dev/null' EXIT
  echo "started a loopback webhook sink on 127.0.0.1:8025 (pid $gateway)"
fi
echo "paywatch: database var/paywatch.db, config var/paywatch.toml; insert rows into 'orders' to see it act (Ctrl-C stops)."
$bin run --config var/paywatch.toml
