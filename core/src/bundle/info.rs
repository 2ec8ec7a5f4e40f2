//! What a bundle is and knows, as one plain record ([`crate::Bundle::info`]): what the FFI's `bundle_info()` and
//! the web app's `bundleInfo()` return.

use crate::bundle::labels::Label;
use serde::Serialize;

/// A bundle's name, version, input size, species and the countries of its prior.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BundleInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    pub num_classes: usize,
    pub input_width: u32,
    pub input_height: u32,
    /// The classes that are snakes (`is_snake` is true for each).
    pub species: Vec<Label>,
    /// Country keys of the bundle's prior (ISO codes, and `unknown`); empty when it has none.
    pub countries: Vec<String>,
}
