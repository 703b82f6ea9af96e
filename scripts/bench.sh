#!/usr/bin/env bash
# Runs every paywatch benchmark RUNS times (default 3) in release and prints each run and the
# median of every figure. About 9 minutes per run on a 2-core machine.
# Usage: scripts/bench.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
swift build -c release --product paywatch >/dev/null
swift build -c release --product paywatch-bench >/dev/null
swift build -c release --product fake-gateway >/dev/null
out=$(mktemp)
for i in $(seq "$runs"); do
  for args in "plan 100000" "plan 100000 3ch" "planmix 100000" "plan 1000000" \
              "burst 20000" "burst 20000 ext" "burst 20000 ext slow" "deliver 20000" \
              "cancels 10000 60" "cancels 10000 60 ext" "rss 1000000" \
              "crash 20000" "crash 20000 ext" "crash 600 ext 30" "idle 100000 60" \
              "tls-http 20000 1" "tls-http 20000 8" "tls-http 20000 1 plain" "tls-http 20000 8 plain" \
              "tls-smtp 10000 1" "tls-smtp 10000 8" "tls-smtp 10000 1 starttls" "tls-smtp 10000 8 starttls" \
              "tls-smtp 10000 1 plain" "tls-smtp 10000 8 plain" \
              "tls-http 2000 1 close" "tls-http 2000 1 plain close" "tls-http 2000 8 close" "tls-http 2000 8 plain close"; do
    .build/release/paywatch-bench $args | tee -a "$out"
  done
done
echo "--- medians of $runs runs"
python3 - "$out" <<'PY'
import re, statistics, sys
# A benchmark is its first word plus the words that say what was measured (not the figures).
ident = re.compile(r"^(orders|channels|messages|open_orders|spread|sink|slow_tail|answer|mode|n|conc)=")
groups = {}
for line in open(sys.argv[1]):
    words = line.split()
    if not words: continue
    key = " ".join([words[0]] + [w for w in words[1:] if ident.match(w)])
    for name, value in re.findall(r"([\w-]+)=([\d.]+)", line):
        groups.setdefault(key, {}).setdefault(name, []).append(float(value))
for key, fields in groups.items():
    print(key + ": " + ", ".join(f"{n}={statistics.median(v):g}" for n, v in fields.items() if not ident.match(n + "=")))
PY
