#!/usr/bin/env bash
# Runs the README's first command exactly as written (the first line of its first fenced block: identify a photo with
# the embedded default bundle, a release build) and checks its answer: the cat of tests/data/photos/chelsea.png is no
# snake, with the country it was given.
set -euo pipefail
cd "$(dirname "$0")/.."
line="$(awk '/^```sh/ {inside=1; next} inside {print; exit}' README.md)"
command="${line%%#*}"
case "$command" in
  "cargo run --release -p snakeid-cli -- identify "*) ;;
  *) echo "README.md's first command is no longer the CLI's identify: $line" >&2; exit 1 ;;
esac
echo "$command"
answer="$(bash -euo pipefail -c "$command")"
echo "$answer"
grep -q "chelsea.png: no snake detected" <<<"$answer" || { echo "the README's first command did not say 'no snake detected'" >&2; exit 1; }
grep -q "country IN (prior applied)" <<<"$answer" || { echo "the README's first command did not use --country IN" >&2; exit 1; }
echo "README: the first command ran as written"

# The README's example answer ("What it answers") is what the CLI just built prints for that photo: the same lines,
# with digits compared by count only (an AVX-512 CPU rounds the int8 steps apart from this AVX2 one; the verdict,
# the species, their order, venom status and the warning must be the same).
block="$(awk '/<!-- ci: example -->/ {found=1; next} found && /^```/ {if (inside) exit; inside=1; next} inside {print}' README.md)"
example="$(sed -n 's/^\$ snakeid //p' <<<"$block")"
[ -n "$example" ] || { echo "README.md has no example after <!-- ci: example -->" >&2; exit 1; }
shown="$(sed '1d' <<<"$block")"
printed="$(eval "target/release/snakeid $example" | grep -v '^  ([0-9]* ms')"
if [ "$(tr '0-9' '#' <<<"$shown")" != "$(tr '0-9' '#' <<<"$printed")" ]; then
  diff <(echo "$shown") <(echo "$printed") >&2 || true
  echo "README.md's example answer is not what the CLI prints" >&2; exit 1
fi
echo "README: the example answer is the CLI's"
