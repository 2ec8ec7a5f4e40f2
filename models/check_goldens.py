#!/usr/bin/env python3
"""Re-checks the committed goldens with real onnxruntime: the model inside the embedded default bundle, run on the
committed input tensors, must give the committed logits (so the goldens the Rust tests compare against are true).

    python3 models/check_goldens.py [SNAKEID_BINARY]   # needs: pip install onnxruntime==1.32.0 numpy
                                                       # default binary: target/release/snakeid
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, "tests", "data", "golden")
# The onnxruntime version that made them: equal to float rounding.
TOL = 1e-3


def main():
    ort.set_default_logger_severity(3)
    g = json.load(open(os.path.join(GOLDEN, "golden.json")))
    passed = failed = 0
    with tempfile.TemporaryDirectory() as d:
        binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "release", "snakeid")
        subprocess.run([binary, "bundle", "unpack", "--out", d], check=True, capture_output=True)
        model = os.path.join(d, "model.onnx")
        sha = hashlib.sha256(open(model, "rb").read()).hexdigest()
        if sha != g["model_sha256"]:
            sys.exit(f"goldens were made for model {g['model_sha256']}, the bundle has {sha}")
        if ort.__version__ != g["onnxruntime"]:
            # Another version is not the reference the goldens claim: CI pins the one that made them (issue 38:
            # this used to loosen the tolerance to 0.5 and pass).
            sys.exit(f"goldens were made with onnxruntime {g['onnxruntime']}, this is {ort.__version__}: install that version")
        tol = TOL
        exact = ort.SessionOptions()
        exact.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        sessions = {"int8_logits": ort.InferenceSession(model, providers=["CPUExecutionProvider"]),
                    "qdq_exact_logits": ort.InferenceSession(model, exact, providers=["CPUExecutionProvider"])}
        for p in g["photos"]:
            x = np.fromfile(os.path.join(GOLDEN, p["input"]), "<f4").reshape(1, 3, 224, 224)
            for key, s in sessions.items():
                got = s.run(None, {"input": x})[0][0]
                diff = float(np.abs(got - np.array(p[key], np.float32)).max())
                ok = diff <= tol
                passed += ok
                failed += not ok
                print(f"{'ok  ' if ok else 'FAIL'} {p['photo']} {key}: max |diff| {diff:.2e}")
    print(f"golden: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
