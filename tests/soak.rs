//! Soak: many threads x many calls on one `Classifier`, on the CPU and (when there is one) the GPU. Every answer must
//! equal what a single call gives, and peak RSS must grow by less than 5% after the warm-up (the same threads warm up
//! and then run the measured calls, as an app's workers would: new threads bring new allocator arenas).
//!
//! `SNAKEID_SOAK_CALLS` (default 200), `SNAKEID_SOAK_WARMUP` (default 40) and `SNAKEID_SOAK_GPU_CALLS` (default 8; lavapipe takes ~1 s a call) scale the
//! runs. `SNAKEID_SOAK_RSS=0` skips the RSS bound, for runs under valgrind (whose own memory is what RSS then shows):
//! `tests/leakcheck.sh` runs this binary under valgrind's leak checker. `SNAKEID_SOAK_RSS=heap` bounds the C
//! allocator's held bytes instead, for runs under qemu-user (whose RSS is the emulator's: `tests/arm/run.sh`).

use snakeid::internals::bench::peak_rss_mb;
use snakeid::{Backend, Classifier};
use snakeid_tests::*;
use std::sync::{Arc, Barrier};

const PHOTOS: [&str; 4] = ["chelsea.png", "coffee.png", "rocket.jpg", "astronaut.webp"];

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

type Answer = Vec<(usize, f32)>;

fn answer(c: &Classifier, photo: &[u8]) -> Answer {
    ranking(&c.identify(photo, Some("US"), 5).expect("answers"))
}

/// On `threads` threads that live through both phases (as an app's workers do): `warmup` calls, then — once every
/// thread is done warming up and the peak RSS has been read — `calls` calls, every answer checked against the
/// single-call one. Returns the peak RSS and the allocator's held bytes (0 where unknown), after the warm-up and at
/// the end.
fn soak(
    c: &Arc<Classifier>,
    photos: &Arc<Vec<(Vec<u8>, Answer)>>,
    threads: usize,
    warmup: usize,
    calls: usize,
) -> [(f64, f64); 2] {
    let barrier = Arc::new(Barrier::new(threads + 1));
    let run = move |c: &Classifier, photos: &[(Vec<u8>, Answer)], t: usize, n: usize| {
        for i in (t..n).step_by(threads) {
            let (photo, want) = &photos[i % photos.len()];
            assert_eq!(&answer(c, photo), want, "call {i} on thread {t}");
        }
    };
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (c, photos, barrier) = (c.clone(), photos.clone(), barrier.clone());
            std::thread::spawn(move || {
                run(&c, &photos, t, warmup);
                barrier.wait(); // warm-up done
                barrier.wait(); // base RSS read
                run(&c, &photos, t, calls);
            })
        })
        .collect();
    let memory = || (peak_rss_mb(), heap_held_mb().unwrap_or(0.0));
    barrier.wait();
    let base = memory();
    barrier.wait();
    for w in workers {
        w.join().expect("soak thread");
    }
    [base, memory()]
}

fn soak_backend(c: Classifier, threads: usize, warmup: usize, calls: usize) {
    let c = Arc::new(c);
    let photos: Vec<_> = PHOTOS.iter().map(|n| photo(n)).map(|p| (p.clone(), answer(&c, &p))).collect();
    let [(base, heap_base), (end, heap_end)] = soak(&c, &Arc::new(photos), threads, warmup, calls);
    let backend = c.backend_info().backend;
    eprintln!("{backend}: {threads} threads x {calls} calls after {warmup} warm-up calls: peak RSS {base:.1} -> {end:.1} MB, allocator's heap {heap_base:.1} -> {heap_end:.1} MB");
    match std::env::var("SNAKEID_SOAK_RSS").as_deref() {
        Ok("0") => {}
        Ok("heap") => assert!(
            heap_base > 0.0 && heap_end <= heap_base * 1.05,
            "{backend}: the allocator's heap grew from {heap_base:.1} to {heap_end:.1} MB"
        ),
        _ => assert!(end <= base * 1.05, "{backend}: peak RSS grew from {base:.1} to {end:.1} MB"),
    }
}

#[test]
fn many_threads_many_calls_same_answers_and_flat_peak_memory() {
    soak_backend(
        Classifier::embedded_default().unwrap(),
        4,
        env_count("SNAKEID_SOAK_WARMUP", 40),
        env_count("SNAKEID_SOAK_CALLS", 200),
    );
    let gpu_calls = env_count("SNAKEID_SOAK_GPU_CALLS", 8);
    if gpu_calls > 0 && gpu_available() {
        let g = Classifier::embedded_default().unwrap().with_backend(Backend::Gpu, None).expect("GPU backend");
        soak_backend(g, 2, 4, gpu_calls);
    }
}
