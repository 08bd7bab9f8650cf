//! Compression per link (`--codec raw|jpeg|h264`): the pushing side encodes raw video
//! frames, the pulling side decodes them back, so the next stage gets raw frames in the pixel
//! format, size and colour the previous stage wrote.
//!
//! What travels (see [`crate::proto`]): the stream description goes unchanged (it still says
//! raw `rgba 1920x1080`, say), and each raw frame of that stream becomes a PACKET message
//! (codec `jpeg` or `h264`) carrying the frame's own timing and identity unchanged: frame
//! number, pts, time base, duration, capture and PTP times, source id and metadata. A
//! PACKET on a stream described as **raw** is therefore a link-coded frame, and the puller
//! decodes it back to the described format; PACKETs of streams described as compressed (a
//! file's H.264, say) are not touched on either side, and neither is audio or data.
//!
//! Only frames that match their stream's description (format, size, colour) are coded; any
//! other frame, and every frame of a stream the codec cannot carry (H.264 needs even sizes),
//! goes raw, with a warning once per stream.
//!
//! Pixels: 4:2:0 YUV for both codecs. I420 and NV12 keep their values (no range change);
//! RGB and gray frames go through full-range BT.601 (swscale's JPEG range) both ways, so the
//! round trip adds no range compression. Alpha is not carried: decoded RGBA/BGRA frames are
//! opaque.
//!
//! H.264 is libx264 with `tune=zerolatency` (no B-frames, no lookahead: one frame in, one
//! packet out) and SPS/PPS repeated before every keyframe, so a decoder can start at any
//! keyframe. Keyframes come every two seconds, and at once (at most four a second) when a
//! receiver asks for one ([`KeyframeRequest`]): a `recv` that joins late, a reconnect, or a
//! `latest` receiver that had to drop a frame (every frame after it would reference the lost
//! one, so the hub drops until the next keyframe).
//!
//! Network input is hostile: the puller refuses to decode into a frame larger than
//! [`Limits::max_payload`], caps libavcodec's picture size at the described one, and turns a
//! packet that does not decode into an error naming the frame, never a panic.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use av::format::Pixel;
use av::software::scaling;
use ffmpeg_next as av;
use sl_frame::{ColorInfo, FrameInfo, Packet, PixelFormat, Rational, VideoCodec, VideoFrame};
use sl_wire::{Limits, Message, MessageHead, StreamKind, VideoFormat};

use crate::NetError;
use crate::yuv;

/// `--codec`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Raw,
    Jpeg,
    H264,
}

impl std::str::FromStr for Codec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "raw" => Ok(Codec::Raw),
            "jpeg" | "mjpeg" => Ok(Codec::Jpeg),
            "h264" | "avc" => Ok(Codec::H264),
            _ => Err(format!("`{s}` is not a link codec: use raw, jpeg or h264")),
        }
    }
}

impl Codec {
    pub fn name(self) -> &'static str {
        match self {
            Codec::Raw => "raw",
            Codec::Jpeg => "jpeg",
            Codec::H264 => "h264",
        }
    }
}

/// How a link encodes.
#[derive(Clone, Debug, PartialEq)]
pub struct CodecOptions {
    pub codec: Codec,
    /// JPEG quality, 1 (smallest) to 100 (best).
    pub quality: u8,
    /// H.264 bit rate in bits per second; `None`: about 0.1 bit per pixel per frame.
    pub bitrate: Option<u64>,
    /// libx264 preset.
    pub preset: String,
}

pub const DEFAULT_QUALITY: u8 = 85;
/// libx264's presets, fastest first.
pub const X264_PRESETS: [&str; 10] = [
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
];

pub const DEFAULT_PRESET: &str = "veryfast";

impl CodecOptions {
    /// `send`'s default: raw. A point-to-point link to one listener, lossless by default
    /// (`--policy block`) like the pipe it stands for: what the listener writes is byte for
    /// byte what the sender read, at no CPU cost. Say `--codec jpeg` or `h264` for a link
    /// slower than the raw rate (1080p30 RGBA is 2 Gbit/s).
    pub fn default_for_send() -> CodecOptions {
        CodecOptions::raw()
    }

    /// `serve`'s default: JPEG at quality 85. A fan-out to any number of receivers, live by
    /// default (`--policy latest`): raw would multiply the raw rate by the receivers, and
    /// every JPEG frame stands alone, so a receiver that joins late or drops frames on a
    /// lossy path needs nothing from the encoder and costs the others nothing (H.264 makes
    /// it send a keyframe to everyone).
    pub fn default_for_serve() -> CodecOptions {
        CodecOptions {
            codec: Codec::Jpeg,
            ..CodecOptions::raw()
        }
    }

    pub fn raw() -> CodecOptions {
        CodecOptions {
            codec: Codec::Raw,
            quality: DEFAULT_QUALITY,
            bitrate: None,
            preset: DEFAULT_PRESET.into(),
        }
    }
}

/// A request for a keyframe, from the hub (a receiver waits for one) to the encoder.
#[derive(Debug, Default)]
pub struct KeyframeRequest(AtomicBool);

impl KeyframeRequest {
    pub fn ask(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    fn asked(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
    fn clear(&self) {
        self.0.store(false, Ordering::Relaxed);
    }
    #[cfg(test)]
    pub(crate) fn clear_for_test(&self) {
        self.clear()
    }
    #[cfg(test)]
    pub(crate) fn asked_for_test(&self) -> bool {
        self.asked()
    }
}

/// At most this often a keyframe is forced on request: a receiver on a lossy path would
/// otherwise make every frame a (large) keyframe for every receiver.
const MIN_FORCED_KEY_GAP: Duration = Duration::from_millis(250);

/// What the encoder emits in place of one input message.
#[derive(Debug)]
pub enum Emit {
    /// The input message itself, unchanged.
    Original,
    /// A message made here (a coded frame).
    New(Box<Message>),
}

/// The raw description of a video stream: what coded frames decode back to.
#[derive(Clone, Copy, Debug, PartialEq)]
struct RawVideo {
    format: PixelFormat,
    width: u32,
    height: u32,
    color: ColorInfo,
}

fn raw_video(head: &MessageHead) -> Option<(RawVideo, Rational)> {
    let MessageHead::Stream { info, .. } = head else {
        return None;
    };
    let StreamKind::Video(v) = &info.kind else {
        return None;
    };
    let VideoFormat::Raw(format) = v.format else {
        return None;
    };
    Some((
        RawVideo {
            format,
            width: v.width,
            height: v.height,
            color: v.color,
        },
        v.fps,
    ))
}

/// The 4:2:0 layout coded pictures use for a raw format: YUV formats keep their values,
/// RGB and gray go through full range.
fn coded_layout(f: PixelFormat) -> Pixel {
    if matches!(f, PixelFormat::I420 | PixelFormat::Nv12) {
        Pixel::YUV420P
    } else {
        Pixel::YUVJ420P
    }
}

/// The 4-byte RGB formats at even sizes, which a sender converts to their 4:2:0 layout in
/// [`crate::yuv`] rather than through swscale.
fn rgb4_order(f: PixelFormat, w: u32, h: u32) -> Option<yuv::Order> {
    if !w.is_multiple_of(2) || !h.is_multiple_of(2) {
        return None;
    }
    match f {
        PixelFormat::Rgba => Some(yuv::Order::Rgba),
        PixelFormat::Bgra => Some(yuv::Order::Bgra),
        _ => None,
    }
}

fn av_err(what: impl std::fmt::Display, e: av::Error) -> NetError {
    NetError::Codec(format!("{what}: {e}"))
}

/// Copy a wire frame's planes (`payload` laid out with `strides`) into `av`.
fn planes_into_av(
    f: PixelFormat,
    w: u32,
    h: u32,
    strides: &[usize],
    payload: &[u8],
    av: &mut av::frame::Video,
) {
    let mut off = 0;
    for (p, &stride) in strides.iter().enumerate() {
        let (row, rows) = f.plane_dims(p, w, h);
        let dst_stride = av.stride(p);
        let dst = av.data_mut(p);
        for y in 0..rows {
            dst[y * dst_stride..y * dst_stride + row]
                .copy_from_slice(&payload[off + y * stride..off + y * stride + row]);
        }
        off += stride * rows;
    }
}

/// A tightly packed frame from `av` (which is `f` at `w`x`h`).
fn frame_from_av(
    f: PixelFormat,
    w: u32,
    h: u32,
    av: &av::frame::Video,
) -> Result<VideoFrame, NetError> {
    let mut buf = Vec::with_capacity(f.frame_size(w, h));
    for p in 0..f.plane_count() {
        let (row, rows) = f.plane_dims(p, w, h);
        let stride = av.stride(p);
        let data = av.data(p);
        if data.len() < stride * (rows - 1) + row {
            return Err(NetError::Codec(
                "a decoded picture is smaller than its size says".into(),
            ));
        }
        for y in 0..rows {
            buf.extend_from_slice(&data[y * stride..y * stride + row]);
        }
    }
    VideoFrame::from_packed(f, w, h, buf).map_err(|e| NetError::Codec(e.to_string()))
}

struct VideoEnc {
    codec: VideoCodec,
    raw: RawVideo,
    enc: av::encoder::Video,
    layout: Pixel,
    /// The input picture, when swscale converts it to `layout`.
    src: Option<(scaling::Context, av::frame::Video)>,
    /// 4-byte RGB input, converted by [`crate::yuv`] (then `src` is `None`), and the chroma
    /// it converts to before going into the picture.
    rgb4: Option<(yuv::Order, Vec<u8>)>,
    pic: av::frame::Video,
    packet: av::Packet,
    /// Frame info by the pts given to the encoder.
    pending: BTreeMap<i64, FrameInfo>,
    next_pts: i64,
    last_forced: Option<Instant>,
}

enum StreamEnc {
    /// Frames of this stream go as they are.
    Raw,
    Coded(Box<VideoEnc>),
}

/// Encodes raw video on the pushing side of a link (see the module docs).
pub struct LinkEncoder {
    opts: CodecOptions,
    streams: HashMap<u16, StreamEnc>,
    keyframes: Arc<KeyframeRequest>,
    /// Streams already warned about (frames that do not match their description).
    warned: std::collections::BTreeSet<u16>,
}

impl std::fmt::Debug for LinkEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "LinkEncoder({}, {} streams)",
            self.opts.codec.name(),
            self.streams.len()
        )
    }
}

impl LinkEncoder {
    pub fn new(opts: CodecOptions, keyframes: Arc<KeyframeRequest>) -> LinkEncoder {
        if opts.codec != Codec::Raw {
            sl_media::init();
        }
        LinkEncoder {
            opts,
            streams: HashMap::new(),
            keyframes,
            warned: Default::default(),
        }
    }

    pub fn is_raw(&self) -> bool {
        self.opts.codec == Codec::Raw
    }

    /// Take one input message (its decoded header and payload); append what to send in its
    /// place to `out`, in order.
    pub fn process(
        &mut self,
        head: &MessageHead,
        payload: &[u8],
        out: &mut Vec<Emit>,
    ) -> Result<(), NetError> {
        if self.is_raw() {
            out.push(Emit::Original);
            return Ok(());
        }
        match head {
            MessageHead::Stream { stream, info } => {
                // a new description: what the old encoder still holds goes first
                self.flush(*stream, out)?;
                let state = match raw_video(head) {
                    Some((raw, fps)) => self.open(*stream, raw, fps, &info.source_id),
                    None => StreamEnc::Raw,
                };
                self.streams.insert(*stream, state);
                out.push(Emit::Original);
            }
            MessageHead::Video {
                stream,
                info,
                format,
                width,
                height,
                color,
                strides,
            } => {
                let keyframes = Arc::clone(&self.keyframes);
                match self.streams.get_mut(stream) {
                    Some(StreamEnc::Coded(v)) => {
                        let this = RawVideo {
                            format: *format,
                            width: *width,
                            height: *height,
                            color: *color,
                        };
                        if this != v.raw {
                            if self.warned.insert(*stream) {
                                log::warn!(
                                    "stream {stream}: a {format} {width}x{height} frame does not \
                                     match its description ({} {}x{}): such frames go raw",
                                    v.raw.format,
                                    v.raw.width,
                                    v.raw.height
                                );
                            }
                            out.push(Emit::Original);
                        } else {
                            v.encode(*stream, info, strides, payload, &keyframes, out)?;
                        }
                    }
                    _ => out.push(Emit::Original),
                }
            }
            MessageHead::End { stream } if *stream == sl_wire::ALL_STREAMS => {
                let ids: Vec<u16> = self.streams.keys().copied().collect();
                for s in ids {
                    self.flush(s, out)?;
                }
                self.streams.clear();
                out.push(Emit::Original);
            }
            MessageHead::End { stream } => {
                self.flush(*stream, out)?;
                self.streams.remove(stream);
                out.push(Emit::Original);
            }
            _ => out.push(Emit::Original),
        }
        Ok(())
    }

    fn open(&mut self, stream: u16, raw: RawVideo, fps: Rational, source: &str) -> StreamEnc {
        let codec = match self.opts.codec {
            Codec::Raw => return StreamEnc::Raw,
            Codec::Jpeg => VideoCodec::Jpeg,
            Codec::H264 => VideoCodec::H264,
        };
        match VideoEnc::open(codec, raw, fps, &self.opts) {
            Ok(v) => {
                log::info!(
                    "stream {stream} ({source}): {} {}x{} goes as {}",
                    raw.format,
                    raw.width,
                    raw.height,
                    codec
                );
                StreamEnc::Coded(Box::new(v))
            }
            Err(e) => {
                log::warn!(
                    "stream {stream} ({source}): {} {}x{} cannot go as {codec} ({e}): its frames \
                     go raw",
                    raw.format,
                    raw.width,
                    raw.height
                );
                StreamEnc::Raw
            }
        }
    }

    fn flush(&mut self, stream: u16, out: &mut Vec<Emit>) -> Result<(), NetError> {
        if let Some(StreamEnc::Coded(v)) = self.streams.get_mut(&stream) {
            let _ = v.enc.send_eof();
            v.drain(stream, out)?;
        }
        Ok(())
    }
}

impl VideoEnc {
    fn open(
        codec: VideoCodec,
        raw: RawVideo,
        fps: Rational,
        opts: &CodecOptions,
    ) -> Result<VideoEnc, NetError> {
        let layout = coded_layout(raw.format);
        let (w, h) = (raw.width, raw.height);
        if codec == VideoCodec::H264 && (w % 2 != 0 || h % 2 != 0) {
            return Err(NetError::Codec(format!(
                "libx264 takes only even sizes in 4:2:0, and this is {w}x{h}"
            )));
        }
        let name = match codec {
            VideoCodec::H264 => "libx264",
            VideoCodec::Jpeg => "mjpeg",
        };
        let found = av::encoder::find_by_name(name).ok_or_else(|| {
            NetError::Codec(format!(
                "this FFmpeg has no {name} encoder (see `ffmpeg -encoders`)"
            ))
        })?;
        let mut enc = av::codec::Context::new_with_codec(found)
            .encoder()
            .video()
            .map_err(|e| av_err(format!("setting up {name}"), e))?;
        enc.set_width(w);
        enc.set_height(h);
        enc.set_format(layout);
        // timestamps given to the encoder count frames; the frames' own go in their info
        let rate = if fps.is_valid() {
            fps
        } else {
            Rational::new(30, 1)
        };
        enc.set_time_base(av::Rational::new(rate.den as i32, rate.num as i32));
        enc.set_frame_rate(Some(av::Rational::new(rate.num as i32, rate.den as i32)));
        // the tag only: pixel values go through unchanged (see coded_layout)
        enc.set_color_range(av::color::Range::JPEG);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        enc.set_threading(av::codec::threading::Config {
            kind: av::codec::threading::Type::Slice,
            count: threads,
            ..Default::default()
        });
        let mut dict = av::Dictionary::new();
        match codec {
            VideoCodec::Jpeg => {
                // libjpeg's 1..100 onto libavcodec's qscale 31..1
                let q = 1 + (100 - opts.quality.clamp(1, 100) as i32) * 30 / 99;
                enc.set_flags(av::codec::Flags::QSCALE);
                enc.set_qmin(1);
                enc.set_qmax(31);
                enc.set_global_quality(q * 118); // FF_QP2LAMBDA
            }
            VideoCodec::H264 => {
                let per_frame = w as f64 * h as f64 * 0.1;
                let bitrate = opts
                    .bitrate
                    .unwrap_or_else(|| (per_frame * rate.as_f64()).max(500_000.0) as u64);
                enc.set_bit_rate(bitrate as usize);
                enc.set_max_bit_rate(bitrate as usize);
                // keyframes every two seconds, and on request
                enc.set_gop((rate.as_f64() * 2.0).round().clamp(1.0, 600.0) as u32);
                enc.set_max_b_frames(0);
                dict.set("preset", &opts.preset);
                dict.set("tune", "zerolatency");
                dict.set("forced-idr", "1");
                // half a second of VBV: frame sizes stay even, so does the latency
                dict.set("bufsize", &(bitrate / 2).to_string());
            }
        }
        let enc = enc
            .open_as_with(found, dict)
            .map_err(|e| av_err(format!("opening {name} for {} {w}x{h}", raw.format), e))?;
        let rgb4 = rgb4_order(raw.format, w, h).map(|o| (o, Vec::new()));
        let src = if raw.format == PixelFormat::I420 || rgb4.is_some() {
            None
        } else {
            let ctx = scaling::Context::get(
                sl_media::to_av_pixel(raw.format),
                w,
                h,
                layout,
                w,
                h,
                scaling::Flags::BILINEAR,
            )
            .map_err(|e| av_err(format!("converting {} for {name}", raw.format), e))?;
            Some((
                ctx,
                av::frame::Video::new(sl_media::to_av_pixel(raw.format), w, h),
            ))
        };
        Ok(VideoEnc {
            codec,
            raw,
            enc,
            layout,
            src,
            rgb4,
            pic: av::frame::Video::new(layout, w, h),
            packet: av::Packet::empty(),
            pending: BTreeMap::new(),
            next_pts: 0,
            last_forced: None,
        })
    }

    fn encode(
        &mut self,
        stream: u16,
        info: &FrameInfo,
        strides: &[usize],
        payload: &[u8],
        keyframes: &KeyframeRequest,
        out: &mut Vec<Emit>,
    ) -> Result<(), NetError> {
        let RawVideo {
            format,
            width,
            height,
            ..
        } = self.raw;
        if let Some((order, chroma)) = &mut self.rgb4 {
            let (w, h) = (width as usize, height as usize);
            let (cw, ch) = (w / 2, h / 2);
            chroma.resize(2 * cw * ch, 0);
            let (u, v) = chroma.split_at_mut(cw * ch);
            let y_stride = self.pic.stride(0);
            let y = self.pic.data_mut(0);
            yuv::rgb4_to_yuv420(payload, strides[0], w, h, *order, y, y_stride, u, v);
            for (p, plane) in [(1, &*u), (2, &*v)] {
                let stride = self.pic.stride(p);
                let dst = self.pic.data_mut(p);
                for (row, src) in plane.chunks_exact(cw).enumerate() {
                    dst[row * stride..row * stride + cw].copy_from_slice(src);
                }
            }
        } else {
            match &mut self.src {
                None => planes_into_av(format, width, height, strides, payload, &mut self.pic),
                Some((ctx, src)) => {
                    planes_into_av(format, width, height, strides, payload, src);
                    ctx.run(src, &mut self.pic)
                        .map_err(|e| av_err(format!("converting {format} to YUV"), e))?;
                }
            }
        }
        self.pic.set_format(self.layout);
        let pts = self.next_pts;
        self.next_pts += 1;
        self.pic.set_pts(Some(pts));
        let force = self.codec == VideoCodec::H264
            && keyframes.asked()
            && self
                .last_forced
                .is_none_or(|t| t.elapsed() >= MIN_FORCED_KEY_GAP);
        if force {
            log::debug!(
                "stream {stream}: frame {} made a keyframe (a receiver asked for one)",
                info.frame_number
            );
            keyframes.clear();
            self.last_forced = Some(Instant::now());
            self.pic.set_kind(av::picture::Type::I);
        } else {
            self.pic.set_kind(av::picture::Type::None);
        }
        self.pending.insert(pts, info.clone());
        // zerolatency and mjpeg hold no frames back; a bound in case one ever does
        while self.pending.len() > 64 {
            self.pending.pop_first();
        }
        self.enc.send_frame(&self.pic).map_err(|e| {
            av_err(
                format!("encoding frame {} of stream {stream}", info.frame_number),
                e,
            )
        })?;
        self.drain(stream, out)
    }

    fn drain(&mut self, stream: u16, out: &mut Vec<Emit>) -> Result<(), NetError> {
        loop {
            match self.enc.receive_packet(&mut self.packet) {
                Ok(()) => {}
                Err(av::Error::Other { errno }) if errno == av::util::error::EAGAIN => {
                    return Ok(());
                }
                Err(av::Error::Eof) => return Ok(()),
                Err(e) => return Err(av_err(format!("encoding stream {stream}"), e)),
            }
            let Some(mut info) = self.packet.pts().and_then(|p| self.pending.remove(&p)) else {
                log::warn!("stream {stream}: the encoder made a packet for no frame; skipped");
                continue;
            };
            info.keyframe = self.packet.is_key();
            let data = self.packet.data().unwrap_or_default().to_vec();
            out.push(Emit::New(Box::new(Message::Packet {
                stream,
                packet: Packet {
                    info,
                    codec: self.codec,
                    width: self.raw.width,
                    height: self.raw.height,
                    data,
                },
            })));
        }
    }
}

struct VideoDec {
    codec: VideoCodec,
    dec: av::decoder::Video,
    frame: av::frame::Video,
    /// Conversion from the decoded picture to the described format (not for I420).
    scaler: Option<(Pixel, scaling::Context, av::frame::Video)>,
    pending: BTreeMap<i64, FrameInfo>,
}

struct StreamDec {
    raw: RawVideo,
    dec: Option<Box<VideoDec>>,
}

/// Decodes link-coded frames on the pulling side (see the module docs).
pub struct LinkDecoder {
    limits: Limits,
    /// Raw video streams, by index: the only ones whose PACKETs are link-coded.
    streams: HashMap<u16, StreamDec>,
}

impl std::fmt::Debug for LinkDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LinkDecoder({} raw video streams)", self.streams.len())
    }
}

/// What the decoder made of one message.
#[derive(Debug)]
pub enum Decoded {
    /// Pass the message on unchanged.
    Original,
    /// Write these instead (decoded frames, and the message itself when it is an END).
    Replaced(Vec<Message>),
}

impl LinkDecoder {
    pub fn new(limits: Limits) -> LinkDecoder {
        LinkDecoder {
            limits,
            streams: HashMap::new(),
        }
    }

    /// Look at one message as it arrived (its header and payload).
    pub fn process(&mut self, head: MessageHead, payload: &[u8]) -> Result<Decoded, NetError> {
        match &head {
            MessageHead::Stream { stream, .. } => {
                let mut out = self.flush(*stream)?;
                match raw_video(&head) {
                    Some((raw, _)) => {
                        self.streams.insert(*stream, StreamDec { raw, dec: None });
                    }
                    None => {
                        self.streams.remove(stream);
                    }
                }
                if out.is_empty() {
                    return Ok(Decoded::Original);
                }
                out.push(head.into_message(Vec::new()).map_err(wire_err)?);
                Ok(Decoded::Replaced(out))
            }
            MessageHead::End { stream } => {
                let ids: Vec<u16> = if *stream == sl_wire::ALL_STREAMS {
                    self.streams.keys().copied().collect()
                } else {
                    vec![*stream]
                };
                let mut out = Vec::new();
                for s in ids {
                    out.extend(self.flush(s)?);
                    self.streams.remove(&s);
                }
                if out.is_empty() {
                    return Ok(Decoded::Original);
                }
                out.push(Message::End { stream: *stream });
                Ok(Decoded::Replaced(out))
            }
            MessageHead::Packet {
                stream,
                info,
                codec,
                width,
                height,
            } => {
                let Some(s) = self.streams.get_mut(stream) else {
                    // a compressed stream: it passes as it is
                    return Ok(Decoded::Original);
                };
                let raw = s.raw;
                let what = || format!("frame {} of stream {stream}", info.frame_number);
                if (*width, *height) != (raw.width, raw.height) {
                    return Err(NetError::Protocol(format!(
                        "{}: the sender coded a {width}x{height} picture into a stream described \
                         as {}x{}",
                        what(),
                        raw.width,
                        raw.height
                    )));
                }
                let size = raw.format.frame_size(raw.width, raw.height) as u64;
                if size > self.limits.max_payload || raw.width == 0 || raw.height == 0 {
                    return Err(NetError::Protocol(format!(
                        "{}: a {} {}x{} picture is beyond what this receiver decodes",
                        what(),
                        raw.format,
                        raw.width,
                        raw.height
                    )));
                }
                let dec = match &mut s.dec {
                    Some(d) if d.codec == *codec => d,
                    _ => {
                        s.dec = Some(Box::new(VideoDec::open(*codec, raw)?));
                        s.dec.as_mut().expect("just set")
                    }
                };
                let frames = dec.decode(raw, info, payload).map_err(|e| {
                    NetError::Protocol(format!(
                        "{}: the sender's {codec} data does not decode ({e})",
                        what()
                    ))
                })?;
                Ok(Decoded::Replaced(
                    frames
                        .into_iter()
                        .map(|frame| Message::Video {
                            stream: *stream,
                            frame,
                        })
                        .collect(),
                ))
            }
            _ => Ok(Decoded::Original),
        }
    }

    fn flush(&mut self, stream: u16) -> Result<Vec<Message>, NetError> {
        let Some(s) = self.streams.get_mut(&stream) else {
            return Ok(Vec::new());
        };
        let raw = s.raw;
        let Some(d) = s.dec.as_mut() else {
            return Ok(Vec::new());
        };
        let _ = d.dec.send_eof();
        let frames = d.receive(raw).map_err(|e| {
            NetError::Protocol(format!(
                "stream {stream}: the last frames do not decode ({e})"
            ))
        })?;
        s.dec = None;
        Ok(frames
            .into_iter()
            .map(|frame| Message::Video { stream, frame })
            .collect())
    }
}

fn wire_err(e: sl_wire::WireError) -> NetError {
    NetError::Protocol(e.to_string())
}

impl VideoDec {
    fn open(codec: VideoCodec, raw: RawVideo) -> Result<VideoDec, NetError> {
        sl_media::init();
        let id = match codec {
            VideoCodec::H264 => av::codec::Id::H264,
            VideoCodec::Jpeg => av::codec::Id::MJPEG,
        };
        let found = av::decoder::find(id)
            .ok_or_else(|| NetError::Codec(format!("this FFmpeg has no {codec} decoder")))?;
        let mut ctx = av::codec::Context::new_with_codec(found);
        // one packet in, its picture out: no frame-threading delay
        ctx.set_flags(av::codec::Flags::LOW_DELAY);
        ctx.set_threading(av::codec::threading::Config {
            kind: av::codec::threading::Type::Slice,
            count: std::thread::available_parallelism().map_or(1, |n| n.get()),
            ..Default::default()
        });
        let mut dict = av::Dictionary::new();
        // a hostile stream cannot make libavcodec allocate much past the described picture
        // (its check counts the buffer, whose rows and lines are padded for alignment)
        dict.set(
            "max_pixels",
            &((raw.width as u64 + 128) * (raw.height as u64 + 128)).to_string(),
        );
        let dec = ctx
            .decoder()
            .open_as_with(found, dict)
            .and_then(|o| o.video())
            .map_err(|e| av_err(format!("opening the {codec} decoder"), e))?;
        Ok(VideoDec {
            codec,
            dec,
            frame: av::frame::Video::empty(),
            scaler: None,
            pending: BTreeMap::new(),
        })
    }

    fn decode(
        &mut self,
        raw: RawVideo,
        info: &FrameInfo,
        data: &[u8],
    ) -> Result<Vec<VideoFrame>, NetError> {
        if data.is_empty() {
            return Err(NetError::Codec("an empty packet".into()));
        }
        let mut packet = av::Packet::copy(data);
        let key = info.frame_number as i64;
        packet.set_pts(Some(key));
        packet.set_dts(Some(key));
        if info.keyframe {
            packet.set_flags(av::packet::Flags::KEY);
        }
        self.pending.insert(key, info.clone());
        while self.pending.len() > 64 {
            self.pending.pop_first();
        }
        self.dec
            .send_packet(&packet)
            .map_err(|e| NetError::Codec(e.to_string()))?;
        self.receive(raw)
    }

    fn receive(&mut self, raw: RawVideo) -> Result<Vec<VideoFrame>, NetError> {
        let mut out = Vec::new();
        loop {
            match self.dec.receive_frame(&mut self.frame) {
                Ok(()) => {}
                Err(av::Error::Other { errno }) if errno == av::util::error::EAGAIN => {
                    return Ok(out);
                }
                Err(av::Error::Eof) => return Ok(out),
                Err(e) => return Err(NetError::Codec(e.to_string())),
            }
            let Some(mut info) = self
                .frame
                .pts()
                .or(self.frame.timestamp())
                .and_then(|p| self.pending.remove(&p))
            else {
                continue;
            };
            info.keyframe = true;
            let mut f = self.picture(raw)?;
            f.info = info;
            f.color = raw.color;
            out.push(f);
        }
    }

    /// The decoded picture in the described format.
    fn picture(&mut self, raw: RawVideo) -> Result<VideoFrame, NetError> {
        let (w, h) = (self.frame.width(), self.frame.height());
        if (w, h) != (raw.width, raw.height) {
            return Err(NetError::Codec(format!(
                "it decodes to {w}x{h}, not the described {}x{}",
                raw.width, raw.height
            )));
        }
        let got = self.frame.format();
        if !matches!(got, Pixel::YUV420P | Pixel::YUVJ420P) {
            return Err(NetError::Codec(format!(
                "it decodes to {got:?}, not 4:2:0 as a streamlib sender codes"
            )));
        }
        if raw.format == PixelFormat::I420 {
            return frame_from_av(raw.format, w, h, &self.frame);
        }
        // the encoder's layout for this format, whatever range the bitstream was tagged with
        let layout = coded_layout(raw.format);
        self.frame.set_format(layout);
        if self.scaler.as_ref().is_none_or(|(l, _, _)| *l != layout) {
            let target = sl_media::to_av_pixel(raw.format);
            let ctx = scaling::Context::get(layout, w, h, target, w, h, scaling::Flags::BILINEAR)
                .map_err(|e| av_err(format!("converting to {}", raw.format), e))?;
            self.scaler = Some((layout, ctx, av::frame::Video::new(target, w, h)));
        }
        let (_, ctx, out) = self.scaler.as_mut().expect("just made");
        ctx.run(&self.frame, out)
            .map_err(|e| av_err(format!("converting to {}", raw.format), e))?;
        frame_from_av(raw.format, w, h, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sl_wire::StreamInfo;

    fn info_head(format: PixelFormat, w: u32, h: u32) -> MessageHead {
        MessageHead::Stream {
            stream: 0,
            info: StreamInfo::raw_video(format, w, h, Rational::new(30, 1)),
        }
    }

    fn video_head(f: &VideoFrame) -> MessageHead {
        MessageHead::Video {
            stream: 0,
            info: f.info.clone(),
            format: f.format(),
            width: f.width(),
            height: f.height(),
            color: f.color,
            strides: f.strides().to_vec(),
        }
    }

    fn gradient(format: PixelFormat, w: u32, h: u32, n: u64) -> VideoFrame {
        let mut f = VideoFrame::new(PixelFormat::Rgba, w, h).unwrap();
        for y in 0..h as usize {
            for x in 0..w as usize {
                let px = &mut f.data_mut()[(y * w as usize + x) * 4..][..4];
                px.copy_from_slice(&[(x * 4) as u8, (y * 4) as u8, (n * 16) as u8, 255]);
            }
        }
        let mut f = if format == PixelFormat::Rgba {
            f
        } else {
            sl_frame::convert::to_format(&f, format)
        };
        f.color = ColorInfo::default_for(format);
        f.info.frame_number = n;
        f.info.pts = n as i64 * 7;
        f.info.ptp_time_ns = Some(1_000 + n as i64);
        f.info.source_id = "cam".into();
        f
    }

    fn round_trip(codec: Codec, format: PixelFormat) {
        let (w, h) = (64, 48);
        let mut enc = LinkEncoder::new(
            CodecOptions {
                codec,
                ..CodecOptions::raw()
            },
            Arc::new(KeyframeRequest::default()),
        );
        let mut dec = LinkDecoder::new(Limits::default());
        let mut out = Vec::new();
        enc.process(&info_head(format, w, h), &[], &mut out)
            .unwrap();
        assert!(matches!(
            dec.process(info_head(format, w, h), &[]).unwrap(),
            Decoded::Original
        ));
        let frames: Vec<VideoFrame> = (0..5).map(|n| gradient(format, w, h, n)).collect();
        for f in &frames {
            enc.process(&video_head(f), f.data(), &mut out).unwrap();
        }
        let packets: Vec<Message> = out
            .into_iter()
            .filter_map(|e| match e {
                Emit::New(m) => Some(*m),
                Emit::Original => None,
            })
            .collect();
        assert_eq!(packets.len(), 5, "one packet per frame, at once");
        let mut got = Vec::new();
        for m in packets {
            let Message::Packet { packet, .. } = &m else {
                panic!("{m:?}")
            };
            let head = MessageHead::Packet {
                stream: 0,
                info: packet.info.clone(),
                codec: packet.codec,
                width: packet.width,
                height: packet.height,
            };
            match dec.process(head, &packet.data).unwrap() {
                Decoded::Replaced(ms) => got.extend(ms),
                Decoded::Original => panic!("a link-coded frame passed undecoded"),
            }
        }
        assert_eq!(got.len(), 5);
        for (m, want) in got.iter().zip(&frames) {
            let Message::Video { frame, .. } = m else {
                panic!()
            };
            assert_eq!(frame.format(), format);
            assert_eq!((frame.width(), frame.height()), (w, h));
            assert_eq!(frame.info, want.info);
            let diff: u64 = frame
                .data()
                .iter()
                .zip(want.data())
                .map(|(a, b)| (*a as i32 - *b as i32).unsigned_abs() as u64)
                .sum();
            let mean = diff as f64 / frame.data().len() as f64;
            assert!(mean < 4.0, "{codec:?} {format}: mean abs diff {mean}");
        }
    }

    #[test]
    fn jpeg_round_trips_every_format() {
        for f in sl_frame::ALL_PIXEL_FORMATS {
            round_trip(Codec::Jpeg, f);
        }
    }

    #[test]
    fn h264_round_trips_every_format() {
        for f in sl_frame::ALL_PIXEL_FORMATS {
            round_trip(Codec::H264, f);
        }
    }

    #[test]
    fn garbage_packets_are_errors_not_panics() {
        for codec in [VideoCodec::Jpeg, VideoCodec::H264] {
            let mut dec = LinkDecoder::new(Limits::default());
            dec.process(info_head(PixelFormat::Rgba, 64, 48), &[])
                .unwrap();
            let mut seed = 7u32;
            let mut failed = 0;
            for n in 0..50u64 {
                let len = (n as usize * 37) % 3000 + 1;
                let data: Vec<u8> = (0..len)
                    .map(|_| {
                        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                        (seed >> 16) as u8
                    })
                    .collect();
                let head = MessageHead::Packet {
                    stream: 0,
                    info: FrameInfo {
                        frame_number: n,
                        ..FrameInfo::default()
                    },
                    codec,
                    width: 64,
                    height: 48,
                };
                if dec.process(head, &data).is_err() {
                    failed += 1;
                }
            }
            assert!(failed > 0, "{codec}: random bytes never failed to decode");
        }
        // a picture size beyond the limits is refused before any decoder runs
        let mut dec = LinkDecoder::new(Limits {
            max_header: 1 << 20,
            max_payload: 1 << 20,
        });
        dec.process(info_head(PixelFormat::Rgba, 4096, 4096), &[])
            .unwrap();
        let head = MessageHead::Packet {
            stream: 0,
            info: FrameInfo::default(),
            codec: VideoCodec::Jpeg,
            width: 4096,
            height: 4096,
        };
        assert!(dec.process(head, &[0xff, 0xd8]).is_err());
    }

    #[test]
    fn damaged_packets_never_panic() {
        // real packets with bytes flipped, cut short or doubled: an error or a picture (libav
        // conceals some damage), never a panic, and never a picture of another size
        for codec in [Codec::Jpeg, Codec::H264] {
            let (w, h) = (64, 48);
            let mut enc = LinkEncoder::new(
                CodecOptions {
                    codec,
                    ..CodecOptions::raw()
                },
                Arc::new(KeyframeRequest::default()),
            );
            let mut out = Vec::new();
            enc.process(&info_head(PixelFormat::Rgba, w, h), &[], &mut out)
                .unwrap();
            for n in 0..3 {
                let f = gradient(PixelFormat::Rgba, w, h, n);
                enc.process(&video_head(&f), f.data(), &mut out).unwrap();
            }
            let packets: Vec<Packet> = out
                .into_iter()
                .filter_map(|e| match e {
                    Emit::New(m) => match *m {
                        Message::Packet { packet, .. } => Some(packet),
                        _ => None,
                    },
                    Emit::Original => None,
                })
                .collect();
            let mut seed = 99u32;
            for trial in 0..60 {
                let mut dec = LinkDecoder::new(Limits::default());
                dec.process(info_head(PixelFormat::Rgba, w, h), &[])
                    .unwrap();
                for (i, p) in packets.iter().enumerate() {
                    let mut data = p.data.clone();
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    let at = (seed as usize >> 8) % data.len();
                    match trial % 3 {
                        0 => data[at] ^= (seed >> 24) as u8 | 1,
                        1 => data.truncate(at.max(1)),
                        _ => {
                            let tail = data[at..].to_vec();
                            data.extend_from_slice(&tail);
                        }
                    }
                    let head = MessageHead::Packet {
                        stream: 0,
                        info: FrameInfo {
                            frame_number: i as u64,
                            ..p.info.clone()
                        },
                        codec: p.codec,
                        width: w,
                        height: h,
                    };
                    if let Ok(Decoded::Replaced(ms)) = dec.process(head, &data) {
                        for m in ms {
                            let Message::Video { frame, .. } = m else {
                                panic!("{m:?}")
                            };
                            assert_eq!((frame.width(), frame.height()), (w, h));
                        }
                    }
                }
            }
        }
    }
}
