//! snakeid in the browser: wasm-bindgen wrappers over the core, with no logic of their own.
//!
//! [`Classifier`] is the one object. Answers are the CLI's `--json` objects; failures are thrown as JS `Error`s
//! carrying `kind` (the core's [`snakeid::Error::kind`]) and a one-line `message`. A Rust panic aborts the wasm
//! instance (browsers cannot unwind it): the panic hook keeps its message for [`take_panic_message`], and the web
//! app's worker then starts a fresh instance, so the page stays up.

use serde::Serialize;
use std::sync::Mutex;
use wasm_bindgen::prelude::*;

/// Warm-up calls before `benchmark` starts measuring (as the FFI's).
const BENCH_WARMUP: u32 = 3;

/// The last panic's message, kept for the host: the instance is unusable after it.
static PANIC: Mutex<Option<String>> = Mutex::new(None);

#[wasm_bindgen(start)]
fn start() {
    std::panic::set_hook(Box::new(|info| {
        if let Ok(mut last) = PANIC.lock() {
            *last = Some(info.to_string().lines().collect::<Vec<_>>().join(" "));
        }
    }));
}

/// The message of the panic that stopped this instance, if one did.
#[wasm_bindgen(js_name = takePanicMessage)]
pub fn take_panic_message() -> Option<String> {
    PANIC.lock().ok().and_then(|mut p| p.take())
}

/// Test builds only (feature `failpoints`): makes the named steps panic, as `SNAKEID_FAILPOINTS` does natively
/// (e.g. `"inference=1"`).
#[cfg(feature = "failpoints")]
#[wasm_bindgen(js_name = setFailpoints)]
pub fn set_failpoints(spec: &str) {
    snakeid::internals::failpoint::set(spec);
}

/// A loaded bundle and compiled model. Build once (compiling takes a fraction of a second), then identify many photos.
#[wasm_bindgen]
pub struct Classifier {
    inner: snakeid::Classifier,
}

#[wasm_bindgen]
impl Classifier {
    /// Loads the default bundle compiled into the `.wasm`.
    #[cfg(feature = "embedded-default")]
    #[wasm_bindgen(js_name = new)]
    pub fn embedded() -> Result<Classifier, JsValue> {
        Ok(Classifier { inner: snakeid::Classifier::embedded_default().map_err(to_js)? })
    }

    /// Loads a packed `.snkb` bundle from its bytes.
    #[wasm_bindgen(js_name = fromBundleBytes)]
    pub fn from_bundle_bytes(bytes: &[u8]) -> Result<Classifier, JsValue> {
        Ok(Classifier { inner: snakeid::Classifier::from_packed(bytes).map_err(to_js)? })
    }

    /// Identifies the snake in a JPEG, PNG or WebP photo: the CLI's `--json` object (its `image` is null: there is
    /// no file). `country`: ISO 3166-1 alpha-2 code, English name or `unknown`, as the user chose it; null leaves it
    /// to the photo's GPS position, then to the device's (`latitude`, `longitude`, both or neither; its country is
    /// found offline), else applies no prior. The object's `country_source` says which.
    pub fn identify(
        &self,
        bytes: &[u8],
        country: Option<String>,
        #[wasm_bindgen(js_name = topK)] top_k: u32,
        latitude: Option<f64>,
        longitude: Option<f64>,
    ) -> Result<JsValue, JsValue> {
        let location = match (latitude, longitude) {
            (Some(lat), Some(lon)) => Some(snakeid::Location::new(lat, lon).map_err(to_js)?),
            (None, None) => None,
            _ => {
                return Err(error("invalid_location", "invalid location: give both latitude and longitude, or neither"))
            }
        };
        let id = self.inner.identify_at(bytes, country.as_deref(), location, top_k as usize).map_err(to_js)?;
        let mut json = serde_json::to_value(&id).map_err(internal)?;
        json["image"] = serde_json::Value::Null;
        to_object(&json)
    }

    /// The largest photo a call accepts: `maxBytes` of file, `maxSide` pixels a side, `maxPixels` in all (each
    /// undefined keeps the current one; defaults 64 MiB, 20 000, 100 megapixels). A larger photo is an
    /// `invalid_image` error, found before any pixel buffer exists; a phone's tab lowers `maxPixels` (a PNG is decoded
    /// at full size, ~3 bytes a pixel). A limit that is not a positive whole number is `invalid_limits`, nothing changed.
    #[wasm_bindgen(js_name = setLimits)]
    pub fn set_limits(
        &mut self,
        max_bytes: Option<f64>,
        max_side: Option<f64>,
        max_pixels: Option<f64>,
    ) -> Result<(), JsValue> {
        let whole = |name: &str, v: Option<f64>, keep: u64, max: u64| match v {
            None => Ok(keep),
            Some(v) if v.is_finite() && v >= 1.0 && v.fract() == 0.0 && v <= max as f64 => Ok(v as u64),
            Some(v) => Err(error(
                "invalid_limits",
                &format!("invalid limits: {name} must be a whole number from 1 to {max}, not {v}"),
            )),
        };
        let now = self.inner.limits();
        let limits = snakeid::Limits {
            max_bytes: whole("maxBytes", max_bytes, now.max_bytes, 1 << 53)?,
            max_side: whole("maxSide", max_side, now.max_side as u64, u32::MAX as u64)? as u32,
            max_pixels: whole("maxPixels", max_pixels, now.max_pixels, 1 << 53)?,
        };
        self.inner.set_limits(limits);
        Ok(())
    }

    /// The photo as the model's input tensor (decoded, resized, cropped and normalised as the bundle says: the
    /// primary view `identify` runs first). With `logits`, for benchmarks that time the model alone from JavaScript.
    pub fn preprocess(&self, bytes: &[u8]) -> Result<Vec<f32>, JsValue> {
        self.inner.preprocess(bytes).map_err(to_js)
    }

    /// The model's logits for an input tensor from `preprocess` (the model alone: no gate, prior or decision).
    pub fn logits(&self, input: Vec<f32>) -> Result<Vec<f32>, JsValue> {
        self.inner.logits(input).map_err(to_js)
    }

    /// The bundle's name, version, input size, species and countries (the FFI's `BundleInfo`).
    #[wasm_bindgen(js_name = bundleInfo)]
    pub fn bundle_info(&self) -> Result<JsValue, JsValue> {
        to_object(&self.inner.bundle().info())
    }

    /// Cold start, first call and per-stage p50/p90/p99 over `iterations` calls on one photo (`snakeid bench
    /// --json`'s record; no peak memory in a browser: 0).
    pub fn benchmark(&self, bytes: &[u8], iterations: u32) -> Result<JsValue, JsValue> {
        to_object(&self.inner.benchmark(bytes, iterations, BENCH_WARMUP).map_err(to_js)?)
    }
}

/// A value as a plain JS object, through JSON: the same numbers and keys the CLI prints.
fn to_object(value: &impl Serialize) -> Result<JsValue, JsValue> {
    js_sys::JSON::parse(&serde_json::to_string(value).map_err(internal)?)
}

/// The core's error as a JS `Error` with `kind` and `message`.
fn to_js(e: snakeid::Error) -> JsValue {
    error(e.kind(), &e.to_string())
}

fn internal(e: impl std::fmt::Display) -> JsValue {
    error("internal", &format!("internal error: {e}"))
}

fn error(kind: &str, message: &str) -> JsValue {
    let e = js_sys::Error::new(message);
    // Setting a property on a fresh Error cannot fail.
    let _ = js_sys::Reflect::set(&e, &"kind".into(), &kind.into());
    e.into()
}
