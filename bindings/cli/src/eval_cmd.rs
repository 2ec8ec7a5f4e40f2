//! `snakeid eval`: top-1, top-5 and macro-F1 (with and without the country prior) on a labelled photo set.

use crate::identify::read_photo;
use crate::plot;
use serde_json::json;
use snakeid::metrics::{self, Metrics};
use snakeid::{labels::species_key, Classifier, Error};
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
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
    /// Write a per-class F1 chart (SVG).
    #[arg(long)]
    plot: Option<PathBuf>,
}

struct Sample {
    path: PathBuf,
    label: String,
    country: Option<String>,
}

const IMAGE_EXTENSIONS: [&str; 5] = ["jpg", "jpeg", "png", "webp", "jfif"];

pub fn run(args: Args) -> snakeid::Result<ExitCode> {
    let classifier = crate::load_classifier(args.bundle.as_ref(), &[])?;
    let samples = if args.data.is_dir() {
        read_folder(&args.data, args.country.as_deref())?
    } else {
        read_csv(&args.data, args.country_column.as_deref())?
    };
    if samples.is_empty() {
        return Err(Error::InvalidImage(format!("{}: no photos found", args.data.display())));
    }
    let truth = resolve_labels(&classifier, &samples)?;
    // Countries are checked before any inference: a typo in row 900 should not cost 899 inferences.
    // One prior row per distinct country, not per photo.
    let mut priors: HashMap<Option<&str>, Option<Vec<f32>>> = HashMap::new();
    for s in &samples {
        let country = s.country.as_deref();
        if !priors.contains_key(&country) {
            priors.insert(country, classifier.prior_for(country)?.1);
        }
    }
    let any_prior = priors.values().any(Option::is_some);

    let mut kept = Vec::new();
    let (mut plain, mut with_prior) = (Vec::new(), Vec::new());
    let mut skipped = Vec::new();
    let progress = Progress::new(samples.len());
    for (i, s) in samples.iter().enumerate() {
        progress.show(i);
        let logits = read_photo(&s.path).and_then(|b| classifier.preprocess(&b)).and_then(|x| classifier.logits(x));
        match logits {
            Ok(logits) => {
                let rank = |prior: Option<&[f32]>| -> Vec<usize> {
                    classifier.decide(&logits, prior, 5).predictions.iter().map(|p| p.class_index).collect()
                };
                plain.push(rank(None));
                with_prior.push(rank(priors[&s.country.as_deref()].as_deref()));
                kept.push(i);
            }
            Err(e) => skipped.push((s.path.display().to_string(), e.to_string())),
        }
    }
    progress.done();
    for (path, e) in &skipped {
        eprintln!("skipped {path}: {e}");
    }
    if kept.is_empty() {
        return Err(Error::InvalidImage("no photo of the data set could be read".into()));
    }
    let kept_truth: Vec<usize> = kept.iter().map(|&i| truth[i]).collect();
    let m_plain = metrics::evaluate(&kept_truth, &plain);
    let m_prior = any_prior.then(|| metrics::evaluate(&kept_truth, &with_prior));
    let labels = &classifier.bundle().labels;
    print_human(&m_plain, m_prior.as_ref(), labels, skipped.len());

    if let Some(path) = &args.json {
        let predictions: Vec<_> = kept
            .iter()
            .enumerate()
            .map(|(j, &i)| {
                json!({"path": samples[i].path.display().to_string(), "label": truth[i], "country": samples[i].country,
                       "without_prior": plain[j], "with_prior": with_prior[j]})
            })
            .collect();
        let classes: serde_json::Map<String, serde_json::Value> = labels
            .iter()
            .filter(|l| l.is_snake)
            .map(|l| (l.class_index.to_string(), json!({"label": l.label, "scientific_name": l.scientific_name})))
            .collect();
        let report = json!({"n": kept.len(), "skipped": skipped.len(), "without_prior": m_plain, "with_prior": m_prior,
                            "classes": classes, "predictions": predictions});
        std::fs::write(path, serde_json::to_string_pretty(&report).expect("report serialises") + "\n").map_err(|e| Error::Io { path: path.clone(), source: e })?;
    }
    if let Some(path) = &args.plot {
        let name = |c: usize| labels.get(c).map_or_else(|| c.to_string(), |l| l.scientific_name.clone());
        let svg = plot::per_class_f1_svg(&m_plain, m_prior.as_ref(), name);
        std::fs::write(path, svg).map_err(|e| Error::Io { path: path.clone(), source: e })?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_human(plain: &Metrics, prior: Option<&Metrics>, labels: &[snakeid::labels::Label], skipped: usize) {
    println!("{} photos evaluated{}", plain.n, if skipped > 0 { format!(", {skipped} skipped (unreadable)") } else { String::new() });
    println!("{:<16} {:>7} {:>7} {:>9}", "", "top-1", "top-5", "macro-F1");
    println!("{:<16} {:>7.4} {:>7.4} {:>9.4}", "without prior", plain.top1, plain.top5, plain.macro_f1);
    if let Some(m) = prior {
        println!("{:<16} {:>7.4} {:>7.4} {:>9.4}", "with prior", m.top1, m.top5, m.macro_f1);
    }
    let shown = prior.unwrap_or(plain);
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

fn read_folder(dir: &Path, country: Option<&str>) -> snakeid::Result<Vec<Sample>> {
    fn io(p: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |e| Error::Io { path: p.to_path_buf(), source: e }
    }
    let mut classes: Vec<PathBuf> = std::fs::read_dir(dir).map_err(io(dir))?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect();
    classes.sort();
    let mut out = Vec::new();
    for class in classes {
        let label = class.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&class).map_err(io(&class))?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.retain(|p| p.extension().and_then(|e| e.to_str()).is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str())));
        files.sort();
        out.extend(files.into_iter().map(|path| Sample { path, label: label.clone(), country: country.map(str::to_string) }));
    }
    Ok(out)
}

fn read_csv(path: &Path, country_column: Option<&str>) -> snakeid::Result<Vec<Sample>> {
    let bad = |msg: String| Error::InvalidImage(format!("{}: {msg}", path.display()));
    let mut rdr = csv::Reader::from_path(path).map_err(|e| bad(e.to_string()))?;
    let header: Vec<String> = rdr.headers().map_err(|e| bad(e.to_string()))?.iter().map(|h| h.trim().to_ascii_lowercase()).collect();
    let col = |name: &str| header.iter().position(|h| h == &name.to_ascii_lowercase());
    let (Some(pc), Some(lc)) = (col("path"), col("label")) else {
        return Err(bad(format!("needs columns path,label[,country]; found {}", header.join(","))));
    };
    let cc = match country_column {
        Some(name) => Some(col(name).ok_or_else(|| bad(format!("no column named {name:?}")))?),
        None => col("country"),
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| bad(format!("row {}: {e}", i + 2)))?;
        let field = |c: usize| rec.get(c).unwrap_or("").trim().to_string();
        let country = cc.map(field).filter(|c| !c.is_empty());
        out.push(Sample { path: base.join(field(pc)), label: field(lc), country });
    }
    Ok(out)
}

/// Maps each sample's label (scientific name, common name or class index) to a snake class of the bundle.
fn resolve_labels(classifier: &Classifier, samples: &[Sample]) -> snakeid::Result<Vec<usize>> {
    let mut by_name: HashMap<String, usize> = HashMap::new();
    for l in classifier.bundle().species() {
        by_name.insert(species_key(&l.scientific_name), l.class_index);
        by_name.insert(species_key(&l.label), l.class_index);
        by_name.insert(l.class_index.to_string(), l.class_index);
    }
    let mut unknown: Vec<&str> = Vec::new();
    let truth: Vec<usize> = samples
        .iter()
        .map(|s| {
            by_name.get(&species_key(&s.label)).copied().unwrap_or_else(|| {
                if !unknown.contains(&s.label.as_str()) {
                    unknown.push(&s.label);
                }
                usize::MAX
            })
        })
        .collect();
    if !unknown.is_empty() {
        let shown: Vec<&str> = unknown.iter().take(5).copied().collect();
        return Err(Error::InvalidBundle(format!(
            "{} label(s) are not species of this bundle: {}{} (see `snakeid bundle info`)",
            unknown.len(),
            shown.join(", "),
            if unknown.len() > 5 { ", ..." } else { "" }
        )));
    }
    Ok(truth)
}

/// A one-line progress bar on stderr, only when stderr is a terminal.
struct Progress {
    total: usize,
    tty: bool,
}

impl Progress {
    fn new(total: usize) -> Self {
        Progress { total, tty: std::io::stderr().is_terminal() }
    }

    fn show(&self, done: usize) {
        if self.tty {
            let width = 30;
            let filled = done * width / self.total.max(1);
            eprint!("\reval [{}{}] {done}/{}", "#".repeat(filled), " ".repeat(width - filled), self.total);
            let _ = std::io::stderr().flush();
        }
    }

    fn done(&self) {
        if self.tty {
            eprintln!("\reval [{}] {}/{}", "#".repeat(30), self.total, self.total);
        }
    }
}
