//! Single messages over byte buffers (`bytes::Buf` / `bytes::BufMut`), for transports that
//! frame messages themselves: one message per QUIC stream or datagram, say. The bytes are the
//! same as the io [`crate::Reader`] and [`crate::Writer`] read and write, and the same bounds
//! are checked before anything is allocated.
//!
//! A buffer that stops inside a message is [`WireError::Short`] (with how many more bytes the
//! message needs), so a caller that reassembles a byte stream can wait for more. Nothing is
//! consumed from the buffer then, as long as its first chunk holds the 16-byte prefix (always
//! so for `&[u8]`, `Bytes` and `BytesMut`).

use bytes::{Buf, BufMut};

use crate::codec::Enc;
use crate::message::encode_header;
use crate::read::{check_payload_len, parse_prefix};
use crate::{
    Limits, MAGIC, Message, MessageHead, PREFIX_LEN, STREAM_HEADER_LEN, VERSION, WireError,
};

/// Put the 16-byte stream header (magic and version) that starts every byte stream.
pub fn encode_stream_header(buf: &mut impl BufMut) {
    let mut h = [0u8; STREAM_HEADER_LEN];
    h[..8].copy_from_slice(&MAGIC);
    h[8..10].copy_from_slice(&VERSION.to_le_bytes());
    buf.put_slice(&h);
}

/// Take and check a stream header: [`WireError::NotAStream`] (naming what the bytes look like)
/// or [`WireError::UnsupportedVersion`] if it is not one this version reads.
pub fn decode_stream_header(buf: &mut impl Buf) -> Result<(), WireError> {
    if buf.remaining() < STREAM_HEADER_LEN {
        return Err(WireError::Short {
            needed: (STREAM_HEADER_LEN - buf.remaining()) as u64,
        });
    }
    let mut h = [0u8; STREAM_HEADER_LEN];
    buf.copy_to_slice(&mut h);
    if h[..8] != MAGIC {
        return Err(WireError::NotAStream(crate::describe_foreign(&h)));
    }
    let version = u16::from_le_bytes([h[8], h[9]]);
    if version != VERSION {
        return Err(WireError::UnsupportedVersion(version));
    }
    Ok(())
}

/// The size on the wire (prefix, header and payload) of the message whose prefix starts
/// `bytes`, or `None` while fewer than 16 bytes are there. Lengths are not checked against
/// any bound here: [`Message::decode_with_limits`] does that.
pub fn message_len(bytes: &[u8]) -> Option<u64> {
    let p = bytes.get(..PREFIX_LEN)?;
    let header = u32::from_le_bytes(p[4..8].try_into().expect("4 bytes")) as u64;
    let payload = u64::from_le_bytes(p[8..16].try_into().expect("8 bytes"));
    Some((PREFIX_LEN as u64 + header).saturating_add(payload))
}

impl Message {
    /// Append this message (prefix, header, payload) to `buf`. A string or metadata entry
    /// too long for the format is a [`WireError::TooLong`], and then nothing is appended.
    pub fn encode(&self, buf: &mut impl BufMut) -> Result<(), WireError> {
        let mut header = Vec::with_capacity(256);
        let (kind, flags, payload) = encode_header(&mut Enc(&mut header), self)?;
        buf.put_u8(kind);
        buf.put_u8(flags);
        buf.put_u16_le(self.stream());
        buf.put_u32_le(header.len() as u32);
        buf.put_u64_le(payload.len() as u64);
        buf.put_slice(&header);
        buf.put_slice(payload);
        Ok(())
    }

    /// The message's size on the wire, as [`Message::encode`] writes it.
    pub fn encoded_len(&self) -> Result<usize, WireError> {
        let mut header = Vec::with_capacity(256);
        let (_, _, payload) = encode_header(&mut Enc(&mut header), self)?;
        Ok(PREFIX_LEN + header.len() + payload.len())
    }

    /// Take one message from the front of `buf`, with the default [`Limits`].
    pub fn decode(buf: &mut impl Buf) -> Result<Message, WireError> {
        Self::decode_with_limits(buf, &Limits::default())
    }

    /// Take one message from the front of `buf`, checking every length against `limits`
    /// before allocating. A kind this version does not know comes back as
    /// [`Message::Unknown`], to be passed on.
    pub fn decode_with_limits(buf: &mut impl Buf, limits: &Limits) -> Result<Message, WireError> {
        let have = buf.remaining();
        if have < PREFIX_LEN {
            return Err(WireError::Short {
                needed: (PREFIX_LEN - have) as u64,
            });
        }
        let mut p = [0u8; PREFIX_LEN];
        match buf.chunk().get(..PREFIX_LEN) {
            Some(first) => p.copy_from_slice(first),
            None => buf.copy_to_slice(&mut p),
        }
        let consumed = buf.remaining() < have;
        let prefix = parse_prefix(&p, limits)?;
        let body = prefix.header_len as u64 + prefix.payload_len;
        let left = (buf.remaining() - if consumed { 0 } else { PREFIX_LEN }) as u64;
        if left < body {
            return Err(WireError::Short {
                needed: body - left,
            });
        }
        if !consumed {
            buf.advance(PREFIX_LEN);
        }
        let mut header = vec![0u8; prefix.header_len as usize];
        buf.copy_to_slice(&mut header);
        let head = MessageHead::decode(prefix.kind, prefix.flags, prefix.stream, &header)?;
        check_payload_len(prefix.kind, &head, prefix.payload_len)?;
        let mut payload = vec![0u8; prefix.payload_len as usize];
        buf.copy_to_slice(&mut payload);
        head.into_message(payload)
    }
}
