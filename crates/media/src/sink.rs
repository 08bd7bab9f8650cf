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

use crate::MediaError;
use crate::pixels::{frame_into_av, to_av_pixel};

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
    color: ColorInfo,
    /// Force a keyframe every this many seconds of stream time (see
    /// [`Sink::force_keyframes_every`]), and when the next one is due.
    key_interval: Option<f64>,
    next_key: f64,
}

struct AudioEnc {
    index: usize,
    encoder: av::encoder::Audio,
    format: Sample,
    rate: u32,
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
    octx: av::format::context::Output,
    video: Option<VideoEnc>,
    audio: Option<AudioEnc>,
    origin: Option<f64>,
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
        let mut io_opts = av::Dictionary::new();
        if path.starts_with("srt://") && !path.contains("linger") {
            // SRT in live mode drops what is still unsent when the socket closes: without a
            // linger the last second or so of a recording never reaches the listener
            io_opts.set("linger", "5");
        }
        if matches!(container.as_deref(), Some("hls" | "dash")) {
            // These muxers write their own files (playlist/manifest by write-then-rename),
            // but the output is still opened at OUTPUT, which truncated it: a player polling
            // the folder then read an empty playlist until the first segment. Not truncating
            // leaves what is there (the caller's placeholder, or the previous playlist).
            io_opts.set("truncate", "0");
        }
        let mut octx = match &container {
            Some(c) => av::format::output_as_with(path, c, io_opts),
            None => av::format::output_with(path, io_opts),
        }
        .map_err(|e| {
            let err = MediaError::av(&ctx, e);
            match e {
                av::Error::InvalidData | av::Error::MuxerNotFound => err.hint(
                    "cannot tell the container from the name: give it with --container \
                     (mp4, mkv, mov, ts, flv, nut, y4m, webm)",
                ),
                _ => err,
            }
        })?;
        let muxer = octx.format().name().to_string();
        let (default_video, default_audio) = default_codecs(&muxer);
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
        if fragmented && matches!(muxer.as_str(), "mp4" | "mov" | "ipod") {
            fopts.set("movflags", "+frag_keyframe+empty_moov+default_base_moof");
        }
        for (k, v) in &opts.format_options {
            fopts.set(k, v);
        }
        {
            // write_header_with returns a dictionary that borrows the context: own scope
            let left = octx.write_header_with(fopts).map_err(|e| {
                let err = MediaError::av(format!("writing the header of {name}"), e);
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
            octx,
            video: sink_video,
            audio: sink_audio,
            origin: None,
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
        let secs = frame.info.pts_secs();
        let origin = self.origin(secs);
        let Some(v) = self.video.as_mut() else {
            return Ok(());
        };
        let key = (frame.format(), frame.width(), frame.height());
        let direct = to_av_pixel(frame.format()) == v.format
            && frame.width() == v.width
            && frame.height() == v.height;
        let mut av_frame = av::frame::Video::new(v.format, v.width, v.height);
        if direct {
            frame_into_av(frame, &mut av_frame);
        } else {
            if v.scaler.as_ref().is_none_or(|(k, _)| *k != key) {
                if v.scaler.is_some() && !v.warned_change {
                    log::warn!(
                        "{}: frames changed to {} {}x{} mid-stream; scaling them to {}x{}",
                        self.name,
                        key.0,
                        key.1,
                        key.2,
                        v.width,
                        v.height
                    );
                    v.warned_change = true;
                }
                let ctx = scaling::Context::get(
                    to_av_pixel(key.0),
                    key.1,
                    key.2,
                    v.format,
                    v.width,
                    v.height,
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
                .run(&src, &mut av_frame)
                .map_err(|e| MediaError::av(format!("converting a frame for {}", self.name), e))?;
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
        self.drain_video()
    }

    /// Encode one audio chunk (converted to the encoder's sample format).
    pub fn write_audio(&mut self, chunk: &AudioChunk) -> Result<(), MediaError> {
        let secs = chunk.info.pts_secs();
        let origin = self.origin(secs);
        let Some(a) = self.audio.as_mut() else {
            return Ok(());
        };
        if chunk.sample_rate() != a.rate {
            return Err(MediaError::new(
                format!("encoding audio for {}", self.name),
                format!(
                    "the sample rate changed from {} to {} Hz mid-stream",
                    a.rate,
                    chunk.sample_rate()
                ),
            ));
        }
        if a.next_pts.is_none() {
            a.next_pts = Some((((secs - origin) * a.rate as f64).round() as i64).max(0));
        }
        push_samples(&mut a.fifo, chunk, a.channels);
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
        self.drain_audio()
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
        )
    }

    /// Flush the encoders and write the trailer. Safe to call twice.
    pub fn finish(&mut self) -> Result<(), MediaError> {
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
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if !self.finished
            && let Err(e) = self.finish()
        {
            log::warn!("{e}");
        }
    }
}

fn av_rational(r: Rational) -> av::Rational {
    av::Rational::new(r.num as i32, r.den as i32)
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
    let mut enc = av::codec::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(|e| MediaError::av(&ctx, e))?;
    enc.set_width(params.width);
    enc.set_height(params.height);
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
        MediaError::av(&ctx, e)
            .hint("check --codec, --preset and -x options against `ffmpeg -h encoder=NAME`")
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
        width: params.width,
        height: params.height,
        time_base,
        frame_ticks,
        last_pts: None,
        scaler: None,
        warned_change: false,
        color,
        key_interval: None,
        next_key: 0.0,
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
    if let Some(mut rates) = acodec.rates()
        && !rates.any(|r| r as u32 == params.sample_rate)
    {
        return Err(MediaError::new(
            &ctx,
            format!(
                "{codec_name} does not take {} Hz audio (and sl-file does not resample)",
                params.sample_rate
            ),
        ));
    }
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
    enc.set_rate(params.sample_rate as i32);
    enc.set_format(format);
    enc.set_channel_layout(layout);
    enc.set_channels(params.channels as i32);
    enc.set_time_base(av::Rational::new(1, params.sample_rate as i32));
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
    ost.set_time_base(av::Rational::new(1, params.sample_rate as i32));
    let index = ost.index();
    Ok(AudioEnc {
        index,
        encoder,
        format,
        rate: params.sample_rate,
        channels: params.channels,
        layout,
        frame_size,
        fifo: vec![Vec::new(); params.channels as usize],
        next_pts: None,
    })
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
) -> Result<(), MediaError> {
    loop {
        match encoder.receive_packet(packet) {
            Ok(()) => {}
            Err(av::Error::Other { errno }) if errno == av::util::error::EAGAIN => return Ok(()),
            Err(av::Error::Eof) => return Ok(()),
            Err(e) => return Err(MediaError::av(format!("encoding {what} for {name}"), e)),
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
