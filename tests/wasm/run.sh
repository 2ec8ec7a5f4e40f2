#!/usr/bin/env bash
# The core's unit tests compiled to WebAssembly (SIMD on, as the web app's build) and run as a WASI program under
# Node.js: every kernel against its portable loop (the WebAssembly int8 plug-in among them), decoding, the decision.
# WebAssembly has no threads here: the tests' "several threads" cases run on one.
# The default bundle is compiled in (as the web app has it), so the whole-model tests run here too.
set -euo pipefail
cd "$(dirname "$0")/../.."
rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
# Our crate as the native tests build it (optimised, overflow checks on), its dependencies lightly optimised
# (Cargo.toml's `test-light`).
tests=$(cargo test --profile test-light --target wasm32-wasip1 \
    -p snakeid --lib --no-default-features --features embedded-default --no-run --message-format=json \
    | python3 -c 'import json,sys; print([m["executable"] for m in map(json.loads, sys.stdin) if m.get("executable")][-1])')
node --no-warnings tests/wasm/wasi.mjs "$tests"
