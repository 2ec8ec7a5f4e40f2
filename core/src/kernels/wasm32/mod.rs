//! The WebAssembly plug-ins (browsers): our int8 pointwise convolution with 128-bit SIMD's `i32x4.dot_i16x8_s`.
//! The other kernels run their portable loops, compiled for `simd128`. WebAssembly has no run-time feature
//! detection: a module built with SIMD (`.cargo/config.toml`) runs only where the browser has it, so the plug-in
//! is chosen when the module is built.

pub(crate) mod qpointwise;

use super::table::Kernels;

/// Puts the WebAssembly plug-ins into `kernels`.
pub(crate) fn plug(kernels: &mut Kernels) {
    kernels.qpointwise = qpointwise::plugged;
    kernels.int8_pointwise = true;
    kernels.plugged.push("int8 convolutions (SIMD128)");
}
