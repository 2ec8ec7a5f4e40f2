#!/usr/bin/env python3
"""A ResNet50-v2 "BiT" bundle at 456x456 (SnakeCLEF 2020's architecture) with seeded random weights, for the GPU
backend's whole-model checks and benchmarks. Architecture from timm (`resnetv2_50x1_bit`), weight standardisation
folded into plain convolutions (tract refuses the training-mode BatchNormalization timm exports), float32, logits.
Labels are the default bundle's 1000 ImageNet classes (so the bundle is valid; its answers are meaningless).

    python3 models/tools/make_bit_bundle.py --out target/bit456.snkb [--snakeid target/release/snakeid]

Needs torch, timm, onnx; a built snakeid CLI. The bundle (~95 MB) is not committed.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import onnx
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_from_pytorch import ROOT, fold_std_conv  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", type=int, default=456)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--snakeid", default=os.path.join(ROOT, "target", "release", "snakeid"))
    a = ap.parse_args()
    import timm

    torch.manual_seed(a.seed)
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
    folded = fold_std_conv(model)
    print(f"folded {folded} StdConv2d layers", file=sys.stderr)
    with tempfile.TemporaryDirectory() as work:
        onnx_path = os.path.join(work, "bit.onnx")
        torch.onnx.export(model, torch.zeros(1, 3, a.size, a.size), onnx_path, input_names=["input"],
                          output_names=["logits"], opset_version=13, dynamo=False)
        onnx.checker.check_model(onnx_path)
        labels = os.path.join(work, "default")
        subprocess.run([a.snakeid, "bundle", "unpack", "--out", labels], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([a.snakeid, "bundle", "create", "--onnx", onnx_path, "--labels", os.path.join(labels, "labels.csv"),
                        "--size", f"{a.size}", "--resize", "stretch", "--mean", "0.5,0.5,0.5", "--std", "0.5,0.5,0.5",
                        "--name", "bit-r50x1-random", "--precision", "float32",
                        "--description", f"ResNet50-v2 BiT (timm resnetv2_50x1_bit), random weights, seed {a.seed}",
                        "--out", a.out], check=True)


if __name__ == "__main__":
    main()
