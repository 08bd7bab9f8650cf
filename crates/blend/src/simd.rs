//! The kernels compiled twice: for the baseline x86-64 (SSE2) every build targets, and for
//! AVX2 (twice the lanes, and 32-bit multiplies the SSE2 build has to emulate), chosen at
//! run time by what the CPU has. The kernels themselves are the same safe, plain Rust
//! (`#[inline(always)]`, so each copy is vectorised for its own instruction set); the only
//! `unsafe` is calling the AVX2 copy, after checking that the CPU has AVX2, which is exactly
//! the condition `#[target_feature]` asks the caller to guarantee. Measured with
//! `benches/blend.rs`; figures in docs/sl-composite.md.
#![allow(unsafe_code)]

use sl_frame::Coeffs;

use crate::Mode;
use crate::yuv::RowsOut;

/// Whether the AVX2 copies may run (the standard library caches the CPUID answer).
#[inline]
fn avx2() -> bool {
    #[cfg(test)]
    if BASELINE.with(|b| b.get()) {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn blend_rgba_avx2(dst: &mut [u8], src: &[u8], op: u32, mode: Mode) {
    crate::blend_rgba_any(dst, src, op, mode)
}

/// [`crate::blend_rgba_any`], in its AVX2 copy where the CPU has AVX2.
pub(crate) fn blend_rgba(dst: &mut [u8], src: &[u8], op: u32, mode: Mode) {
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: the CPU supports AVX2 (checked just above), the only requirement of
        // `blend_rgba_avx2`'s #[target_feature]; the function itself is safe Rust.
        return unsafe { blend_rgba_avx2(dst, src, op, mode) };
    }
    crate::blend_rgba_any(dst, src, op, mode)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn fused_rows_avx2(c: &Coeffs, op: u16, top: &[u8], bottom: &[u8], o: RowsOut, nv12: bool) {
    crate::yuv::fused_rows(c, op, top, bottom, o, nv12)
}

/// [`crate::yuv::fused_rows`], in its AVX2 copy where the CPU has AVX2.
pub(crate) fn fused_rows(c: &Coeffs, op: u16, top: &[u8], bottom: &[u8], o: RowsOut, nv12: bool) {
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: as in `blend_rgba`: AVX2 is there, checked just above.
        return unsafe { fused_rows_avx2(c, op, top, bottom, o, nv12) };
    }
    crate::yuv::fused_rows(c, op, top, bottom, o, nv12)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn mix_plane_avx2(dst: &mut [u8], src: &[u8], alpha: &[u8], op: u8) {
    crate::mix_plane_any(dst, src, alpha, op)
}

/// [`crate::mix_plane_any`], in its AVX2 copy where the CPU has AVX2.
pub(crate) fn mix_plane(dst: &mut [u8], src: &[u8], alpha: &[u8], op: u8) {
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: as in `blend_rgba`: AVX2 is there, checked just above.
        return unsafe { mix_plane_avx2(dst, src, alpha, op) };
    }
    crate::mix_plane_any(dst, src, alpha, op)
}

#[cfg(test)]
thread_local! {
    /// Tests set it to run the baseline copies on a CPU that has AVX2 (both are checked
    /// against the reference).
    pub(crate) static BASELINE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run `f` once with the baseline copies and once with the best the CPU has.
#[cfg(test)]
pub(crate) fn both(mut f: impl FnMut(&str)) {
    for (baseline, name) in [(true, "baseline"), (false, "dispatched")] {
        BASELINE.with(|b| b.set(baseline));
        f(name);
    }
    BASELINE.with(|b| b.set(false));
}
