#!/usr/bin/env bash
# Runs every unit-test binary in $1/tests and fails if any fails.
set -u
B=${1:-build}
pass=0; fail=0; failed=()
for t in "$B"/tests/test_*; do
  [ -x "$t" ] || continue
  if "$t"; then pass=$((pass+1)); else fail=$((fail+1)); failed+=("$(basename "$t")"); fi
done
echo "unit ($B): $pass passed, $fail failed"
[ "$fail" -eq 0 ] || { echo "failed: ${failed[*]}"; exit 1; }
[ "$pass" -gt 0 ] || { echo "no unit tests found"; exit 1; }
