//! The messages a byte stream carries, and their header layouts.

use std::fmt;

use sl_frame::{
    AudioChunk, ColorInfo, FrameInfo, Metadata, Packet, PixelFormat, Rational, SampleFormat,
    VideoCodec, VideoFrame,
};

use crate::codec::{Dec, Enc};
use crate::{Kind, WireError, kind};

/// What a video stream carries: raw pixels or a compressed codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VideoFormat {
    Raw(PixelFormat),
    Coded(VideoCodec),
}

impl VideoFormat {
    pub fn wire_code(self) -> u16 {
        match self {
            VideoFormat::Raw(p) => p.wire_code(),
            VideoFormat::Coded(c) => c.wire_code(),
        }
    }
    pub fn from_wire_code(code: u16) -> Option<Self> {
        PixelFormat::from_wire_code(code)
            .map(VideoFormat::Raw)
            .or_else(|| VideoCodec::from_wire_code(code).map(VideoFormat::Coded))
    }
    pub fn name(self) -> &'static str {
        match self {
            VideoFormat::Raw(p) => p.name(),
            VideoFormat::Coded(c) => c.name(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct VideoParams {
    pub format: VideoFormat,
    pub width: u32,
    pub height: u32,
    /// Nominal frame rate; `0/0` when unknown or variable.
    pub fps: Rational,
    pub color: ColorInfo,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AudioParams {
    pub format: SampleFormat,
    pub planar: bool,
    pub channels: u16,
    pub sample_rate: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub enum StreamKind {
    Video(VideoParams),
    Audio(AudioParams),
    Data,
}

/// The description of one stream, sent before its first frame and repeated at will so a
/// receiver that joins late can start.
#[derive(Clone, PartialEq)]
pub struct StreamInfo {
    pub kind: StreamKind,
    pub source_id: String,
    /// The time base its frames' timestamps use.
    pub time_base: Rational,
    /// Codec configuration (for example H.264 SPS/PPS), empty for raw streams.
    pub extradata: Vec<u8>,
    pub metadata: Metadata,
}

impl StreamInfo {
    /// A raw video stream at `fps` whose timestamps count frames (time base `1/fps`).
    pub fn raw_video(format: PixelFormat, width: u32, height: u32, fps: Rational) -> StreamInfo {
        StreamInfo {
            kind: StreamKind::Video(VideoParams {
                format: VideoFormat::Raw(format),
                width,
                height,
                fps,
                color: ColorInfo::default_for(format),
            }),
            source_id: String::new(),
            time_base: if fps.is_valid() {
                fps.inverse()
            } else {
                Rational::MICROS
            },
            extradata: Vec::new(),
            metadata: Metadata::new(),
        }
    }

    pub fn video(&self) -> Option<&VideoParams> {
        match &self.kind {
            StreamKind::Video(v) => Some(v),
            _ => None,
        }
    }
    pub fn audio(&self) -> Option<&AudioParams> {
        match &self.kind {
            StreamKind::Audio(a) => Some(a),
            _ => None,
        }
    }
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            StreamKind::Video(_) => "video",
            StreamKind::Audio(_) => "audio",
            StreamKind::Data => "data",
        }
    }
}

/// A metadata-only message: timing and metadata with an optional opaque payload.
#[derive(Clone, PartialEq, Default)]
pub struct DataMessage {
    pub info: FrameInfo,
    pub payload: Vec<u8>,
}

impl fmt::Debug for StreamInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamInfo")
            .field("kind", &self.kind)
            .field("source_id", &self.source_id)
            .field("time_base", &self.time_base)
            .field(
                "extradata",
                &format_args!("<{} bytes>", self.extradata.len()),
            )
            .field("metadata", &self.metadata)
            .finish()
    }
}

impl fmt::Debug for DataMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataMessage")
            .field("info", &self.info)
            .field("payload", &format_args!("<{} bytes>", self.payload.len()))
            .finish()
    }
}

/// One decoded message.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    Stream {
        stream: u16,
        info: StreamInfo,
    },
    Video {
        stream: u16,
        frame: VideoFrame,
    },
    Packet {
        stream: u16,
        packet: Packet,
    },
    Audio {
        stream: u16,
        chunk: AudioChunk,
    },
    Data {
        stream: u16,
        data: DataMessage,
    },
    /// End of one stream, or of the whole byte stream when `stream` is [`crate::ALL_STREAMS`].
    End {
        stream: u16,
    },
    /// A kind this version does not know (a later version's), kept byte for byte so a
    /// filter passes it on untouched: that is how the format grows without a new version.
    Unknown(UnknownMessage),
}

/// A message of a kind this version does not know, as it was on the wire.
#[derive(Clone, PartialEq)]
pub struct UnknownMessage {
    pub kind: u8,
    pub flags: u8,
    pub stream: u16,
    pub header: Vec<u8>,
    pub payload: Vec<u8>,
}

impl fmt::Debug for UnknownMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "UnknownMessage {{ kind: {:#04x}, flags: {:#04x}, stream: {}, header: <{} bytes>, payload: <{} bytes> }}",
            self.kind,
            self.flags,
            self.stream,
            self.header.len(),
            self.payload.len()
        )
    }
}

/// The header of a message of a kind this version does not know.
#[derive(Clone, PartialEq)]
pub struct UnknownHead {
    pub kind: u8,
    pub flags: u8,
    pub stream: u16,
    pub header: Vec<u8>,
}

impl fmt::Debug for UnknownHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "UnknownHead {{ kind: {:#04x}, flags: {:#04x}, stream: {}, header: <{} bytes> }}",
            self.kind,
            self.flags,
            self.stream,
            self.header.len()
        )
    }
}

impl Message {
    pub fn stream(&self) -> u16 {
        match self {
            Message::Stream { stream, .. }
            | Message::Video { stream, .. }
            | Message::Packet { stream, .. }
            | Message::Audio { stream, .. }
            | Message::Data { stream, .. }
            | Message::End { stream } => *stream,
            Message::Unknown(u) => u.stream,
        }
    }

    /// The message's kind, or `None` for a kind this version does not know.
    pub fn kind(&self) -> Option<Kind> {
        Kind::from_code(self.kind_code())
    }

    /// The kind byte this message has on the wire.
    pub fn kind_code(&self) -> u8 {
        match self {
            Message::Stream { .. } => kind::STREAM_INFO,
            Message::Video { .. } => kind::VIDEO,
            Message::Packet { .. } => kind::PACKET,
            Message::Audio { .. } => kind::AUDIO,
            Message::Data { .. } => kind::DATA,
            Message::End { .. } => kind::END,
            Message::Unknown(u) => u.kind,
        }
    }

    /// The frame timing, to change it (a source stamps capture times here).
    pub fn frame_info_mut(&mut self) -> Option<&mut FrameInfo> {
        match self {
            Message::Video { frame, .. } => Some(&mut frame.info),
            Message::Packet { packet, .. } => Some(&mut packet.info),
            Message::Audio { chunk, .. } => Some(&mut chunk.info),
            Message::Data { data, .. } => Some(&mut data.info),
            Message::Stream { .. } | Message::End { .. } | Message::Unknown(_) => None,
        }
    }

    /// Whether this ends the whole byte stream (END for [`crate::ALL_STREAMS`]).
    pub fn is_end_of_all(&self) -> bool {
        matches!(
            self,
            Message::End {
                stream: crate::ALL_STREAMS
            }
        )
    }

    /// The frame timing, for messages that carry a frame.
    pub fn frame_info(&self) -> Option<&FrameInfo> {
        match self {
            Message::Video { frame, .. } => Some(&frame.info),
            Message::Packet { packet, .. } => Some(&packet.info),
            Message::Audio { chunk, .. } => Some(&chunk.info),
            Message::Data { data, .. } => Some(&data.info),
            Message::Stream { .. } | Message::End { .. } | Message::Unknown(_) => None,
        }
    }
}

/// A decoded message header, before its payload is read. Readers use it to check the payload
/// length before allocating, and pass-through stages to inspect a message without decoding
/// its pixels.
#[derive(Clone, Debug, PartialEq)]
pub enum MessageHead {
    Stream {
        stream: u16,
        info: StreamInfo,
    },
    Video {
        stream: u16,
        info: FrameInfo,
        format: PixelFormat,
        width: u32,
        height: u32,
        color: ColorInfo,
        strides: Vec<usize>,
    },
    Packet {
        stream: u16,
        info: FrameInfo,
        codec: VideoCodec,
        width: u32,
        height: u32,
    },
    Audio {
        stream: u16,
        info: FrameInfo,
        format: SampleFormat,
        planar: bool,
        channels: u16,
        sample_rate: u32,
        samples: u32,
    },
    Data {
        stream: u16,
        info: FrameInfo,
    },
    End {
        stream: u16,
    },
    /// A kind this reader does not know: passed on as it is.
    Unknown(UnknownHead),
}

impl MessageHead {
    pub fn frame_info(&self) -> Option<&FrameInfo> {
        match self {
            MessageHead::Video { info, .. }
            | MessageHead::Packet { info, .. }
            | MessageHead::Audio { info, .. }
            | MessageHead::Data { info, .. } => Some(info),
            _ => None,
        }
    }

    pub fn stream(&self) -> u16 {
        match self {
            MessageHead::Stream { stream, .. }
            | MessageHead::Video { stream, .. }
            | MessageHead::Packet { stream, .. }
            | MessageHead::Audio { stream, .. }
            | MessageHead::Data { stream, .. }
            | MessageHead::End { stream } => *stream,
            MessageHead::Unknown(h) => h.stream,
        }
    }

    /// The exact payload size this header implies, for kinds where it is fixed.
    pub(crate) fn exact_payload(&self) -> Result<Option<u64>, WireError> {
        Ok(match self {
            MessageHead::Video {
                format,
                width,
                height,
                strides,
                ..
            } => Some(VideoFrame::layout_size(*format, *width, *height, strides)? as u64),
            MessageHead::Audio {
                format,
                channels,
                samples,
                ..
            } => Some(AudioChunk::byte_len(*format, *channels, *samples) as u64),
            MessageHead::Stream { .. } | MessageHead::End { .. } => Some(0),
            _ => None,
        })
    }

    /// Decode the header of a message of `kind`.
    pub fn decode(kind: u8, flags: u8, stream: u16, header: &[u8]) -> Result<Self, WireError> {
        let keyframe = flags & crate::flags::KEYFRAME != 0;
        Ok(match kind {
            kind::STREAM_INFO => {
                let mut d = Dec::new(header, "stream-info");
                MessageHead::Stream {
                    stream,
                    info: decode_stream_info(&mut d)?,
                }
            }
            kind::VIDEO => {
                let mut d = Dec::new(header, "video");
                let info = d.frame_info(keyframe)?;
                let code = d.u16("pixel format")?;
                let format = PixelFormat::from_wire_code(code)
                    .ok_or_else(|| d.err(format!("unknown pixel format code {code}")))?;
                let width = d.u32("width")?;
                let height = d.u32("height")?;
                let color = ColorInfo::from_byte(d.u8("colour")?);
                let planes = d.u8("plane count")? as usize;
                if planes != format.plane_count() {
                    return Err(d.err(format!(
                        "{format} has {} planes, header says {planes}",
                        format.plane_count()
                    )));
                }
                let mut strides = Vec::with_capacity(planes);
                for _ in 0..planes {
                    strides.push(d.u32("stride")? as usize);
                }
                MessageHead::Video {
                    stream,
                    info,
                    format,
                    width,
                    height,
                    color,
                    strides,
                }
            }
            kind::PACKET => {
                let mut d = Dec::new(header, "packet");
                let info = d.frame_info(keyframe)?;
                let code = d.u16("codec")?;
                let codec = VideoCodec::from_wire_code(code)
                    .ok_or_else(|| d.err(format!("unknown codec code {code:#x}")))?;
                MessageHead::Packet {
                    stream,
                    info,
                    codec,
                    width: d.u32("width")?,
                    height: d.u32("height")?,
                }
            }
            kind::AUDIO => {
                let mut d = Dec::new(header, "audio");
                let info = d.frame_info(keyframe)?;
                let code = d.u8("sample format")?;
                let format = SampleFormat::from_wire_code(code)
                    .ok_or_else(|| d.err(format!("unknown sample format code {code}")))?;
                MessageHead::Audio {
                    stream,
                    info,
                    format,
                    planar: d.u8("planar")? != 0,
                    channels: d.u16("channels")?,
                    sample_rate: d.u32("sample rate")?,
                    samples: d.u32("samples")?,
                }
            }
            kind::DATA => {
                let mut d = Dec::new(header, "data");
                MessageHead::Data {
                    stream,
                    info: d.frame_info(keyframe)?,
                }
            }
            kind::END => MessageHead::End { stream },
            other => MessageHead::Unknown(UnknownHead {
                kind: other,
                flags,
                stream,
                header: header.to_vec(),
            }),
        })
    }

    /// Build the message from this header and its payload (already checked for size).
    pub fn into_message(self, payload: Vec<u8>) -> Result<Message, WireError> {
        Ok(match self {
            MessageHead::Stream { stream, info } => Message::Stream { stream, info },
            MessageHead::Video {
                stream,
                info,
                format,
                width,
                height,
                color,
                strides,
            } => {
                let mut frame = VideoFrame::from_parts(format, width, height, &strides, payload)?;
                frame.info = info;
                frame.color = color;
                Message::Video { stream, frame }
            }
            MessageHead::Packet {
                stream,
                info,
                codec,
                width,
                height,
            } => Message::Packet {
                stream,
                packet: Packet {
                    info,
                    codec,
                    width,
                    height,
                    data: payload,
                },
            },
            MessageHead::Audio {
                stream,
                info,
                format,
                planar,
                channels,
                sample_rate,
                samples,
            } => {
                let mut chunk =
                    AudioChunk::new(format, sample_rate, channels, planar, samples, payload)?;
                chunk.info = info;
                Message::Audio { stream, chunk }
            }
            MessageHead::Data { stream, info } => Message::Data {
                stream,
                data: DataMessage { info, payload },
            },
            MessageHead::End { stream } => Message::End { stream },
            MessageHead::Unknown(h) => Message::Unknown(UnknownMessage {
                kind: h.kind,
                flags: h.flags,
                stream: h.stream,
                header: h.header,
                payload,
            }),
        })
    }
}

pub(crate) fn encode_stream_info(e: &mut Enc<'_>, s: &StreamInfo) -> Result<(), WireError> {
    match &s.kind {
        StreamKind::Video(v) => {
            e.u8(1);
            e.str(&s.source_id, "a source id")?;
            e.rational(s.time_base);
            e.u16(v.format.wire_code());
            e.u32(v.width);
            e.u32(v.height);
            e.rational(v.fps);
            e.u8(v.color.to_byte());
        }
        StreamKind::Audio(a) => {
            e.u8(2);
            e.str(&s.source_id, "a source id")?;
            e.rational(s.time_base);
            e.u8(a.format.wire_code());
            e.u8(a.planar as u8);
            e.u16(a.channels);
            e.u32(a.sample_rate);
        }
        StreamKind::Data => {
            e.u8(3);
            e.str(&s.source_id, "a source id")?;
            e.rational(s.time_base);
        }
    }
    e.bytes(&s.extradata, "a stream's extradata")?;
    e.metadata(&s.metadata)
}

fn decode_stream_info(d: &mut Dec<'_>) -> Result<StreamInfo, WireError> {
    let k = d.u8("stream kind")?;
    let source_id = d.str("source id")?;
    let time_base = d.rational("time base")?;
    if !time_base.is_valid() {
        return Err(d.err(format!("time base {time_base:?} has a zero term")));
    }
    let kind = match k {
        1 => {
            let code = d.u16("video format")?;
            let format = VideoFormat::from_wire_code(code)
                .ok_or_else(|| d.err(format!("unknown video format code {code:#x}")))?;
            StreamKind::Video(VideoParams {
                format,
                width: d.u32("width")?,
                height: d.u32("height")?,
                fps: d.rational("frame rate")?,
                color: ColorInfo::from_byte(d.u8("colour")?),
            })
        }
        2 => {
            let code = d.u8("sample format")?;
            let format = SampleFormat::from_wire_code(code)
                .ok_or_else(|| d.err(format!("unknown sample format code {code}")))?;
            StreamKind::Audio(AudioParams {
                format,
                planar: d.u8("planar")? != 0,
                channels: d.u16("channels")?,
                sample_rate: d.u32("sample rate")?,
            })
        }
        3 => StreamKind::Data,
        other => return Err(d.err(format!("unknown stream kind {other}"))),
    };
    Ok(StreamInfo {
        kind,
        source_id,
        time_base,
        extradata: d.bytes("extradata")?,
        metadata: d.metadata()?,
    })
}

/// Encode the header (not the prefix, not the payload) of a frame-carrying message.
pub(crate) fn encode_video_header(e: &mut Enc<'_>, f: &VideoFrame) -> Result<(), WireError> {
    encode_video_header_parts(
        e,
        &f.info,
        f.format(),
        f.width(),
        f.height(),
        f.color,
        f.strides(),
    )
}

/// [`encode_video_header`] from the parts of a frame.
pub(crate) fn encode_video_header_parts(
    e: &mut Enc<'_>,
    info: &FrameInfo,
    format: PixelFormat,
    width: u32,
    height: u32,
    color: ColorInfo,
    strides: &[usize],
) -> Result<(), WireError> {
    e.frame_info(info)?;
    e.u16(format.wire_code());
    e.u32(width);
    e.u32(height);
    e.u8(color.to_byte());
    e.u8(strides.len() as u8);
    for &s in strides {
        e.u32(s as u32);
    }
    Ok(())
}

pub(crate) fn encode_packet_header(e: &mut Enc<'_>, p: &Packet) -> Result<(), WireError> {
    e.frame_info(&p.info)?;
    e.u16(p.codec.wire_code());
    e.u32(p.width);
    e.u32(p.height);
    Ok(())
}

pub(crate) fn encode_audio_header(e: &mut Enc<'_>, c: &AudioChunk) -> Result<(), WireError> {
    e.frame_info(&c.info)?;
    e.u8(c.format().wire_code());
    e.u8(c.planar() as u8);
    e.u16(c.channels());
    e.u32(c.sample_rate());
    e.u32(c.samples());
    Ok(())
}

/// Encode `m`'s header (after the prefix) into `e`; returns the prefix's kind and flags and
/// the payload, which the caller sends after the header.
pub(crate) fn encode_header<'m>(
    e: &mut Enc<'_>,
    m: &'m Message,
) -> Result<(u8, u8, &'m [u8]), WireError> {
    use crate::flags::KEYFRAME;
    let keyframe = |info: &FrameInfo| if info.keyframe { KEYFRAME } else { 0 };
    Ok(match m {
        Message::Stream { info, .. } => {
            encode_stream_info(e, info)?;
            (kind::STREAM_INFO, 0, &[])
        }
        Message::Video { frame, .. } => {
            encode_video_header(e, frame)?;
            (kind::VIDEO, KEYFRAME, frame.data())
        }
        Message::Packet { packet, .. } => {
            encode_packet_header(e, packet)?;
            (kind::PACKET, keyframe(&packet.info), &packet.data)
        }
        Message::Audio { chunk, .. } => {
            encode_audio_header(e, chunk)?;
            (kind::AUDIO, KEYFRAME, chunk.data())
        }
        Message::Data { data, .. } => {
            e.frame_info(&data.info)?;
            (kind::DATA, keyframe(&data.info), &data.payload)
        }
        Message::End { .. } => (kind::END, 0, &[]),
        Message::Unknown(u) => {
            if u32::try_from(u.header.len()).is_err() {
                return Err(WireError::TooLong {
                    what: "an unknown message's header",
                    len: u.header.len(),
                    max: u32::MAX as usize,
                });
            }
            e.0.extend_from_slice(&u.header);
            (u.kind, u.flags, &u.payload)
        }
    })
}
