//! Reading: open a file, URL or stdin, decode video and audio, yield wire messages.

use std::collections::VecDeque;
use std::time::Duration;

use av::format::Pixel;
use av::media::Type as Medium;
use ffmpeg_next as av;
use sl_frame::{AudioChunk, ColorInfo, FrameInfo, PixelFormat, Rational};
use sl_wire::{
    AudioParams, Message, PlaneRef, StreamInfo, StreamKind, VideoFormat, VideoParams, WireError,
    Writer,
};

use crate::MediaError;
use crate::convert::{Converter, Job};
use crate::pixels::{
    color_from_av, frame_from_av, from_av_pixel, nearest_wire_format, sample_from_av,
};

/// How to read an input.
#[derive(Debug, Clone, Default)]
pub struct SourceOptions {
    /// Pixel format to emit; `None`: the source's own when the wire has it, else the nearest.
    pub format: Option<PixelFormat>,
    /// Scale every frame to this size.
    pub size: Option<(u32, u32)>,
    /// Decode and emit audio.
    pub audio: bool,
    /// Which video stream (0 = the first video stream); `None`: libav's best.
    pub video_stream: Option<usize>,
    /// Which audio stream (0 = the first audio stream); `None`: libav's best.
    pub audio_stream: Option<usize>,
    /// Start this far into the input (seek, then drop frames before it).
    pub start: Option<Duration>,
    /// Source id stamped on streams and frames.
    pub source_id: String,
    /// libavformat options (`rtsp_transport=tcp`, `timeout=...`).
    pub options: Vec<(String, String)>,
    /// Decoder threads (0: one per core; ffmpeg's default is one more).
    pub threads: usize,
    /// Emit converted video frames in memory of their own (`VideoFrame::new_paged`), for a
    /// writer that hands them to a pipe without a copy (`Writer::write_video_owned`).
    pub paged: bool,
    /// From [`Source::next_output`], give frames the decoder made in the wire's format and
    /// size as [`Output::Video`], written straight from the decoder's memory, instead of
    /// copying them into messages. ([`Source::next_message`] always copies.)
    pub decoder_frames: bool,
}

/// What [`Source::next_output`] yields.
#[derive(Debug)]
pub enum Output {
    Message(Message),
    Video(DecodedVideo),
}

/// A decoded video frame still in the decoder's buffers (their reference is held until it
/// is dropped), already in the wire's pixel format and size.
pub struct DecodedVideo {
    pub stream: u16,
    pub info: FrameInfo,
    format: PixelFormat,
    color: ColorInfo,
    frame: av::frame::Video,
}

impl std::fmt::Debug for DecodedVideo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodedVideo")
            .field("stream", &self.stream)
            .field("format", &self.format)
            .field("size", &(self.frame.width(), self.frame.height()))
            .finish()
    }
}

impl DecodedVideo {
    /// Bytes of its payload on the wire (tightly packed).
    pub fn bytes(&self) -> usize {
        self.format
            .frame_size(self.frame.width(), self.frame.height())
    }

    /// Write it as a video message, gathered straight from the decoder's planes.
    pub fn write<W: std::io::Write>(&self, w: &mut Writer<W>) -> Result<(), WireError> {
        let f = &self.frame;
        let planes: Vec<PlaneRef<'_>> = (0..self.format.plane_count())
            .map(|p| PlaneRef {
                data: f.data(p),
                stride: f.stride(p),
            })
            .collect();
        w.write_video_planes(
            self.stream,
            &self.info,
            self.format,
            f.width(),
            f.height(),
            self.color,
            &planes,
        )
    }

    /// As a message of its own (a copy, into `buf`'s allocation).
    pub fn into_message(self, buf: Vec<u8>) -> Result<Message, MediaError> {
        let mut frame = frame_from_av(&self.frame, self.format, buf, false)?;
        frame.color = self.color;
        frame.info = self.info;
        Ok(Message::Video {
            stream: self.stream,
            frame,
        })
    }
}

struct VideoDec {
    index: usize,
    wire: u16,
    decoder: av::decoder::Video,
    out_format: PixelFormat,
    out_w: u32,
    out_h: u32,
    color: ColorInfo,
    /// The last source (format, width, height), to warn when it changes mid-stream.
    last_src: Option<(Pixel, u32, u32)>,
    timing: Timing,
    /// Frame stamps carried on packets (NUT written by sl-file -o), by packet pts, until the
    /// frame decoded from that packet comes out.
    stamps: std::collections::BTreeMap<i64, Vec<u8>>,
}

struct AudioDec {
    index: usize,
    wire: u16,
    decoder: av::decoder::Audio,
    timing: Timing,
}

/// Per-stream timing: frame numbers from 0, and an offset that keeps timestamps increasing
/// across `--loop` rewinds and after a frame that came without a timestamp.
struct Timing {
    time_base: Rational,
    frames: u64,
    offset: i64,
    first_raw: Option<i64>,
    last_pts: Option<i64>,
    /// The last frame had no timestamp of its own: its pts is a guess.
    last_guessed: bool,
    last_end: i64,
    default_duration: i64,
    rewound: bool,
}

impl Timing {
    fn new(time_base: Rational, default_duration: i64) -> Timing {
        Timing {
            time_base,
            frames: 0,
            offset: 0,
            first_raw: None,
            last_pts: None,
            last_guessed: false,
            last_end: 0,
            default_duration,
            rewound: false,
        }
    }

    /// Timestamp and duration for a frame with libav's `raw` pts and `duration`.
    fn stamp(&mut self, raw: Option<i64>, duration: i64) -> (i64, i64) {
        let pts = match raw {
            Some(p) => {
                // A frame without a timestamp was placed right after the one before it (a
                // guess). If the next real timestamp is not later than that guess, time would
                // run backwards: shift this and every later timestamp to follow the guess.
                // Met reading RTSP (FFmpeg 5.1): the first frame, a keyframe, comes without a
                // pts (stamped 0) and the next with -1320, then -1320 + 3000n.
                if self.last_guessed && self.last_pts.is_some_and(|last| p + self.offset <= last) {
                    self.offset = self.last_end - p;
                }
                p + self.offset
            }
            None => self.last_end,
        };
        self.last_guessed = raw.is_none();
        let duration = if duration > 0 {
            duration
        } else {
            match self.last_pts {
                Some(last) if pts > last => pts - last,
                _ => self.default_duration,
            }
        };
        if self.first_raw.is_none() {
            self.first_raw = raw;
        }
        self.last_pts = Some(pts);
        self.last_end = self.last_end.max(pts + duration);
        (pts, duration)
    }

    fn rewound(&mut self) {
        if let Some(first) = self.first_raw {
            self.offset = self.last_end - first;
        }
        self.last_pts = None;
        self.last_guessed = false;
        self.rewound = true;
    }
}

fn rational(r: av::Rational) -> Rational {
    if r.numerator() <= 0 || r.denominator() <= 0 {
        Rational::new(0, 0)
    } else {
        Rational::new(r.numerator() as u32, r.denominator() as u32)
    }
}

/// An opened input yielding wire messages: wire stream 0 is video (when there is one), the
/// next is audio.
pub struct Source {
    name: String,
    ictx: av::format::context::Input,
    seekable: bool,
    video: Option<VideoDec>,
    audio: Option<AudioDec>,
    /// Output in order; a `None` is a frame still on a converter thread.
    pending: VecDeque<Option<Output>>,
    converter: Option<Converter>,
    spare: Vec<Vec<u8>>,
    opts: SourceOptions,
    start_secs: f64,
    ended: bool,
    /// The read error that ended the input early, returned once the frames before it are.
    failed: Option<MediaError>,
    /// Packets read of the video and the audio stream (in the first pass).
    packets: (u64, u64),
    decode_errors: u64,
    frame: av::frame::Video,
    audio_frame: av::frame::Audio,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("name", &self.name)
            .field("video", &self.video.as_ref().map(|v| v.index))
            .field("audio", &self.audio.as_ref().map(|a| a.index))
            .finish()
    }
}

impl Source {
    /// Open `input` (a path, a URL, or `-` for stdin). `interrupt` is polled by libav during
    /// blocking network reads: returning true aborts them (the source then ends).
    pub fn open(
        input: &str,
        opts: SourceOptions,
        interrupt: fn() -> bool,
    ) -> Result<Source, MediaError> {
        crate::init();
        let name = if input == "-" {
            "stdin".to_string()
        } else {
            input.to_string()
        };
        let ctx = format!("opening {name}");
        let mut dict = av::Dictionary::new();
        for (k, v) in &opts.options {
            dict.set(k, v);
        }
        let mut mp4_on_stdin = false;
        let ictx = if input == "-" {
            let (head, reader) = crate::stdin::sniff_stdin()
                .map_err(|e| MediaError::new(&ctx, format!("cannot read stdin: {e}")))?;
            if head.is_empty() {
                return Err(MediaError::new(&ctx, "stdin is empty")
                    .hint("pipe a media file in, e.g. `ffmpeg ... -f nut - | sl-file -`"));
            }
            if head.starts_with(&sl_wire::MAGIC) {
                return Err(
                    MediaError::new(&ctx, "stdin is a streamlib stream, not a media file")
                        .hint("to write frames to a file, use `sl-file -o OUTPUT`"),
                );
            }
            mp4_on_stdin = head.len() >= 8 && &head[4..8] == b"ftyp";
            let io = av::format::context::StreamIo::from_read(reader)
                .map_err(|e| MediaError::av(&ctx, e))?;
            av::format::input_from_stream_with_interrupt(io, None, Some(dict), interrupt)
                .map_err(|e| stdin_open_error(&ctx, e, &head))?
        } else {
            if !input.contains("://")
                && !input.contains('%')
                && !std::path::Path::new(input).exists()
            {
                return Err(
                    MediaError::new(&ctx, "no such file").hint("check the path; for stdin use `-`")
                );
            }
            av::format::input_with_interrupt_and_dictionary(input, interrupt, dict)
                .map_err(|e| open_error(&ctx, e))?
        };
        let seekable = input != "-" && ictx.duration() > 0;

        let pick = |medium: Medium, nth: Option<usize>| -> Result<Option<usize>, MediaError> {
            match nth {
                None => Ok(ictx.streams().best(medium).map(|s| s.index())),
                Some(n) => {
                    let all: Vec<usize> = ictx
                        .streams()
                        .filter(|s| s.parameters().medium() == medium)
                        .map(|s| s.index())
                        .collect();
                    all.get(n).copied().map(Some).ok_or_else(|| {
                        MediaError::new(
                            &ctx,
                            format!(
                                "there is no {} stream {n}: it has {} (numbered from 0)",
                                format!("{medium:?}").to_lowercase(),
                                all.len()
                            ),
                        )
                    })
                }
            }
        };
        let video_index = pick(Medium::Video, opts.video_stream)?;
        let audio_index = if opts.audio {
            pick(Medium::Audio, opts.audio_stream)?
        } else {
            None
        };
        if video_index.is_none() && audio_index.is_none() {
            return Err(MediaError::new(&ctx, "it has no video or audio stream")
                .hint(format!("see what it holds with `ffprobe {input}`")));
        }

        let mut next_wire = 0u16;
        let video = match video_index {
            Some(index) => {
                let v = open_video(&ictx, index, next_wire, &opts, &name).map_err(|e| {
                    if mp4_on_stdin {
                        e.hint(MP4_ON_STDIN)
                    } else {
                        e
                    }
                })?;
                next_wire += 1;
                Some(v)
            }
            None => None,
        };
        let audio = match audio_index {
            Some(index) => match open_audio(&ictx, index, next_wire, &name) {
                Ok(a) => Some(a),
                Err(e) if video.is_some() => {
                    log::warn!("{e}; going on without audio");
                    None
                }
                Err(e) => return Err(e),
            },
            None => None,
        };

        let mut source = Source {
            name,
            ictx,
            seekable,
            video,
            audio,
            pending: VecDeque::new(),
            converter: None,
            spare: Vec::new(),
            start_secs: opts.start.map(|d| d.as_secs_f64()).unwrap_or(0.0),
            opts,
            ended: false,
            failed: None,
            packets: (0, 0),
            decode_errors: 0,
            frame: av::frame::Video::empty(),
            audio_frame: av::frame::Audio::empty(),
        };
        if source.start_secs > 0.0 {
            source.seek_to_start()?;
        }
        Ok(source)
    }

    /// The input's name for messages (`stdin` for `-`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether [`Source::rewind`] can work (a seekable file, not a pipe or live stream).
    pub fn is_seekable(&self) -> bool {
        self.seekable
    }

    /// The wire streams this source emits, to be sent before any frame.
    pub fn streams(&self) -> Vec<(u16, StreamInfo)> {
        let mut v = Vec::new();
        if let Some(d) = &self.video {
            let s = self.ictx.stream(d.index).expect("stream exists");
            let mut fps = rational(s.avg_frame_rate());
            if !fps.is_valid() {
                fps = rational(s.rate());
            }
            if fps.as_f64() > 1000.0 {
                fps = Rational::new(0, 0);
            }
            v.push((
                d.wire,
                StreamInfo {
                    kind: StreamKind::Video(VideoParams {
                        format: VideoFormat::Raw(d.out_format),
                        width: d.out_w,
                        height: d.out_h,
                        fps,
                        color: d.color,
                    }),
                    source_id: self.opts.source_id.clone(),
                    time_base: d.timing.time_base,
                    extradata: Vec::new(),
                    metadata: Default::default(),
                },
            ));
        }
        if let Some(a) = &self.audio {
            let (format, planar) = sample_from_av(a.decoder.format()).expect("checked when opened");
            v.push((
                a.wire,
                StreamInfo {
                    kind: StreamKind::Audio(AudioParams {
                        format,
                        planar,
                        channels: a.decoder.channels(),
                        sample_rate: a.decoder.rate(),
                    }),
                    source_id: self.opts.source_id.clone(),
                    time_base: a.timing.time_base,
                    extradata: Vec::new(),
                    metadata: Default::default(),
                },
            ));
        }
        v
    }

    /// Give a frame's buffer back for reuse once it has been written.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        if self.spare.len() < 4 {
            self.spare.push(buf);
        }
    }

    /// Decoding errors skipped so far (damaged packets, as ffmpeg skips them).
    pub fn decode_errors(&self) -> u64 {
        self.decode_errors
    }

    /// The next video frame or audio chunk, or `None` at the end of the input.
    pub fn next_message(&mut self) -> Result<Option<Message>, MediaError> {
        match self.next_output()? {
            None => Ok(None),
            Some(Output::Message(m)) => Ok(Some(m)),
            Some(Output::Video(v)) => {
                let buf = self.spare.pop().unwrap_or_default();
                v.into_message(buf).map(Some)
            }
        }
    }

    /// The next video frame or audio chunk, or `None` at the end of the input; with
    /// [`SourceOptions::decoder_frames`], frames the decoder made come as [`Output::Video`].
    pub fn next_output(&mut self) -> Result<Option<Output>, MediaError> {
        loop {
            match self.pending.front() {
                Some(Some(_)) => return Ok(self.pending.pop_front().flatten()),
                Some(None) => {
                    // the oldest frame is being converted: wait for it once the workers are
                    // full (or nothing more will come), else decode ahead meanwhile
                    let conv = self.converter.as_mut().expect("frames in conversion");
                    let block = self.ended || conv.in_flight() >= conv.capacity();
                    if let Some(r) = conv.take(block) {
                        self.pending.pop_front();
                        return r.map(|m| Some(Output::Message(m)));
                    }
                }
                None if self.ended => {
                    // everything decoded before a read error is out: now the error, so the
                    // stream ends without END and the stage exits 1
                    return match self.failed.take() {
                        Some(e) => Err(e),
                        None => Ok(None),
                    };
                }
                None => {}
            }
            let mut packet = av::Packet::empty();
            match packet.read(&mut self.ictx) {
                Ok(()) => self.decode_packet(&packet)?,
                Err(av::Error::Eof) => {
                    self.ended = true;
                    self.failed = self.cut_short();
                    self.drain()?;
                }
                Err(av::Error::Exit) => {
                    self.ended = true;
                    self.drain()?;
                }
                Err(e) => {
                    // A read error before the container's end: a file cut off (libav's
                    // "partial file") or damaged, or a connection lost. Pass on what decoded
                    // so far, then fail: a truncated input is not a finished one.
                    self.failed = Some(MediaError::av(format!("reading {}", self.name), e).hint(
                        "the input ends before its container does: it was cut off \
                             (truncated), damaged, or its connection was lost. The frames \
                             before that point were passed on",
                    ));
                    self.ended = true;
                    self.drain()?;
                }
            }
        }
    }

    /// Go back to the start (or `--start`) for `--loop`. Timestamps keep increasing.
    pub fn rewind(&mut self) -> Result<(), MediaError> {
        if !self.seekable {
            return Err(MediaError::new(
                format!("looping {}", self.name),
                "the input cannot be rewound (a pipe or a live stream)",
            ));
        }
        self.seek_to_start()?;
        if let Some(v) = &mut self.video {
            v.decoder.flush();
            v.timing.rewound();
        }
        if let Some(a) = &mut self.audio {
            a.decoder.flush();
            a.timing.rewound();
        }
        self.ended = false;
        Ok(())
    }

    fn seek_to_start(&mut self) -> Result<(), MediaError> {
        // libav seeks in microseconds; land on the keyframe at or before the start and
        // let the decode loop drop the frames before it
        let ts = (self.start_secs * 1_000_000.0) as i64;
        self.ictx
            .seek(ts, ..ts + 1)
            .or_else(|_| self.ictx.seek(0, ..1))
            .map_err(|e| MediaError::av(format!("seeking in {}", self.name), e))
    }

    /// At the end of the input: whether it ended before its container says it does. libav
    /// reports a cut-off MP4 ("partial file") only in its log and then returns a plain end
    /// of file, so the index is checked: it lists every sample, and a whole file yields
    /// them all. A read error left on the I/O context counts too.
    fn cut_short(&self) -> Option<MediaError> {
        let ctx = format!("reading {}", self.name);
        let hint = "the input ends before its container does: it was cut off (truncated) or \
                    damaged. The frames before that point were passed on";
        // SAFETY: `pb` of an open input context is null or a valid AVIOContext.
        #[allow(unsafe_code)]
        let io_error = unsafe {
            let pb = (*self.ictx.as_ptr()).pb;
            if pb.is_null() { 0 } else { (*pb).error }
        };
        if io_error < 0 && io_error != av::ffi::AVERROR_EOF {
            return Some(MediaError::av(ctx, av::Error::from(io_error)).hint(hint));
        }
        let indexed = self.ictx.format().name().contains("mov");
        if !indexed || self.start_secs > 0.0 {
            return None;
        }
        let (index, read) = match (&self.video, &self.audio) {
            (Some(v), _) if !v.timing.rewound => (v.index, self.packets.0),
            (None, Some(a)) if !a.timing.rewound => (a.index, self.packets.1),
            _ => return None,
        };
        let listed = self.ictx.stream(index).map_or(0, |s| s.frames());
        (listed > 0 && read < listed as u64).then(|| {
            MediaError::new(
                ctx,
                format!(
                    "the file is cut off: its index lists {listed} packets of stream {index}, \
                     the file holds {read}"
                ),
            )
            .hint(hint)
        })
    }

    fn decode_packet(&mut self, packet: &av::Packet) -> Result<(), MediaError> {
        let idx = packet.stream();
        if self.video.as_ref().is_some_and(|v| v.index == idx) {
            self.packets.0 += 1;
        } else if self.audio.as_ref().is_some_and(|a| a.index == idx) {
            self.packets.1 += 1;
        }
        if self.video.as_ref().is_some_and(|v| v.index == idx) {
            let v = self.video.as_mut().expect("checked");
            if let (Some(pts), Some(packed)) =
                (packet.pts(), crate::sink::stamps::from_packet(packet))
            {
                v.stamps.insert(pts, packed);
                // a decoder holds a few packets at most: never let this grow
                while v.stamps.len() > 1024 {
                    v.stamps.pop_first();
                }
            }
            if let Err(e) = v.decoder.send_packet(packet) {
                self.decode_error(e);
                return Ok(());
            }
            self.receive_video()?;
        } else if self.audio.as_ref().is_some_and(|a| a.index == idx) {
            let a = self.audio.as_mut().expect("checked");
            if let Err(e) = a.decoder.send_packet(packet) {
                self.decode_error(e);
                return Ok(());
            }
            self.receive_audio()?;
        }
        Ok(())
    }

    fn decode_error(&mut self, e: av::Error) {
        self.decode_errors += 1;
        if self.decode_errors <= 3 {
            log::warn!("{}: skipping damaged data: {e}", self.name);
        }
    }

    fn drain(&mut self) -> Result<(), MediaError> {
        if let Some(v) = &mut self.video {
            let _ = v.decoder.send_eof();
            self.receive_video()?;
        }
        if let Some(a) = &mut self.audio {
            let _ = a.decoder.send_eof();
            self.receive_audio()?;
        }
        Ok(())
    }

    /// Whether a decoder's `receive_frame` gave a frame. No frame for now (it wants more
    /// input) or ever (drained) is false; so is a decoding error, which is counted.
    fn received(&mut self, r: Result<(), av::Error>) -> bool {
        match r {
            Ok(()) => true,
            Err(av::Error::Other { errno }) if errno == av::util::error::EAGAIN => false,
            Err(av::Error::Eof) => false,
            Err(e) => {
                self.decode_error(e);
                false
            }
        }
    }

    fn receive_video(&mut self) -> Result<(), MediaError> {
        loop {
            let v = self.video.as_mut().expect("video decoder");
            let got = v.decoder.receive_frame(&mut self.frame);
            if !self.received(got) {
                return Ok(());
            }
            let v = self.video.as_mut().expect("video decoder");
            if self.frame.format() == Pixel::None || self.frame.width() == 0 {
                // swscale aborts the process on Pixel::None: never hand it one
                self.decode_error(av::Error::InvalidData);
                continue;
            }
            let raw = self.frame.timestamp().or(self.frame.pts());
            let tb = v.timing.time_base;
            if self.start_secs > 0.0
                && !v.timing.rewound
                && let Some(r) = raw
                && tb.ticks_to_secs(r) < self.start_secs - 1e-6
            {
                continue;
            }
            let duration = self.frame.packet().duration;
            let (pts, duration) = v.timing.stamp(raw, duration);
            let buf = self.spare.pop().unwrap_or_default();
            let src = (self.frame.format(), self.frame.width(), self.frame.height());
            let direct = from_av_pixel(src.0).is_some_and(|(f, _)| f == v.out_format)
                && src.1 == v.out_w
                && src.2 == v.out_h;
            if v.last_src.is_some_and(|last| last != src) {
                log::warn!(
                    "{}: the video changed to {:?} {}x{} mid-stream; converting it to {} {}x{}",
                    self.name,
                    src.0,
                    src.1,
                    src.2,
                    v.out_format,
                    v.out_w,
                    v.out_h
                );
            }
            v.last_src = Some(src);
            let mut info = FrameInfo {
                frame_number: v.timing.frames,
                pts,
                time_base: tb,
                duration,
                capture_time_ns: None,
                ptp_time_ns: None,
                source_id: self.opts.source_id.clone(),
                keyframe: true,
                metadata: Default::default(),
            };
            // stamps carried per packet (NUT written by sl-file -o): as they were
            if let Some(packed) = raw.and_then(|p| v.stamps.remove(&p)) {
                crate::sink::stamps::unpack(&packed, &mut info);
            }
            v.timing.frames += 1;
            if direct {
                // hand the decoded frame over without copying; the decoder fills a new one
                let frame = std::mem::replace(&mut self.frame, av::frame::Video::empty());
                let decoded = DecodedVideo {
                    stream: v.wire,
                    info,
                    format: v.out_format,
                    color: v.color,
                    frame,
                };
                let out = if self.opts.decoder_frames {
                    self.spare.push(buf);
                    Output::Video(decoded)
                } else {
                    Output::Message(decoded.into_message(buf)?)
                };
                self.pending.push_back(Some(out));
            } else {
                let workers = match self.opts.threads {
                    0 => std::thread::available_parallelism().map_or(2, |n| n.get().min(4)),
                    n => n,
                };
                let conv = self
                    .converter
                    .get_or_insert_with(|| Converter::new(workers));
                // hand the decoded frame over without copying; the decoder fills a new one
                let frame = std::mem::replace(&mut self.frame, av::frame::Video::empty());
                conv.submit(Job {
                    frame,
                    format: v.out_format,
                    width: v.out_w,
                    height: v.out_h,
                    color: v.color,
                    info,
                    stream: v.wire,
                    buf,
                    paged: self.opts.paged,
                    name: self.name.clone(),
                });
                self.pending.push_back(None);
            }
        }
    }

    fn receive_audio(&mut self) -> Result<(), MediaError> {
        loop {
            let a = self.audio.as_mut().expect("audio decoder");
            let got = a.decoder.receive_frame(&mut self.audio_frame);
            if !self.received(got) {
                return Ok(());
            }
            let a = self.audio.as_mut().expect("audio decoder");
            let f = &self.audio_frame;
            let Some((format, planar)) = sample_from_av(f.format()) else {
                continue;
            };
            let samples = f.samples();
            let channels = f.channels();
            if samples == 0 || channels == 0 {
                continue;
            }
            let raw = f.timestamp().or(f.pts());
            let tb = a.timing.time_base;
            if self.start_secs > 0.0
                && !a.timing.rewound
                && let Some(r) = raw
                && tb.ticks_to_secs(r) < self.start_secs - 1e-6
            {
                continue;
            }
            let plane = samples * format.bytes() * if planar { 1 } else { channels as usize };
            let mut data = Vec::with_capacity(plane * if planar { channels as usize } else { 1 });
            if planar {
                for c in 0..channels as usize {
                    data.extend_from_slice(&f.data(c)[..plane]);
                }
            } else {
                data.extend_from_slice(&f.data(0)[..plane]);
            }
            let duration = Rational::new(1, f.rate().max(1)).rescale(samples as i64, tb);
            let (pts, duration) = a.timing.stamp(raw, duration);
            let mut chunk =
                AudioChunk::new(format, f.rate(), channels, planar, samples as u32, data)?;
            chunk.info = FrameInfo {
                frame_number: a.timing.frames,
                pts,
                time_base: tb,
                duration,
                source_id: self.opts.source_id.clone(),
                ..FrameInfo::default()
            };
            a.timing.frames += 1;
            self.pending.push_back(Some(Output::Message(Message::Audio {
                stream: a.wire,
                chunk,
            })));
        }
    }
}

/// The codec parameters of stream `index`, or an error naming the codec when this FFmpeg has
/// no decoder for it.
fn decodable_params(
    ictx: &av::format::context::Input,
    index: usize,
    kind: &str,
    ctx: &str,
    hint: &str,
) -> Result<av::codec::Parameters, MediaError> {
    let params = ictx
        .stream(index)
        .expect("picked from the streams")
        .parameters();
    if av::decoder::find(params.id()).is_none() {
        return Err(MediaError::new(
            ctx,
            format!(
                "{kind} stream #{index} uses {}, which this FFmpeg cannot decode",
                codec_name(params.id())
            ),
        )
        .hint(hint));
    }
    Ok(params)
}

fn open_video(
    ictx: &av::format::context::Input,
    index: usize,
    wire: u16,
    opts: &SourceOptions,
    name: &str,
) -> Result<VideoDec, MediaError> {
    let stream = ictx.stream(index).expect("picked from the streams");
    let ctx = format!("opening {name}");
    let params = decodable_params(
        ictx,
        index,
        "video",
        &ctx,
        "convert it with ffmpeg first, or pick another stream with --video-stream",
    )?;
    let mut cctx =
        av::codec::Context::from_parameters(params).map_err(|e| MediaError::av(&ctx, e))?;
    // One frame thread per core. libavcodec's own default is one more than the cores, which
    // suits a decoder that has the machine to itself; in a pipeline the next stages need the
    // cores too. Measured on the 2-core test machine, medians of 6 alternating runs:
    // `sl-file in.mp4 | sl-file -o out.mp4` 0.915x ffmpeg's speed with 3 threads, 0.975x
    // with 2; `sl-file in.mp4 | sl-info` 1.00x and 1.05x; `-f rgba` 1.01x and 1.13x.
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    cctx.set_threading(av::codec::threading::Config {
        kind: av::codec::threading::Type::Frame,
        count: threads,
        ..Default::default()
    });
    let mut decoder = cctx
        .decoder()
        .video()
        .map_err(|e| MediaError::av(format!("opening the video decoder for {name}"), e))?;
    decoder.set_packet_time_base(stream.time_base());
    let native = decoder.format();
    if native == Pixel::None || decoder.width() == 0 || decoder.height() == 0 {
        return Err(MediaError::new(
            &ctx,
            format!("cannot tell the pixel format or size of video stream #{index}"),
        )
        .hint("the file may be damaged: check it with ffprobe"));
    }
    let mapped = from_av_pixel(native);
    let out_format = opts
        .format
        .or(mapped.map(|(f, _)| f))
        .unwrap_or_else(|| nearest_wire_format(native));
    if opts.format.is_none() && mapped.is_none() {
        log::info!(
            "{name}: {native:?} has no wire equivalent; emitting {out_format} (use --format to choose)"
        );
    }
    let (out_w, out_h) = opts.size.unwrap_or((decoder.width(), decoder.height()));
    let mut color = color_from_av(decoder.color_space(), decoder.color_range(), out_format);
    if let Some((_, Some(range))) = mapped {
        color.range = range;
    }
    if !out_format.is_yuv() && out_format != PixelFormat::Gray8 {
        color = ColorInfo::default_for(out_format);
    } else if mapped.is_none_or(|(f, _)| f != out_format) {
        // swscale made these pixels: limited range, BT.601 coefficients
        color = ColorInfo::default_for(out_format);
    }
    let time_base = rational(stream.time_base());
    let fps = rational(stream.avg_frame_rate());
    let default_duration = if fps.is_valid() {
        fps.inverse().rescale(1, time_base).max(1)
    } else {
        1
    };
    Ok(VideoDec {
        index,
        wire,
        decoder,
        out_format,
        out_w,
        out_h,
        color,
        last_src: None,
        timing: Timing::new(time_base, default_duration),
        stamps: Default::default(),
    })
}

fn open_audio(
    ictx: &av::format::context::Input,
    index: usize,
    wire: u16,
    name: &str,
) -> Result<AudioDec, MediaError> {
    let stream = ictx.stream(index).expect("picked from the streams");
    let ctx = format!("opening {name}");
    let params = decodable_params(
        ictx,
        index,
        "audio",
        &ctx,
        "use --no-audio, or pick another stream with --audio-stream",
    )?;
    let cctx = av::codec::Context::from_parameters(params).map_err(|e| MediaError::av(&ctx, e))?;
    let mut decoder = cctx
        .decoder()
        .audio()
        .map_err(|e| MediaError::av(format!("opening the audio decoder for {name}"), e))?;
    decoder.set_packet_time_base(stream.time_base());
    if sample_from_av(decoder.format()).is_none() || decoder.channels() == 0 || decoder.rate() == 0
    {
        return Err(MediaError::new(
            &ctx,
            format!(
                "audio stream #{index} has sample format {:?}, which the wire format cannot carry",
                decoder.format()
            ),
        ));
    }
    let time_base = rational(stream.time_base());
    Ok(AudioDec {
        index,
        wire,
        decoder,
        timing: Timing::new(time_base, 0),
    })
}

fn codec_name(id: av::codec::Id) -> String {
    if id == av::codec::Id::None {
        "a codec this FFmpeg does not know (an unknown codec tag)".into()
    } else {
        format!("the codec `{}`", id.name())
    }
}

fn open_error(ctx: &str, e: av::Error) -> MediaError {
    let err = MediaError::av(ctx, e);
    match e {
        // the interrupt callback said stop (SIGINT/SIGTERM), typically while a listener
        // (`srt://...?mode=listener`, `rtsp_flags=listen`) waited for its peer; libav words
        // it "Immediate exit requested"
        av::Error::Exit => MediaError {
            reason: "interrupted before it opened (no stream had arrived)".into(),
            ..err
        },
        av::Error::InvalidData => err.hint(
            "it is not a media file this FFmpeg can read, or it is damaged: check it with ffprobe",
        ),
        av::Error::ProtocolNotFound => {
            err.hint("this FFmpeg has no such protocol: see `ffmpeg -protocols`")
        }
        _ => err,
    }
}

const MP4_ON_STDIN: &str = "stdin is an MP4/MOV file with its index (moov) at the end, which \
     cannot be read from a pipe: pass the file name instead (`sl-file in.mp4`), or remux it for \
     streaming (`ffmpeg -i in.mp4 -c copy -movflags frag_keyframe+empty_moov -f mp4 -`)";

fn stdin_open_error(ctx: &str, e: av::Error, head: &[u8]) -> MediaError {
    let what = sl_wire::describe_foreign(head);
    let err = MediaError::av(ctx, e).hint(format!("stdin looks like {what}"));
    if head.len() >= 8 && &head[4..8] == b"ftyp" {
        return MediaError::av(ctx, e).hint(MP4_ON_STDIN);
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_numbers_frames_and_keeps_increasing_across_a_rewind() {
        let mut t = Timing::new(Rational::new(1, 90000), 3000);
        assert_eq!(t.stamp(Some(1000), 3000), (1000, 3000));
        assert_eq!(
            t.stamp(Some(4000), 0),
            (4000, 3000),
            "duration from the pts step"
        );
        assert_eq!(
            t.stamp(None, 0),
            (7000, 3000),
            "missing pts: right after the last"
        );
        t.rewound();
        // the first frame again: placed right after the last one
        assert_eq!(t.stamp(Some(1000), 3000), (10000, 3000));
    }

    #[test]
    fn a_real_timestamp_never_goes_back_before_a_guessed_one() {
        // what FFmpeg 5.1's RTSP demuxer gives: a first frame without pts, then -1320 + 3000n
        let mut t = Timing::new(Rational::new(1, 90000), 3000);
        assert_eq!(t.stamp(None, 0), (0, 3000));
        assert_eq!(t.stamp(Some(-1320), 0), (3000, 3000));
        assert_eq!(t.stamp(Some(1680), 0), (6000, 3000));
        // a guess that a later real timestamp does follow changes nothing
        let mut t = Timing::new(Rational::new(1, 90000), 3000);
        assert_eq!(t.stamp(Some(1000), 3000), (1000, 3000));
        assert_eq!(t.stamp(None, 0), (4000, 3000));
        assert_eq!(t.stamp(Some(7000), 0), (7000, 3000));
        // nor does a real timestamp going back after a real one (reordering is reported)
        assert_eq!(t.stamp(Some(5000), 0), (5000, 3000));
    }

    #[test]
    fn rationals_from_libav() {
        assert_eq!(
            rational(av::Rational::new(1, 15360)),
            Rational::new(1, 15360)
        );
        assert!(!rational(av::Rational::new(0, 1)).is_valid());
        assert!(!rational(av::Rational::new(-1, 1)).is_valid());
    }
}
