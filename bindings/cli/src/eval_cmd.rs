//! `snakeid eval`: top-1, top-5, macro-F1, venomous/harmless confusions, SnakeCLEF track 1 and calibration error
//! (with and without the country prior) on a labelled photo set.

use crate::dataset::Dataset;
use crate::metrics::{self, Metrics, VenomConfusion};
use crate::plot;
use crate::write_file;
use serde::Serialize;
use serde_json::json;
use snakeid::internals::calibration::{self, Reliability};
use snakeid::{internals::labels::Label, Error};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// A folder with one subfolder per species (named by scientific name, label or class index), or a CSV with
    /// columns `path,label[,country]` (paths relative to the CSV).
    data: PathBuf,
    /// The CSV column holding each photo's country (default: `country` when the CSV has it).
    #[arg(long)]
    country_column: Option<String>,
    /// A country for every photo of a folder data set.
    #[arg(long)]
    country: Option<String>,
    /// A bundle directory or packed file instead of the embedded default.
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// Write the full report (metrics, per-class scores, confusions, every prediction) as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write a per-class F1 chart (SVG), and the reliability diagram beside it (`NAME-reliability.svg`).
    #[arg(long)]
    plot: Option<PathBuf>,
}

/// Every score of one ranking (without or with the prior).
#[derive(Serialize)]
struct Scores {
    #[serde(flatten)]
    metrics: Metrics,
    venom: VenomConfusion,
    /// Of the top-1 probability (species given a snake), in 15 bins.
    calibration: Reliability,
}

impl Scores {
    fn new(truth: &[usize], ranked: &[Ranked], labels: &[Label]) -> Self {
        let classes: Vec<Vec<usize>> = ranked.iter().map(|r| r.classes.clone()).collect();
        let metrics = metrics::evaluate(truth, &classes);
        let top1: Vec<usize> = classes.iter().map(|r| r[0]).collect();
        let venom = metrics::venom_confusion(truth, &top1, |c| labels[c].venomous, metrics.macro_f1);
        let confidence: Vec<f64> = ranked.iter().map(|r| r.probabilities[0] as f64).collect();
        let correct: Vec<bool> = truth.iter().zip(&top1).map(|(t, p)| t == p).collect();
        let calibration = calibration::reliability(&confidence, &correct, calibration::ECE_BINS);
        Scores { metrics, venom, calibration }
    }
}

/// One photo's top five species and their probabilities.
struct Ranked {
    classes: Vec<usize>,
    probabilities: Vec<f32>,
}

pub fn run(args: Args) -> snakeid::Result<ExitCode> {
    let classifier = crate::load_classifier(args.bundle.as_ref(), &[])?;
    let data = Dataset::read(&args.data, args.country.as_deref(), args.country_column.as_deref(), &classifier)?;
    // Countries are checked before any inference: a typo in row 900 should not cost 899 inferences.
    // One prior row per distinct country, not per photo.
    let mut priors: HashMap<Option<&str>, Option<Vec<f32>>> = HashMap::new();
    for s in &data.samples {
        let country = s.country.as_deref();
        if !priors.contains_key(&country) {
            priors.insert(country, classifier.prior_for(country)?.1);
        }
    }
    let any_prior = priors.values().any(Option::is_some);

    let scored = data.score(&classifier, "eval");
    for (path, e) in &scored.skipped {
        eprintln!("skipped {path}: {e}");
    }
    if scored.kept.is_empty() {
        return Err(Error::InvalidImage("no photo of the data set could be read".into()));
    }
    let rank = |logits: &[f32], prior: Option<&[f32]>| {
        let d = classifier.decide(logits, prior, 5);
        Ranked {
            classes: d.predictions.iter().map(|p| p.class_index).collect(),
            probabilities: d.predictions.iter().map(|p| p.probability).collect(),
        }
    };
    let plain: Vec<Ranked> = scored.logits.iter().map(|l| rank(l, None)).collect();
    let with_prior: Vec<Ranked> = scored
        .kept
        .iter()
        .zip(&scored.logits)
        .map(|(&i, l)| rank(l, priors[&data.samples[i].country.as_deref()].as_deref()))
        .collect();
    let kept_truth: Vec<usize> = scored.kept.iter().map(|&i| data.truth[i]).collect();
    let labels = &classifier.bundle().labels;
    let s_plain = Scores::new(&kept_truth, &plain, labels);
    let s_prior = any_prior.then(|| Scores::new(&kept_truth, &with_prior, labels));
    print_human(&s_plain, s_prior.as_ref(), labels, scored.skipped.len());

    if let Some(path) = &args.json {
        let predictions: Vec<_> = scored
            .kept
            .iter()
            .enumerate()
            .map(|(j, &i)| {
                json!({"path": data.samples[i].path.display().to_string(), "label": data.truth[i], "country": data.samples[i].country,
                       "without_prior": plain[j].classes, "with_prior": with_prior[j].classes,
                       "p_without_prior": plain[j].probabilities, "p_with_prior": with_prior[j].probabilities})
            })
            .collect();
        let classes: serde_json::Map<String, serde_json::Value> = labels
            .iter()
            .filter(|l| l.is_snake)
            .map(|l| {
                (
                    l.class_index.to_string(),
                    json!({"label": l.label, "scientific_name": l.scientific_name, "venomous": l.venomous}),
                )
            })
            .collect();
        let report = json!({"n": scored.kept.len(), "skipped": scored.skipped.len(),
                            "temperature": classifier.bundle().manifest.model.temperature,
                            "without_prior": s_plain, "with_prior": s_prior, "classes": classes, "predictions": predictions});
        write_file(path, serde_json::to_string_pretty(&report).expect("report serialises") + "\n")?;
    }
    if let Some(path) = &args.plot {
        let name = |c: usize| labels.get(c).map_or_else(|| c.to_string(), |l| l.scientific_name.clone());
        write_file(path, plot::per_class_f1_svg(&s_plain.metrics, s_prior.as_ref().map(|s| &s.metrics), name))?;
        let reliability =
            s_prior.as_ref().map(|s| (&s.calibration, "with prior")).unwrap_or((&s_plain.calibration, "without prior"));
        write_file(&reliability_path(path), plot::reliability_svg(reliability.0, reliability.1, scored.kept.len()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `f1.svg` -> `f1-reliability.svg`, in the same folder.
fn reliability_path(plot: &Path) -> PathBuf {
    let stem = plot.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    plot.with_file_name(format!("{stem}-reliability.svg"))
}

fn print_human(plain: &Scores, prior: Option<&Scores>, labels: &[Label], skipped: usize) {
    println!(
        "{} photos evaluated{}",
        plain.metrics.n,
        if skipped > 0 { format!(", {skipped} skipped (unreadable)") } else { String::new() }
    );
    let pct = |r: Option<f64>| r.map_or_else(|| "-".to_string(), |r| format!("{:.1}%", r * 100.0));
    println!(
        "{:<14} {:>6} {:>6} {:>8} {:>6} {:>7} {:>7} {:>7} {:>6}",
        "", "top-1", "top-5", "macro-F1", "ECE", "V->H", "H->V", "V->V'", "track1"
    );
    let rows = [("without prior", Some(plain)), ("with prior", prior)];
    for (name, s) in rows.iter().filter_map(|(n, s)| s.map(|s| (n, s))) {
        let (m, v) = (&s.metrics, &s.venom);
        println!(
            "{name:<14} {:>6.4} {:>6.4} {:>8.4} {:>6.4} {:>7} {:>7} {:>7} {:>6}",
            m.top1,
            m.top5,
            m.macro_f1,
            s.calibration.ece,
            pct(v.venomous_to_harmless),
            pct(v.harmless_to_venomous),
            pct(v.venomous_to_other_venomous),
            v.track1.map_or_else(|| "-".to_string(), |t| format!("{t:.2}"))
        );
    }
    println!("V->H: venomous photos called a harmless species (the dangerous error); H->V: harmless called venomous;");
    println!("V->V': venomous called another venomous species; track1: SnakeCLEF 2023/2024 (100 is perfect)");
    let shown = &prior.unwrap_or(plain).metrics;
    println!("\nper class ({}):", if prior.is_some() { "with prior" } else { "without prior" });
    println!("{:<34} {:>7} {:>9} {:>7} {:>7}", "species", "support", "precision", "recall", "F1");
    let name = |c: usize| labels.get(c).map_or("?", |l| l.scientific_name.as_str());
    for c in &shown.per_class {
        println!("{:<34} {:>7} {:>9.3} {:>7.3} {:>7.3}", name(c.class_index), c.support, c.precision, c.recall, c.f1);
    }
    if !shown.confused.is_empty() {
        println!("\nmost confused (true -> predicted):");
        for c in shown.confused.iter().take(10) {
            println!("{:>5}  {} -> {}", c.count, name(c.true_class), name(c.predicted_class));
        }
    }
}
