//! Pixel-format conversion between every pair of [`PixelFormat`]s.
//!
//! YUV <-> RGB uses the matrix and range in the frames' [`ColorInfo`] (BT.601 or BT.709,
//! limited or full), in 16.16 fixed point. Chroma is made from the average of each 2x2 block
//! and read back with nearest-neighbour upsampling, as FFmpeg's swscale does by default; the
//! results agree with swscale within ±2 per channel (checked in `tests/swscale.rs` against the
//! real ffmpeg).
//!
//! Conversions work a row (or a pair of rows, for 4:2:0) at a time through an RGBA scratch
//! row, so any pair of formats is supported with one decoder and one encoder per format, and
//! the working set stays in cache.

use crate::{ColorInfo, FrameError, Matrix, PixelFormat, Range, VideoFrame};

/// Fixed-point matrices for one [`ColorInfo`]: the one definition of the BT.601/709
/// coefficients, used here and by the blend kernels (`sl-blend`), which must agree with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Coeffs {
    // RGB -> YUV, 16.16
    pub yr: i32,
    pub yg: i32,
    pub yb: i32,
    pub y_off: i32,
    pub ur: i32,
    pub ug: i32,
    pub ub: i32,
    pub vr: i32,
    pub vg: i32,
    pub vb: i32,
    // YUV -> RGB, 16.16
    pub y_mul: i32,
    pub rv: i32,
    pub gu: i32,
    pub gv: i32,
    pub bu: i32,
}

const ONE: f64 = 65536.0;

impl Coeffs {
    /// The matrices for `c`'s matrix and range.
    pub fn new(c: ColorInfo) -> Coeffs {
        let (kr, kb) = match c.matrix {
            Matrix::Bt601 => (0.299, 0.114),
            Matrix::Bt709 => (0.2126, 0.0722),
        };
        let kg = 1.0 - kr - kb;
        let (ys, cs, off) = match c.range {
            Range::Limited => (219.0, 224.0, 16),
            Range::Full => (255.0, 255.0, 0),
        };
        let r = |x: f64| (x * ONE).round() as i32;
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
            y_mul: r(255.0 / ys),
            rv: r(255.0 / cs * 2.0 * (1.0 - kr)),
            gu: r(255.0 / cs * 2.0 * (1.0 - kb) * kb / kg),
            gv: r(255.0 / cs * 2.0 * (1.0 - kr) * kr / kg),
            bu: r(255.0 / cs * 2.0 * (1.0 - kb)),
        }
    }

    /// Luma of one pixel.
    #[inline(always)]
    pub fn y(&self, r: i32, g: i32, b: i32) -> u8 {
        (((self.yr * r + self.yg * g + self.yb * b + 32768) >> 16) + self.y_off).clamp(0, 255) as u8
    }

    /// Chroma from the sum of `n` pixels' R, G, B (n = 1, 2 or 4).
    #[inline(always)]
    pub fn uv(&self, rs: i32, gs: i32, bs: i32, n: i32) -> (u8, u8) {
        // n is a power of two; an arithmetic shift floors, so adding half rounds to nearest
        // for negative sums too (integer division would round those towards zero).
        let shift = 16 + n.trailing_zeros();
        let half = 1 << (shift - 1);
        let u = ((self.ur * rs + self.ug * gs + self.ub * bs + half) >> shift) + 128;
        let v = ((self.vr * rs + self.vg * gs + self.vb * bs + half) >> shift) + 128;
        (u.clamp(0, 255) as u8, v.clamp(0, 255) as u8)
    }

    /// Rounds with a bias of 1/8 rather than 1/2: measured against swscale (accurate mode),
    /// this stays within ±2 everywhere, including near the clamping limits, while white
    /// (Y=235) still maps to 255.
    #[inline(always)]
    pub fn rgb(&self, y: u8, u: u8, v: u8) -> [u8; 3] {
        let yy = (y as i32 - self.y_off) * self.y_mul + 8192;
        let u = u as i32 - 128;
        let v = v as i32 - 128;
        let r = (yy + self.rv * v) >> 16;
        let g = (yy - self.gu * u - self.gv * v) >> 16;
        let b = (yy + self.bu * u) >> 16;
        [
            r.clamp(0, 255) as u8,
            g.clamp(0, 255) as u8,
            b.clamp(0, 255) as u8,
        ]
    }

    /// Gray level (0..255 full scale) of a luma value in this range.
    #[inline(always)]
    fn luma_to_gray(&self, y: u8) -> u8 {
        (((y as i32 - self.y_off) * self.y_mul + 32768) >> 16).clamp(0, 255) as u8
    }
}

/// Convert `src` into a new frame of `format`, keeping its timing and metadata.
/// YUV and gray targets get [`ColorInfo::default_for`] unless `src` is YUV too, whose
/// colour information is kept.
pub fn to_format(src: &VideoFrame, format: PixelFormat) -> VideoFrame {
    let mut dst = VideoFrame::new(format, src.width(), src.height())
        .expect("a valid frame's size is valid for any format");
    if src.format().is_yuv() && format.is_yuv() {
        dst.color = src.color;
    }
    convert(src, &mut dst).expect("same size");
    dst.info = src.info.clone();
    dst
}

/// Convert the pixels of `src` into `dst`, which must have the same size. `dst.color` says
/// which matrix and range a YUV or gray target uses. Timing and metadata are not touched.
pub fn convert(src: &VideoFrame, dst: &mut VideoFrame) -> Result<(), FrameError> {
    if src.width() != dst.width() || src.height() != dst.height() {
        return Err(FrameError::SizeMismatch {
            from: src.format().name(),
            from_w: src.width(),
            from_h: src.height(),
            to: dst.format().name(),
            to_w: dst.width(),
            to_h: dst.height(),
        });
    }
    if src.format() == dst.format() && (src.color == dst.color || !src.format().is_yuv()) {
        if src.format() == PixelFormat::Gray8 && src.color.range != dst.color.range {
            // gray levels differ only by range: go through RGBA below
        } else {
            copy_planes(src, dst);
            return Ok(());
        }
    }
    if src.format().is_yuv()
        && dst.format().is_yuv()
        && src.color == dst.color
        && src.format() != dst.format()
    {
        yuv_to_yuv(src, dst);
        return Ok(());
    }
    let w = src.width() as usize;
    let h = src.height() as usize;
    let src_c = Coeffs::new(src.color);
    let dst_c = Coeffs::new(dst.color);
    // RGBA is the pivot: an RGBA source is read in place and an RGBA target written in place,
    // so only conversions between two non-RGBA formats go through the scratch rows.
    let src_rgba = src.format() == PixelFormat::Rgba;
    let mut a = vec![0u8; if src_rgba { 0 } else { w * 4 }];
    let mut b = vec![0u8; if src_rgba { 0 } else { w * 4 }];
    if dst.format().is_yuv() {
        let mut y = 0;
        while y < h {
            let pair = y + 1 < h;
            if src_rgba {
                let bottom = pair.then(|| src.row(0, y + 1));
                encode_yuv_rows(dst, &dst_c, y, src.row(0, y), bottom);
            } else {
                decode_row(src, &src_c, y, &mut a);
                if pair {
                    decode_row(src, &src_c, y + 1, &mut b);
                }
                encode_yuv_rows(dst, &dst_c, y, &a, pair.then_some(&b[..]));
            }
            y += 2;
        }
    } else if dst.format() == PixelFormat::Rgba {
        for y in 0..h {
            decode_row(src, &src_c, y, dst.row_mut(0, y));
        }
    } else {
        for y in 0..h {
            if src_rgba {
                encode_rgb_row(dst, &dst_c, y, src.row(0, y));
            } else {
                decode_row(src, &src_c, y, &mut a);
                encode_rgb_row(dst, &dst_c, y, &a);
            }
        }
    }
    Ok(())
}

fn copy_planes(src: &VideoFrame, dst: &mut VideoFrame) {
    if src.strides() == dst.strides() {
        dst.data_mut().copy_from_slice(src.data());
        return;
    }
    for p in 0..src.plane_count() {
        for (d, s) in dst.rows_mut(p).zip(src.rows(p)) {
            d.copy_from_slice(s);
        }
    }
}

fn yuv_to_yuv(src: &VideoFrame, dst: &mut VideoFrame) {
    for (d, s) in dst.rows_mut(0).zip(src.rows(0)) {
        d.copy_from_slice(s);
    }
    let (_, crows) = src.plane_dims(1);
    for cy in 0..crows {
        match (src.format(), dst.format()) {
            (PixelFormat::I420, PixelFormat::Nv12) => {
                let u = src.row(1, cy).to_vec();
                let v = src.row(2, cy);
                let d = dst.row_mut(1, cy);
                for (i, pair) in d.chunks_exact_mut(2).enumerate() {
                    pair[0] = u[i];
                    pair[1] = v[i];
                }
            }
            (PixelFormat::Nv12, PixelFormat::I420) => {
                let uv = src.row(1, cy);
                {
                    let d = dst.row_mut(1, cy);
                    for (i, o) in d.iter_mut().enumerate() {
                        *o = uv[2 * i];
                    }
                }
                let d = dst.row_mut(2, cy);
                for (i, o) in d.iter_mut().enumerate() {
                    *o = uv[2 * i + 1];
                }
            }
            _ => unreachable!("only two YUV formats"),
        }
    }
}

/// Decode row `y` of `src` into RGBA.
fn decode_row(src: &VideoFrame, c: &Coeffs, y: usize, out: &mut [u8]) {
    match src.format() {
        PixelFormat::Rgba => out.copy_from_slice(src.row(0, y)),
        PixelFormat::Bgra => {
            for (o, i) in out.chunks_exact_mut(4).zip(src.row(0, y).chunks_exact(4)) {
                o.copy_from_slice(&[i[2], i[1], i[0], i[3]]);
            }
        }
        PixelFormat::Rgb24 => {
            for (o, i) in out.chunks_exact_mut(4).zip(src.row(0, y).chunks_exact(3)) {
                o.copy_from_slice(&[i[0], i[1], i[2], 255]);
            }
        }
        PixelFormat::Gray8 => {
            let full = src.color.range == Range::Full;
            for (o, &g) in out.chunks_exact_mut(4).zip(src.row(0, y)) {
                let v = if full { g } else { c.luma_to_gray(g) };
                o.copy_from_slice(&[v, v, v, 255]);
            }
        }
        PixelFormat::I420 => {
            let (ur, vr) = (src.row(1, y / 2), src.row(2, y / 2));
            yuv_row_to_rgba(c, src.row(0, y), |cx| (ur[cx], vr[cx]), out);
        }
        PixelFormat::Nv12 => {
            let uv = src.row(1, y / 2);
            yuv_row_to_rgba(c, src.row(0, y), |cx| (uv[2 * cx], uv[2 * cx + 1]), out);
        }
    }
}

/// One row of 4:2:0 YUV to RGBA: the chroma terms are computed once per pair of pixels.
#[inline(always)]
fn yuv_row_to_rgba(c: &Coeffs, yrow: &[u8], chroma: impl Fn(usize) -> (u8, u8), out: &mut [u8]) {
    let px = |yy: i32, r: i32, g: i32, b: i32, o: &mut [u8]| {
        o[0] = ((yy + r) >> 16).clamp(0, 255) as u8;
        o[1] = ((yy + g) >> 16).clamp(0, 255) as u8;
        o[2] = ((yy + b) >> 16).clamp(0, 255) as u8;
        o[3] = 255;
    };
    let pairs = out.chunks_exact_mut(8).zip(yrow.chunks_exact(2));
    for (cx, (o, l)) in pairs.enumerate() {
        let (u, v) = chroma(cx);
        let (u, v) = (u as i32 - 128, v as i32 - 128);
        let (r, g, b) = (c.rv * v, -c.gu * u - c.gv * v, c.bu * u);
        let y0 = (l[0] as i32 - c.y_off) * c.y_mul + 8192;
        let y1 = (l[1] as i32 - c.y_off) * c.y_mul + 8192;
        let (o0, o1) = o.split_at_mut(4);
        px(y0, r, g, b, o0);
        px(y1, r, g, b, o1);
    }
    if yrow.len() % 2 == 1 {
        let x = yrow.len() - 1;
        let (u, v) = chroma(x / 2);
        let [r, g, b] = c.rgb(yrow[x], u, v);
        out[x * 4..x * 4 + 4].copy_from_slice(&[r, g, b, 255]);
    }
}

/// Encode an RGBA row into row `y` of a packed RGB-family or gray frame.
fn encode_rgb_row(dst: &mut VideoFrame, c: &Coeffs, y: usize, rgba: &[u8]) {
    let format = dst.format();
    let out = dst.row_mut(0, y);
    match format {
        PixelFormat::Rgba => out.copy_from_slice(rgba),
        PixelFormat::Bgra => {
            for (o, i) in out.chunks_exact_mut(4).zip(rgba.chunks_exact(4)) {
                o.copy_from_slice(&[i[2], i[1], i[0], i[3]]);
            }
        }
        PixelFormat::Rgb24 => {
            for (o, i) in out.chunks_exact_mut(3).zip(rgba.chunks_exact(4)) {
                o.copy_from_slice(&i[..3]);
            }
        }
        PixelFormat::Gray8 => {
            for (o, i) in out.iter_mut().zip(rgba.chunks_exact(4)) {
                *o = c.y(i[0] as i32, i[1] as i32, i[2] as i32);
            }
        }
        PixelFormat::I420 | PixelFormat::Nv12 => unreachable!("YUV targets use encode_yuv_rows"),
    }
}

/// Encode one or two RGBA rows (`y` even) into a YUV 4:2:0 frame: luma for each row, and one
/// chroma row from the 2x2 averages.
fn encode_yuv_rows(dst: &mut VideoFrame, c: &Coeffs, y: usize, top: &[u8], bottom: Option<&[u8]>) {
    for (row, src) in [(y, top)].into_iter().chain(bottom.map(|b| (y + 1, b))) {
        for (o, i) in dst.row_mut(0, row).iter_mut().zip(src.chunks_exact(4)) {
            *o = c.y(i[0] as i32, i[1] as i32, i[2] as i32);
        }
    }
    let w = top.len() / 4;
    let cw = w.div_ceil(2);
    let cy = y / 2;
    let bottom = bottom.unwrap_or(top);
    let uv_at = |cx: usize| {
        let x0 = cx * 2;
        let x1 = (x0 + 1).min(w - 1);
        let (mut rs, mut gs, mut bs) = (0i32, 0i32, 0i32);
        for px in [
            &top[x0 * 4..],
            &top[x1 * 4..],
            &bottom[x0 * 4..],
            &bottom[x1 * 4..],
        ] {
            rs += px[0] as i32;
            gs += px[1] as i32;
            bs += px[2] as i32;
        }
        c.uv(rs, gs, bs, 4)
    };
    match dst.format() {
        PixelFormat::I420 => {
            let mut us = vec![0u8; cw];
            let mut vs = vec![0u8; cw];
            for cx in 0..cw {
                (us[cx], vs[cx]) = uv_at(cx);
            }
            dst.row_mut(1, cy).copy_from_slice(&us);
            dst.row_mut(2, cy).copy_from_slice(&vs);
        }
        PixelFormat::Nv12 => {
            let mut uv = vec![0u8; cw * 2];
            for cx in 0..cw {
                (uv[2 * cx], uv[2 * cx + 1]) = uv_at(cx);
            }
            dst.row_mut(1, cy).copy_from_slice(&uv);
        }
        _ => unreachable!("RGB targets use encode_rgb_row"),
    }
}

/// The RGB a YUV triple stands for under `color` (for tests and for drawing colours).
pub fn yuv_to_rgb(color: ColorInfo, y: u8, u: u8, v: u8) -> [u8; 3] {
    Coeffs::new(color).rgb(y, u, v)
}

/// The YUV triple of an RGB colour under `color`.
pub fn rgb_to_yuv(color: ColorInfo, r: u8, g: u8, b: u8) -> [u8; 3] {
    let c = Coeffs::new(color);
    let (u, v) = c.uv(r as i32, g as i32, b as i32, 1);
    [c.y(r as i32, g as i32, b as i32), u, v]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::ALL_PIXEL_FORMATS;

    fn gradient(w: u32, h: u32) -> VideoFrame {
        let mut f = VideoFrame::new(PixelFormat::Rgba, w, h).unwrap();
        for y in 0..h as usize {
            for (x, px) in f.row_mut(0, y).chunks_exact_mut(4).enumerate() {
                px.copy_from_slice(&[(x * 4) as u8, (y * 4) as u8, 128, 255]);
            }
        }
        f
    }

    #[test]
    fn known_colours_bt601_limited() {
        let c = ColorInfo::BT601_LIMITED;
        assert_eq!(rgb_to_yuv(c, 0, 0, 0), [16, 128, 128]);
        assert_eq!(rgb_to_yuv(c, 255, 255, 255), [235, 128, 128]);
        // FFmpeg gives red (255,0,0) as Y=81 U=90 V=240
        assert_eq!(rgb_to_yuv(c, 255, 0, 0), [81, 90, 240]);
        assert_eq!(yuv_to_rgb(c, 235, 128, 128), [255, 255, 255]);
        assert_eq!(yuv_to_rgb(c, 16, 128, 128), [0, 0, 0]);
        let full = ColorInfo {
            matrix: Matrix::Bt709,
            range: Range::Full,
        };
        assert_eq!(rgb_to_yuv(full, 255, 255, 255), [255, 128, 128]);
    }

    #[test]
    fn every_pair_round_trips_close() {
        let src = gradient(34, 18);
        for a in ALL_PIXEL_FORMATS {
            for b in ALL_PIXEL_FORMATS {
                let fa = to_format(&src, a);
                let fb = to_format(&fa, b);
                let back = to_format(&fb, PixelFormat::Rgba);
                let reference = to_format(&to_format(&src, a), PixelFormat::Rgba);
                // Going through b must not drift from what a alone gives, beyond what b's own
                // precision (chroma subsampling, gray) loses.
                let lossy = matches!(b, PixelFormat::Gray8) && !matches!(a, PixelFormat::Gray8);
                if lossy {
                    continue;
                }
                let tol = if b.is_yuv() && !a.is_yuv() { 40 } else { 3 };
                for (p, q) in back.data().iter().zip(reference.data()) {
                    assert!(
                        (*p as i32 - *q as i32).abs() <= tol,
                        "{a} -> {b}: {p} vs {q}"
                    );
                }
            }
        }
    }

    #[test]
    fn flat_colour_survives_yuv_exactly_enough() {
        for color in [ColorInfo::BT601_LIMITED, ColorInfo::BT709_LIMITED] {
            let mut f = VideoFrame::new(PixelFormat::Rgb24, 8, 8).unwrap();
            for px in f.data_mut().chunks_exact_mut(3) {
                px.copy_from_slice(&[200, 30, 90]);
            }
            let mut yuv = VideoFrame::new(PixelFormat::Nv12, 8, 8).unwrap();
            yuv.color = color;
            convert(&f, &mut yuv).unwrap();
            let back = to_format(&yuv, PixelFormat::Rgb24);
            for px in back.data().chunks_exact(3) {
                for (a, b) in px.iter().zip([200u8, 30, 90]) {
                    assert!((*a as i32 - b as i32).abs() <= 2, "{px:?}");
                }
            }
        }
    }

    #[test]
    fn i420_nv12_shuffle_is_exact() {
        let src = to_format(&gradient(10, 6), PixelFormat::I420);
        let nv = to_format(&src, PixelFormat::Nv12);
        let back = to_format(&nv, PixelFormat::I420);
        assert_eq!(back.data(), src.data());
    }

    #[test]
    fn size_mismatch_is_an_error() {
        let a = VideoFrame::new(PixelFormat::Rgba, 4, 4).unwrap();
        let mut b = VideoFrame::new(PixelFormat::Rgba, 4, 2).unwrap();
        assert!(convert(&a, &mut b).is_err());
    }
}
