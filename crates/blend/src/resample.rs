//! Cropping and scaling straight-alpha RGBA layers (bilinear), done once per input frame
//! and cached by the compositor, so its cost is per input frame, not per output frame.
//!
//! Colours are averaged weighted by alpha (as premultiplied alpha would be, then divided
//! back), so a transparent pixel's colour never bleeds into the edge of an opaque one.
//! Bilinear reads 2x2 source pixels per output pixel: scaling down by more than 2x skips
//! source pixels (some aliasing on fine detail); scale such inputs upstream with
//! `sl-convert` when that matters.

use crate::Rect;

/// Where each output column or row reads: two source indices and the weight (0..=256) of
/// the second.
fn taps(src_off: u32, src_len: u32, dst_len: u32) -> Vec<(u32, u32, u32)> {
    let scale = src_len as f64 / dst_len as f64;
    (0..dst_len)
        .map(|i| {
            let c = ((i as f64 + 0.5) * scale - 0.5).clamp(0.0, (src_len - 1) as f64);
            let i0 = c.floor() as u32;
            let i1 = (i0 + 1).min(src_len - 1);
            let f = ((c - i0 as f64) * 256.0).round() as u32;
            (src_off + i0, src_off + i1, f)
        })
        .collect()
}

/// Cut `crop` out of a packed `sw`x`sh` RGBA image and scale it to `dw`x`dh`. `crop` must
/// lie inside the image (the caller clamps it). `opaque` skips the alpha weighting.
pub fn crop_scale_rgba(
    src: &[u8],
    (sw, sh): (u32, u32),
    crop: Rect,
    (dw, dh): (u32, u32),
    opaque: bool,
    out: &mut Vec<u8>,
) {
    assert_eq!(
        src.len(),
        sw as usize * sh as usize * 4,
        "a packed RGBA image"
    );
    assert!(
        crop.x >= 0
            && crop.y >= 0
            && crop.w > 0
            && crop.h > 0
            && crop.x as u64 + crop.w as u64 <= sw as u64
            && crop.y as u64 + crop.h as u64 <= sh as u64,
        "crop inside the image"
    );
    out.clear();
    out.resize(dw as usize * dh as usize * 4, 0);
    let stride = sw as usize * 4;
    if (crop.w, crop.h) == (dw, dh) {
        for (r, row) in out.chunks_exact_mut(dw as usize * 4).enumerate() {
            let s0 = (crop.y as usize + r) * stride + crop.x as usize * 4;
            row.copy_from_slice(&src[s0..s0 + dw as usize * 4]);
        }
        return;
    }
    let xs = taps(crop.x as u32, crop.w, dw);
    let ys = taps(crop.y as u32, crop.h, dh);
    for (row, &(y0, y1, fy)) in out.chunks_exact_mut(dw as usize * 4).zip(&ys) {
        let r0 = &src[y0 as usize * stride..][..stride];
        let r1 = &src[y1 as usize * stride..][..stride];
        for (o, &(x0, x1, fx)) in row.chunks_exact_mut(4).zip(&xs) {
            let (x0, x1) = (x0 as usize * 4, x1 as usize * 4);
            let px = [
                &r0[x0..x0 + 4],
                &r0[x1..x1 + 4],
                &r1[x0..x0 + 4],
                &r1[x1..x1 + 4],
            ];
            let w = [
                (256 - fx) * (256 - fy),
                fx * (256 - fy),
                (256 - fx) * fy,
                fx * fy,
            ];
            if opaque {
                for c in 0..3 {
                    let sum: u32 = (0..4).map(|k| w[k] * px[k][c] as u32).sum();
                    o[c] = ((sum + 32768) >> 16) as u8;
                }
                o[3] = 255;
            } else {
                let wa: [u64; 4] = std::array::from_fn(|k| w[k] as u64 * px[k][3] as u64);
                let total: u64 = wa.iter().sum();
                o[3] = ((total + 32768) >> 16) as u8;
                if total == 0 {
                    o[..3].fill(0);
                    continue;
                }
                for c in 0..3 {
                    let sum: u64 = (0..4).map(|k| wa[k] * px[k][c] as u64).sum();
                    o[c] = ((sum + total / 2) / total).min(255) as u8;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(w: u32, h: u32, px: [u8; 4]) -> Vec<u8> {
        px.repeat((w * h) as usize)
    }

    #[test]
    fn a_solid_colour_stays_that_colour_at_any_size() {
        let src = solid(7, 5, [10, 200, 30, 128]);
        let mut out = Vec::new();
        for (dw, dh) in [(1, 1), (3, 2), (7, 5), (20, 11)] {
            crop_scale_rgba(
                &src,
                (7, 5),
                Rect {
                    x: 0,
                    y: 0,
                    w: 7,
                    h: 5,
                },
                (dw, dh),
                false,
                &mut out,
            );
            assert!(
                out.chunks_exact(4).all(|p| p == [10, 200, 30, 128]),
                "{dw}x{dh}"
            );
        }
    }

    #[test]
    fn crop_without_scaling_is_a_copy() {
        let src: Vec<u8> = (0..4 * 4 * 4).map(|i| i as u8).collect();
        let mut out = Vec::new();
        crop_scale_rgba(
            &src,
            (4, 4),
            Rect {
                x: 1,
                y: 2,
                w: 2,
                h: 2,
            },
            (2, 2),
            false,
            &mut out,
        );
        let px = |x: usize, y: usize| &src[(y * 4 + x) * 4..][..4];
        assert_eq!(&out[..4], px(1, 2));
        assert_eq!(&out[12..], px(2, 3));
    }

    #[test]
    fn transparent_colour_does_not_bleed() {
        // left half transparent red, right half opaque blue: the blend edge stays blue
        let mut src = Vec::new();
        for x in 0..4 {
            src.extend_from_slice(if x < 2 {
                &[255, 0, 0, 0]
            } else {
                &[0, 0, 255, 255]
            });
        }
        let mut out = Vec::new();
        crop_scale_rgba(
            &src,
            (4, 1),
            Rect {
                x: 0,
                y: 0,
                w: 4,
                h: 1,
            },
            (7, 1),
            false,
            &mut out,
        );
        for p in out.chunks_exact(4).filter(|p| p[3] > 0) {
            assert_eq!(&p[..3], &[0, 0, 255]);
        }
    }

    #[test]
    fn upscaling_by_two_keeps_the_corners() {
        let src = [0u8, 0, 0, 255, 255, 255, 255, 255];
        let mut out = Vec::new();
        crop_scale_rgba(
            &src,
            (2, 1),
            Rect {
                x: 0,
                y: 0,
                w: 2,
                h: 1,
            },
            (4, 1),
            true,
            &mut out,
        );
        assert_eq!(out[0], 0);
        assert_eq!(out[12], 255);
        assert!(out[4] > 0 && out[4] < 128 && out[8] > 128 && out[8] < 255);
    }
}
