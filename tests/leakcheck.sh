#!/usr/bin/env bash
# Runs the soak test (tests/soak.rs, CPU backend: 4 threads sharing one classifier) under valgrind's leak checker
# and fails on any definitely or indirectly lost block. Usage: tests/leakcheck.sh (on tests/test_build.sh's build)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
source tests/test_build.sh
# The tests' build (tests/test_build.sh), so nothing rebuilds after the tests ran.
bin=$(cargo test "${test_cargo[@]}" "${test_packages[@]}" --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys; print([m["executable"] for m in map(json.loads, sys.stdin) if m.get("executable") and m["target"]["name"] == "soak"][0])')
# Few calls (valgrind runs them ~50x slower, on one core), no GPU (Mesa's own allocations are not ours), and no RSS
# bound (under valgrind RSS is valgrind's): 1 warm-up + 2 calls per thread go through every path of a call. The soak's
# photos show no snake and are far under the `none` line, so each costs one view (`decision.more_views_above`).
SNAKEID_SOAK_CALLS=2 SNAKEID_SOAK_WARMUP=1 SNAKEID_SOAK_GPU_CALLS=0 SNAKEID_SOAK_RSS=0 \
  valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
  --error-exitcode=3 --fair-sched=yes "$bin" --test-threads=1
echo "leakcheck: no definite or indirect leaks"
