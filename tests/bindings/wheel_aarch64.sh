#!/usr/bin/env bash
# The Python wheel for aarch64 Linux: cross-built with maturin (linked by the aarch64 gcc), installed by pip for that
# platform into a folder, and run under qemu-user as a Cortex-A76 by Debian's own aarch64 Python 3.11 (its packages
# unpacked into target/, not installed): the README's Python lines on a photo given by path, and the answer on a real
# cobra against the x86-64 CLI's. The wheel has the ARM tests' features (threads on, as the CLI has them) in their
# profile, so that tract is the one tests/arm/run.sh compiled for aarch64 (tests/architecture/check_one_build.py
# checks it; without threads it compiled tract again: 4 minutes). A release wheel is `maturin build --release
# --target aarch64-unknown-linux-gnu -m bindings/ffi/Cargo.toml`: the same code, optimised the same way.
# Usage: tests/bindings/wheel_aarch64.sh X86_SNAKEID   (needs what tests/arm/run.sh needs, and apt for the arm64 Python)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cli="$(realpath "$1")"
cd "$root"
source tests/arm/env.sh
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Debian's aarch64 Python, unpacked (the packages' own files; ctypes needs libffi).
py="$root/target/python-aarch64"
if [ ! -x "$py/usr/bin/python3.11" ]; then
  dpkg --print-foreign-architectures | grep -qx arm64 || { dpkg --add-architecture arm64 && apt-get update -qq; }
  mkdir -p "$work/debs" && (cd "$work/debs" && apt-get download -qq python3.11-minimal:arm64 libpython3.11-minimal:arm64 \
    libpython3.11-stdlib:arm64 libffi8:arm64 libexpat1:arm64 zlib1g:arm64)
  rm -rf "$py" && mkdir -p "$py"
  for deb in "$work"/debs/*.deb; do dpkg -x "$deb" "$py"; done
fi

python3 -m venv "$work/build"
"$work/build/bin/pip" install --quiet --disable-pip-version-check maturin
PATH="$work/build/bin:$PATH" maturin build --profile test-opt --target "$target" -m bindings/ffi/Cargo.toml \
  --no-default-features --features embedded-default,threads --out "$work/wheels"
wheel=$(ls "$work"/wheels/snakeid-*.whl)
echo "aarch64 wheel: $(basename "$wheel") ($(du -h "$wheel" | cut -f1))"
case "$wheel" in *-py3-none-manylinux*_aarch64.whl) ;; *) echo "not an aarch64 py3-none wheel: $wheel" >&2; exit 1 ;; esac
platform=$(basename "$wheel" .whl | sed 's/.*-py3-none-//')
python3 -m pip install --quiet --disable-pip-version-check --no-deps --only-binary=:all: --platform "$platform" \
  --target "$work/site" "$wheel"
# ELF e_machine 183: AArch64.
python3 -c 'import sys; h = open(sys.argv[1], "rb").read(20); sys.exit(h[:4] != b"\x7fELF" or int.from_bytes(h[18:20], "little") != 183)' \
  "$work/site/snakeid/_native/libsnakeid_ffi.so" || { echo "the installed library is not aarch64" >&2; exit 1; }

# The README's Python lines as written, a committed photo as photo.jpg, then a real cobra against the x86-64 CLI.
cd "$work"
cp "$root/tests/data/photos/rocket.jpg" photo.jpg
lines="$(awk '/^ *```python/ {inside=1; next} inside && /^ *```/ {exit} inside {sub(/^  /, ""); print}' "$root/README.md")"
cobras="$root/../shared/data/snakes/ph14/val/Naja philippinensis"
[ -d "$cobras" ] || { echo "error: $cobras is missing: the real photos live in ../shared/data beside the project" >&2; exit 1; }
# A clear answer (P(snake) 0.99, Indian cobra 0.97 on x86-64), far from every line the two arithmetics could straddle.
cobra="$cobras/philippine_cobra__naja_philippinensis__val_0002.jpg"
expected="$("$cli" identify "$cobra" --country PH --top 3 | grep -Ev '^  \([0-9.]+ ms')"
cat > check.py <<PY
$lines
assert answer.verdict == "none" and len(answer.predictions) == 5, answer
import platform
assert platform.machine() == "aarch64", platform.machine()
cobra = classifier.identify("$cobra", country="PH", top_k=3)
open("cobra.txt", "w").write(str(cobra))
print(repr(cobra))
PY
QEMU_CPU=cortex-a76 qemu-aarch64 -L /usr/aarch64-linux-gnu \
  -E LD_LIBRARY_PATH="$py/usr/lib/aarch64-linux-gnu:$py/lib/aarch64-linux-gnu" -E PYTHONHOME="$py/usr" \
  -E PYTHONPATH="$work/site" "$py/usr/bin/python3.11" check.py
# The human answer (species, verdict, warning, country) as the x86-64 CLI prints it; percentages may differ within
# the ARM and x86 arithmetics' spread, so digits are not compared.
norm() { sed -E 's/[0-9.]+%/N%/g'; }
if [ "$(norm < cobra.txt)" != "$(norm <<<"$expected")" ]; then
  printf 'the aarch64 wheel answers %s otherwise than the x86-64 CLI:\n%s\n--- x86-64 CLI:\n%s\n' "$cobra" "$(cat cobra.txt)" "$expected" >&2
  exit 1
fi
cat cobra.txt && echo
echo "aarch64 wheel: installed by pip for $platform, the README's lines and a real cobra's answer (as the x86-64 CLI's) under qemu"
