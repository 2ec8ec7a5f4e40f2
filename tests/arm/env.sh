# The aarch64 cross build that tests/arm/run.sh and bench/arm_instructions.sh share (sourced, not run): the target,
# its linker and qemu runner, and one set of packages, features and profile for every command, so that tract is
# compiled for aarch64 once (the CLI's clap turns on features of shared build dependencies); no GPU backend. The FFI
# is among the packages so that the aarch64 wheel's maturin build (tests/bindings/wheel_aarch64.sh) finds tract
# compiled with the same features: 2 crates rebuilt instead of 31.
target=aarch64-unknown-linux-gnu
runner="qemu-aarch64 -L /usr/aarch64-linux-gnu"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$runner"
arm_cargo=(--profile test-opt --locked --target "$target" -p snakeid -p snakeid-tests -p snakeid-cli -p snakeid-ffi --no-default-features
  --features snakeid/embedded-default,snakeid-cli/embedded-default,snakeid-ffi/embedded-default)
arm_bin="target/$target/test-opt"
