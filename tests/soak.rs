//! Soak: many threads x many calls on one `Classifier`, on the CPU and (when there is one) the GPU. Every answer must
//! equal what a single call gives, and peak RSS must grow by less than 5% after the warm-up.
//!
//! `SNAKEID_SOAK_CALLS` (default 200), `SNAKEID_SOAK_WARMUP` (default 40) and `SNAKEID_SOAK_GPU_CALLS` (default 8; lavapipe takes ~1 s a call) scale the
//! runs. `SNAKEID_SOAK_RSS=0` skips the RSS bound, for runs under valgrind (whose own memory is what RSS then shows):
//! `tests/leakcheck.sh` runs this binary under valgrind's leak checker.

use snakeid::bench::peak_rss_mb;
use snakeid::{Backend, Classifier};
use snakeid_tests::*;
use std::sync::Arc;

const PHOTOS: [&str; 4] = ["chelsea.png", "coffee.png", "rocket.jpg", "astronaut.webp"];

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

type Answer = Vec<(usize, f32)>;

fn answer(c: &Classifier, photo: &[u8]) -> Answer {
    ranking(&c.identify(photo, Some("US"), 5).expect("answers"))
}

/// `calls` calls spread over `threads` threads, each checked against the single-call answer.
fn soak(c: &Arc<Classifier>, photos: &Arc<Vec<(Vec<u8>, Answer)>>, threads: usize, calls: usize) {
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (c, photos) = (c.clone(), photos.clone());
            std::thread::spawn(move || {
                for i in (t..calls).step_by(threads) {
                    let (photo, want) = &photos[i % photos.len()];
                    assert_eq!(&answer(&c, photo), want, "call {i} on thread {t}");
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("soak thread");
    }
}

fn soak_backend(c: Classifier, threads: usize, warmup: usize, calls: usize) {
    let c = Arc::new(c);
    let photos: Vec<_> = PHOTOS.iter().map(|n| photo(n)).map(|p| (p.clone(), answer(&c, &p))).collect();
    let photos = Arc::new(photos);
    soak(&c, &photos, threads, warmup);
    let base = peak_rss_mb();
    soak(&c, &photos, threads, calls);
    let end = peak_rss_mb();
    eprintln!("{}: {threads} threads x {calls} calls: peak RSS {base:.1} MB after {warmup} warm-up calls, {end:.1} MB at the end", c.backend_info().backend);
    if std::env::var("SNAKEID_SOAK_RSS").as_deref() != Ok("0") {
        assert!(end <= base * 1.05, "{}: peak RSS grew from {base:.1} to {end:.1} MB", c.backend_info().backend);
    }
}

#[test]
fn many_threads_many_calls_same_answers_and_flat_peak_memory() {
    soak_backend(Classifier::embedded_default().unwrap(), 4, env_count("SNAKEID_SOAK_WARMUP", 40), env_count("SNAKEID_SOAK_CALLS", 200));
    let gpu_calls = env_count("SNAKEID_SOAK_GPU_CALLS", 8);
    if gpu_calls > 0 && gpu_available() {
        let g = Classifier::embedded_default().unwrap().with_backend(Backend::Gpu, None).expect("GPU backend");
        soak_backend(g, 2, 4, gpu_calls);
    }
}
