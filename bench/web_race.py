#!/usr/bin/env python3
"""The race in the browser: snakeid-wasm (web/dist, built by web/build.sh) against onnxruntime-web (bench/web, npm) on
the same model.onnx (unpacked from the default bundle) and the same photos, in one headless Chromium, one thread,
alternating engines each round. Prints p50 model inference, p50 photo to answer per photo, cold start, and ratios.

    python3 bench/web_race.py --cli target/release/snakeid PHOTO... [--iterations 20] [--rounds 2]
"""

import argparse
import shutil
import statistics
import subprocess
import time
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests/web"))
import browser  # noqa: E402

ORT_FILES = ["ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"]


def stage(site, cli, photos):
    """One folder served on 127.0.0.1: the race page, both engines, the model and the photos."""
    ort_dist = ROOT / "bench/web/node_modules/onnxruntime-web/dist"
    if not ort_dist.exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=ROOT / "bench/web", check=True)
    for d in ["snakeid", "ort"]:
        (site / d).mkdir(parents=True)
    for f in ["snakeid_wasm.js", "snakeid_wasm_bg.wasm"]:
        shutil.copy(ROOT / "web/dist" / f, site / "snakeid" / f)
    for f in ORT_FILES:
        shutil.copy(ort_dist / f, site / "ort" / f)
    for f in ["race.html", "race.js"]:
        shutil.copy(ROOT / "bench/web" / f, site / f)
    with tempfile.TemporaryDirectory() as unpacked:
        subprocess.run([str(cli), "bundle", "unpack", "--out", unpacked], check=True, capture_output=True)
        for f in ["model.onnx", "manifest.json"]:
            shutil.copy(Path(unpacked) / f, site / f)
    names = []
    for i, p in enumerate(photos):
        names.append(f"photo{i}{p.suffix}")
        shutil.copy(p, site / names[-1])
    return names


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cli", type=Path, required=True, help="a snakeid CLI with the embedded default bundle (to unpack model.onnx)")
    ap.add_argument("photos", nargs="+", type=Path)
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp)
        names = stage(site, args.cli, args.photos)
        server = browser.Server(site, browser.free_port()).start()
        driver = browser.chromium(1280, 800)
        try:
            print(f"Chromium {browser.version(driver)}; onnxruntime-web {ort_version()}; {args.iterations} calls per round, {args.rounds} rounds")
            res = {}
            for r in range(args.rounds):
                order = ["snakeid", "ort"] if r % 2 == 0 else ["ort", "snakeid"]
                for engine in order:
                    # A fresh page: the cold start is compiling and loading, from the browser's HTTP cache.
                    driver.get(f"{server.url}race.html?engine={engine}")
                    driver.execute_script("return 1")
                    wait_module(driver)
                    res.setdefault((engine, "cold"), []).append(driver.execute_async_script(
                        "const done = arguments[0]; race.cold().then(done, e => done('failed: ' + e))"))
                    for name in names:
                        w = driver.execute_async_script("const done = arguments[2]; race.warm(arguments[0], arguments[1]).then(done, e => done({error: String(e)}))",
                                                        name, args.iterations)
                        assert "error" not in w, w
                        res.setdefault((engine, name, "inference"), []).append(statistics.median(w["inference"]))
                        res.setdefault((engine, name, "total"), []).append(statistics.median(w["total"]))
            report(res, names, args.photos)
        finally:
            driver.quit()
            server.stop()


def wait_module(driver):
    # (implicitly_wait only sets how long element lookups wait: it never slept here, so this loop spun.)
    for _ in range(200):
        if driver.execute_script("return typeof globalThis.race === 'object'"):
            return
        time.sleep(0.05)
    raise RuntimeError("race page did not load")


def ort_version():
    import json
    return json.loads((ROOT / "bench/web/package.json").read_text())["dependencies"]["onnxruntime-web"]


def report(res, names, photos):
    fmt = lambda v, d=1: f"{min(v):.{d}f}–{max(v):.{d}f}" if len(v) > 1 else f"{v[0]:.{d}f}"
    ratio = lambda a, b: fmt([x / y for x, y in zip(a, b)], 2)
    print(f"{'':34} {'snakeid ms':>14} {'onnxruntime-web ms':>20} {'ratio':>12}")
    cs, co = res["snakeid", "cold"], res["ort", "cold"]
    print(f"{'cold start':34} {fmt(cs):>14} {fmt(co):>20} {ratio(cs, co):>12}")
    for name, photo in zip(names, photos):
        for what in ["inference", "total"]:
            s, o = res["snakeid", name, what], res["ort", name, what]
            label = f"{photo.name}: {'model inference p50' if what == 'inference' else 'photo to answer p50'}"
            print(f"{label:34} {fmt(s):>14} {fmt(o):>20} {ratio(s, o):>12}")


if __name__ == "__main__":
    main()
