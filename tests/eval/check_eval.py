"""Checks `snakeid eval` and `snakeid calibrate` against independent references on the same predictions:
top-1, top-5, macro-F1 and per-class F1 against scikit-learn; the venomous/harmless confusions and the SnakeCLEF
2023/2024 track-1 score against a transcription of the organisers' evaluate.py; the expected calibration error
against the usual 15-bin computation; and calibrate's temperature against scipy's minimiser of the same NLL.
Usage: python3 tests/eval/check_eval.py target/test-opt/snakeid
"""

import csv
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.metrics import f1_score, precision_recall_fscore_support

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PHOTOS = os.path.join(ROOT, "tests", "data", "photos")
# Species names and labels of the default bundle, in the ways people write them (scientific, common, class index).
LABELS = ["Naja naja", "Crotalus cerastes", "Indian cobra", "63", "Dendroaspis angusticeps", "Boa constrictor",
          "Hydrophis platurus", "Carphophis amoenus", "Nerodia sipedon", "Eastern diamondback rattlesnake"]
COUNTRIES = ["IN", "US", "BR", "AU", "unknown", "India", ""]


def f32(x):
    """The f32 the CLI computed (its JSON prints the shortest decimal that reads back as that f32)."""
    return float(np.float32(x))


def psc(y_true, y_pred, venomous):
    """evaluate.py's psc(normalize=True), without pandas: wrong-species rates in percent, rounded by numpy."""
    vt, vp = [t in venomous for t in y_true], [p in venomous for p in y_pred]
    harmless, venom = sum(not v for v in vt), sum(vt)
    count = lambda gt, gp: sum(1 for t, p, a, b in zip(y_true, y_pred, vt, vp) if a == gt and b == gp and t != p)
    return (np.round(count(False, False) / harmless * 100, 2), np.round(count(False, True) / harmless * 100, 2),
            np.round(count(True, False) / venom * 100, 2), np.round(count(True, True) / venom * 100, 2))


def track1(f1, p, w_f1=1, w_t_0_p_0=1, w_t_0_p_1=2, w_t_1_p_0=5, w_t_1_p_1=2):
    """evaluate.py's track1_metric."""
    return np.round((w_f1 * f1 + w_t_0_p_0 * (100 - p[0]) + w_t_0_p_1 * (100 - p[1]) + w_t_1_p_0 * (100 - p[2])
                     + w_t_1_p_1 * (100 - p[3])) / (w_f1 + w_t_0_p_0 + w_t_0_p_1 + w_t_1_p_0 + w_t_1_p_1), 2)


def ece(confidence, correct, bins=15):
    """Guo et al.'s expected calibration error: equal-width bins (lo, hi]."""
    confidence, correct = np.asarray(confidence), np.asarray(correct, dtype=float)
    edges, total = np.linspace(0, 1, bins + 1), 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (confidence > lo) & (confidence <= hi)
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return total


def check_eval(cli, tmp):
    photos = sorted(p for p in os.listdir(PHOTOS) if p.rsplit(".", 1)[-1] in ("png", "jpg", "webp"))
    data = os.path.join(tmp, "data.csv")
    with open(data, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "country"])
        for i in range(36):
            w.writerow([os.path.join(PHOTOS, photos[i % len(photos)]), LABELS[(i * 7) % len(LABELS)], COUNTRIES[i % len(COUNTRIES)]])
    report_path = os.path.join(tmp, "report.json")
    subprocess.run([cli, "eval", data, "--json", report_path, "--plot", os.path.join(tmp, "f1.svg")], check=True, stdout=subprocess.DEVNULL)
    report = json.load(open(report_path))
    assert os.path.exists(os.path.join(tmp, "f1-reliability.svg"))
    preds = report["predictions"]
    # Every row came back, in order (issue 38: a report that dropped rows would have been checked on what was left).
    assert report["n"] == 36 and report["skipped"] == 0 and len(preds) == 36, (report["n"], report["skipped"], len(preds))
    assert [p["path"] for p in preds] == [r[0] for r in list(csv.reader(open(data)))[1:]], "rows out of order or missing"
    venomous = {int(c) for c, v in report["classes"].items() if v["venomous"]}
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

        rates = psc(y_true, y_pred, venomous)
        want_track1 = track1(np.round(f1_score(y_true, y_pred, average="macro") * 100, 2), rates)
        v = m["venom"]
        got = [v["harmless_to_other_harmless"], v["harmless_to_venomous"], v["venomous_to_harmless"], v["venomous_to_other_venomous"]]
        assert all(abs(np.round(g * 100, 2) - r) < 1e-9 for g, r in zip(got, rates)), (key, got, rates)
        assert v["track1"] == want_track1, (key, v["track1"], want_track1)
        print(f"{key}: V->H {rates[2]}% H->V {rates[1]}% V->V' {rates[3]}% track1 {want_track1} = evaluate.py")

        confidence = [f32(p["p_" + key][0]) for p in preds]
        want_ece = ece(confidence, [t == p for t, p in zip(y_true, y_pred)])
        assert abs(m["calibration"]["ece"] - want_ece) < 1e-12, (key, m["calibration"]["ece"], want_ece)
        print(f"{key}: ECE {want_ece:.6f} = the 15-bin reference")
        checks += 3
    return checks


def nll(logits, truth, t):
    z = np.asarray(logits, dtype=np.float64) / t
    z -= z.max(axis=1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(truth)), truth]))


def check_calibrate(cli, tmp):
    # Labels the model half agrees with, so that the best temperature is finite: each photo's own most likely
    # species (given a snake) in three rows of four, its second in the fourth. Found from the eval report's rankings.
    photos = sorted(p for p in os.listdir(PHOTOS) if p.rsplit(".", 1)[-1] in ("png", "jpg", "webp"))
    probe = os.path.join(tmp, "probe.csv")
    with open(probe, "w") as f:
        f.write("path,label\n" + "".join(f"{os.path.join(PHOTOS, p)},63\n" for p in photos))
    report = os.path.join(tmp, "probe.json")
    subprocess.run([cli, "eval", probe, "--json", report], check=True, stdout=subprocess.DEVNULL)
    ranked = {os.path.basename(p["path"]): p["without_prior"] for p in json.load(open(report))["predictions"]}
    data = os.path.join(tmp, "calib.csv")
    with open(data, "w") as f:
        f.write("path,label\n")
        for i in range(24):
            p = photos[i % len(photos)]
            f.write(f"{os.path.join(PHOTOS, p)},{ranked[p][1 if i % 4 == 3 else 0]}\n")
    out, fit_path = os.path.join(tmp, "calibrated.snkb"), os.path.join(tmp, "fit.json")
    subprocess.run([cli, "calibrate", data, "--out", out, "--json", fit_path], check=True, stdout=subprocess.DEVNULL)
    fit = json.load(open(fit_path))
    logits = [[f32(x) for x in row] for row in fit["logits"]]
    truth = fit["truth"]
    want = minimize_scalar(lambda lt: nll(logits, truth, math.exp(lt)), bounds=(math.log(0.05), math.log(20)),
                           method="bounded", options={"xatol": 1e-10}).x
    want = math.exp(want)
    got = fit["temperature_fitted"]
    assert 0.06 < want < 19, f"the reference optimum {want} sits on the search bound: the check would prove nothing"
    assert abs(got - want) / want < 1e-4, (got, want)
    assert abs(fit["nll_after"] - nll(logits, truth, got)) < 1e-9 and fit["nll_after"] <= fit["nll_before"]
    # The bundle written carries the temperature, as f32.
    unpacked = os.path.join(tmp, "calibrated")
    subprocess.run([cli, "bundle", "unpack", "--bundle", out, "--out", unpacked], check=True, stderr=subprocess.DEVNULL)
    manifest = json.load(open(os.path.join(unpacked, "manifest.json")))
    assert f32(manifest["model"]["temperature"]) == f32(got), (manifest["model"], got)
    print(f"calibrate: T = {got:.6f} = scipy's {want:.6f} on {fit['n']} photos; NLL {fit['nll_before']:.4f} -> {fit['nll_after']:.4f}, "
          f"ECE {fit['ece_before']:.4f} -> {fit['ece_after']:.4f}")
    return 1


def main(cli):
    with tempfile.TemporaryDirectory() as tmp:
        checks = check_eval(cli, tmp) + check_calibrate(cli, tmp)
    print(f"eval and calibrate vs references: {checks} passed, 0 failed")


if __name__ == "__main__":
    main(sys.argv[1])
