//! Camera buffers to wire frames.
//!
//! Each layout goes to the wire format closest to it, so nothing is converted twice:
//! YUYV (4:2:2) to I420 (its chroma averaged over row pairs, as FFmpeg does), NV12 as it is,
//! GRAY to gray8, RGB/BGR to rgb24, MJPEG decoded (zune-jpeg) to rgb24. A buffer whose size
//! does not match its mode (a truncated USB transfer) is an error, never a panic.

use sl_frame::{ColorInfo, PixelFormat, VideoFrame};

use crate::mode::FourCc;

/// A frame as the camera delivered it.
#[derive(Clone)]
pub struct RawFrame {
    pub fourcc: FourCc,
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
    /// When the driver captured it (wall clock, ns since the Unix epoch), if it says.
    pub timestamp_ns: Option<i64>,
}

impl std::fmt::Debug for RawFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawFrame")
            .field("fourcc", &self.fourcc)
            .field("size", &(self.width, self.height))
            .field("bytes", &self.data.len())
            .field("timestamp_ns", &self.timestamp_ns)
            .finish()
    }
}

/// Why a buffer could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("a {fourcc} {width}x{height} frame needs {expected} bytes, the camera gave {got}")]
    Size {
        fourcc: FourCc,
        width: u32,
        height: u32,
        expected: usize,
        got: usize,
    },
    #[error("bad JPEG from the camera: {0}")]
    Jpeg(String),
    #[error("the JPEG is {got_w}x{got_h}, the mode says {width}x{height}")]
    JpegSize {
        width: u32,
        height: u32,
        got_w: u32,
        got_h: u32,
    },
    #[error(transparent)]
    Frame(#[from] sl_frame::FrameError),
}

/// The wire format a layout decodes to.
pub fn native_format(fourcc: FourCc) -> PixelFormat {
    match fourcc {
        FourCc::Yuyv => PixelFormat::I420,
        FourCc::Nv12 => PixelFormat::Nv12,
        FourCc::Gray => PixelFormat::Gray8,
        FourCc::Rgb24 | FourCc::Bgr24 | FourCc::Mjpeg => PixelFormat::Rgb24,
    }
}

/// Where decoded frames live: on the heap, or each in pages of its own that a writer hands
/// to a pipe without a copy (`sl_frame::pages`, `sl_wire`'s `write_video_owned`). Frames
/// under `sl_frame::pages::PAGED_FROM` stay on the heap either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Memory {
    #[default]
    Heap,
    Paged,
}

impl Memory {
    /// A frame to fill: paged if asked and big enough, else `None` (the caller's heap path).
    fn paged(self, format: PixelFormat, w: u32, h: u32) -> Option<VideoFrame> {
        match self {
            Memory::Paged => VideoFrame::new_paged(format, w, h, 0),
            Memory::Heap => None,
        }
    }

    /// A packed frame holding a copy of `bytes` (exactly its size).
    fn copy(
        self,
        format: PixelFormat,
        w: u32,
        h: u32,
        bytes: &[u8],
    ) -> Result<VideoFrame, DecodeError> {
        match self.paged(format, w, h) {
            Some(mut f) if f.data().len() == bytes.len() => {
                f.data_mut().copy_from_slice(bytes);
                Ok(f)
            }
            _ => Ok(VideoFrame::from_packed(format, w, h, bytes.to_vec())?),
        }
    }
}

/// Decode `raw` into a frame of [`native_format`], in `memory`.
pub fn decode(raw: &RawFrame, memory: Memory) -> Result<VideoFrame, DecodeError> {
    let (w, h) = (raw.width, raw.height);
    if let Some(expected) = raw.fourcc.frame_size(w, h) {
        // Some drivers pad the buffer past the image: accept more, never less.
        if raw.data.len() < expected {
            return Err(DecodeError::Size {
                fourcc: raw.fourcc,
                width: w,
                height: h,
                expected,
                got: raw.data.len(),
            });
        }
    }
    let data = &raw.data;
    let frame = match raw.fourcc {
        FourCc::Yuyv => yuyv_to_i420(data, w, h, memory)?,
        FourCc::Nv12 => {
            let n = FourCc::Nv12.frame_size(w, h).expect("raw layout");
            // NV12 from V4L2 has a chroma row of width rounded up to even
            let mut f = memory.copy(PixelFormat::Nv12, w, h, &data[..n])?;
            f.color = ColorInfo::BT601_LIMITED;
            f
        }
        FourCc::Gray => memory.copy(PixelFormat::Gray8, w, h, &data[..(w * h) as usize])?,
        FourCc::Rgb24 => memory.copy(PixelFormat::Rgb24, w, h, &data[..(w * h * 3) as usize])?,
        FourCc::Bgr24 => {
            let mut f = memory.copy(PixelFormat::Rgb24, w, h, &data[..(w * h * 3) as usize])?;
            for px in f.data_mut().chunks_exact_mut(3) {
                px.swap(0, 2);
            }
            f
        }
        FourCc::Mjpeg => mjpeg_to_rgb24(data, w, h, memory)?,
    };
    Ok(frame)
}

fn yuyv_to_i420(data: &[u8], w: u32, h: u32, memory: Memory) -> Result<VideoFrame, DecodeError> {
    let mut f = match memory.paged(PixelFormat::I420, w, h) {
        Some(f) => f,
        None => VideoFrame::new(PixelFormat::I420, w, h)?,
    };
    f.color = ColorInfo::BT601_LIMITED;
    let (w, h) = (w as usize, h as usize);
    let src_stride = w.div_ceil(2) * 4;
    let row = |y: usize| &data[y * src_stride..(y + 1) * src_stride];
    for y in 0..h {
        let src = row(y);
        let dst = f.row_mut(0, y);
        for (x, d) in dst[..w].iter_mut().enumerate() {
            *d = src[(x / 2) * 4 + (x % 2) * 2];
        }
    }
    let cw = w.div_ceil(2);
    for cy in 0..h.div_ceil(2) {
        let a = row(2 * cy);
        let b = row((2 * cy + 1).min(h - 1));
        for (plane, off) in [(1, 1), (2, 3)] {
            let dst = f.row_mut(plane, cy);
            for (cx, d) in dst[..cw].iter_mut().enumerate() {
                let i = cx * 4 + off;
                *d = (a[i] as u16 + b[i] as u16).div_ceil(2) as u8;
            }
        }
    }
    Ok(f)
}

fn mjpeg_to_rgb24(data: &[u8], w: u32, h: u32, memory: Memory) -> Result<VideoFrame, DecodeError> {
    use zune_jpeg::JpegDecoder;
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;

    let jpeg = |e: zune_jpeg::errors::DecodeErrors| DecodeError::Jpeg(e.to_string());
    let opts = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut dec = JpegDecoder::new_with_options(data, opts);
    dec.decode_headers().map_err(jpeg)?;
    let (gw, gh) = dec
        .info()
        .map(|i| (i.width as u32, i.height as u32))
        .ok_or_else(|| DecodeError::Jpeg("no image header".into()))?;
    if (gw, gh) != (w, h) {
        return Err(DecodeError::JpegSize {
            width: w,
            height: h,
            got_w: gw,
            got_h: gh,
        });
    }
    // straight into the frame's own pages when it has them
    if let Some(mut f) = memory.paged(PixelFormat::Rgb24, w, h)
        && dec.output_buffer_size() == Some(f.data().len())
    {
        dec.decode_into(f.data_mut()).map_err(jpeg)?;
        return Ok(f);
    }
    let pixels = dec.decode().map_err(jpeg)?;
    Ok(VideoFrame::from_packed(PixelFormat::Rgb24, w, h, pixels)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(fourcc: FourCc, w: u32, h: u32, data: Vec<u8>) -> RawFrame {
        RawFrame {
            fourcc,
            width: w,
            height: h,
            data,
            timestamp_ns: None,
        }
    }

    #[test]
    fn yuyv_becomes_i420() {
        // 4x2: row 0 Y 10 20 30 40, U 100 V 200 / U 110 V 210; row 1 Y 50.., U 120 V 220 ..
        let data = vec![
            10, 100, 20, 200, 30, 110, 40, 210, //
            50, 120, 60, 220, 70, 130, 80, 230,
        ];
        let f = decode(&raw(FourCc::Yuyv, 4, 2, data), Memory::Heap).unwrap();
        assert_eq!(f.format(), PixelFormat::I420);
        assert_eq!(f.plane(0), &[10, 20, 30, 40, 50, 60, 70, 80]);
        assert_eq!(f.plane(1), &[110, 120]);
        assert_eq!(f.plane(2), &[210, 220]);
    }

    #[test]
    fn yuyv_odd_height() {
        let data = [16, 128, 16, 128].repeat(3);
        let f = decode(&raw(FourCc::Yuyv, 2, 3, data), Memory::Heap).unwrap();
        assert_eq!((f.width(), f.height()), (2, 3));
        assert_eq!(f.plane(1), &[128, 128]);
    }

    #[test]
    fn bgr_is_swapped() {
        let f = decode(&raw(FourCc::Bgr24, 1, 1, vec![1, 2, 3]), Memory::Heap).unwrap();
        assert_eq!(f.data(), &[3, 2, 1]);
    }

    #[test]
    fn short_buffers_are_errors() {
        let e = decode(&raw(FourCc::Yuyv, 4, 2, vec![0; 10]), Memory::Heap).unwrap_err();
        assert!(e.to_string().contains("needs 16 bytes"), "{e}");
        // padded buffers are fine
        assert!(decode(&raw(FourCc::Gray, 2, 2, vec![0; 6]), Memory::Heap).is_ok());
    }

    #[test]
    fn garbage_jpeg_is_an_error() {
        assert!(
            decode(
                &raw(FourCc::Mjpeg, 2, 2, vec![0xff, 0xd8, 1, 2, 3]),
                Memory::Heap
            )
            .is_err()
        );
        assert!(decode(&raw(FourCc::Mjpeg, 2, 2, vec![]), Memory::Heap).is_err());
    }

    #[test]
    fn real_jpeg_decodes() {
        // 16x8, left half red, right half blue, made with ImageMagick
        let jpeg = include_bytes!("../tests/data/red-blue-16x8.jpg");
        let f = decode(&raw(FourCc::Mjpeg, 16, 8, jpeg.to_vec()), Memory::Heap).unwrap();
        let px = |x: usize| &f.row(0, 4)[x * 3..x * 3 + 3];
        assert!(px(2)[0] > 200 && px(2)[2] < 60, "{:?}", px(2));
        assert!(px(13)[2] > 200 && px(13)[0] < 60, "{:?}", px(13));
        let e = decode(&raw(FourCc::Mjpeg, 8, 8, jpeg.to_vec()), Memory::Heap).unwrap_err();
        assert!(e.to_string().contains("16x8"), "{e}");
    }

    /// Frames decoded into pages of their own carry the same pixels as heap frames, for every
    /// layout, and are paged where they are big enough (a small one stays on the heap).
    #[test]
    fn paged_frames_match_heap_frames() {
        let noise = |n: usize| -> Vec<u8> {
            let mut x = 0x9e37_79b9_u32;
            (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect()
        };
        let jpeg = include_bytes!("../tests/data/testsrc-1280x720.jpg");
        let cases = [
            (FourCc::Yuyv, 1280, 720, noise(1280 * 720 * 2), true),
            (FourCc::Nv12, 1280, 720, noise(1280 * 720 * 3 / 2), true),
            (FourCc::Gray, 1920, 1080, noise(1920 * 1080), true),
            (FourCc::Rgb24, 1280, 720, noise(1280 * 720 * 3), true),
            (FourCc::Bgr24, 1280, 720, noise(1280 * 720 * 3), true),
            (FourCc::Mjpeg, 1280, 720, jpeg.to_vec(), true),
            (FourCc::Nv12, 320, 240, noise(320 * 240 * 3 / 2), false),
        ];
        for (fourcc, w, h, data, big) in cases {
            let heap = decode(&raw(fourcc, w, h, data.clone()), Memory::Heap).unwrap();
            let paged = decode(&raw(fourcc, w, h, data), Memory::Paged).unwrap();
            assert!(!heap.is_paged(), "{fourcc}");
            assert_eq!(paged.is_paged(), big, "{fourcc} {w}x{h}");
            assert_eq!(
                (paged.format(), paged.width(), paged.height(), paged.color),
                (heap.format(), heap.width(), heap.height(), heap.color),
                "{fourcc}"
            );
            assert!(paged.data() == heap.data(), "{fourcc}: pixels differ");
        }
    }
}
