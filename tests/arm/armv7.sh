#!/usr/bin/env bash
# 32-bit ARM (armeabi-v7a's instruction set, still common on low-cost Android phones) under emulation: cross-builds
# the core for armv7-unknown-linux-gnueabihf and runs its unit tests under qemu-user as a Cortex-A7 (NEON, VFPv4):
# every kernel's portable loop (armv7 has no plug-in: the compiler vectorises them for NEON) and tract's armv7
# kernels under the default model's logits checks, decoding and the decision.
# Usage: tests/arm/armv7.sh   (needs gcc-arm-linux-gnueabihf, libc6-dev-armhf-cross, qemu-user and the
# armv7-unknown-linux-gnueabihf rustup target; .ci/run installs them).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_LINKER=arm-linux-gnueabihf-gcc
export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_RUNNER="qemu-arm -L /usr/arm-linux-gnueabihf"
export QEMU_CPU=cortex-a7
cargo test --profile test-opt --locked --target armv7-unknown-linux-gnueabihf -p snakeid --lib
