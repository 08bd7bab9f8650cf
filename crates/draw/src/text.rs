//! Text layout with fontdue: lines split on `\n`, advances with kerning, alignment.

use fontdue::Font;

use crate::record::{Align, Baseline};

/// The size of a piece of text, as `canvas.measure_text` returns it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Measure {
    /// Width of the widest line.
    pub width: f32,
    /// Height from the top of the first line (ascent) to the bottom of the last (descent).
    pub height: f32,
    /// Distance from the baseline up to the top of the tallest glyphs (positive).
    pub ascent: f32,
    /// Distance from the baseline down to the lowest glyphs (positive).
    pub descent: f32,
    /// Distance between the baselines of two lines.
    pub line_height: f32,
    pub lines: usize,
}

/// One laid-out line: glyph indices with their x offsets from the line start.
#[derive(Debug, Default)]
pub struct Line {
    pub glyphs: Vec<(u16, f32)>,
    pub width: f32,
}

fn metrics(font: &Font, size: f32) -> (f32, f32, f32) {
    match font.horizontal_line_metrics(size) {
        Some(m) => (m.ascent, -m.descent, m.new_line_size),
        None => (size * 0.8, size * 0.2, size * 1.2),
    }
}

/// Lay out `text` at `size` pixels.
pub fn layout(font: &Font, text: &str, size: f32) -> Vec<Line> {
    text.split('\n')
        .map(|line| {
            let mut out = Line::default();
            let mut x = 0.0;
            let mut prev: Option<u16> = None;
            for c in line.chars() {
                let g = font.lookup_glyph_index(c);
                if let Some(p) = prev {
                    x += font.horizontal_kern_indexed(p, g, size).unwrap_or(0.0);
                }
                out.glyphs.push((g, x));
                x += font.metrics_indexed(g, size).advance_width;
                prev = Some(g);
            }
            out.width = x;
            out
        })
        .collect()
}

pub fn measure(font: &Font, text: &str, size: f32) -> Measure {
    let lines = layout(font, text, size);
    let (ascent, descent, line_height) = metrics(font, size);
    let n = lines.len().max(1);
    Measure {
        width: lines.iter().map(|l| l.width).fold(0.0, f32::max),
        height: ascent + descent + (n - 1) as f32 * line_height,
        ascent,
        descent,
        line_height,
        lines: n,
    }
}

/// Where each line starts: `(line, x, baseline_y)` for text placed at `(x, y)`.
pub fn place<'a>(
    font: &Font,
    lines: &'a [Line],
    size: f32,
    x: f32,
    y: f32,
    align: Align,
    baseline: Baseline,
) -> impl Iterator<Item = (&'a Line, f32, f32)> {
    let (ascent, descent, lh) = metrics(font, size);
    let n = lines.len().max(1) as f32;
    let block = ascent + descent + (n - 1.0) * lh;
    let first = match baseline {
        Baseline::Top => y + ascent,
        Baseline::Alphabetic => y,
        Baseline::Middle => y - block / 2.0 + ascent,
        Baseline::Bottom => y - descent - (n - 1.0) * lh,
    };
    lines.iter().enumerate().map(move |(i, l)| {
        let lx = match align {
            Align::Left => x,
            Align::Center => x - l.width / 2.0,
            Align::Right => x - l.width,
        };
        (l, lx, first + i as f32 * lh)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_grow_with_text_and_lines() {
        let font = Font::from_bytes(dejavu::sans::regular(), Default::default()).unwrap();
        let a = measure(&font, "Hi", 20.0);
        let b = measure(&font, "Hi there", 20.0);
        assert!(b.width > a.width && a.width > 10.0);
        let two = measure(&font, "Hi\nthere", 20.0);
        assert_eq!(two.lines, 2);
        assert!(two.height > a.height + 15.0);
        assert_eq!(measure(&font, "", 20.0).width, 0.0);
    }
}
