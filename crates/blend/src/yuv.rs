//! RGBA layers onto I420 and NV12 canvases without converting the canvas, two ways:
//! [`blend_rgba_onto_yuv`] blends the RGBA pixels straight into the canvas' planes in one
//! pass (for a layer whose frame is new each output frame), and [`YuvLayer::from_rgba`]
//! turns a layer into Y, U, V and alpha planes once, which [`blend_yuv_onto`] then mixes in
//! (for a layer shown unchanged over several frames). Both give the same bytes.
//!
//! Chroma is 2x2-subsampled, so a chroma sample covers four layer pixels: its alpha is their
//! mean alpha, and its colour the alpha-weighted mean of their colours. Mixing that into the
//! canvas' chroma gives what blending each pixel in RGB and averaging would (YUV is affine
//! in RGB), within rounding. Layers sit at even canvas coordinates so chroma samples line up.

use sl_frame::{Coeffs, ColorInfo, PixelFormat, VideoFrame};

use crate::band::{Band, bands};
use crate::{clip, div255_16, mix_plane, mix_plane_const, mix16};

/// Luma of one pixel without the clamp: the coefficients of every matrix and range sum to
/// at most the range's span, so the result never leaves 0..=255 (the same value as
/// [`Coeffs::y`]).
#[inline(always)]
fn luma_of(c: &Coeffs, r: u8, g: u8, b: u8) -> i32 {
    ((c.yr * r as i32 + c.yg * g as i32 + c.yb * b as i32 + 32768) >> 16) + c.y_off
}

/// Chroma of the sums of 4 pixels' R, G, B: [`Coeffs::uv`] with `n = 4`, spelled out so the
/// vector loops see constants.
#[inline(always)]
fn uv4(c: &Coeffs, rs: i32, gs: i32, bs: i32) -> (u8, u8) {
    let half = 1 << 17;
    let u = ((c.ur * rs + c.ug * gs + c.ub * bs + half) >> 18) + 128;
    let v = ((c.vr * rs + c.vg * gs + c.vb * bs + half) >> 18) + 128;
    (u.clamp(0, 255) as u8, v.clamp(0, 255) as u8)
}

/// Chroma of alpha-weighted sums over total weight `n` (> 0): blocks whose pixels' alphas
/// differ (a layer's edges), so a division, rounded half away from zero.
#[inline(never)]
fn uv_weighted(c: &Coeffs, rs: i64, gs: i64, bs: i64, n: i64) -> (u8, u8) {
    let den = n << 16;
    let round = |num: i64| {
        if num >= 0 {
            (num + den / 2) / den
        } else {
            -((-num + den / 2) / den)
        }
    };
    let (ur, ug, ub) = (c.ur as i64, c.ug as i64, c.ub as i64);
    let (vr, vg, vb) = (c.vr as i64, c.vg as i64, c.vb as i64);
    let u = round(ur * rs + ug * gs + ub * bs) + 128;
    let v = round(vr * rs + vg * gs + vb * bs) + 128;
    (u.clamp(0, 255) as u8, v.clamp(0, 255) as u8)
}

/// Luma of every RGBA pixel, in blocks of 16 pixels so the loop vectorises (no clamp is
/// needed: the coefficients keep every result inside the range's own limits).
fn luma(c: &Coeffs, rgba: &[u8], y: &mut [u8]) {
    let mut ys = y.chunks_exact_mut(16);
    let mut ps = rgba.chunks_exact(64);
    for (yo, p) in (&mut ys).zip(&mut ps) {
        let p: &[u8; 64] = p.try_into().expect("a whole block");
        for j in 0..16 {
            let v = (c.yr * p[4 * j] as i32
                + c.yg * p[4 * j + 1] as i32
                + c.yb * p[4 * j + 2] as i32
                + 32768)
                >> 16;
            yo[j] = (v + c.y_off) as u8;
        }
    }
    for (yo, p) in ys
        .into_remainder()
        .iter_mut()
        .zip(ps.remainder().chunks_exact(4))
    {
        *yo = luma_of(c, p[0], p[1], p[2]) as u8;
    }
}

/// One chroma sample from its four pixels: (u, v, alpha).
fn block(c: &Coeffs, four: [&[u8]; 4], opaque: bool) -> (u8, u8, u8) {
    let a0 = four[0][3];
    // one alpha for the whole block (opaque, fully transparent, a uniformly translucent
    // layer): the plain mean; else the alpha-weighted one
    if opaque || (four[1][3] == a0 && four[2][3] == a0 && four[3][3] == a0) {
        let s = |k: usize| {
            four[0][k] as i32 + four[1][k] as i32 + four[2][k] as i32 + four[3][k] as i32
        };
        let (u, v) = uv4(c, s(0), s(1), s(2));
        return (u, v, if opaque { 255 } else { a0 });
    }
    let (mut rs, mut gs, mut bs, mut n) = (0i64, 0i64, 0i64, 0i64);
    for p in four {
        let wgt = p[3] as i64;
        rs += wgt * p[0] as i64;
        gs += wgt * p[1] as i64;
        bs += wgt * p[2] as i64;
        n += wgt;
    }
    let (u, v) = uv_weighted(c, rs, gs, bs, n);
    (u, v, ((n + 2) / 4) as u8)
}

/// A layer as planes ready to blend onto a canvas of `format` (I420 or NV12).
#[derive(Clone, Debug, Default)]
pub struct YuvLayer {
    pub format: Option<PixelFormat>,
    pub width: u32,
    pub height: u32,
    /// Luma, `width * height`.
    pub y: Vec<u8>,
    /// Per-pixel alpha, `width * height`; `None` for an opaque layer.
    pub alpha: Option<Vec<u8>>,
    /// I420: U (`cw * ch`); NV12: U and V interleaved (`2 * cw * ch`).
    pub c0: Vec<u8>,
    /// I420: V; NV12: empty.
    pub c1: Vec<u8>,
    /// Chroma alpha, one per chroma byte of `c0` (so NV12's is doubled); `None` if opaque.
    pub calpha: Option<Vec<u8>>,
}

fn chroma_dims(w: u32, h: u32) -> (usize, usize) {
    (w.div_ceil(2) as usize, h.div_ceil(2) as usize)
}

impl YuvLayer {
    /// Convert a packed straight-alpha RGBA image for a canvas of `format` and `color`.
    pub fn from_rgba(
        rgba: &[u8],
        (w, h): (u32, u32),
        color: ColorInfo,
        format: PixelFormat,
        opaque: bool,
        into: &mut YuvLayer,
    ) {
        assert!(matches!(format, PixelFormat::I420 | PixelFormat::Nv12));
        assert_eq!(
            rgba.len(),
            w as usize * h as usize * 4,
            "a packed RGBA image"
        );
        let c = Coeffs::new(color);
        let (wu, hu) = (w as usize, h as usize);
        let (cw, ch) = chroma_dims(w, h);
        into.format = Some(format);
        into.width = w;
        into.height = h;
        into.y.clear();
        into.y.resize(wu * hu, 0);
        luma(&c, rgba, &mut into.y);
        let nv12 = format == PixelFormat::Nv12;
        let csize = if nv12 { 2 * cw * ch } else { cw * ch };
        into.c0.clear();
        into.c0.resize(csize, 128);
        into.c1.clear();
        if !nv12 {
            into.c1.resize(csize, 128);
        }
        if opaque {
            into.alpha = None;
            into.calpha = None;
        } else {
            let mut a = into.alpha.take().unwrap_or_default();
            a.clear();
            a.resize(wu * hu, 0);
            for (a, p) in a.iter_mut().zip(rgba.chunks_exact(4)) {
                *a = p[3];
            }
            into.alpha = Some(a);
            let mut ca = into.calpha.take().unwrap_or_default();
            ca.clear();
            ca.resize(csize, 0);
            into.calpha = Some(ca);
        }
        let row = |y: usize| &rgba[y * wu * 4..(y + 1) * wu * 4];
        let mut put = |i: usize, (u, v, alpha): (u8, u8, u8)| {
            if nv12 {
                into.c0[2 * i] = u;
                into.c0[2 * i + 1] = v;
                if let Some(ca) = &mut into.calpha {
                    ca[2 * i] = alpha;
                    ca[2 * i + 1] = alpha;
                }
            } else {
                into.c0[i] = u;
                into.c1[i] = v;
                if let Some(ca) = &mut into.calpha {
                    ca[i] = alpha;
                }
            }
        };
        // chroma samples in groups of 8 (16 pixels of two rows) go through fixed-size arrays,
        // which vectorise; the rest, and blocks whose four alphas differ, one at a time
        const G: usize = 8;
        let groups = (wu / 2) / G;
        for cy in 0..ch {
            let (top, bottom) = (row(cy * 2), row((cy * 2 + 1).min(hu - 1)));
            for g in 0..groups {
                let t: &[u8; 64] = top[g * 64..][..64].try_into().expect("a whole group");
                let b: &[u8; 64] = bottom[g * 64..][..64].try_into().expect("a whole group");
                let sum = |j: usize, k: usize| {
                    t[8 * j + k] as i32
                        + t[8 * j + 4 + k] as i32
                        + b[8 * j + k] as i32
                        + b[8 * j + 4 + k] as i32
                };
                let mut uv = [(0u8, 0u8); G];
                for (j, o) in uv.iter_mut().enumerate() {
                    *o = uv4(&c, sum(j, 0), sum(j, 1), sum(j, 2));
                }
                for (j, &(u, v)) in uv.iter().enumerate() {
                    let i = cy * cw + g * G + j;
                    if opaque {
                        put(i, (u, v, 255));
                        continue;
                    }
                    let a0 = t[8 * j + 3];
                    if t[8 * j + 7] == a0 && b[8 * j + 3] == a0 && b[8 * j + 7] == a0 {
                        put(i, (u, v, a0));
                    } else {
                        let x0 = (g * G + j) * 8;
                        let four: [&[u8]; 4] = [
                            &top[x0..x0 + 4],
                            &top[x0 + 4..x0 + 8],
                            &bottom[x0..x0 + 4],
                            &bottom[x0 + 4..x0 + 8],
                        ];
                        put(i, block(&c, four, false));
                    }
                }
            }
            for cx in groups * G..cw {
                let (x0, x1) = (cx * 2 * 4, (cx * 2 + 1).min(wu - 1) * 4);
                let four: [&[u8]; 4] = [
                    &top[x0..x0 + 4],
                    &top[x1..x1 + 4],
                    &bottom[x0..x0 + 4],
                    &bottom[x1..x1 + 4],
                ];
                put(cy * cw + cx, block(&c, four, opaque));
            }
        }
    }

    /// An opaque layer from a frame already in the canvas' format (no conversion at all).
    pub fn from_frame(frame: &VideoFrame, into: &mut YuvLayer) {
        let format = frame.format();
        assert!(matches!(format, PixelFormat::I420 | PixelFormat::Nv12));
        into.format = Some(format);
        into.width = frame.width();
        into.height = frame.height();
        into.alpha = None;
        into.calpha = None;
        let pack = |plane: usize, v: &mut Vec<u8>| {
            v.clear();
            for row in frame.rows(plane) {
                v.extend_from_slice(row);
            }
        };
        pack(0, &mut into.y);
        pack(1, &mut into.c0);
        if format == PixelFormat::I420 {
            pack(2, &mut into.c1);
        } else {
            into.c1.clear();
        }
    }
}

/// Blend `layer` onto an I420 or NV12 `canvas` of the same format, its top-left corner at
/// (`x`, `y`) rounded down to even, clipped to the canvas.
pub fn blend_yuv_onto(canvas: &mut VideoFrame, layer: &YuvLayer, (x, y): (i64, i64), opacity: u8) {
    for mut band in bands(canvas, 1) {
        blend_yuv_band(&mut band, layer, (x, y), opacity);
    }
}

/// [`blend_yuv_onto`] on one band of the canvas (the rows of the layer outside it are left).
pub fn blend_yuv_band(band: &mut Band, layer: &YuvLayer, (x, y): (i64, i64), opacity: u8) {
    let format = band.format();
    assert_eq!(
        layer.format,
        Some(format),
        "a layer made for this canvas' format"
    );
    let (x, y) = (x & !1, y & !1);
    let (w, h) = (layer.width, layer.height);
    let (canvas_w, canvas_h) = band.canvas_size();
    let Some((lx, ly, cx, cy, cols, rows)) = clip(x, y, w, h, canvas_w, canvas_h) else {
        return;
    };
    let (b0, bn) = band.span();
    let (r0, r1) = (cy.max(b0), (cy + rows).min(b0 + bn));
    if r0 >= r1 {
        return;
    }
    for r in r0..r1 {
        let s0 = (ly + r - cy) * w as usize + lx;
        let dst = &mut band.row_mut(0, r)[cx..cx + cols];
        let src = &layer.y[s0..s0 + cols];
        match &layer.alpha {
            Some(a) => mix_plane(dst, src, &a[s0..s0 + cols], opacity),
            None => mix_plane_const(dst, src, opacity),
        }
    }
    // chroma: the same rectangle at half resolution (lx, ly, cx, cy, r0 are even)
    let (lcw, _) = chroma_dims(w, h);
    let (clx, ccx) = (lx / 2, cx / 2);
    let ccols = cols.div_ceil(2);
    let nv12 = format == PixelFormat::Nv12;
    let k = if nv12 { 2 } else { 1 };
    let planes: &[(usize, &Vec<u8>)] = if nv12 {
        &[(1, &layer.c0)]
    } else {
        &[(1, &layer.c0), (2, &layer.c1)]
    };
    for &(plane, src_plane) in planes {
        for cr in r0 / 2..r1.div_ceil(2) {
            let s0 = ((ly / 2 + cr - cy / 2) * lcw + clx) * k;
            let n = ccols * k;
            let dst = &mut band.row_mut(plane, cr)[ccx * k..ccx * k + n];
            let src = &src_plane[s0..s0 + n];
            match &layer.calpha {
                Some(a) => mix_plane(dst, src, &a[s0..s0 + n], opacity),
                None => mix_plane_const(dst, src, opacity),
            }
        }
    }
}

/// Blend a packed straight-alpha RGBA layer of `w`x`h` straight into an I420 or NV12
/// canvas, its top-left corner at (`x`, `y`) rounded down to even, clipped to the canvas:
/// the same result, bit for bit, as [`YuvLayer::from_rgba`] then [`blend_yuv_onto`], in one
/// pass and with no planes in between (luma per pixel, chroma per 2x2 block).
pub fn blend_rgba_onto_yuv(
    canvas: &mut VideoFrame,
    layer: &[u8],
    (w, h): (u32, u32),
    (x, y): (i64, i64),
    opacity: u8,
) {
    let c = Coeffs::new(canvas.color);
    for mut band in bands(canvas, 1) {
        blend_rgba_yuv_band(&mut band, &c, layer, (w, h), (x, y), opacity);
    }
}

/// [`blend_rgba_onto_yuv`] on one band of the canvas, with the canvas' coefficients.
pub fn blend_rgba_yuv_band(
    band: &mut Band,
    c: &Coeffs,
    layer: &[u8],
    (w, h): (u32, u32),
    (x, y): (i64, i64),
    opacity: u8,
) {
    let format = band.format();
    assert!(matches!(format, PixelFormat::I420 | PixelFormat::Nv12));
    assert_eq!(
        layer.len(),
        w as usize * h as usize * 4,
        "a packed RGBA layer"
    );
    if opacity == 0 {
        return;
    }
    let (x, y) = (x & !1, y & !1);
    let (canvas_w, canvas_h) = band.canvas_size();
    let Some((lx, ly, cx, cy, cols, rows)) = clip(x, y, w, h, canvas_w, canvas_h) else {
        return;
    };
    let (b0, bn) = band.span();
    let (r0, r1) = (cy.max(b0), (cy + rows).min(b0 + bn));
    let (wu, hu) = (w as usize, h as usize);
    let nv12 = format == PixelFormat::Nv12;
    let mut spare = Vec::new();
    let mut r = r0;
    while r < r1 {
        let lr = ly + r - cy;
        let top = &layer[(lr * wu + lx) * 4..(lr * wu + wu) * 4];
        let lb = (lr + 1).min(hu - 1);
        let bottom = &layer[(lb * wu + lx) * 4..(lb * wu + wu) * 4];
        let rows = band.yuv_rows_mut(r);
        // a last canvas row without its pair: its partner's luma goes to a spare row
        let y1 = match rows.y1 {
            Some(y1) if r + 1 < r1 => y1,
            _ => {
                spare.resize(rows.y0.len(), 0);
                &mut spare[..]
            }
        };
        let ccx = cx / 2;
        let ccols = cols.div_ceil(2);
        let rows_out = RowsOut {
            y0: &mut rows.y0[cx..cx + cols],
            y1: &mut y1[cx..cx + cols],
            c0: if nv12 {
                &mut rows.c0[ccx * 2..(ccx + ccols) * 2]
            } else {
                &mut rows.c0[ccx..ccx + ccols]
            },
            c1: match rows.c1 {
                Some(c1) if !nv12 => &mut c1[ccx..ccx + ccols],
                _ => &mut [],
            },
        };
        crate::simd::fused_rows(c, opacity as u16, top, bottom, rows_out, nv12);
        r += 2;
    }
}

/// The canvas rows one chroma row covers, cut to the layer's columns.
pub(crate) struct RowsOut<'a> {
    y0: &'a mut [u8],
    y1: &'a mut [u8],
    c0: &'a mut [u8],
    c1: &'a mut [u8],
}

/// Pixels per group of the fused kernel: 8 chroma samples of two rows of 16 pixels.
const GP: usize = 16;

/// Two layer rows (from the layer's first shown column to its right edge: chroma may need
/// the pixel just past the canvas) into two luma rows and a chroma row.
#[inline(always)]
pub(crate) fn fused_rows(c: &Coeffs, op: u16, top: &[u8], bottom: &[u8], o: RowsOut, nv12: bool) {
    let cols = o.y0.len();
    let groups = cols / GP;
    let RowsOut { y0, y1, c0, c1 } = o;
    for g in 0..groups {
        let t: &[u8; GP * 4] = top[g * GP * 4..][..GP * 4].try_into().expect("a group");
        let b: &[u8; GP * 4] = bottom[g * GP * 4..][..GP * 4].try_into().expect("a group");
        let d0: &mut [u8; GP] = (&mut y0[g * GP..][..GP]).try_into().expect("a group");
        let d1: &mut [u8; GP] = (&mut y1[g * GP..][..GP]).try_into().expect("a group");
        luma_group(c, op, t, d0);
        luma_group(c, op, b, d1);
        let (u, v, a) = chroma_group(c, t, b);
        if nv12 {
            let d: &mut [u8; GP] = (&mut c0[g * GP..][..GP]).try_into().expect("a group");
            for j in 0..GP / 2 {
                let al = div255_16(a[j] as u16 * op);
                d[2 * j] = mix16(d[2 * j] as u16, u[j] as u16, al) as u8;
                d[2 * j + 1] = mix16(d[2 * j + 1] as u16, v[j] as u16, al) as u8;
            }
        } else {
            let du: &mut [u8; GP / 2] = (&mut c0[g * GP / 2..][..GP / 2])
                .try_into()
                .expect("a group");
            let dv: &mut [u8; GP / 2] = (&mut c1[g * GP / 2..][..GP / 2])
                .try_into()
                .expect("a group");
            // U and V side by side as one run of 16: the same 16 lanes as NV12's (two
            // loops of 8 stayed scalar)
            let mut d = [0u8; GP];
            d[..GP / 2].copy_from_slice(du);
            d[GP / 2..].copy_from_slice(dv);
            let mut sv = [0u8; GP];
            sv[..GP / 2].copy_from_slice(&u);
            sv[GP / 2..].copy_from_slice(&v);
            let mut al = [0u16; GP];
            for j in 0..GP / 2 {
                al[j] = div255_16(a[j] as u16 * op);
                al[j + GP / 2] = al[j];
            }
            let mut out = [0u8; GP];
            for j in 0..GP {
                out[j] = mix16(d[j] as u16, sv[j] as u16, al[j]) as u8;
            }
            du.copy_from_slice(&out[..GP / 2]);
            dv.copy_from_slice(&out[GP / 2..]);
        }
    }
    // the rest, a chroma sample at a time
    let last = top.len() / 4 - 1;
    for cxs in groups * GP / 2..cols.div_ceil(2) {
        let (x0, x1) = (2 * cxs, (2 * cxs + 1).min(last));
        let px = |row: &[u8], x: usize| -> [u8; 4] {
            row[x * 4..x * 4 + 4].try_into().expect("a pixel")
        };
        let four = [px(top, x0), px(top, x1), px(bottom, x0), px(bottom, x1)];
        for (x, d0, d1) in [(x0, 0, 2), (x0 + 1, 1, 3)] {
            if x < cols {
                for (dst, p) in [(&mut y0[x], four[d0]), (&mut y1[x], four[d1])] {
                    let a = div255_16(p[3] as u16 * op);
                    *dst = mix16(*dst as u16, luma_of(c, p[0], p[1], p[2]) as u16, a) as u8;
                }
            }
        }
        let refs: [&[u8]; 4] = [&four[0], &four[1], &four[2], &four[3]];
        let (u, v, a) = block(c, refs, false);
        let al = div255_16(a as u16 * op);
        if nv12 {
            c0[2 * cxs] = mix16(c0[2 * cxs] as u16, u as u16, al) as u8;
            c0[2 * cxs + 1] = mix16(c0[2 * cxs + 1] as u16, v as u16, al) as u8;
        } else {
            c0[cxs] = mix16(c0[cxs] as u16, u as u16, al) as u8;
            c1[cxs] = mix16(c1[cxs] as u16, v as u16, al) as u8;
        }
    }
}

/// Luma of 16 pixels mixed into 16 canvas bytes. Each pixel is read as one little-endian
/// `u32` and its channels taken with shifts and masks, all in 32-bit lanes: no byte
/// shuffles, which is what made the per-byte form slow (measured in `benches/blend.rs`).
#[inline(always)]
fn luma_group(c: &Coeffs, op: u16, p: &[u8; GP * 4], d: &mut [u8; GP]) {
    let op = op as u32;
    let (yr, yg, yb, y_off) = (c.yr as u32, c.yg as u32, c.yb as u32, c.y_off as u32);
    let mut out = [0u8; GP];
    for j in 0..GP {
        let v = u32::from_le_bytes([p[4 * j], p[4 * j + 1], p[4 * j + 2], p[4 * j + 3]]);
        let (r, g, b, a) = (v & 255, (v >> 8) & 255, (v >> 16) & 255, v >> 24);
        // the coefficients are positive and below 2^16: the sum fits 32 bits unsigned
        let y = ((yr * r + yg * g + yb * b + 32768) >> 16) + y_off;
        let a = crate::div255(a * op);
        out[j] = crate::div255(y * a + d[j] as u32 * (255 - a)) as u8;
    }
    *d = out;
}

/// Chroma and chroma alpha of 8 2x2 blocks (the alpha-weighted mean for blocks whose four
/// alphas differ, as [`block`]). Two pixels side by side are read as one `u64`, and their
/// channels summed in 16-bit fields of it (at most 4 x 255), again without shuffles.
#[inline(always)]
fn chroma_group(
    c: &Coeffs,
    t: &[u8; GP * 4],
    b: &[u8; GP * 4],
) -> ([u8; GP / 2], [u8; GP / 2], [u8; GP / 2]) {
    const LOW: u64 = 0x00ff_00ff_00ff_00ff;
    const ALPHA: u64 = 0xff00_0000_ff00_0000;
    let word = |p: &[u8; GP * 4], j: usize| {
        u64::from_le_bytes([
            p[8 * j],
            p[8 * j + 1],
            p[8 * j + 2],
            p[8 * j + 3],
            p[8 * j + 4],
            p[8 * j + 5],
            p[8 * j + 6],
            p[8 * j + 7],
        ])
    };
    let mut rs = [0i32; GP / 2];
    let mut gs = [0i32; GP / 2];
    let mut bs = [0i32; GP / 2];
    let mut a = [0u8; GP / 2];
    let mut same = [false; GP / 2];
    for j in 0..GP / 2 {
        let (wt, wb) = (word(t, j), word(b, j));
        // fields r0 b0 r1 b1 and g0 a0 g1 a1, top + bottom, then left + right
        let rb = (wt & LOW) + (wb & LOW);
        let ga = ((wt >> 8) & LOW) + ((wb >> 8) & LOW);
        let rb = (rb & 0xffff_ffff) + (rb >> 32);
        let ga = (ga & 0xffff_ffff) + (ga >> 32);
        rs[j] = (rb & 0xffff) as i32;
        bs[j] = (rb >> 16) as i32;
        gs[j] = (ga & 0xffff) as i32;
        let (at, ab) = (wt & ALPHA, wb & ALPHA);
        same[j] = (at == ab) & ((at >> 32) == (at & 0xffff_ffff));
        a[j] = (wt >> 24) as u8;
    }
    let mut u = [0u8; GP / 2];
    let mut v = [0u8; GP / 2];
    for j in 0..GP / 2 {
        (u[j], v[j]) = uv4(c, rs[j], gs[j], bs[j]);
    }
    if !same.iter().fold(true, |m, &s| m & s) {
        for j in 0..GP / 2 {
            if !same[j] {
                let four: [&[u8]; 4] = [
                    &t[8 * j..8 * j + 4],
                    &t[8 * j + 4..8 * j + 8],
                    &b[8 * j..8 * j + 4],
                    &b[8 * j + 4..8 * j + 8],
                ];
                (u[j], v[j], a[j]) = block(c, four, false);
            }
        }
    }
    (u, v, a)
}

/// Fill one band of a YUV or RGB canvas with one opaque colour.
pub fn fill_band(band: &mut Band, rgb: [u8; 3], color: ColorInfo) {
    let format = band.format();
    let [y, u, v] = sl_frame::convert::rgb_to_yuv(color, rgb[0], rgb[1], rgb[2]);
    for p in 0..format.plane_count() {
        let (r0, r1) = band.plane_rows(p);
        for r in r0..r1 {
            let row = band.row_mut(p, r);
            match (format, p) {
                (PixelFormat::I420 | PixelFormat::Nv12, 0) => row.fill(y),
                (PixelFormat::I420, 1) => row.fill(u),
                (PixelFormat::I420, _) => row.fill(v),
                (PixelFormat::Nv12, _) => {
                    for px in row.chunks_exact_mut(2) {
                        px[0] = u;
                        px[1] = v;
                    }
                }
                (PixelFormat::Rgba, _) => {
                    for px in row.chunks_exact_mut(4) {
                        px.copy_from_slice(&[rgb[0], rgb[1], rgb[2], 255]);
                    }
                }
                _ => unreachable!("fill_band: a canvas format (rgba, i420, nv12)"),
            }
        }
    }
}

/// Fill a YUV or RGB canvas with one opaque colour.
pub fn fill(canvas: &mut VideoFrame, rgb: [u8; 3]) {
    let format = canvas.format();
    match format {
        PixelFormat::I420 | PixelFormat::Nv12 => {
            let [y, u, v] = sl_frame::convert::rgb_to_yuv(canvas.color, rgb[0], rgb[1], rgb[2]);
            for row in canvas.rows_mut(0) {
                row.fill(y);
            }
            if format == PixelFormat::I420 {
                for row in canvas.rows_mut(1) {
                    row.fill(u);
                }
                for row in canvas.rows_mut(2) {
                    row.fill(v);
                }
            } else {
                for row in canvas.rows_mut(1) {
                    for p in row.chunks_exact_mut(2) {
                        p[0] = u;
                        p[1] = v;
                    }
                }
            }
        }
        _ => sl_frame::ops::fill(canvas, [rgb[0], rgb[1], rgb[2], 255]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Mode;
    use sl_frame::convert;

    /// Blending in YUV gives what blending in RGB and converting gives, within rounding.
    #[test]
    fn yuv_blend_agrees_with_rgb_blend_then_convert() {
        for format in [PixelFormat::I420, PixelFormat::Nv12] {
            let (w, h) = (16u32, 10u32);
            let bg = [30u8, 120, 200];
            // a 6x4 layer at (4, 2): whole chroma blocks
            let mut layer = Vec::new();
            for _ in 0..4 {
                for _ in 0..6 {
                    layer.extend_from_slice(&[250, 60, 20, 140]);
                }
            }
            for op in [255u8, 128] {
                let mut canvas = VideoFrame::new(format, w, h).unwrap();
                fill(&mut canvas, bg);
                let mut yl = YuvLayer::default();
                YuvLayer::from_rgba(&layer, (6, 4), canvas.color, format, false, &mut yl);
                blend_yuv_onto(&mut canvas, &yl, (4, 2), op);
                // the same in RGBA, then converted
                let mut rgb = VideoFrame::new(PixelFormat::Rgba, w, h).unwrap();
                sl_frame::ops::fill(&mut rgb, [bg[0], bg[1], bg[2], 255]);
                crate::blend_rgba_onto(&mut rgb, &layer, (6, 4), (4, 2), op, Mode::Over, false);
                let want = convert::to_format(&rgb, format);
                for p in 0..canvas.plane_count() {
                    for (a, b) in canvas.rows(p).zip(want.rows(p)) {
                        for (x, (&g, &e)) in a.iter().zip(b).enumerate() {
                            assert!(
                                (g as i32 - e as i32).abs() <= 1,
                                "{format:?} op {op} plane {p} x {x}: {g} vs {e}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn an_opaque_frame_copies_straight_in() {
        let mut src = VideoFrame::new(PixelFormat::I420, 4, 4).unwrap();
        fill(&mut src, [255, 0, 0]);
        let mut yl = YuvLayer::default();
        YuvLayer::from_frame(&src, &mut yl);
        let mut canvas = VideoFrame::new(PixelFormat::I420, 8, 8).unwrap();
        fill(&mut canvas, [0, 0, 0]);
        blend_yuv_onto(&mut canvas, &yl, (2, 2), 255);
        let red = convert::rgb_to_yuv(canvas.color, 255, 0, 0);
        assert_eq!(canvas.row(0, 2)[2], red[0]);
        assert_eq!(canvas.row(1, 1)[1], red[1]);
        assert_eq!(canvas.row(2, 1)[1], red[2]);
        assert_eq!(canvas.row(0, 0)[0], 16);
    }

    use crate::tests::bytes;

    /// Layers of every kind of alpha: random (most blocks weighted), one alpha (plain
    /// means), and runs of 0 and 255 with soft edges (a typical overlay).
    fn layers(w: u32, h: u32, seed: u64) -> Vec<Vec<u8>> {
        let n = (w * h) as usize * 4;
        let random = bytes(n, seed);
        let mut uniform = bytes(n, seed + 1);
        for p in uniform.chunks_exact_mut(4) {
            p[3] = 128;
        }
        let mut runs = bytes(n, seed + 2);
        for (i, p) in runs.chunks_exact_mut(4).enumerate() {
            p[3] = match (i / 7) % 4 {
                0 => 0,
                1 | 2 => 255,
                _ => (i * 37) as u8,
            };
        }
        vec![random, uniform, runs]
    }

    fn canvas(format: PixelFormat, w: u32, h: u32, seed: u64) -> VideoFrame {
        let mut f = VideoFrame::new(format, w, h).unwrap();
        let n = f.data().len();
        f.data_mut().copy_from_slice(&bytes(n, seed));
        f
    }

    /// The fused kernel, the two-step path (planes, then mixed) and the plain reference
    /// agree bit for bit: odd and even sizes, layers hanging off every edge, every opacity
    /// class, cut into 1 to 3 bands.
    #[test]
    fn rgba_straight_into_yuv_matches_the_reference() {
        crate::simd::both(|path| {
            for format in [PixelFormat::I420, PixelFormat::Nv12] {
                for color in [
                    ColorInfo::BT601_LIMITED,
                    ColorInfo {
                        matrix: sl_frame::Matrix::Bt709,
                        range: sl_frame::Range::Full,
                    },
                ] {
                    for (cw, ch) in [(40u32, 22u32), (37, 23)] {
                        for (lw, lh) in [(35u32, 17u32), (34, 18), (5, 3), (1, 1), (60, 30)] {
                            for (i, layer) in layers(lw, lh, (lw * lh) as u64).iter().enumerate() {
                                for (x, y) in [
                                    (0, 0),
                                    (2, 4),
                                    (-3, -5),
                                    (cw as i64 - 7, ch as i64 - 3),
                                    (-20, 9),
                                ] {
                                    for op in [255u8, 200, 1] {
                                        let mut want = canvas(format, cw, ch, 9);
                                        want.color = color;
                                        let mut fused = want.clone();
                                        let mut two_step = want.clone();
                                        crate::reference::rgba_over_yuv(
                                            &mut want,
                                            layer,
                                            (lw, lh),
                                            (x, y),
                                            op,
                                        );
                                        let what = format!(
                                            "{format:?} {color:?} {cw}x{ch} layer {i} {lw}x{lh} at ({x}, {y}) opacity {op}"
                                        );
                                        for n in 1..=3 {
                                            let mut f = fused.clone();
                                            let c = Coeffs::new(color);
                                            for mut b in bands(&mut f, n) {
                                                blend_rgba_yuv_band(
                                                    &mut b,
                                                    &c,
                                                    layer,
                                                    (lw, lh),
                                                    (x, y),
                                                    op,
                                                );
                                            }
                                            assert!(f == want, "{path} fused, {n} bands: {what}");
                                        }
                                        blend_rgba_onto_yuv(
                                            &mut fused,
                                            layer,
                                            (lw, lh),
                                            (x, y),
                                            op,
                                        );
                                        assert!(fused == want, "fused: {what}");
                                        let opaque = crate::is_opaque_rgba(layer);
                                        let mut yl = YuvLayer::default();
                                        YuvLayer::from_rgba(
                                            layer,
                                            (lw, lh),
                                            color,
                                            format,
                                            opaque,
                                            &mut yl,
                                        );
                                        for n in 1..=3 {
                                            let mut f = two_step.clone();
                                            for mut b in bands(&mut f, n) {
                                                blend_yuv_band(&mut b, &yl, (x, y), op);
                                            }
                                            assert!(f == want, "two-step, {n} bands: {what}");
                                        }
                                        blend_yuv_onto(&mut two_step, &yl, (x, y), op);
                                        assert!(two_step == want, "two-step: {what}");
                                    }
                                }
                            }
                        }
                    }
                }
            }
        });
    }

    /// An opaque layer takes the no-alpha path of the two-step blend: still the reference.
    #[test]
    fn an_opaque_rgba_layer_matches_the_reference() {
        for format in [PixelFormat::I420, PixelFormat::Nv12] {
            let mut layer = bytes(33 * 19 * 4, 3);
            for p in layer.chunks_exact_mut(4) {
                p[3] = 255;
            }
            for op in [255u8, 77] {
                let mut want = canvas(format, 36, 20, 4);
                let mut got = want.clone();
                crate::reference::rgba_over_yuv(&mut want, &layer, (33, 19), (2, 2), op);
                let mut yl = YuvLayer::default();
                YuvLayer::from_rgba(&layer, (33, 19), got.color, format, true, &mut yl);
                blend_yuv_onto(&mut got, &yl, (2, 2), op);
                assert!(got == want, "{format:?} opacity {op}");
            }
        }
    }

    #[test]
    fn clipped_at_every_edge_without_panicking() {
        for format in [PixelFormat::I420, PixelFormat::Nv12] {
            let layer = [9u8, 9, 9, 200].repeat(5 * 3);
            let mut yl = YuvLayer::default();
            YuvLayer::from_rgba(
                &layer,
                (5, 3),
                ColorInfo::BT601_LIMITED,
                format,
                false,
                &mut yl,
            );
            for (x, y) in [(-4, -2), (5, 5), (-1, 6), (6, -1), (100, 0)] {
                let mut canvas = VideoFrame::new(format, 7, 7).unwrap();
                blend_yuv_onto(&mut canvas, &yl, (x, y), 255);
            }
        }
    }
}
