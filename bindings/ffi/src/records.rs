//! Plain records crossing the FFI, mirroring the CLI's JSON, and their conversions from the core's types.

/// One ranked species.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Prediction {
    pub class_index: u32,
    pub label: String,
    pub scientific_name: String,
    pub probability: f32,
    pub venomous: bool,
}

/// The genus-level answer, given when one genus holds most of the probability.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct GenusAnswer {
    pub genus: String,
    pub probability: f32,
    pub venomous: bool,
}

/// Milliseconds per stage of one call.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Timings {
    pub decode: f64,
    pub preprocess: f64,
    pub inference: f64,
    pub postprocess: f64,
    pub total: f64,
}

/// What the snake gate says: show `Snake` as a snake, `Possible` as "possibly a snake", `NoSnake` as no snake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum SnakeVerdict {
    /// P(snake) is above the gate's unclear band.
    Snake,
    /// P(snake) is near the threshold, on either side: the gate cannot tell.
    Possible,
    /// P(snake) is below the band; never comes with a venom warning.
    NoSnake,
}

/// A position in decimal degrees (WGS 84), as a phone's location service gives it.
#[derive(Debug, Clone, Copy, PartialEq, uniffi::Record)]
pub struct Location {
    pub latitude: f64,
    pub longitude: f64,
}

/// The largest photo a call accepts: a bigger file or image is `InvalidImage`, found from its size or header before
/// any pixel buffer exists. The defaults (64 MiB, 20 000 pixels a side, 100 megapixels) take every phone camera's
/// photos; a PNG or WebP is decoded at full size (~3 bytes a pixel), so an app on a low-memory phone lowers
/// `max_pixels` (24 megapixels: about 70 MB at most).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct Limits {
    /// Largest encoded file, in bytes.
    #[uniffi(default = 67108864)]
    pub max_bytes: u64,
    /// Largest width or height, in pixels.
    #[uniffi(default = 20000)]
    pub max_side: u32,
    /// Largest width x height.
    #[uniffi(default = 100000000)]
    pub max_pixels: u64,
}

impl From<Limits> for snakeid::Limits {
    fn from(l: Limits) -> Self {
        snakeid::Limits { max_bytes: l.max_bytes, max_side: l.max_side, max_pixels: l.max_pixels }
    }
}

/// Where the answer's country came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum CountrySource {
    /// The country the user chose.
    Chosen,
    /// The position the camera wrote into the photo (EXIF GPS).
    PhotoGps,
    /// The device's position passed to `identify`.
    DeviceLocation,
}

/// The answer for one photo.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Identification {
    /// P(snake) at or above the threshold; kept for compatibility, show `snake_verdict` instead.
    pub snake_detected: bool,
    pub snake_verdict: SnakeVerdict,
    pub snake_probability: f32,
    /// Sum of the classes real snakes are taken for (lizards, newts...): with P(snake), what keeps a photo `Possible`.
    pub lookalike_probability: f32,
    /// Probability that the snake is venomous (sum over venomous species).
    pub venomous_probability: f32,
    /// Show the red warning: a snake and a real chance that it is venomous.
    pub venomous_warning: bool,
    /// The venomous species the warning names, each above the bundle's venom threshold, most likely first.
    pub warning_species: Vec<Prediction>,
    /// Not sure enough: treat as venomous and seek care.
    pub uncertain: bool,
    /// The ISO code of the country the species were weighed by.
    pub country: Option<String>,
    /// Where that country came from (show it: "Philippines (from this phone's location)"); null with no country.
    pub country_source: Option<CountrySource>,
    pub prior_applied: bool,
    pub backend: String,
    pub genus: Option<GenusAnswer>,
    pub predictions: Vec<Prediction>,
    pub timings_ms: Timings,
    /// The view of the photo that answered: `primary` (the centre crop), `mirror` or `whole`.
    pub view: String,
    /// How many views were looked at (each an inference).
    pub views_run: u32,
}

/// One species the bundle can recognise.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Species {
    pub class_index: u32,
    pub label: String,
    pub scientific_name: String,
    pub genus: String,
    pub family: String,
    pub venomous: bool,
}

/// What a bundle is and knows.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct BundleInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    pub num_classes: u32,
    pub input_width: u32,
    pub input_height: u32,
    pub species: Vec<Species>,
    /// Country keys of the bundle's prior (ISO codes, and `unknown`); empty when it has none.
    pub countries: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct StageStats {
    pub decode: Percentiles,
    pub preprocess: Percentiles,
    pub inference: Percentiles,
    pub postprocess: Percentiles,
    pub total: Percentiles,
}

/// The same measurement `snakeid bench --json` prints.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct BenchmarkReport {
    pub iterations: u32,
    pub threads: u32,
    pub backend: String,
    pub cold_start_ms: f64,
    pub first_call_ms: f64,
    pub stages_ms: StageStats,
    pub peak_rss_mb: f64,
}

impl From<snakeid::Prediction> for Prediction {
    fn from(p: snakeid::Prediction) -> Self {
        Prediction {
            class_index: p.class_index as u32,
            label: p.label,
            scientific_name: p.scientific_name,
            probability: p.probability,
            venomous: p.venomous,
        }
    }
}

impl From<snakeid::GenusAnswer> for GenusAnswer {
    fn from(g: snakeid::GenusAnswer) -> Self {
        GenusAnswer { genus: g.genus, probability: g.probability, venomous: g.venomous }
    }
}

impl From<snakeid::SnakeVerdict> for SnakeVerdict {
    fn from(v: snakeid::SnakeVerdict) -> Self {
        match v {
            snakeid::SnakeVerdict::Snake => SnakeVerdict::Snake,
            snakeid::SnakeVerdict::Possible => SnakeVerdict::Possible,
            snakeid::SnakeVerdict::NoSnake => SnakeVerdict::NoSnake,
        }
    }
}

impl From<snakeid::Timings> for Timings {
    fn from(t: snakeid::Timings) -> Self {
        Timings {
            decode: t.decode,
            preprocess: t.preprocess,
            inference: t.inference,
            postprocess: t.postprocess,
            total: t.total,
        }
    }
}

impl From<snakeid::Identification> for Identification {
    fn from(a: snakeid::Identification) -> Self {
        let d = a.decision;
        Identification {
            snake_detected: d.snake_detected,
            snake_verdict: d.snake_verdict.into(),
            snake_probability: d.snake_probability,
            lookalike_probability: d.lookalike_probability,
            venomous_probability: d.venomous_probability,
            venomous_warning: d.venomous_warning,
            warning_species: d.warning_species.into_iter().map(Into::into).collect(),
            uncertain: d.uncertain,
            country: a.country,
            country_source: a.country_source.map(|s| match s {
                snakeid::CountrySource::Chosen => CountrySource::Chosen,
                snakeid::CountrySource::PhotoGps => CountrySource::PhotoGps,
                snakeid::CountrySource::DeviceLocation => CountrySource::DeviceLocation,
            }),
            prior_applied: a.prior_applied,
            backend: a.backend.to_string(),
            genus: d.genus.map(Into::into),
            predictions: d.predictions.into_iter().map(Into::into).collect(),
            timings_ms: a.timings_ms.into(),
            view: match a.view {
                snakeid::View::Primary => "primary",
                snakeid::View::Mirror => "mirror",
                snakeid::View::Whole => "whole",
            }
            .to_string(),
            views_run: a.views_run,
        }
    }
}

impl From<snakeid::Label> for Species {
    fn from(s: snakeid::Label) -> Self {
        Species {
            class_index: s.class_index as u32,
            label: s.label,
            scientific_name: s.scientific_name,
            genus: s.genus,
            family: s.family,
            venomous: s.venomous,
        }
    }
}

impl From<snakeid::BundleInfo> for BundleInfo {
    fn from(b: snakeid::BundleInfo) -> Self {
        BundleInfo {
            name: b.name,
            version: b.version,
            description: b.description,
            num_classes: b.num_classes as u32,
            input_width: b.input_width,
            input_height: b.input_height,
            species: b.species.into_iter().map(Into::into).collect(),
            countries: b.countries,
        }
    }
}

impl From<snakeid::Percentiles> for Percentiles {
    fn from(p: snakeid::Percentiles) -> Self {
        Percentiles { p50: p.p50, p90: p.p90, p99: p.p99 }
    }
}

impl From<snakeid::StageStats> for StageStats {
    fn from(s: snakeid::StageStats) -> Self {
        StageStats {
            decode: s.decode.into(),
            preprocess: s.preprocess.into(),
            inference: s.inference.into(),
            postprocess: s.postprocess.into(),
            total: s.total.into(),
        }
    }
}

impl From<snakeid::BenchmarkReport> for BenchmarkReport {
    fn from(r: snakeid::BenchmarkReport) -> Self {
        BenchmarkReport {
            iterations: r.iterations,
            threads: r.threads,
            backend: r.backend,
            cold_start_ms: r.cold_start_ms,
            first_call_ms: r.first_call_ms,
            stages_ms: r.stages_ms.into(),
            peak_rss_mb: r.peak_rss_mb,
        }
    }
}
