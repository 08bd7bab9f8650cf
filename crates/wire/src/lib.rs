//! streamlib's wire format, specified to the byte in `docs/wire-format.md`.
//!
//! A byte stream is a 16-byte stream header (magic and version) followed by messages. Each
//! message is a 16-byte prefix (kind, flags, stream index, header length, payload length), a
//! typed header, and a payload (pixels, samples, compressed bytes). Readers:
//!
//! - check every length against [`Limits`] before allocating, and raw frame payloads against
//!   the size their header implies, so hostile bytes give an error, never an OOM;
//! - skip message kinds they do not know, so the format can grow;
//! - tell a finished stream (it ends with [`Message::End`] for [`ALL_STREAMS`]) from a
//!   truncated one ([`WireError::Truncated`]).
//!
//! Writers send a message with one vectored write (prefix and header from a reused scratch
//! buffer, payload straight from the frame), so pixels are never copied on the way out.

mod codec;
mod error;
mod gift;
mod message;
mod read;
mod sniff;
mod splice;
mod write;

pub use error::WireError;
pub use gift::is_pipe;
pub use message::{
    AudioParams, DataMessage, Message, MessageHead, StreamInfo, StreamKind, VideoFormat,
    VideoParams,
};
pub use read::{Limits, RawMessage, Reader};
pub use sniff::describe_foreign;
pub use write::{PlaneRef, Writer};

/// The first 8 bytes of every streamlib byte stream. Like PNG's signature, the high first byte
/// and the CR LF / LF pair catch 7-bit and newline-translating channels.
pub const MAGIC: [u8; 8] = *b"\x89SLV\r\n\x1a\n";
/// The version this crate writes and reads.
pub const VERSION: u16 = 1;
/// Size of the stream header.
pub const STREAM_HEADER_LEN: usize = 16;
/// Size of every message prefix.
pub const PREFIX_LEN: usize = 16;
/// The stream index an end-of-stream message uses to end the whole byte stream.
pub const ALL_STREAMS: u16 = 0xFFFF;

/// Message kinds (the first byte of a message prefix).
pub mod kind {
    pub const STREAM_INFO: u8 = 0x01;
    pub const VIDEO: u8 = 0x02;
    pub const PACKET: u8 = 0x03;
    pub const AUDIO: u8 = 0x04;
    pub const DATA: u8 = 0x05;
    pub const END: u8 = 0x06;
}

/// Message flags (the second byte of a message prefix).
pub mod flags {
    /// The frame is a keyframe (always set for raw video and audio).
    pub const KEYFRAME: u8 = 0x01;
}
