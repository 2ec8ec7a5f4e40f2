#!/usr/bin/env python3
"""The architectures of the SnakeCLEF papers (../shared/seeds/), each exported as snakeid expects it and run by
snakeid and by onnxruntime on the same inputs: does it load, how close are the logits, how fast, how big.

    cargo build --release -p snakeid --features gpu --example zoo
    python3 models/zoo/build_zoo.py [--only resnet18,squeezenet1_1] [--gpu] [--out models/zoo/RESULTS.md]

For each architecture (torchvision or timm, random weights: no pretrained weights are reachable offline; seeded):
 1. float ONNX ending in logits (models/tools/export_from_pytorch.py's export; BiT's StdConv2d folded). Random
    weights alone make poor test subjects (EfficientNet-B0's logits come out ~1e-14 apart: its activations vanish),
    so BatchNorm statistics are first re-estimated on the calibration photos (one pass in training mode, as after
    any architecture surgery), and the logits are scaled by a constant to a spread of ~3 on a real photo, so
    rankings are not noise;
 2. static int8 QDQ with the export tool's recipe (onnxruntime, u8/u8 per channel, percentile calibration on real
    photos; first conv, depthwise convs, Gemm and Softmax kept float);
 3. both run by onnxruntime 1 thread and by snakeid (core/examples/zoo.rs: tract with our operators, and with
    --gpu our wgpu backend) on 4 real photos preprocessed for the model; max |delta logit| against onnxruntime,
    top-5 agreement (inputs whose top-5 sets are equal), median latency of one input, file size.
A Markdown table goes to --out, raw numbers to the .json beside it. `--commit NAME` also writes NAME's int8 model
with onnxruntime's logits (literal QDQ evaluation) on the golden inputs under models/zoo/committed/ (checked in CI by tests/zoo.rs).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from types import SimpleNamespace

import numpy as np
import onnxruntime as ort
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "models", "tools"))
from export_from_pytorch import Preprocess, build, export, fold_std_conv, quantize  # noqa: E402

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
# name, source:arch, input side, resize policy, normalisation
ZOO = [
    ("bit_resnetv2_50x1", "timm:resnetv2_50x1_bit", 456, "stretch", HALF),
    ("resnet18", "torchvision:resnet18", 224, "crop", IMAGENET),
    ("resnext50_32x4d", "torchvision:resnext50_32x4d", 224, "crop", IMAGENET),
    ("vgg16", "torchvision:vgg16", 224, "crop", IMAGENET),
    ("vgg19_bn", "torchvision:vgg19_bn", 224, "crop", IMAGENET),
    ("alexnet", "torchvision:alexnet", 224, "crop", IMAGENET),
    ("squeezenet1_1", "torchvision:squeezenet1_1", 224, "crop", IMAGENET),
    ("densenet121", "torchvision:densenet121", 224, "crop", IMAGENET),
    ("shufflenet_v2_x1_0", "torchvision:shufflenet_v2_x1_0", 224, "crop", IMAGENET),
    ("inception_v3", "torchvision:inception_v3", 299, "crop", IMAGENET),
    ("efficientnet_b0", "torchvision:efficientnet_b0", 224, "crop", IMAGENET),
    ("levit_192", "timm:levit_192", 224, "crop", IMAGENET),
    ("coatnet_0", "timm:coatnet_0_rw_224", 224, "crop", IMAGENET),
    # Small stand-ins with ResNet18's and EfficientNet-B0's kinds of layer, committed with goldens for CI.
    ("resnet_standin", "standin:resnet", 224, "crop", IMAGENET),
    ("efficientnet_standin", "standin:efficientnet", 224, "crop", IMAGENET),
]


def standin(name):
    """ResNet18's layer kinds at a sixteenth of its channels (7x7/2 stem, 3x3 max pool, one BasicBlock per stage:
    3x3 convolutions at strides 1 and 2, 1x1/2 shortcuts, residual Adds), or EfficientNet-B0 at a quarter of its
    width and depth (MBConv: depthwise, SiLU, squeeze-excitation)."""
    from torchvision.models.resnet import BasicBlock
    if name == "efficientnet":
        from torchvision.models.efficientnet import EfficientNet, _efficientnet_conf
        setting, last = _efficientnet_conf("efficientnet_b0", width_mult=0.25, depth_mult=0.25)
        return EfficientNet(setting, 0.2, last_channel=last, num_classes=1000)
    nn = torch.nn

    def block(cin, cout, stride):
        down = None if stride == 1 and cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        return BasicBlock(cin, cout, stride, down)
    assert name == "resnet", name
    return nn.Sequential(nn.Conv2d(3, 16, 7, 2, 3, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1),
                         block(16, 16, 1), block(16, 32, 2), block(32, 64, 2), block(64, 128, 2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 1000))
TEST_PHOTOS = ["chelsea.png", "coffee.png", "rocket.jpg", "astronaut.webp"]
CALIB = ["astronaut.png", "brick.png", "camera.png", "coffee.png", "grass.png", "gravel.png", "horse.png",
         "hubble_deep_field.jpg", "motorcycle_left.png", "retina.jpg", "color.png", "ihc.png"]


class Scaled(torch.nn.Module):
    def __init__(self, net, k):
        super().__init__()
        self.net, self.k = net, k

    def forward(self, x):
        return self.net(x) * self.k


def recalibrate_batchnorm(net, batch):
    bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # a plain average over the pass
    if bns:
        net.train()
        with torch.no_grad():
            net(batch)
    net.eval()
    return len(bns)


def make(source, pre, photo, calib):
    torch.manual_seed(0)
    kw = {"aux_logits": False, "init_weights": True} if source.endswith("inception_v3") else {}
    if kw:
        import torchvision
        net = torchvision.models.inception_v3(weights=None, num_classes=1000, **kw)
    elif source.startswith("standin:"):
        net = standin(source.partition(":")[2])
    else:
        net = build(source, 1000)
    fold_std_conv(net)
    recalibrate_batchnorm(net, torch.from_numpy(np.concatenate([pre(p) for p in calib])))
    with torch.no_grad():
        spread = float(net(torch.from_numpy(pre(photo))).std())
    return Scaled(net, 3.0 / max(spread, 1e-6)).eval()


def ort_run(path, inputs, iters=5, exact=False):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    if exact:
        # No graph optimisation: every QuantizeLinear/DequantizeLinear evaluated literally, no fused int8 kernels.
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    t = time.perf_counter()
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    load = (time.perf_counter() - t) * 1e3
    logits = [s.run(None, {"input": x})[0][0] for x in inputs]
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        s.run(None, {"input": inputs[0]})
        times.append((time.perf_counter() - t) * 1e3)
    return {"load_ms": load, "logits": logits, "ms": float(np.median(times))}


def snakeid_run(exe, path, side, inputs, gpu, iters=5):
    with tempfile.NamedTemporaryFile(suffix=".f32") as f:
        f.write(np.concatenate([x.ravel() for x in inputs]).astype("<f4").tobytes())
        f.flush()
        cmd = [exe, path, str(side), str(side), "1000", f.name, str(iters)] + (["--gpu"] if gpu else [])
        p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return {"cpu": {"error": (p.stderr.strip().splitlines() or ["crashed"])[-1]}}
    return json.loads(p.stdout)


def compare(ref, got):
    if "error" in got:
        return {"loads": False, "error": got["error"][:300]}
    n = len(got["logits"])
    d = max(float(np.abs(np.array(a) - b).max()) for a, b in zip(got["logits"], ref["logits"][:n]))
    top5 = lambda v: set(np.argsort(-np.asarray(v))[:5])
    agree = sum(top5(a) == top5(b) for a, b in zip(got["logits"], ref["logits"][:n]))
    return {"loads": True, "max_dlogit": d, "top5_agree": f"{agree}/{n}", "ms": got["ms"], "load_ms": got["load_ms"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", help="comma-separated names")
    ap.add_argument("--gpu", action="store_true", help="also run snakeid's GPU backend")
    ap.add_argument("--exe", default=os.path.join(ROOT, "target", "release", "examples", "zoo"))
    ap.add_argument("--work", default=os.path.join(ROOT, "models", ".work", "zoo"))
    ap.add_argument("--out", default=os.path.join(ROOT, "models", "zoo", "RESULTS.md"))
    ap.add_argument("--commit", default="", help="comma-separated names whose int8 model and goldens to commit")
    ap.add_argument("--rerun", action="store_true",
                    help="reuse the models already exported to --work: only run and compare them again (no torch export)")
    ap.add_argument("--floor-only", action="store_true",
                    help="only (re)compute onnxruntime's fused int8 against its own literal QDQ for the models in --work")
    a = ap.parse_args()
    import skimage
    sk = os.path.join(os.path.dirname(skimage.__file__), "data")
    photos = [os.path.join(ROOT, "tests", "data", "photos", p) for p in TEST_PHOTOS]
    calib = [os.path.join(sk, p) for p in CALIB]
    os.makedirs(a.work, exist_ok=True)
    only = set(a.only.split(",")) if a.only else None
    commit = set(filter(None, a.commit.split(",")))
    results = json.load(open(a.out.replace(".md", ".json"))) if os.path.exists(a.out.replace(".md", ".json")) else {}
    for name, source, side, resize, (mean, std) in ZOO:
        if only and name not in only:
            continue
        print(f"== {name}", flush=True)
        pre = Preprocess(SimpleNamespace(size=(side, side), resize=resize, shorter_side=None, mean=mean, std=std))
        inputs = [pre(p) for p in photos]
        int8 = os.path.join(a.work, f"{name}.int8.onnx")
        if a.floor_only:
            if name in results and "int8" in results[name] and os.path.exists(int8):
                results[name]["int8"]["ort_vs_exact"] = compare(ort_run(int8, inputs, 1), ort_run(int8, inputs, 1, exact=True))
                json.dump(results, open(a.out.replace(".md", ".json"), "w"), indent=1)
                write_table(results, a.out)
            continue
        fp32 = os.path.join(a.work, f"{name}.onnx")
        if a.rerun and os.path.exists(fp32):
            row = {k: v for k, v in results.get(name, {}).items() if k not in ("float", "int8")}
            row.update({"source": source, "input": f"{side}x{side}"})
            run_and_compare(a, name, row, fp32, int8, side, inputs, commit, results.get(name, {}))
            results[name] = row
            json.dump(results, open(a.out.replace(".md", ".json"), "w"), indent=1)
            write_table(results, a.out)
            continue
        row = {"source": source, "input": f"{side}x{side}"}
        net = make(source, pre, photos[0], calib)
        row["params_m"] = sum(p.numel() for p in net.parameters()) / 1e6
        try:
            # timm's CoAtNet uses scaled_dot_product_attention, which ONNX has from opset 14.
            export(net, SimpleNamespace(size=(side, side), opset=14 if name == "coatnet_0" else 13), fp32)
        except (Exception, SystemExit) as e:
            row["export_error"] = str(e).strip().splitlines()[-1][:300] if str(e).strip() else type(e).__name__
            results[name] = row
            json.dump(results, open(a.out.replace(".md", ".json"), "w"), indent=1)
            write_table(results, a.out)
            continue
        with tempfile.TemporaryDirectory() as work:
            try:
                row["float_kept_nodes"] = quantize(fp32, int8, calib, pre, work, False)
            except Exception as e:
                row["quantize_error"] = str(e)[:300]
        run_and_compare(a, name, row, fp32, int8, side, inputs, commit)
        results[name] = row
        json.dump(results, open(a.out.replace(".md", ".json"), "w"), indent=1)
        write_table(results, a.out)


def run_and_compare(a, name, row, fp32, int8, side, inputs, commit, previous=None):
    """Runs the float and int8 models with onnxruntime and snakeid, and records the comparison in `row`."""
    previous = previous or {}
    for kind, path in [("float", fp32), ("int8", int8)]:
        if not os.path.exists(path):
            continue
        ref = ort_run(path, inputs)
        got = snakeid_run(a.exe, path, side, inputs, a.gpu)
        row[kind] = {"size_mb": os.path.getsize(path) / 2**20, "ort_ms": ref["ms"], "ort_load_ms": ref["load_ms"],
                     "cpu": compare(ref, got["cpu"])}
        if "gpu" in got:
            row[kind]["gpu"] = compare(ref, got["gpu"])
        elif "gpu" in previous.get(kind, {}):
            # A --rerun without --gpu keeps the GPU column of the run that measured it, marked as such.
            row[kind]["gpu"] = dict(previous[kind]["gpu"], earlier_run=True)
        if kind == "int8":
            row[kind]["ort_vs_exact"] = compare(ref, ort_run(path, inputs, 1, exact=True))
        print(f"   {kind}: {json.dumps(row[kind])}", flush=True)
        if kind == "int8" and name in commit:
            write_committed(name, path, side)


def write_committed(name, path, side):
    """The int8 model and onnxruntime's logits on the committed golden inputs (224x224, ImageNet normalisation),
    from onnxruntime's literal evaluation of the QDQ graph: its fused int8 kernels depart from the QDQ semantics by
    up to 2.3 logits on ShuffleNetV2 (u8 saturation in its AVX2 path), more than snakeid does (0.14)."""
    import shutil
    assert side == 224
    out = os.path.join(ROOT, "models", "zoo", "committed")
    os.makedirs(out, exist_ok=True)
    shutil.copy(path, os.path.join(out, f"{name}.int8.onnx"))
    gold = os.path.join(ROOT, "tests", "data", "golden")
    names = sorted(f[: -len(".input.f32")] for f in os.listdir(gold) if f.endswith(".input.f32"))
    inputs = [np.fromfile(os.path.join(gold, f"{n}.input.f32"), "<f4").reshape(1, 3, 224, 224) for n in names]
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    logits = {n: [float(v) for v in s.run(None, {"input": x})[0][0]] for n, x in zip(names, inputs)}
    json.dump({"model": f"{name}.int8.onnx", "onnxruntime": ort.__version__, "graph_optimization": "disabled (literal QDQ)",
               "logits": logits},
              open(os.path.join(out, f"{name}.int8.golden.json"), "w"))


def write_table(results, path):
    def cell(r, kind, side):
        k = r.get(kind)
        if not k:
            return "—"
        c = k.get(side)
        if not c:
            return "—"
        if not c["loads"]:
            return "**no**: " + c["error"].replace("|", "/")[:120]
        earlier = " (earlier run)" if c.get("earlier_run") else ""
        return f"yes, {c['max_dlogit']:.2g}, {c['top5_agree']}, {c['ms']:.0f} ms{earlier}"

    def floor(q):
        f = q.get("ort_vs_exact")
        return f"{f['max_dlogit']:.2g}, {f['top5_agree']}" if f and f.get("loads") else "—"

    lines = ["| model | input | params (M) | float size (MB) | float: snakeid CPU vs onnxruntime | float: onnxruntime | "
             "float: snakeid GPU | int8 size (MB) | int8: snakeid CPU vs onnxruntime | int8: onnxruntime | int8: snakeid GPU | "
             "int8: onnxruntime's own exact QDQ vs its fused kernels |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, source, *_ in ZOO:
        r = results.get(name)
        if not r:
            continue
        if "export_error" in r:
            lines.append(f"| {name} | {r['input']} | {r['params_m']:.1f} | export failed: {r['export_error'][:100]} |||||||")
            continue
        f, q = r.get("float", {}), r.get("int8", {})
        lines.append(f"| {name} (`{source}`) | {r['input']} | {r['params_m']:.1f} | {f.get('size_mb', 0):.1f} | {cell(r, 'float', 'cpu')} | "
                     f"{f.get('ort_ms', 0):.0f} ms | {cell(r, 'float', 'gpu')} | {q.get('size_mb', 0):.1f} | {cell(r, 'int8', 'cpu')} | "
                     f"{q.get('ort_ms', 0):.0f} ms | {cell(r, 'int8', 'gpu')} | {floor(q)} |")
    head = ("Cells: loads?, max |delta logit| against onnxruntime on the same input, top-5 agreement (photos whose top-5 "
            "sets are equal, of 4), median latency of one input, 1 thread. Random weights (seeded); logits scaled to a "
            "spread of ~3 after re-estimating BatchNorm statistics on the calibration photos. GPU cells compare the GPU "
            "backend with onnxruntime (2 photos). The last column is the noise floor of int8: onnxruntime's fused int8 "
            "kernels against its own literal evaluation of the same QDQ graph (no graph optimisation). GPU runs are on lavapipe (Mesa's software Vulkan: the kernels on the same 2 CPU "
            "cores), so their latencies are not GPU latencies.\n\n")
    open(path, "w").write("# Model zoo: the seed papers' architectures in snakeid\n\n" + head + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
