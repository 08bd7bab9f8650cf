//! A 5x7 bitmap font for digits and a few signs: enough for counters and clocks without a
//! font engine.

use sl_frame::VideoFrame;
use sl_frame::ops::{Rect, fill_rect};

/// Rows of each glyph, 5 bits per row (bit 4 is the leftmost pixel).
fn glyph(c: char) -> Option<[u8; 7]> {
    Some(match c {
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        ':' => [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C],
        '-' => [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00],
        ' ' => [0; 7],
        _ => return None,
    })
}

/// Width in pixels of `text` drawn at `scale`.
pub fn text_width(text: &str, scale: i64) -> i64 {
    text.chars().count() as i64 * 6 * scale
}

/// Draw `text` with its top-left corner at (`x`, `y`), each font pixel `scale` pixels square.
/// Characters the font lacks are drawn as blanks.
pub fn draw_text(frame: &mut VideoFrame, text: &str, x: i64, y: i64, scale: i64, rgba: [u8; 4]) {
    for (i, c) in text.chars().enumerate() {
        let Some(rows) = glyph(c) else { continue };
        let gx = x + i as i64 * 6 * scale;
        for (ry, bits) in rows.iter().enumerate() {
            for bx in 0..5 {
                if bits & (0x10 >> bx) != 0 {
                    let r = Rect::new(gx + bx * scale, y + ry as i64 * scale, scale, scale);
                    fill_rect(frame, r, rgba);
                }
            }
        }
    }
}
