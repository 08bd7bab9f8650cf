//! The frame model every streamlib stage shares.
//!
//! - [`VideoFrame`]: raw pixels in one of the [`PixelFormat`]s, with per-plane strides that are
//!   checked when the frame is built, so plane access can never run past the buffer.
//! - [`Packet`]: a compressed video frame (H.264, JPEG) as carried on network links.
//! - [`AudioChunk`]: raw samples, interleaved or planar.
//! - [`FrameInfo`]: the timing every frame carries (frame number, presentation timestamp in a
//!   time base, wall-clock capture time, PTP time, source id, keyframe flag) and typed
//!   [`Metadata`] such as the detections a model attached.
//!
//! `Debug` on frames prints shapes and timing, never pixel bytes.

mod audio;
pub mod convert;
mod error;
mod format;
mod info;
mod meta;
pub mod ops;
pub mod pages;
mod video;

pub use audio::{AudioChunk, SampleFormat};
pub use convert::Coeffs;
pub use error::FrameError;
pub use format::MAX_DIMENSION;
pub use format::{ALL_PIXEL_FORMATS, ColorInfo, Matrix, PixelFormat, Range, VideoCodec};
pub use info::{FrameInfo, Rational, now_ns};
pub use meta::{BBox, Metadata, Value};
pub use video::{Packet, VideoFrame};
