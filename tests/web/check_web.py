"""The web app in a real headless Chromium: answers equal the CLI's, bad input gets a one-line message and the page
keeps working, it works offline once visited, and 360x740 screenshots of the app's states (target/web/).

    python3 tests/web/check_web.py --cli target/test-opt/snakeid [--dist web/dist] [--screenshot target/web/answer.png]
"""

import argparse
import json
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

from selenium.webdriver.common.by import By

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))
import browser  # noqa: E402
from edges import at_edge, logit, real_snakes  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PHOTOS = sorted((ROOT / "tests/data/photos").glob("*.[jpw]*[gp]"))
# Not a photo: an image the model calls an Indian cobra (tests/data/web/make_synthetic_snake.py), so that one answer
# is a snake with the venomous warning.
COBRA = ROOT / "tests/data/web/synthetic-cobra.png"
# The wasm build computes in another arithmetic than the x86 CLI, and the model fake-quantizes 35 times, so a
# last-bit difference that crosses a rounding boundary moves a code and the logits after it: tract's wasm kernels
# (stem, classifier) have no fused multiply-add where its x86 ones and our x86 stem have one, and the pointwise
# convolutions are exact int8 sums in wasm (as with VNNI) but float products on x86 without VNNI. The photos hold
# no snake, and renormalising over the 17 snake classes (~1e-4 of the softmax and less) magnifies that: up to 0.12
# measured (astronaut.webp, BENCHMARKS.md "The web app"). So: the same keys, verdict, warning and uncertainty,
# P(snake) within 0.02, every top-5 probability within 0.15, and the same top species whenever there is a snake.
MAX_DP = 0.15
MAX_DP_SNAKE = 0.02
# Real field photos of snakes (one per species of ph14's val split), so that `snake`, `possible` and the warning are
# compared too: the same verdict, warning and uncertainty unless the CLI's answer is within edges.EDGE logits of a
# line; P(snake) within MAX_DLOGIT in logit space (measured 0.431 at most: Chromium 148's wasm against AVX2 x86-64).
SNAKES = real_snakes(1)
MAX_DLOGIT = 0.65


def cli_answer(cli, photo, country):
    cmd = [str(cli), "identify", str(photo), "--json", "--top", "5"] + (["--country", country] if country else [])
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def same_answer(web, cli, what):
    """Asserts that the web app's answer is the CLI's within the bounds above; returns the largest |dp|."""
    assert set(web) == set(cli), f"{what}: keys differ: {sorted(set(web) ^ set(cli))}"
    for k in ["snake_verdict", "venomous_warning", "uncertain", "country", "prior_applied", "snake_detected"]:
        assert web[k] == cli[k], f"{what}: {k} {web[k]!r} != {cli[k]!r}"
    pw = {p["class_index"]: p["probability"] for p in web["predictions"]}
    worst = max(abs(p["probability"] - pw.get(p["class_index"], 0.0)) for p in cli["predictions"])
    assert worst <= MAX_DP, f"{what}: a top-5 probability differs by {worst:.3f}"
    assert abs(web["snake_probability"] - cli["snake_probability"]) <= MAX_DP_SNAKE, f"{what}: P(snake) differs"
    if cli["snake_verdict"] != "none":
        assert web["predictions"][0]["class_index"] == cli["predictions"][0]["class_index"], f"{what}: top species differs"
    return worst


def identical(a, b, what):
    """The same engine on the same bytes: the same answer to the bit, timings apart."""
    strip = lambda x: {k: v for k, v in x.items() if k != "timings_ms"}
    assert strip(a) == strip(b), f"{what}: answers differ"


def answer_through_file_input(driver, path, previous_seq):
    """Chooses `path` in the page's photo input and waits for the answer (or the error) it shows."""
    driver.find_element(By.ID, "photo").send_keys(str(path))
    deadline = time.time() + 120
    while time.time() < deadline:
        state = driver.execute_script("const a = document.getElementById('answer'); return [a.dataset.seq, a.dataset.state];")
        if state[0] is not None and int(state[0]) > previous_seq and state[1] in ("done", "error"):
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"no answer shown for {path.name}")
    answer = driver.find_element(By.ID, "answer").get_attribute("data-json")
    error = driver.find_element(By.ID, "error")
    return int(state[0]), (json.loads(answer) if state[1] == "done" else None), (error.text if error.is_displayed() else None)


def set_geolocation(driver, origin, position):
    """Chromium's geolocation for the page: refused (None) or granted at (latitude, longitude), through DevTools."""
    setting = "denied" if position is None else "granted"
    driver.execute_cdp_cmd("Browser.setPermission", {"permission": {"name": "geolocation"}, "setting": setting, "origin": origin.rstrip("/")})
    if position is not None:
        driver.execute_cdp_cmd("Emulation.setGeolocationOverride", {"latitude": position[0], "longitude": position[1], "accuracy": 50})


def huge_png_header():
    """A PNG that claims 100000x100000 pixels: refused from its header, before any pixel buffer exists."""
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cli", required=True, type=Path, help="the snakeid CLI with the same (embedded) bundle as the web app")
    ap.add_argument("--dist", type=Path, default=ROOT / "web/dist")
    ap.add_argument("--screenshots", type=Path, default=ROOT / "target/web", help="where the 360x740 screenshots go")
    args = ap.parse_args()

    # Served as the README says: `python3 -m http.server -d web/dist`, from the repository's root.
    server = browser.Server(args.dist.relative_to(ROOT) if args.dist.is_relative_to(ROOT) else args.dist).start()
    driver = browser.chromium()
    args.screenshots.mkdir(parents=True, exist_ok=True)
    shots = []

    def shot(name, what):
        """A 360x740 screenshot of the page as it stands, named for the state it shows."""
        path = args.screenshots / f"{len(shots) + 1}-{name}-360x740.png"
        driver.save_screenshot(str(path))
        shots.append(f"{path.name}: {what}")

    try:
        print(f"Chromium {browser.version(driver)}, serving {args.dist} at {server.url}")
        driver.get(server.url)
        browser.wait_ready(driver)

        # The device's position is refused until the test below grants it, so the answers here have no country.
        set_geolocation(driver, server.url, None)
        # Issue 35: no country from the browser's language (Chromium here says en-US), camera and gallery both (no
        # `capture`), no image (and so no alt text) before a photo.
        assert driver.find_element(By.ID, "country").get_attribute("value") == "", "the country was pre-filled"
        assert driver.find_element(By.ID, "photo").get_attribute("capture") is None, "the photo input forces the camera"
        assert not driver.find_element(By.ID, "preview").is_displayed(), "an empty image shows before any photo"
        for id_ in ["photo", "country", "tab-identify", "tab-bench"]:
            height = driver.find_element(By.ID, id_).rect["height"]
            assert height >= 48, f"#{id_} is {height} px high: a touch target needs 48"
        shot("start", "before any photo: the empty country field, camera or gallery, no broken image")

        # The CLI's answers: through snakeidIdentify, with and without a country.
        worst, direct = 0.0, {}
        for photo in PHOTOS + [COBRA]:
            for country in [None, "IN", "Brazil"]:
                r = browser.identify(driver, photo.read_bytes(), country)
                assert "ok" in r, f"{photo.name}: {r}"
                direct[photo.name, country] = r["ok"]
                worst = max(worst, same_answer(r["ok"], cli_answer(args.cli, photo, country), f"{photo.name} country={country}"))
        print(f"snakeidIdentify: {len(direct)} answers agree with the CLI's (max top-5 |dp| {worst:.3f})")
        edges, verdicts, worst_d = 0, [], 0.0
        for photo in SNAKES:
            web = browser.identify(driver, photo.read_bytes(), "PH")
            assert "ok" in web, f"{photo.name}: {web}"
            web, cli = web["ok"], cli_answer(args.cli, photo, "PH")
            verdicts.append(cli["snake_verdict"])
            if at_edge(cli):
                edges += 1
                continue
            for k in ["snake_verdict", "venomous_warning", "uncertain", "view"]:
                assert web[k] == cli[k], f"{photo.name}: {k} {web[k]!r} != {cli[k]!r} away from every edge"
            d = abs(logit(web["snake_probability"]) - logit(cli["snake_probability"]))
            assert d <= MAX_DLOGIT, f"{photo.name}: P(snake) differs by {d:.3f} logits"
            worst_d = max(worst_d, d)
        print(f"real snakes: {len(SNAKES)} photos ({', '.join(sorted(set(verdicts)))}), the web's verdicts and warnings "
              f"are the CLI's ({edges} at an edge, not compared; largest |d logit P(snake)| {worst_d:.3f})")

        # Through the page's file input (country: empty, so unknown; never the browser's language): the answer
        # snakeidIdentify gives, to the bit.
        seq = 0
        for photo in PHOTOS + [COBRA]:
            seq, answer, error = answer_through_file_input(driver, photo, seq)
            assert answer and not error, f"{photo.name}: {error}"
            key = (photo.name, answer["country"])
            ref = direct.get(key) or browser.identify(driver, photo.read_bytes(), answer["country"])["ok"]
            identical(answer, ref, f"file input {photo.name}")
        print(f"file input: {len(PHOTOS) + 1} answers are snakeidIdentify's, bit for bit")

        # Text that is not a country (an option with more typed after it) is an error, never silently the option.
        # (Set without events, so that only the photo below asks for an answer.)
        set_country = "document.getElementById('country').value = arguments[0];"
        driver.execute_script(set_country, "US — United StatesPH")
        seq, answer, error = answer_through_file_input(driver, PHOTOS[0], seq)
        assert answer is None and error and "unknown country" in error, (answer, error)
        shot("unknown-country", f"text that is no country: {error}")
        driver.execute_script(set_country, "")
        print(f"country text that is no country: {error}")

        # Issue 35: with the country empty, the device's position (asked once per visit; here Chromium's emulated
        # GPS, Manila) gives the country offline, the page says where it came from, and the answer is the CLI's with
        # the same --location. The same photo with a country typed: the typed one wins.
        set_geolocation(driver, server.url, (14.5995, 120.9842))
        driver.get(server.url)
        browser.wait_ready(driver)
        seq, answer, error = answer_through_file_input(driver, COBRA, 0)
        assert answer and not error, error
        cli = json.loads(subprocess.run([str(args.cli), "identify", str(COBRA), "--json", "--location", "14.5995,120.9842"],
                                        check=True, capture_output=True, text=True).stdout)
        assert (answer["country"], answer["country_source"]) == ("PH", "device_location") == (cli["country"], cli["country_source"]), answer
        shown = driver.find_element(By.ID, "answer").text
        assert "Philippines, from this device's location" in shown, shown
        shot("country-from-device", "the country from the device's (emulated) position: " + shown.splitlines()[-1])
        driver.execute_script(set_country + "document.getElementById('country').dispatchEvent(new Event('change'));", "IN")
        deadline = time.time() + 60
        while time.time() < deadline and int(driver.find_element(By.ID, "answer").get_attribute("data-seq") or 0) <= seq:
            time.sleep(0.1)
        chosen = json.loads(driver.find_element(By.ID, "answer").get_attribute("data-json"))
        assert (chosen["country"], chosen["country_source"]) == ("IN", "chosen"), chosen
        driver.execute_script(set_country, "")
        seq = int(driver.find_element(By.ID, "answer").get_attribute("data-seq"))
        print(f"device position: {answer['country']} ({answer['country_source']}), shown as {shown.splitlines()[-1]!r}; a typed country wins")

        # Bad input: a one-line message in the page, and the next photo still works.
        good = PHOTOS[0]
        with tempfile.TemporaryDirectory() as tmp:
            bad = {"garbage.jpg": bytes(range(256)) * 40, "truncated.jpg": (ROOT / "tests/data/photos/orange.jpg").read_bytes()[:3000],
                   "huge.png": huge_png_header(), "empty.png": b""}
            for name, data in bad.items():
                path = Path(tmp) / name
                path.write_bytes(data)
                seq, answer, error = answer_through_file_input(driver, path, seq)
                assert answer is None and error and "\n" not in error and len(error) < 300, f"{name}: answer {answer}, error {error!r}"
                r = browser.identify(driver, data, None)
                assert r.get("error", {}).get("kind") == "invalid_image", f"{name}: {r}"
                print(f"  {name}: {error}")
                if name == "garbage.jpg":
                    shot("bad-photo", f"a file that is no photo: {error}")
                seq, answer, error = answer_through_file_input(driver, good, seq)
                assert answer and not error, f"after {name}: {error}"
        r = browser.identify(driver, good.read_bytes(), "Narnia")
        assert r.get("error", {}).get("kind") == "unknown_country", r
        print(f"bad input: {len(bad)} files each give a one-line message and the next photo works; unknown country: {r['error']['message']}")

        # Limits (Classifier.setLimits): a photo over them is refused in one line; a limit that is no whole number
        # changes nothing; the defaults back, the photo answers.
        limits = lambda *a: driver.execute_async_script("""const done = arguments[arguments.length - 1];
            globalThis.snakeidLimits(arguments[0], arguments[1], arguments[2]).then(() => done({ok: true}),
                e => done({error: {kind: e.kind, message: e.message}}));""", *a)
        assert limits(None, None, 10_000) == {"ok": True}
        r = browser.identify(driver, good.read_bytes(), "IN")
        assert r.get("error", {}).get("kind") == "invalid_image" and "exceeds the limit" in r["error"]["message"], r
        bad_limit = limits(-1, None, None)
        assert bad_limit.get("error", {}).get("kind") == "invalid_limits", bad_limit
        assert limits(None, None, 100_000_000) == {"ok": True}
        assert "ok" in browser.identify(driver, good.read_bytes(), "IN")
        print(f"limits: a photo over 10 000 pixels refused ({r['error']['message']}); {bad_limit['error']['message']}")

        # Nothing is loaded from elsewhere: every resource the page fetched is the server's own.
        fetched = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        foreign = [u for u in fetched if not u.startswith(server.url)]
        assert fetched and not foreign, f"fetched from elsewhere: {foreign}"
        print(f"same origin: all {len(fetched)} resources the page fetched came from {server.url}")

        # The Benchmark tab: cold start and each stage's p50/p90, measured in the page.
        driver.find_element(By.ID, "tab-bench").click()
        driver.find_element(By.ID, "bench-iterations").clear()
        driver.find_element(By.ID, "bench-iterations").send_keys("3")
        driver.find_element(By.ID, "bench-photo").send_keys(str(good))
        driver.find_element(By.ID, "bench-run").click()
        deadline = time.time() + 120
        while time.time() < deadline and not driver.find_elements(By.CSS_SELECTOR, "#bench-result table"):
            time.sleep(0.1)
        rows = [r.text.split() for r in driver.find_elements(By.CSS_SELECTOR, "#bench-result tr")][1:]
        assert [r[0] for r in rows] == ["decode", "preprocess", "inference", "postprocess", "total"], rows
        assert all(float(p50) <= float(p90) for _, p50, p90 in rows) and float(rows[2][1]) > 0, rows
        print(f"benchmark tab: {driver.find_element(By.CSS_SELECTOR, '#bench-result p').text} inference p50 {rows[2][1]} ms")

        # Another bundle from its bytes (Classifier.fromBundleBytes): a tampered one is refused in one line and the
        # app goes on with the one it has; the real one is taken.
        bundle = (ROOT / "models/default/snakeid-default.snkb").read_bytes()
        with tempfile.TemporaryDirectory() as tmp:
            tampered = Path(tmp) / "tampered.snkb"
            tampered.write_bytes(bundle[: len(bundle) // 2] + bytes([bundle[len(bundle) // 2] ^ 1]) + bundle[len(bundle) // 2 + 1:])
            driver.find_element(By.ID, "bundle-file").send_keys(str(tampered))
            deadline = time.time() + 60
            while time.time() < deadline and not driver.find_element(By.ID, "bundle-error").is_displayed():
                time.sleep(0.1)
            message = driver.find_element(By.ID, "bundle-error").text
            assert message.startswith("invalid bundle") and "\n" not in message, message
            print(f"tampered bundle: {message}")
        r = browser.identify(driver, good.read_bytes(), "IN")
        identical(r["ok"], direct[good.name, "IN"], "after a tampered bundle")
        driver.find_element(By.ID, "bundle-file").send_keys(str(ROOT / "models/default/snakeid-default.snkb"))
        deadline = time.time() + 60
        while time.time() < deadline and driver.find_element(By.ID, "bundle-error").is_displayed():
            time.sleep(0.1)
        r = browser.identify(driver, good.read_bytes(), "IN")
        identical(r["ok"], direct[good.name, "IN"], "the bundle loaded from its bytes")
        print("bundle from bytes: the default bundle's bytes give the same answers")
        driver.find_element(By.ID, "tab-identify").click()

        # Offline: once the service worker has cached the app, stop the server and reload.
        driver.execute_async_script("const done = arguments[arguments.length - 1]; navigator.serviceWorker.ready.then(() => done(true));")
        server.stop()
        driver.refresh()
        browser.wait_ready(driver)
        seq = 0
        r = browser.identify(driver, good.read_bytes(), "IN")
        assert "ok" in r, r
        identical(r["ok"], direct[good.name, "IN"], "offline")
        controlled = driver.execute_script("return !!navigator.serviceWorker.controller")
        assert controlled, "the reloaded page is not served by the service worker"
        print("offline: with the server stopped, the page reloads, the model loads and the answer is the online one, bit for bit")

        # The venomous warning as a phone shows it (red, above the species), and a screenshot of it.
        seq, answer, _ = answer_through_file_input(driver, COBRA, seq)
        assert answer["snake_verdict"] == "snake" and answer["venomous_warning"], answer
        warning = driver.find_element(By.CSS_SELECTOR, "#answer .warning")
        assert warning.is_displayed() and "POSSIBLY VENOMOUS" in warning.text, warning.text
        assert warning.value_of_css_property("background-color") in ("rgba(198, 40, 40, 1)", "rgb(198, 40, 40)")
        shot("venomous-warning", f"a cobra, offline: {warning.text}")
        print(f"screenshots in {args.screenshots}:")
        for line in shots:
            print(f"  {line}")
    finally:
        driver.quit()
        server.stop()
    panics_leave_the_page_working(args.dist, direct[PHOTOS[0].name, "IN"])
    print("web app: all checks passed")


def panics_leave_the_page_working(dist, expected):
    """A test build with failpoints (`setFailpoints`): a panic inside inference aborts that wasm instance; the
    page reports it in one line, starts a fresh worker, and the next answer is the usual one."""
    subprocess.run(["cargo", "build", "--quiet", "--release", "--target", "wasm32-unknown-unknown", "-p", "snakeid-wasm", "--features", "failpoints"],
                   cwd=ROOT, check=True)
    with tempfile.TemporaryDirectory() as tmp:
        for f in dist.iterdir():
            if not f.name.startswith("snakeid_wasm"):
                (Path(tmp) / f.name).write_bytes(f.read_bytes())
        subprocess.run(["wasm-bindgen", "--target", "web", "--no-typescript", "--out-dir", tmp,
                        str(ROOT / "target/wasm32-unknown-unknown/release/snakeid_wasm.wasm")], check=True)
        server = browser.Server(Path(tmp), browser.free_port()).start()
        driver = browser.chromium()
        try:
            driver.get(server.url)
            browser.wait_ready(driver)
            photo = PHOTOS[0].read_bytes()
            driver.execute_async_script("const done = arguments[0]; snakeidFailpoints('inference=1').then(done, e => done(e.message))")
            r = browser.identify(driver, photo, "IN")
            error = r.get("error", {})
            assert error.get("kind") == "internal" and "failpoint inference fired" in error.get("message", "") and "\n" not in error["message"], r
            r = browser.identify(driver, photo, "IN")
            assert "ok" in r, r
            identical(r["ok"], expected, "after a panic")
            assert "Ready" in driver.find_element(By.ID, "status").text
            print(f"panic: {error['message']!r}; a fresh worker gives the usual answer next")
        finally:
            driver.quit()
            server.stop()


if __name__ == "__main__":
    main()
