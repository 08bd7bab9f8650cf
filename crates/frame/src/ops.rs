//! Simple drawing on frames of any pixel format: fills of rectangles with a colour.
//! Used by test patterns and anything that needs a solid area without converting to RGBA.

use crate::convert::rgb_to_yuv;
use crate::{PixelFormat, VideoFrame};

/// A rectangle in pixels; clipped to the frame when drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    pub x: i64,
    pub y: i64,
    pub w: i64,
    pub h: i64,
}

impl Rect {
    pub const fn new(x: i64, y: i64, w: i64, h: i64) -> Rect {
        Rect { x, y, w, h }
    }
}

/// The bytes one pixel of `rgba` takes in `frame`'s format: (per-plane values).
/// For YUV, index 0 is Y, 1 is U, 2 is V.
fn encode_pixel(frame: &VideoFrame, rgba: [u8; 4]) -> [u8; 4] {
    let [r, g, b, a] = rgba;
    match frame.format() {
        PixelFormat::Rgba => [r, g, b, a],
        PixelFormat::Bgra => [b, g, r, a],
        PixelFormat::Rgb24 => [r, g, b, 0],
        PixelFormat::Gray8 | PixelFormat::I420 | PixelFormat::Nv12 => {
            let [y, u, v] = rgb_to_yuv(frame.color, r, g, b);
            [y, u, v, 0]
        }
    }
}

/// Fill the whole frame with one colour.
pub fn fill(frame: &mut VideoFrame, rgba: [u8; 4]) {
    let (w, h) = (frame.width() as i64, frame.height() as i64);
    fill_rect(frame, Rect::new(0, 0, w, h), rgba);
}

/// Fill `rect` (clipped to the frame) with an opaque colour. For 4:2:0 formats the chroma of
/// every 2x2 block the rectangle touches is set, so edges at odd positions bleed by one pixel.
pub fn fill_rect(frame: &mut VideoFrame, rect: Rect, rgba: [u8; 4]) {
    let (fw, fh) = (frame.width() as i64, frame.height() as i64);
    let x0 = rect.x.clamp(0, fw) as usize;
    let y0 = rect.y.clamp(0, fh) as usize;
    let x1 = (rect.x.saturating_add(rect.w)).clamp(0, fw) as usize;
    let y1 = (rect.y.saturating_add(rect.h)).clamp(0, fh) as usize;
    if x0 >= x1 || y0 >= y1 {
        return;
    }
    let px = encode_pixel(frame, rgba);
    match frame.format() {
        PixelFormat::Rgba | PixelFormat::Bgra | PixelFormat::Rgb24 => {
            let bpp = frame.format().packed_bytes_per_pixel().unwrap_or(4);
            for y in y0..y1 {
                let row = &mut frame.row_mut(0, y)[x0 * bpp..x1 * bpp];
                for chunk in row.chunks_exact_mut(bpp) {
                    chunk.copy_from_slice(&px[..bpp]);
                }
            }
        }
        PixelFormat::Gray8 => {
            for y in y0..y1 {
                frame.row_mut(0, y)[x0..x1].fill(px[0]);
            }
        }
        PixelFormat::I420 | PixelFormat::Nv12 => {
            for y in y0..y1 {
                frame.row_mut(0, y)[x0..x1].fill(px[0]);
            }
            let (cx0, cx1) = (x0 / 2, x1.div_ceil(2));
            for cy in y0 / 2..y1.div_ceil(2) {
                if frame.format() == PixelFormat::I420 {
                    frame.row_mut(1, cy)[cx0..cx1].fill(px[1]);
                    frame.row_mut(2, cy)[cx0..cx1].fill(px[2]);
                } else {
                    for pair in frame.row_mut(1, cy)[cx0 * 2..cx1 * 2].chunks_exact_mut(2) {
                        pair[0] = px[1];
                        pair[1] = px[2];
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::to_format;
    use crate::format::ALL_PIXEL_FORMATS;

    #[test]
    fn fill_rect_lands_where_asked_in_every_format() {
        for f in ALL_PIXEL_FORMATS {
            let mut frame = VideoFrame::new(f, 16, 8).unwrap();
            fill(&mut frame, [0, 0, 0, 255]);
            fill_rect(&mut frame, Rect::new(4, 2, 4, 4), [255, 255, 255, 255]);
            fill_rect(&mut frame, Rect::new(-10, -10, 5, 5), [255, 0, 0, 255]); // clipped away
            let rgba = to_format(&frame, PixelFormat::Rgba);
            let at = |x: usize, y: usize| rgba.row(0, y)[x * 4];
            assert!(at(5, 3) > 250, "{f}: inside is white");
            assert!(at(0, 0) < 5, "{f}: outside is black");
            assert!(at(12, 7) < 5, "{f}: outside is black");
        }
    }
}
