#!/usr/bin/env bash
# After `swift test`: looks for every secret the tests used in every log the test run kept, and
# fails (exit 1), listing file and line, if one is there. The logs are the real binary's stdout and
# stderr in the end-to-end tests and the in-process service's log lines in the daemon tests
# (PaywatchTestSupport.TestLogs), in $PAYWATCH_TEST_LOGS, else $TMPDIR/paywatch-test-logs.
#
# A secret is: the marker every literal secret in Tests/ contains (`pwsecret`, any letter case),
# that marker base64-encoded at any of the three alignments (an `Authorization: Basic` header, an
# AUTH PLAIN line), and every line of the run's registry (secrets.registry: secrets made while the
# tests ran, such as a service account's private key).
#
# Exit 2 when there is nothing to look at (no log folder, or no log in it): the grep must not pass
# because the suite kept nothing.
# Usage: scripts/secret-grep.sh [LOG_DIR]
set -euo pipefail
dir=${1:-${PAYWATCH_TEST_LOGS:-${TMPDIR:-/tmp}/paywatch-test-logs}}
marker=pwsecret

if [ ! -d "$dir" ]; then
  echo "secret-grep: no log folder $dir: run the test suite first" >&2
  exit 2
fi
logs=$(find "$dir" -type f -name '*.log' -size +0c | wc -l)
if [ "$logs" -eq 0 ]; then
  echo "secret-grep: $dir holds no log: nothing was checked (did the suite keep its logs?)" >&2
  exit 2
fi

patterns=$(mktemp)
trap 'rm -f "$patterns"' EXIT
# The base64 characters that encode only the marker's own bytes, for each of the three offsets the
# marker can start at within a 3-byte group.
for pad in "" "x" "xx"; do
  encoded=$(printf '%s%s' "$pad" "$marker" | base64 -w0)
  skip=$(( ${#pad} == 0 ? 0 : 4 ))                         # the group holding padding bytes
  first=$(( (3 - ${#pad}) % 3 ))                            # marker bytes in that group
  groups=$(( (${#marker} - first) / 3 ))                    # whole groups of marker bytes after it
  echo "${encoded:$skip:$((groups * 4))}" >>"$patterns"
done
find "$dir" -type f -name secrets.registry -exec cat {} + 2>/dev/null | grep -v '^$' >>"$patterns" || true

found=0
if grep -rniF --include='*.log' "$marker" "$dir"; then found=1; fi
if grep -rnF --include='*.log' -f "$patterns" "$dir"; then found=1; fi
if [ "$found" -ne 0 ]; then
  echo "secret-grep: a secret the tests used appears in the log lines above" >&2
  exit 1
fi
echo "secret-grep: $logs logs in $dir, $(($(wc -l <"$patterns") + 1)) patterns, no secret found"
