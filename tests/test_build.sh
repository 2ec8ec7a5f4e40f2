# The x86-64 build every test runs on (sourced by .ci/run, tests/bindings/run.sh and tests/leakcheck.sh, not run).
# The release profile, so that the tests and the README's release commands share one build of the dependencies (cargo
# keeps a build per profile), with overflow checks in our own crate's arithmetic as a debug build has them (a shift
# by 64 in the JPEG decoder once passed every optimised test): only our crate compiles again.
test_cargo=(--release --locked --config profile.release.package.snakeid.overflow-checks=true)
test_dir=target/release
# Packages are built in two groups, each resolving its dependencies' features as the README's command for it does
# (cargo unifies features over the packages of one command: built with the whole workspace, wgpu, wasm-bindgen and
# askama turn on features of smallvec, syn and serde under tract, and `cargo run --release -p snakeid-cli` then
# compiled tract and wgpu again, as `cargo build --release -p snakeid-ffi` did): the core, the CLI and the
# integration tests like the CLI's command; the FFI alone like the bindings command. Only `image` (the tests write
# JPEGs) and our crates compile again for the README's commands. The wasm crate and the bindings generator have no
# tests of their own here: the wasm crate is built and tested for WebAssembly (tests/wasm, tests/web), the generator
# runs as the README runs it (a debug build, also maturin's).
test_packages=(-p snakeid -p snakeid-cli -p snakeid-tests)
ffi_packages=(-p snakeid-ffi)
