use thiserror::Error;

/// Why a frame could not be built or converted.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FrameError {
    #[error("invalid frame size {width}x{height}: {why}")]
    BadSize {
        width: u32,
        height: u32,
        why: &'static str,
    },
    #[error("{format} needs {expected} planes, got {got}")]
    PlaneCount {
        format: &'static str,
        expected: usize,
        got: usize,
    },
    /// A stride below the row size, or too large to be a real layout (more than 4x the row
    /// plus 4096 bytes of alignment slack).
    #[error(
        "plane {plane} of a {width}x{height} {format} frame: stride {stride} is outside {row}..={max} (the row size {row} up to 4x it plus 4096)"
    )]
    StrideOutOfRange {
        format: &'static str,
        width: u32,
        height: u32,
        plane: usize,
        stride: usize,
        row: usize,
        max: usize,
    },
    #[error(
        "a {width}x{height} {format} frame with these strides needs {expected} bytes, got {got}"
    )]
    DataSize {
        format: &'static str,
        width: u32,
        height: u32,
        expected: usize,
        got: usize,
    },
    #[error("audio chunk: {0}")]
    Audio(String),
    #[error("unknown pixel format `{0}` (known: rgba, bgra, rgb24, gray8, i420, nv12)")]
    UnknownPixelFormat(String),
    #[error(
        "cannot convert {from} {from_w}x{from_h} to {to} {to_w}x{to_h}: sizes differ (scale first)"
    )]
    SizeMismatch {
        from: &'static str,
        from_w: u32,
        from_h: u32,
        to: &'static str,
        to_w: u32,
        to_h: u32,
    },
}
