//! What measures and tests the engine rather than runs it: [`mod@bench`] (cold start, per-stage percentiles, peak
//! memory) and [`failpoint`] (test builds make named steps panic).

pub mod bench;
pub mod failpoint;
