#!/usr/bin/env bash
# Builds the offline web app into web/dist/ from a clean checkout: the core compiled to WebAssembly (with SIMD and
# the default bundle inside), wasm-bindgen's JS glue, the page, the worker and the service worker.
# Tools: the wasm32-unknown-unknown target (rustup) and wasm-bindgen-cli at exactly the wasm-bindgen crate's
# version (crates.io), installed here when missing. Serve with: python3 -m http.server -d web/dist
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)"/\1/p' Cargo.toml)
if ! wasm-bindgen --version 2>/dev/null | grep -qx "wasm-bindgen $version"; then
    # Not --locked: its lock file names versions newer than some crates.io mirrors hold. Optimised lightly: it
    # compiles in 110 s instead of 150 s on 2 cores, and still turns the app's 24 MB module in 2 s, into the same bytes.
    CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 cargo install wasm-bindgen-cli --version "=$version"
fi
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    rustup target add wasm32-unknown-unknown
fi

cargo build --release --target wasm32-unknown-unknown -p snakeid-wasm
rm -rf web/dist
mkdir -p web/dist
# Function names and producer notes are for debuggers, not phones: 1.4 MB less to download.
wasm-bindgen --target web --no-typescript --remove-name-section --remove-producers-section --out-dir web/dist \
    target/wasm32-unknown-unknown/release/snakeid_wasm.wasm
cp web/index.html web/style.css web/app.js web/worker.js web/manifest.webmanifest web/icon-192.png web/icon-512.png web/dist/
# The service worker's cache is named after this build's files, so a new build replaces what phones cached.
build=$(cat web/dist/* | sha256sum | cut -c1-16)
sed "s/snakeid-BUILD/snakeid-$build/" web/sw.js > web/dist/sw.js

wasm=web/dist/snakeid_wasm_bg.wasm
echo "web/dist built (cache snakeid-$build)"
awk -v raw="$(stat -c %s "$wasm")" -v gz="$(gzip -9 -c "$wasm" | wc -c)" -v bundle="$(stat -c %s models/default/snakeid-default.snkb)" -v f="$wasm" \
    'BEGIN { printf "%s: %.1f MB raw, %.1f MB gzipped (the default bundle inside: %.1f MB)\n", f, raw / 1e6, gz / 1e6, bundle / 1e6 }'
