#!/usr/bin/env bash
# ARM under emulation: cross-builds for aarch64 and runs, under qemu-user with a phone core (Cortex-A76: dot product,
# no SVE), the core's unit tests (every kernel against its portable loop among them), the onnxruntime goldens, the
# bad-input tests, the soak, and the CLI on the committed photos against the x86-64 CLI's answers. The int8 tests run
# once more on a core without the dot product (Cortex-A53), where no int8 kernel is swapped in.
# Usage: tests/arm/run.sh X86_SNAKEID   (needs gcc-aarch64-linux-gnu, libc6-dev-arm64-cross, qemu-user and the
# aarch64-unknown-linux-gnu rustup target; .ci/run installs them).
set -euo pipefail
cd "$(dirname "$0")/../.."
x86_snakeid="$1"
source tests/arm/env.sh
# qemu's default `max` CPU has SVE, which makes tract pick kernels most phones lack, and runs about 10x slower.
export QEMU_CPU=cortex-a76

cargo build "${arm_cargo[@]}"
# The Cortex-A76 has the dot product: its int8 plug-in must run (qemu-user 7.2 shows the host's /proc/cpuinfo, so the
# flag is named here rather than read).
SNAKEID_REQUIRE_ISA=asimddp cargo test "${arm_cargo[@]}" --lib --test golden --test bad_input
# The soak (4 threads on one classifier, answers checked): under qemu-user RSS is the emulator's and grows with the
# code it translates (105 -> 143 MB over 200 calls while the heap stayed at 35 MB: BENCHMARKS.md), so the bound here
# is on the allocator's heap.
SNAKEID_SOAK_RSS=heap SNAKEID_SOAK_WARMUP=8 SNAKEID_SOAK_CALLS=40 cargo test "${arm_cargo[@]}" --test soak
QEMU_CPU=cortex-a53 SNAKEID_REQUIRE_ISA= cargo test "${arm_cargo[@]}" --lib -- qpointwise handed int8_pointwise every_convolution
python3 tests/arm/compare_answers.py "$x86_snakeid" "$runner $arm_bin/snakeid"
