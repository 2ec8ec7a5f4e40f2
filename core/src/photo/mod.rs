//! From the photo's bytes to the model's input tensor: [`decode`] (JPEG, PNG, WebP; EXIF orientation; size limits
//! before allocation; JPEGs at 1/8 scale straight from their DC coefficients in `jpeg_dc` when the photo is large),
//! then [`preprocess`] (crop, resize with [`resample`], normalise).

pub mod decode;
pub mod gps;
mod jpeg_dc;
pub mod preprocess;
pub mod resample;
