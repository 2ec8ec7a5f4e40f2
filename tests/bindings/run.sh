#!/usr/bin/env bash
# Builds libsnakeid_ffi, generates the Python, Kotlin and Swift bindings from it, and runs the real bindings:
# pytest on Python, kotlinc + the desktop JVM (JNA) on Kotlin. The Swift bindings have no toolchain here: they are
# checked to be identical to the copy committed under ios/. Usage: tests/bindings/run.sh (on tests/test_build.sh's build)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
source tests/test_build.sh
# The FFI with its tests' features (the library with failpoints), as CI's `cargo test -p snakeid-ffi` built it; the
# generator as the README and maturin run it: `--bin`, not `-p`, resolves its dependencies' features over the whole
# workspace as maturin's `cargo run --bin uniffi-bindgen` does, so the three share one build of its 28 crates (with
# `-p`, maturin compiled them again: 4 minutes).
cargo build "${test_cargo[@]}" "${ffi_packages[@]}" --all-targets
cargo build --locked --bin uniffi-bindgen
lib="$test_dir/libsnakeid_ffi.so"
out="$root/target/bindings"
rm -rf "$out" && mkdir -p "$out"
for lang in python kotlin swift; do
  target/debug/uniffi-bindgen generate --no-format --library "$lib" --language "$lang" --out-dir "$out/$lang"
done
export SNAKEID_ROOT="$root" SNAKEID_CLI="$root/$test_dir/snakeid"

echo "== Python package"
# Laid out as the wheel lays it out (bindings/ffi/pyproject.toml): the layer in snakeid/, the generated module and the
# library in snakeid/_native/, whose __init__.py re-exports the generated module as maturin's does.
pkg="$out/python-package"
mkdir -p "$pkg/snakeid/_native"
cp bindings/ffi/python/snakeid/*.py bindings/ffi/python/snakeid/py.typed "$pkg/snakeid/"
cp "$out/python/snakeid.py" "$lib" "$pkg/snakeid/_native/"
echo "from .snakeid import *" > "$pkg/snakeid/_native/__init__.py"
# The same fixed mmap threshold as the JVM below (see there): the Python soak's 4 threads showed the same wandering
# (221.8 -> 236.8 MB in one CI run; with the threshold 127-132 MB and flat in three runs).
GLIBC_TUNABLES=glibc.malloc.mmap_threshold=1048576 SNAKEID_BINDINGS="$pkg" SNAKEID_FAILPOINTS_BUILD=1 python3 -m pytest -q -p no:cacheprovider tests/bindings/test_python.py
# The soak once more with glibc's own malloc settings, as a user's process has them: a looser bound (10%), since
# the dynamic mmap threshold moves the peak with how calls overlap.
SNAKEID_SOAK_BOUND=0.10 SNAKEID_BINDINGS="$pkg" SNAKEID_FAILPOINTS_BUILD=1 python3 -m pytest -q -s -p no:cacheprovider \
    tests/bindings/test_python.py -k soak | grep -E "soak:|passed|failed"

echo "== Kotlin bindings (desktop JVM)"
kotlinc="$(command -v kotlinc-jvm || echo "$(npm root -g 2>/dev/null)/kotlin-compiler/bin/kotlinc-jvm")"
jna=/usr/share/java/jna.jar
"$kotlinc" -nowarn -classpath "$jna" "$out/kotlin/org/snakeid/snakeid.kt" android/snakeid/src/main/kotlin/org/snakeid/SharedClassifier.kt \
  tests/bindings/KotlinBindingsTest.kt \
  -d "$out/kotlin-test.jar"
# A fixed, pre-touched heap, so the soak test's peak RSS measures the library and not the JVM growing its heap; and a
# fixed mmap threshold, so that glibc returns each call's multi-megabyte activation tensors to the system instead of
# its dynamic threshold parking them in per-thread arenas, whose fragmentation made the JVM's peak RSS wander by
# tens of megabytes from run to run (measured: 444-514 MB after warm-up without it, 364-378 MB with it).
kotlin_run() {
  GLIBC_TUNABLES=glibc.malloc.mmap_threshold=1048576 java -Xms192m -Xmx192m -XX:+AlwaysPreTouch -Djna.library.path="$root/$test_dir" \
    -cp "$out/kotlin-test.jar:$jna:$(dirname "$kotlinc")/../lib/kotlin-stdlib.jar" KotlinBindingsTestKt "$@"
}
kotlin_run
# Forced panics (the test build's failpoints) in a JVM of their own: the variable is read from the process environment.
SNAKEID_FAILPOINTS="load=1,inference=2" kotlin_run failpoints

echo "== Generated bindings committed to the app shells are up to date"
# (SNAKEID_UPDATE_BINDINGS=1 tests/bindings/run.sh rewrites the committed copies instead of checking them.)
check() {
  if [ "${SNAKEID_UPDATE_BINDINGS:-0}" = 1 ]; then cp "$2" "$1"; else diff -u "$1" "$2"; fi
}
check android/snakeid/src/main/kotlin/org/snakeid/snakeid.kt "$out/kotlin/org/snakeid/snakeid.kt"
check ios/Sources/SnakeID/SnakeID.swift "$out/swift/SnakeID.swift"
check ios/ffi/SnakeIDFFI.h "$out/swift/SnakeIDFFI.h"
check ios/ffi/module.modulemap "$out/swift/SnakeIDFFI.modulemap"
echo "bindings: generated code matches the committed copies"
