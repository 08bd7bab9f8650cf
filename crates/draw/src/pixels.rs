//! Frames as tiny-skia pixmaps: tiny-skia draws on premultiplied RGBA; streamlib frames are
//! straight-alpha RGBA, BGRA, RGB, gray or YUV.
//!
//! The common case costs no copy: an opaque packed RGBA frame *is* a premultiplied pixmap,
//! so drawing happens in the frame's own buffer. BGRA is swizzled in place. Other formats
//! are converted to RGBA and back, and only written back if something was drawn (so an
//! undrawn YUV frame passes through bit-exact).

use sl_frame::{PixelFormat, VideoFrame, convert};
use tiny_skia::PixmapMut;

/// Whether every pixel of packed RGBA/BGRA `data` has alpha 255.
pub fn is_opaque(data: &[u8]) -> bool {
    // AND of 8-byte words in 4 KiB blocks (vectorises; stops at the first block with a
    // see-through pixel). A byte-wise version took 11% of sl-draw's CPU on 1080p frames.
    const ALPHA: u64 = 0xff00_0000_ff00_0000;
    for block in data.chunks(4096) {
        let mut acc = u64::MAX;
        let mut words = block.chunks_exact(8);
        for w in &mut words {
            acc &= u64::from_le_bytes(w.try_into().expect("8 bytes"));
        }
        if acc & ALPHA != ALPHA {
            return false;
        }
        if words.remainder().chunks_exact(4).any(|px| px[3] != 255) {
            return false;
        }
    }
    true
}

/// Straight alpha to premultiplied, in place.
pub fn premultiply(data: &mut [u8]) {
    for px in data.chunks_exact_mut(4) {
        let a = px[3] as u32;
        if a != 255 {
            for c in &mut px[..3] {
                *c = ((*c as u32 * a + 127) / 255) as u8;
            }
        }
    }
}

/// Premultiplied to straight alpha, in place.
pub fn demultiply(data: &mut [u8]) {
    for px in data.chunks_exact_mut(4) {
        let a = px[3] as u32;
        if a != 255 && a != 0 {
            for c in &mut px[..3] {
                *c = ((*c as u32 * 255 + a / 2) / a).min(255) as u8;
            }
        }
    }
}

fn swap_rb(data: &mut [u8]) {
    for px in data.chunks_exact_mut(4) {
        px.swap(0, 2);
    }
}

/// Draw on a packed RGBA `frame` whose pixels are already premultiplied (for example a
/// transparent canvas in source mode), in place.
pub fn draw_premultiplied<R>(
    frame: &mut VideoFrame,
    f: impl FnOnce(&mut PixmapMut<'_>) -> Option<R>,
) -> Option<R> {
    let (w, h) = (frame.width(), frame.height());
    if frame.format() != PixelFormat::Rgba || !frame.is_packed() {
        return None;
    }
    PixmapMut::from_bytes(frame.data_mut(), w, h).and_then(|mut pm| f(&mut pm))
}

/// Draw on `frame` through `f`, which gets the frame as a premultiplied RGBA pixmap and
/// returns `Some(result)` if it drew, `None` if it left the pixmap untouched. `opaque` is
/// [`is_opaque`] of a packed RGBA/BGRA frame's data if the caller already knows it.
pub fn draw_on<R>(
    frame: &mut VideoFrame,
    opaque: Option<bool>,
    f: impl FnOnce(&mut PixmapMut<'_>) -> Option<R>,
) -> Option<R> {
    let (w, h) = (frame.width(), frame.height());
    let format = frame.format();
    let packed = frame.is_packed();
    match format {
        PixelFormat::Rgba | PixelFormat::Bgra
            if packed && opaque.unwrap_or_else(|| is_opaque(frame.data())) =>
        {
            let data = frame.data_mut();
            if format == PixelFormat::Bgra {
                swap_rb(data);
            }
            let r = PixmapMut::from_bytes(data, w, h).and_then(|mut pm| f(&mut pm));
            if format == PixelFormat::Bgra {
                swap_rb(frame.data_mut());
            }
            r
        }
        _ => {
            // A premultiplied RGBA copy, written back only if drawn on.
            let mut rgba = convert::to_format(frame, PixelFormat::Rgba).to_packed();
            let straight = rgba.data_mut();
            premultiply(straight);
            let r = PixmapMut::from_bytes(rgba.data_mut(), w, h).and_then(|mut pm| f(&mut pm))?;
            demultiply(rgba.data_mut());
            let info = std::mem::take(&mut frame.info);
            let color = frame.color;
            if convert::convert(&rgba, frame).is_err() {
                log::warn!("could not convert a drawn frame back to {}", format.name());
            }
            frame.info = info;
            frame.color = color;
            Some(r)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opacity_check() {
        let mut d = vec![255u8; 4 * 100];
        assert!(is_opaque(&d));
        d[4 * 99 + 3] = 254;
        assert!(!is_opaque(&d));
        d[4 * 99 + 3] = 255;
        d[3] = 0;
        assert!(!is_opaque(&d));
    }

    #[test]
    fn premultiply_roundtrip_is_close() {
        let mut d = vec![200, 100, 50, 128, 10, 20, 30, 255, 1, 2, 3, 0];
        premultiply(&mut d);
        assert_eq!(&d[..4], &[100, 50, 25, 128]);
        assert_eq!(&d[4..8], &[10, 20, 30, 255]);
        demultiply(&mut d);
        assert!((d[0] as i32 - 200).abs() <= 2);
    }

    #[test]
    fn undrawn_yuv_frames_are_untouched() {
        let mut f = VideoFrame::new(PixelFormat::I420, 16, 16).unwrap();
        for (i, b) in f.data_mut().iter_mut().enumerate() {
            *b = (i * 7) as u8;
        }
        let before = f.data().to_vec();
        let r: Option<()> = draw_on(&mut f, None, |_| None);
        assert!(r.is_none());
        assert_eq!(f.data(), &before[..]);
    }
}
