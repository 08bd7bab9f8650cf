//! Alpha blending for the compositor, in a crate of its own so the kernels can be tested
//! against an exact reference ([`reference`]) and measured alone (`benches/blend.rs`).
//!
//! The model: layers are straight (not premultiplied) alpha, blended onto an opaque canvas,
//! so the canvas' alpha stays 255 and each colour channel is
//!
//! ```text
//! a   = round(alpha * opacity / 255)                    (0..=255)
//! out = round((B(s, d) * a + d * (255 - a)) / 255)
//! ```
//!
//! where `B` is the blend mode: `over` B = s, `add` B = min(255, s + d) applied as
//! `min(255, d + round(s * a / 255))`, `multiply` B = round(s * d / 255). Every division by
//! 255 rounds to nearest ([`div255`]; a tie never happens because 255 is odd), and the
//! kernels give exactly what [`reference`] gives, bit for bit; the reference is within ±1 of
//! the real-valued blend.
//!
//! The kernels are plain loops over fixed-size blocks with no branches in the body, written
//! so the compiler vectorises them, and compiled twice, for baseline x86-64 and for AVX2,
//! picked at run time ([`simd`]); `benches/blend.rs` measures them (docs/sl-composite.md).
//!
//! YUV canvases ([`yuv`]) take RGBA layers without converting the canvas: a layer is blended
//! straight into the Y, U and V planes (luma per pixel, chroma per 2x2 block from the
//! alpha-weighted mean colour), or, for a layer shown unchanged on several frames, turned
//! into Y, U, V and alpha planes once and then mixed with [`mix_plane`].
//!
//! [`band`] cuts a canvas into horizontal bands that threads blend at the same time.

pub mod band;
pub mod reference;
pub mod resample;
mod simd;
pub mod yuv;

use std::fmt;
use std::str::FromStr;

/// How a layer combines with what is under it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub enum Mode {
    /// The layer's colour, weighted by its alpha.
    #[default]
    Over,
    /// Adds the layer's (alpha-weighted) colour, saturating at 255: glows, light leaks.
    Add,
    /// Multiplies: darkens, white is neutral (shadows, vignettes, paper textures).
    Multiply,
}

impl Mode {
    pub const NAMES: [&'static str; 3] = ["over", "add", "multiply"];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Over => "over",
            Mode::Add => "add",
            Mode::Multiply => "multiply",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "over" | "normal" => Ok(Mode::Over),
            "add" | "plus" => Ok(Mode::Add),
            "multiply" | "mul" => Ok(Mode::Multiply),
            _ => Err(format!(
                "`{s}` is not a blend mode: use over, add or multiply"
            )),
        }
    }
}

/// `x / 255` rounded to nearest, exact for every `x` in `0..=255*255` (checked against the
/// reference for all of them): the usual shift form of the division, which vectorises.
#[inline(always)]
pub fn div255(x: u32) -> u32 {
    let t = x + 128;
    (t + (t >> 8)) >> 8
}

/// A layer pixel's alpha scaled by the layer's opacity.
#[inline(always)]
pub fn effective_alpha(alpha: u8, opacity: u8) -> u8 {
    div255(alpha as u32 * opacity as u32) as u8
}

/// An opacity in 0..=1 as the 0..=255 the kernels take (rounded to nearest).
pub fn opacity_u8(opacity: f64) -> u8 {
    (opacity.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// Blend a row (or any run) of straight-alpha RGBA `src` onto opaque RGBA `dst` of the same
/// length. `dst`'s alpha bytes are left as they are (the canvas is opaque).
pub fn blend_rgba(dst: &mut [u8], src: &[u8], opacity: u8, mode: Mode) {
    assert_eq!(dst.len(), src.len(), "blend_rgba: rows of the same length");
    simd::blend_rgba(dst, src, opacity as u32, mode);
}

/// [`blend_rgba`] for any instruction set (see [`simd`]).
#[inline(always)]
pub(crate) fn blend_rgba_any(dst: &mut [u8], src: &[u8], op: u32, mode: Mode) {
    match mode {
        Mode::Over => over_rgba(dst, src, op),
        Mode::Add => add_rgba(dst, src, op),
        Mode::Multiply => multiply_rgba(dst, src, op),
    }
}

/// [`div255`] in 16 bits: every intermediate of `x + 128 + ((x + 128) >> 8)` fits a u16 for
/// `x <= 255 * 255`, so the vector units work on 8 (SSE2) or 16 (AVX2) lanes at once.
#[inline(always)]
pub(crate) fn div255_16(x: u16) -> u16 {
    let t = x + 128;
    (t + (t >> 8)) >> 8
}

#[inline(always)]
pub(crate) fn mix16(d: u16, s: u16, a: u16) -> u16 {
    div255_16(s * a + d * (255 - a))
}

/// Pixels per block in the RGBA kernels. Measured with `benches/blend.rs` on the test
/// machine: a per-pixel loop over `chunks_exact(4)` does not vectorise (25 ms for a 1080p
/// `over`); whole 16-pixel blocks in u16 lanes, with each byte's alpha picked by index
/// (`k | 3`), do, several times faster (docs/performance.md has the figures).
const BLOCK: usize = 16 * 4;

/// One block of RGBA: `f(d, s, a)` for every colour byte, the alpha bytes kept.
#[inline(always)]
fn rgba_blocks(dst: &mut [u8], src: &[u8], op: u32, f: impl Fn(u16, u16, u16) -> u16) {
    let op = op as u16;
    let mut d_blocks = dst.chunks_exact_mut(BLOCK);
    let mut s_blocks = src.chunks_exact(BLOCK);
    for (d, s) in (&mut d_blocks).zip(&mut s_blocks) {
        let d: &mut [u8; BLOCK] = d.try_into().expect("a whole block");
        let s: &[u8; BLOCK] = s.try_into().expect("a whole block");
        // each colour byte's alpha; 0 for the alpha bytes, which every mode then leaves as
        // they are (f(d, s, 0) == d)
        let mut a = [0u16; BLOCK];
        for p in 0..BLOCK / 4 {
            let al = div255_16(s[4 * p + 3] as u16 * op);
            a[4 * p] = al;
            a[4 * p + 1] = al;
            a[4 * p + 2] = al;
        }
        let mut out = [0u8; BLOCK];
        for k in 0..BLOCK {
            out[k] = f(d[k] as u16, s[k] as u16, a[k]) as u8;
        }
        *d = out;
    }
    // the last few pixels
    for (d, s) in d_blocks
        .into_remainder()
        .chunks_exact_mut(4)
        .zip(s_blocks.remainder().chunks_exact(4))
    {
        let a = div255_16(s[3] as u16 * op);
        for c in 0..3 {
            d[c] = f(d[c] as u16, s[c] as u16, a) as u8;
        }
    }
}

/// Two 8-bit channels of a pixel in the 16-bit fields of a `u32` (R and B, or G and A).
const FIELDS: u32 = 0x00ff_00ff;

/// [`div255`] of both 16-bit fields of `x` at once (each at most 255 * 255: no carry
/// crosses from one field into the other at any step).
#[inline(always)]
fn div255_fields(x: u32) -> u32 {
    let t = x + 0x0080_0080;
    ((t + ((t >> 8) & FIELDS)) >> 8) & FIELDS
}

/// `over` and `add` with a pixel per 32-bit lane: R and B mixed together in the fields of
/// one `u32`, then G, the canvas' alpha byte kept. No byte shuffles: measured faster than the
/// per-byte blocks of [`rgba_blocks`], whose per-pixel alpha had to be spread to three bytes.
#[inline(always)]
fn rgba_pixels(dst: &mut [u8], src: &[u8], op: u32, add: bool) {
    const P: usize = 16;
    let px = |b: &[u8], j: usize| {
        u32::from_le_bytes([b[4 * j], b[4 * j + 1], b[4 * j + 2], b[4 * j + 3]])
    };
    let mix = |d: u32, s: u32| -> u32 {
        let a = div255((s >> 24) * op);
        if add {
            // min(255, d + round(s * a / 255)) per channel
            let rb = (d & FIELDS) + div255_fields((s & FIELDS) * a);
            let g = ((d >> 8) & 0xff) + div255(((s >> 8) & 0xff) * a);
            let over = (rb >> 8) & 0x0001_0001;
            let rb = (rb | (over * 255)) & FIELDS;
            let g = g.min(255);
            rb | (g << 8) | (d & 0xff00_0000)
        } else {
            let na = 255 - a;
            let rb = div255_fields((s & FIELDS) * a + (d & FIELDS) * na);
            let g = div255(((s >> 8) & 0xff) * a + ((d >> 8) & 0xff) * na);
            rb | (g << 8) | (d & 0xff00_0000)
        }
    };
    let mut d_blocks = dst.chunks_exact_mut(P * 4);
    let mut s_blocks = src.chunks_exact(P * 4);
    for (d, s) in (&mut d_blocks).zip(&mut s_blocks) {
        let d: &mut [u8; P * 4] = d.try_into().expect("a whole block");
        let s: &[u8; P * 4] = s.try_into().expect("a whole block");
        let mut out = [0u32; P];
        for (j, o) in out.iter_mut().enumerate() {
            *o = mix(px(d, j), px(s, j));
        }
        for (j, o) in out.iter().enumerate() {
            d[4 * j..4 * j + 4].copy_from_slice(&o.to_le_bytes());
        }
    }
    for (d, s) in d_blocks
        .into_remainder()
        .chunks_exact_mut(4)
        .zip(s_blocks.remainder().chunks_exact(4))
    {
        d.copy_from_slice(&mix(px(d, 0), px(s, 0)).to_le_bytes());
    }
}

#[inline(always)]
fn over_rgba(dst: &mut [u8], src: &[u8], op: u32) {
    rgba_pixels(dst, src, op, false);
}

#[inline(always)]
fn add_rgba(dst: &mut [u8], src: &[u8], op: u32) {
    rgba_pixels(dst, src, op, true);
}

#[inline(always)]
fn multiply_rgba(dst: &mut [u8], src: &[u8], op: u32) {
    rgba_blocks(dst, src, op, |d, s, a| mix16(d, div255_16(s * d), a));
}

/// `over` on one plane: `dst = mix(dst, src, alpha * opacity)`, per byte. Y, U, V planes of
/// a YUV canvas (with the layer's luma or chroma alpha), or any 8-bit plane.
pub fn mix_plane(dst: &mut [u8], src: &[u8], alpha: &[u8], opacity: u8) {
    assert!(
        dst.len() == src.len() && src.len() == alpha.len(),
        "mix_plane: runs of the same length"
    );
    simd::mix_plane(dst, src, alpha, opacity);
}

/// [`mix_plane`] for any instruction set (see [`simd`]).
#[inline(always)]
pub(crate) fn mix_plane_any(dst: &mut [u8], src: &[u8], alpha: &[u8], opacity: u8) {
    let op = opacity as u16;
    if op == 255 {
        for ((d, s), a) in dst.iter_mut().zip(src).zip(alpha) {
            *d = mix16(*d as u16, *s as u16, *a as u16) as u8;
        }
    } else {
        for ((d, s), a) in dst.iter_mut().zip(src).zip(alpha) {
            let a = div255_16(*a as u16 * op);
            *d = mix16(*d as u16, *s as u16, a) as u8;
        }
    }
}

/// `over` of an opaque run at one opacity: a copy at 255.
pub fn mix_plane_const(dst: &mut [u8], src: &[u8], opacity: u8) {
    assert_eq!(
        dst.len(),
        src.len(),
        "mix_plane_const: runs of the same length"
    );
    if opacity == 255 {
        dst.copy_from_slice(src);
        return;
    }
    let a = opacity as u16;
    for (d, s) in dst.iter_mut().zip(src) {
        *d = mix16(*d as u16, *s as u16, a) as u8;
    }
}

/// Whether every pixel of an RGBA run is opaque (a layer that needs no alpha work).
pub fn is_opaque_rgba(rgba: &[u8]) -> bool {
    // blocks of 64 pixels, each pixel read as a u32 whose alpha byte is and-ed in (no early
    // exit inside a block, so it vectorises), with an early exit between blocks: a
    // translucent overlay answers within its first pixels rather than after all of them
    // (it was 12% of sl-composite's time with 4 translucent 1080p layers)
    const B: usize = 64 * 4;
    let mut blocks = rgba.chunks_exact(B);
    for b in &mut blocks {
        let b: &[u8; B] = b.try_into().expect("a whole block");
        let mut m = u32::MAX;
        for p in 0..B / 4 {
            m &= u32::from_le_bytes([b[4 * p], b[4 * p + 1], b[4 * p + 2], b[4 * p + 3]]);
        }
        if m >> 24 != 255 {
            return false;
        }
    }
    blocks
        .remainder()
        .chunks_exact(4)
        .fold(255u8, |m, p| m & p[3])
        == 255
}

/// A rectangle in canvas pixels, clipped or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Rect {
    pub x: i64,
    pub y: i64,
    pub w: u32,
    pub h: u32,
}

/// The part of a `w`x`h` layer at (`x`, `y`) that falls on a `cw`x`ch` canvas: (first layer
/// column, first layer row, canvas x, canvas y, columns, rows), or `None` if nothing does.
pub fn clip(
    x: i64,
    y: i64,
    w: u32,
    h: u32,
    cw: u32,
    ch: u32,
) -> Option<(usize, usize, usize, usize, usize, usize)> {
    let x0 = x.max(0);
    let y0 = y.max(0);
    let x1 = (x + w as i64).min(cw as i64);
    let y1 = (y + h as i64).min(ch as i64);
    if x1 <= x0 || y1 <= y0 {
        return None;
    }
    Some((
        (x0 - x) as usize,
        (y0 - y) as usize,
        x0 as usize,
        y0 as usize,
        (x1 - x0) as usize,
        (y1 - y0) as usize,
    ))
}

/// Blend a packed straight-alpha RGBA layer of `w`x`h` at (`x`, `y`) onto an RGBA canvas
/// frame, clipped to the canvas. `opaque` layers under `over` at full opacity are copied.
pub fn blend_rgba_onto(
    canvas: &mut sl_frame::VideoFrame,
    layer: &[u8],
    (w, h): (u32, u32),
    (x, y): (i64, i64),
    opacity: u8,
    mode: Mode,
    opaque: bool,
) {
    debug_assert_eq!(canvas.format(), sl_frame::PixelFormat::Rgba);
    for mut b in band::bands(canvas, 1) {
        blend_rgba_band(&mut b, layer, (w, h), (x, y), opacity, mode, opaque);
    }
}

/// [`blend_rgba_onto`] on one band of an RGBA canvas (the layer's rows outside it are left).
pub fn blend_rgba_band(
    band: &mut band::Band,
    layer: &[u8],
    (w, h): (u32, u32),
    (x, y): (i64, i64),
    opacity: u8,
    mode: Mode,
    opaque: bool,
) {
    assert_eq!(
        layer.len(),
        w as usize * h as usize * 4,
        "a packed RGBA layer"
    );
    let (canvas_w, canvas_h) = band.canvas_size();
    let Some((lx, ly, cx, cy, cols, rows)) = clip(x, y, w, h, canvas_w, canvas_h) else {
        return;
    };
    let (b0, bn) = band.span();
    let copy = opaque && opacity == 255 && mode == Mode::Over;
    for r in cy.max(b0)..(cy + rows).min(b0 + bn) {
        let s0 = ((ly + r - cy) * w as usize + lx) * 4;
        let src = &layer[s0..s0 + cols * 4];
        let dst = &mut band.row_mut(0, r)[cx * 4..(cx + cols) * 4];
        if copy {
            dst.copy_from_slice(src);
        } else {
            blend_rgba(dst, src, opacity, mode);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (no dependency needed for random-looking bytes).
    pub(crate) fn bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn div255_is_exact_everywhere() {
        for x in 0..=255 * 255 {
            assert_eq!(div255(x), reference::div255(x), "x = {x}");
        }
    }

    #[test]
    fn kernels_match_the_reference_bit_for_bit() {
        // the corners first (0, 255 alpha and opacity), then random pixels
        let mut dst = Vec::new();
        let mut src = Vec::new();
        for a in [0u8, 1, 127, 128, 254, 255] {
            for (d, s) in [(0u8, 255u8), (255, 0), (17, 200), (128, 128)] {
                dst.extend_from_slice(&[d, d, d, 255]);
                src.extend_from_slice(&[s, s / 2, 255 - s, a]);
            }
        }
        dst.extend(bytes(4 * 4099, 1));
        src.extend(bytes(4 * 4099, 2));
        simd::both(|path| {
            for mode in [Mode::Over, Mode::Add, Mode::Multiply] {
                for op in [0u8, 1, 77, 128, 200, 254, 255] {
                    let mut got = dst.clone();
                    blend_rgba(&mut got, &src, op, mode);
                    for (i, ((g, d), s)) in got
                        .chunks_exact(4)
                        .zip(dst.chunks_exact(4))
                        .zip(src.chunks_exact(4))
                        .enumerate()
                    {
                        let want = reference::blend_pixel(
                            [d[0], d[1], d[2], d[3]],
                            [s[0], s[1], s[2], s[3]],
                            op,
                            mode,
                        );
                        assert_eq!(
                            g, want,
                            "{path}: {mode} opacity {op} pixel {i}: {d:?} under {s:?}"
                        );
                    }
                }
            }
        });
    }

    #[test]
    fn the_reference_is_within_one_of_the_real_blend() {
        let dst = bytes(4 * 2000, 3);
        let src = bytes(4 * 2000, 4);
        for mode in [Mode::Over, Mode::Add, Mode::Multiply] {
            for op in [0u8, 64, 128, 255] {
                for (d, s) in dst.chunks_exact(4).zip(src.chunks_exact(4)) {
                    let got = reference::blend_pixel(
                        [d[0], d[1], d[2], 255],
                        [s[0], s[1], s[2], s[3]],
                        op,
                        mode,
                    );
                    let alpha = s[3] as f64 / 255.0 * op as f64 / 255.0;
                    // multiply rounds twice (the product, then the mix): within 1.5
                    let tolerance = if mode == Mode::Multiply { 1.5 } else { 1.0 };
                    for c in 0..3 {
                        let exact = reference::exact(d[c] as f64, s[c] as f64, alpha, mode);
                        assert!(
                            (got[c] as f64 - exact).abs() <= tolerance,
                            "{mode}: {} vs exact {exact}",
                            got[c]
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn mix_plane_matches_the_reference() {
        let dst = bytes(5003, 5);
        let src = bytes(5003, 6);
        let alpha = bytes(5003, 7);
        simd::both(|path| {
            for op in [0u8, 100, 255] {
                let mut got = dst.clone();
                mix_plane(&mut got, &src, &alpha, op);
                for i in 0..dst.len() {
                    let a = reference::div255(alpha[i] as u32 * op as u32);
                    let want = reference::div255(src[i] as u32 * a + dst[i] as u32 * (255 - a));
                    assert_eq!(got[i] as u32, want, "{path}");
                }
                let mut got = dst.clone();
                mix_plane_const(&mut got, &src, op);
                for i in 0..dst.len() {
                    let a = op as u32;
                    let want = reference::div255(src[i] as u32 * a + dst[i] as u32 * (255 - a));
                    assert_eq!(got[i] as u32, want);
                }
            }
        });
    }

    #[test]
    fn clipping_keeps_only_what_falls_on_the_canvas() {
        assert_eq!(clip(-5, -5, 10, 10, 100, 100), Some((5, 5, 0, 0, 5, 5)));
        assert_eq!(clip(95, 0, 10, 10, 100, 100), Some((0, 0, 95, 0, 5, 10)));
        assert_eq!(clip(100, 0, 10, 10, 100, 100), None);
        assert_eq!(clip(-10, 0, 10, 10, 100, 100), None);
    }

    #[test]
    fn opaque_check() {
        assert!(is_opaque_rgba(&[1, 2, 3, 255, 4, 5, 6, 255]));
        assert!(!is_opaque_rgba(&[1, 2, 3, 255, 4, 5, 6, 254]));
        // every position of a long run, in the blocks and in the tail
        let mut run = [7u8, 8, 9, 255].repeat(300);
        assert!(is_opaque_rgba(&run));
        for p in [0, 1, 63, 64, 200, 255, 256, 299] {
            run[4 * p + 3] = 254;
            assert!(!is_opaque_rgba(&run), "pixel {p}");
            run[4 * p + 3] = 255;
            run[4 * p] = 0;
            assert!(is_opaque_rgba(&run), "pixel {p}'s colour");
        }
    }
}
