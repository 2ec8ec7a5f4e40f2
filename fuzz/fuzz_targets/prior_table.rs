//! Fuzz target: any bytes as a compiled prior table and as a SnakeCLEF-style CSV; a table that parses must
//! round-trip and give finite probabilities for every country it lists.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snakeid::internals::prior::PriorTable;

fuzz_target!(|data: &[u8]| {
    for table in [PriorTable::from_bytes(data).ok(), PriorTable::build_from_csv(data, 0.01).ok().map(|(t, _)| t)].into_iter().flatten() {
        let again = PriorTable::from_bytes(&table.to_bytes()).expect("a table we wrote reads back");
        for c in table.countries() {
            let row = again.row(c).expect("listed country has a row");
            assert!(row.iter().all(|p| p.is_finite() && *p >= 0.0), "bad probability for {c}");
        }
    }
});
