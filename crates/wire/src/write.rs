//! Writing a byte stream.

use std::io::{self, IoSlice, Write};

use sl_frame::{AudioChunk, ColorInfo, FrameInfo, Packet, PixelFormat, VideoFrame};

use crate::codec::Enc;
use crate::message::{
    encode_audio_header, encode_header, encode_packet_header, encode_stream_info,
    encode_video_header, encode_video_header_parts,
};
use crate::{
    ALL_STREAMS, DataMessage, MAGIC, Message, PREFIX_LEN, RawMessage, StreamInfo, VERSION,
    WireError, flags, kind,
};

/// Writes the stream header on creation, then one message per call. Each message goes out as
/// a single vectored write of prefix+header (from a reused scratch buffer) and the payload
/// (borrowed from the frame), so pixels are never copied in user space.
pub struct Writer<W: Write> {
    inner: W,
    scratch: Vec<u8>,
    bytes: u64,
    finished: bool,
    /// Whether `inner` is a pipe, once asked (see `gift`).
    pub(crate) is_pipe: Option<bool>,
}

impl<W: Write> std::fmt::Debug for Writer<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("bytes", &self.bytes)
            .field("finished", &self.finished)
            .field("is_pipe", &self.is_pipe)
            .finish()
    }
}

impl<W: Write> Writer<W> {
    /// Start a byte stream: writes the 16-byte stream header.
    pub fn new(mut inner: W) -> Result<Self, WireError> {
        let mut h = [0u8; crate::STREAM_HEADER_LEN];
        h[..8].copy_from_slice(&MAGIC);
        h[8..10].copy_from_slice(&VERSION.to_le_bytes());
        inner.write_all(&h)?;
        Ok(Writer {
            inner,
            scratch: Vec::with_capacity(512),
            bytes: h.len() as u64,
            finished: false,
            is_pipe: None,
        })
    }

    /// Bytes written so far, stream header included.
    pub fn bytes_written(&self) -> u64 {
        self.bytes
    }

    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    pub(crate) fn begin(&mut self) -> Enc<'_> {
        self.scratch.clear();
        self.scratch.resize(PREFIX_LEN, 0);
        Enc(&mut self.scratch)
    }

    /// Fill in the prefix of the message in `scratch` and write it with `payload`.
    fn send(&mut self, kind: u8, flags: u8, stream: u16, payload: &[u8]) -> Result<(), WireError> {
        self.send_parts(kind, flags, stream, payload, payload.len() as u64)
    }

    /// As `send`, for a payload of `payload_len` bytes of which `payload` (possibly none) is
    /// written here; the caller writes the rest right after.
    pub(crate) fn send_parts(
        &mut self,
        kind: u8,
        flags: u8,
        stream: u16,
        payload: &[u8],
        payload_len: u64,
    ) -> Result<(), WireError> {
        let header_len = (self.scratch.len() - PREFIX_LEN) as u32;
        let p = &mut self.scratch[..PREFIX_LEN];
        p[0] = kind;
        p[1] = flags;
        p[2..4].copy_from_slice(&stream.to_le_bytes());
        p[4..8].copy_from_slice(&header_len.to_le_bytes());
        p[8..16].copy_from_slice(&payload_len.to_le_bytes());
        write_all_vectored(&mut self.inner, &self.scratch, payload)?;
        self.bytes += (self.scratch.len() + payload.len()) as u64;
        Ok(())
    }

    pub fn write_stream_info(&mut self, stream: u16, info: &StreamInfo) -> Result<(), WireError> {
        encode_stream_info(&mut self.begin(), info)?;
        self.send(kind::STREAM_INFO, 0, stream, &[])
    }

    pub fn write_video(&mut self, stream: u16, frame: &VideoFrame) -> Result<(), WireError> {
        encode_video_header(&mut self.begin(), frame)?;
        self.send(kind::VIDEO, flags::KEYFRAME, stream, frame.data())
    }

    /// Write a video frame whose planes live somewhere else (a decoder's buffers, with
    /// their own strides): it goes out tightly packed, gathered with `writev` straight from
    /// `planes`, so the pixels are not first copied into a frame of our own.
    #[allow(clippy::too_many_arguments)]
    pub fn write_video_planes(
        &mut self,
        stream: u16,
        info: &FrameInfo,
        format: PixelFormat,
        width: u32,
        height: u32,
        color: ColorInfo,
        planes: &[PlaneRef<'_>],
    ) -> Result<(), WireError> {
        if planes.len() != format.plane_count() {
            return Err(WireError::Invalid(format!(
                "{} has {} planes, not {}",
                format.name(),
                format.plane_count(),
                planes.len()
            )));
        }
        let mut slices = Vec::with_capacity(planes.len());
        let mut len = 0u64;
        for (p, plane) in planes.iter().enumerate() {
            let (row, rows) = format.plane_dims(p, width, height);
            let fits = rows == 0
                || (plane.stride >= row && plane.data.len() >= (rows - 1) * plane.stride + row);
            if !fits {
                return Err(WireError::Invalid(format!(
                    "plane {p} of a {width}x{height} {} frame: {} bytes with stride {} cannot hold {rows} rows of {row}",
                    format.name(),
                    plane.data.len(),
                    plane.stride
                )));
            }
            if plane.stride == row {
                slices.push(IoSlice::new(&plane.data[..row * rows]));
            } else {
                slices.extend(
                    (0..rows).map(|y| IoSlice::new(&plane.data[y * plane.stride..][..row])),
                );
            }
            len += (row * rows) as u64;
        }
        let strides = VideoFrame::packed_strides(format, width);
        encode_video_header_parts(
            &mut self.begin(),
            info,
            format,
            width,
            height,
            color,
            &strides[..format.plane_count()],
        )?;
        let header_len = (self.scratch.len() - PREFIX_LEN) as u32;
        let p = &mut self.scratch[..PREFIX_LEN];
        p[0] = kind::VIDEO;
        p[1] = flags::KEYFRAME;
        p[2..4].copy_from_slice(&stream.to_le_bytes());
        p[4..8].copy_from_slice(&header_len.to_le_bytes());
        p[8..16].copy_from_slice(&len.to_le_bytes());
        slices.insert(0, IoSlice::new(&self.scratch));
        write_all_slices(&mut self.inner, &mut slices)?;
        self.bytes += self.scratch.len() as u64 + len;
        Ok(())
    }

    pub fn write_packet(&mut self, stream: u16, packet: &Packet) -> Result<(), WireError> {
        encode_packet_header(&mut self.begin(), packet)?;
        let f = if packet.info.keyframe {
            flags::KEYFRAME
        } else {
            0
        };
        self.send(kind::PACKET, f, stream, &packet.data)
    }

    pub fn write_audio(&mut self, stream: u16, chunk: &AudioChunk) -> Result<(), WireError> {
        encode_audio_header(&mut self.begin(), chunk)?;
        self.send(kind::AUDIO, flags::KEYFRAME, stream, chunk.data())
    }

    pub fn write_data(&mut self, stream: u16, data: &DataMessage) -> Result<(), WireError> {
        self.begin().frame_info(&data.info)?;
        let f = if data.info.keyframe {
            flags::KEYFRAME
        } else {
            0
        };
        self.send(kind::DATA, f, stream, &data.payload)
    }

    /// End one stream (its frames are over; others may go on).
    pub fn write_end(&mut self, stream: u16) -> Result<(), WireError> {
        self.begin();
        self.send(kind::END, 0, stream, &[])
    }

    pub fn write_message(&mut self, m: &Message) -> Result<(), WireError> {
        match m {
            Message::Stream { stream, info } => self.write_stream_info(*stream, info),
            Message::Video { stream, frame } => self.write_video(*stream, frame),
            Message::Packet { stream, packet } => self.write_packet(*stream, packet),
            Message::Audio { stream, chunk } => self.write_audio(*stream, chunk),
            Message::Data { stream, data } => self.write_data(*stream, data),
            Message::End { stream } if *stream == ALL_STREAMS => self.finish(),
            Message::End { stream } => self.write_end(*stream),
            Message::Unknown(_) => {
                let (kind, flags, payload) = encode_header(&mut self.begin(), m)?;
                self.send(kind, flags, m.stream(), payload)
            }
        }
    }

    /// Copy a message read by [`crate::Reader::next_raw`] unchanged.
    pub fn write_raw(&mut self, raw: &RawMessage<'_>) -> Result<(), WireError> {
        if raw.is_end_of_all() {
            return self.finish();
        }
        write_all_vectored(&mut self.inner, raw.prefix_and_header, raw.payload)?;
        self.bytes += (raw.prefix_and_header.len() + raw.payload.len()) as u64;
        Ok(())
    }

    /// End the byte stream (an end-of-stream for all streams) and flush. Safe to call twice.
    pub fn finish(&mut self) -> Result<(), WireError> {
        if !self.finished {
            self.finished = true;
            self.begin();
            self.send(kind::END, 0, ALL_STREAMS, &[])?;
        }
        self.inner.flush()?;
        Ok(())
    }

    /// Write bytes that are already wire format (used by pass-through).
    pub(crate) fn write_bytes(&mut self, b: &[u8]) -> Result<(), WireError> {
        self.inner.write_all(b)?;
        self.bytes += b.len() as u64;
        Ok(())
    }

    /// Count bytes written around this writer (spliced payloads).
    pub(crate) fn add_bytes(&mut self, n: u64) {
        self.bytes += n;
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    pub fn flush(&mut self) -> Result<(), WireError> {
        self.inner.flush()?;
        Ok(())
    }
}

/// One plane of a frame held elsewhere: its rows start `stride` bytes apart (the plane's row
/// and row count follow from the frame's format and size).
#[derive(Clone, Copy, Debug)]
pub struct PlaneRef<'a> {
    pub data: &'a [u8],
    pub stride: usize,
}

/// Most buffers one `writev` takes (Linux's IOV_MAX).
const IOV_MAX: usize = 1024;

/// `write_all` for any number of buffers, with as few `writev` calls as the kernel allows.
fn write_all_slices(w: &mut impl Write, slices: &mut [IoSlice<'_>]) -> io::Result<()> {
    let mut bufs: &mut [IoSlice<'_>] = slices;
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        let n = bufs.len().min(IOV_MAX);
        match w.write_vectored(&bufs[..n]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(k) => IoSlice::advance_slices(&mut bufs, k),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `write_all` for two buffers with `writev`, so a message is one system call in the common
/// case. (`Write::write_all_vectored` is not stable yet.)
fn write_all_vectored(w: &mut impl Write, head: &[u8], payload: &[u8]) -> io::Result<()> {
    let mut storage = [IoSlice::new(head), IoSlice::new(payload)];
    let mut bufs: &mut [IoSlice<'_>] = &mut storage;
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match w.write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
