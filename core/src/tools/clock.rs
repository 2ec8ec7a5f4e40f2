//! The one monotonic clock the engine times itself with: std's, except in browsers (wasm32-unknown-unknown), where
//! std's `Instant::now` panics and `performance.now()` is the clock.

pub use web_time::Instant;
