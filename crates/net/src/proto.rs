//! What sl-net says on a QUIC connection (after TLS), around the streamlib messages.
//!
//! 1. The dialer opens a bidirectional stream and sends a hello: magic `SLNH`, protocol
//!    version, its role (it pushes frames, or it pulls them) and the delivery policy it asks
//!    for. The acceptor answers `SLNR`, a status and a reason (why it refuses), then both
//!    leave that stream open and unused.
//! 2. The side that pushes opens one unidirectional **ordered** stream (tag 1) carrying
//!    records: `1, u64 frames_before, message` (a streamlib message exactly as on a pipe:
//!    prefix, header, payload) or `2, str reason` (the pusher's input failed: the stream is
//!    truncated), or `3, u64 session, u64 number` (a `block` sender's resume point: the
//!    message records after it are numbers `number`, `number + 1`... of the sender's session,
//!    counted across its connections, and a puller that has already passed one of them on in
//!    that session skips it; see [`crate::link::Resume`]). Every message goes there with `block`; with `latest`, video frames of
//!    streams whose frames are all keyframes instead go one per **frame stream** (tag 2):
//!    `u64 seq, u64 control_before, message`, then FIN. A frame stream is reset when a newer
//!    frame of its stream has arrived (it is stale), so a lost packet never holds up the
//!    frames behind it.
//!    With `--codec jpeg|h264` ([`crate::codec`]) a raw video frame travels as a PACKET of that
//!    codec on the same stream, whose description still says raw: a PACKET on a stream
//!    described as raw video is link-coded, and the puller decodes it back to the described
//!    format. The codec is in each PACKET's header, so nothing else is negotiated.
//! 3. Ordering for the puller: a frame is written after the first `control_before` ordered
//!    records; an ordered record after every frame stream numbered below its `frames_before`
//!    has arrived or been reset. A frame older than one already written for its stream is
//!    dropped (it is stale).
//!
//! 4. On the hello stream, after the reply, the puller reports how many ordered records it
//!    has written out to its output (a u64 each time the count grows; skipped ones count). A `latest` pusher takes the next
//!    message from its queue only while fewer than four of its ordered records are
//!    unreported, so frames that must travel in order (H.264) never pile up in the
//!    connection's buffers: the queue drops superseded ones instead.
//!
//! Every length is checked against [`sl_wire::Limits`] before anything is kept, buffers grow
//! only as bytes arrive (a lying length costs nothing), and headers are decoded by
//! `sl_wire` before the payload is read, so a hostile peer gets an error, never a panic.

use bytes::{Bytes, BytesMut};
use sl_frame::{AudioChunk, VideoFrame};
use sl_wire::{ALL_STREAMS, Limits, MessageHead, PREFIX_LEN, kind};

use crate::NetError;

pub const HELLO_MAGIC: &[u8; 4] = b"SLNH";
pub const REPLY_MAGIC: &[u8; 4] = b"SLNR";
/// 2: a PACKET on a stream described as raw video is a link-coded frame (`--codec`), which
/// the puller decodes back ([`crate::codec`]); version 1 peers would pass it on undecoded.
/// 3: the resume record (`REC_RESUME`), and reports count records written out, not handed on.
pub const PROTOCOL_VERSION: u16 = 3;

pub const TAG_ORDERED: u8 = 1;
pub const TAG_FRAME: u8 = 2;

pub const REC_MESSAGE: u8 = 1;
pub const REC_ABORT: u8 = 2;
pub const REC_RESUME: u8 = 3;

/// Application close codes.
pub mod close {
    /// The stream ended (END delivered); also a clean hang-up.
    pub const DONE: u32 = 0;
    /// Ctrl-C on the closing side.
    pub const INTERRUPTED: u32 = 1;
    /// The puller's downstream pipe closed.
    pub const DOWNSTREAM_CLOSED: u32 = 2;
    /// The peer broke the protocol.
    pub const PROTOCOL: u32 = 3;
    /// Refused after the hello (wrong role, busy).
    pub const REFUSED: u32 = 4;
    /// The pusher's input was truncated or failed.
    pub const INPUT_FAILED: u32 = 5;
    /// A newer connection from the same peer took over.
    pub const REPLACED: u32 = 6;
}

/// Which way frames flow, from the dialer's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The dialer pushes frames (`send`).
    Push = 1,
    /// The dialer pulls frames (`recv`).
    Pull = 2,
}

/// `--policy` on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WirePolicy {
    Block = 0,
    Latest = 1,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    pub version: u16,
    pub role: Role,
    pub policy: WirePolicy,
}

impl Hello {
    pub const LEN: usize = 12;

    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[..4].copy_from_slice(HELLO_MAGIC);
        b[4..6].copy_from_slice(&self.version.to_le_bytes());
        b[6] = self.role as u8;
        b[7] = self.policy as u8;
        b
    }

    pub fn decode(b: &[u8; Self::LEN]) -> Result<Hello, NetError> {
        if &b[..4] != HELLO_MAGIC {
            return Err(NetError::Protocol(
                "the peer's first bytes are not an sl-net hello".into(),
            ));
        }
        let version = u16::from_le_bytes([b[4], b[5]]);
        if version != PROTOCOL_VERSION {
            return Err(NetError::Version(version));
        }
        let role = match b[6] {
            1 => Role::Push,
            2 => Role::Pull,
            r => return Err(NetError::Protocol(format!("unknown role {r} in the hello"))),
        };
        let policy = match b[7] {
            0 => WirePolicy::Block,
            1 => WirePolicy::Latest,
            p => {
                return Err(NetError::Protocol(format!(
                    "unknown policy {p} in the hello"
                )));
            }
        };
        Ok(Hello {
            version,
            role,
            policy,
        })
    }
}

/// Longest refusal reason kept.
pub const MAX_REASON: usize = 2048;

/// A streamlib message as it travels: a summary of its header for routing, and its bytes
/// (prefix, header, payload) in one or more pieces.
#[derive(Clone)]
pub struct Msg {
    pub kind: u8,
    pub stream: u16,
    pub keyframe: bool,
    /// For frame-carrying messages.
    pub frame_number: Option<u64>,
    pub capture_time_ns: Option<i64>,
    pub parts: Vec<Bytes>,
    pub len: u64,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Msg(kind {}, stream {}, frame {:?}, {} bytes)",
            self.kind, self.stream, self.frame_number, self.len
        )
    }
}

impl Msg {
    pub fn from_head(head: &MessageHead, flags: u8, parts: Vec<Bytes>) -> Msg {
        let (kind, stream) = match head {
            MessageHead::Stream { stream, .. } => (kind::STREAM_INFO, *stream),
            MessageHead::Video { stream, .. } => (kind::VIDEO, *stream),
            MessageHead::Packet { stream, .. } => (kind::PACKET, *stream),
            MessageHead::Audio { stream, .. } => (kind::AUDIO, *stream),
            MessageHead::Data { stream, .. } => (kind::DATA, *stream),
            MessageHead::End { stream } => (kind::END, *stream),
            MessageHead::Unknown(u) => (u.kind, u.stream),
        };
        let info = head.frame_info();
        Msg {
            kind,
            stream,
            keyframe: flags & sl_wire::flags::KEYFRAME != 0,
            frame_number: info.map(|i| i.frame_number),
            capture_time_ns: info.and_then(|i| i.capture_time_ns),
            len: parts.iter().map(|p| p.len() as u64).sum(),
            parts,
        }
    }

    /// A message made here (a link-coded or decoded frame), encoded as it travels.
    pub fn from_message(m: &sl_wire::Message) -> Result<Msg, NetError> {
        let mut buf = BytesMut::with_capacity(
            m.encoded_len()
                .map_err(|e| NetError::Protocol(e.to_string()))?,
        );
        m.encode(&mut buf)
            .map_err(|e| NetError::Protocol(e.to_string()))?;
        let info = m.frame_info();
        let flags = buf[1];
        let len = buf.len() as u64;
        Ok(Msg {
            kind: m.kind_code(),
            stream: m.stream(),
            keyframe: flags & sl_wire::flags::KEYFRAME != 0,
            frame_number: info.map(|i| i.frame_number),
            capture_time_ns: info.and_then(|i| i.capture_time_ns),
            parts: vec![buf.freeze()],
            len,
        })
    }

    /// The message's header, decoded again (the prefix and header are its first part).
    pub fn head(&self) -> Result<MessageHead, NetError> {
        let first = self.parts.first().map(|p| &p[..]).unwrap_or_default();
        if first.len() < PREFIX_LEN {
            return Err(NetError::Protocol(
                "a message shorter than its prefix".into(),
            ));
        }
        let header_len = u32::from_le_bytes(first[4..8].try_into().expect("4 bytes")) as usize;
        let header = first
            .get(PREFIX_LEN..PREFIX_LEN + header_len)
            .ok_or_else(|| NetError::Protocol("a message header split across parts".into()))?;
        MessageHead::decode(first[0], first[1], self.stream, header)
            .map_err(|e| NetError::Protocol(format!("the peer sent a bad message: {e}")))
    }

    /// The payload (after the prefix and header), gathered into one piece if it came in many.
    pub fn payload(&self) -> std::borrow::Cow<'_, [u8]> {
        let first = self.parts.first().map(|p| &p[..]).unwrap_or_default();
        let header_len = first.get(4..8).map_or(0, |b| {
            u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize
        });
        let skip = (PREFIX_LEN + header_len).min(first.len());
        if self.parts.len() == 1 {
            return std::borrow::Cow::Borrowed(&first[skip..]);
        }
        if self.parts.len() == 2 && skip == first.len() {
            return std::borrow::Cow::Borrowed(&self.parts[1][..]);
        }
        let mut v = Vec::with_capacity(self.len as usize);
        v.extend_from_slice(&first[skip..]);
        for p in &self.parts[1..] {
            v.extend_from_slice(p);
        }
        std::borrow::Cow::Owned(v)
    }

    /// END for all streams.
    pub fn end_of_all() -> Msg {
        let mut p = [0u8; PREFIX_LEN];
        p[0] = kind::END;
        p[2..4].copy_from_slice(&ALL_STREAMS.to_le_bytes());
        Msg {
            kind: kind::END,
            stream: ALL_STREAMS,
            keyframe: false,
            frame_number: None,
            capture_time_ns: None,
            parts: vec![Bytes::copy_from_slice(&p)],
            len: PREFIX_LEN as u64,
        }
    }

    pub fn is_frame(&self) -> bool {
        self.frame_number.is_some()
    }

    pub fn is_end_of_all(&self) -> bool {
        self.kind == kind::END && self.stream == ALL_STREAMS
    }
}

/// Check a message prefix against the limits; returns (kind, flags, stream, header_len,
/// payload_len).
pub fn check_prefix(
    p: &[u8; PREFIX_LEN],
    limits: &Limits,
) -> Result<(u8, u8, u16, u32, u64), NetError> {
    let (kind, flags) = (p[0], p[1]);
    let stream = u16::from_le_bytes([p[2], p[3]]);
    let header_len = u32::from_le_bytes([p[4], p[5], p[6], p[7]]);
    let payload_len = u64::from_le_bytes(p[8..16].try_into().expect("8 bytes"));
    if header_len > limits.max_header {
        return Err(NetError::Protocol(format!(
            "a message header of {header_len} bytes exceeds the limit of {}",
            limits.max_header
        )));
    }
    if payload_len > limits.max_payload {
        return Err(NetError::Protocol(format!(
            "a message payload of {payload_len} bytes exceeds the limit of {}",
            limits.max_payload
        )));
    }
    Ok((kind, flags, stream, header_len, payload_len))
}

/// Decode a message header and check the payload length it implies.
pub fn check_head(
    kind: u8,
    flags: u8,
    stream: u16,
    header: &[u8],
    payload_len: u64,
) -> Result<MessageHead, NetError> {
    let head = MessageHead::decode(kind, flags, stream, header)
        .map_err(|e| NetError::Protocol(format!("the peer sent a bad message: {e}")))?;
    let exact = match &head {
        MessageHead::Video {
            format,
            width,
            height,
            strides,
            ..
        } => Some(
            VideoFrame::layout_size(*format, *width, *height, strides)
                .map_err(|e| NetError::Protocol(format!("the peer sent a bad frame: {e}")))?
                as u64,
        ),
        MessageHead::Audio {
            format,
            channels,
            samples,
            ..
        } => Some(AudioChunk::byte_len(*format, *channels, *samples) as u64),
        MessageHead::Stream { .. } | MessageHead::End { .. } => Some(0),
        _ => None,
    };
    if let Some(exact) = exact
        && exact != payload_len
    {
        return Err(NetError::Protocol(format!(
            "the peer sent a message whose header implies {exact} payload bytes but whose prefix says {payload_len}"
        )));
    }
    Ok(head)
}

/// Reading from a QUIC receive stream with bounds.
#[derive(Debug)]
pub struct StreamReader<'a> {
    pub rs: &'a mut quinn::RecvStream,
}

impl StreamReader<'_> {
    /// Fill `buf`; Ok(false) if the stream ended before the first byte.
    pub async fn exact_or_end(&mut self, buf: &mut [u8]) -> Result<bool, NetError> {
        let mut got = 0;
        while got < buf.len() {
            match self.rs.read(&mut buf[got..]).await? {
                Some(n) => got += n,
                None if got == 0 => return Ok(false),
                None => {
                    return Err(NetError::Protocol(format!(
                        "the peer's stream ended inside a {}-byte field",
                        buf.len()
                    )));
                }
            }
        }
        Ok(true)
    }

    pub async fn exact(&mut self, buf: &mut [u8]) -> Result<(), NetError> {
        if self.exact_or_end(buf).await? {
            Ok(())
        } else {
            Err(NetError::Protocol("the peer's stream ended early".into()))
        }
    }

    pub async fn u64(&mut self) -> Result<u64, NetError> {
        let mut b = [0u8; 8];
        self.exact(&mut b).await?;
        Ok(u64::from_le_bytes(b))
    }

    /// `len` bytes as received chunks; memory grows only as bytes arrive.
    async fn chunks(&mut self, mut len: u64, out: &mut Vec<Bytes>) -> Result<(), NetError> {
        while len > 0 {
            let want = len.min(usize::MAX as u64) as usize;
            match self.rs.read_chunk(want, true).await? {
                Some(c) => {
                    len -= c.bytes.len() as u64;
                    out.push(c.bytes);
                }
                None => {
                    return Err(NetError::Protocol(
                        "the peer's stream ended inside a message".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// A streamlib message; `None` if the stream ended cleanly before it.
    pub async fn message(&mut self, limits: &Limits) -> Result<Option<Msg>, NetError> {
        let mut prefix = [0u8; PREFIX_LEN];
        if !self.exact_or_end(&mut prefix).await? {
            return Ok(None);
        }
        Ok(Some(self.message_after(prefix, limits).await?))
    }

    pub async fn message_after(
        &mut self,
        prefix: [u8; PREFIX_LEN],
        limits: &Limits,
    ) -> Result<Msg, NetError> {
        let (kind, flags, stream, header_len, payload_len) = check_prefix(&prefix, limits)?;
        let mut header_parts = Vec::new();
        self.chunks(header_len as u64, &mut header_parts).await?;
        let mut head_bytes = BytesMut::with_capacity(PREFIX_LEN + header_len as usize);
        head_bytes.extend_from_slice(&prefix);
        for p in &header_parts {
            head_bytes.extend_from_slice(p);
        }
        let head = check_head(kind, flags, stream, &head_bytes[PREFIX_LEN..], payload_len)?;
        let mut parts = vec![head_bytes.freeze()];
        self.chunks(payload_len, &mut parts).await?;
        Ok(Msg::from_head(&head, flags, parts))
    }

    /// A `str`: u16 length and UTF-8, at most `max` bytes.
    pub async fn str(&mut self, max: usize) -> Result<String, NetError> {
        let mut l = [0u8; 2];
        self.exact(&mut l).await?;
        let len = u16::from_le_bytes(l) as usize;
        if len > max {
            return Err(NetError::Protocol(format!(
                "a {len}-byte string exceeds the limit of {max}"
            )));
        }
        let mut b = vec![0u8; len];
        self.exact(&mut b).await?;
        Ok(String::from_utf8_lossy(&b).into_owned())
    }
}

/// Encode a `str` (cut to [`MAX_REASON`] at a character boundary).
pub fn encode_str(s: &str) -> Vec<u8> {
    let mut end = s.len().min(MAX_REASON);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut v = Vec::with_capacity(2 + end);
    v.extend_from_slice(&(end as u16).to_le_bytes());
    v.extend_from_slice(&s.as_bytes()[..end]);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hello_round_trips_and_names_other_versions() {
        let h = Hello {
            version: PROTOCOL_VERSION,
            role: Role::Pull,
            policy: WirePolicy::Latest,
        };
        assert_eq!(Hello::decode(&h.encode()).unwrap(), h);
        let mut b = h.encode();
        b[4] = 9;
        assert!(matches!(Hello::decode(&b), Err(NetError::Version(9))));
        b = h.encode();
        b[0] = b'X';
        assert!(Hello::decode(&b).is_err());
    }

    #[test]
    fn prefixes_past_the_limits_are_refused() {
        let limits = Limits::default();
        let mut p = [0u8; PREFIX_LEN];
        p[0] = kind::VIDEO;
        p[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(check_prefix(&p, &limits).is_err());
        p[4..8].copy_from_slice(&10u32.to_le_bytes());
        p[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(check_prefix(&p, &limits).is_err());
    }

    proptest! {
        // Hostile bytes: any prefix and header either decode or give an error, never a panic.
        #[test]
        fn random_headers_never_panic(prefix in proptest::array::uniform16(any::<u8>()),
                                      header in proptest::collection::vec(any::<u8>(), 0..300)) {
            let limits = Limits::default();
            if let Ok((k, f, s, _h, pl)) = check_prefix(&prefix, &limits) {
                let _ = check_head(k, f, s, &header, pl);
            }
            let mut hb = [0u8; Hello::LEN];
            hb.copy_from_slice(&prefix[..Hello::LEN]);
            let _ = Hello::decode(&hb);
        }
    }
}
