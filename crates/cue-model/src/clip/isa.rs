//! Which of CUE's own CPU loops this machine runs, decided once at run time from what the CPU
//! reports, so one binary is fast on an AVX-512 Xeon or EPYC and correct on an AVX2-only one.
//!
//! `CUE_CPU_ISA=avx2` (or `portable`) caps the choice below what the CPU has: it times and tests
//! on one machine the loops another class of CPU gets (`scripts/cpu-bench-avx2.sh`). It caps
//! CUE's loops only; gemm chooses its own kernels, which only a build without burn's `x86-v4`
//! feature keeps to AVX2.

use std::sync::OnceLock;

/// An instruction-set level of CUE's CPU loops, lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// Plain Rust, whatever the compiler makes of it for the build's baseline.
    Portable,
    /// AVX2 and FMA (x86-64-v3).
    Avx2,
    /// AVX-512 F.
    Avx512,
}

impl Isa {
    /// The level this process runs: the CPU's best, capped by `CUE_CPU_ISA`. An unknown value
    /// is reported once and ignored.
    pub fn current() -> Isa {
        static CURRENT: OnceLock<Isa> = OnceLock::new();
        *CURRENT.get_or_init(|| {
            let detected = detected();
            match std::env::var("CUE_CPU_ISA") {
                Ok(value) => match parse(&value) {
                    Some(cap) => detected.min(cap),
                    None => {
                        tracing::warn!("CUE_CPU_ISA={value:?} is not avx512, avx2 or portable; ignored");
                        detected
                    }
                },
                Err(_) => detected,
            }
        })
    }

    /// Its name, as `CUE_CPU_ISA` takes it and `cue bench clip` reports it.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }
}

/// Whether AVX-512 F's loops run.
pub(crate) fn avx512() -> bool {
    Isa::current() >= Isa::Avx512
}

/// Whether AVX2 and FMA's loops run.
pub(crate) fn avx2() -> bool {
    Isa::current() >= Isa::Avx2
}

/// Whether the bf16 product's kernel (AVX-512 F and BF16) can run.
pub(crate) fn avx512_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        avx512() && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether the integer product's AVX-512 kernel (AVX-512 F and VNNI's `vpdpwssd`) can run.
pub(crate) fn avx512_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        avx512() && std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn parse(value: &str) -> Option<Isa> {
    match value.trim().to_ascii_lowercase().as_str() {
        "avx512" | "avx-512" | "x86-64-v4" => Some(Isa::Avx512),
        "avx2" | "x86-64-v3" => Some(Isa::Avx2),
        "portable" | "none" | "scalar" => Some(Isa::Portable),
        _ => None,
    }
}

fn detected() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Isa::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return Isa::Avx2;
        }
    }
    Isa::Portable
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_unknown_values_do_not() {
        for isa in [Isa::Portable, Isa::Avx2, Isa::Avx512] {
            assert_eq!(parse(isa.name()), Some(isa));
        }
        assert_eq!(parse(" AVX2 "), Some(Isa::Avx2));
        assert_eq!(parse("sse9"), None);
        assert!(Isa::Portable < Isa::Avx2 && Isa::Avx2 < Isa::Avx512);
    }

    #[test]
    fn current_never_exceeds_the_cpu() {
        assert!(Isa::current() <= detected());
    }
}
