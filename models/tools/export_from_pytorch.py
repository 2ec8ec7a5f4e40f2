#!/usr/bin/env python3
"""From a fine-tuned PyTorch (torchvision or timm) classifier to a verified snakeid bundle.

    python3 models/tools/export_from_pytorch.py --arch timm:resnetv2_50x1_bit --checkpoint best.pth \\
        --labels labels.csv --prior counts.csv --size 456 --resize stretch --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5 \\
        --photos my_photos/ --out my.snkb

Steps (each one checked):
 1. Build the architecture with as many outputs as labels.csv has rows, load the checkpoint (a state dict, or a
    dict holding one under "state_dict"/"model"; a DataParallel "module." prefix is stripped), export to ONNX
    ending in logits (opset 13). A final Softmax is refused: snakeid applies softmax itself.
 2. Unless --float: static int8 QDQ quantization with onnxruntime (u8 weights per channel and u8 activations,
    percentile calibration) on half of --photos, preprocessed exactly as the bundle will preprocess them. The
    first convolution, depthwise convolutions and the classifier stay float (--quantize-all to quantize them too).
    Softmax is never quantized, nor is a matrix product reading its output (tract mis-optimises Softmax followed
    by QuantizeLinear).
 3. The accuracy change, measured on the other half of the photos under onnxruntime: top-1 agreement and top-5
    overlap between the float and int8 models, max and mean |delta logit|; when the photos sit in one folder per
    class (named as in labels.csv), top-1 accuracy of both.
 4. `snakeid bundle create` packs and verifies the bundle (digests, label count = outputs, prior covers every
    species, tract compiles the model), then `snakeid identify` runs it on the held-out photos: its top-1 must
    equal onnxruntime's for the same model.
 5. A report (Markdown and JSON) next to the bundle.

Needs: pip install torch torchvision onnx onnxruntime pillow numpy (and timm for timm architectures); a built
snakeid (`cargo build --release -p snakeid-cli`, or --snakeid PATH).
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
import torch
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGE_EXT = (".jpg", ".jpeg", ".png", ".webp")


def triple(s):
    v = [float(x) for x in s.split(",")]
    if len(v) != 3:
        raise argparse.ArgumentTypeError("three comma-separated numbers")
    return v


def build(arch, num_classes):
    kind, _, name = arch.partition(":")
    if kind == "torchvision":
        import torchvision
        return torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    if kind == "timm":
        import timm
        return timm.create_model(name, pretrained=False, num_classes=num_classes)
    sys.exit(f"--arch must be torchvision:NAME or timm:NAME, got {arch!r}")


def fold_std_conv(model):
    """Replaces timm's weight-standardised convolutions (StdConv2d, as in BiT) with plain Conv2d holding the
    standardised weights: identical outputs, and the export no longer carries the training-mode
    BatchNormalization (5 outputs) that tract refuses. Returns how many were folded."""
    import torch.nn.functional as F
    folded = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child).__name__ != "StdConv2d":
                continue
            w = child.weight.detach()
            flat = w.reshape(1, child.out_channels, -1)
            std = F.batch_norm(flat, None, None, training=True, momentum=0.0, eps=child.eps).reshape_as(w)
            conv = torch.nn.Conv2d(child.in_channels, child.out_channels, child.kernel_size, child.stride, child.padding,
                                   child.dilation, child.groups, bias=child.bias is not None)
            with torch.no_grad():
                conv.weight.copy_(std)
                if child.bias is not None:
                    conv.bias.copy_(child.bias.detach())
            setattr(parent, name, conv)
            folded += 1
    return folded


def load_checkpoint(model, path):
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    state = {k.removeprefix("module."): v for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        sys.exit(f"checkpoint does not fit the architecture: missing {missing[:5]}, unexpected {unexpected[:5]}")


class Preprocess:
    """The bundle's preprocessing (see core/src/photo/preprocess.rs), with PIL's antialiased bilinear resize."""

    def __init__(self, a):
        self.w, self.h = a.size
        self.resize, self.shorter = a.resize, a.shorter_side or -(-max(a.size) * 8 // 7)
        self.mean, self.std = np.array(a.mean, np.float32), np.array(a.std, np.float32)

    def __call__(self, path):
        img = Image.open(path).convert("RGB")
        if self.resize == "stretch":
            img = img.resize((self.w, self.h), Image.BILINEAR)
        else:
            w, h = img.size
            size = (self.shorter, int(self.shorter * h / w)) if w <= h else (int(self.shorter * w / h), self.shorter)
            img = img.resize(size, Image.BILINEAR)
            w, h = img.size
            l, t = int(round((w - self.w) / 2)), int(round((h - self.h) / 2))
            img = img.crop((l, t, l + self.w, t + self.h))
        x = (np.asarray(img, np.float32) / 255.0 - self.mean) / self.std
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def photos_of(folder):
    out = []
    for dirpath, _, files in os.walk(folder):
        out += [os.path.join(dirpath, f) for f in sorted(files) if f.lower().endswith(IMAGE_EXT)]
    return sorted(out)


def export(model, a, path):
    # Opset 13 unless asked (--opset 14 for models using scaled_dot_product_attention, e.g. timm's CoAtNet and ViTs).
    torch.onnx.export(model, torch.zeros(1, 3, a.size[1], a.size[0]), path, input_names=["input"], output_names=["logits"],
                      opset_version=getattr(a, "opset", 13), dynamo=False)
    m = onnx.load(path)
    onnx.checker.check_model(m)
    last = [n for n in m.graph.node if m.graph.output[0].name in n.output][0]
    if last.op_type in ("Softmax", "LogSoftmax"):
        sys.exit(f"the model ends in {last.op_type}: export the logits (snakeid applies softmax itself)")


def quantize(fp32, int8, calib, pre, work, quantize_all):
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input": pre(p)} for p in calib])

        def get_next(self):
            return next(self.it, None)

    prep = os.path.join(work, "pre.onnx")
    quant_pre_process(fp32, prep)
    graph = onnx.load(prep).graph
    keep = [n.name for n in graph.node if n.op_type == "Softmax"]
    # A quantized consumer would still put a QuantizeLinear right after the Softmax (tract mis-optimises that pair:
    # CoAtNet-0's logits came out 6.7 off), so attention's probabilities-times-values product stays float too.
    softmax_out = {o for n in graph.node if n.op_type == "Softmax" for o in n.output}
    keep += [n.name for n in graph.node if n.op_type in ("MatMul", "Gemm") and softmax_out & set(n.input)]
    if not quantize_all:
        convs = [n for n in graph.node if n.op_type == "Conv"]
        keep += [convs[0].name] if convs else []
        keep += [n.name for n in convs if any(at.name == "group" and at.i > 1 for at in n.attribute)]
        keep += [n.name for n in graph.node if n.op_type == "Gemm"]
    quantize_static(prep, int8, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QUInt8,
                    calibrate_method=CalibrationMethod.Percentile, extra_options={"CalibPercentile": 99.99},
                    nodes_to_exclude=keep)
    return len(keep)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", required=True, help="torchvision:NAME or timm:NAME")
    ap.add_argument("--checkpoint", help="fine-tuned weights (omit only to try the pipeline with random weights)")
    ap.add_argument("--labels", required=True)
    ap.add_argument("--prior", help="species-by-country CSV (SnakeCLEF layout) or a table from `snakeid prior build`")
    ap.add_argument("--size", required=True, type=lambda s: tuple(int(x) for x in (s.split("x") if "x" in s else (s, s))))
    ap.add_argument("--resize", choices=["crop", "stretch"], default="crop")
    ap.add_argument("--shorter-side", type=int)
    ap.add_argument("--mean", type=triple, required=True)
    ap.add_argument("--std", type=triple, required=True)
    ap.add_argument("--photos", required=True, help="calibration and check photos (optionally one folder per class)")
    ap.add_argument("--float", action="store_true", help="keep the model float (no int8 quantization)")
    ap.add_argument("--opset", type=int, default=13, help="ONNX opset (14 for scaled_dot_product_attention)")
    ap.add_argument("--quantize-all", action="store_true")
    ap.add_argument("--name", default="my-snake-model")
    ap.add_argument("--version", default="0.1.0")
    ap.add_argument("--snakeid", default=os.path.join(ROOT, "target", "release", "snakeid"))
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    labels = list(csv.DictReader(open(a.labels)))
    n = len(labels)
    by_name = {}
    for r in labels:
        for key in (r["scientific_name"], r["label"], r["class_index"]):
            by_name[key.strip().lower().replace("_", " ")] = int(r["class_index"])
    photos = photos_of(a.photos)
    if len(photos) < 4:
        sys.exit(f"--photos has {len(photos)} photos: at least 4 are needed (half calibrate, half check)")
    calib, held = photos[0::2], photos[1::2]
    pre = Preprocess(a)

    torch.manual_seed(0)
    model = build(a.arch, n)
    if a.checkpoint:
        load_checkpoint(model, a.checkpoint)
    else:
        print("warning: no --checkpoint, exporting random weights (pipeline check only)", file=sys.stderr)
    model.eval()
    if fold_std_conv(model):
        print("folded weight standardisation (StdConv2d) into plain convolutions", file=sys.stderr)
    report = {"arch": a.arch, "classes": n, "photos": {"calibration": len(calib), "check": len(held)}}
    with tempfile.TemporaryDirectory() as work:
        fp32 = os.path.join(work, "fp32.onnx")
        export(model, a, fp32)
        chosen = fp32
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        s32 = ort.InferenceSession(fp32, opts, providers=["CPUExecutionProvider"])
        if not a.float:
            int8 = os.path.join(work, "int8.onnx")
            report["kept_float_nodes"] = quantize(fp32, int8, calib, pre, work, a.quantize_all)
            chosen = int8
        s = ort.InferenceSession(chosen, opts, providers=["CPUExecutionProvider"])
        rows = []
        for p in held:
            x = pre(p)
            l32, lq = s32.run(None, {"input": x})[0][0], s.run(None, {"input": x})[0][0]
            truth = by_name.get(os.path.basename(os.path.dirname(p)).lower().replace("_", " "))
            rows.append((p, l32, lq, truth))
        agree = np.mean([r[1].argmax() == r[2].argmax() for r in rows])
        top5 = np.mean([len(set(np.argsort(-r[1])[:5]) & set(np.argsort(-r[2])[:5])) / 5 for r in rows])
        d = np.concatenate([np.abs(r[1] - r[2]) for r in rows])
        report["float_vs_exported"] = {"top1_agreement": float(agree), "top5_overlap": float(top5),
                                       "max_abs_dlogit": float(d.max()), "mean_abs_dlogit": float(d.mean())}
        labelled = [r for r in rows if r[3] is not None]
        if labelled:
            report["top1_accuracy"] = {"float": float(np.mean([r[1].argmax() == r[3] for r in labelled])),
                                       "exported": float(np.mean([r[2].argmax() == r[3] for r in labelled])),
                                       "photos": len(labelled)}
        args = [a.snakeid, "bundle", "create", "--onnx", chosen, "--labels", a.labels, "--size", f"{a.size[0]}x{a.size[1]}",
                "--resize", a.resize, "--mean", ",".join(map(str, a.mean)), "--std", ",".join(map(str, a.std)),
                "--name", a.name, "--version", a.version, "--precision", "float32" if a.float else "int8-qdq", "--out", a.out]
        args += ["--prior", a.prior] if a.prior else []
        args += ["--shorter-side", str(a.shorter_side)] if a.shorter_side else []
        done = subprocess.run(args, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"snakeid refused the bundle: {done.stderr.strip()}")
        snake = [int(r["class_index"]) for r in labels if r["is_snake"].strip().lower() in ("true", "1", "yes")]
        out = subprocess.run([a.snakeid, "identify", "--bundle", a.out, "--json", "--top", "1", *held],
                             capture_output=True, text=True, check=True).stdout.splitlines()
        same = sum(json.loads(line)["predictions"][0]["class_index"] == snake[int(np.argmax(r[2][snake]))]
                   for line, r in zip(out, rows))
        report["snakeid_vs_onnxruntime_top1"] = {"equal": same, "of": len(rows)}
    report["bundle"] = a.out
    with open(a.out + ".report.json", "w") as f:
        json.dump(report, f, indent=2)
    fv = report["float_vs_exported"]
    md = [f"# {a.name} {a.version}: export report", "",
          f"- architecture `{a.arch}`, {n} classes, input {a.size[0]}x{a.size[1]} ({a.resize}), "
          f"{'float32' if a.float else 'int8 QDQ'}; calibration on {len(calib)} photos, checks on {len(held)}",
          f"- float vs exported (onnxruntime): top-1 agreement {fv['top1_agreement']:.3f}, top-5 overlap "
          f"{fv['top5_overlap']:.3f}, max |dlogit| {fv['max_abs_dlogit']:.3f}, mean {fv['mean_abs_dlogit']:.4f}",
          f"- snakeid (tract) top-1 species equals onnxruntime's (argmax over the snake classes) on {same}/{len(rows)} check photos"]
    if labelled:
        acc = report["top1_accuracy"]
        md.append(f"- top-1 accuracy on {acc['photos']} labelled photos: float {acc['float']:.3f}, exported {acc['exported']:.3f}")
    open(a.out + ".report.md", "w").write("\n".join(md) + "\n")
    print("\n".join(md))
    if same != len(rows):
        sys.exit("snakeid and onnxruntime disagree on some photos: see the report")


if __name__ == "__main__":
    main()
