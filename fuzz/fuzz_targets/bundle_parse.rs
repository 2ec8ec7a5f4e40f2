//! Fuzz target: any bytes as a packed bundle, a manifest and a labels.csv. Errors are fine; panics are findings.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = snakeid::Bundle::from_packed(data);
    let _ = snakeid::internals::manifest::Manifest::parse(data);
    let _ = snakeid::internals::labels::parse(data);
});
