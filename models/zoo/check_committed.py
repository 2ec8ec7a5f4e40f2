#!/usr/bin/env python3
"""CI: onnxruntime (its literal QDQ evaluation, no graph optimisation) still gives the logits committed beside each model in models/zoo/committed/ (what tests/zoo.rs
compares snakeid with), on the golden inputs of tests/data/golden/."""
import glob
import json
import os

import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
gold = os.path.join(ROOT, "tests", "data", "golden")
checked = 0
for path in sorted(glob.glob(os.path.join(ROOT, "models", "zoo", "committed", "*.golden.json"))):
    g = json.load(open(path))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # as the goldens were made
    s = ort.InferenceSession(os.path.join(os.path.dirname(path), g["model"]), so, providers=["CPUExecutionProvider"])
    for photo, want in g["logits"].items():
        x = np.fromfile(os.path.join(gold, f"{photo}.input.f32"), "<f4").reshape(1, 3, 224, 224)
        got = s.run(None, {"input": x})[0][0]
        d = float(np.abs(got - np.array(want, np.float32)).max())
        assert d < 1e-4, f"{g['model']} {photo}: onnxruntime {ort.__version__} now differs from the committed logits by {d}"
        checked += 1
print(f"zoo goldens: {checked} checks against onnxruntime {ort.__version__} passed")
