//! From a frame to a model's input tensor: the geometry (resize, letterbox, pad to a multiple),
//! the channel order and layout, and the normalisation, in one pass over the pixels. The
//! [`Geometry`] also maps what the model finds back to the frame's pixels.

use sl_frame::{PixelFormat, VideoFrame};

use crate::Error;
use crate::card::{Channels, Layout, Resize};

/// The input size: fixed, or any multiple of `n` (a fully convolutional model).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sizing {
    Fixed { width: u32, height: u32 },
    Multiple { n: u32, max_side: Option<u32> },
}

/// Everything pre-processing needs, resolved from the card, the flags and the model.
#[derive(Clone, Debug, PartialEq)]
pub struct Prep {
    pub input: String,
    pub sizing: Sizing,
    pub resize: Resize,
    pub channels: Channels,
    pub layout: Layout,
    pub scale: f32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub pad: u8,
}

/// Where the frame lands in the input: `input = frame * scale + offset`, per axis.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Geometry {
    pub input: (u32, u32),
    /// The frame's picture inside the input: its size and top-left corner.
    pub content: (u32, u32),
    pub at: (u32, u32),
    pub frame: (u32, u32),
}

impl Geometry {
    pub fn scale(&self) -> (f32, f32) {
        (
            self.content.0 as f32 / self.frame.0 as f32,
            self.content.1 as f32 / self.frame.1 as f32,
        )
    }

    /// A point in input pixels, in frame pixels.
    pub fn to_frame(&self, x: f32, y: f32) -> (f32, f32) {
        let (sx, sy) = self.scale();
        ((x - self.at.0 as f32) / sx, (y - self.at.1 as f32) / sy)
    }

    /// A box `x1, y1, x2, y2` in input pixels, as `x, y, w, h` in frame pixels, clipped to
    /// the frame (`None` if nothing of it is left).
    pub fn box_to_frame(&self, b: [f32; 4]) -> Option<[f32; 4]> {
        let (x1, y1) = self.to_frame(b[0], b[1]);
        let (x2, y2) = self.to_frame(b[2], b[3]);
        let (fw, fh) = (self.frame.0 as f32, self.frame.1 as f32);
        let (x1, y1) = (x1.clamp(0.0, fw), y1.clamp(0.0, fh));
        let (x2, y2) = (x2.clamp(0.0, fw), y2.clamp(0.0, fh));
        (x2 > x1 && y2 > y1).then_some([x1, y1, x2 - x1, y2 - y1])
    }
}

fn round_up(v: u32, n: u32) -> u32 {
    v.div_ceil(n) * n
}

fn scaled(v: u32, s: f64) -> u32 {
    ((v as f64 * s).round() as u32).max(1)
}

impl Prep {
    /// The geometry for a frame of `width` x `height`, or why it cannot be fed.
    pub fn geometry(&self, width: u32, height: u32) -> Result<Geometry, Error> {
        let frame = (width, height);
        let g = match self.sizing {
            Sizing::Fixed {
                width: w,
                height: h,
            } => match self.resize {
                Resize::None if frame != (w, h) => {
                    return Err(Error::FrameDoesNotFit(format!(
                        "the model's input `{}` takes {w}x{h} pictures and this frame is \
                         {width}x{height}: scale it first (sl-convert -s {w}x{h}), or let sl-ml \
                         resize it (--resize stretch or letterbox)",
                        self.input
                    )));
                }
                Resize::None | Resize::Stretch => Geometry {
                    input: (w, h),
                    content: (w, h),
                    at: (0, 0),
                    frame,
                },
                Resize::Letterbox => {
                    let s = (w as f64 / width as f64).min(h as f64 / height as f64);
                    let content = (scaled(width, s).min(w), scaled(height, s).min(h));
                    Geometry {
                        input: (w, h),
                        content,
                        at: ((w - content.0) / 2, (h - content.1) / 2),
                        frame,
                    }
                }
            },
            Sizing::Multiple { n, max_side } => {
                let long = width.max(height);
                let s = match (max_side, self.resize) {
                    (Some(m), Resize::Stretch | Resize::Letterbox) if long > m => {
                        m as f64 / long as f64
                    }
                    _ => 1.0,
                };
                let content = (scaled(width, s), scaled(height, s));
                let input = (round_up(content.0, n), round_up(content.1, n));
                match self.resize {
                    // stretched a little, to the multiple (as CenterFace's own code does)
                    Resize::Stretch => Geometry {
                        input,
                        content: input,
                        at: (0, 0),
                        frame,
                    },
                    // padded on the right and at the bottom
                    Resize::Letterbox | Resize::None => Geometry {
                        input,
                        content,
                        at: (0, 0),
                        frame,
                    },
                }
            }
        };
        if g.input.0 > 16384 || g.input.1 > 16384 {
            return Err(Error::FrameDoesNotFit(format!(
                "a {width}x{height} frame makes a {}x{} input: too large",
                g.input.0, g.input.1
            )));
        }
        Ok(g)
    }

    /// The input tensor's shape for a geometry.
    pub fn shape(&self, g: &Geometry) -> [usize; 4] {
        let (w, h) = (g.input.0 as usize, g.input.1 as usize);
        let c = self.channels.count();
        match self.layout {
            Layout::Nchw => [1, c, h, w],
            Layout::Nhwc => [1, h, w, c],
        }
    }

    /// Fill `out` (resized to the tensor's length) with `frame` as the model's input.
    pub fn fill(&self, frame: &VideoFrame, g: &Geometry, out: &mut Vec<f32>) {
        let c = self.channels.count();
        let (iw, ih) = (g.input.0 as usize, g.input.1 as usize);
        let want = match (self.channels, frame.format()) {
            (Channels::Gray, _) => PixelFormat::Gray8,
            _ => PixelFormat::Rgb24,
        };
        let converted;
        let src = if frame.format() == want {
            frame
        } else {
            converted = sl_frame::convert::to_format(frame, want);
            &converted
        };
        // per channel of the tensor: which source byte, and value = byte * a + b
        let order: [usize; 3] = match self.channels {
            Channels::Bgr => [2, 1, 0],
            _ => [0, 1, 2],
        };
        let mut a = [0f32; 3];
        let mut b = [0f32; 3];
        for k in 0..c {
            a[k] = self.scale / self.std[k];
            b[k] = -self.mean[k] / self.std[k];
        }
        out.clear();
        out.resize(iw * ih * c, 0.0);
        // padding first (it is usually most of nothing)
        if g.content != g.input {
            for k in 0..c {
                let v = self.pad as f32 * a[k] + b[k];
                match self.layout {
                    Layout::Nchw => out[k * iw * ih..(k + 1) * iw * ih].fill(v),
                    Layout::Nhwc => out.iter_mut().skip(k).step_by(c).for_each(|x| *x = v),
                }
            }
        }
        let (fw, fh) = (frame.width() as usize, frame.height() as usize);
        let (cw, ch) = (g.content.0 as usize, g.content.1 as usize);
        let (ax, ay) = (g.at.0 as usize, g.at.1 as usize);
        let xs = taps(fw, cw);
        let ys = taps(fh, ch);
        let mut row = vec![0f32; fw * c];
        let mut put = |x: usize, y: usize, px: &[f32]| {
            let (x, y) = (x + ax, y + ay);
            for k in 0..c {
                let v = px[order[k]] * a[k] + b[k];
                match self.layout {
                    Layout::Nchw => out[(k * ih + y) * iw + x] = v,
                    Layout::Nhwc => out[(y * iw + x) * c + k] = v,
                }
            }
        };
        let mut px = [0f32; 3];
        for (oy, ty) in ys.iter().enumerate() {
            // vertical pass into one row of the source's width
            row.fill(0.0);
            for &(sy, w) in ty {
                let line = &src.row(0, sy)[..fw * c];
                for (acc, &v) in row.iter_mut().zip(line) {
                    *acc += v as f32 * w;
                }
            }
            // horizontal pass
            for (ox, tx) in xs.iter().enumerate() {
                px[..c].fill(0.0);
                for &(sx, w) in tx {
                    for k in 0..c {
                        px[k] += row[sx * c + k] * w;
                    }
                }
                put(ox, oy, &px);
            }
        }
    }
}

/// For each of `to` output positions, the source positions and weights that make it: a
/// triangle (bilinear) filter widened when shrinking, so a large frame scaled down is averaged
/// rather than sampled (no aliasing), as Pillow and libswscale's area-aware filters do.
type Taps = Vec<Vec<(usize, f32)>>;

fn taps(from: usize, to: usize) -> Taps {
    let ratio = from as f32 / to as f32;
    let radius = ratio.max(1.0);
    (0..to)
        .map(|i| {
            if from == to {
                return vec![(i, 1.0)];
            }
            let centre = (i as f32 + 0.5) * ratio - 0.5;
            let lo = (centre - radius).floor() as i64;
            let hi = (centre + radius).ceil() as i64;
            let mut t: Vec<(usize, f32)> = Vec::new();
            let mut sum = 0.0;
            for j in lo..=hi {
                let w = 1.0 - ((j as f32 - centre).abs() / radius);
                if w <= 0.0 {
                    continue;
                }
                let j = j.clamp(0, from as i64 - 1) as usize;
                sum += w;
                match t.iter_mut().find(|(k, _)| *k == j) {
                    Some((_, acc)) => *acc += w,
                    None => t.push((j, w)),
                }
            }
            for (_, w) in &mut t {
                *w /= sum;
            }
            t
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prep(sizing: Sizing, resize: Resize) -> Prep {
        Prep {
            input: "in".into(),
            sizing,
            resize,
            channels: Channels::Rgb,
            layout: Layout::Nchw,
            scale: 1.0,
            mean: [0.0; 3],
            std: [1.0; 3],
            pad: 0,
        }
    }

    #[test]
    fn letterbox_centres_and_maps_back() {
        let p = prep(
            Sizing::Fixed {
                width: 640,
                height: 640,
            },
            Resize::Letterbox,
        );
        let g = p.geometry(1280, 720).unwrap();
        assert_eq!((g.content, g.at), ((640, 360), (0, 140)));
        assert_eq!(g.to_frame(320.0, 320.0), (640.0, 360.0));
        let b = g.box_to_frame([0.0, 140.0, 64.0, 176.0]).unwrap();
        assert_eq!(b, [0.0, 0.0, 128.0, 72.0]);
    }

    #[test]
    fn multiples_pad_or_stretch() {
        let p = prep(
            Sizing::Multiple {
                n: 32,
                max_side: Some(640),
            },
            Resize::Letterbox,
        );
        let g = p.geometry(1920, 1080).unwrap();
        assert_eq!((g.input, g.content), ((640, 384), (640, 360)));
        let p = prep(
            Sizing::Multiple {
                n: 32,
                max_side: None,
            },
            Resize::Stretch,
        );
        let g = p.geometry(500, 300).unwrap();
        assert_eq!((g.input, g.content), ((512, 320), (512, 320)));
    }

    #[test]
    fn a_frame_that_does_not_fit_is_named() {
        let p = prep(
            Sizing::Fixed {
                width: 128,
                height: 128,
            },
            Resize::None,
        );
        let e = p.geometry(64, 64).unwrap_err().to_string();
        assert!(e.contains("`in`") && e.contains("128x128") && e.contains("64x64"));
    }

    #[test]
    fn fill_normalises_orders_and_lays_out() {
        let mut f = VideoFrame::new(PixelFormat::Rgb24, 2, 1).unwrap();
        f.data_mut().copy_from_slice(&[10, 20, 30, 40, 50, 60]);
        let mut p = prep(
            Sizing::Fixed {
                width: 2,
                height: 1,
            },
            Resize::Stretch,
        );
        p.channels = Channels::Bgr;
        p.mean = [1.0, 2.0, 3.0];
        p.std = [2.0, 2.0, 2.0];
        let g = p.geometry(2, 1).unwrap();
        let mut out = Vec::new();
        p.fill(&f, &g, &mut out);
        // NCHW, channel 0 = blue
        assert_eq!(out, vec![14.5, 29.5, 9.0, 24.0, 3.5, 18.5]);
        p.layout = Layout::Nhwc;
        p.fill(&f, &g, &mut out);
        assert_eq!(out, vec![14.5, 9.0, 3.5, 29.5, 24.0, 18.5]);
    }

    #[test]
    fn shrinking_averages() {
        let mut f = VideoFrame::new(PixelFormat::Gray8, 4, 1).unwrap();
        f.data_mut().copy_from_slice(&[0, 255, 0, 255]);
        let mut p = prep(
            Sizing::Fixed {
                width: 2,
                height: 1,
            },
            Resize::Stretch,
        );
        p.channels = Channels::Gray;
        let g = p.geometry(4, 1).unwrap();
        let mut out = Vec::new();
        p.fill(&f, &g, &mut out);
        for v in out {
            assert!((v - 127.5).abs() < 40.0, "{v}");
        }
    }
}
