#!/usr/bin/env bash
# The Python package as a user gets it. The README's build line makes the wheel with maturin (the Python layer, the
# UniFFI module and libsnakeid_ffi, release profile) in a venv of its own; then the README's install line puts it into
# a fresh venv whose PATH has no cargo or rustc, where the Python tests run against the installed package from outside
# the repository, followed by the README's Python lines (a photo given by path).
# Usage: tests/bindings/wheel.sh SNAKEID_CLI
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cli="$(realpath "$1")"
cd "$root"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

build='pip install maturin && maturin build --release -m bindings/ffi/Cargo.toml'
install='pip install target/wheels/snakeid-*.whl'
for line in "$build" "$install"; do
  grep -qF "$line" README.md || { echo "README.md no longer shows: $line" >&2; exit 1; }
done
python3 -m venv "$work/build"
rm -rf target/wheels
PATH="$work/build/bin:$PATH" PIP_DISABLE_PIP_VERSION_CHECK=1 bash -c "$build"
wheel=$(ls target/wheels/snakeid-*.whl)
echo "wheel: $wheel ($(du -h "$wheel" | cut -f1))"
case "$wheel" in *-py3-none-*) ;; *) echo "the wheel should serve every Python 3 (py3-none): $wheel" >&2; exit 1 ;; esac

# The clinic's laptop: the same Python, a PATH with no Rust on it.
python="$(python3 -c 'import sys; print(sys.executable)')"
"$python" -m venv "$work/user"
clean_path="$work/user/bin:/usr/bin:/bin"
if PATH="$clean_path" command -v cargo rustc >/dev/null; then echo "cargo or rustc is still on the clean PATH" >&2; exit 1; fi
PATH="$clean_path" PIP_DISABLE_PIP_VERSION_CHECK=1 bash -c "$install"
# The tests' own needs (the package needs none of them).
"$work/user/bin/pip" install --quiet --disable-pip-version-check pytest numpy pillow
cd "$work"
"$work/user/bin/python" - <<PY
import snakeid
assert snakeid.__file__.startswith("$work/user/"), snakeid.__file__
print("installed:", snakeid.__file__)
PY
PATH="$clean_path" SNAKEID_ROOT="$root" SNAKEID_CLI="$cli" GLIBC_TUNABLES=glibc.malloc.mmap_threshold=1048576 \
    "$work/user/bin/python" -m pytest -q -p no:cacheprovider "$root/tests/bindings/test_python.py" \
    -k "not forced_internal_failures"  # the release wheel has no failpoints: run.sh tests them on the test build
# The README's Python lines, as written (with a committed photo as photo.jpg).
cp "$root/tests/data/photos/rocket.jpg" photo.jpg
lines="$(awk '/^ *```python/ {inside=1; next} inside && /^ *```/ {exit} inside {sub(/^  /, ""); print}' "$root/README.md")"
grep -q 'identify("photo.jpg"' <<<"$lines" || { echo "README.md's Python lines no longer identify photo.jpg by path: $lines" >&2; exit 1; }
printf '%s\n%s\n' "$lines" 'assert answer.verdict == "none" and len(answer.predictions) == 5, answer' > readme.py
PATH="$clean_path" "$work/user/bin/python" readme.py
echo "README lines: ran against the installed wheel"
