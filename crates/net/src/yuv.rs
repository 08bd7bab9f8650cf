//! Full-range BT.601 (swscale's JPEG range) from 4-byte RGB pixels to 4:2:0 planes: what a
//! sender of an RGBA or BGRA link coded as H.264 or JPEG does to every frame.
//!
//! swscale did this before: `perf` on a 1080p h264 `sl-net send` put 41% of its cycles in
//! swscale, as much as libx264's 46%, plus a copy of each frame into swscale's input
//! picture. [`rgb4_to_yuv420`] converts in one pass, straight from the wire payload into the
//! encoder's picture, in fixed point. Even sizes only (what 4:2:0
//! coding takes); other frames keep swscale. (The receiver keeps swscale: its hand-written
//! YUV-to-RGB code is faster than this crate's vectorised Rust was, measured.)

/// Where red and blue sit in a 4-byte pixel (the fourth byte, alpha or padding, is ignored).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    Rgba,
    Bgra,
}

// Y = 0.299 R + 0.587 G + 0.114 B, in 1/32768ths (they add up to 32768, so white is 255)
const YR: u32 = 9798;
const YG: u32 = 19235;
const YB: u32 = 3735;
// Cb = -0.168736 R - 0.331264 G + 0.5 B + 128 and Cr = 0.5 R - 0.418688 G - 0.081312 B + 128,
// in 1/32768ths, taken on the sum of a 2x2 block (so shifted by 17: 15 for the fixed point,
// 2 for the mean of four)
const UR: i32 = 5529;
const UG: i32 = 10855;
const UB: i32 = 16384;
const VR: i32 = 16384;
const VG: i32 = 13720;
const VB: i32 = 2664;
const C_BIAS: i32 = (128 << 17) + (1 << 16);

/// Convert `w`x`h` 4-byte pixels (`src`, rows `src_stride` bytes apart) to luma in `y` (rows
/// `y_stride` apart) and chroma, each of a 2x2 block's mean, in `u` and `v` (packed,
/// `w/2` a row). `w` and `h` are even.
#[allow(clippy::too_many_arguments)]
pub fn rgb4_to_yuv420(
    src: &[u8],
    src_stride: usize,
    w: usize,
    h: usize,
    order: Order,
    y: &mut [u8],
    y_stride: usize,
    u: &mut [u8],
    v: &mut [u8],
) {
    match order {
        Order::Rgba => to_yuv420::<0, 2>(src, src_stride, w, h, y, y_stride, u, v),
        Order::Bgra => to_yuv420::<2, 0>(src, src_stride, w, h, y, y_stride, u, v),
    }
}

/// [`rgb4_to_yuv420`] with red at byte `R` and blue at byte `B` (constants, so the compiler
/// can vectorise the loop).
#[allow(clippy::too_many_arguments)]
fn to_yuv420<const R: usize, const B: usize>(
    src: &[u8],
    src_stride: usize,
    w: usize,
    h: usize,
    y: &mut [u8],
    y_stride: usize,
    u: &mut [u8],
    v: &mut [u8],
) {
    debug_assert!(w.is_multiple_of(2) && h.is_multiple_of(2));
    let (r, b) = (R, B);
    let cw = w / 2;
    for j in 0..h / 2 {
        let s0 = &src[2 * j * src_stride..][..w * 4];
        let s1 = &src[(2 * j + 1) * src_stride..][..w * 4];
        let (y0, y1) = y[2 * j * y_stride..].split_at_mut(y_stride);
        let (y0, y1) = (&mut y0[..w], &mut y1[..w]);
        let u = &mut u[j * cw..][..cw];
        let v = &mut v[j * cw..][..cw];
        let pairs = s0.chunks_exact(8).zip(s1.chunks_exact(8));
        let luma_out = y0.chunks_exact_mut(2).zip(y1.chunks_exact_mut(2));
        for (((a, c), (ya, yc)), (uo, vo)) in pairs.zip(luma_out).zip(u.iter_mut().zip(v)) {
            let luma = |p: &[u8]| {
                ((YR * p[r] as u32 + YG * p[1] as u32 + YB * p[b] as u32 + (1 << 14)) >> 15) as u8
            };
            ya[0] = luma(&a[..4]);
            ya[1] = luma(&a[4..]);
            yc[0] = luma(&c[..4]);
            yc[1] = luma(&c[4..]);
            let sr = (a[r] as i32) + (a[4 + r] as i32) + (c[r] as i32) + (c[4 + r] as i32);
            let sg = (a[1] as i32) + (a[5] as i32) + (c[1] as i32) + (c[5] as i32);
            let sb = (a[b] as i32) + (a[4 + b] as i32) + (c[b] as i32) + (c[4 + b] as i32);
            *uo = ((UB * sb - UR * sr - UG * sg + C_BIAS) >> 17).clamp(0, 255) as u8;
            *vo = ((VR * sr - VG * sg - VB * sb + C_BIAS) >> 17).clamp(0, 255) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primaries_land_where_bt601_full_range_puts_them() {
        // (r, g, b) -> (y, u, v), from the formulas in floating point, rounded
        let cases = [
            ([0, 0, 0], [0, 128, 128]),
            ([255, 255, 255], [255, 128, 128]),
            ([255, 0, 0], [76, 85, 255]),
            ([0, 255, 0], [150, 44, 21]),
            ([0, 0, 255], [29, 255, 107]),
            ([128, 128, 128], [128, 128, 128]),
        ];
        for (rgb, want) in cases {
            let px = [rgb[0], rgb[1], rgb[2], 7];
            let src: Vec<u8> = px.iter().copied().cycle().take(4 * 4).collect();
            let (mut y, mut u, mut v) = ([0u8; 4], [0u8; 1], [0u8; 1]);
            rgb4_to_yuv420(&src, 8, 2, 2, Order::Rgba, &mut y, 2, &mut u, &mut v);
            assert_eq!([y[0], u[0], v[0]], want, "{rgb:?}");
            assert!(y.iter().all(|&l| l == y[0]));
        }
    }

    #[test]
    fn every_sample_is_within_one_of_the_formula() {
        // a picture with every kind of neighbour: gradients, edges and noise
        let (w, h) = (64, 32);
        let mut src = vec![0u8; w * h * 4];
        let mut seed = 12345u32;
        for (i, p) in src.chunks_exact_mut(4).enumerate() {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let (x, yy) = (i % w, i / w);
            p.copy_from_slice(&[(x * 4) as u8, (yy * 8) as u8, (seed >> 24) as u8, 0]);
        }
        let (mut y, mut u, mut v) = (vec![0u8; w * h], vec![0u8; w * h / 4], vec![0u8; w * h / 4]);
        rgb4_to_yuv420(&src, w * 4, w, h, Order::Rgba, &mut y, w, &mut u, &mut v);
        let px = |x: usize, yy: usize| {
            let p = &src[(yy * w + x) * 4..];
            (p[0] as f64, p[1] as f64, p[2] as f64)
        };
        for yy in 0..h {
            for x in 0..w {
                let (r, g, b) = px(x, yy);
                let want = 0.299 * r + 0.587 * g + 0.114 * b;
                assert!(
                    (y[yy * w + x] as f64 - want).abs() <= 1.0,
                    "luma at {x},{yy}"
                );
            }
        }
        for cy in 0..h / 2 {
            for cx in 0..w / 2 {
                let (mut r, mut g, mut b) = (0.0, 0.0, 0.0);
                for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    let p = px(2 * cx + dx, 2 * cy + dy);
                    (r, g, b) = (r + p.0 / 4.0, g + p.1 / 4.0, b + p.2 / 4.0);
                }
                let cb = (-0.168736 * r - 0.331264 * g + 0.5 * b + 128.0).clamp(0.0, 255.0);
                let cr = (0.5 * r - 0.418688 * g - 0.081312 * b + 128.0).clamp(0.0, 255.0);
                let i = cy * (w / 2) + cx;
                assert!(
                    (u[i] as f64 - cb).abs() <= 1.0,
                    "Cb at {cx},{cy}: {} {cb}",
                    u[i]
                );
                assert!(
                    (v[i] as f64 - cr).abs() <= 1.0,
                    "Cr at {cx},{cy}: {} {cr}",
                    v[i]
                );
            }
        }
    }

    #[test]
    fn bgra_is_rgba_with_red_and_blue_swapped() {
        let mut rgba = Vec::new();
        for i in 0..16u32 * 8 {
            rgba.extend_from_slice(&[(i * 37) as u8, (i * 11) as u8, (i * 5 + 100) as u8, 0]);
        }
        let bgra: Vec<u8> = rgba
            .chunks_exact(4)
            .flat_map(|p| [p[2], p[1], p[0], p[3]])
            .collect();
        let run = |src: &[u8], order| {
            let (mut y, mut u, mut v) = (vec![0u8; 128], vec![0u8; 32], vec![0u8; 32]);
            rgb4_to_yuv420(src, 64, 16, 8, order, &mut y, 16, &mut u, &mut v);
            (y, u, v)
        };
        assert_eq!(run(&rgba, Order::Rgba), run(&bgra, Order::Bgra));
    }

    #[test]
    fn strides_wider_than_the_picture_are_followed() {
        // 4x2 pixels in rows of 24 bytes (8 of padding), luma rows of 6
        let mut src = vec![0xEEu8; 48];
        for x in 0..4 {
            src[x * 4..x * 4 + 4].copy_from_slice(&[255, 255, 255, 0]);
            src[24 + x * 4..24 + x * 4 + 4].copy_from_slice(&[0, 0, 0, 0]);
        }
        let (mut y, mut u, mut v) = (vec![9u8; 12], vec![0u8; 2], vec![0u8; 2]);
        rgb4_to_yuv420(&src, 24, 4, 2, Order::Rgba, &mut y, 6, &mut u, &mut v);
        assert_eq!(y, [255, 255, 255, 255, 9, 9, 0, 0, 0, 0, 9, 9]);
        assert_eq!((u, v), (vec![128, 128], vec![128, 128]));
    }
}
