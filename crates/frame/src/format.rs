//! Pixel formats, their plane layout, and colour information.

use std::fmt;
use std::str::FromStr;

use crate::FrameError;

/// Largest width or height a frame may have. Bounds every allocation made from a header.
pub const MAX_DIMENSION: u32 = 16384;

/// A raw pixel layout. The names follow FFmpeg's where one exists (`rgb24`, `gray8`...), so
/// `--format` values read the same in both tools.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// 8-bit R, G, B, A, one plane.
    Rgba,
    /// 8-bit B, G, R, A, one plane (the byte order of most screen grabs).
    Bgra,
    /// 8-bit R, G, B, one plane.
    Rgb24,
    /// 8-bit luma only.
    Gray8,
    /// Planar Y, U, V with 2x2-subsampled chroma (FFmpeg's `yuv420p`).
    I420,
    /// Y plane, then one plane of interleaved U, V at 2x2 subsampling.
    Nv12,
}

/// Every pixel format, in wire-code order.
pub const ALL_PIXEL_FORMATS: [PixelFormat; 6] = [
    PixelFormat::Rgba,
    PixelFormat::Bgra,
    PixelFormat::Rgb24,
    PixelFormat::Gray8,
    PixelFormat::I420,
    PixelFormat::Nv12,
];

impl PixelFormat {
    /// The lower-case name used on command lines and in `sl-info` output.
    pub const fn name(self) -> &'static str {
        match self {
            PixelFormat::Rgba => "rgba",
            PixelFormat::Bgra => "bgra",
            PixelFormat::Rgb24 => "rgb24",
            PixelFormat::Gray8 => "gray8",
            PixelFormat::I420 => "i420",
            PixelFormat::Nv12 => "nv12",
        }
    }

    /// FFmpeg's `-pix_fmt` name for the same layout.
    pub const fn ffmpeg_name(self) -> &'static str {
        match self {
            PixelFormat::Rgba => "rgba",
            PixelFormat::Bgra => "bgra",
            PixelFormat::Rgb24 => "rgb24",
            PixelFormat::Gray8 => "gray",
            PixelFormat::I420 => "yuv420p",
            PixelFormat::Nv12 => "nv12",
        }
    }

    /// The code that identifies this format on the wire (see docs/wire-format.md).
    pub const fn wire_code(self) -> u16 {
        match self {
            PixelFormat::Rgba => 1,
            PixelFormat::Bgra => 2,
            PixelFormat::Rgb24 => 3,
            PixelFormat::Gray8 => 4,
            PixelFormat::I420 => 5,
            PixelFormat::Nv12 => 6,
        }
    }

    pub fn from_wire_code(code: u16) -> Option<Self> {
        ALL_PIXEL_FORMATS
            .into_iter()
            .find(|f| f.wire_code() == code)
    }

    pub const fn plane_count(self) -> usize {
        match self {
            PixelFormat::Rgba | PixelFormat::Bgra | PixelFormat::Rgb24 | PixelFormat::Gray8 => 1,
            PixelFormat::I420 => 3,
            PixelFormat::Nv12 => 2,
        }
    }

    /// True for the formats stored as luma plus chroma.
    pub const fn is_yuv(self) -> bool {
        matches!(self, PixelFormat::I420 | PixelFormat::Nv12)
    }

    /// Bytes per pixel of a packed single-plane format (None for planar formats).
    pub const fn packed_bytes_per_pixel(self) -> Option<usize> {
        match self {
            PixelFormat::Rgba | PixelFormat::Bgra => Some(4),
            PixelFormat::Rgb24 => Some(3),
            PixelFormat::Gray8 => Some(1),
            PixelFormat::I420 | PixelFormat::Nv12 => None,
        }
    }

    /// Width in bytes and height in rows of plane `plane` for a `width`x`height` frame.
    /// Odd sizes round chroma up, as FFmpeg does.
    pub const fn plane_dims(self, plane: usize, width: u32, height: u32) -> (usize, usize) {
        let (w, h) = (width as usize, height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        match (self, plane) {
            (PixelFormat::Rgba | PixelFormat::Bgra, 0) => (w * 4, h),
            (PixelFormat::Rgb24, 0) => (w * 3, h),
            (PixelFormat::Gray8, 0) => (w, h),
            (PixelFormat::I420 | PixelFormat::Nv12, 0) => (w, h),
            (PixelFormat::I420, 1 | 2) => (cw, ch),
            (PixelFormat::Nv12, 1) => (cw * 2, ch),
            _ => (0, 0),
        }
    }

    /// Bytes of a tightly packed frame (strides equal to row sizes), as FFmpeg's rawvideo.
    pub const fn frame_size(self, width: u32, height: u32) -> usize {
        let mut total = 0;
        let mut p = 0;
        while p < self.plane_count() {
            let (row, rows) = self.plane_dims(p, width, height);
            total += row * rows;
            p += 1;
        }
        total
    }

    /// Whether the format carries an alpha channel.
    pub const fn has_alpha(self) -> bool {
        matches!(self, PixelFormat::Rgba | PixelFormat::Bgra)
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PixelFormat {
    type Err = FrameError;

    fn from_str(s: &str) -> Result<Self, FrameError> {
        let lower = s.to_ascii_lowercase();
        Ok(match lower.as_str() {
            "rgba" => PixelFormat::Rgba,
            "bgra" => PixelFormat::Bgra,
            "rgb24" | "rgb" => PixelFormat::Rgb24,
            "gray8" | "gray" | "grey" | "y8" => PixelFormat::Gray8,
            "i420" | "yuv420p" | "yuv420" => PixelFormat::I420,
            "nv12" => PixelFormat::Nv12,
            _ => return Err(FrameError::UnknownPixelFormat(s.to_string())),
        })
    }
}

/// A compressed video codec carried in a [`crate::Packet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// H.264 in Annex B byte-stream form (start codes), SPS/PPS in band before keyframes.
    H264,
    /// One baseline JPEG image per frame.
    Jpeg,
}

impl VideoCodec {
    pub const fn name(self) -> &'static str {
        match self {
            VideoCodec::H264 => "h264",
            VideoCodec::Jpeg => "jpeg",
        }
    }
    pub const fn wire_code(self) -> u16 {
        match self {
            VideoCodec::H264 => 0x100,
            VideoCodec::Jpeg => 0x101,
        }
    }
    pub fn from_wire_code(code: u16) -> Option<Self> {
        match code {
            0x100 => Some(VideoCodec::H264),
            0x101 => Some(VideoCodec::Jpeg),
            _ => None,
        }
    }
}

impl fmt::Display for VideoCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// YUV <-> RGB matrix coefficients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Matrix {
    /// ITU-R BT.601 (SD, and what FFmpeg assumes when nothing is said).
    #[default]
    Bt601,
    /// ITU-R BT.709 (HD).
    Bt709,
}

/// Quantisation range of luma and chroma.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Range {
    /// Y in 16..=235, chroma in 16..=240 ("TV", "MPEG").
    #[default]
    Limited,
    /// 0..=255 ("PC", "JPEG").
    Full,
}

/// How luma/chroma values map to RGB. Meaningful for YUV and gray frames; ignored for RGB.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ColorInfo {
    pub matrix: Matrix,
    pub range: Range,
}

impl ColorInfo {
    pub const BT601_LIMITED: ColorInfo = ColorInfo {
        matrix: Matrix::Bt601,
        range: Range::Limited,
    };
    pub const BT709_LIMITED: ColorInfo = ColorInfo {
        matrix: Matrix::Bt709,
        range: Range::Limited,
    };

    /// What a new frame of `format` assumes: BT.601 limited for YUV (FFmpeg's default),
    /// full range for gray8 (an image's gray, 0 black to 255 white).
    pub const fn default_for(format: PixelFormat) -> ColorInfo {
        match format {
            PixelFormat::Gray8 => ColorInfo {
                matrix: Matrix::Bt601,
                range: Range::Full,
            },
            _ => ColorInfo::BT601_LIMITED,
        }
    }

    /// Wire byte: bit 0 matrix (0 BT.601, 1 BT.709), bit 1 range (0 limited, 1 full).
    pub const fn to_byte(self) -> u8 {
        (matches!(self.matrix, Matrix::Bt709) as u8)
            | ((matches!(self.range, Range::Full) as u8) << 1)
    }

    pub const fn from_byte(b: u8) -> ColorInfo {
        ColorInfo {
            matrix: if b & 1 != 0 {
                Matrix::Bt709
            } else {
                Matrix::Bt601
            },
            range: if b & 2 != 0 {
                Range::Full
            } else {
                Range::Limited
            },
        }
    }
}

/// Check a frame size is usable.
pub(crate) fn check_size(width: u32, height: u32) -> Result<(), FrameError> {
    if width == 0 || height == 0 {
        return Err(FrameError::BadSize {
            width,
            height,
            why: "width and height must be at least 1",
        });
    }
    if width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(FrameError::BadSize {
            width,
            height,
            why: "width and height must be at most 16384",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for f in ALL_PIXEL_FORMATS {
            assert_eq!(f.name().parse::<PixelFormat>().unwrap(), f);
            assert_eq!(f.ffmpeg_name().parse::<PixelFormat>().unwrap(), f);
            assert_eq!(PixelFormat::from_wire_code(f.wire_code()), Some(f));
        }
        assert!("yuv444p".parse::<PixelFormat>().is_err());
    }

    #[test]
    fn sizes_match_ffmpeg_rawvideo() {
        assert_eq!(PixelFormat::Rgba.frame_size(1920, 1080), 8_294_400);
        assert_eq!(PixelFormat::I420.frame_size(1920, 1080), 3_110_400);
        assert_eq!(PixelFormat::Nv12.frame_size(1920, 1080), 3_110_400);
        // odd sizes round chroma up: 3x3 luma + 2x2 U + 2x2 V
        assert_eq!(PixelFormat::I420.frame_size(3, 3), 17);
        assert_eq!(PixelFormat::Nv12.frame_size(3, 3), 17);
    }

    #[test]
    fn color_byte_round_trip() {
        for m in [Matrix::Bt601, Matrix::Bt709] {
            for r in [Range::Limited, Range::Full] {
                let c = ColorInfo {
                    matrix: m,
                    range: r,
                };
                assert_eq!(ColorInfo::from_byte(c.to_byte()), c);
            }
        }
    }
}
