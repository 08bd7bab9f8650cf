//! Test patterns, rendered straight into frames of any pixel format.
//!
//! The static part of a pattern is rendered once (in RGBA, then converted to the target
//! format); each frame copies it and draws the moving parts with format-aware fills, so a
//! 1080p pattern costs about one memcpy per frame.

pub mod colours;
mod font;

use std::fmt;
use std::str::FromStr;

use sl_frame::convert::to_format;
use sl_frame::ops::{Rect, fill, fill_rect};
use sl_frame::{PixelFormat, VideoFrame};

pub use font::{draw_text, text_width};

/// Which pattern to draw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// Seven 75% colour bars (white, yellow, cyan, green, magenta, red, blue), as SMPTE.
    Bars,
    /// Red rising left to right, green top to bottom, blue constant.
    Gradient,
    /// A white box bouncing across a dark grey field, with the frame counter.
    Box,
    /// The frame number and the stream time (HH:MM:SS.mmm) in large digits.
    Counter,
    /// Random pixels, different every frame.
    Noise,
    /// One colour (`--color`).
    Solid,
}

pub const PATTERNS: [(&str, Pattern); 6] = [
    ("bars", Pattern::Bars),
    ("gradient", Pattern::Gradient),
    ("box", Pattern::Box),
    ("counter", Pattern::Counter),
    ("noise", Pattern::Noise),
    ("solid", Pattern::Solid),
];

impl FromStr for Pattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        PATTERNS
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, p)| *p)
            .ok_or_else(|| {
                let names: Vec<_> = PATTERNS.iter().map(|(n, _)| *n).collect();
                format!("unknown pattern `{s}` (known: {})", names.join(", "))
            })
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = PATTERNS
            .iter()
            .find(|(_, p)| p == self)
            .map_or("?", |(n, _)| n);
        f.write_str(name)
    }
}

/// The 75% bar colours, left to right.
pub const BAR_COLOURS: [[u8; 3]; 7] = [
    [191, 191, 191],
    [191, 191, 0],
    [0, 191, 191],
    [0, 191, 0],
    [191, 0, 191],
    [191, 0, 0],
    [0, 0, 191],
];

/// Parse a colour: `#rgb`, `#rrggbb`, `#rrggbbaa` (the `#` optional for the last two), or
/// one of the 148 CSS names ([`colours::CSS_COLOURS`]; `green` is CSS's `#008000`, `lime` is
/// `#00ff00`) or `transparent`.
pub fn parse_colour(s: &str) -> Result<[u8; 4], String> {
    if let Some(c) = colours::named(s.trim()) {
        return Ok(c);
    }
    let hex = s.strip_prefix('#').unwrap_or(s);
    let bad = || {
        let near = colours::similar(s);
        let hint = if near.is_empty() {
            String::new()
        } else {
            format!(" (did you mean {}?)", near.join(", "))
        };
        format!(
            "`{s}` is not a colour{hint}: use #rrggbb, #rrggbbaa, #rgb or a CSS colour name: {}",
            colours::CSS_COLOURS
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(" ")
        )
    };
    if hex.len() == 3 && s.starts_with('#') && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        let d = |i: usize| u8::from_str_radix(&hex[i..i + 1], 16).unwrap_or(0) * 17;
        return Ok([d(0), d(1), d(2), 255]);
    }
    if !(hex.len() == 6 || hex.len() == 8) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| bad());
    Ok([
        byte(0)?,
        byte(2)?,
        byte(4)?,
        if hex.len() == 8 { byte(6)? } else { 255 },
    ])
}

/// Renders frames of one pattern at one size and format.
#[derive(Debug)]
pub struct Generator {
    pattern: Pattern,
    base: VideoFrame,
    rng: u64,
}

impl Generator {
    pub fn new(
        pattern: Pattern,
        format: PixelFormat,
        width: u32,
        height: u32,
        colour: [u8; 4],
        seed: u64,
    ) -> Result<Generator, sl_frame::FrameError> {
        let mut rgba = VideoFrame::new(PixelFormat::Rgba, width, height)?;
        let (w, h) = (width as i64, height as i64);
        match pattern {
            Pattern::Bars => {
                for (i, c) in BAR_COLOURS.iter().enumerate() {
                    let x0 = w * i as i64 / 7;
                    let x1 = w * (i as i64 + 1) / 7;
                    fill_rect(
                        &mut rgba,
                        Rect::new(x0, 0, x1 - x0, h),
                        [c[0], c[1], c[2], 255],
                    );
                }
            }
            Pattern::Gradient => {
                for y in 0..height as usize {
                    let g = (y * 255 / (height as usize - 1).max(1)) as u8;
                    for (x, px) in rgba.row_mut(0, y).chunks_exact_mut(4).enumerate() {
                        let r = (x * 255 / (width as usize - 1).max(1)) as u8;
                        px.copy_from_slice(&[r, g, 128, 255]);
                    }
                }
            }
            Pattern::Box | Pattern::Counter => fill(&mut rgba, [32, 32, 32, 255]),
            Pattern::Solid => fill(&mut rgba, colour),
            Pattern::Noise => {}
        }
        Ok(Generator {
            pattern,
            base: to_format(&rgba, format),
            rng: seed | 1,
        })
    }

    /// A frame buffer of the right format and size to render into.
    pub fn blank(&self) -> VideoFrame {
        self.base.clone()
    }

    /// Render frame `n`, at stream time `secs`, into `out` (from [`Generator::blank`]).
    pub fn render(&mut self, n: u64, secs: f64, out: &mut VideoFrame) {
        match self.pattern {
            Pattern::Noise => {
                let mut s = self.rng;
                for chunk in out.data_mut().chunks_mut(8) {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    let b = s.to_le_bytes();
                    chunk.copy_from_slice(&b[..chunk.len()]);
                }
                self.rng = s;
            }
            Pattern::Bars | Pattern::Gradient | Pattern::Solid => {
                out.data_mut().copy_from_slice(self.base.data());
            }
            Pattern::Box => {
                out.data_mut().copy_from_slice(self.base.data());
                let (w, h) = (out.width() as i64, out.height() as i64);
                let side = (h / 6).max(2);
                let bounce = |t: i64, span: i64| {
                    if span <= 0 {
                        return 0;
                    }
                    let p = t.rem_euclid(2 * span);
                    if p < span { p } else { 2 * span - p }
                };
                let step = (w / 160).max(1);
                let x = bounce(n as i64 * step, w - side);
                let y = bounce(n as i64 * step * 2 / 3, h - side);
                fill_rect(out, Rect::new(x, y, side, side), [255, 255, 255, 255]);
                let scale = (h / 80).max(1);
                draw_text(
                    out,
                    &format!("{n}"),
                    scale,
                    scale,
                    scale,
                    [255, 255, 0, 255],
                );
            }
            Pattern::Counter => {
                out.data_mut().copy_from_slice(self.base.data());
                let (w, h) = (out.width() as i64, out.height() as i64);
                let scale = (h / 40).max(1);
                let ms = (secs * 1000.0).round() as i64;
                let clock = format!(
                    "{:02}:{:02}:{:02}.{:03}",
                    ms / 3_600_000,
                    ms / 60_000 % 60,
                    ms / 1000 % 60,
                    ms % 1000
                );
                // Each text is as large as the height allows, but never wider than the frame
                // between its margins (the clock's 12 characters used to run off the right
                // edge at every size): the counter is sized for 6 digits, the clock for its
                // length.
                let margin = scale * 2;
                let fit = |chars: i64, want: i64| want.min((w - 2 * margin) / (chars * 6)).max(1);
                let count = format!("{n}");
                let count_scale = fit((count.len() as i64).max(6), scale * 2);
                draw_text(
                    out,
                    &count,
                    margin,
                    margin,
                    count_scale,
                    [255, 255, 255, 255],
                );
                let clock_scale = fit(clock.chars().count() as i64, scale);
                draw_text(out, &clock, margin, h / 2, clock_scale, [0, 255, 0, 255]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sl_frame::ALL_PIXEL_FORMATS;

    fn rgba_at(f: &VideoFrame, x: usize, y: usize) -> [u8; 4] {
        let r = to_format(f, PixelFormat::Rgba);
        r.row(0, y)[x * 4..x * 4 + 4].try_into().unwrap()
    }

    #[test]
    fn bars_are_where_they_should_be_in_every_format() {
        for format in ALL_PIXEL_FORMATS {
            let mut g = Generator::new(Pattern::Bars, format, 140, 20, [0; 4], 1).unwrap();
            let mut f = g.blank();
            g.render(0, 0.0, &mut f);
            for (i, c) in BAR_COLOURS.iter().enumerate() {
                let px = rgba_at(&f, i * 20 + 10, 10);
                let expect = if format == PixelFormat::Gray8 {
                    // gray keeps only luma
                    continue;
                } else {
                    c
                };
                for ch in 0..3 {
                    assert!(
                        (px[ch] as i32 - expect[ch] as i32).abs() <= 3,
                        "{format} bar {i}: {px:?} vs {expect:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn box_moves_and_noise_changes() {
        let mut g = Generator::new(Pattern::Box, PixelFormat::I420, 320, 180, [0; 4], 1).unwrap();
        let (mut a, mut b) = (g.blank(), g.blank());
        g.render(0, 0.0, &mut a);
        g.render(10, 0.33, &mut b);
        assert_ne!(a.data(), b.data());
        let mut n = Generator::new(Pattern::Noise, PixelFormat::Rgba, 16, 16, [0; 4], 7).unwrap();
        let (mut a, mut b) = (n.blank(), n.blank());
        n.render(0, 0.0, &mut a);
        n.render(1, 0.0, &mut b);
        assert_ne!(a.data(), b.data());
    }

    #[test]
    fn the_counter_clock_fits_the_frame_at_every_size() {
        for (w, h) in [(320, 240), (480, 270), (640, 480), (960, 540), (1280, 720)] {
            let mut g =
                Generator::new(Pattern::Counter, PixelFormat::Rgba, w, h, [0; 4], 1).unwrap();
            let mut f = g.blank();
            // the widest clock and a long counter
            g.render(123_456, 35_999.999, &mut f);
            let (mut left, mut right) = (usize::MAX, 0);
            for y in 0..h as usize {
                for (x, px) in f.row(0, y).chunks_exact(4).enumerate() {
                    if px[..3] == [0, 255, 0] {
                        left = left.min(x);
                        right = right.max(x);
                    }
                }
            }
            assert!(right > left, "{w}x{h}: no clock drawn");
            // the clock ends inside the frame, with a right margin no smaller than a pixel,
            // and its last digit is whole: it is as wide as 12 glyphs (minus the gap after
            // the last one)
            let scale = (right - left + 1 + 1) / (12 * 6 - 1);
            assert!(
                right + 1 < w as usize,
                "{w}x{h}: the clock reaches the right edge"
            );
            assert_eq!(
                (right - left + 1) as i64,
                text_width("000000000000", scale as i64) - scale as i64,
                "{w}x{h}: the clock is cut"
            );
        }
    }

    #[test]
    fn colours_parse() {
        assert_eq!(parse_colour("#ff8000").unwrap(), [255, 128, 0, 255]);
        assert_eq!(parse_colour("00ff0080").unwrap(), [0, 255, 0, 128]);
        assert_eq!(parse_colour("red").unwrap(), [255, 0, 0, 255]);
        assert!(parse_colour("#12").is_err());
        assert_eq!(parse_colour("#f80").unwrap(), [255, 136, 0, 255]);
        assert_eq!(
            parse_colour("CornflowerBlue").unwrap(),
            [100, 149, 237, 255]
        );
        let e = parse_colour("cornflower").unwrap_err();
        assert!(
            e.contains("cornflowerblue") && e.contains("rebeccapurple"),
            "{e}"
        );
        assert!("plaid".parse::<Pattern>().is_err());
    }
}
