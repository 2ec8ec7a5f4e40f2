//! The arithmetic of our operators, with no tract in it: portable baselines that every CPU runs, and per-ISA
//! plug-ins chosen from one detection ([`isa()`]). Each kernel takes plain parameter structs and slices, so that it
//! can be tested on its own against its portable loop. The tract operators that call them are in
//! [`crate::backend::cpu`]; the only tract this layer sees is tract-linalg's thread pool ([`parallel`]).
//!
//! - [`quant`]: fake quantization and quantization to u8, the clamp and rounding everything shares;
//! - [`epilogue`]: clip and fake quantization on blocks of outputs; inputs and outputs as values or u8 codes;
//! - [`plane`]: the zero-padded input planes of spatial convolutions;
//! - [`depthwise`], [`stem`], [`qpointwise`]: the convolutions; [`im2col`]: the matrix that makes any int8
//!   convolution [`qpointwise`]'s matrix product;
//! - [`parallel`]: splitting a kernel's work over the call's threads;
//! - `table`: the kernels this CPU runs ([`kernels`]), portable or plugged in;
//! - `x86_64/`: AVX-512 and VNNI plug-ins, and `x86_64/avx2/` for CPUs without AVX-512 (the int8 one exact through
//!   f32 fused multiply-adds); `aarch64/`: NEON depthwise and stem plug-ins and the dot-product
//!   (`sdot`) int8 one; `wasm32/`: the WebAssembly SIMD int8 plug-in.

#[cfg(target_arch = "aarch64")]
pub(crate) mod aarch64;
pub(crate) mod depthwise;
pub(crate) mod epilogue;
pub(crate) mod im2col;
pub(crate) mod isa;
pub(crate) mod parallel;
pub(crate) mod plane;
pub(crate) mod qpointwise;
pub(crate) mod quant;
pub(crate) mod stem;
mod table;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(crate) mod wasm32;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86_64;

pub(crate) use isa::isa;

pub(crate) use table::Kernels;

use std::sync::OnceLock;

/// The plug-ins this CPU runs, as "kernel (instructions)", or "portable loops only": printed by `snakeid bench` and
/// by CI, so that a run says which code it measured or tested.
pub fn plugged() -> String {
    let plugged = &kernels().plugged;
    if plugged.is_empty() {
        "portable loops only".to_string()
    } else {
        plugged.join(", ")
    }
}

/// For the plug-in tests: whether the plug-in `name`, which needs the CPU flags `flags` (as `/proc/cpuinfo` spells
/// them), ran (`ran`). Where it did not, the test prints so; and where `SNAKEID_REQUIRE_ISA` (the flags CI found on
/// its CPU, or that an emulated CPU has) lists every one of `flags`, a plug-in that did not run fails the test: a
/// machine that has the instructions must test the code written for them (issue 37).
#[cfg(test)]
pub(crate) fn plug_in_ran(name: &str, flags: &[&str], ran: bool) -> bool {
    let required = std::env::var("SNAKEID_REQUIRE_ISA").unwrap_or_default();
    let required: Vec<&str> = required.split([' ', ',']).filter(|f| !f.is_empty()).collect();
    let demanded = flags.iter().all(|f| required.contains(f));
    assert!(ran || !demanded, "{name}: SNAKEID_REQUIRE_ISA says the CPU has {flags:?}, but the plug-in did not run");
    eprintln!("{name}: {}", if ran { "ran" } else { "not run (this CPU lacks it)" });
    ran
}

/// This CPU's kernels, chosen on the first call from [`isa()`].
pub(crate) fn kernels() -> &'static Kernels {
    static KERNELS: OnceLock<Kernels> = OnceLock::new();
    KERNELS.get_or_init(|| {
        #[allow(unused_mut)]
        let mut kernels = Kernels::portable();
        #[cfg(target_arch = "x86_64")]
        x86_64::plug(&mut kernels, isa());
        #[cfg(target_arch = "aarch64")]
        aarch64::plug(&mut kernels, isa());
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        wasm32::plug(&mut kernels);
        kernels
    })
}
