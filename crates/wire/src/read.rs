//! Reading a byte stream.

use std::io::{self, BufRead, BufReader, Read};

use crate::{
    ALL_STREAMS, Kind, MAGIC, Message, MessageHead, PREFIX_LEN, STREAM_HEADER_LEN, VERSION,
    WireError, describe_foreign,
};

/// Bounds a reader enforces before allocating anything a header asks for.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest message header (timing, metadata, stream description).
    pub max_header: u32,
    /// Largest payload of any message.
    pub max_payload: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header: 16 << 20,
            // a 16384x16384 RGBA frame with some stride padding
            max_payload: 1280 << 20,
        }
    }
}

/// A message with its header decoded and its payload in a buffer of type `B`: the reader's
/// own ([`RawMessage`], from [`Reader::next_raw`]) or one the caller owns
/// ([`Reader::next_raw_into`]).
pub struct OwnedRaw<'a, B> {
    pub head: MessageHead,
    pub prefix_and_header: &'a [u8],
    pub payload: B,
}

/// A message as it was on the wire, with its decoded header. For pass-through stages: inspect
/// `head`, then write `prefix_and_header` and `payload` unchanged.
pub type RawMessage<'a> = OwnedRaw<'a, &'a [u8]>;

impl<B: AsRef<[u8]>> std::fmt::Debug for OwnedRaw<'_, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedRaw")
            .field("head", &self.head)
            .field(
                "prefix_and_header",
                &format_args!("<{} bytes>", self.prefix_and_header.len()),
            )
            .field(
                "payload",
                &format_args!("<{} bytes>", self.payload.as_ref().len()),
            )
            .finish()
    }
}

impl<B> OwnedRaw<'_, B> {
    pub fn is_end_of_all(&self) -> bool {
        matches!(
            self.head,
            MessageHead::End {
                stream: ALL_STREAMS
            }
        )
    }
}

/// Reads messages from a byte stream, checking the stream header on creation.
pub struct Reader<R: Read> {
    pub(crate) inner: BufReader<R>,
    limits: Limits,
    pub(crate) head_buf: Vec<u8>,
    payload_buf: Vec<u8>,
    spare: Vec<Vec<u8>>,
    messages: u64,
    frames: u64,
    finished: bool,
    /// Opened on first use by `next_head_skipping_payload`.
    pub(crate) devnull: Option<std::fs::File>,
}

impl<R: Read> std::fmt::Debug for Reader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("limits", &self.limits)
            .field("buffered", &self.inner.buffer().len())
            .field("spare_buffers", &self.spare.len())
            .field("messages", &self.messages)
            .field("frames", &self.frames)
            .field("finished", &self.finished)
            .finish()
    }
}

/// How much to read ahead for small messages. Large payloads bypass it.
const READ_BUFFER: usize = 256 << 10;

impl<R: Read> Reader<R> {
    /// Check the stream header. Fails with [`WireError::Empty`] on empty input and
    /// [`WireError::NotAStream`] (naming what it looks like) on anything else.
    pub fn new(inner: R) -> Result<Self, WireError> {
        Self::with_limits(inner, Limits::default())
    }

    pub fn with_limits(inner: R, limits: Limits) -> Result<Self, WireError> {
        let mut inner = BufReader::with_capacity(READ_BUFFER, inner);
        let mut h = [0u8; STREAM_HEADER_LEN];
        let n = read_full(&mut inner, &mut h)?;
        if n == 0 {
            return Err(WireError::Empty);
        }
        if n < 8 || h[..8] != MAGIC {
            if n < 8 && MAGIC.starts_with(&h[..n]) {
                return Err(WireError::Truncated("inside the stream header".into()));
            }
            let mut head = h[..n].to_vec();
            // a little more for formats recognised further in (MPEG-TS repeats its sync at 188)
            if let Ok(more) = inner.fill_buf() {
                head.extend_from_slice(&more[..more.len().min(200)]);
            }
            return Err(WireError::NotAStream(describe_foreign(&head)));
        }
        if n < STREAM_HEADER_LEN {
            return Err(WireError::Truncated("inside the stream header".into()));
        }
        let version = u16::from_le_bytes([h[8], h[9]]);
        if version != VERSION {
            return Err(WireError::UnsupportedVersion(version));
        }
        Ok(Reader {
            inner,
            limits,
            head_buf: Vec::with_capacity(512),
            payload_buf: Vec::new(),
            spare: Vec::new(),
            messages: 0,
            frames: 0,
            finished: false,
            devnull: None,
        })
    }

    /// Messages read so far.
    pub fn messages_read(&self) -> u64 {
        self.messages
    }

    /// Give back a payload buffer (for example `frame.into_data()`) so the next message of
    /// the same size is read into it without a new allocation.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        if self.spare.len() < 4 {
            self.spare.push(buf);
        }
    }

    /// Whether the end-of-stream for all streams has been read.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Read the prefix and header of the next message into `head_buf` and decode the header.
    /// Returns the header and the declared payload length, or None at the final end. A kind
    /// this version does not know comes back as [`MessageHead::Unknown`], to be passed on.
    pub(crate) fn read_head(&mut self) -> Result<Option<(MessageHead, u64)>, WireError> {
        if self.finished {
            return Ok(None);
        }
        self.head_buf.clear();
        self.head_buf.resize(PREFIX_LEN, 0);
        let n = read_full(&mut self.inner, &mut self.head_buf)?;
        if n == 0 {
            return Err(WireError::Truncated(format!(
                "after {} frames: no end-of-stream message",
                self.frames
            )));
        }
        if n < PREFIX_LEN {
            return Err(self.truncated("inside a message prefix"));
        }
        let prefix = parse_prefix(&self.head_buf, &self.limits)?;
        let header_len = prefix.header_len;
        let payload_len = prefix.payload_len;
        let got = read_grow(&mut self.inner, &mut self.head_buf, header_len as u64)?;
        if got < header_len as u64 {
            return Err(self.truncated("inside a message header"));
        }
        let head = MessageHead::decode(
            prefix.kind,
            prefix.flags,
            prefix.stream,
            &self.head_buf[PREFIX_LEN..],
        )?;
        check_payload_len(prefix.kind, &head, payload_len)?;
        self.messages += 1;
        if head.frame_info().is_some() {
            self.frames += 1;
        }
        if head
            == (MessageHead::End {
                stream: ALL_STREAMS,
            })
        {
            self.finished = true;
        }
        Ok(Some((head, payload_len)))
    }

    pub(crate) fn truncated_payload(&self, got: usize, len: usize) -> WireError {
        WireError::Truncated(format!(
            "inside message {} ({got} of its {len} payload bytes arrived)",
            self.messages
        ))
    }

    fn truncated(&self, where_: &str) -> WireError {
        WireError::Truncated(format!("{where_} after {} frames", self.frames))
    }

    /// The next message, or `None` after the end-of-stream for all streams.
    /// A stream that stops without that end is [`WireError::Truncated`].
    pub fn next_message(&mut self) -> Result<Option<Message>, WireError> {
        let Some((head, len)) = self.read_head()? else {
            return Ok(None);
        };
        let len = len as usize;
        // Prefer a recycled buffer at least as long as needed: shrinking its length is free,
        // while growing one zero-fills the new bytes.
        let mut buf = match self.spare.iter().position(|b| b.len() >= len) {
            Some(i) => self.spare.swap_remove(i),
            None => self.spare.pop().unwrap_or_default(),
        };
        let got = read_payload(&mut self.inner, &mut buf, len)?;
        if got < len {
            return Err(self.truncated_payload(got, len));
        }
        buf.truncate(len);
        head.into_message(buf).map(Some)
    }

    /// The next message undecoded, for pass-through: its header is decoded and checked, its
    /// payload held in a buffer the reader reuses (so steady-state reads allocate nothing and
    /// zero nothing).
    pub fn next_raw(&mut self) -> Result<Option<RawMessage<'_>>, WireError> {
        let Some((head, len)) = self.read_head()? else {
            return Ok(None);
        };
        let len = len as usize;
        let got = read_payload(&mut self.inner, &mut self.payload_buf, len)?;
        if got < len {
            return Err(self.truncated_payload(got, len));
        }
        Ok(Some(RawMessage {
            head,
            prefix_and_header: &self.head_buf,
            payload: &self.payload_buf[..len],
        }))
    }

    /// The next message undecoded, like [`Reader::next_raw`], but its payload is read into a
    /// buffer that `take` hands out for the payload's length, which the caller then owns:
    /// for a stage that keeps payloads beyond the next read (sl-net hands them to the network
    /// while it reads the next frame) without copying them out of the reader's own buffer.
    /// `take(len)` must give exactly `len` bytes.
    pub fn next_raw_into<B: AsMut<[u8]>>(
        &mut self,
        take: impl FnOnce(usize) -> B,
    ) -> Result<Option<OwnedRaw<'_, B>>, WireError> {
        let Some((head, len)) = self.read_head()? else {
            return Ok(None);
        };
        let len = len as usize;
        let mut payload = take(len);
        let buf = payload.as_mut();
        assert_eq!(
            buf.len(),
            len,
            "next_raw_into: take(len) gave a buffer of another length"
        );
        let got = read_full(&mut self.inner, buf)?;
        if got < len {
            return Err(self.truncated_payload(got, len));
        }
        Ok(Some(OwnedRaw {
            head,
            prefix_and_header: &self.head_buf,
            payload,
        }))
    }
}

/// A message prefix, its lengths checked against the limits.
pub(crate) struct Prefix {
    pub kind: u8,
    pub flags: u8,
    pub stream: u16,
    pub header_len: u32,
    pub payload_len: u64,
}

/// Decode a 16-byte message prefix and check its lengths before anything is allocated.
pub(crate) fn parse_prefix(p: &[u8], limits: &Limits) -> Result<Prefix, WireError> {
    let header_len = u32::from_le_bytes(p[4..8].try_into().expect("4 bytes"));
    let payload_len = u64::from_le_bytes(p[8..16].try_into().expect("8 bytes"));
    if header_len > limits.max_header {
        return Err(WireError::TooLarge {
            what: "message header",
            len: header_len as u64,
            max: limits.max_header as u64,
        });
    }
    if payload_len > limits.max_payload {
        return Err(WireError::TooLarge {
            what: "message payload",
            len: payload_len,
            max: limits.max_payload,
        });
    }
    Ok(Prefix {
        kind: p[0],
        flags: p[1],
        stream: u16::from_le_bytes([p[2], p[3]]),
        header_len,
        payload_len,
    })
}

/// Check a payload length against the one its header implies (raw video, audio, empty kinds).
pub(crate) fn check_payload_len(
    kind: u8,
    head: &MessageHead,
    payload_len: u64,
) -> Result<(), WireError> {
    match head.exact_payload()? {
        Some(exact) if exact != payload_len => Err(WireError::Malformed {
            kind: Kind::from_code(kind).map_or("unknown", Kind::name),
            why: format!("header implies a {exact}-byte payload, prefix says {payload_len}"),
        }),
        _ => Ok(()),
    }
}

/// Read until `buf` is full or the input ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Append up to `len` bytes to `buf`, returning how many arrived. Capacity is reserved in
/// steps of at most 64 MiB, so a header that lies about a huge length on a short input costs
/// at most one step.
fn read_grow(r: &mut impl Read, buf: &mut Vec<u8>, len: u64) -> io::Result<u64> {
    const STEP: u64 = 64 << 20;
    let mut got = 0;
    while got < len {
        let want = (len - got).min(STEP);
        buf.reserve_exact(want as usize);
        let n = r.take(want).read_to_end(buf)? as u64;
        got += n;
        if n < want {
            break;
        }
    }
    Ok(got)
}

/// Read `len` bytes into `buf[..len]`, returning how many arrived. `buf` is only lengthened
/// (zero-filling the new part) up to what is needed, in steps of at most 64 MiB ahead of the
/// data that actually arrived, so a lying header cannot make it allocate far past the input;
/// a buffer already long enough is read into as it is. Large reads bypass the `BufReader`.
fn read_payload(r: &mut impl Read, buf: &mut Vec<u8>, len: usize) -> io::Result<usize> {
    const STEP: usize = 64 << 20;
    let mut got = 0;
    while got < len {
        let end = len.min(got + STEP);
        if buf.len() < end {
            buf.resize(end, 0);
        }
        while got < end {
            match r.read(&mut buf[got..end]) {
                Ok(0) => return Ok(got),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(got)
}
