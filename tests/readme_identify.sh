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
