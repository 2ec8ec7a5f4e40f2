//! The `snakeid` binary end to end: identify (human and JSON), batches, every bad input, prior build/show, bundles.

use serde_json::Value;
use snakeid_tests::data_dir;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn snakeid(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_snakeid")).args(args).output().expect("runs")
}

fn photo_path(name: &str) -> String {
    data_dir().join("photos").join(name).display().to_string()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("snakeid-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit code 2 and exactly one line on stderr, starting `error:`.
fn assert_bad_input(o: &Output, what: &str) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "{what}: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: not one line: {err}");
    assert!(lines[0].starts_with("error: ") && !err.contains("panicked"), "{what}: {err}");
    err
}

#[test]
fn identify_json_has_the_documented_keys() {
    let o = snakeid(&["identify", &photo_path("chelsea.png"), "--json", "--top", "3", "--country", "IN"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    assert_eq!(out.lines().count(), 1);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    for key in
        ["image", "snake_detected", "snake_probability", "country", "backend", "uncertain", "predictions", "timings_ms"]
    {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    assert_eq!(v["backend"], "cpu");
    assert_eq!(v["country"], "IN");
    assert_eq!(v["snake_detected"], false);
    let preds = v["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), 3);
    for p in preds {
        for key in ["class_index", "label", "scientific_name", "probability", "venomous"] {
            assert!(p.get(key).is_some(), "prediction lacks {key}: {p}");
        }
    }
    for key in ["decode", "preprocess", "inference", "postprocess", "total"] {
        assert!(v["timings_ms"][key].as_f64().unwrap() >= 0.0);
    }
}

#[test]
fn human_output_ranks_and_warns() {
    let o = snakeid(&["identify", &photo_path("coffee.png"), "--top", "3", "--country", "India"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.contains("no snake detected"), "{out}");
    assert!(out.contains("country IN (prior applied)"), "{out}");
    assert!(!out.contains("WARNING"), "no warning beside 'no snake': {out}");
}

// Regression (issue 33): this Equatorial spitting cobra (a real field photo) was "no snake detected": its centre crop
// is `none` even with the look-alikes counted, its mirror image is `possible`, with the venomous warning.
#[test]
fn the_cobra_the_centre_crop_missed_is_seen_in_the_mirror() {
    let cobra = snakeid_tests::shared_data()
        .join("snakes/ph14/val/Naja sumatrana/equatorial_cobra__naja_sumatrana__val_0004.jpeg");
    let cobra = cobra.to_str().unwrap();
    let o = snakeid(&["identify", cobra, "--country", "PH", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["snake_verdict"].as_str(), v["view"].as_str(), v["views_run"].as_u64()),
        (Some("possible"), Some("mirror"), Some(2)),
        "{v}"
    );
    assert_eq!(v["venomous_warning"], true, "{v}");
    // The same bundle looking at the centre crop only: `none`, as before.
    let dir = unpacked_default("primary-only");
    let path = dir.join("manifest.json");
    let mut m: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    m["input"]["views"] = serde_json::json!(["primary"]);
    std::fs::write(&path, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    let one = tmp("primary-only.snkb");
    assert!(snakeid(&["bundle", "pack", dir.to_str().unwrap(), "--out", one.to_str().unwrap()]).status.success());
    let v = identify_json(cobra, &one, &["--country", "PH"]);
    assert_eq!((v["snake_verdict"].as_str(), v["views_run"].as_u64()), (Some("none"), Some(1)), "{v}");
}

// A cat is far under the `none` line in its first view: the other views are not run (`decision.more_views_above`);
// with that line at 0 every view runs, and the answer is the same `none`.
#[test]
fn a_photo_clearly_without_a_snake_costs_one_inference() {
    let cat = photo_path("chelsea.png");
    let o = snakeid(&["identify", &cat, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["snake_verdict"].as_str(), v["view"].as_str(), v["views_run"].as_u64()),
        (Some("none"), Some("primary"), Some(1)),
        "{v}"
    );
    let dir = unpacked_default("retry-every-view");
    let path = dir.join("manifest.json");
    let mut m: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(m["decision"]["more_views_above"].as_f64(), Some(0.005), "the default bundle's line");
    m["decision"]["more_views_above"] = serde_json::json!(0.0);
    std::fs::write(&path, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    let every = tmp("retry-every-view.snkb");
    assert!(snakeid(&["bundle", "pack", dir.to_str().unwrap(), "--out", every.to_str().unwrap()]).status.success());
    let w = identify_json(&cat, &every, &[]);
    assert_eq!(
        (w["snake_verdict"].as_str(), w["view"].as_str(), w["views_run"].as_u64()),
        (Some("none"), Some("primary"), Some(3)),
        "{w}"
    );
    assert_eq!(w["predictions"], v["predictions"], "the first view answers either way");
}

// Issue 35: the country from where the photo was taken, offline. A chosen country beats the photo's GPS position,
// which beats the device's (--location); the answer says which; a position at sea gives no country.
#[test]
fn the_country_comes_from_the_choice_then_the_photos_gps_then_the_location() {
    let rocket = photo_path("rocket.jpg");
    let manila = tmp("rocket-in-manila.jpg");
    std::fs::write(&manila, snakeid_tests::with_gps(&snakeid_tests::photo("rocket.jpg"), 14.5995, 120.9842)).unwrap();
    let manila = manila.to_str().unwrap();
    let delhi = "28.6139,77.2090";
    let ask = |photo: &str, extra: &[&str]| {
        let mut args = vec!["identify", photo, "--json"];
        args.extend(extra);
        let o = snakeid(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        (
            v["country"].as_str().map(String::from),
            v["country_source"].as_str().map(String::from),
            v["prior_applied"].as_bool().unwrap(),
        )
    };
    let some = |c: &str, s: &str, p: bool| (Some(c.to_string()), Some(s.to_string()), p);
    assert_eq!(ask(&rocket, &[]), (None, None, false), "no country, no GPS, no location: no prior");
    assert_eq!(ask(&rocket, &["--location", delhi]), some("IN", "device_location", true));
    assert_eq!(
        ask(&rocket, &["--location", "-23.55,-46.63"]),
        some("BR", "device_location", true),
        "a negative latitude"
    );
    assert_eq!(ask(&rocket, &["--location", "30,-40"]), (None, None, false), "the Atlantic: no country");
    assert_eq!(ask(manila, &[]), some("PH", "photo_gps", true));
    assert_eq!(ask(manila, &["--location", delhi]), some("PH", "photo_gps", true), "the photo beats the device");
    assert_eq!(
        ask(manila, &["--country", "Kenya", "--location", delhi]),
        some("KE", "chosen", true),
        "the user beats both"
    );
    // The position changes nothing else: the photo with GPS answers as the photo without it, under the same prior.
    let a = snakeid(&["identify", manila, "--json"]);
    let b = snakeid(&["identify", &rocket, "--json", "--country", "PH"]);
    let (a, b): (Value, Value) =
        (serde_json::from_slice(&a.stdout).unwrap(), serde_json::from_slice(&b.stdout).unwrap());
    assert_eq!(a["predictions"], b["predictions"]);
    let human = snakeid(&["identify", manila]);
    assert!(
        String::from_utf8_lossy(&human.stdout).contains("country PH from the photo's GPS (prior applied)"),
        "{}",
        String::from_utf8_lossy(&human.stdout)
    );
}

#[test]
fn a_location_that_is_not_a_position_is_refused_and_nothing_runs() {
    for bad in ["91,0", "14.6", "north,east", "0,181"] {
        let o = snakeid(&["identify", &photo_path("rocket.jpg"), "--location", bad]);
        assert_eq!(o.status.code(), Some(2), "{bad}");
        let err = stderr(&o);
        assert!(err.lines().next().unwrap().contains("not a position"), "{bad}: {err}");
        assert!(o.stdout.is_empty(), "{bad}");
    }
}

// Regression (issue 35): `snakeid identify PHOTO... | head -3` panicked ("failed printing to stdout: Broken pipe").
#[cfg(unix)]
#[test]
fn a_reader_that_goes_away_ends_it_quietly() {
    use std::process::{Command, Stdio};
    let photos: Vec<String> = (0..20).map(|_| photo_path("chelsea.png")).collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_snakeid"))
        .arg("identify")
        .args(&photos)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read the first line, then close the pipe, as `head -1` does.
    let mut first = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut first).unwrap();
    assert!(first.contains("chelsea.png"), "{first}");
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{err}");
    assert!(!out.status.success(), "it stopped early: it cannot have printed every answer");
}

// Regression (issue 33): a cat photo printed "Indian cobra 95.6% VENOMOUS" under "no snake detected". The JSON
// keeps its ranking; the words a person reads name no species.
#[test]
fn no_snake_lists_no_species_and_nothing_venomous() {
    let chelsea = photo_path("chelsea.png");
    let o = snakeid(&["identify", &chelsea, "--country", "IN"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.contains("no snake detected"), "{out}");
    assert!(!out.contains("VENOMOUS") && !out.contains("Indian cobra") && !out.contains(" 1. "), "{out}");
    let o = snakeid(&["identify", &chelsea, "--country", "IN", "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["snake_verdict"], "none", "{v}");
    assert_eq!(v["predictions"][0]["label"], "Indian cobra", "the JSON keeps its fields: {v}");
}

/// The default bundle with its snake gate moved (threshold, margin), packed: a real photo lands where a test needs it.
fn bundle_with_gate(name: &str, threshold: f64, margin: f64) -> PathBuf {
    let dir = unpacked_default(name);
    let path = dir.join("manifest.json");
    let mut m: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    m["decision"]["snake_threshold"] = threshold.into();
    m["decision"]["gate_margin"] = margin.into();
    std::fs::write(&path, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    let out = tmp(&format!("{name}.snkb"));
    let o = snakeid(&["bundle", "pack", dir.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    out
}

fn identify_json(photo: &str, bundle: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["identify", photo, "--json", "--bundle", bundle.to_str().unwrap()];
    args.extend(extra);
    let o = snakeid(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

// Regression: at P(snake) = 0.44 (a green mamba) the answer read "no snake detected", then a venom warning.
#[test]
fn a_photo_in_the_gate_band_is_possible_on_either_side_and_never_reads_no_snake() {
    let coffee = photo_path("coffee.png");
    // None of the committed photos shows a snake (P(snake) ~ 1e-7): the gate is moved to them, by factors of P.
    let p =
        identify_json(&coffee, &bundle_with_gate("gate-plain", 0.5, 0.2), &[])["snake_probability"].as_f64().unwrap();
    assert!(p > 0.0 && p < 0.25, "{p}");
    for (name, threshold, margin, detected) in
        [("gate-above", p / 2.0, p, true), ("gate-below", 2.0 * p, 2.0 * p, false)]
    {
        let bundle = bundle_with_gate(name, threshold, margin);
        let v = identify_json(&coffee, &bundle, &["--country", "IN", "--top", "3"]);
        assert_eq!(v["snake_verdict"], "possible", "{name}: {v}");
        assert_eq!(v["snake_detected"], detected, "{name}: {v}");
        assert_eq!(v["uncertain"], true, "{name}");
        let o = snakeid(&["identify", &coffee, "--bundle", bundle.to_str().unwrap(), "--country", "IN", "--top", "3"]);
        let out = String::from_utf8(o.stdout).unwrap();
        assert!(out.contains(&format!("possibly a snake ({:.0}%)", p * 100.0)), "{name}: {out}");
        assert!(!out.contains("no snake"), "{name}: {out}");
        // In India the cobra leads: the warning names it, with its probability, and nothing under the threshold.
        assert_eq!(v["venomous_warning"], true, "{name}");
        let named = v["warning_species"].as_array().unwrap();
        assert!(
            !named.is_empty()
                && named.iter().all(|s| s["venomous"] == true && s["probability"].as_f64().unwrap() >= 0.1),
            "{v}"
        );
        let warning = out.lines().find(|l| l.contains("WARNING")).expect("a warning line");
        for s in named {
            assert!(
                warning.contains(&format!(
                    "{} {:.0}%",
                    s["label"].as_str().unwrap(),
                    s["probability"].as_f64().unwrap() * 100.0
                )),
                "{warning}"
            );
        }
        for pred in v["predictions"].as_array().unwrap() {
            if pred["venomous"] == true && pred["probability"].as_f64().unwrap() < 0.1 {
                assert!(
                    !warning.contains(pred["label"].as_str().unwrap()),
                    "names a species under the threshold: {warning}"
                );
            }
        }
    }
    // Past the band: a snake, and no "possibly".
    let v = identify_json(&coffee, &bundle_with_gate("gate-snake", p / 2.0, p / 4.0), &[]);
    assert_eq!((v["snake_verdict"].as_str(), v["snake_detected"].as_bool()), (Some("snake"), Some(true)), "{v}");
    let v = identify_json(&coffee, &bundle_with_gate("gate-none", 2.0 * p, p / 2.0), &[]);
    assert_eq!((v["snake_verdict"].as_str(), v["venomous_warning"].as_bool()), (Some("none"), Some(false)), "{v}");
    assert_eq!(v["warning_species"], serde_json::json!([]));
}

/// A CSV of `n` rows over the committed photos, every row labelled `label`.
fn labelled_csv(name: &str, n: usize, label: &str) -> PathBuf {
    let photos = ["chelsea.png", "coffee.png", "rocket.jpg", "orange.jpg", "astronaut.webp", "squirrel_cls.jpg"];
    let rows: String = (0..n).map(|i| format!("{},{label}\n", photo_path(photos[i % photos.len()]))).collect();
    let path = tmp(name);
    std::fs::write(&path, format!("path,label\n{rows}")).unwrap();
    path
}

#[test]
fn calibrate_writes_a_bundle_with_the_fitted_temperature_unsigned() {
    let data = labelled_csv("calib.csv", 24, "Naja naja");
    let out = tmp("calibrated.snkb");
    let o = snakeid(&["calibrate", data.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let line = String::from_utf8(o.stdout).unwrap();
    assert!(
        line.starts_with("temperature 1.0000 -> ") && line.contains("on 24 photos") && line.contains("ECE"),
        "{line}"
    );
    let dir = tmp("calibrated-unpacked");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(snakeid(&["bundle", "unpack", "--bundle", out.to_str().unwrap(), "--out", dir.to_str().unwrap()])
        .status
        .success());
    let m: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let t = m["model"]["temperature"].as_f64().unwrap();
    assert!(t > 0.0 && (t - 1.0).abs() > 1e-3 && line.contains(&format!("-> {t:.4}")), "{t} {line}");
    assert!(!dir.join("signature.ed25519").exists());
    // The calibrated bundle answers with its temperature: every photo's probabilities change, the ranking does not.
    let a = identify_json(&photo_path("chelsea.png"), &out, &[]);
    let b: Value =
        serde_json::from_slice(&snakeid(&["identify", &photo_path("chelsea.png"), "--json"]).stdout).unwrap();
    let ranks =
        |v: &Value| v["predictions"].as_array().unwrap().iter().map(|p| p["class_index"].as_u64()).collect::<Vec<_>>();
    assert_eq!(ranks(&a), ranks(&b));
    assert_ne!(a["predictions"][0]["probability"], b["predictions"][0]["probability"]);
}

#[test]
fn calibrate_refuses_unknown_labels_too_few_photos_and_unreadable_sets_writing_nothing() {
    let out = tmp("never-written.snkb");
    let _ = std::fs::remove_file(&out);
    let run = |data: &Path| snakeid(&["calibrate", data.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let err = assert_bad_input(&run(&labelled_csv("calib-unknown.csv", 24, "Naja nana")), "unknown label");
    assert!(err.contains("Naja nana"), "{err}");
    let err = assert_bad_input(&run(&labelled_csv("calib-few.csv", 19, "Naja naja")), "19 photos");
    assert!(err.contains("at least 20"), "{err}");
    let broken = tmp("calib-broken");
    std::fs::create_dir_all(broken.join("Naja naja")).unwrap();
    for i in 0..25 {
        std::fs::write(broken.join("Naja naja").join(format!("{i}.jpg")), b"\xFF\xD8\xFF not really").unwrap();
    }
    let err = assert_bad_input(&run(&broken), "unreadable photos");
    assert!(err.contains("only 0 of 25 photos could be read"), "{err}");
    assert!(!out.exists(), "a refused calibration wrote a bundle");
}

#[test]
fn a_manifest_with_a_bad_temperature_is_refused_at_load() {
    for (name, t) in [("t-zero", "0"), ("t-negative", "-1.5"), ("t-huge", "1e39")] {
        let dir = unpacked_default(name);
        let path = dir.join("manifest.json");
        let m = std::fs::read_to_string(&path).unwrap().replacen(
            "\"num_classes\"",
            &format!("\"temperature\": {t},\n    \"num_classes\""),
            1,
        );
        std::fs::write(&path, m).unwrap();
        let err = assert_bad_input(
            &snakeid(&["identify", &photo_path("chelsea.png"), "--bundle", dir.to_str().unwrap()]),
            name,
        );
        assert!(err.contains("temperature"), "{name}: {err}");
    }
}

#[test]
fn a_batch_continues_past_a_bad_photo() {
    let bad = tmp("not-a-photo.jpg");
    std::fs::write(&bad, b"definitely not a jpeg").unwrap();
    let o =
        snakeid(&["identify", &photo_path("chelsea.png"), bad.to_str().unwrap(), &photo_path("rocket.jpg"), "--json"]);
    assert_eq!(o.status.code(), Some(2));
    let lines: Vec<Value> =
        String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0]["predictions"].is_array() && lines[2]["predictions"].is_array());
    assert_eq!(lines[1]["error"]["kind"], "invalid_image");
    assert_eq!(stderr(&o).lines().count(), 1);
}

#[test]
fn every_bad_input_exits_2_with_one_line() {
    let empty = tmp("empty.jpg");
    std::fs::write(&empty, b"").unwrap();
    let random = tmp("random.png");
    std::fs::write(&random, (0..5000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect::<Vec<_>>())
        .unwrap();
    let truncated = tmp("truncated.jpg");
    let jpg = std::fs::read(photo_path("rocket.jpg")).unwrap();
    std::fs::write(&truncated, &jpg[..jpg.len() / 2]).unwrap();
    let bomb = tmp("bomb.png");
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0d".to_vec();
    png.extend_from_slice(&ihdr);
    png.extend_from_slice(&[0, 0, 0, 0]); // wrong CRC: refused either way, never allocated
    std::fs::write(&bomb, png).unwrap();
    let chelsea = photo_path("chelsea.png");
    let dir = data_dir();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["identify", "/nonexistent/photo.jpg"], "missing file"),
        (vec!["identify", dir.to_str().unwrap()], "directory"),
        (vec!["identify", empty.to_str().unwrap()], "empty file"),
        (vec!["identify", random.to_str().unwrap()], "random bytes"),
        (vec!["identify", truncated.to_str().unwrap()], "truncated JPEG"),
        (vec!["identify", bomb.to_str().unwrap()], "100000x100000 PNG"),
        (vec!["identify", &chelsea, "--bundle", &chelsea], "a photo as bundle"),
        (vec!["identify", &chelsea, "--bundle", "/nonexistent/bundle.snkb"], "missing bundle"),
        (vec!["identify", &chelsea, "--country", "Atlantis"], "unknown country"),
        (vec!["prior", "build", "--counts", &chelsea, "--out", "/dev/null"], "a photo as prior CSV"),
    ];
    for (args, what) in cases {
        let err = assert_bad_input(&snakeid(&args), what);
        eprintln!("{what}: {}", err.trim());
    }
    let err = assert_bad_input(&snakeid(&["identify", &chelsea, "--country", "Indai"]), "typo");
    assert!(err.contains("IN (India)"), "{err}");
}

#[test]
fn tampered_bundle_directory_is_refused_and_a_clean_one_works() {
    let dir = tmp("bundle-dir");
    let o = snakeid(&["bundle", "unpack", "--out", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let packed = tmp("repacked.snkb");
    assert!(snakeid(&["bundle", "pack", dir.to_str().unwrap(), "--out", packed.to_str().unwrap()]).status.success());
    assert_eq!(std::fs::read(&packed).unwrap(), snakeid::internals::DEFAULT_BUNDLE, "unpack + pack is the identity");
    let chelsea = photo_path("chelsea.png");
    for b in [&dir, &packed] {
        let o = snakeid(&["identify", &chelsea, "--bundle", b.to_str().unwrap(), "--json"]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    // Mark the cat class as a venomous snake: the labels digest no longer matches.
    let labels = dir.join("labels.csv");
    let text = std::fs::read_to_string(&labels)
        .unwrap()
        .replace("285,Egyptian cat,,,,false,false", "285,Egyptian cat,Felis catus,Felis,Felidae,true,true");
    std::fs::write(&labels, text).unwrap();
    let err = assert_bad_input(&snakeid(&["identify", &chelsea, "--bundle", dir.to_str().unwrap()]), "tampered labels");
    assert!(err.contains("checksum"), "{err}");
}

#[test]
fn prior_build_and_show_on_a_small_table() {
    let csv = tmp("counts.csv");
    std::fs::write(&csv, "Species/Country,Naja naja,Daboia russelii\nIndia,3,1\nSri Lanka,0,2\nunknown,1,1\n").unwrap();
    let bin = tmp("prior.bin");
    let o = snakeid(&[
        "prior",
        "build",
        "--counts",
        csv.to_str().unwrap(),
        "--out",
        bin.to_str().unwrap(),
        "--smoothing",
        "0",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = snakeid(&["prior", "show", "--country", "in", "--prior", bin.to_str().unwrap()]);
    let out = String::from_utf8(o.stdout).unwrap();
    let value = |out: &str, species: &str| -> f64 {
        let line = out.lines().find(|l| l.contains(species)).unwrap_or_else(|| panic!("{species} missing: {out}"));
        line.split_whitespace().last().unwrap().parse().unwrap()
    };
    // t_sc / t_c by hand (3/4, 1/4), to f16 precision.
    assert!(
        (value(&out, "naja-naja") - 0.75).abs() < 1e-3 && (value(&out, "daboia-russelii") - 0.25).abs() < 1e-3,
        "{out}"
    );
    let o = snakeid(&["prior", "show", "--country", "LK", "--prior", bin.to_str().unwrap()]);
    let out = String::from_utf8(o.stdout).unwrap();
    assert!((value(&out, "daboia-russelii") - 1.0).abs() < 1e-3 && value(&out, "naja-naja") == 0.0, "{out}");
    // The default bundle's own prior.
    let o = snakeid(&["prior", "show", "--country", "India"]);
    assert!(String::from_utf8(o.stdout).unwrap().contains("naja-naja"));
}

/// The real SnakeCLEF 2020 table (783 species x 188 countries), from shared/ beside the repository (not committed).
#[test]
fn prior_build_on_the_snakeclef_2020_table() {
    let csv = snakeid_tests::shared_data().join("snakeclef2020/probability_of_species_per_country.csv");
    let bin = tmp("snakeclef.bin");
    let o = snakeid(&[
        "prior",
        "build",
        "--counts",
        csv.to_str().unwrap(),
        "--out",
        bin.to_str().unwrap(),
        "--smoothing",
        "0",
    ]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("783 species") && err.contains("input read as probabilities"), "{err}");
    let size = std::fs::metadata(&bin).unwrap().len();
    let csv_size = std::fs::metadata(&csv).unwrap().len();
    eprintln!("{err}compiled {size} bytes from a {csv_size}-byte CSV");
    assert!(size * 10 < 783 * 188 * 4, "the sparse f16 table should be far smaller than a dense f32 one");
    // With smoothing 0 the table is p(s|c) itself: compare the top species of the USA with the CSV row.
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut rows = text.lines();
    let header: Vec<&str> = rows.next().unwrap().split(',').collect();
    let us: Vec<f64> = rows
        .find(|l| l.starts_with("united-states-of-america,"))
        .unwrap()
        .split(',')
        .skip(1)
        .map(|v| v.parse().unwrap())
        .collect();
    let (best, p) = us.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap();
    let o = snakeid(&["prior", "show", "--country", "US", "--prior", bin.to_str().unwrap(), "--top", "1"]);
    let out = String::from_utf8(o.stdout).unwrap();
    let line = out.lines().nth(1).unwrap();
    assert!(line.contains(header[best + 1]), "{out}");
    let shown: f64 = line.split_whitespace().last().unwrap().parse().unwrap();
    assert!((shown - p).abs() < 1e-3 * p.max(0.01), "{shown} vs {p}");
    // Default smoothing keeps every species possible everywhere.
    let smooth = tmp("snakeclef-smooth.bin");
    assert!(snakeid(&["prior", "build", "--counts", csv.to_str().unwrap(), "--out", smooth.to_str().unwrap()])
        .status
        .success());
    let o = snakeid(&["prior", "show", "--country", "IS", "--prior", smooth.to_str().unwrap(), "--top", "783"]);
    let out = String::from_utf8(o.stdout).unwrap();
    assert_eq!(out.lines().count(), 784, "{out}");
    assert!(out.lines().skip(1).all(|l| l.split_whitespace().last().unwrap().parse::<f64>().unwrap() > 0.0));
}

#[test]
fn bench_json_has_the_documented_keys_and_ordered_percentiles() {
    let o = snakeid(&["bench", "--image", &photo_path("rocket.jpg"), "--iterations", "5", "--warmup", "2", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["iterations"], 5);
    assert_eq!(v["threads"], 1);
    assert_eq!(v["backend"], "cpu");
    assert!(v["cold_start_ms"].as_f64().unwrap() > 0.0 && v["first_call_ms"].as_f64().unwrap() > 0.0);
    assert!(v["peak_rss_mb"].as_f64().unwrap() > 10.0);
    for stage in ["decode", "preprocess", "inference", "postprocess", "total"] {
        let s = &v["stages_ms"][stage];
        let (p50, p90, p99) = (s["p50"].as_f64().unwrap(), s["p90"].as_f64().unwrap(), s["p99"].as_f64().unwrap());
        assert!(0.0 <= p50 && p50 <= p90 && p90 <= p99, "{stage}: {s}");
    }
    assert!(v["stages_ms"]["inference"]["p50"].as_f64() <= v["stages_ms"]["total"]["p50"].as_f64());
}

/// More threads split the JPEG scan (rocket.jpg is large enough), the resampling and the model's operators: the
/// answer is the same, probability for probability.
#[test]
fn identify_on_threads_gives_the_one_thread_answer() {
    let answer = |threads: &str| -> Vec<Value> {
        let o = snakeid(&[
            "identify",
            &photo_path("rocket.jpg"),
            &photo_path("chelsea.png"),
            "--json",
            "--threads",
            threads,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8(o.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["predictions"].clone())
            .collect()
    };
    assert_eq!(answer("1"), answer("3"));
}

#[test]
fn bench_with_threads_and_without_an_image_runs() {
    let o = snakeid(&["bench", "--iterations", "2", "--threads", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.contains("2 thread(s)") && out.contains("inference") && out.contains("peak RSS"), "{out}");
    assert_bad_input(&snakeid(&["bench", "--image", "/no/such.jpg"]), "missing bench image");
    assert_eq!(snakeid(&["bench", "--backend", "quantum"]).status.code(), Some(2));
}

/// A folder data set: one subfolder per species, named in the three accepted ways, plus an unreadable photo.
fn eval_folder() -> PathBuf {
    let root = tmp("eval-folder");
    let _ = std::fs::remove_dir_all(&root);
    for (class, photos) in [
        ("Naja naja", ["chelsea.png", "coffee.png"]),
        ("Sidewinder", ["rocket.jpg", "orange.jpg"]),
        ("61", ["astronaut.webp", "squirrel_cls.jpg"]),
    ] {
        std::fs::create_dir_all(root.join(class)).unwrap();
        for p in photos {
            std::fs::copy(data_dir().join("photos").join(p), root.join(class).join(p)).unwrap();
        }
    }
    std::fs::write(root.join("61").join("broken.jpg"), b"\xFF\xD8\xFF not really").unwrap();
    root
}

#[test]
fn eval_on_a_folder_reports_metrics_skips_bad_photos_and_plots() {
    let data = eval_folder();
    let (report, svg) = (tmp("eval.json"), tmp("eval.svg"));
    let o = snakeid(&[
        "eval",
        data.to_str().unwrap(),
        "--country",
        "US",
        "--json",
        report.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout.clone()).unwrap();
    assert!(
        out.contains("6 photos evaluated, 1 skipped") && out.contains("with prior") && out.contains("macro-F1"),
        "{out}"
    );
    assert!(stderr(&o).contains("broken.jpg"));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(v["n"], 6);
    assert_eq!(v["skipped"], 1);
    let truth: Vec<u64> = v["predictions"].as_array().unwrap().iter().map(|p| p["label"].as_u64().unwrap()).collect();
    assert_eq!(truth, [61, 61, 63, 63, 68, 68]);
    for key in ["without_prior", "with_prior"] {
        let m = &v[key];
        let (top1, top5, f1) =
            (m["top1"].as_f64().unwrap(), m["top5"].as_f64().unwrap(), m["macro_f1"].as_f64().unwrap());
        assert!((0.0..=1.0).contains(&top1) && top1 <= top5 && top5 <= 1.0 && (0.0..=1.0).contains(&f1), "{m}");
        // Recompute top-1 from the recorded rankings.
        let hits = v["predictions"].as_array().unwrap().iter().filter(|p| p[key][0] == p["label"]).count();
        assert!((top1 - hits as f64 / 6.0).abs() < 1e-12);
    }
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("Per-class F1") && svg.trim_end().ends_with("</svg>"));
    let reliability = std::fs::read_to_string(tmp("eval-reliability.svg")).unwrap();
    assert!(
        reliability.starts_with("<svg") && reliability.contains("Reliability") && reliability.contains("ECE"),
        "{reliability}"
    );
    for key in ["without_prior", "with_prior"] {
        let (m, venom) = (&v[key], &v[key]["venom"]);
        assert_eq!(m["calibration"]["bins"].as_array().unwrap().len(), 15);
        assert!((0.0..=1.0).contains(&m["calibration"]["ece"].as_f64().unwrap()), "{m}");
        // 61 (boa) is harmless, 63 (cobra) and 68 (sidewinder) venomous: 2 harmless photos and 4 venomous.
        assert_eq!(
            (venom["harmless_photos"].as_u64(), venom["venomous_photos"].as_u64()),
            (Some(2), Some(4)),
            "{venom}"
        );
        assert!(venom["track1"].as_f64().is_some_and(|t| (0.0..=100.0).contains(&t)), "{venom}");
    }
    assert!(out.contains("V->H") && out.contains("track1") && out.contains("ECE"), "{out}");
}

#[test]
fn eval_refuses_unknown_labels_and_countries_before_any_inference() {
    let data = tmp("eval-bad.csv");
    std::fs::write(&data, format!("path,label,country\n{},Naja nana,IN\n", photo_path("chelsea.png"))).unwrap();
    let err = assert_bad_input(&snakeid(&["eval", data.to_str().unwrap()]), "unknown label");
    assert!(err.contains("Naja nana"), "{err}");
    std::fs::write(&data, format!("path,label,where\n{},Naja naja,Narnia\n", photo_path("chelsea.png"))).unwrap();
    let err =
        assert_bad_input(&snakeid(&["eval", data.to_str().unwrap(), "--country-column", "where"]), "unknown country");
    assert!(err.contains("Narnia"), "{err}");
    let err = assert_bad_input(&snakeid(&["eval", "/no/such/dir"]), "missing data");
    // Regression: a missing path was reported as an invalid image.
    assert!(err.starts_with("error: cannot read /no/such/dir"), "{err}");
}

/// The default bundle's files, unpacked: the raw material of `bundle create` tests.
fn unpacked_default(name: &str) -> PathBuf {
    let dir = tmp(name);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(snakeid(&["bundle", "unpack", "--out", dir.to_str().unwrap()]).status.success());
    dir
}

fn create(dir: &Path, labels: &Path, prior: Option<&Path>, out: &Path) -> Output {
    let (onnx, labels, out) =
        (dir.join("model.onnx"), labels.to_str().unwrap().to_string(), out.to_str().unwrap().to_string());
    let mut args = vec!["bundle", "create", "--onnx", onnx.to_str().unwrap(), "--labels", &labels, "--size", "224"];
    args.extend(["--mean", "0.485,0.456,0.406", "--std", "0.229,0.224,0.225", "--out", &out, "--name", "rebuilt"]);
    let prior = prior.map(|p| p.to_str().unwrap().to_string());
    if let Some(p) = &prior {
        args.extend(["--prior", p]);
    }
    Command::new(env!("CARGO_BIN_EXE_snakeid")).args(&args).output().expect("runs")
}

#[test]
fn bundle_create_from_the_default_files_answers_like_the_embedded_bundle() {
    let dir = unpacked_default("create-src");
    let out = tmp("rebuilt.snkb");
    let o = create(&dir, &dir.join("labels.csv"), Some(&dir.join("prior.bin")), &out);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("1000 classes, 17 species"), "{}", stderr(&o));
    let ours = snakeid(&[
        "identify",
        &photo_path("coffee.png"),
        "--country",
        "BR",
        "--json",
        "--bundle",
        out.to_str().unwrap(),
    ]);
    let embedded = snakeid(&["identify", &photo_path("coffee.png"), "--country", "BR", "--json"]);
    let preds = |o: &Output| serde_json::from_slice::<Value>(&o.stdout).unwrap()["predictions"].clone();
    assert_eq!(preds(&ours), preds(&embedded));
    let info = String::from_utf8(snakeid(&["bundle", "info", "--bundle", out.to_str().unwrap()]).stdout).unwrap();
    assert!(info.starts_with("rebuilt 0.1.0"), "{info}");
}

#[test]
fn bundle_create_builds_a_prior_from_a_snakeclef_style_csv() {
    let dir = unpacked_default("create-csv");
    let labels = std::fs::read_to_string(dir.join("labels.csv")).unwrap();
    let species: Vec<String> = labels
        .lines()
        .skip(1)
        .filter(|l| l.ends_with(",true"))
        .map(|l| l.split(',').nth(2).unwrap().to_string())
        .collect();
    assert_eq!(species.len(), 17);
    let counts: Vec<String> =
        (0..species.len()).map(|i| if species[i] == "Naja naja" { "90".into() } else { "1".into() }).collect();
    let csv = format!("Species/Country,{}\nIN,{}\n", species.join(","), counts.join(","));
    std::fs::write(dir.join("counts.csv"), csv).unwrap();
    let out = tmp("with-csv-prior.snkb");
    let o = create(&dir, &dir.join("labels.csv"), Some(&dir.join("counts.csv")), &out);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = snakeid(&[
        "identify",
        &photo_path("rocket.jpg"),
        "--country",
        "IN",
        "--json",
        "--bundle",
        out.to_str().unwrap(),
    ]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["prior_applied"], true);
    assert_eq!(v["predictions"][0]["scientific_name"], "Naja naja");

    // A prior that lacks one of the model's species is refused, naming it.
    let csv = format!("Species/Country,{}\nIN,{}\n", species[1..].join(","), counts[1..].join(","));
    std::fs::write(dir.join("counts.csv"), csv).unwrap();
    let err = assert_bad_input(
        &create(&dir, &dir.join("labels.csv"), Some(&dir.join("counts.csv")), &tmp("x.snkb")),
        "prior lacks a species",
    );
    assert!(err.contains(&species[0]), "{err}");
}

#[test]
fn bundle_create_refuses_wrong_labels_models_and_settings_with_one_line() {
    let dir = unpacked_default("create-bad");
    let labels = std::fs::read_to_string(dir.join("labels.csv")).unwrap();
    let out = tmp("bad.snkb");
    // One class too few: the model outputs 1000 logits.
    let short: Vec<&str> = labels.lines().take(labels.lines().count() - 1).collect();
    std::fs::write(dir.join("short.csv"), short.join("\n") + "\n").unwrap();
    let err = assert_bad_input(&create(&dir, &dir.join("short.csv"), None, &out), "label count");
    assert!(err.contains("1000") && err.contains("999"), "{err}");
    // A missing column.
    std::fs::write(dir.join("cols.csv"), labels.replace(",is_snake", "")).unwrap();
    let err = assert_bad_input(&create(&dir, &dir.join("cols.csv"), None, &out), "labels columns");
    assert!(err.contains("columns"), "{err}");
    // Not a model at all.
    std::fs::write(dir.join("model.onnx"), b"not a model").unwrap();
    let err = assert_bad_input(&create(&dir, &dir.join("labels.csv"), None, &out), "not a model");
    assert!(err.contains("model.onnx cannot be loaded"), "{err}");
    assert!(!out.exists(), "nothing is written for a refused bundle");
}

#[test]
fn bundle_keygen_sign_verify_and_identify_with_a_trusted_key() {
    let (key, other_key) = (tmp("publisher.key"), tmp("stranger.key"));
    let _ = (std::fs::remove_file(&key), std::fs::remove_file(&other_key));
    let gen = |k: &Path| {
        let o = snakeid(&["bundle", "keygen", "--out", k.to_str().unwrap()]);
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8(o.stdout).unwrap().trim().to_string()
    };
    let (public, stranger) = (gen(&key), gen(&other_key));
    assert_eq!(public.len(), 64);
    #[cfg(unix)]
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions()) & 0o777, 0o600);
    // keygen never overwrites a key.
    assert_bad_input(&snakeid(&["bundle", "keygen", "--out", key.to_str().unwrap()]), "existing key file");

    let dir = unpacked_default("sign-src");
    let signed = tmp("signed.snkb");
    let o = snakeid(&[
        "bundle",
        "sign",
        dir.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--out",
        signed.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let signed = signed.to_str().unwrap();
    let o = snakeid(&["bundle", "verify", signed, "--trusted-key", &public]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("signature verify"), "{}", stderr(&o));
    let info = String::from_utf8(snakeid(&["bundle", "info", "--bundle", signed]).stdout).unwrap();
    assert!(info.contains("signature: present"), "{info}");

    let coffee = photo_path("coffee.png");
    let o = snakeid(&[
        "identify",
        &coffee,
        "--json",
        "--bundle",
        signed,
        "--trusted-key",
        &stranger,
        "--trusted-key",
        &public,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err =
        assert_bad_input(&snakeid(&["identify", &coffee, "--bundle", signed, "--trusted-key", &stranger]), "wrong key");
    assert!(err.contains("untrusted bundle") && err.contains("does not verify"), "{err}");
    let unsigned = dir.to_str().unwrap();
    let err =
        assert_bad_input(&snakeid(&["identify", &coffee, "--bundle", unsigned, "--trusted-key", &public]), "unsigned");
    assert!(err.contains("not signed"), "{err}");
    let err = assert_bad_input(&snakeid(&["bundle", "verify", signed, "--trusted-key", "abc"]), "bad key");
    assert!(err.contains("64 hex digits"), "{err}");
}

fn snakeid_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_snakeid"));
    c.args(args).env("XDG_CACHE_HOME", tmp("cache"));
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("runs")
}

#[test]
fn backend_gpu_reports_the_adapter_and_where_nodes_ran() {
    let o =
        snakeid_env(&["identify", &photo_path("chelsea.png"), "--json", "--country", "IN", "--backend", "gpu"], &[]);
    if !o.status.success() && std::env::var_os("SNAKEID_REQUIRE_GPU").is_none() {
        eprintln!("skipping: no GPU here: {}", stderr(&o));
        return;
    }
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["backend"], "gpu");
    let info = &v["backend_info"];
    assert!(info["adapter"].as_str().is_some_and(|a| !a.is_empty()), "{info}");
    assert!(info["nodes_gpu"].as_u64().unwrap() > 200 && info["nodes_cpu"] == 0, "{info}");
    let o =
        snakeid_env(&["identify", &photo_path("chelsea.png"), "--json", "--country", "IN", "--backend", "cpu"], &[]);
    let cpu: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(cpu["backend"], "cpu");
    assert_eq!(v["predictions"][0]["scientific_name"], cpu["predictions"][0]["scientific_name"]);
}

/// WGPU_BACKEND=gl asks wgpu for a backend this build does not have: the same as a device without a GPU.
#[test]
fn without_an_adapter_gpu_is_a_clear_error_and_auto_uses_the_cpu() {
    let no_gpu = [("WGPU_BACKEND", "gl")];
    let o = snakeid_env(&["identify", &photo_path("chelsea.png"), "--backend", "gpu"], &no_gpu);
    let err = assert_bad_input(&o, "gpu without adapter");
    assert!(err.contains("no GPU adapter"), "{err}");
    let o = snakeid_env(&["identify", &photo_path("chelsea.png"), "--json", "--backend", "auto"], &no_gpu);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["backend"], "cpu");
    assert!(v["backend_info"]["chosen_because"].as_str().unwrap().contains("no usable GPU"), "{v}");
    let o = snakeid_env(&["bench", "--iterations", "1", "--warmup", "1", "--backend", "gpu"], &no_gpu);
    assert_bad_input(&o, "bench gpu without adapter");
}

#[test]
fn backend_auto_measures_once_then_remembers() {
    let cache = tmp("auto-cache");
    let _ = std::fs::remove_dir_all(&cache);
    let run = || {
        let o = Command::new(env!("CARGO_BIN_EXE_snakeid"))
            .args(["identify", &photo_path("chelsea.png"), "--json", "--backend", "auto"])
            .env("XDG_CACHE_HOME", &cache)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice::<Value>(&o.stdout).unwrap()["backend_info"]["chosen_because"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let first = run();
    if first.starts_with("no usable GPU") {
        assert!(std::env::var_os("SNAKEID_REQUIRE_GPU").is_none(), "{first}");
        return;
    }
    assert!(first.starts_with("measured"), "{first}");
    assert!(run().starts_with("remembered"));
    assert!(cache.join("snakeid").join("backend-choices.json").is_file());
}

/// A small photo set of real species for `train`: `per_species` photos of each of `species` (two venomous, two
/// harmless), linked from ../shared/data's ph14 train split into a folder per species, with their species.csv rows.
fn ph14_subset(name: &str, species: &[&str], per_species: usize) -> (PathBuf, PathBuf) {
    let ph14 = snakeid_tests::shared_data().join("snakes/ph14");
    let root = tmp(name);
    let _ = std::fs::remove_dir_all(&root);
    for s in species {
        let from = ph14.join("train").join(s);
        let to = root.join("photos").join(s);
        std::fs::create_dir_all(&to).unwrap();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&from).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        for f in files.iter().take(per_species) {
            std::os::unix::fs::symlink(f, to.join(f.file_name().unwrap())).unwrap();
        }
    }
    let table = std::fs::read_to_string(ph14.join("species.csv")).unwrap();
    let rows: Vec<&str> = table
        .lines()
        .enumerate()
        .filter(|(i, l)| *i == 0 || species.iter().any(|s| l.starts_with(&format!("{s},"))))
        .map(|(_, l)| l)
        .collect();
    let csv = root.join("species.csv");
    std::fs::write(&csv, rows.join("\n") + "\n").unwrap();
    (root.join("photos"), csv)
}

const TAUGHT: [&str; 4] =
    ["Naja samarensis", "Trimeresurus flavomaculatus", "Xenopeltis unicolor", "Calamaria lumbricoidea"];

// Issue 34: `snakeid train` on real photos (15 per species of four ph14 species) makes an ordinary bundle that
// names them, keeps the base's gate, and answers photos it never saw (their val photos); the README's path from a
// folder of photos to a signed bundle, command for command.
#[test]
fn train_teaches_four_real_species_and_the_bundle_answers() {
    let (photos, species) = ph14_subset("train-four", &TAUGHT, 15);
    let out = tmp("four.snkb");
    let report = tmp("four.json");
    let ranges = tmp("four-ranges.csv");
    std::fs::write(&ranges, format!("Species/Country,{}\nPH,1,1,1,1\nIN,0,0,1,0\n", TAUGHT.join(","))).unwrap();
    let o = snakeid(&[
        "train",
        photos.to_str().unwrap(),
        "--species",
        species.to_str().unwrap(),
        "--ranges",
        ranges.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
        report.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // eval, keygen, sign and identify with the trusted key, as the README shows them.
    let val = snakeid_tests::shared_data().join("snakes/ph14/val");
    let kept_apart = tmp("four-val");
    let _ = std::fs::remove_dir_all(&kept_apart);
    for s in TAUGHT {
        std::fs::create_dir_all(&kept_apart).unwrap();
        std::os::unix::fs::symlink(val.join(s), kept_apart.join(s)).unwrap();
    }
    let o = snakeid(&["eval", kept_apart.to_str().unwrap(), "--bundle", out.to_str().unwrap(), "--country", "PH"]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("60 photos evaluated"), "{}", stderr(&o));
    let key = tmp("clinic.key");
    let _ = std::fs::remove_file(&key);
    let o = snakeid(&["bundle", "keygen", "--out", key.to_str().unwrap()]);
    let public = String::from_utf8(o.stdout).unwrap().trim().to_string();
    let signed = tmp("four.signed.snkb");
    assert!(snakeid(&[
        "bundle",
        "sign",
        out.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--out",
        signed.to_str().unwrap()
    ])
    .status
    .success());
    let cobra = std::fs::read_dir(val.join(TAUGHT[0])).unwrap().next().unwrap().unwrap().path();
    let v = identify_json(cobra.to_str().unwrap(), &signed, &["--trusted-key", &public, "--country", "PH"]);
    assert_eq!(v["prior_applied"], true, "{v}");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!((r["photos"].as_u64(), r["held_out"].as_u64()), (Some(60), Some(12)), "{r}");
    assert!(r["venom"]["track1"].as_f64().is_some() && r["temperature"].as_f64().unwrap() > 0.0, "{r}");
    // Its labels: the base's 983 classes that are not snakes, then the four species.
    let o = snakeid(&["bundle", "info", "--bundle", out.to_str().unwrap()]);
    let info = String::from_utf8(o.stdout).unwrap();
    assert!(TAUGHT.iter().all(|s| info.contains(s)), "{info}");
    // Photos it never saw: each species' first five val photos.
    let val = snakeid_tests::shared_data().join("snakes/ph14/val");
    let (mut right, mut total, mut none, mut unwarned) = (0, 0, 0, vec![]);
    for (i, s) in TAUGHT.iter().enumerate() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(val.join(s)).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        for f in files.iter().take(5) {
            let v = identify_json(f.to_str().unwrap(), &out, &[]);
            total += 1;
            right += (v["predictions"][0]["scientific_name"] == TAUGHT[i]) as usize;
            none += (v["snake_verdict"] == "none") as usize;
            if i < 2 && v["snake_verdict"] != "none" && v["venomous_warning"] != true {
                unwarned.push(v);
            }
        }
    }
    eprintln!("taught bundle on 20 unseen photos: {right} right, {none} none, {} venomous unwarned", unwarned.len());
    // Measured: 18 of 20 right, none `none` (chance is 5 of 20), all 10 venomous photos warned (photos shown at 288
    // pixels, `train`'s default since session 23). At the base's 224 pixels one Samar cobra was taken for a reed
    // snake at 99.98% by a head taught from 15 photos a species: a real V->H error of so small a teaching set, so one
    // is still allowed here (docs/benchmark-log.md, "Teaching").
    assert!(right >= 15 && none <= 1, "{right} of {total} right, {none} none");
    assert!(unwarned.len() <= 1, "venomous species it was taught, unwarned: {unwarned:?}");
}

#[test]
fn train_refuses_bad_input_in_one_line_and_writes_nothing() {
    let (photos, species) = ph14_subset("train-bad", &TAUGHT[..2], 6);
    let out = tmp("bad.snkb");
    let run = |photos: &Path, species: &Path, more: &[&str]| {
        let mut args = vec![
            "train",
            photos.to_str().unwrap(),
            "--species",
            species.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(more);
        snakeid(&args)
    };
    // A folder that is not in the species table.
    std::fs::create_dir_all(photos.join("Naja naja")).unwrap();
    std::fs::copy(
        photos.join(TAUGHT[0]).read_dir().unwrap().next().unwrap().unwrap().path(),
        photos.join("Naja naja/a.jpg"),
    )
    .unwrap();
    let o = run(&photos, &species, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("not in the species table: Naja naja") && stderr(&o).lines().count() == 1,
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(photos.join("Naja naja")).unwrap();
    // A species with fewer than five readable photos (four of its six made unreadable).
    let dir = photos.join(TAUGHT[1]);
    for f in dir.read_dir().unwrap().map(|e| e.unwrap().path()).take(2) {
        std::fs::remove_file(&f).unwrap();
        std::fs::write(&f, b"not a photo").unwrap();
    }
    let o = run(&photos, &species, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("each species needs at least 5"), "{}", stderr(&o));
    // A species table without the venomous column.
    let broken = tmp("broken-species.csv");
    std::fs::write(&broken, "scientific_name,label,genus,family\nNaja samarensis,Samar cobra,Naja,Elapidae\n").unwrap();
    let o = run(&photos, &broken, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("needs a column \"venomous\""), "{}", stderr(&o));
    // An input side the network cannot be shown at.
    let o = run(&photos, &species, &["--input-side", "5"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("input side of 5 pixels") && stderr(&o).lines().count() == 1, "{}", stderr(&o));
    assert!(!out.exists(), "nothing written");
}
