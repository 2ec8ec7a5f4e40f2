//! Empty: a build script, so that the `[build-dependencies]` line up the proc-macros' features too.
fn main() {}
