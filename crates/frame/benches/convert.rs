//! Conversion kernels at 1080p: `cargo bench -p sl-frame --bench convert`.
//! Prints milliseconds per frame for each pair (no external harness, so it builds in seconds).

#![allow(clippy::print_stdout)] // a benchmark reports on stdout

use std::time::Instant;

use sl_frame::convert::convert;
use sl_frame::{PixelFormat, VideoFrame};

fn main() {
    let (w, h) = (1920, 1080);
    let pairs = [
        (PixelFormat::I420, PixelFormat::Rgba),
        (PixelFormat::Rgba, PixelFormat::I420),
        (PixelFormat::Nv12, PixelFormat::Rgba),
        (PixelFormat::Rgba, PixelFormat::Nv12),
        (PixelFormat::Bgra, PixelFormat::Rgba),
        (PixelFormat::Rgb24, PixelFormat::Rgba),
        (PixelFormat::I420, PixelFormat::Nv12),
    ];
    for (from, to) in pairs {
        let mut src = VideoFrame::new(from, w, h).unwrap();
        for (i, b) in src.data_mut().iter_mut().enumerate() {
            *b = (i * 7 % 251) as u8;
        }
        let mut dst = VideoFrame::new(to, w, h).unwrap();
        convert(&src, &mut dst).unwrap();
        let n = 30;
        let t = Instant::now();
        for _ in 0..n {
            convert(&src, &mut dst).unwrap();
        }
        let ms = t.elapsed().as_secs_f64() * 1000.0 / n as f64;
        println!(
            "{from:>6} -> {to:<6} {ms:7.2} ms/frame ({:6.1} fps)",
            1000.0 / ms
        );
    }
}
