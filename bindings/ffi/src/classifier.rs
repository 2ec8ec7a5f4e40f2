//! The `Classifier` object: a loaded bundle and compiled model, shared by reference across threads.

use crate::error::SnakeIdError;
use crate::records::{BenchmarkReport, BundleInfo, Identification, Limits, Location};
use std::path::Path;
use std::sync::Arc;

/// Build once (loading compiles the model: hundreds of milliseconds), then call from any thread.
#[derive(Debug, uniffi::Object)]
pub struct Classifier {
    inner: snakeid::Classifier,
}

/// Warm-up calls before `benchmark` starts measuring.
const BENCH_WARMUP: u32 = 3;

#[uniffi::export]
impl Classifier {
    /// Loads the default bundle compiled into the library. `threads`: how many threads one call runs on
    /// (decoding, preprocessing, inference); 1, the default (and 0), runs on the calling thread — best when several photos
    /// are identified at once; 2 or more cut one photo's latency, where the library has its `threads` feature (the
    /// Python wheel does; the phone libraries do not, and refuse more than 1 with a `Backend` error). `limits`: the
    /// largest photo a call accepts (default: `Limits`' defaults; a phone with little memory lowers `max_pixels`).
    #[uniffi::constructor(default(threads = 1, limits = None))]
    pub fn new(threads: u32, limits: Option<Limits>) -> Result<Arc<Self>, SnakeIdError> {
        Classifier::built(snakeid::Classifier::embedded_default()?, threads, limits)
    }

    /// Loads a bundle directory or packed `.snkb` file (`threads` as for the default bundle).
    #[uniffi::constructor(default(threads = 1, limits = None))]
    pub fn from_bundle_path(path: String, threads: u32, limits: Option<Limits>) -> Result<Arc<Self>, SnakeIdError> {
        Classifier::built(snakeid::Classifier::from_path(Path::new(&path))?, threads, limits)
    }

    /// Loads a packed `.snkb` bundle from memory (e.g. read from app assets).
    #[uniffi::constructor(default(threads = 1, limits = None))]
    pub fn from_bundle_bytes(bytes: Vec<u8>, threads: u32, limits: Option<Limits>) -> Result<Arc<Self>, SnakeIdError> {
        Classifier::built(snakeid::Classifier::from_packed(&bytes)?, threads, limits)
    }

    /// Loads a bundle directory or packed file and accepts it only if it is signed by one of `trusted_keys`
    /// (ed25519 public keys, 64 hex digits each, compiled into the app); otherwise `UntrustedBundle`.
    #[uniffi::constructor(default(threads = 1, limits = None))]
    pub fn from_bundle_path_signed(
        path: String,
        trusted_keys: Vec<String>,
        threads: u32,
        limits: Option<Limits>,
    ) -> Result<Arc<Self>, SnakeIdError> {
        let inner =
            snakeid::Classifier::from_path_signed(Path::new(&path), &snakeid::PublicKey::from_hex_all(&trusted_keys)?)?;
        Classifier::built(inner, threads, limits)
    }

    /// Loads a packed bundle from memory, accepted only if signed by one of `trusted_keys`.
    #[uniffi::constructor(default(threads = 1, limits = None))]
    pub fn from_bundle_bytes_signed(
        bytes: Vec<u8>,
        trusted_keys: Vec<String>,
        threads: u32,
        limits: Option<Limits>,
    ) -> Result<Arc<Self>, SnakeIdError> {
        let inner = snakeid::Classifier::from_packed_signed(&bytes, &snakeid::PublicKey::from_hex_all(&trusted_keys)?)?;
        Classifier::built(inner, threads, limits)
    }

    /// Identifies the snake in a JPEG, PNG or WebP photo. `country`: ISO 3166-1 alpha-2 code, English name or
    /// `unknown`, as the user chose it; null (the default) leaves it to the photo's GPS position, then to `location`
    /// (the device's position: its country is found offline), else applies no prior. `top_k`: how many species to
    /// rank (default 5). The answer's `country_source` says where the country came from.
    #[uniffi::method(default(country = None, top_k = 5, location = None))]
    pub fn identify(
        &self,
        image: Vec<u8>,
        country: Option<String>,
        top_k: u32,
        location: Option<Location>,
    ) -> Result<Identification, SnakeIdError> {
        let location = location.map(|l| snakeid::Location::new(l.latitude, l.longitude)).transpose()?;
        Ok(self.inner.identify_at(&image, country.as_deref(), location, top_k as usize)?.into())
    }

    /// The bundle's name, version, species (scientific names, venom status) and known countries.
    pub fn bundle_info(&self) -> BundleInfo {
        self.inner.bundle().info().into()
    }

    /// Cold start, first call, per-stage p50/p90/p99 over `iterations` calls (default 20) and peak RSS, on one photo.
    #[uniffi::method(default(iterations = 20))]
    pub fn benchmark(&self, image: Vec<u8>, iterations: u32) -> Result<BenchmarkReport, SnakeIdError> {
        Ok(self.inner.benchmark(&image, iterations, BENCH_WARMUP)?.into())
    }
}

impl Classifier {
    /// Every constructor's last step: the threads and limits asked for.
    fn built(inner: snakeid::Classifier, threads: u32, limits: Option<Limits>) -> Result<Arc<Self>, SnakeIdError> {
        let inner = inner.with_threads(threads as usize)?;
        Ok(Arc::new(Classifier {
            inner: match limits {
                Some(l) => inner.with_limits(l.into()),
                None => inner,
            },
        }))
    }
}

#[cfg(all(test, feature = "embedded-default"))]
mod tests {
    use super::*;

    #[test]
    fn wrappers_answer_like_the_core_and_map_errors() {
        let photo = snakeid_tests::photo("rocket.jpg");
        let ffi = Classifier::new(1, None).unwrap();
        let core = snakeid::Classifier::embedded_default().unwrap();
        let a = ffi.identify(photo.clone(), Some("US".into()), 5, None).unwrap();
        let b = core.identify(&photo, Some("US"), 5).unwrap();
        let probs =
            |p: &[crate::Prediction]| p.iter().map(|p| (p.class_index as usize, p.probability)).collect::<Vec<_>>();
        assert_eq!(
            probs(&a.predictions),
            b.decision.predictions.iter().map(|p| (p.class_index, p.probability)).collect::<Vec<_>>()
        );
        assert!(matches!(ffi.identify(vec![], None, 3, None), Err(SnakeIdError::InvalidImage(_))));
        assert!(matches!(
            ffi.identify(photo.clone(), Some("Narnia".into()), 3, None),
            Err(SnakeIdError::UnknownCountry(_))
        ));
        assert!(matches!(
            Classifier::from_bundle_bytes(b"nope".to_vec(), 1, None),
            Err(SnakeIdError::InvalidBundle(_))
        ));
        let bad = Some(Location { latitude: 91.0, longitude: 0.0 });
        assert!(matches!(ffi.identify(photo.clone(), None, 3, bad), Err(SnakeIdError::InvalidLocation(_))));
        let manila = ffi.identify(photo, None, 3, Some(Location { latitude: 14.6, longitude: 121.0 })).unwrap();
        assert_eq!(
            (manila.country.as_deref(), manila.country_source),
            (Some("PH"), Some(crate::CountrySource::DeviceLocation))
        );
        assert_eq!(ffi.bundle_info().species.len(), 17);
    }

    #[test]
    fn limits_refuse_a_larger_photo_and_default_to_the_cores() {
        let core = snakeid::Limits::default();
        // What `Limits`' `#[uniffi(default = …)]`s say: Python, Kotlin and Swift get these without passing any.
        assert_eq!((core.max_bytes, core.max_side, core.max_pixels), (67_108_864, 20_000, 100_000_000));
        let small = Classifier::new(1, Some(Limits { max_pixels: 10_000, ..core_limits() })).unwrap();
        let refused = small.identify(snakeid_tests::photo("rocket.jpg"), None, 5, None);
        assert!(
            matches!(&refused, Err(SnakeIdError::InvalidImage(m)) if m.contains("exceeds the limit")),
            "{refused:?}"
        );
        let small_file = Classifier::new(1, Some(Limits { max_bytes: 1000, ..core_limits() })).unwrap();
        assert!(matches!(
            small_file.identify(snakeid_tests::photo("rocket.jpg"), None, 5, None),
            Err(SnakeIdError::InvalidImage(_))
        ));
        assert!(Classifier::new(1, Some(core_limits()))
            .unwrap()
            .identify(snakeid_tests::photo("rocket.jpg"), None, 5, None)
            .is_ok());
    }

    fn core_limits() -> Limits {
        let l = snakeid::Limits::default();
        Limits { max_bytes: l.max_bytes, max_side: l.max_side, max_pixels: l.max_pixels }
    }

    #[test]
    #[cfg(feature = "threads")]
    fn a_classifier_on_threads_gives_the_one_thread_answer() {
        let photo = snakeid_tests::photo("rocket.jpg");
        let (one, three) = (Classifier::new(1, None).unwrap(), Classifier::new(3, None).unwrap());
        let (a, b) =
            (one.identify(photo.clone(), None, 5, None).unwrap(), three.identify(photo, None, 5, None).unwrap());
        assert_eq!(a.predictions, b.predictions);
        assert_eq!(
            Classifier::new(0, None)
                .unwrap()
                .identify(snakeid_tests::photo("rocket.jpg"), None, 5, None)
                .unwrap()
                .predictions
                .len(),
            5,
            "0 counts as 1"
        );
    }
}
