//! What measures and tests the engine rather than runs it: [`mod@bench`] (cold start, per-stage percentiles, peak
//! memory), [`failpoint`] (test builds make named steps panic) and [`clock`] (the one monotonic clock).

pub mod bench;
pub mod clock;
pub mod failpoint;
