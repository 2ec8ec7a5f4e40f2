#!/usr/bin/env bash
# The Python package as a user gets it: the README's line builds the wheel with maturin (the UniFFI module and
# libsnakeid_ffi, release profile) and pip installs it into a fresh venv; the Python binding tests run against the
# installed package, from outside the repository, followed by the README's two Python lines.
# Usage: tests/bindings/wheel.sh SNAKEID_CLI
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cli="$(realpath "$1")"
cd "$root"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The README's line, as written, in a fresh venv (its `pip` and `maturin` first on PATH).
line='pip install maturin && maturin build --release -m bindings/ffi/Cargo.toml && pip install target/wheels/snakeid-*.whl'
grep -qF "$line" README.md || { echo "README.md no longer shows: $line" >&2; exit 1; }
python3 -m venv "$work/user"
rm -rf target/wheels
PATH="$work/user/bin:$PATH" PIP_DISABLE_PIP_VERSION_CHECK=1 bash -c "$line"
echo "wheel: $(ls target/wheels/snakeid-*.whl) ($(du -h target/wheels/snakeid-*.whl | cut -f1))"
"$work/user/bin/pip" install --quiet --disable-pip-version-check pytest
cd "$work"
"$work/user/bin/python" - <<PY
import snakeid
assert snakeid.__file__.startswith("$work/user/"), snakeid.__file__
print("installed:", snakeid.__file__)
PY
SNAKEID_ROOT="$root" SNAKEID_CLI="$cli" GLIBC_TUNABLES=glibc.malloc.mmap_threshold=1048576 \
    "$work/user/bin/python" -m pytest -q -p no:cacheprovider "$root/tests/bindings/test_python.py"
# The README's two lines, as written (with a committed photo as photo.jpg).
cp "$root/tests/data/photos/rocket.jpg" photo.jpg
"$work/user/bin/python" - <<'PY'
import snakeid
answer = snakeid.Classifier().identify(open("photo.jpg", "rb").read(), "IN", 3)
assert answer.snake_verdict == snakeid.SnakeVerdict.NO_SNAKE and len(answer.predictions) == 3, answer
print("README lines:", answer.snake_verdict, [p.label for p in answer.predictions])
PY
