# The aarch64 cross build that tests/arm/run.sh and bench/arm_instructions.sh share (sourced, not run): the target,
# its linker and qemu runner, and one set of packages, features and profile for every command, so that tract is
# compiled for aarch64 once (the CLI's clap turns on features of shared build dependencies); no GPU backend.
target=aarch64-unknown-linux-gnu
runner="qemu-aarch64 -L /usr/aarch64-linux-gnu"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$runner"
arm_cargo=(--profile test-opt --locked --target "$target" -p snakeid -p snakeid-tests -p snakeid-cli --no-default-features
  --features snakeid/embedded-default,snakeid-cli/embedded-default)
arm_bin="target/$target/test-opt"
