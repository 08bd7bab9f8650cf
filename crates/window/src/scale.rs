//! Placing a frame in a window: fit (scaled to the window, aspect ratio kept, black bars) or
//! 1:1 (centred, cropped when the window is smaller), with nearest-neighbour sampling.
//!
//! Nearest-neighbour because a preview must keep up with live video on a busy machine: it
//! costs one lookup per output pixel (a 1080p window is a few milliseconds) and keeps sharp
//! edges sharp, which is what one wants when checking test patterns and overlays.

/// How a frame is placed in the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ScaleMode {
    /// As large as fits the window, aspect ratio kept, the rest black.
    #[default]
    Fit,
    /// One frame pixel per window pixel, centred.
    OneToOne,
}

impl ScaleMode {
    pub fn toggled(self) -> ScaleMode {
        match self {
            ScaleMode::Fit => ScaleMode::OneToOne,
            ScaleMode::OneToOne => ScaleMode::Fit,
        }
    }
}

/// Where the frame lands in the window: the destination rectangle (which may extend past the
/// window's edges in 1:1 mode) in window pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    pub x: i64,
    pub y: i64,
    pub w: i64,
    pub h: i64,
}

/// The rectangle a `src_w` x `src_h` frame occupies in a `win_w` x `win_h` window.
pub fn place(mode: ScaleMode, src_w: u32, src_h: u32, win_w: usize, win_h: usize) -> Placement {
    let (sw, sh, ww, wh) = (src_w as i64, src_h as i64, win_w as i64, win_h as i64);
    match mode {
        ScaleMode::OneToOne => Placement {
            x: (ww - sw) / 2,
            y: (wh - sh) / 2,
            w: sw,
            h: sh,
        },
        ScaleMode::Fit => {
            if sw == 0 || sh == 0 || ww == 0 || wh == 0 {
                return Placement {
                    x: 0,
                    y: 0,
                    w: 0,
                    h: 0,
                };
            }
            // compare ww/wh with sw/sh without floating point
            let (w, h) = if ww * sh <= wh * sw {
                (ww, (ww * sh / sw).max(1))
            } else {
                ((wh * sw / sh).max(1), wh)
            };
            Placement {
                x: (ww - w) / 2,
                y: (wh - h) / 2,
                w,
                h,
            }
        }
    }
}

/// Draw a packed BGRA frame (`stride` bytes a row) into `out`, a `win_w` x `win_h` buffer of
/// minifb pixels (`0x00RRGGBB`), placed as `mode` says; everything else is black.
#[allow(clippy::too_many_arguments)]
pub fn draw_bgra(
    bgra: &[u8],
    stride: usize,
    src_w: u32,
    src_h: u32,
    mode: ScaleMode,
    out: &mut Vec<u32>,
    win_w: usize,
    win_h: usize,
) {
    out.clear();
    out.resize(win_w * win_h, 0);
    let p = place(mode, src_w, src_h, win_w, win_h);
    if p.w <= 0 || p.h <= 0 {
        return;
    }
    // visible part of the destination rectangle
    let x0 = p.x.max(0);
    let x1 = (p.x + p.w).min(win_w as i64);
    let y0 = p.y.max(0);
    let y1 = (p.y + p.h).min(win_h as i64);
    if x0 >= x1 || y0 >= y1 {
        return;
    }
    // source column for each visible destination column, computed once per frame
    let cols: Vec<usize> = (x0..x1)
        .map(|x| (((x - p.x) * src_w as i64 / p.w) as usize).min(src_w as usize - 1) * 4)
        .collect();
    for y in y0..y1 {
        let sy = (((y - p.y) * src_h as i64 / p.h) as usize).min(src_h as usize - 1);
        let src = &bgra[sy * stride..sy * stride + src_w as usize * 4];
        let dst = &mut out[y as usize * win_w + x0 as usize..y as usize * win_w + x1 as usize];
        for (d, &sx) in dst.iter_mut().zip(&cols) {
            *d = u32::from_le_bytes([src[sx], src[sx + 1], src[sx + 2], 0]);
        }
    }
}

/// The window size to open for a frame: the frame's size, halved until it fits in `max`.
pub fn initial_window_size(src_w: u32, src_h: u32, max: (u32, u32)) -> (usize, usize) {
    let (mut w, mut h) = (src_w.max(1), src_h.max(1));
    while (w > max.0 || h > max.1) && w > 1 && h > 1 {
        w = w.div_ceil(2);
        h = h.div_ceil(2);
    }
    (w as usize, h as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_letterboxes_and_pillarboxes() {
        // 16:9 into 4:3: bars top and bottom
        assert_eq!(
            place(ScaleMode::Fit, 1920, 1080, 800, 600),
            Placement {
                x: 0,
                y: 75,
                w: 800,
                h: 450
            }
        );
        // 4:3 into 16:9: bars left and right
        assert_eq!(
            place(ScaleMode::Fit, 640, 480, 1280, 720),
            Placement {
                x: 160,
                y: 0,
                w: 960,
                h: 720
            }
        );
        // same aspect: exactly the window
        assert_eq!(
            place(ScaleMode::Fit, 320, 180, 640, 360),
            Placement {
                x: 0,
                y: 0,
                w: 640,
                h: 360
            }
        );
    }

    #[test]
    fn one_to_one_centres_and_crops() {
        assert_eq!(
            place(ScaleMode::OneToOne, 100, 50, 200, 100),
            Placement {
                x: 50,
                y: 25,
                w: 100,
                h: 50
            }
        );
        assert_eq!(
            place(ScaleMode::OneToOne, 400, 200, 200, 100),
            Placement {
                x: -100,
                y: -50,
                w: 400,
                h: 200
            }
        );
    }

    fn frame(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 4]) -> Vec<u8> {
        let mut v = Vec::new();
        for y in 0..h {
            for x in 0..w {
                v.extend_from_slice(&f(x, y));
            }
        }
        v
    }

    #[test]
    fn draws_scaled_with_black_bars() {
        // 2x1 frame: left blue, right red (BGRA bytes)
        let src = frame(2, 1, |x, _| {
            if x == 0 {
                [255, 0, 0, 255]
            } else {
                [0, 0, 255, 255]
            }
        });
        let mut out = Vec::new();
        draw_bgra(&src, 8, 2, 1, ScaleMode::Fit, &mut out, 4, 4);
        // placed at y 1..3, full width
        assert_eq!(&out[0..4], &[0, 0, 0, 0]);
        assert_eq!(&out[4..8], &[0x0000ff, 0x0000ff, 0xff0000, 0xff0000]);
        assert_eq!(&out[8..12], &[0x0000ff, 0x0000ff, 0xff0000, 0xff0000]);
        assert_eq!(&out[12..16], &[0, 0, 0, 0]);
    }

    #[test]
    fn draws_one_to_one_cropped() {
        let src = frame(4, 4, |x, y| [x as u8, y as u8, 0, 255]);
        let mut out = Vec::new();
        draw_bgra(&src, 16, 4, 4, ScaleMode::OneToOne, &mut out, 2, 2);
        // the centre 2x2 of the frame: x, y in 1..3 (blue = x, green = y)
        assert_eq!(out, vec![0x000101, 0x000102, 0x000201, 0x000202]);
    }

    #[test]
    fn honours_stride() {
        let mut src = frame(1, 2, |_, y| [0, 0, 100 + y as u8, 255]);
        // pad each row to 8 bytes
        src = [&src[0..4], &[9; 4], &src[4..8], &[9; 4]].concat();
        let mut out = Vec::new();
        draw_bgra(&src, 8, 1, 2, ScaleMode::OneToOne, &mut out, 1, 2);
        assert_eq!(out, vec![100 << 16, 101 << 16]);
    }

    #[test]
    fn window_size_shrinks_to_fit() {
        assert_eq!(initial_window_size(640, 360, (1280, 720)), (640, 360));
        assert_eq!(initial_window_size(3840, 2160, (1600, 900)), (960, 540));
    }
}
