//! What a bundle is and knows, as one plain record ([`crate::Bundle::info`]): what the FFI's `bundle_info()` and
//! the web app's `bundleInfo()` return.

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
