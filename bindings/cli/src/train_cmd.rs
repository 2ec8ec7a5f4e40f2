//! `snakeid train`: a bundle taught a region's own species from a folder of their photos (the core's `teach`):
//! features once per photo and view, a held-out part for the report and the temperature, then the head refitted
//! on every photo.

use crate::dataset::Progress;
use crate::identify::read_photo;
use crate::metrics::{self, Metrics, VenomConfusion};
use crate::{read_file, write_file};
use serde::Serialize;
use snakeid::internals::calibration::{self, Reliability};
use snakeid::internals::labels;
use snakeid::teach::{Settings, Species, Teacher, Tuning};
use snakeid::{Bundle, Error};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// One folder per species, named by scientific name (as `eval` reads folders), holding all its photos.
    data: PathBuf,
    /// `scientific_name,label,genus,family,venomous`, one row per species.
    #[arg(long)]
    species: PathBuf,
    /// Where to write the taught bundle (packed, unsigned).
    #[arg(long)]
    out: PathBuf,
    /// The bundle whose network gives the features (default: the embedded one); its model must end in a pooled
    /// feature vector and a fully connected layer.
    #[arg(long)]
    base: Option<PathBuf>,
    /// Presence by country (`prior build`'s CSV) for the taught species; without it no prior.
    #[arg(long)]
    ranges: Option<PathBuf>,
    /// Write the report as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Which photos are held out for the report and the temperature.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The part of each species' photos held out.
    #[arg(long, default_value_t = 0.2)]
    held_out: f64,
    /// The side, in pixels, photos are shown to the network at (the taught bundle keeps it): larger than the
    /// base's own 224 sees a snake's scales better; 288 measured best for its cost (`snakeid::teach::INPUT_SIDE`).
    #[arg(long, default_value_t = snakeid::teach::INPUT_SIDE)]
    input_side: u32,
    /// Threads for the feature pass.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=256))]
    threads: u32,
}

/// A species needs this many readable photos to be taught.
const MIN_PHOTOS: usize = 5;

#[derive(Serialize)]
struct Report {
    species: Vec<String>,
    photos: usize,
    skipped: Vec<(String, String)>,
    held_out: usize,
    /// Top-1 and top-5 on the held-out photos, per species precision/recall/F1, the most confused pairs.
    metrics: Metrics,
    venom: VenomConfusion,
    /// Of the held-out photos: venomous ones warned, harmless ones warned (a venomous species at >= 10%).
    venomous_warned: Option<f64>,
    harmless_warned: Option<f64>,
    temperature: f64,
    /// The warning's line chosen on the held-out photos (see `warning_line`).
    venom_threshold: f32,
    calibration_before: Reliability,
    calibration_after: Reliability,
    seconds_features: f64,
    seconds_fit: f64,
}

pub fn run(a: Args) -> snakeid::Result<ExitCode> {
    let species = read_species(&a.species)?;
    let photos = read_folders(&a.data, &species)?;
    let base = match &a.base {
        Some(p) if p.is_dir() => Bundle::from_packed(&Bundle::pack_dir(p)?)?,
        Some(p) => Bundle::from_packed(&read_file(p)?)?,
        None => Bundle::embedded_default()?,
    };
    let ranges = a.ranges.as_ref().map(|p| read_file(p)).transpose()?;
    if !(0.0..0.9).contains(&a.held_out) {
        return Err(Error::InvalidImage(format!("--held-out {} must lie in [0, 0.9)", a.held_out)));
    }
    let teacher = Teacher::at_side(&base, a.threads as usize, a.input_side)?;

    // Features once per photo and view.
    let start = std::time::Instant::now();
    let progress = Progress::new("features", photos.len());
    let mut examples: Vec<(Vec<Vec<f32>>, usize)> = Vec::new();
    let mut skipped = Vec::new();
    for (i, (path, s)) in photos.iter().enumerate() {
        progress.show(i);
        match read_photo(path).and_then(|b| teacher.features(&b)) {
            Ok(f) => examples.push((f, *s)),
            Err(e) => skipped.push((path.display().to_string(), e.to_string())),
        }
    }
    progress.done();
    let seconds_features = start.elapsed().as_secs_f64();
    for (p, e) in &skipped {
        eprintln!("skipped {p}: {e}");
    }
    let mut per_species = vec![0usize; species.len()];
    examples.iter().for_each(|(_, s)| per_species[*s] += 1);
    if let Some((s, n)) = per_species.iter().enumerate().find(|(_, &n)| n < MIN_PHOTOS) {
        return Err(Error::InvalidImage(format!(
            "{}: {n} readable photos; each species needs at least {MIN_PHOTOS}",
            species[s].scientific_name
        )));
    }

    // The held-out part: a seeded shuffle per species, the first `held_out` of each.
    let held: Vec<bool> = held_out_mask(&examples, species.len(), a.held_out, a.seed);
    let (train, test): (Vec<_>, Vec<_>) = examples.iter().zip(&held).partition(|(_, h)| !**h);
    let train: Vec<_> = train.into_iter().map(|(e, _)| e).collect();
    let test: Vec<_> = test.into_iter().map(|(e, _)| e).collect();
    let start = std::time::Instant::now();
    let settings = Settings::default();
    let base_venom = base.manifest.decision.venom_threshold;
    let (tuning, report_parts) = if test.is_empty() {
        (Tuning { temperature: 1.0, venom_threshold: base_venom }, None)
    } else {
        let head = teacher.fit(train, species.len(), settings);
        // Each held-out photo is answered from its first view, as `identify` answers a snake.
        let logits: Vec<Vec<f32>> = test.iter().map(|(f, _)| teacher.head_logits(&head, &f[0])).collect();
        let truth: Vec<usize> = test.iter().map(|(_, s)| *s).collect();
        let temperature = calibration::fit_temperature(&logits, &truth);
        let venom_threshold = warning_line(&logits, &truth, temperature, &|c| species[c].venomous, base_venom);
        (Tuning { temperature: temperature as f32, venom_threshold }, Some((logits, truth)))
    };
    let temperature = tuning.temperature as f64;
    let head = teacher.fit(&examples, species.len(), settings);
    let seconds_fit = start.elapsed().as_secs_f64();
    let name = a.out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "taught".into());
    let bundle = teacher.bundle(&species, &head, tuning, ranges.as_deref(), &name)?;

    let venomous = |c: usize| species[c].venomous;
    let report = report_parts.map(|(logits, truth)| {
        let ranked: Vec<Vec<usize>> = logits.iter().map(|z| ranking(z)).collect();
        let metrics = metrics::evaluate(&truth, &ranked);
        let top1: Vec<usize> = ranked.iter().map(|r| r[0]).collect();
        let venom = metrics::venom_confusion(&truth, &top1, venomous, metrics.macro_f1);
        let warned = |group: bool| {
            let photos: Vec<usize> = (0..truth.len()).filter(|&i| venomous(truth[i]) == group).collect();
            (!photos.is_empty()).then(|| {
                let w = photos
                    .iter()
                    .filter(|&&i| top_venomous(&logits[i], temperature, &venomous) >= tuning.venom_threshold)
                    .count();
                w as f64 / photos.len() as f64
            })
        };
        Report {
            species: species.iter().map(|s| s.scientific_name.clone()).collect(),
            photos: examples.len(),
            skipped: skipped.clone(),
            held_out: truth.len(),
            venomous_warned: warned(true),
            harmless_warned: warned(false),
            calibration_before: calibration::reliability_at(&logits, &truth, 1.0),
            calibration_after: calibration::reliability_at(&logits, &truth, temperature),
            metrics,
            venom,
            temperature,
            venom_threshold: tuning.venom_threshold,
            seconds_features,
            seconds_fit,
        }
    });
    write_file(&a.out, &bundle)?;
    match &report {
        Some(r) => print_report(r, &species),
        None => println!("{} photos, none held out: no report (--held-out 0)", examples.len()),
    }
    if let (Some(path), Some(r)) = (&a.json, &report) {
        write_file(path, serde_json::to_string_pretty(r).expect("report serialises") + "\n")?;
    }
    eprintln!(
        "wrote {} ({} species; features {seconds_features:.0} s, fit {seconds_fit:.0} s; unsigned: sign it with `snakeid bundle sign` to ship it)",
        a.out.display(),
        species.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// Classes by decreasing logit.
fn ranking(z: &[f32]) -> Vec<usize> {
    let mut r: Vec<usize> = (0..z.len()).collect();
    r.sort_by(|&i, &j| z[j].total_cmp(&z[i]).then(i.cmp(&j)));
    r
}

/// The likeliest venomous species' probability (the warning compares it with its line).
fn top_venomous(logits: &[f32], temperature: f64, venomous: &dyn Fn(usize) -> bool) -> f32 {
    let p = snakeid::internals::softmax(&logits.iter().map(|z| z / temperature as f32).collect::<Vec<_>>());
    p.iter().enumerate().filter(|(c, _)| venomous(*c)).map(|(_, &p)| p).fold(0.0, f32::max)
}

/// The warning's line: the base's (10%), lowered until 99% of the held-out venomous snakes warn, but never under 2%
/// (below that the warning would name every venomous species).
fn warning_line(
    logits: &[Vec<f32>],
    truth: &[usize],
    temperature: f64,
    venomous: &dyn Fn(usize) -> bool,
    base: f32,
) -> f32 {
    let mut v: Vec<f32> = truth
        .iter()
        .zip(logits)
        .filter(|(t, _)| venomous(**t))
        .map(|(_, z)| top_venomous(z, temperature, venomous))
        .collect();
    if v.is_empty() {
        return base;
    }
    v.sort_by(f32::total_cmp);
    let one_percent = v[(v.len() as f64 * 0.01).floor() as usize];
    // Just under it, so that the photo it comes from warns.
    (one_percent * 0.999).clamp(0.02, base)
}

fn held_out_mask(examples: &[(Vec<Vec<f32>>, usize)], species: usize, part: f64, seed: u64) -> Vec<bool> {
    let mut held = vec![false; examples.len()];
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for s in 0..species {
        let mut idx: Vec<usize> = (0..examples.len()).filter(|&i| examples[i].1 == s).collect();
        // Fisher-Yates with a xorshift: the same seed holds out the same photos on every machine.
        for i in (1..idx.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            idx.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let n = (idx.len() as f64 * part).round() as usize;
        idx.iter().take(n).for_each(|&i| held[i] = true);
    }
    held
}

fn print_report(r: &Report, species: &[Species]) {
    let pct = |x: Option<f64>| x.map_or_else(|| "-".into(), |v| format!("{:.1}%", v * 100.0));
    println!(
        "{} photos ({} skipped), {} held out: top-1 {:.1}%, top-5 {:.1}%, macro-F1 {:.3}",
        r.photos,
        r.skipped.len(),
        r.held_out,
        r.metrics.top1 * 100.0,
        r.metrics.top5 * 100.0,
        r.metrics.macro_f1
    );
    println!(
        "venomous warned {}, harmless warned {}; V->H {}, H->V {}; track-1 {}",
        pct(r.venomous_warned),
        pct(r.harmless_warned),
        pct(r.venom.venomous_to_harmless),
        pct(r.venom.harmless_to_venomous),
        r.venom.track1.map_or_else(|| "-".into(), |t| format!("{t:.2}"))
    );
    println!(
        "temperature {:.3}: ECE {:.4} -> {:.4}; the warning at {:.1}% (chosen on these photos: the rates above read high)",
        r.temperature,
        r.calibration_before.ece,
        r.calibration_after.ece,
        r.venom_threshold * 100.0
    );
    println!("\n{:<34} {:>7} {:>9} {:>7}", "species (held out)", "support", "precision", "recall");
    for c in &r.metrics.per_class {
        let s = &species[c.class_index];
        println!(
            "{:<34} {:>7} {:>9.3} {:>7.3}",
            format!("{}{}", s.scientific_name, if s.venomous { " (V)" } else { "" }),
            c.support,
            c.precision,
            c.recall
        );
    }
    if !r.metrics.confused.is_empty() {
        println!("\nmost confused (true -> predicted):");
        for c in r.metrics.confused.iter().take(5) {
            println!(
                "{:>5}  {} -> {}",
                c.count, species[c.true_class].scientific_name, species[c.predicted_class].scientific_name
            );
        }
    }
}

/// `species.csv`: `scientific_name,label,genus,family,venomous`.
fn read_species(path: &Path) -> snakeid::Result<Vec<Species>> {
    let bad = |msg: String| Error::InvalidImage(format!("{}: {msg}", path.display()));
    let bytes = read_file(path)?;
    let mut rdr = csv::Reader::from_reader(bytes.as_slice());
    let header: Vec<String> =
        rdr.headers().map_err(|e| bad(e.to_string()))?.iter().map(|h| h.trim().to_string()).collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| bad(format!("needs a column {name:?}; found {}", header.join(","))))
    };
    let cols = [col("scientific_name")?, col("label")?, col("genus")?, col("family")?, col("venomous")?];
    let mut out: Vec<Species> = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| bad(format!("row {}: {e}", i + 2)))?;
        let f = |c: usize| rec.get(cols[c]).unwrap_or("").trim().to_string();
        let venomous = labels::parse_flag(&f(4)).ok_or_else(|| {
            bad(format!("row {}: venomous must be true or false, got {:?}", i + 2, f(4).to_ascii_lowercase()))
        })?;
        let s = Species { scientific_name: f(0), label: f(1), genus: f(2), family: f(3), venomous };
        if s.scientific_name.is_empty() || out.iter().any(|o| o.scientific_name == s.scientific_name) {
            return Err(bad(format!("row {}: scientific_name empty or given twice", i + 2)));
        }
        out.push(s);
    }
    if out.len() < 2 {
        return Err(bad(format!("{} species: teaching needs at least 2", out.len())));
    }
    Ok(out)
}

/// Every photo under `data/<scientific name>/`, with its species' index; a folder not in the table, or a species
/// without a folder of photos, is an error before any photo is read.
fn read_folders(data: &Path, species: &[Species]) -> snakeid::Result<Vec<(PathBuf, usize)>> {
    let by_name: BTreeMap<String, usize> =
        species.iter().enumerate().map(|(i, s)| (s.scientific_name.to_lowercase(), i)).collect();
    let folders = crate::dataset::read_folder(data, None)?;
    let mut out = Vec::new();
    let mut unknown = Vec::new();
    for s in folders {
        match by_name.get(&s.label.to_lowercase()) {
            Some(&i) => out.push((s.path, i)),
            None if !unknown.contains(&s.label) => unknown.push(s.label),
            None => {}
        }
    }
    if !unknown.is_empty() {
        return Err(Error::InvalidImage(format!(
            "{}: folder(s) not in the species table: {}",
            data.display(),
            unknown.join(", ")
        )));
    }
    if let Some(s) = species.iter().enumerate().find(|(i, _)| !out.iter().any(|(_, j)| j == i)) {
        return Err(Error::InvalidImage(format!(
            "{}: no photos of {} (a folder named by its scientific name)",
            data.display(),
            s.1.scientific_name
        )));
    }
    Ok(out)
}
