//! The AArch64 plug-ins: our int8 pointwise convolution with the dot-product extension (`sdot`). The other kernels
//! run their portable loops, which the compiler vectorises for NEON (part of every AArch64 CPU). Each plug-in
//! computes its portable loop's values bit for bit, and is plugged in only where [`super::isa()`] says the CPU has
//! its instructions.

pub(crate) mod qpointwise;

use super::isa::Isa;
use super::table::Kernels;

/// Puts the AArch64 plug-ins into `kernels`, each only where `isa` says the CPU has its instructions: what makes
/// calling them through the table safe.
pub(crate) fn plug(kernels: &mut Kernels, isa: &Isa) {
    if isa.dotprod {
        kernels.qpointwise = qpointwise::plugged;
        kernels.int8_pointwise = true;
    }
}
