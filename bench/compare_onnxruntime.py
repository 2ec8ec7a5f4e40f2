#!/usr/bin/env python3
"""snakeid against onnxruntime, one machine, one run, one thread, the same int8 model and photo.

    python3 bench/compare_onnxruntime.py PHOTO [ITERATIONS]

onnxruntime side, like a careful competitor: PIL decode with `draft` (JPEG DCT scaling) + torchvision-style resize
and crop, one intra-op thread. snakeid side: `cargo run --release --example measure` (embedded bundle).
Prints both and the ratios snakeid / onnxruntime (lower is better for snakeid).
"""
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "models"))
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def preprocess(path):
    img = Image.open(path)
    img.draft("RGB", (256, 256))
    img = img.convert("RGB")
    w, h = img.size
    size = (256, int(256 * h / w)) if w <= h else (int(256 * w / h), 256)
    img = img.resize(size, Image.BILINEAR)
    w, h = img.size
    l, t = int(round((w - 224) / 2)), int(round((h - 224) / 2))
    x = (np.asarray(img.crop((l, t, l + 224, t + 224)), np.float32) / 255.0 - MEAN) / STD
    return x.transpose(2, 0, 1)[None]


def main():
    photo = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    snakeid = [os.path.join(ROOT, "target", "release", "snakeid")]
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "snakeid-cli", "-p", "snakeid", "--example", "measure"], check=True, cwd=ROOT)
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(snakeid + ["bundle", "unpack", "--out", d], check=True, capture_output=True)
        model = os.path.join(d, "model.onnx")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        t = time.perf_counter()
        s = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        load = (time.perf_counter() - t) * 1e3
        t = time.perf_counter()
        s.run(None, {"input": preprocess(photo)})
        first = (time.perf_counter() - t) * 1e3
        dec, inf, tot = [], [], []
        for _ in range(n):
            t0 = time.perf_counter()
            x = preprocess(photo)
            t1 = time.perf_counter()
            s.run(None, {"input": x})
            t2 = time.perf_counter()
            dec.append((t1 - t0) * 1e3)
            inf.append((t2 - t1) * 1e3)
            tot.append((t2 - t0) * 1e3)
    ort_cold, ort_inf, ort_tot = load + first, statistics.median(inf), statistics.median(tot)
    print(f"onnxruntime {ort.__version__}: load {load:.1f} ms, first call {first:.1f} ms, median decode+preprocess "
          f"{statistics.median(dec):.2f} ms, inference {ort_inf:.2f} ms, total {ort_tot:.2f} ms")
    out = subprocess.run([os.path.join(ROOT, "target", "release", "examples", "measure"), photo, str(n)],
                         check=True, capture_output=True, text=True).stdout
    print("snakeid: " + out.strip().replace("\n", "; "))
    cold = float(re.search(r"cold start .*?: ([\d.]+) ms", out).group(1))
    first_call = float(re.search(r"first call ([\d.]+) ms", out).group(1))
    inf_s = float(re.search(r"inference ([\d.]+) ms", out).group(1))
    tot_s = float(re.search(r"total ([\d.]+) ms", out).group(1))
    print(f"ratios snakeid/onnxruntime: inference {inf_s / ort_inf:.2f}, photo-to-answer {tot_s / ort_tot:.2f}, "
          f"cold start (load + first call) {(cold + first_call) / ort_cold:.2f}")


if __name__ == "__main__":
    main()
