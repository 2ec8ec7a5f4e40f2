//! What a bundle is and knows, as one plain record: what the FFI's `bundle_info()` and the web app's `bundleInfo()`
//! return.

use crate::bundle::Bundle;
use serde::Serialize;

/// One species the bundle can recognise.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Species {
    pub class_index: usize,
    pub label: String,
    pub scientific_name: String,
    pub genus: String,
    pub family: String,
    pub venomous: bool,
}

/// A bundle's name, version, input size, species and the countries of its prior.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BundleInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    pub num_classes: usize,
    pub input_width: u32,
    pub input_height: u32,
    pub species: Vec<Species>,
    /// Country keys of the bundle's prior (ISO codes, and `unknown`); empty when it has none.
    pub countries: Vec<String>,
}

impl Bundle {
    /// This bundle as a [`BundleInfo`].
    pub fn info(&self) -> BundleInfo {
        let m = &self.manifest;
        BundleInfo {
            name: m.name.clone(),
            version: m.version.clone(),
            description: m.description.clone(),
            num_classes: m.model.num_classes,
            input_width: m.input.width,
            input_height: m.input.height,
            species: self
                .species()
                .map(|l| Species {
                    class_index: l.class_index,
                    label: l.label.clone(),
                    scientific_name: l.scientific_name.clone(),
                    genus: l.genus.clone(),
                    family: l.family.clone(),
                    venomous: l.venomous,
                })
                .collect(),
            countries: self.prior.iter().flat_map(|p| p.countries()).map(str::to_string).collect(),
        }
    }
}
