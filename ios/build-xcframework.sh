#!/usr/bin/env bash
# Builds SnakeIDFFI.xcframework for the Swift package: static libsnakeid_ffi.a for iOS devices (arm64) and the
# simulator (arm64 + x86_64, joined with lipo), plus the generated C header and module map; regenerates the Swift
# bindings from the same build. Needs macOS with Xcode and `rustup target add aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
cd "$repo"

targets=(aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios)
for t in "${targets[@]}"; do
  # The phone profile (smallest code), without the thread pool: one call per thread (BENCHMARKS.md, sizes).
  cargo build --locked --profile mobile -p snakeid-ffi --no-default-features --features embedded-default --target "$t"
done
# Host build, to generate the bindings from the same sources.
cargo build --locked --release -p snakeid-ffi
gen="$(mktemp -d)"
cargo run --locked --bin uniffi-bindgen -- generate --library target/release/libsnakeid_ffi.dylib --language swift --out-dir "$gen"
cp "$gen/SnakeID.swift" "$here/Sources/SnakeID/SnakeID.swift"

headers="$(mktemp -d)"
cp "$gen/SnakeIDFFI.h" "$headers/"
cp "$gen/SnakeIDFFI.modulemap" "$headers/module.modulemap"

sim="target/ios-simulator-universal/mobile"
mkdir -p "$sim"
lipo -create target/aarch64-apple-ios-sim/mobile/libsnakeid_ffi.a target/x86_64-apple-ios/mobile/libsnakeid_ffi.a \
  -output "$sim/libsnakeid_ffi.a"

rm -rf "$here/SnakeIDFFI.xcframework"
xcodebuild -create-xcframework \
  -library target/aarch64-apple-ios/mobile/libsnakeid_ffi.a -headers "$headers" \
  -library "$sim/libsnakeid_ffi.a" -headers "$headers" \
  -output "$here/SnakeIDFFI.xcframework"
echo "wrote $here/SnakeIDFFI.xcframework"
