//! Labelled photo sets for `eval` and `calibrate`: a folder per species or a CSV, labels resolved against the
//! bundle, and the model's logits for every photo that can be read.

use crate::identify::read_photo;
use snakeid::{internals::labels::species_key, Classifier, Error};
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

/// One labelled photo.
pub struct Sample {
    pub path: PathBuf,
    pub label: String,
    pub country: Option<String>,
}

/// A labelled set with its true classes, checked against the bundle before any inference.
pub struct Dataset {
    pub samples: Vec<Sample>,
    /// Each sample's true class index.
    pub truth: Vec<usize>,
}

/// The model's logits for the photos that could be read.
pub struct Scored {
    /// Indices into `Dataset::samples`, in order.
    pub kept: Vec<usize>,
    pub logits: Vec<Vec<f32>>,
    /// Paths that could not be read, with why.
    pub skipped: Vec<(String, String)>,
}

const IMAGE_EXTENSIONS: [&str; 5] = ["jpg", "jpeg", "png", "webp", "jfif"];

impl Dataset {
    /// A folder with one subfolder per species (`country` for all its photos), or a CSV `path,label[,country]`.
    pub fn read(
        data: &Path,
        country: Option<&str>,
        country_column: Option<&str>,
        classifier: &Classifier,
    ) -> snakeid::Result<Self> {
        let samples = if data.is_dir() { read_folder(data, country)? } else { read_csv(data, country_column)? };
        if samples.is_empty() {
            return Err(Error::InvalidImage(format!("{}: no photos found", data.display())));
        }
        let truth = resolve_labels(classifier, &samples)?;
        Ok(Dataset { samples, truth })
    }

    /// Runs the model on every photo (a progress bar on a terminal); unreadable ones are skipped.
    pub fn score(&self, classifier: &Classifier, what: &str) -> Scored {
        let mut scored = Scored { kept: Vec::new(), logits: Vec::new(), skipped: Vec::new() };
        let progress = Progress::new(what, self.samples.len());
        for (i, s) in self.samples.iter().enumerate() {
            progress.show(i);
            match read_photo(&s.path).and_then(|b| classifier.answer_logits(&b)) {
                Ok(logits) => {
                    scored.kept.push(i);
                    scored.logits.push(logits);
                }
                Err(e) => scored.skipped.push((s.path.display().to_string(), e.to_string())),
            }
        }
        progress.done();
        scored
    }
}

pub fn read_folder(dir: &Path, country: Option<&str>) -> snakeid::Result<Vec<Sample>> {
    fn io(p: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |e| Error::Io { path: p.to_path_buf(), source: e }
    }
    let mut classes: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    classes.sort();
    let mut out = Vec::new();
    for class in classes {
        let label = class.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut files: Vec<PathBuf> =
            std::fs::read_dir(&class).map_err(io(&class))?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.retain(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        });
        files.sort();
        out.extend(files.into_iter().map(|path| Sample {
            path,
            label: label.clone(),
            country: country.map(str::to_string),
        }));
    }
    Ok(out)
}

fn read_csv(path: &Path, country_column: Option<&str>) -> snakeid::Result<Vec<Sample>> {
    let bad = |msg: String| Error::InvalidImage(format!("{}: {msg}", path.display()));
    // A path that cannot be opened is an I/O error, not a bad photo set.
    let file = std::fs::File::open(path).map_err(|e| Error::Io { path: path.to_path_buf(), source: e })?;
    let mut rdr = csv::Reader::from_reader(file);
    let header: Vec<String> =
        rdr.headers().map_err(|e| bad(e.to_string()))?.iter().map(|h| h.trim().to_ascii_lowercase()).collect();
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
pub struct Progress {
    what: String,
    total: usize,
    tty: bool,
}

impl Progress {
    pub fn new(what: &str, total: usize) -> Self {
        Progress { what: what.to_string(), total, tty: std::io::stderr().is_terminal() }
    }

    pub fn show(&self, done: usize) {
        if self.tty {
            let width = 30;
            let filled = done * width / self.total.max(1);
            eprint!("\r{} [{}{}] {done}/{}", self.what, "#".repeat(filled), " ".repeat(width - filled), self.total);
            let _ = std::io::stderr().flush();
        }
    }

    pub fn done(&self) {
        if self.tty {
            eprintln!("\r{} [{}] {}/{}", self.what, "#".repeat(30), self.total, self.total);
        }
    }
}
