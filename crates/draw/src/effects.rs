//! Region effects: pixelate or blur a rectangle of a frame, in place, in any pixel format.
//!
//! Contract:
//! - Only the pixels of the region change; everything else is left bit-exact. The region is
//!   in frame pixels, already clipped to the frame ([`Region::clipped`]).
//! - Integer arithmetic on each byte of a plane, so the same code serves packed RGBA/BGRA
//!   (premultiplied or opaque), RGB, gray, and the planes of I420 and NV12 (see
//!   [`apply_to_frame`]). For 4:2:0 frames the chroma of every 2x2 block the region touches
//!   changes, so a region edge at an odd position bleeds by one pixel (as
//!   `sl_frame::ops::fill_rect` does).
//! - Pixelate's grid is anchored at the frame's origin, not the region's: a box that moves by
//!   a pixel keeps its tiles, instead of making the whole mosaic shimmer.
//! - Blur is three box passes each way (separable, a running sum per row and per column), so
//!   its cost does not depend on the radius; three boxes of `2r+1` make a kernel close to a
//!   Gaussian of standard deviation `r`.
//! - Memory: a scratch buffer of the region's size, kept by the caller and reused, and one
//!   row of sums per blur.

use sl_frame::{PixelFormat, VideoFrame};

/// Largest pixelate block, in pixels.
pub const MAX_BLOCK: u32 = 4096;
/// Largest blur radius, in pixels.
pub const MAX_RADIUS: u32 = 1000;
/// Box passes each way in a blur.
const BLUR_PASSES: usize = 3;

/// A rectangle of whole pixels, `x0 <= x1`, `y0 <= y1` (empty when either is equal).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
}

impl Region {
    /// The pixels an `x0..x1` by `y0..y1` area touches (partly covered ones included), clipped
    /// to a `width` x `height` frame; `None` if nothing of it is inside.
    pub fn clipped(x0: f32, y0: f32, x1: f32, y1: f32, width: u32, height: u32) -> Option<Region> {
        let (w, h) = (width as f32, height as f32);
        let (lx, hx) = (x0.min(x1).max(0.0).floor(), x0.max(x1).min(w).ceil());
        let (ly, hy) = (y0.min(y1).max(0.0).floor(), y0.max(y1).min(h).ceil());
        if !(lx < hx && ly < hy) {
            return None;
        }
        Some(Region {
            x0: lx as u32,
            y0: ly as u32,
            x1: (hx as u32).min(width),
            y1: (hy as u32).min(height),
        })
    }

    /// The part of the region inside a `width` x `height` frame, if any.
    pub fn within(self, width: u32, height: u32) -> Option<Region> {
        let r = Region {
            x0: self.x0.min(width),
            y0: self.y0.min(height),
            x1: self.x1.min(width),
            y1: self.y1.min(height),
        };
        (r.x0 < r.x1 && r.y0 < r.y1).then_some(r)
    }

    pub fn width(&self) -> u32 {
        self.x1 - self.x0
    }

    pub fn height(&self) -> u32 {
        self.y1 - self.y0
    }

    /// Pixels in the region.
    pub fn area(&self) -> u64 {
        self.width() as u64 * self.height() as u64
    }

    /// The same area in a plane subsampled 2x2 (every chroma sample it touches).
    fn halved(&self) -> Region {
        Region {
            x0: self.x0 / 2,
            y0: self.y0 / 2,
            x1: self.x1.div_ceil(2),
            y1: self.y1.div_ceil(2),
        }
    }
}

/// What to do to a region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Replace each `block` x `block` tile (on a grid from the frame's origin) by its average.
    Pixelate { block: u32 },
    /// A Gaussian-like blur of standard deviation about `radius` pixels.
    Blur { radius: u32 },
}

impl Effect {
    /// The same effect on a plane subsampled 2x2.
    fn halved(self) -> Effect {
        match self {
            Effect::Pixelate { block } => Effect::Pixelate {
                block: (block / 2).max(1),
            },
            Effect::Blur { radius } => Effect::Blur {
                radius: radius.div_ceil(2),
            },
        }
    }

    /// For 4:2:0 frames a pixelate block is made even, so the luma and chroma tiles line up
    /// (an odd block would leave tiles of two colours).
    fn for_420(self) -> Effect {
        match self {
            Effect::Pixelate { block } if block % 2 == 1 && block > 1 => Effect::Pixelate {
                block: (block + 1).min(MAX_BLOCK),
            },
            e => e,
        }
    }
}

/// One plane's pixels: `cpp` interleaved bytes per pixel, rows `stride` bytes apart.
#[derive(Debug)]
pub struct Plane<'a> {
    pub data: &'a mut [u8],
    pub stride: usize,
    /// Bytes per pixel (each is averaged on its own).
    pub cpp: usize,
    /// In pixels.
    pub width: usize,
    pub height: usize,
}

impl Plane<'_> {
    fn check(&self, r: &Region) {
        assert!(
            r.x0 <= r.x1
                && r.y0 <= r.y1
                && r.x1 as usize <= self.width
                && r.y1 as usize <= self.height
                && self.cpp >= 1
                && self.cpp <= 4
                && self.width * self.cpp <= self.stride
                && (self.height == 0
                    || (self.height - 1) * self.stride + self.width * self.cpp <= self.data.len()),
            "region {r:?} outside a {}x{} plane of {} bytes (stride {}, {} per pixel)",
            self.width,
            self.height,
            self.data.len(),
            self.stride,
            self.cpp
        );
    }

    /// The bytes of row `y` from pixel `x0` to `x1`.
    fn span(&mut self, y: u32, x0: u32, x1: u32) -> &mut [u8] {
        let start = y as usize * self.stride + x0 as usize * self.cpp;
        &mut self.data[start..start + (x1 - x0) as usize * self.cpp]
    }
}

/// Apply `effect` to `region` of `plane`. `scratch` is reused between calls.
pub fn apply(plane: &mut Plane<'_>, region: Region, effect: Effect, scratch: &mut Vec<u8>) {
    plane.check(&region);
    if region.area() == 0 {
        return;
    }
    match effect {
        Effect::Pixelate { block } => pixelate(plane, region, block.clamp(1, MAX_BLOCK)),
        Effect::Blur { radius } => {
            let radius = radius.min(MAX_RADIUS);
            if radius > 0 {
                for _ in 0..BLUR_PASSES {
                    blur_rows(plane, region, radius, scratch);
                }
                blur_columns(plane, region, radius, scratch);
            }
        }
    }
}

/// Whether [`apply_to_frame`] can work on `frame` as it is: every format but RGBA and BGRA
/// with see-through pixels (averaging straight alpha would bleed the colour of invisible
/// pixels: those frames go through the premultiplied pixmap instead).
pub fn applies_in_place(frame: &VideoFrame, opaque: bool) -> bool {
    !frame.format().has_alpha() || opaque
}

/// Apply `effect` to `region` (in frame pixels) of every plane of `frame`, in its own format.
pub fn apply_to_frame(
    frame: &mut VideoFrame,
    region: Region,
    effect: Effect,
    scratch: &mut Vec<u8>,
) {
    let format = frame.format();
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let luma = match format {
        PixelFormat::I420 | PixelFormat::Nv12 => effect.for_420(),
        _ => effect,
    };
    for p in 0..frame.plane_count() {
        let (row_bytes, rows) = frame.plane_dims(p);
        let stride = frame.stride(p);
        let (cpp, r, e) = match (format, p) {
            (PixelFormat::Rgba | PixelFormat::Bgra, _) => (4, region, luma),
            (PixelFormat::Rgb24, _) => (3, region, luma),
            (PixelFormat::Gray8, _) | (PixelFormat::I420 | PixelFormat::Nv12, 0) => {
                (1, region, luma)
            }
            (PixelFormat::I420, _) => (1, region.halved(), luma.halved()),
            (PixelFormat::Nv12, _) => (2, region.halved(), luma.halved()),
        };
        debug_assert!(p > 0 || row_bytes == w * cpp && rows == h);
        let mut plane = Plane {
            data: frame.plane_mut(p),
            stride,
            cpp,
            width: row_bytes / cpp,
            height: rows,
        };
        apply(&mut plane, r, e, scratch);
    }
}

fn pixelate(p: &mut Plane<'_>, r: Region, block: u32) {
    let cpp = p.cpp;
    let mut by0 = r.y0;
    while by0 < r.y1 {
        let by1 = ((by0 / block + 1) * block).min(r.y1);
        let mut bx0 = r.x0;
        while bx0 < r.x1 {
            let bx1 = ((bx0 / block + 1) * block).min(r.x1);
            let mut sum = [0u64; 4];
            for y in by0..by1 {
                for px in p.span(y, bx0, bx1).chunks_exact(cpp) {
                    for (s, v) in sum.iter_mut().zip(px) {
                        *s += *v as u64;
                    }
                }
            }
            let n = (by1 - by0) as u64 * (bx1 - bx0) as u64;
            let mut avg = [0u8; 4];
            for (a, s) in avg.iter_mut().zip(sum) {
                *a = ((s + n / 2) / n) as u8;
            }
            for y in by0..by1 {
                for px in p.span(y, bx0, bx1).chunks_exact_mut(cpp) {
                    px.copy_from_slice(&avg[..cpp]);
                }
            }
            bx0 = bx1;
        }
        by0 = by1;
    }
}

/// Division by the window size `n` as a multiply and a shift, rounded to nearest: exact for
/// sums of up to `n` bytes while `n` is below 4096 (the error stays under the 1/(2n) that
/// separates a sum's quotient from a rounding boundary); the widest window is 2001.
#[derive(Clone, Copy)]
struct Divider {
    mul: u64,
}

impl Divider {
    const SHIFT: u32 = 32;

    fn new(n: u32) -> Divider {
        Divider {
            mul: ((1u64 << Self::SHIFT) + n as u64 / 2) / n as u64,
        }
    }

    fn div(self, sum: u32) -> u8 {
        ((sum as u64 * self.mul + (1u64 << (Self::SHIFT - 1))) >> Self::SHIFT).min(255) as u8
    }
}

/// The sum of the `2r+1` samples around sample 0 of `n`, with samples past either end taken
/// as the end sample. `at(i)` reads sample `i`.
fn first_window(n: usize, r: usize, at: impl Fn(usize) -> u32) -> u32 {
    let inside = r.min(n - 1);
    let mut s = (r as u32 + 1) * at(0);
    for i in 1..=inside {
        s += at(i);
    }
    s + (r - inside) as u32 * at(n - 1)
}

/// One horizontal box pass over each row of the region.
fn blur_rows(p: &mut Plane<'_>, r: Region, radius: u32, line: &mut Vec<u8>) {
    let cpp = p.cpp;
    let n = r.width() as usize;
    let rad = radius as usize;
    let div = Divider::new(2 * radius + 1);
    for y in r.y0..r.y1 {
        let row = p.span(y, r.x0, r.x1);
        line.clear();
        line.extend_from_slice(row);
        for c in 0..cpp {
            let at = |i: usize| line[i * cpp + c] as u32;
            let mut sum = first_window(n, rad, at);
            for i in 0..n {
                row[i * cpp + c] = div.div(sum);
                sum += at((i + rad + 1).min(n - 1));
                sum -= at(i.saturating_sub(rad));
            }
        }
    }
}

/// [`BLUR_PASSES`] vertical box passes over the region, all columns at once (row by row, so
/// memory is read in order): the region is copied to `scratch` for each pass.
fn blur_columns(p: &mut Plane<'_>, r: Region, radius: u32, scratch: &mut Vec<u8>) {
    let row_len = r.width() as usize * p.cpp;
    let n = r.height() as usize;
    let rad = radius as usize;
    let div = Divider::new(2 * radius + 1);
    let mut sums = vec![0u32; row_len];
    for _ in 0..BLUR_PASSES {
        scratch.clear();
        for y in r.y0..r.y1 {
            let row = p.span(y, r.x0, r.x1);
            scratch.extend_from_slice(row);
        }
        let src = |y: usize| &scratch[y * row_len..(y + 1) * row_len];
        for (j, s) in sums.iter_mut().enumerate() {
            *s = first_window(n, rad, |y| src(y)[j] as u32);
        }
        for y in 0..n {
            let out = p.span(r.y0 + y as u32, r.x0, r.x1);
            let (add, sub) = (src((y + rad + 1).min(n - 1)), src(y.saturating_sub(rad)));
            for j in 0..row_len {
                out[j] = div.div(sums[j]);
                sums[j] = sums[j] + add[j] as u32 - sub[j] as u32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(len: usize, seed: u32) -> Vec<u8> {
        let mut s = seed.wrapping_mul(2_654_435_761).max(1);
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s >> 24) as u8
            })
            .collect()
    }

    fn plane(data: &mut [u8], w: usize, h: usize, cpp: usize, stride: usize) -> Plane<'_> {
        Plane {
            data,
            stride,
            cpp,
            width: w,
            height: h,
        }
    }

    /// Every byte outside `r` equal, byte for byte, padding included.
    fn outside_unchanged(before: &[u8], after: &[u8], r: Region, stride: usize, cpp: usize) {
        for (i, (a, b)) in before.iter().zip(after).enumerate() {
            let (y, x) = (i / stride, (i % stride) / cpp);
            let inside = (r.y0 as usize..r.y1 as usize).contains(&y)
                && (r.x0 as usize..r.x1 as usize).contains(&x);
            if !inside {
                assert_eq!(a, b, "byte {i} (x {x}, y {y}) outside {r:?} changed");
            }
        }
    }

    #[test]
    fn regions_clip_to_the_frame_and_cover_partly_covered_pixels() {
        let r = Region::clipped(10.5, 2.2, 20.1, 8.0, 100, 50).unwrap();
        assert_eq!((r.x0, r.y0, r.x1, r.y1), (10, 2, 21, 8));
        let r = Region::clipped(-30.0, -5.0, 300.0, 49.5, 100, 50).unwrap();
        assert_eq!((r.x0, r.y0, r.x1, r.y1), (0, 0, 100, 50));
        // given backwards
        let r = Region::clipped(20.0, 8.0, 10.0, 2.0, 100, 50).unwrap();
        assert_eq!((r.x0, r.y0, r.x1, r.y1), (10, 2, 20, 8));
        assert_eq!(Region::clipped(100.0, 0.0, 120.0, 10.0, 100, 50), None);
        assert_eq!(Region::clipped(-9.0, 0.0, -1.0, 10.0, 100, 50), None);
        assert_eq!(Region::clipped(5.0, 5.0, 5.0, 10.0, 100, 50), None);
    }

    #[test]
    fn pixelate_makes_uniform_tiles_of_the_average_on_the_frame_grid() {
        let (w, h, cpp) = (37, 23, 4);
        let stride = w * cpp + 8; // padding must stay untouched too
        let before = noise(stride * h, 1);
        let mut data = before.clone();
        let r = Region {
            x0: 5,
            y0: 3,
            x1: 30,
            y1: 23,
        };
        apply(
            &mut plane(&mut data, w, h, cpp, stride),
            r,
            Effect::Pixelate { block: 8 },
            &mut Vec::new(),
        );
        outside_unchanged(&before, &data, r, stride, cpp);
        // tiles: x 5..8, 8..16, 16..24, 24..30; y 3..8, 8..16, 16..23
        for (tx0, tx1) in [(5, 8), (8, 16), (16, 24), (24, 30)] {
            for (ty0, ty1) in [(3, 8), (8, 16), (16, 23)] {
                for c in 0..cpp {
                    let at = |d: &[u8], x: usize, y: usize| d[y * stride + x * cpp + c] as u64;
                    let n = ((tx1 - tx0) * (ty1 - ty0)) as u64;
                    let sum: u64 = (ty0..ty1)
                        .flat_map(|y| (tx0..tx1).map(move |x| (x, y)))
                        .map(|(x, y)| at(&before, x, y))
                        .sum();
                    let want = (sum + n / 2) / n;
                    for y in ty0..ty1 {
                        for x in tx0..tx1 {
                            assert_eq!(at(&data, x, y), want, "tile {tx0},{ty0} at {x},{y}");
                        }
                    }
                }
            }
        }
    }

    /// The blur against a straightforward float model: three box passes each way with
    /// samples past the region's edges taken as the edge sample.
    fn model_blur(src: &[u8], w: usize, h: usize, cpp: usize, r: usize) -> Vec<u8> {
        let mut v: Vec<f64> = src.iter().map(|b| *b as f64).collect();
        let n = (2 * r + 1) as f64;
        // three passes along x, then three along y; (dx, dy) is the pass's direction
        for (dx, dy) in [(1isize, 0isize); 3].into_iter().chain([(0, 1); 3]) {
            let old = v.clone();
            for y in 0..h {
                for x in 0..w {
                    for c in 0..cpp {
                        let s: f64 = (-(r as isize)..=r as isize)
                            .map(|d| {
                                let xx = (x as isize + d * dx).clamp(0, w as isize - 1) as usize;
                                let yy = (y as isize + d * dy).clamp(0, h as isize - 1) as usize;
                                old[(yy * w + xx) * cpp + c]
                            })
                            .sum();
                        v[(y * w + x) * cpp + c] = (s / n).round();
                    }
                }
            }
        }
        v.into_iter().map(|f| f as u8).collect()
    }

    #[test]
    fn blur_matches_a_box_model_and_leaves_the_rest_alone() {
        for (cpp, radius) in [(1, 1), (2, 3), (3, 2), (4, 5), (4, 40)] {
            let (w, h) = (40, 30);
            let stride = w * cpp + 3;
            let before = noise(stride * h, radius as u32 + cpp as u32);
            let mut data = before.clone();
            let r = Region {
                x0: 7,
                y0: 4,
                x1: 33,
                y1: 30,
            };
            apply(
                &mut plane(&mut data, w, h, cpp, stride),
                r,
                Effect::Blur {
                    radius: radius as u32,
                },
                &mut Vec::new(),
            );
            outside_unchanged(&before, &data, r, stride, cpp);
            let (rw, rh) = (r.width() as usize, r.height() as usize);
            let region = |d: &[u8]| -> Vec<u8> {
                (r.y0 as usize..r.y1 as usize)
                    .flat_map(|y| {
                        let s = y * stride + r.x0 as usize * cpp;
                        d[s..s + rw * cpp].to_vec()
                    })
                    .collect()
            };
            let want = model_blur(&region(&before), rw, rh, cpp, radius);
            let got = region(&data);
            // rounding after each pass may differ by a level where the model hits .5 exactly
            let worst = got.iter().zip(&want).map(|(a, b)| a.abs_diff(*b)).max();
            assert!(
                worst <= Some(1),
                "cpp {cpp} radius {radius}: off by {worst:?}"
            );
            // and it is a blur: neighbours are much closer than in the noise
            let rough = |d: &[u8]| -> u64 {
                d.chunks_exact(rw * cpp)
                    .flat_map(|row| row.windows(cpp + 1).map(|p| p[0].abs_diff(p[cpp]) as u64))
                    .sum()
            };
            assert!(
                rough(&got) * 4 < rough(&region(&before)),
                "cpp {cpp} r {radius}"
            );
        }
    }

    #[test]
    fn a_flat_region_stays_flat_and_a_zero_radius_does_nothing() {
        let mut data = vec![77u8; 20 * 10];
        apply(
            &mut plane(&mut data, 20, 10, 1, 20),
            Region {
                x0: 0,
                y0: 0,
                x1: 20,
                y1: 10,
            },
            Effect::Blur { radius: 1000 },
            &mut Vec::new(),
        );
        assert!(data.iter().all(|b| *b == 77));
        let before = noise(200, 9);
        let mut data = before.clone();
        apply(
            &mut plane(&mut data, 20, 10, 1, 20),
            Region {
                x0: 0,
                y0: 0,
                x1: 20,
                y1: 10,
            },
            Effect::Blur { radius: 0 },
            &mut Vec::new(),
        );
        assert_eq!(data, before);
    }

    #[test]
    fn yuv_frames_change_only_inside_the_region_in_every_plane() {
        for format in [PixelFormat::I420, PixelFormat::Nv12] {
            let mut f = VideoFrame::new(format, 64, 48).unwrap();
            let n = f.data().len();
            f.data_mut().copy_from_slice(&noise(n, 3));
            let before = f.clone();
            let r = Region {
                x0: 8,
                y0: 6,
                x1: 40,
                y1: 30,
            };
            apply_to_frame(&mut f, r, Effect::Pixelate { block: 7 }, &mut Vec::new());
            // the block is made even (8): luma tiles of 8, chroma tiles of 4
            let y_plane = f.plane(0);
            for ty in [8, 16, 24] {
                for tx in [8, 16, 24, 32] {
                    let v = y_plane[ty * 64 + tx];
                    for y in ty..(ty + 8).min(30) {
                        for x in tx..tx + 8 {
                            assert_eq!(y_plane[y * 64 + x], v, "{format}: luma tile {tx},{ty}");
                        }
                    }
                }
            }
            outside_unchanged(before.plane(0), f.plane(0), r, 64, 1);
            let (cpp, stride) = if format == PixelFormat::I420 {
                (1, 32)
            } else {
                (2, 64)
            };
            for p in 1..f.plane_count() {
                outside_unchanged(before.plane(p), f.plane(p), r.halved(), stride, cpp);
                assert_ne!(
                    before.plane(p),
                    f.plane(p),
                    "{format}: chroma {p} unchanged"
                );
            }
        }
    }
}

/// The figures behind the recorder's cost of an effect, against a translucent full-frame
/// fill with tiny-skia (the recorder's unit), in the same run:
/// `cargo test --release -p sl-draw-core -- --ignored --nocapture effect_costs`
#[cfg(test)]
mod timing {
    use super::*;
    use std::time::Instant;

    #[test]
    #[ignore]
    fn effect_costs() {
        let (w, h) = (1920usize, 1080usize);
        let mut data = vec![200u8; w * h * 4];
        let full = Region {
            x0: 0,
            y0: 0,
            x1: w as u32,
            y1: h as u32,
        };
        let mut scratch = Vec::new();
        let time = |f: &mut dyn FnMut()| {
            let t = Instant::now();
            for _ in 0..5 {
                f();
            }
            t.elapsed().as_secs_f64() / 5.0 * 1e3
        };
        let fill = time(&mut || {
            let mut pm = tiny_skia::PixmapMut::from_bytes(&mut data, w as u32, h as u32).unwrap();
            let mut p = tiny_skia::Paint::default();
            p.set_color_rgba8(255, 0, 0, 128);
            pm.fill_rect(
                tiny_skia::Rect::from_xywh(0.0, 0.0, w as f32, h as f32).unwrap(),
                &p,
                tiny_skia::Transform::identity(),
                None,
            );
        });
        let mut data = vec![200u8; w * h * 4];
        let mut run = |e: Effect| {
            let mut plane = Plane {
                data: &mut data,
                stride: w * 4,
                cpp: 4,
                width: w,
                height: h,
            };
            apply(&mut plane, full, e, &mut scratch)
        };
        let pix = time(&mut || run(Effect::Pixelate { block: 16 }));
        let blur = time(&mut || run(Effect::Blur { radius: 20 }));
        eprintln!(
            "1080p RGBA: translucent fill {fill:.1} ms, pixelate {pix:.1} ms ({:.2} fills), blur {blur:.1} ms ({:.2} fills)",
            pix / fill,
            blur / fill
        );
    }
}
