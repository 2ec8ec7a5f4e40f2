//! The bundle manifest (`manifest.json`): model input geometry, preprocessing, file digests, decision thresholds.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

pub const FORMAT: &str = "snakeid-bundle";
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub description: String,
    pub model: ModelSpec,
    pub input: InputSpec,
    pub labels: FileRef,
    #[serde(default)]
    pub prior: Option<FileRef>,
    #[serde(default)]
    pub decision: DecisionSpec,
}

/// A file inside the bundle and its SHA-256 (lower-case hex).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRef {
    pub file: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub file: String,
    pub sha256: String,
    /// Number of logits the model outputs; must equal the number of labels.
    pub num_classes: usize,
    /// Free text, e.g. "int8-qdq" or "float32".
    #[serde(default)]
    pub precision: String,
    /// The logits are divided by this before the softmax (temperature scaling, fitted by `snakeid calibrate`;
    /// 1 leaves them as they are).
    #[serde(default = "one")]
    pub temperature: f32,
}

fn one() -> f32 {
    1.0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub width: u32,
    pub height: u32,
    pub resize: Resize,
    /// Per-channel mean and std applied to pixel values scaled to [0, 1], in the model's channel order.
    pub mean: [f32; 3],
    pub std: [f32; 3],
    #[serde(default)]
    pub channel_order: ChannelOrder,
    /// The views of a photo the model looks at, in order, until one is not `none` (see [`View`]).
    #[serde(default = "primary_only")]
    pub views: Vec<View>,
}

/// One way of showing a photo to the model. A snake is long and thin: a centre crop can cut it to a tail, and a
/// network that saw few snakes may see one only from one side, so a photo the first view calls `none` is looked at
/// again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum View {
    /// The manifest's own resize policy (the centre crop, or the stretch).
    Primary,
    /// The primary view mirrored left to right.
    Mirror,
    /// The whole photo stretched to the input size, nothing cropped.
    Whole,
}

fn primary_only() -> Vec<View> {
    vec![View::Primary]
}

/// How a photo becomes the model's input rectangle.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case", deny_unknown_fields)]
pub enum Resize {
    /// Bilinear resize straight to width×height, ignoring aspect ratio (SnakeCLEF 2020 BiT: 456×456).
    Stretch,
    /// Resize so the shorter side is `shorter_side`, then take the centre width×height (torchvision's eval transform).
    ShorterSideCenterCrop { shorter_side: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ChannelOrder {
    #[default]
    Rgb,
    Bgr,
}

/// Thresholds turning probabilities into the answer a person reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecisionSpec {
    /// P(snake) at or above which the photo is said to show a snake.
    pub snake_threshold: f32,
    /// Half-width of the band around `snake_threshold` in which the snake gate itself is called uncertain.
    pub gate_margin: f32,
    /// A venomous species at or above this probability in the top-k raises the venom warning.
    pub venom_threshold: f32,
    /// Top-1 below this is "uncertain".
    pub uncertain_below: f32,
    /// When species are split, a genus holding at least this much is given as a genus-level answer.
    pub genus_at_least: f32,
    /// Classes that are not snakes but that real snakes are taken for (lizards, newts, frogs, slugs...): their
    /// probability counts toward `possible`, never toward `snake` or a species.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lookalike_classes: Vec<usize>,
    /// The verdict is `none` only when P(snake) + P(look-alikes) is below this; absent, the band's lower edge
    /// (`snake_threshold - gate_margin`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub none_below: Option<f32>,
    /// A `none` view is looked at again in the bundle's next view (`input.views`) only when its P(snake) +
    /// P(look-alikes) is at least this: a photo clearly without a snake (a cat, a cup) is answered after one
    /// inference. 0 (the default) retries every `none` view.
    #[serde(skip_serializing_if = "is_zero")]
    pub more_views_above: f32,
}

fn is_zero(x: &f32) -> bool {
    *x == 0.0
}

impl Default for DecisionSpec {
    fn default() -> Self {
        DecisionSpec {
            snake_threshold: 0.5,
            gate_margin: 0.2,
            venom_threshold: 0.1,
            uncertain_below: 0.6,
            genus_at_least: 0.6,
            lookalike_classes: Vec::new(),
            none_below: None,
            more_views_above: 0.0,
        }
    }
}

impl DecisionSpec {
    /// The line under which P(snake) + P(look-alikes) is `none`.
    pub fn none_line(&self) -> f32 {
        self.none_below.unwrap_or(self.snake_threshold - self.gate_margin)
    }
}

impl Manifest {
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| Error::bundle(format!("manifest.json: {e}")))?;
        m.validate()?;
        Ok(m)
    }

    pub fn validate(&self) -> Result<()> {
        if self.format != FORMAT {
            return Err(Error::bundle(format!("manifest format is {:?}, expected {FORMAT:?}", self.format)));
        }
        if self.format_version != FORMAT_VERSION {
            return Err(Error::bundle(format!(
                "manifest format_version {} is not supported (expected {FORMAT_VERSION})",
                self.format_version
            )));
        }
        let i = &self.input;
        let side_ok = |s: u32| (8..=2048).contains(&s);
        if !side_ok(i.width) || !side_ok(i.height) {
            return Err(Error::bundle(format!("input size {}x{} outside 8..=2048", i.width, i.height)));
        }
        if let Resize::ShorterSideCenterCrop { shorter_side } = i.resize {
            if shorter_side < i.width.max(i.height) || shorter_side > 4096 {
                return Err(Error::bundle(format!("shorter_side {shorter_side} must be >= the crop size and <= 4096")));
            }
        }
        if i.mean.iter().chain(&i.std).any(|v| !v.is_finite()) || i.std.iter().any(|&s| s <= 0.0) {
            return Err(Error::bundle("mean/std must be finite and std > 0"));
        }
        if self.model.num_classes == 0 {
            return Err(Error::bundle("model.num_classes must be > 0"));
        }
        let t = self.model.temperature;
        if !(t.is_finite() && t > 0.0) {
            return Err(Error::bundle(format!("model.temperature must be finite and > 0, got {t}")));
        }
        let d = &self.decision;
        let unit = [
            d.snake_threshold,
            d.gate_margin,
            d.venom_threshold,
            d.uncertain_below,
            d.genus_at_least,
            d.none_line(),
            d.more_views_above,
        ];
        if unit.iter().any(|v| !(0.0..=1.0).contains(v)) {
            return Err(Error::bundle("decision thresholds must lie in [0, 1]"));
        }
        if let Some(&c) = d.lookalike_classes.iter().find(|&&c| c >= self.model.num_classes) {
            return Err(Error::bundle(format!(
                "decision.lookalike_classes: {c} is not a class of a {}-class model",
                self.model.num_classes
            )));
        }
        let views = &self.input.views;
        if views.is_empty() || (1..views.len()).any(|i| views[..i].contains(&views[i])) {
            return Err(Error::bundle("input.views must name at least one view, none twice"));
        }
        let mut files = vec![&self.model.file, &self.labels.file];
        files.extend(self.prior.as_ref().map(|p| &p.file));
        for f in files {
            if f.is_empty() || f.contains(['/', '\\']) || f.starts_with('.') || f == "manifest.json" {
                return Err(Error::bundle(format!("file name {f:?} must be a plain name inside the bundle")));
            }
        }
        Ok(())
    }
}
