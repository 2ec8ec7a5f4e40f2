"""Runs the generated Python bindings against the built libsnakeid_ffi: answers, errors, threads, benchmark.

Run by tests/bindings/run.sh, which generates the `snakeid` module next to a test build of the library and sets
SNAKEID_BINDINGS (the module's folder) and SNAKEID_FAILPOINTS_BUILD=1; and by tests/bindings/wheel.sh against the
wheel installed in a fresh venv (no SNAKEID_BINDINGS: `import snakeid` finds the installed package). Both set
SNAKEID_CLI (the CLI binary, for cross-checks) and SNAKEID_ROOT.
"""

import gc
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

if "SNAKEID_BINDINGS" in os.environ:
    sys.path.insert(0, os.environ["SNAKEID_BINDINGS"])
import snakeid  # noqa: E402  (the generated module, or the installed wheel's package)

ROOT = os.environ["SNAKEID_ROOT"]
PHOTOS = os.path.join(ROOT, "tests", "data", "photos")
BUNDLE = os.path.join(ROOT, "models", "default", "snakeid-default.snkb")


def photo(name):
    with open(os.path.join(PHOTOS, name), "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def classifier():
    return snakeid.Classifier()


def cli_answer(name, country, top):
    out = subprocess.run(
        [os.environ["SNAKEID_CLI"], "identify", os.path.join(PHOTOS, name), "--country", country, "--top", str(top), "--json"],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)


def test_identify_matches_the_cli(classifier):
    got = classifier.identify(photo("chelsea.png"), "IN", 3)
    want = cli_answer("chelsea.png", "IN", 3)
    assert got.backend == "cpu" == want["backend"]
    assert got.country == "IN" and got.prior_applied
    assert got.snake_detected == want["snake_detected"]
    assert got.snake_verdict == {"snake": snakeid.SnakeVerdict.SNAKE, "possible": snakeid.SnakeVerdict.POSSIBLE,
                                 "none": snakeid.SnakeVerdict.NO_SNAKE}[want["snake_verdict"]]
    assert [p.class_index for p in got.warning_species] == [p["class_index"] for p in want["warning_species"]]
    assert got.uncertain == want["uncertain"]
    assert got.venomous_warning == want["venomous_warning"]
    assert [p.scientific_name for p in got.predictions] == [p["scientific_name"] for p in want["predictions"]]
    for p, q in zip(got.predictions, want["predictions"]):
        assert p.class_index == q["class_index"] and p.label == q["label"] and p.venomous == q["venomous"]
        assert abs(p.probability - q["probability"]) < 1e-6
    probs = [p.probability for p in got.predictions]
    assert probs == sorted(probs, reverse=True) and all(0.0 <= p <= 1.0 for p in probs)
    t = got.timings_ms
    assert 0 < t.inference <= t.total and t.decode > 0


def test_no_country_means_no_prior(classifier):
    got = classifier.identify(photo("rocket.jpg"), None, 5)
    assert got.country is None and not got.prior_applied and len(got.predictions) == 5


def test_bad_images_raise_invalid_image_and_the_classifier_keeps_working(classifier):
    jpeg = photo("rocket.jpg")
    for bad in [b"", b"not an image at all", jpeg[: len(jpeg) // 3], b"\x89PNG\r\n\x1a\n" + b"\0" * 64]:
        with pytest.raises(snakeid.SnakeIdError.InvalidImage) as e:
            classifier.identify(bad, None, 3)
        assert "\n" not in str(e.value) and str(e.value)
    assert classifier.identify(jpeg, None, 3).predictions


def test_unknown_country_suggests_close_matches(classifier):
    with pytest.raises(snakeid.SnakeIdError.UnknownCountry, match="did you mean IN"):
        classifier.identify(photo("chelsea.png"), "Indai", 3)
    with pytest.raises(snakeid.SnakeIdError.UnknownCountry):
        classifier.identify(photo("chelsea.png"), "Narnia", 3)


def test_bad_bundles_raise_invalid_bundle():
    with pytest.raises(snakeid.SnakeIdError.InvalidBundle, match="cannot read"):
        snakeid.Classifier.from_bundle_path("/no/such/bundle.snkb")
    with pytest.raises(snakeid.SnakeIdError.InvalidBundle):
        snakeid.Classifier.from_bundle_bytes(b"SNAKEIDB garbage")
    data = bytearray(open(BUNDLE, "rb").read())
    data[len(data) // 2] ^= 0x01  # one flipped bit inside the model
    with pytest.raises(snakeid.SnakeIdError.InvalidBundle, match="(?i)sha-?256|checksum|digest"):
        snakeid.Classifier.from_bundle_bytes(bytes(data))


def test_bundle_from_bytes_and_path_answer_like_the_embedded_one(classifier):
    want = classifier.identify(photo("coffee.png"), "BR", 5)
    for c in [snakeid.Classifier.from_bundle_bytes(open(BUNDLE, "rb").read()), snakeid.Classifier.from_bundle_path(BUNDLE)]:
        got = c.identify(photo("coffee.png"), "BR", 5)
        assert [(p.class_index, p.probability) for p in got.predictions] == [(p.class_index, p.probability) for p in want.predictions]


def test_a_classifier_on_two_threads_answers_like_one(classifier):
    jpeg = photo("rocket.jpg")
    want = classifier.identify(jpeg, "US", 5).predictions
    for c in [snakeid.Classifier(threads=2), snakeid.Classifier.from_bundle_path(BUNDLE, threads=2)]:
        assert c.identify(jpeg, "US", 5).predictions == want


def test_bundle_info(classifier):
    info = classifier.bundle_info()
    assert info.num_classes == 1000 and (info.input_width, info.input_height) == (224, 224)
    assert len(info.species) == 17
    cobra = next(s for s in info.species if s.scientific_name == "Naja naja")
    assert cobra.venomous and cobra.family == "Elapidae" and cobra.genus == "Naja"
    assert "IN" in info.countries and "US" in info.countries


def test_many_threads_share_one_classifier(classifier):
    names = ["chelsea.png", "coffee.png", "rocket.jpg", "astronaut.webp"]
    want = {n: classifier.identify(photo(n), "US", 5) for n in names}
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda n: (n, classifier.identify(photo(n), "US", 5)), names * 4))
    for n, answer in got:
        assert answer.predictions == want[n].predictions


def test_benchmark(classifier):
    r = classifier.benchmark(photo("rocket.jpg"), 5)
    assert r.iterations == 5 and r.threads == 1 and r.backend == "cpu"
    assert r.cold_start_ms > 0 and r.first_call_ms > 0 and r.peak_rss_mb > 10
    for s in [r.stages_ms.decode, r.stages_ms.inference, r.stages_ms.total]:
        assert 0 < s.p50 <= s.p90 <= s.p99
    assert r.stages_ms.inference.p50 <= r.stages_ms.total.p50


@pytest.mark.skipif(os.environ.get("SNAKEID_FAILPOINTS_BUILD") != "1", reason="failpoints exist in test builds only, not in the wheel")
def test_forced_internal_failures_raise_internal_and_the_classifier_keeps_working(classifier):
    """A panic inside the library (forced with the test build's failpoints) reaches Python as SnakeIdError.Internal,
    never as a crash, and the same classifier answers correctly afterwards."""
    jpeg = photo("rocket.jpg")
    want = classifier.identify(jpeg, "IN", 5)
    try:
        os.environ["SNAKEID_FAILPOINTS"] = "inference=2"
        for _ in range(2):
            with pytest.raises(snakeid.SnakeIdError.Internal, match="failpoint inference"):
                classifier.identify(jpeg, "IN", 5)
        assert classifier.identify(jpeg, "IN", 5).predictions == want.predictions
        os.environ["SNAKEID_FAILPOINTS"] = "load=1"
        with pytest.raises(snakeid.SnakeIdError.Internal, match="failpoint load"):
            snakeid.Classifier()
        assert snakeid.Classifier().identify(jpeg, "IN", 5).predictions == want.predictions
    finally:
        del os.environ["SNAKEID_FAILPOINTS"]


def vm_mb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def test_soak_threads_times_calls_keep_peak_memory_flat(classifier):
    """4 threads share one classifier for SNAKEID_SOAK_CALLS calls (default 200) after a warm-up of 100 (the peak of 4 overlapping calls is reached): every answer
    is the one a single call gives, and peak RSS grows by less than 5%."""
    names = ["chelsea.png", "coffee.png", "rocket.jpg", "astronaut.webp"]
    photos = {n: photo(n) for n in names}
    want = {n: classifier.identify(photos[n], "US", 5).predictions for n in names}

    def soak(calls):
        with ThreadPoolExecutor(max_workers=4) as pool:
            for n, got in pool.map(lambda i: (names[i % 4], classifier.identify(photos[names[i % 4]], "US", 5)), range(calls)):
                assert got.predictions == want[n]

    soak(100)
    gc.collect()
    base = vm_mb("VmHWM")
    soak(int(os.environ.get("SNAKEID_SOAK_CALLS", "200")))
    gc.collect()
    end = vm_mb("VmHWM")
    print(f"soak: peak RSS {base:.1f} MB after warm-up, {end:.1f} MB at the end")
    assert end <= base * 1.05, f"peak RSS grew from {base:.1f} to {end:.1f} MB"


def bundle_with_gate(tmp_path, name, threshold, margin):
    """The default bundle with its snake gate moved, packed by the CLI: puts a real photo where a test needs it."""
    cli, src = os.environ["SNAKEID_CLI"], tmp_path / name
    subprocess.run([cli, "bundle", "unpack", "--out", str(src)], check=True, capture_output=True)
    manifest = json.loads((src / "manifest.json").read_text())
    manifest["decision"].update(snake_threshold=threshold, gate_margin=margin)
    (src / "manifest.json").write_text(json.dumps(manifest, indent=2))
    out = tmp_path / (name + ".snkb")
    subprocess.run([cli, "bundle", "pack", str(src), "--out", str(out)], check=True, capture_output=True)
    return str(out)


def test_three_verdicts_and_the_species_the_warning_names(classifier, tmp_path):
    coffee = photo("coffee.png")
    p = classifier.identify(coffee, "IN", 3).snake_probability
    V = snakeid.SnakeVerdict
    # No committed photo shows a snake (P(snake) ~ 1e-7): the gate is moved to the photo, by factors of P.
    for name, threshold, margin, verdict, detected in [("above", p / 2, p, V.POSSIBLE, True),
                                                       ("below", 2 * p, 2 * p, V.POSSIBLE, False),
                                                       ("snake", p / 2, p / 4, V.SNAKE, True),
                                                       ("none", 2 * p, p / 2, V.NO_SNAKE, False)]:
        got = snakeid.Classifier.from_bundle_path(bundle_with_gate(tmp_path, name, threshold, margin)).identify(coffee, "IN", 3)
        assert (got.snake_verdict, got.snake_detected) == (verdict, detected), name
        # In India the cobra leads: a warning unless there is no snake, naming only species at or above 10%.
        assert got.venomous_warning == (verdict != V.NO_SNAKE) == bool(got.warning_species), name
        assert all(s.venomous and s.probability >= 0.1 for s in got.warning_species), name


def test_signed_bundles_need_a_trusted_key(tmp_path):
    """A bundle signed with `snakeid bundle keygen/sign` loads through the signed constructors only with its key."""
    cli = os.environ["SNAKEID_CLI"]
    keys = []
    for name in ["publisher.key", "stranger.key"]:
        out = subprocess.run([cli, "bundle", "keygen", "--out", str(tmp_path / name)], check=True, capture_output=True, text=True)
        keys.append(out.stdout.strip())
    publisher, stranger = keys
    signed = tmp_path / "signed.snkb"
    subprocess.run([cli, "bundle", "sign", BUNDLE, "--key", str(tmp_path / "publisher.key"), "--out", str(signed)], check=True)
    data = signed.read_bytes()
    c = snakeid.Classifier.from_bundle_bytes_signed(data, [stranger, publisher])
    assert c.identify(photo("rocket.jpg"), "IN", 3).predictions
    snakeid.Classifier.from_bundle_path_signed(str(signed), [publisher])
    with pytest.raises(snakeid.SnakeIdError.UntrustedBundle, match="does not verify"):
        snakeid.Classifier.from_bundle_bytes_signed(data, [stranger])
    with pytest.raises(snakeid.SnakeIdError.UntrustedBundle, match="not signed"):
        snakeid.Classifier.from_bundle_path_signed(BUNDLE, [publisher])
    with pytest.raises(snakeid.SnakeIdError.UntrustedBundle, match="64 hex digits"):
        snakeid.Classifier.from_bundle_bytes_signed(data, ["not a key"])
