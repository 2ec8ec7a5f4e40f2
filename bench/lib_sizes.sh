#!/usr/bin/env bash
# Code size per phone ABI, the model apart (BENCHMARKS.md, "Library size per ABI"): the FFI library built with
# `--profile mobile` and no embedded bundle, linked as the platform's linker links a shared library (unused sections
# dropped, only UniFFI's symbols exported), stripped; then its largest crates by symbol size.
#
#   bench/lib_sizes.sh [TARGET...] [-- CARGO_ARGS...]
#
# TARGET defaults to the four phone ABIs. CARGO_ARGS go to `cargo rustc` (a lever to measure: `--features
# snakeid/threads`, `--config profile.mobile.opt-level="z"`). Needs Debian's clang-14, lld-14 and llvm-14: there is
# no NDK or Xcode here, so ld.lld / ld64.lld stand in for their linkers (libc and libSystem left undefined).
set -euo pipefail
cd "$(dirname "$0")/.."

targets=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do targets+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
[ ${#targets[@]} -gt 0 ] || targets=(aarch64-linux-android armv7-linux-androideabi x86_64-linux-android aarch64-apple-ios)

# SNAKEID_TRACT_ONNX=DIR builds against another copy of tract-onnx (bench/reduced_ops.py's), without touching the
# committed Cargo.lock.
locked=(--locked)
if [ -n "${SNAKEID_TRACT_ONNX:-}" ]; then
  mkdir -p target
  cp Cargo.lock target/Cargo.lock.committed
  trap 'cp target/Cargo.lock.committed Cargo.lock' EXIT
  locked=(--config "patch.crates-io.tract-onnx.path=\"$(realpath "$SNAKEID_TRACT_ONNX")\"")
fi

for t in "${targets[@]}"; do
  rustup target add "$t" >/dev/null
  # cc-rs builds tract-linalg's assembly kernels; for Apple targets it asks `xcrun` for an SDK unless SDKROOT is set,
  # and the kernels need no SDK headers.
  sdk="$(mktemp -d)"
  # cc-rs 1.11 names armv7 Android `arm-none-linux-android` for clang, whose soft-float default rejects tract's VFP
  # kernels; the NDK's own triple and float ABI instead.
  cflags=""
  [ "$t" = armv7-linux-androideabi ] && cflags="--target=armv7a-linux-androideabi21 -mfloat-abi=softfp -mfpu=neon"
  env "CC_${t//-/_}=clang-14" "AR_${t//-/_}=llvm-ar-14" "CFLAGS_${t//-/_}=$cflags" SDKROOT="$sdk" \
    cargo rustc --quiet "${locked[@]}" -p snakeid-ffi --profile mobile --target "$t" --no-default-features "$@" --crate-type staticlib
  rmdir "$sdk"
  archive="target/$t/mobile/libsnakeid_ffi.a"
  out="target/sizes/$t"
  mkdir -p "$out"
  case "$t" in
    *-apple-*)
      lib="$out/libsnakeid_ffi.dylib"
      printf '_uniffi_snakeid_ffi_*\n_ffi_snakeid_ffi_*\n' > "$out/exports.txt"
      ld64.lld-14 -dylib -arch arm64 -platform_version ios 15.0 15.0 -dead_strip -undefined dynamic_lookup \
        -exported_symbols_list "$out/exports.txt" -all_load "$archive" -o "$lib"
      # What Xcode does to a dynamic library: strip local symbols, keep the exported ones.
      llvm-strip-14 -x -o "$out/stripped" "$lib" ;;
    *)
      lib="$out/libsnakeid_ffi.so"
      printf '{ global: uniffi_snakeid_ffi_*; ffi_snakeid_ffi_*; local: *; };\n' > "$out/exports.map"
      ld.lld-14 -shared --gc-sections -z noexecstack --version-script="$out/exports.map" \
        --whole-archive "$archive" --no-whole-archive -o "$lib"
      llvm-strip-14 --strip-all -o "$out/stripped" "$lib" ;;
  esac
  python3 bench/symbol_sizes.py "$t" "$lib" "$out/stripped"
done
