//! Mapping between streamlib's pixel and sample formats and libav's, and copying planes
//! between [`VideoFrame`]s and libav frames.

use ffmpeg_next::format::Pixel;
use ffmpeg_next::format::Sample;
use ffmpeg_next::format::sample::Type as SampleType;
use ffmpeg_next::util::frame::Video as AvVideo;
use sl_frame::{ColorInfo, Matrix, PixelFormat, Range, SampleFormat, VideoFrame};

/// libav's pixel format for a streamlib one.
pub fn to_av_pixel(f: PixelFormat) -> Pixel {
    match f {
        PixelFormat::Rgba => Pixel::RGBA,
        PixelFormat::Bgra => Pixel::BGRA,
        PixelFormat::Rgb24 => Pixel::RGB24,
        PixelFormat::Gray8 => Pixel::GRAY8,
        PixelFormat::I420 => Pixel::YUV420P,
        PixelFormat::Nv12 => Pixel::NV12,
    }
}

/// The streamlib format with the same memory layout as `p`, if there is one. `yuvj420p` is
/// `i420` with full-range colour.
pub fn from_av_pixel(p: Pixel) -> Option<(PixelFormat, Option<Range>)> {
    Some(match p {
        Pixel::RGBA => (PixelFormat::Rgba, None),
        Pixel::BGRA => (PixelFormat::Bgra, None),
        Pixel::RGB24 => (PixelFormat::Rgb24, None),
        Pixel::GRAY8 => (PixelFormat::Gray8, None),
        Pixel::YUV420P => (PixelFormat::I420, None),
        Pixel::YUVJ420P => (PixelFormat::I420, Some(Range::Full)),
        Pixel::NV12 => (PixelFormat::Nv12, None),
        _ => return None,
    })
}

/// The wire format to emit for a decoder format the wire cannot carry: the closest one.
pub(crate) fn nearest_wire_format(p: Pixel) -> PixelFormat {
    let name = format!("{p:?}").to_ascii_lowercase();
    if name.starts_with("gray") || name.starts_with("ya") {
        PixelFormat::Gray8
    } else if name.starts_with("yuv") || name.starts_with("nv") || name.starts_with("p0") {
        PixelFormat::I420
    } else {
        PixelFormat::Rgba
    }
}

/// Colour information from libav's tags (untagged: BT.601, as swscale assumes).
pub(crate) fn color_from_av(
    space: ffmpeg_next::color::Space,
    range: ffmpeg_next::color::Range,
    format: PixelFormat,
) -> ColorInfo {
    let mut c = ColorInfo::default_for(format);
    if space == ffmpeg_next::color::Space::BT709 {
        c.matrix = Matrix::Bt709;
    }
    match range {
        ffmpeg_next::color::Range::JPEG => c.range = Range::Full,
        ffmpeg_next::color::Range::MPEG => c.range = Range::Limited,
        _ => {}
    }
    c
}

/// Copy the planes of `av` (which must be `format` at `width`x`height`) into a tightly packed
/// frame, reusing `buf`'s allocation, or if `paged` into a new paged frame (which a pipe
/// takes without a copy). A 1080p frame is a few MB: reusing the buffer avoids a
/// fresh mmap and its page faults on every frame.
pub(crate) fn frame_from_av(
    av: &AvVideo,
    format: PixelFormat,
    mut buf: Vec<u8>,
    paged: bool,
) -> Result<VideoFrame, sl_frame::FrameError> {
    let (w, h) = (av.width(), av.height());
    if paged && let Some(mut f) = VideoFrame::new_paged(format, w, h, 0) {
        let mut off = 0;
        let out = f.data_mut();
        for p in 0..format.plane_count() {
            let (row, rows) = format.plane_dims(p, w, h);
            let stride = av.stride(p);
            let data = av.data(p);
            if stride == row {
                out[off..off + row * rows].copy_from_slice(&data[..row * rows]);
                off += row * rows;
            } else {
                for y in 0..rows {
                    out[off..off + row].copy_from_slice(&data[y * stride..y * stride + row]);
                    off += row;
                }
            }
        }
        return Ok(f);
    }
    buf.clear();
    buf.reserve(format.frame_size(w, h));
    for p in 0..format.plane_count() {
        let (row, rows) = format.plane_dims(p, w, h);
        let stride = av.stride(p);
        let data = av.data(p);
        if stride == row {
            buf.extend_from_slice(&data[..row * rows]);
        } else {
            for y in 0..rows {
                buf.extend_from_slice(&data[y * stride..y * stride + row]);
            }
        }
    }
    VideoFrame::from_packed(format, w, h, buf)
}

/// Copy `f`'s visible rows into `av`, which must have the same format and size.
pub(crate) fn frame_into_av(f: &VideoFrame, av: &mut AvVideo) {
    for p in 0..f.plane_count() {
        let (row, rows) = f.plane_dims(p);
        let stride = av.stride(p);
        let dst = av.data_mut(p);
        if stride == row && f.stride(p) == row {
            dst[..row * rows].copy_from_slice(f.plane(p));
        } else {
            for y in 0..rows {
                dst[y * stride..y * stride + row].copy_from_slice(f.row(p, y));
            }
        }
    }
}

/// The wire sample format and planarity for a libav sample format.
pub(crate) fn sample_from_av(s: Sample) -> Option<(SampleFormat, bool)> {
    let (f, t) = match s {
        Sample::U8(t) => (SampleFormat::U8, t),
        Sample::I16(t) => (SampleFormat::S16, t),
        Sample::I32(t) => (SampleFormat::S32, t),
        Sample::F32(t) => (SampleFormat::F32, t),
        Sample::F64(t) => (SampleFormat::F64, t),
        _ => return None,
    };
    Some((f, t == SampleType::Planar))
}
