//! The AArch64 plug-ins, in NEON (part of every AArch64 CPU): the depthwise and stem convolutions, and the int8
//! pointwise convolution with the dot-product extension (`sdot`), sharing the epilogue in registers
//! ([`epilogue`]). Each computes its portable loop's values bit for bit, and is plugged in only where
//! [`super::isa()`] says the CPU has its instructions.

pub(crate) mod depthwise;
pub(crate) mod epilogue;
pub(crate) mod qpointwise;
pub(crate) mod stem;

use super::isa::Isa;
use super::table::Kernels;

/// Puts the AArch64 plug-ins into `kernels`, each only where `isa` says the CPU has its instructions: what makes
/// calling them through the table safe.
pub(crate) fn plug(kernels: &mut Kernels, isa: &Isa) {
    kernels.depthwise = depthwise::plugged;
    kernels.stem = stem::plugged;
    kernels.plugged.extend(["depthwise (NEON)", "stem (NEON)"]);
    if isa.dotprod {
        kernels.qpointwise = qpointwise::plugged;
        kernels.int8_pointwise = true;
        kernels.plugged.push("int8 convolutions (dot product)");
    }
}
