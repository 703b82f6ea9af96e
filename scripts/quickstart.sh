#!/usr/bin/env bash
# Sets up paywatch on a fresh Debian 12 machine and runs it on the example configuration with an
# embedded SQLite database under ./var/ (no root needed except for the package install).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg in libsqlite3-dev libcurl4-openssl-dev libsystemd-dev pkg-config; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi

swift build -c release --product paywatch
mkdir -p var
# The example config, with the database in ./var instead of /var/lib/paywatch.
sed 's|^url = "sqlite:///var/lib/paywatch/paywatch.db"|url = "sqlite://var/paywatch.db"|' config/paywatch.toml > var/paywatch.toml
bin=.build/release/paywatch
$bin check-config --config var/paywatch.toml >/dev/null
$bin migrate --config var/paywatch.toml
echo "paywatch: database var/paywatch.db, config var/paywatch.toml; insert rows into 'orders' to see it act (Ctrl-C stops)."
exec $bin run --config var/paywatch.toml
