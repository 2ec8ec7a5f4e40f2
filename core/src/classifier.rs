//! The `Classifier`: one loaded bundle and compiled model, shared across threads, turning photo bytes into an answer.

use crate::backend::{self, Backend, BackendInfo, Runner};
use crate::bundle::countries;
use crate::bundle::manifest::View;
use crate::bundle::Bundle;
use crate::decision::{self, Decision, Gate, SnakeVerdict};
use crate::error::{Error, Result};
use crate::photo::decode::{self, Limits};
use crate::photo::{gps, preprocess};
use crate::place::{self, CountrySource, Location};
use crate::tools::bench::{self, BenchmarkReport, Timings};
use crate::tools::clock::Instant;
use serde::Serialize;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::OnceLock;

/// The answer for one photo.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Identification {
    /// ISO code (or `unknown`) of the country the answer weighed species by.
    pub country: Option<String>,
    /// Where that country came from: `chosen` by the user, the photo's EXIF GPS (`photo_gps`) or the device's
    /// position (`device_location`); `None` with no country.
    pub country_source: Option<CountrySource>,
    /// Whether a country prior was multiplied in (a country was given and the bundle's table has it).
    pub prior_applied: bool,
    /// `cpu`, `gpu` or `gpu-f16`.
    pub backend: &'static str,
    /// The GPU adapter and how many graph nodes ran on each side.
    pub backend_info: BackendInfo,
    /// The view of the photo the answer comes from (the first that was not `none`, else the first).
    pub view: View,
    /// How many views the model looked at (each an inference).
    pub views_run: u32,
    #[serde(flatten)]
    pub decision: Decision,
    pub timings_ms: Timings,
}

/// A loaded bundle with its compiled model. `Send + Sync`: build once, share (e.g. in an `Arc`) and call from any thread.
#[derive(Debug)]
pub struct Classifier {
    bundle: Bundle,
    runner: Runner,
    backend_info: BackendInfo,
    limits: Limits,
    /// Milliseconds from the start of loading (or of compiling, for [`Classifier::new`]) to ready.
    cold_start_ms: f64,
    /// Milliseconds of the first successful `identify` call, once there has been one.
    first_call_ms: OnceLock<f64>,
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Classifier>();
};

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

impl Classifier {
    /// Compiles the bundle's model (the expensive step: do it once).
    pub fn new(bundle: Bundle) -> Result<Self> {
        Self::compile(bundle, Instant::now())
    }

    /// The bundle embedded in the binary.
    pub fn embedded_default() -> Result<Self> {
        let start = Instant::now();
        Self::compile(guard(Bundle::embedded_default)?, start)
    }

    /// A bundle directory or packed file.
    pub fn from_path(path: &Path) -> Result<Self> {
        let start = Instant::now();
        Self::compile(guard(|| Bundle::load(path))?, start)
    }

    /// A bundle directory or packed file that must be signed by one of `trusted` (see [`crate::bundle::signing`]).
    pub fn from_path_signed(path: &Path, trusted: &[crate::PublicKey]) -> Result<Self> {
        let start = Instant::now();
        Self::compile(guard(|| Bundle::load_signed(path, trusted))?, start)
    }

    /// A packed bundle in memory that must be signed by one of `trusted`.
    pub fn from_packed_signed(bytes: &[u8], trusted: &[crate::PublicKey]) -> Result<Self> {
        let start = Instant::now();
        Self::compile(guard(|| Bundle::from_packed_signed(bytes, trusted))?, start)
    }

    /// A packed bundle (`.snkb` bytes) already in memory, e.g. downloaded or read from app assets.
    pub fn from_packed(bytes: &[u8]) -> Result<Self> {
        let start = Instant::now();
        Self::compile(guard(|| Bundle::from_packed(bytes))?, start)
    }

    /// Compiles the bundle's model for `backend` directly (the CPU engine is compiled only where the CPU runs the
    /// model, or `auto` must measure it), on `threads` threads as [`Classifier::with_threads`]. `cache_dir`: where
    /// `auto` remembers its choice (see [`Classifier::with_backend`]).
    pub fn on(bundle: Bundle, backend: Backend, threads: usize, cache_dir: Option<&Path>) -> Result<Self> {
        Self::build(bundle, Instant::now(), backend, threads, cache_dir)
    }

    fn compile(bundle: Bundle, start: Instant) -> Result<Self> {
        Self::build(bundle, start, Backend::Cpu, 1, None)
    }

    fn build(
        bundle: Bundle,
        start: Instant,
        backend: Backend,
        threads: usize,
        cache_dir: Option<&Path>,
    ) -> Result<Self> {
        let (runner, why) = guard(|| backend::compile(&bundle, backend, threads, cache_dir))?;
        let backend_info = runner.info(why);
        Ok(Classifier {
            bundle,
            runner,
            backend_info,
            limits: Limits::default(),
            cold_start_ms: ms(start),
            first_call_ms: OnceLock::new(),
        })
    }

    /// Milliseconds this classifier took to load its bundle and compile the model.
    pub fn cold_start_ms(&self) -> f64 {
        self.cold_start_ms
    }

    /// Milliseconds of this classifier's first successful `identify` call (`None` before there was one).
    pub fn first_call_ms(&self) -> Option<f64> {
        self.first_call_ms.get().copied()
    }

    /// Runs inference on `threads` threads (default 1: the calling thread, best when several photos run in parallel).
    /// (CPU backend only: the GPU backend ignores it.) More than one thread needs the `threads` feature; without it
    /// the answer is an `Error::Backend`.
    #[cfg_attr(not(feature = "gpu"), allow(irrefutable_let_patterns))]
    pub fn with_threads(mut self, threads: usize) -> Result<Self> {
        if let Runner::Cpu(e) = self.runner {
            self.runner = Runner::Cpu(e.with_threads(threads)?);
        }
        Ok(self)
    }

    pub fn threads(&self) -> usize {
        match &self.runner {
            Runner::Cpu(e) => e.threads(),
            #[allow(unreachable_patterns)]
            _ => 1,
        }
    }

    /// Moves inference to another backend (see [`Backend`]). `auto` measures the CPU and the GPU once and keeps the
    /// faster; with a `cache_dir` the choice is remembered per adapter and bundle. The time spent counts as cold start.
    #[cfg_attr(not(feature = "gpu"), allow(irrefutable_let_patterns))]
    pub fn with_backend(mut self, backend: Backend, cache_dir: Option<&std::path::Path>) -> Result<Self> {
        let start = Instant::now();
        let (runner, why) = match backend {
            Backend::Cpu => return Ok(self),
            Backend::Gpu | Backend::GpuF16 => guard(|| backend::compile(&self.bundle, backend, 1, None))?,
            Backend::Auto => {
                let Runner::Cpu(cpu) = self.runner else { return Ok(self) };
                let (runner, why) = backend::choose(&self.bundle, cpu, cache_dir);
                (runner, Some(why))
            }
        };
        self.backend_info = runner.info(why);
        self.runner = runner;
        self.cold_start_ms += ms(start);
        Ok(self)
    }

    /// Which backend runs inference, on which adapter, with how many nodes on each side.
    pub fn backend_info(&self) -> &BackendInfo {
        &self.backend_info
    }

    /// Replaces the photo size limits (the defaults accept every phone camera and refuse decompression bombs).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.set_limits(limits);
        self
    }

    /// [`Classifier::with_limits`] in place (for a handle that cannot be moved, as in JavaScript).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// The photo size limits calls are held to.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub fn bundle(&self) -> &Bundle {
        &self.bundle
    }

    /// Identifies the snake in a photo (JPEG, PNG or WebP bytes). `country` is an ISO 3166-1 alpha-2 code,
    /// an English name or `unknown`; without one, the photo's own GPS position (EXIF) picks the country, if it has
    /// one; else no prior is applied. Never panics.
    pub fn identify(&self, image: &[u8], country: Option<&str>, top_k: usize) -> Result<Identification> {
        self.identify_at(image, country, None, top_k)
    }

    /// [`identify`](Self::identify), with the device's position (`location`) as the last source of the country: a
    /// country the user chose, else the photo's GPS position, else `location` (offline: OpenStreetMap boundaries).
    /// The answer's `country_source` says which one it was.
    pub fn identify_at(
        &self,
        image: &[u8],
        country: Option<&str>,
        location: Option<Location>,
        top_k: usize,
    ) -> Result<Identification> {
        let answer = guard(|| self.identify_inner(image, country, location, top_k))?;
        self.first_call_ms.get_or_init(|| answer.timings_ms.total);
        Ok(answer)
    }

    fn identify_inner(
        &self,
        image: &[u8],
        country: Option<&str>,
        location: Option<Location>,
        top_k: usize,
    ) -> Result<Identification> {
        let start = Instant::now();
        crate::tools::failpoint::hit("identify");
        // Resolve the country first: a typo should not cost an inference.
        let photo_gps = if country.is_none() { gps::of_photo(image) } else { None };
        let place = place::decide(country, photo_gps, location);
        let (country, prior) = self.prior_for(place.map(|(c, _)| c))?;
        let img = self.decoded(image)?;
        let t_decode = ms(start);
        let look = self.look(&img)?;
        drop(img);
        let t = Instant::now();
        let decision = self.decide(&look.logits, prior.as_deref(), top_k);
        let t_post = ms(t);
        let prior_applied = prior.is_some();
        Ok(Identification {
            country,
            country_source: place.map(|(_, source)| source),
            prior_applied,
            backend: self.backend_info.backend,
            backend_info: self.backend_info.clone(),
            view: look.view,
            views_run: look.views_run,
            decision,
            timings_ms: Timings {
                decode: t_decode,
                preprocess: look.preprocess_ms,
                inference: look.inference_ms,
                postprocess: t_post,
                total: ms(start),
            },
        })
    }

    /// Shows the photo to the model in the bundle's views, in order, until one is not `none` (issue 33: a centre
    /// crop cut real snakes to something the gate missed): the verdict is `none` only when it is `none` in every
    /// view. Then the first view answers, whichever arithmetic ran (the views' tiny P(snake) would pick among them
    /// by rounding noise). A first view far under the `none` line (`decision.more_views_above`) answers alone.
    fn look(&self, img: &image::RgbImage) -> Result<Look> {
        let input = &self.bundle.manifest.input;
        let spec = &self.bundle.manifest.decision;
        let keep_primary = input.views.contains(&View::Mirror);
        let (mut primary, mut first): (Option<Vec<f32>>, Option<Vec<f32>>) = (None, None);
        let (mut preprocess_ms, mut inference_ms) = (0.0, 0.0);
        for (n, &view) in input.views.iter().enumerate() {
            let t = Instant::now();
            let tensor = self.runner.in_pool(|| preprocess::view_tensor(img, input, view, primary.as_deref()));
            if view == View::Primary && keep_primary {
                primary = Some(tensor.clone());
            }
            preprocess_ms += ms(t);
            let t = Instant::now();
            let logits = self.runner.run(tensor)?;
            inference_ms += ms(t);
            let probs = decision::softmax_tempered(&logits, self.bundle.manifest.model.temperature);
            let gate = Gate::of(&probs, &self.bundle.labels, spec);
            if gate.verdict(spec) != SnakeVerdict::NoSnake {
                return Ok(Look { logits, view, views_run: n as u32 + 1, preprocess_ms, inference_ms });
            }
            if n == 0 && !gate.worth_another_view(spec) {
                return Ok(Look { logits, view, views_run: 1, preprocess_ms, inference_ms });
            }
            first.get_or_insert(logits);
        }
        let logits = first.expect("a bundle has at least one view");
        Ok(Look { logits, view: input.views[0], views_run: input.views.len() as u32, preprocess_ms, inference_ms })
    }

    /// The logits `identify` decides on for a photo: those of the view that answers.
    pub fn answer_logits(&self, image: &[u8]) -> Result<Vec<f32>> {
        guard(|| self.look(&self.decoded(image)?).map(|l| l.logits))
    }

    /// The photo decoded (and oriented) at the smallest size the bundle's input needs.
    fn decoded(&self, image: &[u8]) -> Result<image::RgbImage> {
        let spec = &self.bundle.manifest.input;
        self.runner.in_pool(|| decode::decode(image, preprocess::min_size(spec), &self.limits))
    }

    /// Softmax (at the bundle's temperature), gate, prior and top-k on raw logits.
    pub fn decide(&self, logits: &[f32], prior: Option<&[f32]>, top_k: usize) -> Decision {
        let probs = decision::softmax_tempered(logits, self.bundle.manifest.model.temperature);
        decision::decide(&probs, &self.bundle.labels, prior, top_k, &self.bundle.manifest.decision)
    }

    /// Resolves a country and returns its p(s|c) per class index, if the bundle's prior has that country.
    pub fn prior_for(&self, country: Option<&str>) -> Result<(Option<String>, Option<Vec<f32>>)> {
        let Some(input) = country else { return Ok((None, None)) };
        let code = countries::resolve(input)?;
        let row = self.bundle.prior.as_ref().and_then(|p| p.row(code));
        let per_class =
            row.map(|row| self.bundle.prior_columns.iter().map(|c| c.map_or(0.0, |c| row[c])).collect::<Vec<f32>>());
        Ok((Some(code.to_string()), per_class))
    }

    /// The preprocessed model input for a photo, exactly as `identify` computes it.
    pub fn preprocess(&self, image: &[u8]) -> Result<Vec<f32>> {
        guard(|| {
            let img = self.decoded(image)?;
            Ok(self.runner.in_pool(|| preprocess::to_tensor(&img, &self.bundle.manifest.input)))
        })
    }

    /// Measures this classifier on one photo: `warmup` unmeasured calls, then `iterations` measured ones.
    pub fn benchmark(&self, image: &[u8], iterations: u32, warmup: u32) -> Result<BenchmarkReport> {
        let (first, runs) = bench::measure(|| self.identify(image, None, 5).map(|a| a.timings_ms), iterations, warmup)?;
        Ok(BenchmarkReport {
            iterations: runs.len() as u32,
            threads: self.threads() as u32,
            backend: self.backend_info().backend.into(),
            cold_start_ms: self.cold_start_ms(),
            first_call_ms: self.first_call_ms().unwrap_or(first),
            stages_ms: bench::StageStats::of(&runs),
            peak_rss_mb: bench::peak_rss_mb(),
        })
    }

    /// Logits for an already preprocessed `[1, 3, H, W]` input.
    pub fn logits(&self, input: Vec<f32>) -> Result<Vec<f32>> {
        guard(|| self.runner.run(input))
    }
}

/// The view that answers, its logits, and what looking cost.
struct Look {
    logits: Vec<f32>,
    view: View,
    views_run: u32,
    preprocess_ms: f64,
    inference_ms: f64,
}

/// Turns a panic anywhere below into an `Internal` error with its message: a host app must never be taken down by us
/// (the constructors and `identify` run under it; callers that load a [`Bundle`] themselves can too).
pub fn guard<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(Error::Internal(msg.replace('\n', " ")))
    })
}
