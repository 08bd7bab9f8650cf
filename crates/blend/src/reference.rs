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

/// One chroma sample of a straight-alpha RGBA layer from its 2x2 block: (u, v, alpha). One
/// alpha for all four pixels: the plain mean colour, rounded half up (a shift); alphas that
/// differ: the alpha-weighted mean, rounded half away from zero, and the mean alpha.
pub fn chroma_block(c: &sl_frame::Coeffs, four: [[u8; 4]; 4]) -> (u8, u8, u8) {
    let a0 = four[0][3];
    let chroma = |num_u: f64, num_v: f64, plain: bool| {
        let r = |x: f64| {
            let q = if plain { (x + 0.5).floor() } else { x.round() };
            (q + 128.0).clamp(0.0, 255.0) as u8
        };
        (r(num_u), r(num_v))
    };
    let (k, w): (f64, [f64; 4]) = if four.iter().all(|p| p[3] == a0) {
        (4.0, [1.0; 4])
    } else {
        let w = four.map(|p| p[3] as f64);
        (w.iter().sum(), w)
    };
    let sum = |ch: usize| -> f64 { (0..4).map(|i| w[i] * four[i][ch] as f64).sum() };
    let (r, g, b) = (sum(0), sum(1), sum(2));
    let one = 65536.0 * k;
    let u = (c.ur as f64 * r + c.ug as f64 * g + c.ub as f64 * b) / one;
    let v = (c.vr as f64 * r + c.vg as f64 * g + c.vb as f64 * b) / one;
    let (u, v) = chroma(u, v, k == 4.0 && w == [1.0; 4]);
    let alpha = if w == [1.0; 4] {
        a0
    } else {
        ((k / 4.0) + 0.5).floor() as u8
    };
    (u, v, alpha)
}

/// A straight-alpha RGBA layer of `w`x`h` `over` an I420 or NV12 canvas at (`x`, `y`)
/// (rounded down to even), the plainest way: luma per pixel, chroma per 2x2 block of the
/// layer (its last column and row repeated where the layer is odd), each blended as
/// [`blend_pixel`] blends a channel.
pub fn rgba_over_yuv(
    canvas: &mut sl_frame::VideoFrame,
    layer: &[u8],
    (w, h): (u32, u32),
    (x, y): (i64, i64),
    opacity: u8,
) {
    let nv12 = canvas.format() == sl_frame::PixelFormat::Nv12;
    let c = sl_frame::Coeffs::new(canvas.color);
    let (x, y) = (x & !1, y & !1);
    let (w, h) = (w as i64, h as i64);
    let (cw, ch) = (canvas.width() as i64, canvas.height() as i64);
    let px = |lx: i64, ly: i64| -> [u8; 4] {
        let i = ((ly.min(h - 1) * w + lx.min(w - 1)) * 4) as usize;
        [layer[i], layer[i + 1], layer[i + 2], layer[i + 3]]
    };
    let mix = |d: u8, s: u8, alpha: u8| {
        let a = div255(alpha as u32 * opacity as u32);
        div255(s as u32 * a + d as u32 * (255 - a)) as u8
    };
    for ly in 0..h {
        for lx in 0..w {
            let (cx, cy) = (x + lx, y + ly);
            if cx < 0 || cy < 0 || cx >= cw || cy >= ch {
                continue;
            }
            let p = px(lx, ly);
            let luma = c.y(p[0] as i32, p[1] as i32, p[2] as i32);
            let d = &mut canvas.row_mut(0, cy as usize)[cx as usize];
            *d = mix(*d, luma, p[3]);
            if lx % 2 == 0 && ly % 2 == 0 {
                let four = [
                    px(lx, ly),
                    px(lx + 1, ly),
                    px(lx, ly + 1),
                    px(lx + 1, ly + 1),
                ];
                let (u, v, a) = chroma_block(&c, four);
                let (ccx, ccy) = ((cx / 2) as usize, (cy / 2) as usize);
                if nv12 {
                    let row = canvas.row_mut(1, ccy);
                    row[2 * ccx] = mix(row[2 * ccx], u, a);
                    row[2 * ccx + 1] = mix(row[2 * ccx + 1], v, a);
                } else {
                    let d = &mut canvas.row_mut(1, ccy)[ccx];
                    *d = mix(*d, u, a);
                    let d = &mut canvas.row_mut(2, ccy)[ccx];
                    *d = mix(*d, v, a);
                }
            }
        }
    }
}
