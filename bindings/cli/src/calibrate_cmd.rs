//! `snakeid calibrate`: fits the bundle's temperature on a labelled photo set (minimum negative log-likelihood,
//! Guo et al. 2017) and writes the calibrated bundle.

use crate::dataset::Dataset;
use crate::{read_file, write_file};
use snakeid::internals::calibration::{self, MIN_PHOTOS};
use snakeid::{Bundle, Classifier, Error};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The labelled photos, as `eval` takes them: a folder with one subfolder per species, or a CSV `path,label`.
    data: PathBuf,
    /// The bundle to calibrate (directory or packed file) instead of the embedded default.
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// Where to write the calibrated bundle (packed, unsigned: sign it again with `snakeid bundle sign`).
    #[arg(long)]
    out: PathBuf,
    /// Also write the fit as JSON: temperatures, NLL and ECE before and after, and its inputs (each photo's
    /// snake-class logits and true species) so that anyone can check it.
    #[arg(long)]
    json: Option<PathBuf>,
}

pub fn run(args: Args) -> snakeid::Result<ExitCode> {
    let packed = match &args.bundle {
        Some(p) if p.is_dir() => Bundle::pack_dir(p)?,
        Some(p) => read_file(p)?,
        None => Bundle::embedded_default_bytes()?.to_vec(),
    };
    let classifier = Classifier::new(Bundle::from_packed(&packed)?)?;
    let data = Dataset::read(&args.data, None, None, &classifier)?;
    if data.samples.len() < MIN_PHOTOS {
        return Err(Error::InvalidImage(format!(
            "{} photos: calibration needs at least {MIN_PHOTOS}",
            data.samples.len()
        )));
    }
    let scored = data.score(&classifier, "calibrate");
    if scored.kept.len() < MIN_PHOTOS {
        let first = scored.skipped.first().map(|(p, e)| format!(" (first: {p}: {e})")).unwrap_or_default();
        return Err(Error::InvalidImage(format!(
            "only {} of {} photos could be read; calibration needs at least {MIN_PHOTOS}{first}",
            scored.kept.len(),
            data.samples.len()
        )));
    }
    // Fit the distribution the answer reports: the species given a snake (softmax over the snake classes).
    let species: Vec<usize> = classifier.bundle().species().map(|l| l.class_index).collect();
    let logits: Vec<Vec<f32>> = scored.logits.iter().map(|z| species.iter().map(|&c| z[c]).collect()).collect();
    let truth: Vec<usize> = scored
        .kept
        .iter()
        .map(|&i| species.iter().position(|&c| c == data.truth[i]).expect("labels resolve to species"))
        .collect();
    let before = classifier.bundle().manifest.model.temperature as f64;
    let fitted = calibration::fit_temperature(&logits, &truth);
    let calibrated = Bundle::repack_with_manifest(&packed, |m| m.model.temperature = fitted as f32)?;
    write_file(&args.out, &calibrated)?;
    let ece = |t: f64| calibration::reliability_at(&logits, &truth, t).ece;
    let (nll_before, nll_after, ece_before, ece_after) = (
        calibration::nll(&logits, &truth, before),
        calibration::nll(&logits, &truth, fitted),
        ece(before),
        ece(fitted),
    );
    println!(
        "temperature {before:.4} -> {fitted:.4} on {} photos{}: NLL {nll_before:.4} -> {nll_after:.4}, ECE {ece_before:.4} -> {ece_after:.4} (species given a snake)",
        scored.kept.len(),
        if scored.skipped.is_empty() { String::new() } else { format!(" ({} unreadable, skipped)", scored.skipped.len()) },
    );
    if let Some(path) = &args.json {
        let report = serde_json::json!({"n": scored.kept.len(), "skipped": scored.skipped.len(),
            "temperature_before": before, "temperature": fitted as f32, "temperature_fitted": fitted,
            "nll_before": nll_before, "nll_after": nll_after, "ece_before": ece_before, "ece_after": ece_after,
            "species": species, "logits": logits, "truth": truth});
        write_file(path, report.to_string() + "\n")?;
    }
    eprintln!("wrote {} (unsigned: sign it again with `snakeid bundle sign` to ship it)", args.out.display());
    Ok(ExitCode::SUCCESS)
}
