//! RGBA layers onto I420 and NV12 canvases without converting the canvas: a layer is
//! turned into Y, U, V and alpha planes once per input frame ([`YuvLayer::from_rgba`]), and
//! each output frame blends them into the canvas' planes with [`crate::mix_plane`].
//!
//! Chroma is 2x2-subsampled, so a chroma sample covers four layer pixels: its alpha is their
//! mean alpha, and its colour the alpha-weighted mean of their colours. Mixing that into the
//! canvas' chroma gives what blending each pixel in RGB and averaging would (YUV is affine
//! in RGB), within rounding. Layers sit at even canvas coordinates so chroma samples line up.

use sl_frame::{ColorInfo, Matrix, PixelFormat, Range, VideoFrame};

use crate::{clip, mix_plane, mix_plane_const};

/// RGB -> YUV in 16.16 fixed point, the same coefficients as `sl_frame::convert`.
#[derive(Clone, Copy, Debug)]
struct Coeffs {
    yr: i32,
    yg: i32,
    yb: i32,
    y_off: i32,
    ur: i32,
    ug: i32,
    ub: i32,
    vr: i32,
    vg: i32,
    vb: i32,
}

impl Coeffs {
    fn new(c: ColorInfo) -> Coeffs {
        let (kr, kb) = match c.matrix {
            Matrix::Bt601 => (0.299, 0.114),
            Matrix::Bt709 => (0.2126, 0.0722),
        };
        let kg = 1.0 - kr - kb;
        let (ys, cs, off) = match c.range {
            Range::Limited => (219.0, 224.0, 16),
            Range::Full => (255.0, 255.0, 0),
        };
        let r = |x: f64| (x * 65536.0).round() as i32;
        let yk = ys / 255.0;
        let uk = cs / 255.0 / (2.0 * (1.0 - kb));
        let vk = cs / 255.0 / (2.0 * (1.0 - kr));
        Coeffs {
            yr: r(yk * kr),
            yg: r(yk * kg),
            yb: r(yk * kb),
            y_off: off,
            ur: r(-uk * kr),
            ug: r(-uk * kg),
            ub: r(uk * (1.0 - kb)),
            vr: r(vk * (1.0 - kr)),
            vg: r(-vk * kg),
            vb: r(-vk * kb),
        }
    }

    #[inline(always)]
    fn y(&self, r: u8, g: u8, b: u8) -> u8 {
        (((self.yr * r as i32 + self.yg * g as i32 + self.yb * b as i32 + 32768) >> 16)
            + self.y_off)
            .clamp(0, 255) as u8
    }

    /// Chroma of the sums of 4 pixels' R, G, B (as `sl_frame::convert` does: a shift that
    /// rounds to nearest).
    #[inline(always)]
    fn uv4(&self, rs: i32, gs: i32, bs: i32) -> (u8, u8) {
        let half = 1 << 17;
        let u = ((self.ur * rs + self.ug * gs + self.ub * bs + half) >> 18) + 128;
        let v = ((self.vr * rs + self.vg * gs + self.vb * bs + half) >> 18) + 128;
        (u.clamp(0, 255) as u8, v.clamp(0, 255) as u8)
    }

    /// Chroma of alpha-weighted sums over total weight `n` (> 0): blocks whose pixels'
    /// alphas differ (a layer's edges), so a division.
    #[inline(never)]
    fn uv_weighted(&self, rs: i64, gs: i64, bs: i64, n: i64) -> (u8, u8) {
        let den = n << 16;
        let round = |num: i64| {
            if num >= 0 {
                (num + den / 2) / den
            } else {
                -((-num + den / 2) / den)
            }
        };
        let (ur, ug, ub) = (self.ur as i64, self.ug as i64, self.ub as i64);
        let (vr, vg, vb) = (self.vr as i64, self.vg as i64, self.vb as i64);
        let u = round(ur * rs + ug * gs + ub * bs) + 128;
        let v = round(vr * rs + vg * gs + vb * bs) + 128;
        (u.clamp(0, 255) as u8, v.clamp(0, 255) as u8)
    }
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
        *yo = c.y(p[0], p[1], p[2]);
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
        let (u, v) = c.uv4(s(0), s(1), s(2));
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
    let (u, v) = c.uv_weighted(rs, gs, bs, n);
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
                    *o = c.uv4(sum(j, 0), sum(j, 1), sum(j, 2));
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
    let format = canvas.format();
    assert_eq!(
        layer.format,
        Some(format),
        "a layer made for this canvas' format"
    );
    let (x, y) = (x & !1, y & !1);
    let (w, h) = (layer.width, layer.height);
    let Some((lx, ly, cx, cy, cols, rows)) = clip(x, y, w, h, canvas.width(), canvas.height())
    else {
        return;
    };
    for r in 0..rows {
        let s0 = (ly + r) * w as usize + lx;
        let dst = &mut canvas.row_mut(0, cy + r)[cx..cx + cols];
        let src = &layer.y[s0..s0 + cols];
        match &layer.alpha {
            Some(a) => mix_plane(dst, src, &a[s0..s0 + cols], opacity),
            None => mix_plane_const(dst, src, opacity),
        }
    }
    // chroma: the same rectangle at half resolution (lx, ly, cx, cy are even)
    let (lcw, _) = chroma_dims(w, h);
    let (ccw, cch) = chroma_dims(canvas.width(), canvas.height());
    let (clx, cly, ccx, ccy) = (lx / 2, ly / 2, cx / 2, cy / 2);
    let ccols = (cols.div_ceil(2)).min(ccw - ccx).min(lcw - clx);
    let crows = (rows.div_ceil(2)).min(cch - ccy);
    let nv12 = format == PixelFormat::Nv12;
    let k = if nv12 { 2 } else { 1 };
    let planes: &[(usize, &Vec<u8>)] = if nv12 {
        &[(1, &layer.c0)]
    } else {
        &[(1, &layer.c0), (2, &layer.c1)]
    };
    for &(plane, src_plane) in planes {
        for r in 0..crows {
            let s0 = ((cly + r) * lcw + clx) * k;
            let n = ccols * k;
            let dst = &mut canvas.row_mut(plane, ccy + r)[ccx * k..ccx * k + n];
            let src = &src_plane[s0..s0 + n];
            match &layer.calpha {
                Some(a) => mix_plane(dst, src, &a[s0..s0 + n], opacity),
                None => mix_plane_const(dst, src, opacity),
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
