//! Writing: encode frames and audio chunks and mux them into a file or URL.
//!
//! Policy for frames that change format or size mid-stream: every frame is converted (and
//! scaled) to the pixel format and size of the stream's first description, with a warning
//! the first time; the output keeps one size. Audio whose layout changes is converted the same
//! way; a sample-rate change is refused (no resampling here).

use av::format::Pixel;
use av::format::Sample;
use av::format::sample::Type as SampleType;
use av::software::scaling;
use ffmpeg_next as av;
use sl_frame::{
    AudioChunk, ColorInfo, Matrix, PixelFormat, Range, Rational, SampleFormat, VideoFrame,
};
use sl_wire::{StreamInfo, VideoFormat};

use std::sync::Arc;

use crate::MediaError;
use crate::output::{self, Failures, Hooks, LocalFile, Opened};
use crate::pixels::{frame_into_av, to_av_pixel};

/// The longest fragment of a fragmented MP4/MOV, in microseconds of stream time.
const FRAGMENT_MICROS: u64 = 1_000_000;

/// A forward jump longer than this (in seconds), or any backward step longer than
/// [`BACKWARD_JUMP`], is a discontinuity: the timestamps after it are re-based to follow on.
/// (ffmpeg's own threshold for discontinuities, `-dts_delta_threshold`, is 10 s too.)
const FORWARD_JUMP: f64 = 10.0;
const BACKWARD_JUMP: f64 = 1.0;

/// Timestamps made continuous: a jump (a clock reset, a day's gap, an MPEG-TS 2^33 wrap)
/// is taken out, with a warning, so the output keeps playing across it (an MP4 cannot hold
/// a sample lasting a day: the muxer failed with "Not yet implemented in FFmpeg"). One
/// offset serves video and audio, so they stay in step when both jump.
#[derive(Debug, Default)]
struct Timeline {
    /// Seconds taken off every timestamp.
    shift: f64,
    /// Where the last video frame and the last audio chunk ended (after the shift).
    video_end: Option<f64>,
    audio_end: Option<f64>,
    jumps: u64,
}

impl Timeline {
    /// The timestamp to use for something at `raw` seconds lasting `step` seconds.
    fn place(&mut self, raw: f64, step: f64, audio: bool, name: &str) -> f64 {
        let mut t = raw - self.shift;
        let end = if audio {
            &mut self.audio_end
        } else {
            &mut self.video_end
        };
        if let Some(prev) = *end {
            let gap = t - prev;
            if !(-BACKWARD_JUMP..=FORWARD_JUMP).contains(&gap) {
                self.shift += gap;
                t = prev;
                self.jumps += 1;
                if self.jumps <= 3 {
                    log::warn!(
                        "{name}: the {} timestamps jumped by {gap:.3} s: re-based to follow on \
                         (the output's timeline leaves the jump out)",
                        if audio { "audio" } else { "video" }
                    );
                }
            }
        }
        let end = if audio {
            &mut self.audio_end
        } else {
            &mut self.video_end
        };
        *end = Some(t + step.max(0.0));
        t
    }
}

/// A file created while opening a sink, removed if opening fails.
struct Created(Option<LocalFile>);

impl Drop for Created {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f.discard();
        }
    }
}

/// How to encode and mux.
#[derive(Debug, Clone, Default)]
pub struct SinkOptions {
    /// libavformat muxer name (`mp4`, `matroska`, `mpegts`, `nut`...) or a common alias
    /// (`mkv`, `ts`, `y4m`); `None`: from the output's extension or URL scheme.
    pub container: Option<String>,
    /// Video encoder (`libx264`, `ffv1`, `rawvideo`...); `None`: the container's default.
    pub video_codec: Option<String>,
    /// Audio encoder (`aac`, `pcm_s16le`...); `None`: the container's default.
    pub audio_codec: Option<String>,
    /// x264-style constant rate factor (quality; lower is better).
    pub crf: Option<f32>,
    /// Encoder speed preset (libx264: ultrafast ... veryslow).
    pub preset: Option<String>,
    /// Video bit rate in bits per second (instead of --crf).
    pub video_bitrate: Option<u64>,
    /// Audio bit rate in bits per second.
    pub audio_bitrate: Option<u64>,
    /// Keyframe interval in frames; `None`: two seconds.
    pub gop: Option<u32>,
    /// Fragmented MP4/MOV (a file that stays playable if the writer is killed).
    pub fragmented: bool,
    /// Extra encoder options (`tune=zerolatency`, `x264-params=...`).
    pub codec_options: Vec<(String, String)>,
    /// Extra muxer options (`hls_time=4`, `movflags=...`).
    pub format_options: Vec<(String, String)>,
    /// Encoder threads (0: automatic).
    pub threads: usize,
    /// Scale the video to this size (else the first stream description's size).
    pub size: Option<(u32, u32)>,
}

/// The libavformat muxer for `output`: `explicit` (aliases allowed), else from the URL
/// scheme or the extension. `None`: let libavformat guess from the name.
pub fn container_for(output: &str, explicit: Option<&str>) -> Option<String> {
    let alias = |s: &str| -> String {
        match s.to_ascii_lowercase().as_str() {
            "mkv" | "matroska" => "matroska".into(),
            "ts" | "mpegts" | "m2ts" => "mpegts".into(),
            "y4m" | "yuv4mpegpipe" => "yuv4mpegpipe".into(),
            "m4v" | "mp4" => "mp4".into(),
            "mov" => "mov".into(),
            other => other.to_string(),
        }
    };
    if let Some(c) = explicit {
        return Some(alias(c));
    }
    let lower = output.to_ascii_lowercase();
    if lower.starts_with("rtmp://") || lower.starts_with("rtmps://") {
        return Some("flv".into());
    }
    if lower.starts_with("srt://") || lower.starts_with("udp://") {
        return Some("mpegts".into());
    }
    if lower.starts_with("rtsp://") {
        return Some("rtsp".into());
    }
    if output == "-" {
        return Some("nut".into());
    }
    let ext = std::path::Path::new(output)
        .extension()
        .and_then(|e| e.to_str())?;
    match ext.to_ascii_lowercase().as_str() {
        "mkv" | "ts" | "m2ts" | "y4m" | "mp4" | "m4v" | "mov" => Some(alias(ext)),
        _ => None,
    }
}

/// Default encoders for a muxer: (video, audio). `None` audio: the container takes no audio.
fn default_codecs(container: &str) -> (Option<&'static str>, Option<&'static str>) {
    match container {
        "mp4" | "mov" | "matroska" | "mpegts" | "flv" | "hls" | "dash" | "rtsp" => {
            (Some("libx264"), Some("aac"))
        }
        "webm" => (Some("libvpx-vp9"), Some("libopus")),
        // FFmpeg 5.1's y4m muxer takes only wrapped_avframe ("ERROR: Codec not supported"
        // for rawvideo): raw frames passed by reference
        "yuv4mpegpipe" => (Some("wrapped_avframe"), None),
        "nut" => (Some("rawvideo"), Some("pcm_s16le")),
        _ => (None, None),
    }
}

/// Whether a container can be written to a pipe.
fn streamable(container: &str, fragmented: bool) -> bool {
    !matches!(container, "mp4" | "mov" | "ipod" | "3gp") || fragmented
}

struct VideoEnc {
    index: usize,
    encoder: av::encoder::Video,
    format: Pixel,
    width: u32,
    height: u32,
    time_base: Rational,
    /// One frame in the encoder time base (libx264 in FFmpeg 5.1 leaves packet durations 0).
    frame_ticks: i64,
    last_pts: Option<i64>,
    scaler: Option<((PixelFormat, u32, u32), scaling::Context)>,
    warned_change: bool,
    /// The picture's own size when the encoder's is one larger to be even (4:2:0 for
    /// libx264): the last column and row are repeated into the padding.
    padded_from: Option<(u32, u32)>,
    color: ColorInfo,
    /// Force a keyframe every this many seconds of stream time (see
    /// [`Sink::force_keyframes_every`]), and when the next one is due.
    key_interval: Option<f64>,
    next_key: f64,
    /// Frames' stamps (capture time, PTP time, source id) by encoder pts, waiting for their
    /// packet: NUT carries them per packet (see [`stamps`]); other containers have no place.
    stamps: Option<std::collections::BTreeMap<i64, Vec<u8>>>,
}

struct AudioEnc {
    index: usize,
    encoder: av::encoder::Audio,
    format: Sample,
    /// The encoder's sample rate.
    rate: u32,
    /// The input's sample rate, when the encoder takes another one: samples go through
    /// libswresample.
    resample: Option<Resampler>,
    channels: u16,
    layout: av::ChannelLayout,
    frame_size: usize,
    /// Samples not yet encoded, one buffer per channel.
    fifo: Vec<Vec<f32>>,
    next_pts: Option<i64>,
}

/// What an opened encoder makes, as manifests that describe a stream need it (HLS's
/// `CODECS`, DASH's `codecs`): read back from the encoder after it opened, never assumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// libavcodec's codec name (`h264`, `hevc`, `aac`, `mp3`...), whichever encoder made it.
    pub codec: String,
    /// The encoder's profile (`AVCodecContext.profile`, e.g. 1 for AAC-LC), if it set one.
    pub profile: Option<i32>,
    /// The encoder's global header (`extradata`): for H.264 the SPS and PPS (Annex B or
    /// avcC), for AAC the AudioSpecificConfig. Empty if the encoder wrote none.
    pub extradata: Vec<u8>,
}

impl Encoded {
    fn of(ctx: &av::codec::Context) -> Encoded {
        let (profile, extradata) = profile_and_extradata(ctx);
        Encoded {
            codec: ctx.id().name().to_string(),
            profile,
            extradata,
        }
    }
}

/// `profile` and `extradata` of an opened codec context (ffmpeg-next has no accessor for
/// either on an encoder).
#[allow(unsafe_code)]
fn profile_and_extradata(ctx: &av::codec::Context) -> (Option<i32>, Vec<u8>) {
    // SAFETY: `ctx` owns a valid AVCodecContext for the duration of the borrow; libavcodec
    // sets `extradata` and `extradata_size` together when the encoder opens (and pads the
    // buffer), and nothing mutates them while we hold a shared borrow.
    unsafe {
        let c = &*ctx.as_ptr();
        let extradata = if c.extradata.is_null() || c.extradata_size <= 0 {
            Vec::new()
        } else {
            std::slice::from_raw_parts(c.extradata, c.extradata_size as usize).to_vec()
        };
        // FF_PROFILE_UNKNOWN is -99
        let profile = (c.profile >= 0).then_some(c.profile);
        (profile, extradata)
    }
}

/// An open output: encoders, muxer and its I/O. Frames go in with [`Sink::write_video`] and
/// [`Sink::write_audio`]; [`Sink::finish`] flushes the encoders and writes the trailer. If it
/// is dropped without `finish` (an error path), the trailer is still written.
pub struct Sink {
    name: String,
    /// The libavformat muxer.
    muxer: String,
    /// Fragmented MP4/MOV (playable up to the last fragment if cut off).
    fragmented: bool,
    octx: av::format::context::Output,
    /// Declared after `octx`, so dropped after it: libav may close files through them
    /// while the context is freed.
    #[allow(dead_code)]
    hooks: Box<Hooks>,
    /// The local file written, if the output is one.
    file: Option<LocalFile>,
    failures: Arc<Failures>,
    video: Option<VideoEnc>,
    audio: Option<AudioEnc>,
    origin: Option<f64>,
    /// Seconds taken off every timestamp since the last jump (see [`Timeline`]).
    timeline: Timeline,
    finished: bool,
    video_frames: u64,
    audio_samples: u64,
    packet: av::Packet,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("name", &self.name)
            .field("video_frames", &self.video_frames)
            .field("audio_samples", &self.audio_samples)
            .finish()
    }
}

/// A stream to open a sink with: its wire description.
pub type SinkStream<'a> = &'a StreamInfo;

impl Sink {
    /// Open `output` (a path, a URL, or `-` for stdout) for the given video and/or audio
    /// stream, set up the encoders and write the container header.
    pub fn open(
        output: &str,
        video: Option<SinkStream<'_>>,
        audio: Option<SinkStream<'_>>,
        opts: &SinkOptions,
    ) -> Result<Sink, MediaError> {
        crate::init();
        let name = if output == "-" {
            "stdout".to_string()
        } else {
            output.to_string()
        };
        let ctx = format!("opening {name} for writing");
        let container = container_for(output, opts.container.as_deref());
        let mut fragmented = opts.fragmented;
        if let Some(c) = &container
            && output == "-"
            && !streamable(c, fragmented)
        {
            log::info!("{c} to a pipe: writing it fragmented");
            fragmented = true;
        }
        let path = if output == "-" { "pipe:1" } else { output };
        let failures = Arc::new(Failures::default());
        let open_error = |e: av::Error| {
            let err = MediaError::av(&ctx, e);
            match e {
                av::Error::InvalidData | av::Error::MuxerNotFound => err.hint(
                    "cannot tell the container from the name: give it with --container \
                     (mp4, mkv, mov, ts, flv, nut, y4m, webm)",
                ),
                av::Error::Other { errno } if errno == av::util::error::EINVAL => {
                    MediaError::new(&ctx, "cannot tell the container from the name").hint(
                        "give it with --container (mp4, mkv, mov, ts, flv, nut, y4m, webm), \
                         or use one of those extensions",
                    )
                }
                _ => err,
            }
        };
        let opened = if output::is_local(output) {
            output::open_local(output, container.as_deref(), &failures).map_err(
                |e| match failures.first() {
                    Some(f) => MediaError::new(&ctx, f.text).with_errno(f.errno),
                    None => open_error(e),
                },
            )?
        } else {
            let mut io_opts = av::Dictionary::new();
            if path.starts_with("srt://") && !path.contains("linger") {
                // SRT in live mode drops what is still unsent when the socket closes: without
                // a linger the last second or so of a recording never reaches the listener
                io_opts.set("linger", "5");
            }
            let mut octx = match &container {
                Some(c) => av::format::output_as_with(path, c, io_opts),
                None => av::format::output_with(path, io_opts),
            }
            .map_err(open_error)?;
            let hooks = output::install_hooks(&mut octx, &failures);
            Opened {
                octx,
                file: None,
                hooks,
            }
        };
        // The hooks must outlive the context (libav may close files through them while the
        // context is freed): declared first, dropped last.
        let hooks = opened.hooks;
        let mut octx = opened.octx;
        // from here on, a failure removes what was created (an existing file stays)
        let mut created = Created(opened.file);
        let muxer = octx.format().name().to_string();
        // the segment muxers write another container into each segment: its defaults
        let inner = match muxer.as_str() {
            "segment" | "ssegment" | "stream_segment" => opts
                .format_options
                .iter()
                .rev()
                .find(|(k, _)| k == "segment_format")
                .and_then(|(_, v)| container_for(output, Some(v)))
                .or_else(|| container_for(output, None))
                .unwrap_or_else(|| "mpegts".into()),
            _ => muxer.clone(),
        };
        let (default_video, default_audio) = default_codecs(&inner);
        let global_header = octx
            .format()
            .flags()
            .contains(av::format::Flags::GLOBAL_HEADER);

        let mut sink_video = None;
        if let Some(info) = video {
            let codec_name = match (&opts.video_codec, default_video) {
                (Some(c), _) => c.clone(),
                (None, Some(c)) => c.to_string(),
                (None, None) => {
                    let id = octx.format().codec(path, av::media::Type::Video);
                    av::encoder::find(id)
                        .map(|c| c.name().to_string())
                        .ok_or_else(|| {
                            MediaError::new(&ctx, format!("{muxer} has no default video encoder"))
                                .hint("choose one with --codec")
                        })?
                }
            };
            sink_video = Some(open_video_encoder(
                &mut octx,
                &codec_name,
                &muxer,
                info,
                opts,
                global_header,
                &name,
            )?);
        }
        let mut sink_audio = None;
        if let Some(info) = audio {
            let codec_name = match (&opts.audio_codec, default_audio) {
                (Some(c), _) => Some(c.clone()),
                (None, Some(c)) => Some(c.to_string()),
                (None, None) if default_video.is_some() => None,
                (None, None) => {
                    // a container we have no defaults for: its own default audio encoder
                    let id = octx.format().codec(path, av::media::Type::Audio);
                    av::encoder::find(id).map(|c| c.name().to_string())
                }
            };
            match codec_name {
                None => log::warn!("{name}: {muxer} takes no audio here; dropping the audio"),
                Some(c) => {
                    match open_audio_encoder(&mut octx, &c, info, opts, global_header, &name) {
                        Ok(a) => sink_audio = Some(a),
                        Err(e) if sink_video.is_some() => {
                            log::warn!("{e}; writing video only")
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        if sink_video.is_none() && sink_audio.is_none() {
            return Err(MediaError::new(
                &ctx,
                "nothing to write: no video or audio stream",
            ));
        }

        let mut fopts = av::Dictionary::new();
        let fragmented = fragmented && matches!(muxer.as_str(), "mp4" | "mov" | "ipod");
        if fragmented {
            // A fragment on every keyframe and at least every second of stream time, each
            // flushed to the file as soon as it is complete: killed at any moment (kill -9,
            // a power cut aside), the file loses at most the fragment in progress, whatever
            // the bit rate. (Left to libav, fragments sat in its 32 KiB buffer: a
            // low-bit-rate live recording killed after a minute held 28 bytes.)
            fopts.set("movflags", "+frag_keyframe+empty_moov+default_base_moof");
            fopts.set("frag_duration", &FRAGMENT_MICROS.to_string());
            fopts.set("flush_packets", "1");
        }
        if muxer == "image2"
            && !output.contains('%')
            && !opts.format_options.iter().any(|(k, _)| k == "update")
        {
            // one file name without a %d pattern: each frame replaces the last (libav's
            // `-update`), rather than failing at the second frame
            log::info!(
                "{name} has no %d in its name: each frame overwrites it (name it like \
                 frame%04d.png for one file per frame)"
            );
            fopts.set("update", "1");
        }
        if muxer == "nut"
            && let Some(v) = sink_video.as_mut()
            && !opts.format_options.iter().any(|(k, _)| k == "syncpoints")
        {
            // Per-packet metadata (the frames' stamps) needs NUT version 4, which FFmpeg
            // writes only when asked for a syncpoint mode and told it may be experimental;
            // its NUT reader takes it, and hands the metadata to the decoded frame.
            fopts.set("syncpoints", "timestamped");
            fopts.set("strict", "experimental");
            v.stamps = Some(Default::default());
        }
        for (k, v) in &opts.format_options {
            fopts.set(k, v);
        }
        {
            // write_header_with returns a dictionary that borrows the context: own scope
            let left = octx.write_header_with(fopts).map_err(|e| {
                let err = match failures.first() {
                    Some(f) => MediaError::new(
                        format!("writing the header of {name}"),
                        format!("{} ({})", f.text, f.file),
                    )
                    .with_errno(f.errno),
                    None => MediaError::av(format!("writing the header of {name}"), e),
                };
                if output == "-" || path.contains("://") {
                    err.hint("a pipe or URL needs a streamable container: nut, mkv, ts, flv, or mp4 with --fragmented")
                } else {
                    err
                }
            })?;
            for (k, _) in left.iter() {
                log::warn!("{name}: the muxer did not use option `{k}`");
            }
        }
        Ok(Sink {
            name,
            muxer,
            fragmented,
            octx,
            hooks,
            file: created.0.take(),
            failures,
            video: sink_video,
            audio: sink_audio,
            origin: None,
            timeline: Timeline::default(),
            finished: false,
            video_frames: 0,
            audio_samples: 0,
            packet: av::Packet::empty(),
        })
    }

    /// Video frames encoded so far.
    pub fn video_frames(&self) -> u64 {
        self.video_frames
    }

    /// Whether the sink writes audio (false if it has none or dropped it).
    pub fn has_audio(&self) -> bool {
        self.audio.is_some()
    }

    pub fn has_video(&self) -> bool {
        self.video.is_some()
    }

    /// What the video encoder makes (codec, profile, SPS/PPS), if there is video.
    pub fn video_encoded(&self) -> Option<Encoded> {
        self.video.as_ref().map(|v| Encoded::of(&v.encoder))
    }

    /// What the audio encoder makes (codec, profile, AudioSpecificConfig), if there is audio.
    pub fn audio_encoded(&self) -> Option<Encoded> {
        self.audio.as_ref().map(|a| Encoded::of(&a.encoder))
    }

    /// Force a keyframe on every multiple of `secs` of stream time (from the first frame),
    /// whatever the frame rate: the HLS stage puts segment boundaries on this grid, so
    /// sources with a variable or unknown rate still get a keyframe at each boundary.
    /// `None` turns it off (the encoder's own keyframe interval applies either way).
    pub fn force_keyframes_every(&mut self, secs: Option<f64>) {
        if let Some(v) = self.video.as_mut() {
            v.key_interval = secs.filter(|s| *s > 0.0);
            v.next_key = 0.0;
        }
    }

    fn origin(&mut self, secs: f64) -> f64 {
        *self.origin.get_or_insert(secs)
    }

    /// Encode one video frame (converted and scaled to the stream's first format and size).
    pub fn write_video(&mut self, frame: &VideoFrame) -> Result<(), MediaError> {
        let step = if frame.info.duration > 0 {
            frame.info.time_base.ticks_to_secs(frame.info.duration)
        } else {
            self.video.as_ref().map_or(1.0 / 30.0, |v| {
                v.frame_ticks.max(1) as f64 * v.time_base.as_f64()
            })
        };
        let secs = self
            .timeline
            .place(frame.info.pts_secs(), step, false, &self.name);
        let origin = self.origin(secs);
        let Some(v) = self.video.as_mut() else {
            return Ok(());
        };
        let key = (frame.format(), frame.width(), frame.height());
        // the picture's size: the encoder's, or the odd size it is padded from
        let (pic_w, pic_h) = v.padded_from.unwrap_or((v.width, v.height));
        let direct = to_av_pixel(frame.format()) == v.format
            && frame.width() == pic_w
            && frame.height() == pic_h;
        let mut av_frame = av::frame::Video::new(v.format, v.width, v.height);
        let mut pic = if v.padded_from.is_some() {
            av::frame::Video::new(v.format, pic_w, pic_h)
        } else {
            av::frame::Video::empty()
        };
        let target = if v.padded_from.is_some() {
            &mut pic
        } else {
            &mut av_frame
        };
        if direct {
            frame_into_av(frame, target);
        } else {
            if v.scaler.as_ref().is_none_or(|(k, _)| *k != key) {
                if v.scaler.is_some() && !v.warned_change {
                    log::warn!(
                        "{}: frames changed to {} {}x{} mid-stream; scaling them to {}x{}",
                        self.name,
                        key.0,
                        key.1,
                        key.2,
                        pic_w,
                        pic_h
                    );
                    v.warned_change = true;
                }
                let ctx = scaling::Context::get(
                    to_av_pixel(key.0),
                    key.1,
                    key.2,
                    v.format,
                    pic_w,
                    pic_h,
                    scaling::Flags::BICUBIC,
                )
                .map_err(|e| {
                    MediaError::av(format!("converting {} for {}", key.0, self.name), e)
                })?;
                v.scaler = Some((key, ctx));
            }
            let mut src = av::frame::Video::new(to_av_pixel(key.0), key.1, key.2);
            frame_into_av(frame, &mut src);
            let (_, scaler) = v.scaler.as_mut().expect("just made");
            scaler
                .run(&src, target)
                .map_err(|e| MediaError::av(format!("converting a frame for {}", self.name), e))?;
        }
        if v.padded_from.is_some() {
            pad_into(&pic, &mut av_frame);
        }
        set_color(&mut av_frame, v.color);
        // timestamps: from the frame's own clock, relative to the first frame of any stream
        let tb = v.time_base.as_f64();
        let mut pts = ((secs - origin) / tb).round() as i64;
        if let Some(last) = v.last_pts
            && pts <= last
        {
            pts = last + 1;
        }
        v.last_pts = Some(pts);
        av_frame.set_pts(Some(pts));
        if let Some(waiting) = v.stamps.as_mut()
            && let Some(packed) = stamps::pack(&frame.info)
        {
            waiting.insert(pts, packed);
            // an encoder holds a few frames at most: never let this grow
            while waiting.len() > 1024 {
                waiting.pop_first();
            }
        }
        if let Some(every) = v.key_interval {
            // a thousandth of a second of slack: 60 frames at 1/30 s may sum to 1.9999...
            let t = pts as f64 * tb + 1e-3;
            if t >= v.next_key {
                av_frame.set_kind(av::picture::Type::I);
                v.next_key = ((t / every).floor() + 1.0) * every;
            }
        }
        v.encoder
            .send_frame(&av_frame)
            .map_err(|e| MediaError::av(format!("encoding video for {}", self.name), e))?;
        self.video_frames += 1;
        let r = self.drain_video();
        r.map_err(|e| self.explain(e))
    }

    /// Encode one audio chunk (converted to the encoder's sample format).
    pub fn write_audio(&mut self, chunk: &AudioChunk) -> Result<(), MediaError> {
        let step = chunk.samples() as f64 / chunk.sample_rate().max(1) as f64;
        let secs = self
            .timeline
            .place(chunk.info.pts_secs(), step, true, &self.name);
        let origin = self.origin(secs);
        let Some(a) = self.audio.as_mut() else {
            return Ok(());
        };
        let in_rate = a.resample.as_ref().map_or(a.rate, |r| r.in_rate);
        if chunk.sample_rate() != in_rate {
            return Err(MediaError::new(
                format!("encoding audio for {}", self.name),
                format!(
                    "the sample rate changed from {} to {} Hz mid-stream",
                    in_rate,
                    chunk.sample_rate()
                ),
            ));
        }
        if a.next_pts.is_none() {
            a.next_pts = Some((((secs - origin) * a.rate as f64).round() as i64).max(0));
        }
        match &mut a.resample {
            None => push_samples(&mut a.fifo, chunk, a.channels),
            Some(r) => {
                push_samples(&mut r.pending, chunk, a.channels);
                r.convert(&mut a.fifo, false).map_err(|e| {
                    MediaError::av(format!("resampling audio for {}", self.name), e)
                })?;
            }
        }
        self.audio_samples += chunk.samples() as u64;
        while self
            .audio
            .as_ref()
            .is_some_and(|a| a.fifo[0].len() >= a.frame_size)
        {
            self.encode_audio_frame()?;
        }
        Ok(())
    }

    /// Encode up to one encoder frame from the FIFO (a short last one at the end).
    fn encode_audio_frame(&mut self) -> Result<(), MediaError> {
        let a = self.audio.as_mut().expect("audio encoder");
        let n = a.fifo[0].len().min(a.frame_size);
        if n == 0 {
            return Ok(());
        }
        let mut frame = av::frame::Audio::new(a.format, n, a.layout);
        frame.set_channels(a.channels);
        frame.set_rate(a.rate);
        fill_audio(&mut frame, &a.fifo, n, a.format);
        for ch in &mut a.fifo {
            ch.drain(..n);
        }
        let pts = a.next_pts.unwrap_or(0);
        frame.set_pts(Some(pts));
        a.next_pts = Some(pts + n as i64);
        a.encoder
            .send_frame(&frame)
            .map_err(|e| MediaError::av(format!("encoding audio for {}", self.name), e))?;
        let r = self.drain_audio();
        r.map_err(|e| self.explain(e))
    }

    fn drain_video(&mut self) -> Result<(), MediaError> {
        let v = self.video.as_mut().expect("video encoder");
        let tb = av_rational(v.time_base);
        let (index, ticks) = (v.index, v.frame_ticks);
        drain_packets(
            &mut v.encoder,
            &mut self.packet,
            &mut self.octx,
            index,
            tb,
            ticks,
            "video",
            &self.name,
            v.stamps.as_mut(),
        )
    }

    fn drain_audio(&mut self) -> Result<(), MediaError> {
        let a = self.audio.as_mut().expect("audio encoder");
        let tb = av::Rational::new(1, a.rate as i32);
        let index = a.index;
        drain_packets(
            &mut a.encoder,
            &mut self.packet,
            &mut self.octx,
            index,
            tb,
            0,
            "audio",
            &self.name,
            None,
        )
    }

    /// Flush the encoders, write the trailer and put the file in place: a finished
    /// recording. An existing file is replaced by it only now, and only if it was written
    /// whole. Safe to call twice.
    pub fn finish(&mut self) -> Result<(), MediaError> {
        self.finalise(true)
    }

    /// Finalise after the input failed (truncated upstream, a decoding error): the output
    /// is made playable, but an existing file it would replace is left as it was, and what
    /// arrived is kept next to it under its temporary name (said in the error).
    pub fn finish_incomplete(&mut self) -> Result<(), MediaError> {
        self.finalise(false)
    }

    /// Give up on the output: flush nothing more, remove what was written (a new file, or
    /// the temporary file; an existing file stays as it was).
    pub fn discard(mut self) {
        self.finished = true;
        let _ = self.octx.write_trailer();
        if let Some(f) = &self.file {
            f.discard();
        }
    }

    /// The file the output is written to until finalised, when it replaces an existing one.
    pub fn temporary_file(&self) -> Option<&std::path::Path> {
        self.file
            .as_ref()
            .filter(|f| f.replaces())
            .map(|f| f.writing.as_path())
    }

    /// The first write failure of the output, if any ("No space left on device (os error
    /// 28) (out/seg_00003.ts)").
    pub fn write_failure(&self) -> Option<String> {
        self.failures
            .first()
            .map(|f| format!("{} ({})", f.text, f.file))
    }

    fn finalise(&mut self, complete: bool) -> Result<(), MediaError> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        let mut first_err = None;
        if self.video.is_some() {
            let r = self
                .video
                .as_mut()
                .expect("checked")
                .encoder
                .send_eof()
                .map_err(|e| MediaError::av(format!("flushing video for {}", self.name), e))
                .and_then(|()| self.drain_video());
            if let Err(e) = r {
                first_err.get_or_insert(e);
            }
        }
        if self.audio.is_some() {
            let mut r = Ok(());
            if let Some(a) = self.audio.as_mut()
                && let Some(rs) = a.resample.as_mut()
                && let Err(e) = rs.convert(&mut a.fifo, true)
            {
                r = Err(MediaError::av(
                    format!("resampling audio for {}", self.name),
                    e,
                ));
            }
            while r.is_ok() && self.audio.as_ref().is_some_and(|a| !a.fifo[0].is_empty()) {
                r = self.encode_audio_frame();
            }
            let r = r.and_then(|()| {
                self.audio
                    .as_mut()
                    .expect("checked")
                    .encoder
                    .send_eof()
                    .map_err(|e| MediaError::av(format!("flushing audio for {}", self.name), e))
                    .and_then(|()| self.drain_audio())
            });
            if let Err(e) = r {
                first_err.get_or_insert(e);
            }
        }
        // the trailer even after an encoder error: what was muxed stays playable
        if let Err(e) = self.octx.write_trailer() {
            first_err.get_or_insert(MediaError::av(format!("finalising {}", self.name), e));
        }
        if first_err.is_none() && self.failures.first().is_some() {
            // a muxer that writes its own files (hls) may finish "successfully" after one
            // of them failed
            first_err = Some(MediaError::new(
                format!("finalising {}", self.name),
                "a write failed",
            ));
        }
        if let Some(f) = &self.file {
            let failed = self.failures.first().is_some();
            if f.replaces() && failed {
                // a recording cut short by a write error never replaces the old file
                f.discard();
            } else if complete || !f.replaces() {
                if let Err(e) = f.commit(&self.failures) {
                    first_err.get_or_insert(MediaError::new(
                        format!("finalising {}", self.name),
                        e.to_string(),
                    ));
                }
            } else {
                first_err.get_or_insert(
                    MediaError::new(
                        format!("finalising {}", self.name),
                        "the input did not finish",
                    )
                    .hint(format!(
                        "{} was left as it was; what arrived is in {}",
                        f.target.display(),
                        f.writing.display()
                    )),
                );
            }
        }
        match first_err {
            Some(e) => Err(self.explain(e)),
            None => Ok(()),
        }
    }

    /// A write error as the user needs it: what failed, on which file, and what was lost.
    fn explain(&self, e: MediaError) -> MediaError {
        let Some(f) = self.failures.first() else {
            return e;
        };
        let full = if f.disk_full() {
            "the disk is full: "
        } else {
            ""
        };
        let lost = match &self.file {
            Some(file) if file.replaces() => format!(
                "{}{} was left as it was; the new recording ({} video frames) was not kept",
                full,
                file.target.display(),
                self.video_frames
            ),
            Some(_)
                if matches!(self.muxer.as_str(), "mp4" | "mov" | "ipod") && !self.fragmented =>
            {
                format!(
                    "{full}{} is incomplete and will not play: an MP4 gets its index when it is \
                     finalised. Record to a disk with room; --fragmented (or .mkv, .ts) keeps \
                     what reached the disk when a recording is cut off",
                    self.name
                )
            }
            Some(_) => format!(
                "{full}{} keeps what reached the disk before the error; the video frames \
                 encoded after it (up to {}) were lost",
                self.name, self.video_frames
            ),
            None => format!(
                "{full}{} and what came after it were not written; the files written before it \
                 are kept",
                f.file
            ),
        };
        MediaError {
            context: format!("writing {}", self.name),
            reason: format!("{} ({})", f.text, f.file),
            hint: Some(lost),
            ..e
        }
        .with_errno(f.errno)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if !self.finished
            && let Err(e) = self.finish_incomplete()
        {
            log::warn!("{e}");
        }
    }
}

fn av_rational(r: Rational) -> av::Rational {
    av::Rational::new(r.num as i32, r.den as i32)
}

/// Copy `pic` into the top left of the larger `out` (same 8-bit planar or NV12 format), the
/// last column and row repeated into the rest.
fn pad_into(pic: &av::frame::Video, out: &mut av::frame::Video) {
    let nv12 = pic.format() == Pixel::NV12;
    for p in 0..pic.planes().min(out.planes()) {
        let bytes = |f: &av::frame::Video| {
            let w = f.plane_width(p) as usize;
            if nv12 && p == 1 { w * 2 } else { w }
        };
        let (sw, sh) = (bytes(pic), pic.plane_height(p) as usize);
        let (dw, dh) = (bytes(out), out.plane_height(p) as usize);
        if sw == 0 || sh == 0 {
            continue;
        }
        let (ss, ds) = (pic.stride(p), out.stride(p));
        let src = pic.data(p);
        let dst = out.data_mut(p);
        let unit = if nv12 && p == 1 { 2 } else { 1 };
        for y in 0..dh {
            let sy = y.min(sh - 1);
            let row = &src[sy * ss..sy * ss + sw];
            let d = &mut dst[y * ds..y * ds + dw];
            let n = sw.min(dw);
            d[..n].copy_from_slice(&row[..n]);
            let mut x = n;
            while x < dw {
                d[x] = row[n - unit + (x - n) % unit];
                x += 1;
            }
        }
    }
}

fn set_color(f: &mut av::frame::Video, c: ColorInfo) {
    f.set_color_range(match c.range {
        Range::Full => av::color::Range::JPEG,
        Range::Limited => av::color::Range::MPEG,
    });
    f.set_color_space(match c.matrix {
        Matrix::Bt709 => av::color::Space::BT709,
        Matrix::Bt601 => av::color::Space::SMPTE170M,
    });
}

fn open_video_encoder(
    octx: &mut av::format::context::Output,
    codec_name: &str,
    muxer: &str,
    info: &StreamInfo,
    opts: &SinkOptions,
    global_header: bool,
    name: &str,
) -> Result<VideoEnc, MediaError> {
    let ctx = format!("setting up the {codec_name} encoder for {name}");
    let params = info
        .video()
        .ok_or_else(|| MediaError::new(&ctx, "not a video stream"))?;
    let VideoFormat::Raw(in_format) = params.format else {
        return Err(MediaError::new(
            &ctx,
            format!(
                "the stream carries {} packets, not raw frames",
                params.format.name()
            ),
        )
        .hint("decode it first"));
    };
    let codec = av::encoder::find_by_name(codec_name).ok_or_else(|| {
        MediaError::new(
            &ctx,
            format!("this FFmpeg has no video encoder `{codec_name}`"),
        )
        .hint("see `ffmpeg -encoders`")
    })?;
    let supported: Option<Vec<Pixel>> = codec
        .video()
        .map_err(|_| MediaError::new(&ctx, format!("`{codec_name}` is not a video encoder")))?
        .formats()
        .map(|f| f.collect());
    let input = to_av_pixel(in_format);
    let allows = |p: Pixel| supported.as_ref().is_none_or(|s| s.contains(&p));
    let format = if muxer == "yuv4mpegpipe" {
        // y4m carries YUV and gray only
        if matches!(in_format, PixelFormat::I420 | PixelFormat::Gray8) {
            input
        } else {
            Pixel::YUV420P
        }
    } else if codec_name.contains("264") && in_format != PixelFormat::Nv12 {
        // 4:2:0 plays everywhere; x264's RGB or gray profiles do not
        Pixel::YUV420P
    } else if allows(input) {
        input
    } else if allows(Pixel::YUV420P) {
        Pixel::YUV420P
    } else {
        supported
            .as_ref()
            .and_then(|s| s.first().copied())
            .unwrap_or(Pixel::YUV420P)
    };

    let fps = params.fps;
    let time_base = if fps.is_valid() {
        fps.inverse()
    } else {
        info.time_base
    };
    let frame_ticks = if fps.is_valid() {
        1
    } else {
        Rational::new(1, 30).rescale(1, time_base).max(1)
    };
    // the picture size: the stream's, or --size
    let (pic_w, pic_h) = opts.size.unwrap_or((params.width, params.height));
    // libx264/libx265 take only even sizes in 4:2:0 (and an even width in 4:2:2): pad by
    // one repeated column or row rather than fail
    let subsampled_h = matches!(format, Pixel::YUV420P | Pixel::YUVJ420P | Pixel::NV12);
    let subsampled_w = subsampled_h || matches!(format, Pixel::YUV422P | Pixel::YUVJ422P);
    let even_only = codec_name.starts_with("libx26");
    let width = if even_only && subsampled_w {
        (pic_w + 1) & !1
    } else {
        pic_w
    };
    let height = if even_only && subsampled_h {
        (pic_h + 1) & !1
    } else {
        pic_h
    };
    let padded_from = ((width, height) != (pic_w, pic_h)).then_some((pic_w, pic_h));
    if padded_from.is_some() {
        log::warn!(
            "{name}: {codec_name} cannot encode {pic_w}x{pic_h} in {format:?} (it needs even \
             sizes): padding to {width}x{height} by repeating the last column and row \
             (give -s WxH with even numbers to scale instead)"
        );
    }
    let mut enc = av::codec::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(|e| MediaError::av(&ctx, e))?;
    enc.set_width(width);
    enc.set_height(height);
    enc.set_format(format);
    enc.set_time_base(av_rational(time_base));
    if fps.is_valid() {
        enc.set_frame_rate(Some(av_rational(fps)));
    }
    let gop = opts.gop.unwrap_or_else(|| {
        if fps.is_valid() {
            (fps.as_f64() * 2.0).round().max(1.0) as u32
        } else {
            60
        }
    });
    enc.set_gop(gop);
    let mut color = params.color;
    if !in_format.is_yuv() && in_format != PixelFormat::Gray8 {
        // swscale's RGB to YUV: BT.601, limited range
        color = ColorInfo::BT601_LIMITED;
    }
    enc.set_color_range(match color.range {
        Range::Full => av::color::Range::JPEG,
        Range::Limited => av::color::Range::MPEG,
    });
    if color.matrix == Matrix::Bt709 {
        enc.set_colorspace(av::color::Space::BT709);
    }
    if let Some(b) = opts.video_bitrate {
        enc.set_bit_rate(b as usize);
    }
    // Closed GOPs: every keyframe is a point a player, a seek or an HLS segment can start
    // from. (Through this API libx264 in FFmpeg 5.1 otherwise makes open GOPs, which the
    // ffmpeg command line does not: its x264 option string said open_gop=1.)
    let mut flags = av::codec::Flags::CLOSED_GOP;
    if global_header {
        flags |= av::codec::Flags::GLOBAL_HEADER;
    }
    enc.set_flags(flags);
    enc.set_threading(av::codec::threading::Config {
        kind: av::codec::threading::Type::Frame,
        count: opts.threads,
        ..Default::default()
    });
    let mut dict = av::Dictionary::new();
    if codec_name.starts_with("libx26") {
        dict.set("preset", opts.preset.as_deref().unwrap_or("veryfast"));
        if opts.video_bitrate.is_none() {
            dict.set("crf", &opts.crf.unwrap_or(23.0).to_string());
        }
    } else if let Some(p) = &opts.preset {
        dict.set("preset", p);
    }
    if codec_name == "ffv1" {
        // slices let ffv1 use every core; level 3 is what they need
        dict.set("level", "3");
        dict.set("slicecrc", "1");
    }
    for (k, v) in &opts.codec_options {
        dict.set(k, v);
    }
    let encoder = enc.open_as_with(codec, dict).map_err(|e| {
        MediaError::av(&ctx, e).hint(format!(
            "{codec_name} refused {width}x{height} {format:?} at {}: check --codec, --preset \
             and -x options against `ffmpeg -h encoder={codec_name}` (the reason is in the \
             libav lines above)",
            if fps.is_valid() {
                format!("{:.3} fps", fps.as_f64())
            } else {
                "an unknown rate".to_string()
            }
        ))
    })?;
    let mut ost = octx
        .add_stream(codec)
        .map_err(|e| MediaError::av(&ctx, e))?;
    ost.set_parameters(&encoder);
    ost.set_time_base(av_rational(time_base));
    if fps.is_valid() {
        ost.set_avg_frame_rate(av_rational(fps));
        ost.set_rate(av_rational(fps));
    }
    let index = ost.index();
    Ok(VideoEnc {
        index,
        encoder,
        format,
        width,
        height,
        padded_from,
        time_base,
        frame_ticks,
        last_pts: None,
        scaler: None,
        warned_change: false,
        color,
        key_interval: None,
        next_key: 0.0,
        stamps: None,
    })
}

fn open_audio_encoder(
    octx: &mut av::format::context::Output,
    codec_name: &str,
    info: &StreamInfo,
    opts: &SinkOptions,
    global_header: bool,
    name: &str,
) -> Result<AudioEnc, MediaError> {
    let ctx = format!("setting up the {codec_name} encoder for {name}");
    let params = info
        .audio()
        .ok_or_else(|| MediaError::new(&ctx, "not an audio stream"))?;
    let codec = av::encoder::find_by_name(codec_name).ok_or_else(|| {
        MediaError::new(
            &ctx,
            format!("this FFmpeg has no audio encoder `{codec_name}`"),
        )
        .hint("see `ffmpeg -encoders`")
    })?;
    let acodec = codec
        .audio()
        .map_err(|_| MediaError::new(&ctx, format!("`{codec_name}` is not an audio encoder")))?;
    // the encoder's rate: the input's if it takes it, else the nearest it takes (48 kHz
    // first: Opus takes nothing else of the usual rates), through libswresample
    let rate = match acodec
        .rates()
        .map(|r| r.map(|r| r as u32).collect::<Vec<_>>())
    {
        Some(rates) if !rates.is_empty() && !rates.contains(&params.sample_rate) => {
            let pick = if rates.contains(&48_000) {
                48_000
            } else {
                *rates
                    .iter()
                    .min_by_key(|r| (i64::from(**r) - i64::from(params.sample_rate)).abs())
                    .expect("not empty")
            };
            log::info!(
                "{name}: {codec_name} does not take {} Hz audio: resampling it to {pick} Hz",
                params.sample_rate
            );
            pick
        }
        _ => params.sample_rate,
    };
    let supported: Vec<Sample> = acodec.formats().map(|f| f.collect()).unwrap_or_default();
    let ours = [
        Sample::F32(SampleType::Planar),
        Sample::F32(SampleType::Packed),
        Sample::I16(SampleType::Packed),
        Sample::I16(SampleType::Planar),
        Sample::I32(SampleType::Packed),
        Sample::I32(SampleType::Planar),
    ];
    let format = ours
        .into_iter()
        .find(|f| supported.is_empty() || supported.contains(f))
        .ok_or_else(|| {
            MediaError::new(
                &ctx,
                format!("{codec_name} takes no sample format sl-file writes"),
            )
        })?;
    let layout = av::ChannelLayout::default(params.channels as i32);
    let mut enc = av::codec::Context::new_with_codec(codec)
        .encoder()
        .audio()
        .map_err(|e| MediaError::av(&ctx, e))?;
    enc.set_rate(rate as i32);
    enc.set_format(format);
    enc.set_channel_layout(layout);
    enc.set_channels(params.channels as i32);
    enc.set_time_base(av::Rational::new(1, rate as i32));
    if let Some(b) = opts.audio_bitrate {
        enc.set_bit_rate(b as usize);
    } else if codec_name == "aac" || codec_name == "libopus" {
        enc.set_bit_rate(128_000);
    }
    if global_header {
        enc.set_flags(av::codec::Flags::GLOBAL_HEADER);
    }
    let encoder = enc
        .open_as_with(codec, av::Dictionary::new())
        .map_err(|e| MediaError::av(&ctx, e))?;
    let frame_size = match encoder.frame_size() {
        0 => 1024,
        n => n as usize,
    };
    let mut ost = octx
        .add_stream(codec)
        .map_err(|e| MediaError::av(&ctx, e))?;
    ost.set_parameters(&encoder);
    ost.set_time_base(av::Rational::new(1, rate as i32));
    let index = ost.index();
    let resample = if rate == params.sample_rate {
        None
    } else {
        Some(
            Resampler::new(params.sample_rate, rate, params.channels, layout)
                .map_err(|e| MediaError::av(&ctx, e))?,
        )
    };
    Ok(AudioEnc {
        index,
        encoder,
        format,
        rate,
        resample,
        channels: params.channels,
        layout,
        frame_size,
        fifo: vec![Vec::new(); params.channels as usize],
        next_pts: None,
    })
}

/// libswresample between the input's sample rate and the encoder's, on planar f32.
struct Resampler {
    swr: av::software::resampling::Context,
    in_rate: u32,
    /// Input samples not yet resampled, one buffer per channel.
    pending: Vec<Vec<f32>>,
}

impl Resampler {
    fn new(
        in_rate: u32,
        out_rate: u32,
        channels: u16,
        layout: av::ChannelLayout,
    ) -> Result<Resampler, av::Error> {
        let planar = Sample::F32(SampleType::Planar);
        let swr = av::software::resampling::Context::get(
            planar, layout, in_rate, planar, layout, out_rate,
        )?;
        Ok(Resampler {
            swr,
            in_rate,
            pending: vec![Vec::new(); channels as usize],
        })
    }

    /// Resample everything pending onto the end of `out`; `flush` also drains what the
    /// resampler holds back (at the end of the stream).
    #[allow(unsafe_code)]
    fn convert(&mut self, out: &mut [Vec<f32>], flush: bool) -> Result<(), av::Error> {
        let n = self.pending.first().map_or(0, Vec::len);
        if n == 0 && !flush {
            return Ok(());
        }
        let channels = self.pending.len();
        // SAFETY: a valid, initialised SwrContext owned by `self.swr`.
        let room = unsafe { av::ffi::swr_get_out_samples(self.swr.as_mut_ptr(), n as i32) }.max(0)
            as usize
            + 16;
        let mut bufs: Vec<Vec<f32>> = vec![vec![0.0; room]; channels];
        let ins: Vec<*const u8> = self
            .pending
            .iter()
            .map(|c| c.as_ptr() as *const u8)
            .collect();
        let mut outs: Vec<*mut u8> = bufs.iter_mut().map(|c| c.as_mut_ptr() as *mut u8).collect();
        // SAFETY: one input pointer per channel to `n` f32 samples (or none, to flush), one
        // output pointer per channel to `room` f32 samples, as the context was set up
        // (planar f32, `channels` channels); swr_convert writes at most `room` samples.
        let got = unsafe {
            av::ffi::swr_convert(
                self.swr.as_mut_ptr(),
                outs.as_mut_ptr(),
                room as i32,
                if n == 0 {
                    std::ptr::null_mut()
                } else {
                    ins.as_ptr() as *mut *const u8
                },
                n as i32,
            )
        };
        if got < 0 {
            return Err(av::Error::from(got));
        }
        for c in &mut self.pending {
            c.clear();
        }
        for (o, b) in out.iter_mut().zip(&bufs) {
            o.extend_from_slice(&b[..got as usize]);
        }
        Ok(())
    }
}

/// Append a chunk's samples to per-channel f32 buffers (channels beyond the encoder's are
/// dropped, missing ones are silent).
fn push_samples(fifo: &mut [Vec<f32>], chunk: &AudioChunk, channels: u16) {
    let n = chunk.samples() as usize;
    let cc = chunk.channels() as usize;
    let bytes = chunk.format().bytes();
    let data = chunk.data();
    let sample = |i: usize| -> f32 {
        let b = &data[i * bytes..(i + 1) * bytes];
        match chunk.format() {
            SampleFormat::U8 => (b[0] as f32 - 128.0) / 128.0,
            SampleFormat::S16 => i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0,
            SampleFormat::S32 => {
                i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 / 2_147_483_648.0
            }
            SampleFormat::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            SampleFormat::F64 => f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32,
        }
    };
    for (c, buf) in fifo.iter_mut().enumerate().take(channels as usize) {
        buf.reserve(n);
        if c >= cc {
            buf.extend(std::iter::repeat_n(0.0, n));
            continue;
        }
        for s in 0..n {
            let i = if chunk.planar() {
                c * n + s
            } else {
                s * cc + c
            };
            buf.push(sample(i));
        }
    }
}

/// Write `n` samples per channel from `fifo` into `frame` in `format`.
fn fill_audio(frame: &mut av::frame::Audio, fifo: &[Vec<f32>], n: usize, format: Sample) {
    let channels = fifo.len();
    let to_i16 = |x: f32| (x.clamp(-1.0, 1.0) * 32767.0).round() as i16;
    let to_i32 = |x: f32| (x.clamp(-1.0, 1.0) as f64 * 2_147_483_647.0).round() as i32;
    match format {
        Sample::F32(SampleType::Planar) => {
            for (c, ch) in fifo.iter().enumerate() {
                let d = frame.data_mut(c);
                for (s, x) in ch[..n].iter().enumerate() {
                    d[s * 4..s * 4 + 4].copy_from_slice(&x.to_le_bytes());
                }
            }
        }
        Sample::I16(SampleType::Planar) => {
            for (c, ch) in fifo.iter().enumerate() {
                let d = frame.data_mut(c);
                for (s, x) in ch[..n].iter().enumerate() {
                    d[s * 2..s * 2 + 2].copy_from_slice(&to_i16(*x).to_le_bytes());
                }
            }
        }
        Sample::I32(SampleType::Planar) => {
            for (c, ch) in fifo.iter().enumerate() {
                let d = frame.data_mut(c);
                for (s, x) in ch[..n].iter().enumerate() {
                    d[s * 4..s * 4 + 4].copy_from_slice(&to_i32(*x).to_le_bytes());
                }
            }
        }
        packed => {
            let d = frame.data_mut(0);
            for s in 0..n {
                for (c, ch) in fifo.iter().enumerate() {
                    let i = s * channels + c;
                    let x = ch[s];
                    match packed {
                        Sample::F32(_) => d[i * 4..i * 4 + 4].copy_from_slice(&x.to_le_bytes()),
                        Sample::I16(_) => {
                            d[i * 2..i * 2 + 2].copy_from_slice(&to_i16(x).to_le_bytes())
                        }
                        _ => d[i * 4..i * 4 + 4].copy_from_slice(&to_i32(x).to_le_bytes()),
                    }
                }
            }
        }
    }
}

/// Move every packet `encoder` has ready into the muxer, in stream `index`. A packet duration
/// of 0 is replaced by `frame_ticks` when that is set (libx264 in FFmpeg 5.1 leaves them 0,
/// and the HLS muxer then misjudges segment lengths).
#[allow(clippy::too_many_arguments)]
fn drain_packets(
    encoder: &mut av::encoder::Encoder,
    packet: &mut av::Packet,
    octx: &mut av::format::context::Output,
    index: usize,
    time_base: av::Rational,
    frame_ticks: i64,
    what: &str,
    name: &str,
    mut stamps: Option<&mut std::collections::BTreeMap<i64, Vec<u8>>>,
) -> Result<(), MediaError> {
    loop {
        match encoder.receive_packet(packet) {
            Ok(()) => {}
            Err(av::Error::Other { errno }) if errno == av::util::error::EAGAIN => return Ok(()),
            Err(av::Error::Eof) => return Ok(()),
            Err(e) => return Err(MediaError::av(format!("encoding {what} for {name}"), e)),
        }
        if let Some(waiting) = stamps.as_deref_mut()
            && let Some(pts) = packet.pts()
            && let Some(packed) = waiting.remove(&pts)
        {
            stamps::attach(packet, &packed);
        }
        if frame_ticks > 0 && packet.duration() == 0 {
            packet.set_duration(frame_ticks);
        }
        let ost_tb = octx.stream(index).expect("added").time_base();
        packet.set_stream(index);
        packet.rescale_ts(time_base, ost_tb);
        packet
            .write_interleaved(octx)
            .map_err(|e| MediaError::av(format!("writing to {name}"), e))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_from_names_urls_and_aliases() {
        assert_eq!(container_for("a.mp4", None).as_deref(), Some("mp4"));
        assert_eq!(container_for("a.MKV", None).as_deref(), Some("matroska"));
        assert_eq!(container_for("a.ts", None).as_deref(), Some("mpegts"));
        assert_eq!(
            container_for("a.y4m", None).as_deref(),
            Some("yuv4mpegpipe")
        );
        assert_eq!(
            container_for("rtmp://h/live/k", None).as_deref(),
            Some("flv")
        );
        assert_eq!(
            container_for("srt://h:1?mode=caller", None).as_deref(),
            Some("mpegts")
        );
        assert_eq!(container_for("-", None).as_deref(), Some("nut"));
        assert_eq!(container_for("-", Some("mkv")).as_deref(), Some("matroska"));
        assert_eq!(container_for("x.avi", None), None, "libav guesses the rest");
        assert!(!streamable("mp4", false));
        assert!(streamable("mp4", true));
        assert!(streamable("nut", false));
    }

    #[test]
    fn timestamp_jumps_are_taken_out_for_video_and_audio_alike() {
        let mut t = Timeline::default();
        let frame = 1.0 / 30.0;
        assert_eq!(t.place(100.0, frame, false, "x"), 100.0);
        assert_eq!(t.place(100.0 + frame, frame, false, "x"), 100.0 + frame);
        // a pause of 5 s is kept
        assert_eq!(t.place(105.0, frame, false, "x"), 105.0);
        // a day forward: follows on from the last frame
        let after = t.place(86_505.0 + frame, frame, false, "x");
        assert!((after - (105.0 + frame)).abs() < 1e-9, "{after}");
        // audio that jumped with it lands where it belongs
        assert!((t.place(86_505.0, 0.02, true, "x") - 105.0).abs() < 1e-9);
        // an MPEG-TS wrap backwards (2^33 / 90 kHz)
        let wrapped = 86_505.0 + 2.0 * frame - 95_443.717;
        let placed = t.place(wrapped, frame, false, "x");
        assert!((placed - (105.0 + 2.0 * frame)).abs() < 1e-6, "{placed}");
        assert_eq!(t.jumps, 2);
    }

    #[test]
    fn audio_is_converted_to_float_channels_and_back() {
        // interleaved s16 stereo: L = 16384 (0.5), R = -32768 (-1.0)
        let data: Vec<u8> = [16384i16, -32768, 16384, -32768]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let chunk = AudioChunk::new(SampleFormat::S16, 48000, 2, false, 2, data).unwrap();
        let mut fifo = vec![Vec::new(), Vec::new()];
        push_samples(&mut fifo, &chunk, 2);
        assert_eq!(fifo[0], vec![0.5, 0.5]);
        assert_eq!(fifo[1], vec![-1.0, -1.0]);
        // planar f32 mono into a stereo encoder: the missing channel is silent
        let data: Vec<u8> = [0.25f32, -0.25]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let chunk = AudioChunk::new(SampleFormat::F32, 48000, 1, true, 2, data).unwrap();
        let mut fifo = vec![Vec::new(), Vec::new()];
        push_samples(&mut fifo, &chunk, 2);
        assert_eq!(fifo[0], vec![0.25, -0.25]);
        assert_eq!(fifo[1], vec![0.0, 0.0]);
    }
}

/// Frame stamps as NUT per-packet side data. The stamps are packed `key\0value\0...` behind
/// an 8-byte id in the packet's MATROSKA_BLOCKADDITIONAL side data, which NUT (version 4)
/// writes per packet as `CodecSpecificSide<id>` and its reader gives back on the packet; the
/// source takes it off the packet ([`from_packet`]) and puts it on the frame decoded from it
/// ([`unpack`]). (String metadata would be simpler, but FFmpeg's NUT reader drops it.)
pub(crate) mod stamps {
    use av::packet::Mut as _;
    use ffmpeg_next as av;
    use sl_frame::FrameInfo;

    /// `SLSTAMP1`: tells our side data from any other codec-specific side data.
    const ID: [u8; 8] = *b"SLSTAMP1";
    /// Longest stamps accepted back (hostile input): three short values.
    const MAX_LEN: usize = 512;

    pub(crate) const CAPTURE: &str = "sl_capture_ns";
    pub(crate) const PTP: &str = "sl_ptp_ns";
    pub(crate) const SOURCE: &str = "sl_source_id";

    /// The frame's stamps packed, or None when it has none.
    pub(crate) fn pack(info: &FrameInfo) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut put = |k: &str, v: &str| {
            // a NUL would end the value early: such a source id is left out
            if !v.contains('\0') {
                out.extend_from_slice(k.as_bytes());
                out.push(0);
                out.extend_from_slice(v.as_bytes());
                out.push(0);
            }
        };
        if let Some(t) = info.capture_time_ns {
            put(CAPTURE, &t.to_string());
        }
        if let Some(t) = info.ptp_time_ns {
            put(PTP, &t.to_string());
        }
        if !info.source_id.is_empty() {
            put(SOURCE, &info.source_id);
        }
        (!out.is_empty()).then_some(out)
    }

    /// Put packed stamps on an encoded packet.
    #[allow(unsafe_code)]
    pub(crate) fn attach(packet: &mut av::Packet, packed: &[u8]) {
        // SAFETY: the packet is a valid AVPacket owned by us; av_packet_new_side_data
        // allocates `len` bytes (or returns null), which we fill completely.
        unsafe {
            let len = ID.len() + packed.len();
            let data = av::ffi::av_packet_new_side_data(
                packet.as_mut_ptr(),
                av::ffi::AVPacketSideDataType::AV_PKT_DATA_MATROSKA_BLOCKADDITIONAL,
                len,
            );
            if !data.is_null() {
                std::ptr::copy_nonoverlapping(ID.as_ptr(), data, ID.len());
                std::ptr::copy_nonoverlapping(packed.as_ptr(), data.add(ID.len()), packed.len());
            }
        }
    }

    /// Our stamps on a demuxed packet, if it carries them. (FFmpeg's NUT writer stores the
    /// whole side data, id included, and its reader puts the id in front again: the id is
    /// there once or twice.)
    pub(crate) fn from_packet(packet: &av::Packet) -> Option<Vec<u8>> {
        packet.side_data().find_map(|sd| {
            if sd.kind() != av::packet::side_data::Type::MatroskaBlockAdditional {
                return None;
            }
            let mut d = sd.data().strip_prefix(&ID[..])?;
            if let Some(rest) = d.strip_prefix(&ID[..]) {
                d = rest;
            }
            (!d.is_empty() && d.len() <= MAX_LEN).then(|| d.to_vec())
        })
    }

    /// Put stamps taken off a packet ([`from_packet`]) on the frame decoded from it; values
    /// that do not parse (hostile input) are ignored.
    pub(crate) fn unpack(packed: &[u8], info: &mut FrameInfo) {
        let mut parts = packed.split(|&b| b == 0);
        while let (Some(k), Some(v)) = (parts.next(), parts.next()) {
            let Ok(v) = std::str::from_utf8(v) else {
                continue;
            };
            match k {
                b"sl_capture_ns" => info.capture_time_ns = v.parse().ok().or(info.capture_time_ns),
                b"sl_ptp_ns" => info.ptp_time_ns = v.parse().ok().or(info.ptp_time_ns),
                b"sl_source_id" if !v.is_empty() && v.len() <= 255 => {
                    info.source_id = v.to_string()
                }
                _ => {}
            }
        }
    }
}
