#!/usr/bin/env python3
"""A ResNet50-v2 "BiT" bundle at 456x456 (SnakeCLEF 2020's architecture) with seeded random weights, for the GPU
backend's whole-model checks and benchmarks. Architecture from timm (`resnetv2_50x1_bit`), weight standardisation
folded into plain convolutions (tract refuses the training-mode BatchNormalization timm exports), float32, logits.
Labels are the default bundle's 1000 ImageNet classes (so the bundle is valid; its answers are meaningless).

    python3 models/tools/make_bit_bundle.py --out target/bit456.snkb [--snakeid target/release/snakeid]

Two ways, same graph:
  --from-timm   export timm's model (needs torch and timm) and also refresh models/bit/resnetv2_50x1_bit-456.skeleton.onnx:
                that export with its convolution weights removed (~0.3 MB, committed);
  (default)     the committed skeleton with seeded random convolution weights (needs only numpy and onnx: what CI runs).
Needs a built snakeid CLI. The bundle (~100 MB) is not committed.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SKELETON = os.path.join(ROOT, "models", "bit", "resnetv2_50x1_bit-456.skeleton.onnx")


def is_conv_weight(init):
    return init.data_type == onnx.TensorProto.FLOAT and len(init.dims) == 4 and int(np.prod(init.dims)) >= 1024


def strip(model):
    """Removes the convolution weights (kept: names, shapes, everything else)."""
    for init in model.graph.initializer:
        if is_conv_weight(init):
            init.ClearField("raw_data")
            del init.float_data[:]
    return model


def fill(model, seed):
    """Seeded random convolution weights: standardised per output channel, as BiT's weight standardisation leaves
    them; the classifier head (a 1x1 convolution) at He scale."""
    rng = np.random.default_rng(seed)
    for init in model.graph.initializer:
        if not is_conv_weight(init):
            continue
        shape = tuple(init.dims)
        w = rng.standard_normal(shape).astype(np.float32)
        if "head" in init.name:
            w *= np.float32(np.sqrt(2.0 / np.prod(shape[1:])))
        else:
            flat = w.reshape(shape[0], -1)
            w = ((flat - flat.mean(1, keepdims=True)) / np.sqrt(flat.var(1, keepdims=True) + 1e-8)).reshape(shape)
        init.CopyFrom(numpy_helper.from_array(w.astype(np.float32), init.name))
    return model


def export_timm(size, seed, path):
    import torch
    import timm
    from export_from_pytorch import fold_std_conv

    torch.manual_seed(seed)
    model = timm.create_model("resnetv2_50x1_bit", pretrained=False, num_classes=1000)
    # timm zero-initialises the head (all logits 0: every class ties) and the last norm of each block; give every
    # layer random weights of a realistic scale so that the logits are spread out and top-5 is well defined.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    torch.nn.init.normal_(m.bias, std=0.1)
            elif isinstance(m, torch.nn.GroupNorm):
                torch.nn.init.uniform_(m.weight, 0.5, 1.5)
                torch.nn.init.normal_(m.bias, std=0.1)
    model.eval()
    print(f"folded {fold_std_conv(model)} StdConv2d layers", file=sys.stderr)
    torch.onnx.export(model, torch.zeros(1, 3, size, size), path, input_names=["input"], output_names=["logits"],
                      opset_version=13, dynamo=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--from-timm", action="store_true", help="export from timm (and refresh the committed skeleton)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--snakeid", default=os.path.join(ROOT, "target", "release", "snakeid"))
    a = ap.parse_args()
    size = 456
    with tempfile.TemporaryDirectory() as work:
        onnx_path = os.path.join(work, "bit.onnx")
        if a.from_timm:
            sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
            export_timm(size, a.seed, onnx_path)
            os.makedirs(os.path.dirname(SKELETON), exist_ok=True)
            onnx.save(strip(onnx.load(onnx_path)), SKELETON)
        else:
            onnx.save(fill(onnx.load(SKELETON), a.seed), onnx_path)
        onnx.checker.check_model(onnx_path)
        labels = os.path.join(work, "default")
        subprocess.run([a.snakeid, "bundle", "unpack", "--out", labels], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([a.snakeid, "bundle", "create", "--onnx", onnx_path, "--labels", os.path.join(labels, "labels.csv"),
                        "--size", f"{size}", "--resize", "stretch", "--mean", "0.5,0.5,0.5", "--std", "0.5,0.5,0.5",
                        "--name", "bit-r50x1-random", "--precision", "float32",
                        "--description", f"ResNet50-v2 BiT (timm resnetv2_50x1_bit), random weights, seed {a.seed}",
                        "--out", a.out], check=True)


if __name__ == "__main__":
    main()
