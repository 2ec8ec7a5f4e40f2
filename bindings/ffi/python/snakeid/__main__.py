"""`python -m snakeid PHOTO...`: the CLI's `identify`, from the installed package (no Rust, no CLI binary needed)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional

from . import Classifier, SnakeIdError


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m snakeid", description="Identify the snake in each photo, offline.")
    ap.add_argument("photos", nargs="+", help="JPEG, PNG or WebP files")
    ap.add_argument("--country", help="where the photos were taken: ISO code or English name (default: no prior)")
    ap.add_argument("--location", metavar="LAT,LON", help="where you are, in decimal degrees: its country is used when "
                    "no --country is given and the photo has no GPS position")
    ap.add_argument("--top", type=int, default=5, help="how many species to rank (default 5)")
    ap.add_argument("--bundle", help="a .snkb bundle or bundle folder (default: the package's own)")
    ap.add_argument("--json", action="store_true", help="one JSON object per photo, as `snakeid identify --json`")
    a = ap.parse_args(argv)
    location = None
    if a.location:
        try:
            location = tuple(float(x) for x in a.location.split(","))
            if len(location) != 2:
                raise ValueError
        except ValueError:
            print(f"error: --location {a.location!r} is not LAT,LON in decimal degrees", file=sys.stderr)
            return 2
    try:
        classifier = Classifier(a.bundle)
    except SnakeIdError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    failed = 0
    for path in a.photos:
        try:
            answer = classifier.identify(path, a.country, a.top, location)
        except (SnakeIdError, OSError) as e:
            failed += 1
            message = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            if a.json:
                print(json.dumps({"image": path, "error": {"kind": type(e).__name__, "message": message}}))
            else:
                print(f"error: {path}: {message}", file=sys.stderr)
            continue
        print(json.dumps(answer.to_dict()) if a.json else answer)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
