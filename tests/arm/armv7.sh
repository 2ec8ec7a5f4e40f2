#!/usr/bin/env bash
# 32-bit ARM (armeabi-v7a's instruction set, still common on low-cost Android phones) under emulation: cross-builds
# the core for armv7-unknown-linux-gnueabihf and runs its unit tests under qemu-user as a Cortex-A7 (NEON, VFPv4):
# every kernel's portable loop (armv7 has no plug-in, and Rust's armv7 targets leave NEON off) and tract's armv7 NEON
# kernels under the default model's logits checks, decoding and the decision.
# Usage: tests/arm/armv7.sh   (needs gcc-arm-linux-gnueabihf, libc6-dev-armhf-cross, qemu-user and the
# armv7-unknown-linux-gnueabihf rustup target; .ci/run installs them).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_LINKER=arm-linux-gnueabihf-gcc
export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_RUNNER="qemu-arm -L /usr/arm-linux-gnueabihf"
export QEMU_CPU=cortex-a7
# tract picks its armv7 NEON kernels from /proc/cpuinfo, which qemu-user 7.2 passes through from the x86 host, so it
# would test its VFPv2 ones: a Cortex-A7 has NEON, as the phones do, so its NEON kernels are forced on (a tract knob).
export TRACT_CPU_ARM32_NEON=1
cargo test --profile test-light --locked --target armv7-unknown-linux-gnueabihf -p snakeid --lib
