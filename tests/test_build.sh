# The x86-64 build every test runs on (sourced by .ci/run, tests/bindings/run.sh and tests/leakcheck.sh, not run).
# The release profile, so that the tests and the README's release commands share one build of the dependencies (cargo
# keeps a build per profile), with overflow checks in our own crate's arithmetic as a debug build has them (a shift
# by 64 in the JPEG decoder once passed every optimised test): only our crate compiles again.
test_cargo=(--release --locked --config profile.release.package.snakeid.overflow-checks=true)
test_dir=target/release
# Packages are built in two groups: the core, the CLI and the integration tests; the FFI alone (its tests' library has
# failpoints and no GPU backend). Cargo unifies features over the packages of one command, so the CLI's wgpu and clap
# and the FFI's uniffi would turn on different features of crates under tract, and each group, README command and
# the wheel would compile tract again; workspace-hack/ lifts them all to one set (tests/architecture/check_one_build.py
# checks it), so only our crates and `image` (the tests write JPEGs) compile again. The wasm crate and the bindings
# generator have no tests of their own here: the wasm crate is built and tested for WebAssembly (tests/wasm,
# tests/web); the generator runs as the README and maturin run it (`cargo run --bin uniffi-bindgen`, a debug build).
test_packages=(-p snakeid -p snakeid-cli -p snakeid-tests)
ffi_packages=(-p snakeid-ffi)
