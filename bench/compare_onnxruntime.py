#!/usr/bin/env python3
"""The race: snakeid against onnxruntime on one machine, in one run, same model, photo and thread count.

    python3 bench/compare_onnxruntime.py PHOTO [--iterations N] [--threads T] [--rounds R] [--bundle B] [--snakeid PATH]

onnxruntime side, like a careful competitor, in its own process: PIL decode with `draft` (JPEG DCT scaling),
torchvision-style resize and centre crop, `intra_op_num_threads = T`, the bundle's own model.onnx.
snakeid side: `snakeid bench --json` (release build) on the same photo. Prints p50s, cold start, peak RSS and the
ratios snakeid / onnxruntime (lower is better for snakeid).

This machine's speed drifts (shared VM): the two sides run alternately, R rounds (default 3), each round a fresh
process per side, the side that goes first swapped every round; the table shows each side's median over the rounds,
the median of the per-round ratios and their range. Both sides make WARMUP (4) unmeasured calls, the first of them
the timed first call. onnxruntime's peak RSS is its process's less what the Python interpreter held after importing
numpy, onnxruntime and PIL (measured in the same process before the session loads), so that the row compares the
engines rather than Python with the CLI.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WARMUP = 4  # unmeasured calls per side, the first call (timed apart) among them


def p(values, q):
    v = sorted(values)
    k = max(1, -(-q * len(v) // 100))  # nearest rank, as snakeid bench
    return v[int(k) - 1]


def ort_child(model, manifest, photo, n, threads):
    """Runs in a fresh process so that its peak RSS is onnxruntime's alone (plus the Python interpreter)."""
    t_import = time.perf_counter()
    import numpy as np
    import onnxruntime as ort
    from PIL import Image
    import_ms = (time.perf_counter() - t_import) * 1e3
    import_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    spec = json.load(open(manifest))["input"]
    w_in, h_in = spec["width"], spec["height"]
    shorter = spec["resize"].get("shorter_side", max(w_in, h_in))
    mean = np.array(spec["mean"], np.float32)
    std = np.array(spec["std"], np.float32)

    def preprocess(path):
        img = Image.open(path)
        img.draft("RGB", (shorter, shorter))
        img = img.convert("RGB")
        w, h = img.size
        size = (shorter, int(shorter * h / w)) if w <= h else (int(shorter * w / h), shorter)
        img = img.resize(size, Image.BILINEAR)
        w, h = img.size
        l, t = int(round((w - w_in) / 2)), int(round((h - h_in) / 2))
        x = (np.asarray(img.crop((l, t, l + w_in, t + h_in)), np.float32) / 255.0 - mean) / std
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None])

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    t = time.perf_counter()
    s = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    load = (time.perf_counter() - t) * 1e3
    t = time.perf_counter()
    s.run(None, {name: preprocess(photo)})
    first = (time.perf_counter() - t) * 1e3
    for _ in range(WARMUP - 1):
        s.run(None, {name: preprocess(photo)})
    dec, inf, tot = [], [], []
    for _ in range(n):
        t0 = time.perf_counter()
        x = preprocess(photo)
        t1 = time.perf_counter()
        logits = s.run(None, {name: x})[0]
        e = np.exp(logits - logits.max())  # softmax, as snakeid's postprocess
        e /= e.sum()
        t2 = time.perf_counter()
        dec.append((t1 - t0) * 1e3)
        inf.append((t2 - t1) * 1e3)
        tot.append((t2 - t0) * 1e3)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"version": ort.__version__, "import_ms": import_ms, "load_ms": load, "first_call_ms": first,
                      "decode_preprocess": p(dec, 50), "inference": p(inf, 50), "total": p(tot, 50),
                      "total_p90": p(tot, 90), "peak_rss_mb": rss - import_rss, "import_rss_mb": import_rss}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("photo")
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--bundle")
    ap.add_argument("--snakeid", default=os.path.join(ROOT, "target", "release", "snakeid"))
    ap.add_argument("--ort-child", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.ort_child:
        return ort_child(a.ort_child[0], a.ort_child[1], a.photo, a.iterations, a.threads)

    bundle = ["--bundle", a.bundle] if a.bundle else []
    names = ["cold start: load + compile + first call (ms)", "decode + preprocess p50 (ms)", "model inference p50 (ms)",
             "photo to answer p50 (ms)", "photo to answer p90 (ms)", "peak RSS (MB; onnxruntime's less Python's)"]
    rounds = []
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([a.snakeid, "bundle", "unpack", *bundle, "--out", d], check=True, capture_output=True)
        def ort_side():
            return json.loads(subprocess.run(
                [sys.executable, __file__, a.photo, "--iterations", str(a.iterations), "--threads", str(a.threads),
                 "--ort-child", os.path.join(d, "model.onnx"), os.path.join(d, "manifest.json")],
                check=True, capture_output=True, text=True).stdout)

        def snakeid_side():
            return json.loads(subprocess.run(
                [a.snakeid, "bench", *bundle, "--image", a.photo, "--iterations", str(a.iterations),
                 "--threads", str(a.threads), "--warmup", str(WARMUP), "--json"],
                check=True, capture_output=True, text=True).stdout)

        for r in range(a.rounds):
            # The side that runs first swapped every round: neither always meets the machine fresh (or warm).
            if r % 2 == 0:
                o, s = ort_side(), snakeid_side()
            else:
                s, o = snakeid_side(), ort_side()
            st = s["stages_ms"]
            rounds.append([
                (o["load_ms"] + o["first_call_ms"], s["cold_start_ms"] + s["first_call_ms"]),
                (o["decode_preprocess"], st["decode"]["p50"] + st["preprocess"]["p50"]),
                (o["inference"], st["inference"]["p50"]),
                (o["total"], st["total"]["p50"]),
                (o["total_p90"], st["total"]["p90"]),
                (o["peak_rss_mb"], s["peak_rss_mb"]),
            ])
    med = lambda v: sorted(v)[(len(v) - 1) // 2]  # lower median: a value that was measured
    print(f"photo {os.path.basename(a.photo)}, {a.threads} thread(s), {a.iterations} calls, {a.rounds} alternating "
          f"rounds (first side swapped each round), {WARMUP} warm-up calls each; onnxruntime {o['version']} "
          f"(+ {o['import_ms']:.0f} ms and {o['import_rss_mb']:.0f} MB to import numpy/onnxruntime/PIL, not counted)")
    print(f"| {'':46} | onnxruntime | snakeid | ratio | ratio range |")
    print(f"|{'-' * 48}|-------------|---------|-------|-------------|")
    for i, name in enumerate(names):
        ov, sv = med([r[i][0] for r in rounds]), med([r[i][1] for r in rounds])
        ratios = [r[i][1] / r[i][0] for r in rounds]
        print(f"| {name:46} | {ov:11.2f} | {sv:7.2f} | {med(ratios):5.2f} | {min(ratios):5.2f}–{max(ratios):5.2f} |")


if __name__ == "__main__":
    main()
