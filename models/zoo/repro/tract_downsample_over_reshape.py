#!/usr/bin/env python3
"""Minimal reproduction of a tract 0.23.9 bug that stops LeViT (timm levit_192) from loading: declutter pulls a
strided Slice (tract's Downsample) over the Reshape before it and fails with "Invalid axis" instead of declining.

    python3 models/zoo/repro/tract_downsample_over_reshape.py /tmp/subsample.onnx [--qdq]
    cargo run --release -p snakeid --example zoo -- /tmp/subsample.onnx 8 8 48 /tmp/subsample.x.f32 1
    -> {"cpu":{"error":"... running pass declutter: declutter node #9 \"s.stride-axis-1\" Downsample: Pulling #9
        \"s.stride-axis-1\" Downsample over #1 \"g.0\" Reshape: Invalid axis"}}

onnxruntime runs it (first values 0, 1, 2, 6, 7, 8). snakeid works around it since session 17
(core/src/backend/downsample.rs); both variants are committed beside this script and tested there. The graph is LeViT's attention downsampling,
x.view(B, R, R, C)[:, ::2, ::2], as PyTorch exports it: Reshape, then Slice with steps 2 on the new axes.
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h

out = next((a for a in sys.argv[1:] if not a.startswith("--")), "subsample.onnx")
qdq = "--qdq" in sys.argv  # as in LeViT's int8 export: QuantizeLinear -> DequantizeLinear between the two
nodes = [h.make_node("Reshape", ["x", "grid"], ["g" if not qdq else "g0"])]  # [1,3,8,8] -> [1,8,8,3]
if qdq:
    nodes += [h.make_node("QuantizeLinear", ["g0", "qs", "qz"], ["gq"]), h.make_node("DequantizeLinear", ["gq", "qs", "qz"], ["g"])]
nodes += [
    h.make_node("Slice", ["g", "starts", "ends", "axes", "steps"], ["s"]),  # [:, ::2, ::2] -> [1,4,4,3]
    h.make_node("Reshape", ["s", "flat"], ["logits"]),  # [1,48]
]
inits = [h.make_tensor(n, T.INT64, [len(v)], v) for n, v in
         [("grid", [1, 8, 8, 3]), ("starts", [0, 0]), ("ends", [8, 8]), ("axes", [1, 2]), ("steps", [2, 2]), ("flat", [1, 48])]]
inits += [h.make_tensor("qs", T.FLOAT, [], [1.0]), h.make_tensor("qz", T.UINT8, [], [0])] if qdq else []
graph = h.make_graph(nodes, "levit_subsample", [h.make_tensor_value_info("x", T.FLOAT, [1, 3, 8, 8])],
                     [h.make_tensor_value_info("logits", T.FLOAT, [1, 48])], inits)
model = h.make_model(graph, opset_imports=[h.make_opsetid("", 13)])
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, out)
np.arange(192, dtype=np.float32).tofile(out.replace(".onnx", ".x.f32"))
print(f"wrote {out} and its input {out.replace('.onnx', '.x.f32')}")
