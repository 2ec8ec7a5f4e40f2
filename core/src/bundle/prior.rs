//! The species-by-country prior p(s|c): built from a SnakeCLEF-style CSV, stored as a compact sparse f16 table.
//!
//! The SnakeCLEF 2020 formula is p(s|c) = t_sc / t_c (images of species s in country c over images in c).
//! Smoothing `λ` mixes in a uniform distribution, p'(s|c) = (1-λ)·p(s|c) + λ/S, so that with λ > 0 no species
//! is ever erased by a country (a range map can be wrong; a bite patient's snake can be an escaped pet).
//! With λ = 0 the table is exactly the paper's formula (up to f16 rounding of each stored value).

use crate::bundle::countries;
use crate::error::{Error, Result};
use half::f16;
use std::collections::BTreeMap;

/// Default smoothing for `prior build`: small, but never zero.
pub const DEFAULT_SMOOTHING: f64 = 0.01;

const MAGIC: &[u8; 8] = b"SNKPRIOR";
const VERSION: u16 = 1;
/// Upper bounds accepted when reading a table, so a hostile file cannot make us allocate without limit.
const MAX_SPECIES: usize = 65_535;
const MAX_COUNTRIES: usize = 1_024;
const MAX_NAME: usize = 256;

/// One country row: stored relative to the row's largest value (f16 keeps more precision that way).
#[derive(Debug, Clone, PartialEq)]
struct Row {
    key: String,
    /// Value of every species absent from `entries` (the smoothing floor; 0 without smoothing).
    floor: f32,
    /// Scale of the stored f16 values.
    scale: f32,
    entries: Vec<(u16, f16)>,
}

/// A compiled prior: species keys (slugs of scientific names), and one sparse row per country.
#[derive(Debug, Clone, PartialEq)]
pub struct PriorTable {
    species: Vec<String>,
    smoothing: f32,
    rows: Vec<Row>,
}

/// What `build_from_csv` noticed on the way, for the person running it.
#[derive(Debug, Default, Clone)]
pub struct BuildReport {
    pub input_was_counts: bool,
    pub merged_rows: Vec<(String, String)>,
    pub empty_rows: Vec<String>,
}

/// The species keys of a prior CSV's header (`Species/Country,<species...>`): at most [`MAX_SPECIES`], none empty,
/// none twice.
fn species_of(header: &csv::StringRecord) -> Result<Vec<String>> {
    if header.len() < 2 {
        return Err(Error::prior("header must be `Species/Country` followed by one column per species"));
    }
    let species: Vec<String> = header.iter().skip(1).map(crate::bundle::labels::species_key).collect();
    if species.len() > MAX_SPECIES {
        return Err(Error::prior(format!("{} species is more than the {MAX_SPECIES} supported", species.len())));
    }
    if let Some(i) = species.iter().position(|s| s.is_empty()) {
        return Err(Error::prior(format!("species column {} has an empty name", i + 2)));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = species.iter().find(|s| !seen.insert(s.as_str())) {
        return Err(Error::prior(format!("species {dup:?} appears twice in the header")));
    }
    Ok(species)
}

/// Each country row's values (counts or probabilities) by ISO code, rows naming the same country summed (noted in
/// `report`, as is whether the values are counts); an error naming the rows whose country is unknown.
fn country_counts(
    rdr: &mut csv::Reader<impl std::io::Read>,
    species: usize,
    report: &mut BuildReport,
) -> Result<BTreeMap<&'static str, (String, Vec<f64>)>> {
    let mut raw: BTreeMap<&'static str, (String, Vec<f64>)> = BTreeMap::new();
    let mut all_integer = true;
    let mut any_sum_above_one = false;
    let mut unresolved = Vec::new();
    for (line, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| Error::prior(format!("row {}: {e}", line + 2)))?;
        let name = rec.get(0).unwrap_or_default().to_string();
        let code = match countries::resolve(&name) {
            Ok(c) => c,
            Err(_) => {
                unresolved.push(name);
                continue;
            }
        };
        let mut values = Vec::with_capacity(species);
        for (j, cell) in rec.iter().skip(1).enumerate() {
            let v: f64 = cell.trim().parse().map_err(|_| {
                Error::prior(format!("row {} ({name}), column {}: {cell:?} is not a number", line + 2, j + 2))
            })?;
            if !v.is_finite() || v < 0.0 {
                return Err(Error::prior(format!("row {} ({name}): value {v} must be finite and >= 0", line + 2)));
            }
            all_integer &= v.fract() == 0.0;
            values.push(v);
        }
        any_sum_above_one |= values.iter().sum::<f64>() > 1.0 + 1e-6;
        match raw.get_mut(code) {
            Some((first, acc)) => {
                report.merged_rows.push((name, first.clone()));
                acc.iter_mut().zip(&values).for_each(|(a, v)| *a += v);
            }
            None => {
                raw.insert(code, (name, values));
            }
        }
    }
    if !unresolved.is_empty() {
        let detail: Vec<String> = unresolved
            .iter()
            .take(10)
            .map(|n| match countries::suggestions(n).first() {
                Some(s) => format!("{n:?} (did you mean {s}?)"),
                None => format!("{n:?}"),
            })
            .collect();
        return Err(Error::prior(format!("unknown countries: {}", detail.join(", "))));
    }
    if raw.is_empty() {
        return Err(Error::prior("the table has no country rows"));
    }
    report.input_was_counts = all_integer && any_sum_above_one;
    Ok(raw)
}

impl PriorTable {
    /// Compiles a SnakeCLEF-layout CSV: header `Species/Country,<species...>`, then one row per country
    /// (ISO code or English name, or `unknown`) holding counts or probabilities.
    pub fn build_from_csv(reader: impl std::io::Read, smoothing: f64) -> Result<(Self, BuildReport)> {
        if !(0.0..=1.0).contains(&smoothing) {
            return Err(Error::prior(format!("smoothing must be within [0, 1], got {smoothing}")));
        }
        let mut rdr = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(reader);
        let header = rdr.headers().map_err(|e| Error::prior(format!("cannot read header: {e}")))?.clone();
        let species = species_of(&header)?;
        let mut report = BuildReport::default();
        let raw = country_counts(&mut rdr, species.len(), &mut report)?;
        let s = species.len() as f64;
        let mut rows = Vec::with_capacity(raw.len());
        for (code, (name, values)) in raw {
            let total: f64 = values.iter().sum();
            if total <= 0.0 {
                report.empty_rows.push(name);
                continue;
            }
            // p(s|c) = t_sc / t_c, then smoothing towards uniform.
            let p: Vec<f64> = values.iter().map(|v| (1.0 - smoothing) * v / total + smoothing / s).collect();
            let floor = smoothing / s;
            let max = p.iter().cloned().fold(0.0, f64::max);
            let entries = p
                .iter()
                .enumerate()
                .filter(|(_, &v)| v > floor * (1.0 + 1e-9) || (smoothing == 0.0 && v > 0.0))
                .map(|(i, &v)| (i as u16, f16::from_f64(v / max)))
                .collect();
            rows.push(Row { key: code.to_string(), floor: floor as f32, scale: max as f32, entries });
        }
        if rows.is_empty() {
            // Found by fuzzing (fuzz/fuzz_targets/prior_table.rs): such a table was written but could not be read back.
            return Err(Error::prior("every country row is all zeros: the table has no counts"));
        }
        Ok((PriorTable { species, smoothing: smoothing as f32, rows }, report))
    }

    /// Species keys (slugs of scientific names), in column order.
    pub fn species(&self) -> &[String] {
        &self.species
    }

    /// The country keys present (ISO codes, and `unknown` when the table has it).
    pub fn countries(&self) -> impl Iterator<Item = &str> {
        self.rows.iter().map(|r| r.key.as_str())
    }

    pub fn smoothing(&self) -> f32 {
        self.smoothing
    }

    /// Dense p(s|c) for one country key (an ISO code from [`countries::resolve`] or `unknown`).
    pub fn row(&self, key: &str) -> Option<Vec<f32>> {
        let row = self.rows.iter().find(|r| r.key == key)?;
        let mut dense = vec![row.floor; self.species.len()];
        for &(i, v) in &row.entries {
            dense[i as usize] = v.to_f32() * row.scale;
        }
        Some(dense)
    }

    /// Serialises to the compact binary form embedded in bundles.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(self.species.len() as u32).to_le_bytes());
        out.extend_from_slice(&(self.rows.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.smoothing.to_le_bytes());
        let put_str = |out: &mut Vec<u8>, s: &str| {
            out.extend_from_slice(&(s.len() as u16).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        };
        for s in &self.species {
            put_str(&mut out, s);
        }
        for r in &self.rows {
            put_str(&mut out, &r.key);
            out.extend_from_slice(&r.floor.to_le_bytes());
            out.extend_from_slice(&r.scale.to_le_bytes());
            out.extend_from_slice(&(r.entries.len() as u32).to_le_bytes());
            for (i, v) in &r.entries {
                out.extend_from_slice(&i.to_le_bytes());
                out.extend_from_slice(&v.to_bits().to_le_bytes());
            }
        }
        out
    }

    /// Parses and validates the binary form; any inconsistency is an error, never a panic.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader { bytes, pos: 0 };
        if r.take(8)? != MAGIC {
            return Err(Error::prior("not a snakeid prior table (bad magic)"));
        }
        let version = r.u16()?;
        if version != VERSION {
            return Err(Error::prior(format!("unsupported prior table version {version}")));
        }
        let n_species = r.u32()? as usize;
        let n_rows = r.u32()? as usize;
        if n_species == 0 || n_species > MAX_SPECIES || n_rows == 0 || n_rows > MAX_COUNTRIES {
            return Err(Error::prior(format!("implausible size: {n_species} species, {n_rows} countries")));
        }
        let smoothing = r.f32()?;
        if !(0.0..=1.0).contains(&smoothing) {
            return Err(Error::prior(format!("smoothing {smoothing} out of range")));
        }
        let species = (0..n_species).map(|_| r.string()).collect::<Result<Vec<_>>>()?;
        let mut rows = Vec::with_capacity(n_rows);
        for _ in 0..n_rows {
            let key = r.string()?;
            let floor = r.f32()?;
            let scale = r.f32()?;
            let n = r.u32()? as usize;
            if n > n_species || !(floor.is_finite() && floor >= 0.0 && scale.is_finite() && scale > 0.0) {
                return Err(Error::prior(format!("row {key:?} is corrupt")));
            }
            let mut entries = Vec::with_capacity(n);
            for _ in 0..n {
                let i = r.u16()?;
                let v = f16::from_bits(r.u16()?);
                if i as usize >= n_species || !v.is_finite() || v < f16::ZERO {
                    return Err(Error::prior(format!("row {key:?} has a corrupt entry")));
                }
                entries.push((i, v));
            }
            rows.push(Row { key, floor, scale, entries });
        }
        if r.pos != bytes.len() {
            return Err(Error::prior("trailing bytes after the last row"));
        }
        Ok(PriorTable { species, smoothing, rows })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| Error::prior("truncated table"))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn f32(&mut self) -> Result<f32> {
        Ok(f32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn string(&mut self) -> Result<String> {
        let n = self.u16()? as usize;
        if n > MAX_NAME {
            return Err(Error::prior("name too long"));
        }
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| Error::prior("name is not UTF-8"))
    }
}

/// The paper's adjustment: multiply classifier probabilities by the prior and renormalise.
/// If every product is zero (possible only with smoothing 0), the classifier's own distribution is kept.
pub fn apply(probs: &mut [f32], prior: &[f32]) {
    debug_assert_eq!(probs.len(), prior.len());
    let mut total = 0.0f64;
    let adjusted: Vec<f64> = probs.iter().zip(prior).map(|(&p, &q)| p as f64 * q as f64).collect();
    adjusted.iter().for_each(|v| total += v);
    if total > 0.0 && total.is_finite() {
        probs.iter_mut().zip(adjusted).for_each(|(p, a)| *p = (a / total) as f32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COUNTS: &str = "Species/Country,Naja naja,Daboia russelii,Python molurus\n\
                          India,30,10,0\n\
                          Sri Lanka,1,1,2\n\
                          unknown,5,0,5\n";

    #[test]
    fn smoothing_zero_is_the_papers_formula() {
        let (t, rep) = PriorTable::build_from_csv(COUNTS.as_bytes(), 0.0).unwrap();
        assert!(rep.input_was_counts);
        assert_eq!(t.species(), ["naja-naja", "daboia-russelii", "python-molurus"]);
        let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-3);
        // t_sc / t_c by hand: India 30/40, 10/40, 0/40.
        assert!(close(&t.row("IN").unwrap(), &[0.75, 0.25, 0.0]));
        assert!(close(&t.row("LK").unwrap(), &[0.25, 0.25, 0.5]));
        assert!(close(&t.row("unknown").unwrap(), &[0.5, 0.0, 0.5]));
        assert!(t.row("BR").is_none());
    }

    #[test]
    fn default_smoothing_never_erases_a_species() {
        let (t, _) = PriorTable::build_from_csv(COUNTS.as_bytes(), DEFAULT_SMOOTHING).unwrap();
        let india = t.row("IN").unwrap();
        assert!(india.iter().all(|&p| p > 0.0), "{india:?}");
        // (1-λ)·0.75 + λ/3 by hand.
        assert!((india[0] - (0.99 * 0.75 + 0.01 / 3.0)).abs() < 1e-3);
        assert!((india[2] - 0.01 / 3.0).abs() < 1e-6);
        assert!((india.iter().sum::<f32>() - 1.0).abs() < 2e-3);
    }

    #[test]
    fn prior_multiplies_and_renormalises() {
        let mut p = vec![0.2, 0.3, 0.5];
        apply(&mut p, &[0.75, 0.25, 0.0]);
        // 0.15, 0.075, 0 → / 0.225
        assert!((p[0] - 0.15 / 0.225).abs() < 1e-6 && (p[1] - 0.075 / 0.225).abs() < 1e-6 && p[2] == 0.0);
        let mut q = vec![0.5, 0.5];
        apply(&mut q, &[0.0, 0.0]);
        assert_eq!(q, vec![0.5, 0.5]);
    }

    #[test]
    fn binary_round_trip_and_corruption() {
        let (t, _) = PriorTable::build_from_csv(COUNTS.as_bytes(), 0.01).unwrap();
        let bytes = t.to_bytes();
        assert_eq!(PriorTable::from_bytes(&bytes).unwrap(), t);
        for cut in 0..bytes.len() {
            assert!(PriorTable::from_bytes(&bytes[..cut]).is_err());
        }
        let mut bad = bytes.clone();
        bad[0] ^= 1;
        assert!(PriorTable::from_bytes(&bad).is_err());
    }

    #[test]
    fn duplicate_country_rows_merge_and_bad_rows_fail() {
        let csv = "Species/Country,a b,c d\nhong-kong,1,0\nhong-kong-s.a.r.,0,1\n";
        let (t, rep) = PriorTable::build_from_csv(csv.as_bytes(), 0.0).unwrap();
        assert_eq!(rep.merged_rows.len(), 1);
        assert_eq!(t.row("HK").unwrap(), vec![0.5, 0.5]);
        let e = PriorTable::build_from_csv("Species/Country,a b\nIndai,1\n".as_bytes(), 0.0).unwrap_err();
        assert!(e.to_string().contains("IN (India)"), "{e}");
        assert!(PriorTable::build_from_csv("Species/Country,a b\nIN,-1\n".as_bytes(), 0.0).is_err());
        assert!(PriorTable::build_from_csv("Species/Country,a b\nIN,x\n".as_bytes(), 0.0).is_err());
        assert!(PriorTable::build_from_csv("Species/Country,a b\nIN,1,2\n".as_bytes(), 0.0).is_err());
    }

    /// Regression (fuzz/prior_table): a table whose only rows are all zeros was written, then refused on load.
    #[test]
    fn regression_fuzz_all_zero_rows_are_refused_when_building() {
        let err = PriorTable::build_from_csv("sC/,nw:0\nBR,0\n".as_bytes(), 0.01).unwrap_err();
        assert!(err.to_string().contains("all zeros"), "{err}");
        let err = PriorTable::build_from_csv("Species/Country,Naja naja\nIN,0\nBR,0\n".as_bytes(), 0.0).unwrap_err();
        assert!(err.to_string().contains("all zeros"), "{err}");
    }
}
