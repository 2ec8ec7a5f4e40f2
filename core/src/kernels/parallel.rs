//! Splits our kernels' work over the threads tract runs a call on (the engine's `--threads` pool), so that they
//! scale with threads as tract's own matrix products do, and gives them per-thread scratch memory. The one place
//! where this layer names tract: tract-linalg's executor is the pool.

use std::sync::atomic::{AtomicUsize, Ordering};
use tract_linalg::multithread::{current_tract_executor, Executor};
#[cfg(feature = "threads")]
use {crate::tools::clock::Instant, std::time::Duration};

/// How long the calling thread spins for the pool's chunks before it sleeps until they are done.
#[cfg(feature = "threads")]
const SPIN: Duration = Duration::from_micros(200);

/// Runs `f(first_unit, chunk)` over `out` cut into chunks of whole units (`unit_len` values each; chunk sizes a
/// multiple of `align` units), one chunk per thread of the current executor, in parallel (the first on the calling
/// thread); all on the calling thread when there is one thread. A panic in a chunk reaches the caller, as it would
/// single-threaded.
pub(crate) fn for_each_chunk<T: Send>(
    out: &mut [T],
    unit_len: usize,
    align: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    for_each_chunk_of([out], unit_len, align, |first, [chunk]| f(first, chunk))
}

/// [`for_each_chunk`] over `N` slices of equal length cut alike: `f(first_unit, chunks)` gets the same units of
/// each (rows of several planes, say).
pub(crate) fn for_each_chunk_of<T: Send, const N: usize>(
    slices: [&mut [T]; N],
    unit_len: usize,
    align: usize,
    f: impl Fn(usize, [&mut [T]; N]) + Sync,
) {
    let len = slices.first().map_or(0, |s| s.len());
    assert!(slices.iter().all(|s| s.len() == len), "slices of equal length");
    match split(len / unit_len.max(1), align) {
        Some((executor, per)) => {
            let mut chunks = slices.map(|s| s.chunks_mut(per * unit_len));
            let items = (0..).step_by(per).map_while(|first| {
                let next = chunks.each_mut().map(|c| c.next());
                next.iter().all(Option::is_some).then(|| (first, next.map(|c| c.expect("checked"))))
            });
            run_on(&executor, items, |(first, chunks)| f(first, chunks))
        }
        None => f(0, slices),
    }
}

/// Runs `f(range)` over `0..units` cut into one range per thread of the current executor (range lengths a
/// multiple of `align`), in parallel as [`for_each_chunk`] does. (Used by the x86-64 int8 kernel only.)
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) fn for_each_range(units: usize, align: usize, f: impl Fn(std::ops::Range<usize>) + Sync) {
    match split(units, align) {
        Some((executor, per)) => {
            run_on(&executor, (0..units).step_by(per).map(|start| start..(start + per).min(units)), f)
        }
        None => f(0..units),
    }
}

/// Runs `f(i)` for each `i` in `0..items`, the indices taken in order by the current executor's threads as each
/// comes free (the calling thread one of them): for items of uneven cost, more items than threads.
pub(crate) fn for_each_index(items: usize, f: impl Fn(usize) + Sync) {
    let workers = threads().min(items);
    if workers < 2 {
        return (0..items).for_each(f);
    }
    let next = AtomicUsize::new(0);
    run_on(&current_tract_executor(), 0..workers, |_| loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= items {
            break;
        }
        f(i);
    });
}

/// Runs `f` with a pool of `threads` threads as the current executor (for tests of the split).
#[cfg(all(test, feature = "threads", not(target_family = "wasm")))]
pub(crate) fn with_threads<R>(threads: usize, f: impl FnOnce() -> R) -> R {
    tract_linalg::multithread::multithread_tract_scope(Executor::multithread(threads), f)
}

/// Runs `f` on the calling thread alone, where there are no threads (WebAssembly, or a build without `threads`).
#[cfg(all(test, not(all(feature = "threads", not(target_family = "wasm")))))]
pub(crate) fn with_threads<R>(_threads: usize, f: impl FnOnce() -> R) -> R {
    f()
}

/// Threads of the current executor (1 when it has no pool).
pub(crate) fn threads() -> usize {
    threads_of(&current_tract_executor())
}

/// Threads of `executor` (1 when it has no pool).
fn threads_of(executor: &Executor) -> usize {
    match executor {
        #[cfg(feature = "threads")]
        Executor::MultiThread(pool) => pool.current_num_threads().max(1),
        _ => 1,
    }
}

/// The current executor, when it has a pool of threads that `units` is worth splitting over, and the units each
/// thread takes (a multiple of `align`).
fn split(units: usize, align: usize) -> Option<(Executor, usize)> {
    let executor = current_tract_executor();
    let threads = threads_of(&executor);
    let align = align.max(1);
    let per = units.div_ceil(threads).div_ceil(align) * align;
    (threads > 1 && per < units).then_some((executor, per))
}

/// Runs `f` on each item: the first on the calling thread and the others on the executor's pool (all on the calling
/// thread when it has none).
fn run_on<I: Send>(executor: &Executor, items: impl Iterator<Item = I>, f: impl Fn(I) + Sync) {
    match executor {
        #[cfg(feature = "threads")]
        Executor::MultiThread(pool) => {
            let mut items = items;
            // The calling thread does the first item itself while the pool does the others: one wake-up fewer per
            // operator, and no thread idles waiting.
            let first = items.next();
            let pending = AtomicUsize::new(0);
            pool.in_place_scope(|s| {
                for item in items {
                    let (f, pending) = (&f, &pending);
                    pending.fetch_add(1, Ordering::Relaxed);
                    s.spawn(move |_| {
                        f(item);
                        pending.fetch_sub(1, Ordering::Release);
                    });
                }
                if let Some(item) = first {
                    f(item);
                }
                // Wait for the others spinning, for a while: the scope's own wait puts this thread to sleep, and the
                // wake-up took as long as a whole chunk of most of our operators (BENCHMARKS.md).
                let since = Instant::now();
                while pending.load(Ordering::Acquire) > 0 && since.elapsed() < SPIN {
                    for _ in 0..64 {
                        std::hint::spin_loop();
                    }
                }
            });
        }
        _ => items.for_each(f),
    }
}

thread_local! {
    static BYTES: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    static FLOATS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    static MATRIX: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's reusable scratch of `len` bytes (contents left from earlier use: the caller writes
/// or zeroes what it reads). No allocation per call once it has grown to the largest size asked for: allocating
/// and freeing megabytes per operator made the allocator's per-thread arenas, and the process's peak memory,
/// creep up under many threads. (Used by the x86-64 int8 kernel only.)
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) fn with_bytes<R>(len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
    scratch(&BYTES, len, f)
}

/// As [`with_bytes`], for the im2col matrix of an int8 convolution ([`super::im2col`]): it is filled on the calling
/// thread before the matrix product splits over the threads, which then take their own [`with_bytes`].
pub(crate) fn with_matrix_bytes<R>(len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
    scratch(&MATRIX, len, f)
}

/// As [`with_bytes`], for f32 scratch, zeroed.
pub(crate) fn with_zeroed_floats<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    scratch(&FLOATS, len, |floats| {
        floats.fill(0.0);
        f(floats)
    })
}

/// `len` elements of one of this thread's scratch vectors, grown (never shrunk) to the largest size asked for.
fn scratch<T: Copy + Default + 'static, R>(
    cell: &'static std::thread::LocalKey<std::cell::RefCell<Vec<T>>>,
    len: usize,
    f: impl FnOnce(&mut [T]) -> R,
) -> R {
    cell.with(|b| {
        let mut b = b.borrow_mut();
        if b.len() < len {
            b.resize(len, T::default());
        }
        f(&mut b[..len])
    })
}
