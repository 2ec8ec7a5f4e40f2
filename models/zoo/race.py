#!/usr/bin/env python3
"""The zoo's int8 (or float) models raced against onnxruntime in one run, alternating, several rounds: snakeid's
median latency over onnxruntime's per round (one thread each, the same 4 photos), with the range over the rounds;
optionally a second snakeid build (`--baseline`, e.g. the previous commit's runner) in the same rounds; and each
snakeid's max |delta logit| against onnxruntime's literal evaluation of the QDQ graph (graph optimisation off), the
int8 ground truth, beside onnxruntime's own fused kernels' distance to it.

    cargo build --release -p snakeid --example zoo
    python3 models/zoo/race.py [--only resnet18,vgg16] [--rounds 3] [--kind int8] [--baseline OLD_ZOO_EXE]

Reads the models build_zoo.py exported to models/.work/zoo/ (needs torch only there, not here).
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from build_zoo import ROOT, ZOO, TEST_PHOTOS, ort_run, snakeid_run  # noqa: E402
sys.path.insert(0, os.path.join(ROOT, "models", "tools"))
from export_from_pytorch import Preprocess  # noqa: E402
from types import SimpleNamespace  # noqa: E402


def dlogit(a, b):
    return max(float(np.abs(np.asarray(x) - np.asarray(y)).max()) for x, y in zip(a, b))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--kind", choices=["int8", "float"], default="int8")
    ap.add_argument("--exe", default=os.path.join(ROOT, "target", "release", "examples", "zoo"))
    ap.add_argument("--baseline", help="another build of the zoo runner, raced in the same rounds")
    ap.add_argument("--work", default=os.path.join(ROOT, "models", ".work", "zoo"))
    a = ap.parse_args()
    only = set(a.only.split(",")) if a.only else None
    photos = [os.path.join(ROOT, "tests", "data", "photos", p) for p in TEST_PHOTOS]
    exes = [("snakeid", a.exe)] + ([("baseline", a.baseline)] if a.baseline else [])
    print(f"| model | snakeid / onnxruntime ({a.rounds} rounds) |" + (" baseline / onnxruntime |" if a.baseline else "")
          + " onnxruntime ms | max |dlogit| vs exact QDQ: snakeid" + (", baseline" if a.baseline else "") + ", onnxruntime |")
    print("|---|---|" + ("---|" if a.baseline else "") + "---|---|")
    for name, _, side, resize, (mean, std) in ZOO:
        path = os.path.join(a.work, f"{name}.int8.onnx" if a.kind == "int8" else f"{name}.onnx")
        if (only and name not in only) or not os.path.exists(path):
            continue
        pre = Preprocess(SimpleNamespace(size=(side, side), resize=resize, shorter_side=None, mean=mean, std=std))
        inputs = [pre(p) for p in photos]
        exact = ort_run(path, inputs, 1, exact=a.kind == "int8")
        ratios = {k: [] for k, _ in exes}
        ort_ms, dl = [], {}
        for _ in range(a.rounds):
            ref = ort_run(path, inputs)
            ort_ms.append(ref["ms"])
            dl["onnxruntime"] = dlogit(ref["logits"], exact["logits"])
            for k, exe in exes:
                got = snakeid_run(exe, path, side, inputs, False)["cpu"]
                if "error" in got:
                    ratios[k].append(float("nan"))
                    dl[k] = got["error"][:60]
                    continue
                ratios[k].append(got["ms"] / ref["ms"])
                dl[k] = dlogit(got["logits"], exact["logits"])
        cell = lambda r: f"{np.median(r):.2f} ({min(r):.2f}–{max(r):.2f})"
        fmt = lambda v: f"{v:.3g}" if isinstance(v, float) else v
        print(f"| {name} | {cell(ratios['snakeid'])} |" + (f" {cell(ratios['baseline'])} |" if a.baseline else "")
              + f" {np.median(ort_ms):.1f} | " + ", ".join(fmt(dl[k]) for k in [k for k, _ in exes] + ["onnxruntime"]) + " |",
              flush=True)


if __name__ == "__main__":
    main()
