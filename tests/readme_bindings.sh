#!/usr/bin/env bash
# Runs the README's "Generate bindings" block exactly as written (the fenced block after `<!-- ci: bindings -->`),
# then loads the generated Python module against the release library it came from and identifies a photo.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
block="$(awk '/<!-- ci: bindings -->/ {found=1; next} found && /```sh/ {inside=1; next} inside && /```/ {exit} inside {sub(/^  /, ""); print}' README.md)"
[ -n "$block" ] || { echo "README.md has no bindings block after <!-- ci: bindings -->" >&2; exit 1; }
rm -rf generated
echo "$block"
bash -euo pipefail -c "$block"
for f in generated/python/snakeid.py generated/kotlin/org/snakeid/snakeid.kt generated/swift/SnakeID.swift; do
  [ -s "$f" ] || { echo "the README's bindings command did not write $f" >&2; exit 1; }
done
cp target/release/libsnakeid_ffi.so generated/python/
python3 - <<'PY'
import sys
sys.path.insert(0, "generated/python")
import snakeid
a = snakeid.Classifier().identify(open("tests/data/photos/chelsea.png", "rb").read(), "IN", 3)
assert a.snake_verdict == snakeid.SnakeVerdict.NO_SNAKE and len(a.predictions) == 3, a
print("README bindings: generated from the release library; Python answers", a.snake_verdict, a.predictions[0].scientific_name)
PY
rm -rf generated
