//! Benchmarking a loaded classifier on one photo: cold start, first call, per-stage percentiles, peak RSS.
//!
//! One measurement for every front end: `snakeid bench` prints it, the mobile `benchmark()` call returns it.

use crate::error::Result;
use serde::Serialize;

/// Milliseconds spent in each stage of one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Timings {
    pub decode: f64,
    pub preprocess: f64,
    pub inference: f64,
    pub postprocess: f64,
    pub total: f64,
}

/// Nearest-rank percentiles of one stage, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles (the smallest value with at least p% of the samples at or below it).
    pub fn of(samples: &[f64]) -> Self {
        let mut v = samples.to_vec();
        v.sort_by(f64::total_cmp);
        let rank = |p: f64| -> f64 {
            if v.is_empty() {
                return 0.0;
            }
            let k = ((p / 100.0) * v.len() as f64).ceil() as usize;
            v[k.clamp(1, v.len()) - 1]
        };
        Percentiles { p50: rank(50.0), p90: rank(90.0), p99: rank(99.0) }
    }
}

/// Percentiles of every stage of `identify`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StageStats {
    pub decode: Percentiles,
    pub preprocess: Percentiles,
    pub inference: Percentiles,
    pub postprocess: Percentiles,
    pub total: Percentiles,
}

impl StageStats {
    pub fn of(runs: &[Timings]) -> Self {
        let stage = |f: fn(&Timings) -> f64| Percentiles::of(&runs.iter().map(f).collect::<Vec<_>>());
        StageStats {
            decode: stage(|t| t.decode),
            preprocess: stage(|t| t.preprocess),
            inference: stage(|t| t.inference),
            postprocess: stage(|t| t.postprocess),
            total: stage(|t| t.total),
        }
    }
}

/// What `snakeid bench --json` prints and the bindings' `benchmark()` returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchmarkReport {
    pub iterations: u32,
    pub threads: u32,
    pub backend: String,
    /// Bundle load and model compile of the classifier measured.
    pub cold_start_ms: f64,
    /// The classifier's first `identify` call (this benchmark's first call if it had not been called yet).
    pub first_call_ms: f64,
    pub stages_ms: StageStats,
    /// Peak resident set size of the process so far, in MiB (0 where the platform does not report it).
    pub peak_rss_mb: f64,
}

/// Runs `warmup` unmeasured calls (at least one), then `iterations` measured ones (at least one): the first
/// call's total time and the measured calls' stage timings.
pub fn measure(mut call: impl FnMut() -> Result<Timings>, iterations: u32, warmup: u32) -> Result<(f64, Vec<Timings>)> {
    let first = call()?.total;
    for _ in 1..warmup {
        call()?;
    }
    let runs = (0..iterations.max(1)).map(|_| call()).collect::<Result<Vec<_>>>()?;
    Ok((first, runs))
}

/// Peak resident set size of this process in MiB: `VmHWM` on Linux and Android, `ru_maxrss` on Apple platforms.
pub fn peak_rss_mb() -> f64 {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }
    #[cfg(target_vendor = "apple")]
    {
        // SAFETY: getrusage only writes into the zeroed struct we pass it.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let ok = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } == 0;
        // Darwin reports ru_maxrss in bytes.
        if ok {
            usage.ru_maxrss as f64 / (1024.0 * 1024.0)
        } else {
            0.0
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
    {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(Percentiles::of(&v), Percentiles { p50: 50.0, p90: 90.0, p99: 99.0 });
        let v = [3.0, 1.0, 2.0];
        assert_eq!(Percentiles::of(&v), Percentiles { p50: 2.0, p90: 3.0, p99: 3.0 });
        assert_eq!(Percentiles::of(&[7.0]), Percentiles { p50: 7.0, p90: 7.0, p99: 7.0 });
    }
}
