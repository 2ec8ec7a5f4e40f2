//! Per-output labels of a classifier: names, taxonomy, venom status, and whether the class is a snake.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// One model output class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Label {
    pub class_index: usize,
    /// Common name shown to people, e.g. "Indian cobra".
    pub label: String,
    /// Binomial name, e.g. "Naja naja"; empty for classes that are not snakes.
    pub scientific_name: String,
    pub genus: String,
    pub family: String,
    /// Medically significant venom: a bite needs urgent care.
    pub venomous: bool,
    /// Whether this class is a snake at all (the other classes are the "no snake in this photo" signal).
    pub is_snake: bool,
}

impl Label {
    /// The key under which this species appears in a prior table.
    pub fn species_key(&self) -> String {
        species_key(&self.scientific_name)
    }
}

/// Prior tables name species as SnakeCLEF does: "naja-naja" for "Naja naja".
pub fn species_key(name: &str) -> String {
    crate::bundle::countries::slug(name)
}

const COLUMNS: [&str; 7] = ["class_index", "label", "scientific_name", "genus", "family", "venomous", "is_snake"];

/// A yes/no column as labels.csv and species tables write it: `true`/`1`/`yes` or `false`/`0`/`no`, any case.
pub fn parse_flag(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// Writes `labels.csv` as [`parse`] reads it.
pub fn to_csv(labels: &[Label]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(COLUMNS).expect("writing to memory");
    for l in labels {
        let (i, v, s) = (l.class_index.to_string(), l.venomous.to_string(), l.is_snake.to_string());
        w.write_record([&i, &l.label, &l.scientific_name, &l.genus, &l.family, &v, &s]).expect("writing to memory");
    }
    w.into_inner().expect("writing to memory")
}

/// Parses `labels.csv` (columns as in [`COLUMNS`]); indices must be 0..n in order.
pub fn parse(bytes: &[u8]) -> Result<Vec<Label>> {
    let mut rdr = csv::ReaderBuilder::new().from_reader(bytes);
    let header = rdr.headers().map_err(|e| Error::bundle(format!("labels.csv: {e}")))?.clone();
    let header: Vec<&str> = header.iter().collect();
    if header != COLUMNS {
        return Err(Error::bundle(format!(
            "labels.csv: columns must be {}, found {}",
            COLUMNS.join(","),
            header.join(",")
        )));
    }
    let mut out = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let row = i + 2;
        let rec = rec.map_err(|e| Error::bundle(format!("labels.csv row {row}: {e}")))?;
        let flag = |col: usize| -> Result<bool> {
            let text = rec.get(col).unwrap_or_default();
            parse_flag(text).ok_or_else(|| {
                Error::bundle(format!(
                    "labels.csv row {row}: {} must be true/false, got {:?}",
                    COLUMNS[col],
                    text.trim().to_ascii_lowercase()
                ))
            })
        };
        let class_index: usize =
            rec[0].trim().parse().map_err(|_| Error::bundle(format!("labels.csv row {row}: bad class_index")))?;
        if class_index != i {
            return Err(Error::bundle(format!("labels.csv row {row}: class_index {class_index}, expected {i}")));
        }
        let label = Label {
            class_index,
            label: rec[1].to_string(),
            scientific_name: rec[2].to_string(),
            genus: rec[3].to_string(),
            family: rec[4].to_string(),
            venomous: flag(5)?,
            is_snake: flag(6)?,
        };
        if label.is_snake && label.scientific_name.trim().is_empty() {
            return Err(Error::bundle(format!("labels.csv row {row}: a snake class needs a scientific_name")));
        }
        if label.venomous && !label.is_snake {
            return Err(Error::bundle(format!("labels.csv row {row}: venomous but not a snake")));
        }
        out.push(label);
    }
    if !out.iter().any(|l| l.is_snake) {
        return Err(Error::bundle("labels.csv: no class is marked as a snake"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_validates() {
        let ok = "class_index,label,scientific_name,genus,family,venomous,is_snake\n0,cat,,,,false,false\n1,Indian cobra,Naja naja,Naja,Elapidae,true,true\n";
        let l = parse(ok.as_bytes()).unwrap();
        assert_eq!(l[1].species_key(), "naja-naja");
        assert!(l[1].venomous && !l[0].is_snake);
        assert!(parse(ok.replace("1,Indian", "7,Indian").as_bytes()).is_err());
        assert!(parse(ok.replace("true,true", "maybe,true").as_bytes()).is_err());
        assert!(parse(ok.replace("Naja naja", "").as_bytes()).is_err());
        assert!(parse(b"a,b\n1,2\n").is_err());
    }
}
