"""The answer on real snakes: a bundle run by `snakeid identify` over the field photographs of
../shared/data/snakes/ph14 and the photos without snakes of ../shared/data/negatives, per species and overall.

Figures (issue 33): the verdicts (snake / possible / none), the venomous warning on venomous and on harmless snakes,
V->H (a venomous snake whose top-1 species is harmless, or answered `none`: either way nobody is told to worry), the
SnakeCLEF 2023/2024 track-1 score (evaluate.py's, through tests/eval/check_eval.py's transcription; a species the
bundle does not know counts as wrong), and on the photos without snakes, how many are answered `none`.

With --max-none, --min-venomous-warned and --min-negatives-none it fails (exit 1) when a figure passes its bound: CI
guards the gate with them on the val split.

Usage: python3 bench/real_snakes.py --cli target/release/snakeid [--bundle B] [--country PH] [--split val]
                                    [--json OUT.json] [--max-none F] [--min-venomous-warned F] [--min-negatives-none F]
"""

import argparse
import csv
import json
import os
import platform
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(os.path.dirname(ROOT), "shared", "data")
sys.path.insert(0, os.path.join(ROOT, "tests", "eval"))
from check_eval import psc, track1  # noqa: E402  (evaluate.py's arithmetic, transcribed once)

# ImageNet classes 26-51 (newts, frogs, turtles, lizards, chameleons, crocodilians): photos of them may be `possible`.
LOOKALIKES = range(26, 52)


def require(path):
    if not os.path.exists(path):
        sys.exit(f"error: {path} is missing: the real photos live in ../shared/data beside the project")
    return path


def snake_photos(splits):
    root = require(os.path.join(DATA, "snakes", "ph14"))
    species = {r["scientific_name"]: r for r in csv.DictReader(open(os.path.join(root, "species.csv")))}
    out = []
    for split in splits:
        for name in sorted(os.listdir(require(os.path.join(root, split)))):
            if name not in species:
                sys.exit(f"error: {root}/{split}/{name} is not in species.csv")
            folder = os.path.join(root, split, name)
            out += [(os.path.join(folder, f), name, species[name]["venomous"] == "true") for f in sorted(os.listdir(folder))]
    if not out:
        sys.exit(f"error: no photos under {root} for splits {splits}")
    return out


def negative_photos():
    root = require(os.path.join(DATA, "negatives"))
    rows = list(csv.DictReader(open(os.path.join(root, "imagenet-samples.csv"))))
    return [(os.path.join(root, "imagenet-samples", r["file"]), int(r["imagenet_class"])) for r in rows]


def identify(cli, photos, bundle, country):
    """One `snakeid identify --json` answer per photo, in order; any photo that fails is an error here."""
    answers = []
    for i in range(0, len(photos), 400):  # argv stays short
        cmd = [cli, "identify", "--json", "--top", "5", *(["--bundle", bundle] if bundle else []),
               *(["--country", country] if country else []), *photos[i:i + 400]]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"error: {' '.join(cmd[:6])} ... exited {p.returncode}: {p.stderr.strip()[:500]}")
        answers += [json.loads(line) for line in p.stdout.splitlines()]
    if len(answers) != len(photos):
        sys.exit(f"error: {len(photos)} photos, {len(answers)} answers")
    return answers


def pct(n, d):
    return 100.0 * n / d if d else float("nan")


def figures(rows):
    """rows: (species, venomous, answer). The figures of one group of photos."""
    n = len(rows)
    verdicts = {v: sum(a["snake_verdict"] == v for _, _, a in rows) for v in ("snake", "possible", "none")}
    ven = [a for _, v, a in rows if v]
    harm = [a for _, v, a in rows if not v]
    unwarned_venomous = sum(not a["venomous_warning"] for a in ven)
    v_to_h = sum(a["snake_verdict"] == "none" or not a["predictions"][0]["venomous"] for a in ven)
    return {
        "photos": n,
        "verdicts": verdicts,
        "none_pct": pct(verdicts["none"], n),
        "venomous": len(ven),
        "venomous_none_pct": pct(sum(a["snake_verdict"] == "none" for a in ven), len(ven)),
        "venomous_warned_pct": pct(len(ven) - unwarned_venomous, len(ven)),
        "harmless": len(harm),
        "harmless_warned_pct": pct(sum(a["venomous_warning"] for a in harm), len(harm)),
        "v_to_h_pct": pct(v_to_h, len(ven)),
        "views_run_mean": sum(a.get("views_run", 1) for _, _, a in rows) / n,
    }


def track1_score(rows):
    """evaluate.py's track 1 on the top-1 species; `none` answers keep their top-1 (the JSON's ranking)."""
    from sklearn.metrics import f1_score
    truth = [s for s, _, _ in rows]
    pred = [a["predictions"][0]["scientific_name"] for _, _, a in rows]
    venomous = {s for s, v, _ in rows if v} | {a["predictions"][0]["scientific_name"] for _, _, a in rows
                                               if a["predictions"][0]["venomous"]}
    if not any(v for _, v, _ in rows) or all(v for _, v, _ in rows):
        return None
    f1 = round(f1_score(truth, pred, average="macro", zero_division=0) * 100, 2)
    return float(track1(f1, psc(truth, pred, venomous)))


def cpu_features():
    try:
        flags = next(l for l in open("/proc/cpuinfo") if l.startswith("flags")).split()
        keep = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni") if f in flags]
        model = next(l for l in open("/proc/cpuinfo") if l.startswith("model name")).split(":", 1)[1].strip()
        return f"{model}; {' '.join(keep)}"
    except (OSError, StopIteration):
        return platform.machine()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cli", required=True)
    ap.add_argument("--bundle")
    ap.add_argument("--country", default="PH", help="country for every snake photo (default PH; '' for none)")
    ap.add_argument("--split", default="train,val")
    ap.add_argument("--json")
    ap.add_argument("--max-none", type=float, help="fail when more than this %% of snakes are answered none")
    ap.add_argument("--min-venomous-warned", type=float, help="fail when fewer than this %% of venomous snakes are warned")
    ap.add_argument("--min-negatives-none", type=float, help="fail when fewer than this %% of non-reptile photos are none")
    a = ap.parse_args()

    snakes = snake_photos(a.split.split(","))
    negatives = negative_photos()
    answers = identify(a.cli, [p for p, _, _ in snakes], a.bundle, a.country or None)
    neg_answers = identify(a.cli, [p for p, _ in negatives], a.bundle, None)
    rows = [(s, v, ans) for (_, s, v), ans in zip(snakes, answers)]

    print(f"bundle: {a.bundle or 'embedded default'}; country {a.country or 'none'}; splits {a.split}; CPU: {cpu_features()}")
    head = f"{'species':<32} {'n':>4} {'snake':>6} {'poss.':>6} {'none':>6} {'warned':>7} {'V->H':>6}"
    print(head)
    per_species = {}
    for s in sorted({s for s, _, _ in rows}):
        group = [r for r in rows if r[0] == s]
        f = figures(group)
        per_species[s] = f
        warned = f["venomous_warned_pct"] if group[0][1] else f["harmless_warned_pct"]
        vh = f"{f['v_to_h_pct']:5.1f}%" if group[0][1] else "     -"
        print(f"{s + (' (V)' if group[0][1] else ''):<32} {f['photos']:>4} {f['verdicts']['snake']:>6} "
              f"{f['verdicts']['possible']:>6} {f['verdicts']['none']:>6} {warned:>6.1f}% {vh}")
    overall = figures(rows)
    overall["track1"] = track1_score(rows)
    nonrep = [ans for (_, c), ans in zip(negatives, neg_answers) if c not in LOOKALIKES]
    looks = [ans for (_, c), ans in zip(negatives, neg_answers) if c in LOOKALIKES]
    neg = {
        "non_reptile_photos": len(nonrep),
        "non_reptile_none_pct": pct(sum(x["snake_verdict"] == "none" for x in nonrep), len(nonrep)),
        "non_reptile_warned_pct": pct(sum(x["venomous_warning"] for x in nonrep), len(nonrep)),
        "lookalike_photos": len(looks),
        "lookalike_verdicts": {v: sum(x["snake_verdict"] == v for x in looks) for v in ("snake", "possible", "none")},
        "views_run_mean": sum(x.get("views_run", 1) for x in neg_answers) / len(neg_answers),
    }
    o = overall
    print(f"\nall {o['photos']} snakes: verdicts {o['verdicts']}; none {o['none_pct']:.1f}% "
          f"(venomous {o['venomous_none_pct']:.1f}%); venomous warned {o['venomous_warned_pct']:.1f}%, "
          f"harmless warned {o['harmless_warned_pct']:.1f}%; V->H {o['v_to_h_pct']:.1f}%; track-1 {o['track1']}; "
          f"views per photo {o['views_run_mean']:.2f}")
    print(f"{neg['non_reptile_photos']} non-reptile photos: none {neg['non_reptile_none_pct']:.1f}%, warned "
          f"{neg['non_reptile_warned_pct']:.1f}%; {neg['lookalike_photos']} look-alikes (ImageNet 26-51): "
          f"{neg['lookalike_verdicts']}; views per photo {neg['views_run_mean']:.2f}")
    if a.json:
        with open(a.json, "w") as f:
            photos = [{"image": x["image"], "species": sp, "snake_verdict": x["snake_verdict"], "venomous_warning": x["venomous_warning"],
                       "snake_probability": x["snake_probability"], "lookalike_probability": x.get("lookalike_probability"),
                       "view": x.get("view")} for sp, x in [(s, ans) for s, _, ans in rows] + [("", x) for x in neg_answers]]
            json.dump({"overall": overall, "per_species": per_species, "negatives": neg, "cpu": cpu_features(),
                       "photos": photos}, f, indent=1)

    failed = []
    if a.max_none is not None and o["none_pct"] > a.max_none:
        failed.append(f"none on {o['none_pct']:.1f}% of snakes, above the bound {a.max_none}%")
    if a.max_none is not None and o["venomous_none_pct"] > a.max_none:
        failed.append(f"none on {o['venomous_none_pct']:.1f}% of venomous snakes, above the bound {a.max_none}%")
    if a.min_venomous_warned is not None and o["venomous_warned_pct"] < a.min_venomous_warned:
        failed.append(f"venomous warned {o['venomous_warned_pct']:.1f}%, below the bound {a.min_venomous_warned}%")
    if a.min_negatives_none is not None and neg["non_reptile_none_pct"] < a.min_negatives_none:
        failed.append(f"non-reptile photos none {neg['non_reptile_none_pct']:.1f}%, below the bound {a.min_negatives_none}%")
    for f in failed:
        print(f"FAIL: {f}", file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
