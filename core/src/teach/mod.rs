//! Teaching a bundle a region's own species from its own photos (`snakeid train`): the base bundle's network
//! gives each photo's pooled features (in the bundle's views: crop, mirror, whole), a softmax head is fitted on
//! them ([`fit`]), and a new bundle keeps the base's snake gate with the new species in place of the base's snakes
//! ([`graph`]).
//!
//! ```no_run
//! use snakeid::teach::{Species, Teacher, Tuning};
//! let base = snakeid::Bundle::embedded_default()?;
//! let teacher = Teacher::new(&base, 2)?;
//! let species = vec![Species { scientific_name: "Naja philippinensis".into(), label: "Philippine cobra".into(),
//!                              genus: "Naja".into(), family: "Elapidae".into(), venomous: true }];
//! let features = teacher.features(&std::fs::read("cobra.jpg").unwrap())?; // one vector per view
//! # let examples: Vec<(Vec<Vec<f32>>, usize)> = vec![(features, 0)];
//! let head = teacher.fit(&examples, species.len(), Default::default());
//! let tuning = Tuning { temperature: 1.0, venom_threshold: 0.1 };
//! let bundle = teacher.bundle(&species, &head, tuning, None, "my-snakes")?; // packed .snkb bytes
//! # Ok::<(), snakeid::Error>(())
//! ```

pub mod fit;
mod graph;

use crate::backend::cpu::Engine;
use crate::bundle::labels::{self, Label};
use crate::bundle::manifest::{FileRef, InputSpec, Resize, View};
use crate::bundle::prior::{PriorTable, DEFAULT_SMOOTHING};
use crate::bundle::{sha256_hex, Bundle};
use crate::classifier::guard;
use crate::error::{Error, Result};
use crate::photo::{decode, preprocess};
use std::collections::BTreeMap;

pub use fit::{Linear, Settings};

/// `input` shown `side` pixels wide: the height and a centre crop's shorter side scaled by the same factor (so the
/// crop keeps the base's share of the photo).
fn scaled(input: &InputSpec, side: u32) -> InputSpec {
    let scale = |v: u32| ((v as u64 * side as u64 + input.width as u64 / 2) / input.width as u64) as u32;
    let resize = match input.resize {
        Resize::ShorterSideCenterCrop { shorter_side } => {
            Resize::ShorterSideCenterCrop { shorter_side: scale(shorter_side) }
        }
        r => r,
    };
    InputSpec { width: side, height: scale(input.height), resize, ..input.clone() }
}

/// One species to teach, as `species.csv` gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct Species {
    pub scientific_name: String,
    pub label: String,
    pub genus: String,
    pub family: String,
    pub venomous: bool,
}

/// What the held-out photos chose for the taught head.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tuning {
    /// The head's logits are divided by it (temperature scaling on the held-out photos).
    pub temperature: f32,
    /// A venomous species at or above this probability warns.
    pub venom_threshold: f32,
}

/// The views every photo is seen in while teaching: the flip and the whole photo are free augmentations, and the
/// bundle's own views at answer time.
pub const VIEWS: [View; 3] = [View::Primary, View::Mirror, View::Whole];

/// The input side a taught bundle shows its network by default. Measured on `ph14` (a linear head on the default
/// bundle's features, five folds of 1,190 photos): top-1 76.6% at 224 (the base's own), 78.9% at 288, 80.1% at 320;
/// on `val/` 79.0%, 83.8%, 81.9%. 288 costs 1.65 times the base's inference, 320 twice (docs/benchmark-log.md).
pub const INPUT_SIDE: u32 = 288;

/// A base bundle cut at its pooled features, with the feature extractor compiled once.
pub struct Teacher {
    base: Bundle,
    /// The base's input, scaled to the side photos are shown at.
    input: InputSpec,
    cut: graph::Cut,
    engine: Engine,
    snake_classes: Vec<usize>,
}

impl Teacher {
    /// Cuts `base`'s model at its pooled features; a model that does not end in a fully connected layer is an
    /// `InvalidBundle` error. Photos are shown at the base's own input size.
    pub fn new(base: &Bundle, threads: usize) -> Result<Teacher> {
        Teacher::at_side(base, threads, base.manifest.input.width)
    }

    /// As [`Teacher::new`], photos shown `side` pixels wide (the height and the resize scaled alike; the taught
    /// bundle keeps that size). A side outside 64..=1024 is an `InvalidImage` error.
    pub fn at_side(base: &Bundle, threads: usize, side: u32) -> Result<Teacher> {
        if !(64..=1024).contains(&side) {
            return Err(Error::InvalidImage(format!("an input side of {side} pixels: it must lie in 64..=1024")));
        }
        guard(|| {
            let input = scaled(&base.manifest.input, side);
            let mut cut = graph::Cut::of(&base.model)?;
            if (input.width, input.height) != (base.manifest.input.width, base.manifest.input.height) {
                cut = cut.at_size(input.width, input.height)?;
            }
            if cut.classes != base.labels.len() {
                return Err(Error::bundle(format!(
                    "its classifier has {} outputs for {} labels",
                    cut.classes,
                    base.labels.len()
                )));
            }
            let snake_classes: Vec<usize> = base.labels.iter().filter(|l| l.is_snake).map(|l| l.class_index).collect();
            let engine =
                Engine::compile(cut.features_model(), input.width, input.height, cut.dim)?.with_threads(threads)?;
            Ok(Teacher { base: base.clone(), input, cut, engine, snake_classes })
        })
    }

    /// Length of a feature vector.
    pub fn dim(&self) -> usize {
        self.cut.dim
    }

    /// A photo's pooled features in each of [`VIEWS`].
    pub fn features(&self, photo: &[u8]) -> Result<Vec<Vec<f32>>> {
        guard(|| {
            let input = &self.input;
            let img = self
                .engine
                .in_pool(|| decode::decode(photo, preprocess::min_size(input), &decode::Limits::default()))?;
            let primary = self.engine.in_pool(|| preprocess::view_tensor(&img, input, View::Primary, None));
            VIEWS
                .iter()
                .map(|&view| {
                    let tensor = match view {
                        View::Primary => primary.clone(),
                        _ => self.engine.in_pool(|| preprocess::view_tensor(&img, input, view, Some(&primary))),
                    };
                    self.engine.run(tensor)
                })
                .collect()
        })
    }

    /// Fits a head on `(features per view, species)` examples: every view of a photo is one sample.
    pub fn fit<'a>(
        &self,
        examples: impl IntoIterator<Item = &'a (Vec<Vec<f32>>, usize)>,
        species: usize,
        settings: Settings,
    ) -> Linear {
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for (views, s) in examples {
            for v in views {
                x.extend_from_slice(v);
                y.push(*s);
            }
        }
        fit::fit(&fit::Samples { x: &x, y: &y, dim: self.cut.dim }, species, settings)
    }

    /// The head's logits for features, with the weights the bundle will store (u8 per species).
    pub fn head_logits(&self, head: &Linear, features: &[f32]) -> Vec<f32> {
        let stored =
            Linear { weights: graph::dequantized(&head.weights, head.dim), bias: head.bias.clone(), dim: head.dim };
        stored.logits(features)
    }

    /// The taught bundle, packed and checked to compile: the base's classes that are not snakes, then `species` (the
    /// head's logits divided by `tuning.temperature`); the base's gate, views and thresholds but the warning's
    /// (`tuning.venom_threshold`), its look-alikes renumbered; a prior from `ranges` (a presence CSV as `prior
    /// build` reads it) when given.
    pub fn bundle(
        &self,
        species: &[Species],
        head: &Linear,
        tuning: Tuning,
        ranges: Option<&[u8]>,
        name: &str,
    ) -> Result<Vec<u8>> {
        let temperature = tuning.temperature;
        if head.bias.len() != species.len() || head.dim != self.cut.dim {
            return Err(Error::Internal(format!("a head for {} species of {} features", head.bias.len(), head.dim)));
        }
        if !(temperature.is_finite() && temperature > 0.0) || !(0.0..=1.0).contains(&tuning.venom_threshold) {
            return Err(Error::Internal(format!("{tuning:?}")));
        }
        let scaled = graph::Head {
            weights: head.weights.iter().map(|w| w / temperature).collect(),
            bias: head.bias.iter().map(|b| b / temperature).collect(),
        };
        let model = self.cut.with_head(&self.snake_classes, &scaled);
        let others: Vec<&Label> = self.base.labels.iter().filter(|l| !l.is_snake).collect();
        let mut rows: Vec<Label> =
            others.iter().enumerate().map(|(i, l)| Label { class_index: i, ..(*l).clone() }).collect();
        rows.extend(species.iter().enumerate().map(|(i, s)| Label {
            class_index: others.len() + i,
            label: s.label.clone(),
            scientific_name: s.scientific_name.clone(),
            genus: s.genus.clone(),
            family: s.family.clone(),
            venomous: s.venomous,
            is_snake: true,
        }));
        let labels_csv = labels::to_csv(&rows);
        let mut manifest = self.base.manifest.clone();
        manifest.input = self.input.clone();
        manifest.name = name.to_string();
        manifest.version = "1.0.0".into();
        manifest.description = format!(
            "{} species taught with `snakeid train` on {}'s network; its snake gate kept.",
            species.len(),
            self.base.manifest.name
        );
        manifest.model.file = "model.onnx".into();
        manifest.model.sha256 = sha256_hex(&model);
        manifest.model.num_classes = rows.len();
        manifest.model.precision = "int8-qdq, head u8 per channel".into();
        manifest.labels = FileRef { file: "labels.csv".into(), sha256: sha256_hex(&labels_csv) };
        let renumbered = |c: usize| others.iter().position(|l| l.class_index == c);
        manifest.decision.venom_threshold = tuning.venom_threshold;
        manifest.decision.lookalike_classes =
            manifest.decision.lookalike_classes.iter().filter_map(|&c| renumbered(c)).collect();
        let prior = ranges
            .map(|csv| PriorTable::build_from_csv(csv, DEFAULT_SMOOTHING).map(|(t, _)| t.to_bytes()))
            .transpose()?;
        manifest.prior = prior.as_ref().map(|p| FileRef { file: "prior.bin".into(), sha256: sha256_hex(p) });
        let mut files = BTreeMap::new();
        files.insert("manifest.json".to_string(), serde_json::to_vec_pretty(&manifest).expect("manifest serialises"));
        files.insert("model.onnx".to_string(), model);
        files.insert("labels.csv".to_string(), labels_csv);
        if let Some(p) = prior {
            files.insert("prior.bin".to_string(), p);
        }
        let (bundle, packed) = Bundle::pack_files(files)?;
        // An ordinary bundle: it compiles as `identify` will compile it.
        crate::Classifier::new(bundle)?;
        Ok(packed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::manifest::ChannelOrder;

    #[test]
    fn a_larger_side_scales_the_crop_alike_and_keeps_a_stretch() {
        let base = InputSpec {
            width: 224,
            height: 224,
            resize: Resize::ShorterSideCenterCrop { shorter_side: 256 },
            mean: [0.5; 3],
            std: [0.5; 3],
            channel_order: ChannelOrder::Rgb,
            views: VIEWS.to_vec(),
        };
        let s = scaled(&base, 288);
        assert_eq!((s.width, s.height, s.resize), (288, 288, Resize::ShorterSideCenterCrop { shorter_side: 329 }));
        assert_eq!(scaled(&base, 224), base);
        let bit = InputSpec { width: 456, height: 456, resize: Resize::Stretch, ..base };
        assert_eq!((scaled(&bit, 384).height, scaled(&bit, 384).resize), (384, Resize::Stretch));
    }
}
