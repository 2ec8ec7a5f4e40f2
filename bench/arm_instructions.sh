#!/usr/bin/env bash
# Instructions retired per inference and per photo-to-answer on aarch64, counted under qemu-user as a Cortex-A76 by
# our TCG plugin (bench/qemu_insn_count.c): a proxy for phone speed where there is no phone, not a timing. Each figure
# is the difference between runs of 1 and 1 + N calls, divided by N (load and compile cancel out). One thread.
# Usage: bench/arm_instructions.sh [PHOTO] [N]   (the tools tests/arm/run.sh needs, and gcc)
set -euo pipefail
cd "$(dirname "$0")/.."
photo="${1:-tests/data/photos/chelsea.png}"
n="${2:-5}"
source tests/arm/env.sh
# tests/arm/run.sh's build (one aarch64 build of tract for both), but without the overflow checks test-opt puts in
# our crate's arithmetic, which cost instructions a release build does not run.
cargo build "${arm_cargo[@]}" --config profile.test-opt.package.snakeid.overflow-checks=false --example infer --bin snakeid >&2
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
gcc -shared -fPIC -O2 -o "$dir/libinsn.so" bench/qemu_insn_count.c

# Instructions retired by one run of the command.
count() {
  $runner -cpu "${cpu:-cortex-a76}" -plugin "$dir/libinsn.so" -d plugin -D "$dir/log" "$@" >/dev/null
  sed -n 's/^insns: //p' "$dir/log"
}
# Per call of a command whose last argument is its number of calls: (1 + n calls) - (1 call), over n.
per_call() {
  local one many
  one=$(count "$@" 1)
  many=$(count "$@" $((n + 1)))
  echo $(((many - one) / n))
}

echo "| aarch64 ${cpu:-cortex-a76} under qemu, 1 thread, instructions per call | millions |"
echo "|---|---|"
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
tract=$(per_call "$arm_bin/examples/infer" --tract)
float=$(per_call "$arm_bin/examples/infer" --float-pointwise)
ours=$(per_call "$arm_bin/examples/infer")
echo "| inference, tract alone | $((tract / 1000000)) |"
echo "| inference, our operators but tract's float pointwise convolutions | $((float / 1000000)) ($(ratio "$float" "$tract") of tract's) |"
echo "| inference, snakeid | $((ours / 1000000)) ($(ratio "$ours" "$tract") of tract's) |"
answer=$(per_call "$arm_bin/snakeid" bench --image "$photo" --warmup 1 --iterations)
echo "| photo to answer ($(basename "$photo")), snakeid | $((answer / 1000000)) |"
