#!/usr/bin/env bash
# Bounded libFuzzer run of the two fuzz targets (Sources/fuzz-config, Sources/fuzz-planner):
# builds them into .build-fuzz (release, -sanitize=fuzzer), runs each for SECONDS (default 20) on a
# copy of its seed corpus in fuzz/corpus/ (the committed corpus never grows), and exits 1 if either
# finds a crash, a timeout or an out-of-memory input, after printing the input (path and hex dump)
# and the replay's backtrace. Crashing inputs are kept in .build-fuzz/crashes/.
# Usage: scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
build=.build-fuzz
# -sanitize=fuzzer: coverage for the Swift code and libFuzzer linked in; -fsanitize=fuzzer-no-link:
# coverage for the C/C++ code too (toml++ under TOMLKit). PAYWATCH_FUZZ selects the libFuzzer
# entry point (without it the same targets are plain replay commands).
flags=(-c release --build-path "$build"
       -Xswiftc -sanitize=fuzzer -Xswiftc -DPAYWATCH_FUZZ
       -Xcc -fsanitize=fuzzer-no-link -Xcxx -fsanitize=fuzzer-no-link)
for product in fuzz-config fuzz-planner; do
  start=$SECONDS
  swift build "${flags[@]}" --product "$product" >"$build.log" 2>&1 || { cat "$build.log"; exit 2; }
  echo "built $product in $((SECONDS - start)) s"
done
rm -f "$build.log"
bin=$(swift build "${flags[@]}" --show-bin-path)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
for target in config planner; do
  mkdir -p "$work/$target/corpus" "$work/$target/found"
  cp fuzz/corpus/"$target"/* "$work/$target/corpus/"
  log="$work/$target/log"
  # The Swift runtime's backtracer would take the crash signals from libFuzzer (which then saves
  # no input): off while fuzzing, on again for the replay below.
  rc=0
  start=$SECONDS
  SWIFT_BACKTRACE=enable=no "$bin/fuzz-$target" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 \
    -artifact_prefix="$work/$target/found/" -print_final_stats=1 "$work/$target/corpus" >"$log" 2>&1 || rc=$?
  took=$((SECONDS - start))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
  echo "fuzz-$target: ${execs:-?} runs in ${took} s (${rate:-?}/s), ${cov:-cov: ?}, exit $rc"
  found=$(find "$work/$target/found" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \))
  if [ "$rc" -ne 0 ] || [ -n "$found" ]; then
    failed=1
    echo "=== fuzz-$target FAILED; the fuzzer's report:"
    grep -v -E '^#[0-9]+|NEW_FUNC|^INFO:|^stat::' "$log" | head -60
    mkdir -p "$build/crashes"
    for input in $found; do
      kept="$build/crashes/$target-$(basename "$input")"
      cp "$input" "$kept"
      echo "=== crashing input: $kept ($(wc -c <"$input") bytes)"
      od -A x -t x1z -v "$input" | head -40
      echo "=== replay: $bin/fuzz-$target $kept"
      # (in a subshell that waits, so that the shell's "Illegal instruction" notice stays out of the output)
      ( SWIFT_BACKTRACE=enable=yes,threads=crashed,registers=none,images=none "$bin/fuzz-$target" "$kept" 2>&1 || true ) 2>/dev/null \
        | grep -v -E '^INFO:|^Running|^Executed|^\.\.\.$|^$' | head -20 || true
    done
  fi
done
[ "$failed" -eq 0 ] && echo "fuzz: no crash in ${seconds} s per target"
exit "$failed"
