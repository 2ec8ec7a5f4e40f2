//! ISO 3166-1 alpha-2 country codes and English names: resolving user input to a code.

use crate::error::{Error, Result};
use std::sync::OnceLock;

/// One country: its ISO 3166-1 alpha-2 code and English short name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Country {
    pub code: &'static str,
    pub name: &'static str,
    aliases: Vec<&'static str>,
}

/// The pseudo-country of the SnakeCLEF tables for photos without a location.
pub const UNKNOWN: &str = "unknown";

const TABLE: &str = include_str!("countries.tsv");

/// All countries, parsed once from the embedded table.
pub fn all() -> &'static [Country] {
    static ALL: OnceLock<Vec<Country>> = OnceLock::new();
    ALL.get_or_init(|| {
        TABLE
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let mut cols = line.split('\t');
                let code = cols.next().unwrap_or_default();
                let name = cols.next().unwrap_or_default();
                let aliases = cols.next().map(|a| a.split('|').collect()).unwrap_or_default();
                Country { code, name, aliases }
            })
            .collect()
    })
}

/// Lower-case, ASCII letters and digits only, runs of anything else become one '-':
/// "Côte d'Ivoire" and "cote-d-ivoire" compare equal, as do "United States" and "united-states".
pub fn slug(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().flat_map(char::to_lowercase) {
        let c = match c {
            'á' | 'à' | 'â' | 'ä' | 'å' | 'ã' => 'a',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'í' | 'ì' | 'î' | 'ï' => 'i',
            'ó' | 'ò' | 'ô' | 'ö' | 'õ' => 'o',
            'ú' | 'ù' | 'û' | 'ü' => 'u',
            'ç' => 'c',
            'ñ' => 'n',
            c => c,
        };
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// Looks a code or English name up, case-insensitively. `None` if nothing matches exactly.
pub fn find(input: &str) -> Option<&'static Country> {
    let s = slug(input);
    if s.is_empty() {
        return None;
    }
    all().iter().find(|c| slug(c.code) == s || slug(c.name) == s || c.aliases.iter().any(|a| slug(a) == s))
}

/// Resolves user input to an ISO code (upper case) or [`UNKNOWN`], or a typed error naming close matches.
pub fn resolve(input: &str) -> Result<&'static str> {
    if input.len() > MAX_INPUT {
        // No country name is this long: refuse without a search (whose cost grows with the input) and quote only
        // the start, so the message stays one short line.
        let cut = (0..=40).rev().find(|&i| input.is_char_boundary(i)).unwrap_or(0);
        return Err(Error::UnknownCountry {
            input: format!("{}... ({} bytes)", &input[..cut], input.len()),
            suggestions: vec![],
        });
    }
    if slug(input) == UNKNOWN {
        return Ok(UNKNOWN);
    }
    find(input)
        .map(|c| c.code)
        .ok_or_else(|| Error::UnknownCountry { input: input.to_string(), suggestions: suggestions(input) })
}

/// Longest country input searched for (the longest English name we know is well under this).
pub const MAX_INPUT: usize = 64;

/// Up to five close matches for a string that matched nothing, as "CODE (Name)".
pub fn suggestions(input: &str) -> Vec<String> {
    let s = slug(input);
    let mut scored: Vec<(usize, &Country)> = all()
        .iter()
        .filter_map(|c| {
            let names = std::iter::once(c.name).chain(c.aliases.iter().copied());
            let best = names
                .map(|n| {
                    let n = slug(n);
                    if s.len() >= 3 && n.starts_with(&s) {
                        0
                    } else {
                        levenshtein(&s, &n)
                    }
                })
                .chain(std::iter::once(levenshtein(&s, &slug(c.code))))
                .min()?;
            let allowed = if s.len() <= 2 { 1 } else { (s.len() / 3).max(2) };
            (best <= allowed).then_some((best, c))
        })
        .collect();
    scored.sort_by_key(|(d, c)| (*d, c.code));
    scored.into_iter().take(5).map(|(_, c)| format!("{} ({})", c.code, c.name)).collect()
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_resolve_case_insensitively() {
        assert_eq!(resolve("in").unwrap(), "IN");
        assert_eq!(resolve("India").unwrap(), "IN");
        assert_eq!(resolve("united-states-of-america").unwrap(), "US");
        assert_eq!(resolve("Ivory Coast").unwrap(), "CI");
        assert_eq!(resolve("Côte d'Ivoire").unwrap(), "CI");
        assert_eq!(resolve("hong-kong-s.a.r.").unwrap(), "HK");
        assert_eq!(resolve("UNKNOWN").unwrap(), UNKNOWN);
    }

    #[test]
    fn every_name_in_the_table_is_within_the_input_limit() {
        for c in all() {
            for n in std::iter::once(c.name).chain(c.aliases.iter().copied()) {
                assert!(n.len() <= MAX_INPUT, "{n}");
                assert_eq!(resolve(n).unwrap(), c.code);
            }
        }
    }

    #[test]
    fn regression_a_megabyte_country_string_is_refused_at_once_with_a_short_message() {
        // It used to run the close-match search over the whole input (1.2 s for 100 KB) and echo it in the message.
        let huge = "é".repeat(500_000);
        let start = std::time::Instant::now();
        let e = resolve(&huge).unwrap_err().to_string();
        assert!(start.elapsed().as_millis() < 50 && e.len() < 200 && e.contains("1000000 bytes"), "{e}");
    }

    #[test]
    fn table_has_every_code_once() {
        let mut codes: Vec<_> = all().iter().map(|c| c.code).collect();
        assert!(codes.len() >= 249);
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), all().len());
        assert!(codes.iter().all(|c| c.len() == 2 && c.chars().all(|x| x.is_ascii_uppercase())));
    }

    #[test]
    fn unknown_country_suggests_close_names() {
        let Err(Error::UnknownCountry { suggestions, .. }) = resolve("Indai") else { panic!() };
        assert!(suggestions.iter().any(|s| s.starts_with("IN ")), "{suggestions:?}");
        let Err(e) = resolve("Brasil") else { panic!() };
        assert!(e.to_string().contains("BR (Brazil)"), "{e}");
        assert!(resolve("XX").is_err());
        assert!(resolve("").is_err());
    }
}
