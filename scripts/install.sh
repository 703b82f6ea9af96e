#!/usr/bin/env bash
# Installs paywatch as a systemd service, or removes it (--uninstall).
#
#   scripts/install.sh [--binary PATH] [--root DIR]      build (unless --binary) and install
#   scripts/install.sh --uninstall [--root DIR]          remove what install put in place
#
# Installs:
#   /usr/local/bin/paywatch                              the binary (0755)
#   /usr/local/lib/systemd/system/paywatch.service       the hardened unit (0644)
#   /usr/local/lib/sysusers.d/paywatch.conf              the paywatch system user (0644)
#   /usr/local/share/doc/paywatch/README.md              the unit's Documentation= (0644)
#   /etc/paywatch/paywatch.toml                          the example configuration, only if there is
#                                                        none: a configuration is never overwritten
# then, on the live system only (no --root): creates the paywatch user (systemd-sysusers) and runs
# `systemctl daemon-reload` when systemd is running. /var/lib/paywatch is made by systemd at the
# first start (StateDirectory=).
#
# --root DIR installs under DIR instead of / (as DESTDIR does), for packaging and tests: nothing
# outside DIR is touched, no user is created, systemctl is not called.
# --uninstall removes the binary, unit, sysusers file and README, and keeps the configuration
# (/etc/paywatch), the database (/var/lib/paywatch) and the paywatch user.
set -euo pipefail

root=""
binary=""
uninstall=0
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root="${2:?--root needs a folder}"; shift 2 ;;
    --root=*) root="${1#--root=}"; shift ;;
    --binary) binary="${2:?--binary needs a path}"; shift 2 ;;
    --binary=*) binary="${1#--binary=}"; shift ;;
    --uninstall) uninstall=1; shift ;;
    -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown argument: $1 (see --help)" >&2; exit 64 ;;
  esac
done
# Paths given relative to the caller's folder, before moving to the repository's.
absolute() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
[ -z "$root" ] || root="$(absolute "$root")"
[ -z "$binary" ] || binary="$(absolute "$binary")"
root="${root%/}"
live=1; [ -z "$root" ] || live=0
cd "$(dirname "$0")/.."

bin_path=/usr/local/bin/paywatch
unit_path=/usr/local/lib/systemd/system/paywatch.service
sysusers_path=/usr/local/lib/sysusers.d/paywatch.conf
doc_path=/usr/local/share/doc/paywatch/README.md
config_path=/etc/paywatch/paywatch.toml

systemd_running() { [ "$live" -eq 1 ] && [ -d /run/systemd/system ]; }

# Removes `$root$1` if it is there, and says so.
remove() {
  if [ -e "$root$1" ] || [ -L "$root$1" ]; then
    rm -f -- "$root$1"
    echo "removed $root$1"
  fi
}

do_uninstall() {
  if systemd_running; then
    systemctl disable --now paywatch.service 2>/dev/null || true
  fi
  for path in "$bin_path" "$unit_path" "$sysusers_path" "$doc_path"; do remove "$path"; done
  rmdir "$root$(dirname "$doc_path")" 2>/dev/null || true
  if systemd_running; then systemctl daemon-reload; fi
  echo "kept: $root/etc/paywatch (configuration), $root/var/lib/paywatch (database) and the paywatch user;"
  echo "      remove them by hand if they are no longer wanted."
}

# The user the unit runs as: systemd-sysusers reads the installed file; useradd where it is missing.
create_user() {
  if command -v systemd-sysusers >/dev/null 2>&1; then
    systemd-sysusers "$sysusers_path"
  elif ! id paywatch >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/paywatch --no-create-home --shell /usr/sbin/nologin paywatch
  fi
}

do_install() {
  if [ -z "$binary" ]; then
    swift build -c release --product paywatch
    binary=.build/release/paywatch
  fi
  [ -x "$binary" ] || { echo "install.sh: $binary is not an executable file" >&2; exit 66; }
  install -D -m 0755 "$binary" "$root$bin_path"
  install -D -m 0644 systemd/paywatch.service "$root$unit_path"
  install -D -m 0644 systemd/paywatch.sysusers "$root$sysusers_path"
  install -D -m 0644 README.md "$root$doc_path"
  for path in "$bin_path" "$unit_path" "$sysusers_path" "$doc_path"; do echo "installed $root$path"; done
  if [ -e "$root$config_path" ]; then
    echo "kept $root$config_path (an existing configuration is never overwritten; the example is config/paywatch.toml)"
  else
    install -d -m 0755 "$root$(dirname "$config_path")"
    install -m 0644 config/paywatch.toml "$root$config_path"
    echo "installed $root$config_path (the example: edit the channels before starting)"
  fi
  if [ "$live" -eq 0 ]; then
    echo "--root: no user created, systemctl not called"
    return
  fi
  create_user
  if systemd_running; then
    systemctl daemon-reload
    echo "next: edit $config_path, then: systemctl enable --now paywatch"
  else
    echo "systemd is not running here: the unit is installed but not loaded"
  fi
}

if [ "$uninstall" -eq 1 ]; then do_uninstall; else do_install; fi
