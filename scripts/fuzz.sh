#!/usr/bin/env bash
# Builds the libFuzzer targets (preset fuzz: clang, AddressSanitizer, UBSan)
# and runs each for FUZZ_SECONDS (default 60) from its seed corpus in
# tests/fuzz/corpus/<target>. New inputs go to a scratch folder, not the tree. Fails
# on any finding (a crash, a sanitizer report, a timeout, a leak); libFuzzer
# leaves the input in build-fuzz/findings/, with the run's log beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

seconds="${FUZZ_SECONDS:-60}"
cmake --preset fuzz
cmake --build --preset fuzz
findings="$root/build-fuzz/findings"
mkdir -p "$findings"
failed=0
for target in fuzz_results fuzz_config fuzz_study fuzz_expr; do
  scratch="$(mktemp -d)"
  log="$findings/$target.log"
  if (cd "$findings" && "$root/build-fuzz/tests/fuzz/$target" "$scratch" "$root/tests/fuzz/corpus/$target" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 > "$log" 2>&1); then
    result="no finding"
  else
    result="FINDING"
    failed=1
  fi
  runs="$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')"
  echo "$target: $result, $runs executions in $seconds s"
  if [ "$result" = FINDING ]; then tail -n 40 "$log"; fi
  rm -rf "$scratch"
done
exit "$failed"
