#!/usr/bin/env bash
# Instructions retired per inference and per photo-to-answer on aarch64, counted under qemu-user as a Cortex-A76 by
# our TCG plugin (bench/qemu_insn_count.c): a proxy for phone speed where there is no phone, not a timing. Each figure
# is the difference between runs of 1 and 1 + N calls, divided by N (load and compile cancel out). One thread.
# Beside tract alone and snakeid: onnxruntime's published aarch64 build (the 1.32.0 wheel's libonnxruntime.so,
# fetched by pip once into target/, driven through its C API by bench/ort_infer.c) on the same model and input.
# With --profile, also snakeid's inference per symbol (the plugin's by=symbol mode), the top 12.
# Usage: bench/arm_instructions.sh [PHOTO] [N] [--profile]   (the tools tests/arm/run.sh needs, gcc, and pip's
# network access the first time). cpu=cortex-a53 counts on a core without the dot product.
set -euo pipefail
cd "$(dirname "$0")/.."
args=()
profile=0
for a in "$@"; do
  if [ "$a" = --profile ]; then profile=1; else args+=("$a"); fi
done
photo="${args[0]:-tests/data/photos/chelsea.png}"
n="${args[1]:-5}"
cpu="${cpu:-cortex-a76}"
source tests/arm/env.sh
# tests/arm/run.sh's build (one aarch64 build of tract for both), but without the overflow checks test-opt puts in
# our crate's arithmetic, which cost instructions a release build does not run.
cargo build "${arm_cargo[@]}" --config profile.test-opt.package.snakeid.overflow-checks=false --example infer --bin snakeid >&2
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
gcc -shared -fPIC -O2 -o "$dir/libinsn.so" bench/qemu_insn_count.c

# onnxruntime for aarch64: the wheel's C library, the driver, and what qemu-user 7.2 needs to run it (see
# bench/qemu_cpuinfo_shim.c): a /proc/cpuinfo of the emulated core.
ort_version=1.32.0
ort_dir="$PWD/target/onnxruntime-aarch64-$ort_version"
if [ ! -f "$ort_dir/libonnxruntime.so.$ort_version" ]; then
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --platform manylinux_2_28_aarch64 --python-version 3.11 "onnxruntime==$ort_version" -d "$dir/wheel" >&2
  mkdir -p "$ort_dir"
  python3 -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])" \
    "$dir"/wheel/onnxruntime-*.whl "onnxruntime/capi/libonnxruntime.so.$ort_version" "$dir/wheel"
  mv "$dir/wheel/onnxruntime/capi/libonnxruntime.so.$ort_version" "$ort_dir/"
fi
ln -sf "libonnxruntime.so.$ort_version" "$ort_dir/libonnxruntime.so.1"
aarch64-linux-gnu-gcc -O2 -o "$dir/ort_infer" bench/ort_infer.c "$ort_dir/libonnxruntime.so.$ort_version" -Wl,-rpath,"$ort_dir"
aarch64-linux-gnu-gcc -shared -fPIC -O2 -o "$dir/cpuinfo_shim.so" bench/qemu_cpuinfo_shim.c -ldl
case "$cpu" in
  cortex-a76) part=0xd0b variant=0x4 features="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp" ;;
  cortex-a53) part=0xd03 variant=0x0 features="fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid" ;;
  *) echo "no /proc/cpuinfo written for $cpu (cortex-a76 or cortex-a53)" >&2; exit 2 ;;
esac
for p in 0 1; do
  printf 'processor\t: %s\nFeatures\t: %s\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: 1\n\n' \
    "$p" "$features" "$variant" "$part"
done >"$dir/cpuinfo"
ort_env=(-E "LD_PRELOAD=$dir/cpuinfo_shim.so" -E "SNAKEID_CPUINFO=$dir/cpuinfo")
$runner "$arm_bin/snakeid" bundle unpack --out "$dir/bundle" >/dev/null

# Instructions retired by one run of the command (qemu's own options first, then --).
count() {
  local qemu=()
  while [ "$1" != -- ]; do qemu+=("$1"); shift; done
  shift
  $runner -cpu "$cpu" "${qemu[@]}" -plugin "$dir/libinsn.so" -d plugin -D "$dir/log" "$@" >/dev/null || { echo "failed: $*" >&2; return 1; }
  sed -n 's/^insns: //p' "$dir/log"
}
# Per call of a command whose last argument is its number of calls: (1 + n calls) - (1 call), over n. Run in
# `$(...)`, where `set -e` does not reach: a failed or empty count must end the script, not read as 0 (issue 38).
per_call() {
  local one many
  one=$(count "$@" 1) || exit 1
  many=$(count "$@" $((n + 1))) || exit 1
  case "$one$many" in
    ''|*[!0-9]*) echo "no instruction count from: $*" >&2; exit 1 ;;
  esac
  echo $(((many - one) / n))
}

echo "| aarch64 $cpu under qemu, 1 thread, instructions per call | millions |"
echo "|---|---|"
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
tract=$(per_call -- "$arm_bin/examples/infer" --tract) || exit 1
float=$(per_call -- "$arm_bin/examples/infer" --float-pointwise) || exit 1
ours=$(per_call -- "$arm_bin/examples/infer") || exit 1
ort=$(per_call "${ort_env[@]}" -- "$dir/ort_infer" "$dir/bundle/model.onnx" input logits 1x3x224x224) || exit 1
echo "| inference, tract alone | $((tract / 1000000)) |"
echo "| inference, our operators but tract's float pointwise convolutions | $((float / 1000000)) ($(ratio "$float" "$tract") of tract's) |"
echo "| inference, snakeid | $((ours / 1000000)) ($(ratio "$ours" "$tract") of tract's, $(ratio "$ours" "$ort") of onnxruntime's) |"
echo "| inference, onnxruntime $ort_version | $((ort / 1000000)) |"
answer=$(per_call -- "$arm_bin/snakeid" bench --image "$photo" --warmup 1 --iterations) || exit 1
echo "| photo to answer ($(basename "$photo")), snakeid | $((answer / 1000000)) |"

if [ "$profile" = 1 ]; then
  for calls in 1 $((n + 1)); do
    $runner -cpu "$cpu" -plugin "$dir/libinsn.so,by=symbol" -d plugin -D "$dir/profile$calls" "$arm_bin/examples/infer" "$calls" >/dev/null
  done
  echo
  echo "| snakeid's inference by symbol (? is shared libraries: libc's memcpy, malloc) | millions per call |"
  echo "|---|---|"
  python3 - "$dir/profile1" "$dir/profile$((n + 1))" "$n" <<'EOF'
import collections, subprocess, sys
def load(path):
    counts = collections.Counter()
    for line in open(path):
        count, name = line.rstrip("\n").split(" ", 1)
        counts[name] += int(count)
    return counts
one, many, n = load(sys.argv[1]), load(sys.argv[2]), int(sys.argv[3])
per_call = sorted(((many[k] - one.get(k, 0)) / n, k) for k in many)[::-1][:12]
names = subprocess.run(["c++filt"], input="\n".join(k for _, k in per_call), capture_output=True, text=True).stdout.split("\n")
for (count, _), name in zip(per_call, names):
    print(f"| `{name.rsplit('::h', 1)[0][:110]}` | {count / 1e6:.1f} |")
EOF
fi
