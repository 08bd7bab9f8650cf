//! The exact definition the kernels are tested against: the same formulas in the plainest
//! form, every division done in `f64` and rounded to nearest. Slow; for tests only.

use crate::Mode;

/// `x / 255` rounded to nearest (no ties: 255 is odd).
pub fn div255(x: u32) -> u32 {
    (x as f64 / 255.0).round() as u32
}

/// One straight-alpha `src` pixel with `opacity` (0..=255) onto an opaque `dst` pixel.
pub fn blend_pixel(dst: [u8; 4], src: [u8; 4], opacity: u8, mode: Mode) -> [u8; 4] {
    let a = div255(src[3] as u32 * opacity as u32);
    let mut out = dst;
    for c in 0..3 {
        let d = dst[c] as u32;
        let s = src[c] as u32;
        out[c] = match mode {
            Mode::Over => div255(s * a + d * (255 - a)),
            Mode::Add => (d + div255(s * a)).min(255),
            Mode::Multiply => div255(div255(s * d) * a + d * (255 - a)),
        } as u8;
    }
    out
}

/// The real-valued blend of one channel, `alpha` in 0..=1: what the 8-bit result
/// approximates (tests allow ±1).
pub fn exact(d: f64, s: f64, alpha: f64, mode: Mode) -> f64 {
    match mode {
        Mode::Over => s * alpha + d * (1.0 - alpha),
        Mode::Add => (d + s * alpha).min(255.0),
        Mode::Multiply => (s * d / 255.0) * alpha + d * (1.0 - alpha),
    }
}
