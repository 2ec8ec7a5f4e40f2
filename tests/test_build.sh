# The x86-64 build every test runs on (sourced by .ci/run, tests/bindings/run.sh and tests/leakcheck.sh, not run).
# The release profile, so that the tests, the README's release commands and the Python wheel share one build of the
# dependencies (cargo keeps a build per profile: a profile of the tests' own cost CI a second build of tract, uniffi
# and the rest, ~8 minutes on 2 cores), with overflow checks in our own crate's arithmetic as a debug build has them
# (a shift by 64 in the JPEG decoder once passed every optimised test): only our crate compiles twice.
# The cross builds (tests/arm/, tests/wasm/) have no release build to share and use the `test-opt` profile.
test_cargo=(--release --locked --config profile.release.package.snakeid.overflow-checks=true)
test_dir=target/release
