//! streamlib's wire format, specified to the byte in `docs/wire-format.md`.
//!
//! A byte stream is a 16-byte stream header (magic and version) followed by messages. Each
//! message is a 16-byte prefix (kind, flags, stream index, header length, payload length), a
//! typed header, and a payload (pixels, samples, compressed bytes). Readers:
//!
//! - check every length against [`Limits`] before allocating, and raw frame payloads against
//!   the size their header implies, so hostile bytes give an error, never an OOM;
//! - keep message kinds they do not know ([`Message::Unknown`]) so filters pass them on
//!   untouched, and the format can grow;
//! - tell a finished stream (it ends with [`Message::End`] for [`ALL_STREAMS`]) from a
//!   truncated one ([`WireError::Truncated`]).
//!
//! Writers send a message with one vectored write (prefix and header from a reused scratch
//! buffer, payload straight from the frame), so pixels are never copied on the way out. A
//! string or metadata entry too long for the format is a [`WireError::TooLong`] before
//! anything is written, never a silent cut.
//!
//! Beside the io [`Reader`] and [`Writer`], single messages are encoded into and decoded from
//! byte buffers ([`Message::encode`], [`Message::decode`] over `bytes::BufMut` / `bytes::Buf`),
//! for transports that frame messages themselves (QUIC streams and datagrams).

mod buf;
mod codec;
mod error;
mod gift;
mod message;
mod read;
mod sniff;
mod splice;
mod write;

pub use buf::{decode_stream_header, encode_stream_header, message_len};
pub use error::WireError;
pub use gift::is_pipe;
pub use message::{
    AudioParams, DataMessage, Message, MessageHead, StreamInfo, StreamKind, UnknownHead,
    UnknownMessage, VideoFormat, VideoParams,
};
pub use read::{Limits, OwnedRaw, RawMessage, Reader};
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

/// The message kinds this version knows (the first byte of a message prefix). Others are
/// carried as [`Message::Unknown`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    StreamInfo = 0x01,
    Video = 0x02,
    Packet = 0x03,
    Audio = 0x04,
    Data = 0x05,
    End = 0x06,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::StreamInfo,
        Kind::Video,
        Kind::Packet,
        Kind::Audio,
        Kind::Data,
        Kind::End,
    ];

    /// The kind with this wire code, if this version knows it.
    pub fn from_code(code: u8) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| *k as u8 == code)
    }

    pub fn code(self) -> u8 {
        self as u8
    }

    /// The name docs/wire-format.md uses, in lower case (`stream-info`, `video`...).
    pub fn name(self) -> &'static str {
        match self {
            Kind::StreamInfo => "stream-info",
            Kind::Video => "video",
            Kind::Packet => "packet",
            Kind::Audio => "audio",
            Kind::Data => "data",
            Kind::End => "end",
        }
    }
}

/// Message kind codes, as bytes (the same values as [`Kind`]).
pub mod kind {
    use crate::Kind;
    pub const STREAM_INFO: u8 = Kind::StreamInfo as u8;
    pub const VIDEO: u8 = Kind::Video as u8;
    pub const PACKET: u8 = Kind::Packet as u8;
    pub const AUDIO: u8 = Kind::Audio as u8;
    pub const DATA: u8 = Kind::Data as u8;
    pub const END: u8 = Kind::End as u8;
}

/// Message flags (the second byte of a message prefix).
pub mod flags {
    /// The frame is a keyframe (always set for raw video and audio).
    pub const KEYFRAME: u8 = 0x01;
}
