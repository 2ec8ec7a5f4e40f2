"""Checks `snakeid eval` against scikit-learn on the same predictions: top-1, top-5, macro-F1 and per-class F1,
with and without the country prior. Usage: python3 tests/eval/check_f1_sklearn.py target/test-opt/snakeid
"""

import csv
import json
import os
import subprocess
import sys
import tempfile

from sklearn.metrics import f1_score, precision_recall_fscore_support

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PHOTOS = os.path.join(ROOT, "tests", "data", "photos")
# Species names and labels of the default bundle, in the ways people write them (scientific, common, class index).
LABELS = ["Naja naja", "Crotalus cerastes", "Indian cobra", "63", "Dendroaspis angusticeps", "Boa constrictor",
          "Hydrophis platurus", "Carphophis amoenus", "Nerodia sipedon", "Eastern diamondback rattlesnake"]
COUNTRIES = ["IN", "US", "BR", "AU", "unknown", "India", ""]


def main(cli):
    photos = sorted(p for p in os.listdir(PHOTOS) if p.rsplit(".", 1)[-1] in ("png", "jpg", "webp"))
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data.csv")
        with open(data, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["path", "label", "country"])
            for i in range(36):
                w.writerow([os.path.join(PHOTOS, photos[i % len(photos)]), LABELS[(i * 7) % len(LABELS)], COUNTRIES[i % len(COUNTRIES)]])
        report_path = os.path.join(tmp, "report.json")
        subprocess.run([cli, "eval", data, "--json", report_path, "--plot", os.path.join(tmp, "f1.svg")], check=True, stdout=subprocess.DEVNULL)
        report = json.load(open(report_path))
    preds = report["predictions"]
    y_true = [p["label"] for p in preds]
    checks = 0
    for key in ["without_prior", "with_prior"]:
        ranked = [p[key] for p in preds]
        y_pred = [r[0] for r in ranked]
        m = report[key]
        labels = sorted(set(y_true) | set(y_pred))
        want_macro = f1_score(y_true, y_pred, average="macro", zero_division=0)
        prec, rec, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
        assert abs(m["macro_f1"] - want_macro) < 1e-12, (key, m["macro_f1"], want_macro)
        assert [c["class_index"] for c in m["per_class"]] == labels
        for c, p_, r_, f_, s_ in zip(m["per_class"], prec, rec, f1, support):
            assert abs(c["f1"] - f_) < 1e-12 and abs(c["precision"] - p_) < 1e-12 and abs(c["recall"] - r_) < 1e-12, (key, c)
            assert c["support"] == s_
        top1 = sum(t == r[0] for t, r in zip(y_true, ranked)) / len(y_true)
        top5 = sum(t in r[:5] for t, r in zip(y_true, ranked)) / len(y_true)
        assert abs(m["top1"] - top1) < 1e-12 and abs(m["top5"] - top5) < 1e-12, (key, m["top1"], top1, m["top5"], top5)
        print(f"{key}: n={len(y_true)} top-1 {top1:.4f} top-5 {top5:.4f} macro-F1 {want_macro:.6f} = scikit-learn")
        checks += 1
    print(f"eval vs scikit-learn: {checks} passed, 0 failed")


if __name__ == "__main__":
    main(sys.argv[1])
