//! Which vector instructions this CPU has, detected once on first use: every kernel picks its variant from this
//! one answer, so that no call detects again and all of them agree.

use std::sync::OnceLock;

/// The instruction-set extensions our kernels can use (the x86 ones `false` on other architectures, where the
/// portable loops run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Isa {
    /// x86 SSSE3 (the JPEG colour conversion's vector path).
    pub ssse3: bool,
    /// x86 AVX2 and FMA.
    pub avx2: bool,
    pub fma: bool,
    /// x86 AVX-512 F, BW, VL and VNNI.
    pub avx512f: bool,
    pub avx512bw: bool,
    pub avx512vl: bool,
    pub avx512vnni: bool,
    /// AArch64 dot product (Armv8.2 `sdot`/`udot`): Cortex-A55, A75 and later.
    pub dotprod: bool,
}

impl Isa {
    /// What this CPU has.
    pub fn detect() -> Isa {
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        {
            use std::arch::is_x86_feature_detected as has;
            Isa {
                ssse3: has!("ssse3"),
                avx2: has!("avx2"),
                fma: has!("fma"),
                avx512f: has!("avx512f"),
                avx512bw: has!("avx512bw"),
                avx512vl: has!("avx512vl"),
                avx512vnni: has!("avx512vnni"),
                dotprod: false,
            }
        }
        #[cfg(target_arch = "aarch64")]
        return Isa { dotprod: std::arch::is_aarch64_feature_detected!("dotprod"), ..Isa::default() };
        #[cfg(not(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64")))]
        Isa::default()
    }

    /// Whether `f32::mul_add` is one instruction in our multiversioned loops, not a call into libm: x86-64 with FMA
    /// (where they are compiled for it), and every AArch64 CPU.
    pub fn fast_fma(&self) -> bool {
        (cfg!(target_arch = "x86_64") && self.fma) || cfg!(target_arch = "aarch64")
    }

    /// AVX2 with FMA: the middle tier of the auto-vectorised loops.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub fn avx2_fma(&self) -> bool {
        self.avx2 && self.fma
    }

    /// AVX-512 F, BW and VL: our depthwise kernel.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub fn avx512_bw_vl(&self) -> bool {
        self.avx512f && self.avx512bw && self.avx512vl
    }

    /// AVX-512 F, BW and VNNI: our int8 pointwise kernel.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub fn avx512_vnni(&self) -> bool {
        self.avx512f && self.avx512bw && self.avx512vnni
    }
}

/// This CPU's extensions, detected on the first call.
pub fn isa() -> &'static Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    ISA.get_or_init(Isa::detect)
}

/// Defines the method `$name`, which runs `$portable` (an `#[inline(always)]` loop) compiled for the widest vector
/// unit this CPU has: AVX-512, AVX2 with FMA, or the build's baseline. Rust never contracts `a * b + c` and
/// `mul_add` is one rounding everywhere, so every variant computes the same bits.
macro_rules! multiversion {
    ($(#[$doc:meta])* $ty_self:ty, fn $name:ident $(<$g:ident: $bound:path>)? => $portable:ident ( $($arg:ident : $ty:ty),* )) => {
        $(#[$doc])*
        pub(crate) fn $name $(<$g: $bound>)? (&self, $($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512 $(<$g: $bound>)? (op: &$ty_self, $($arg: $ty),*) {
                    op.$portable($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2 $(<$g: $bound>)? (op: &$ty_self, $($arg: $ty),*) {
                    op.$portable($($arg),*)
                }
                let isa = $crate::kernels::isa::isa();
                if isa.avx512f {
                    // SAFETY: the CPU has the feature the function was compiled for.
                    return unsafe { avx512(self, $($arg),*) };
                }
                if isa.avx2_fma() {
                    // SAFETY: as above.
                    return unsafe { avx2(self, $($arg),*) };
                }
            }
            self.$portable($($arg),*)
        }
    };
}

pub(crate) use multiversion;
