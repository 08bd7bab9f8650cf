//! sl-file: read video/audio files and URLs into frames, or write frames to files and URLs.
//! On the stage runtime, reading is a [`Source`] (decoded frames go out from the decoder's
//! own buffers on a writer thread), writing is the shared [`Recorder`] as a sink, and both at
//! once run the source straight into the recorder in one process.

use std::time::Duration;

use clap::Parser;
use sl_cli::{EncodeArgs, Size, SourceArgs, StageFlags, parse_duration};
use sl_frame::FrameInfo;
use sl_media::{DecodedVideo, Output as Decoded, Sink as MediaSink, SinkOptions, SourceOptions};
use sl_record::{Recorder, Target};
use sl_stage::{Ending, Flow, Output, Pace, Source, Stage, WireItem};
use sl_wire::{Message, StreamInfo, WireError, Writer};

/// Read a media file or URL (anything FFmpeg reads) and emit its video frames and audio as a
/// streamlib stream; or, with -o, encode a stream from stdin into a file or push it to a URL.
/// With both INPUT and -o, transcode in one process.
#[derive(Parser, Debug)]
#[command(
    name = "sl-file",
    version,
    after_help = "Examples:\n  \
      sl-file talk.mp4 | sl-info                          # decode a file\n  \
      sl-file --realtime --loop clip.mkv | sl-show        # play it like a live source\n  \
      sl-file -f rgba -s 720p https://host/live.m3u8 | ...\n  \
      ffmpeg -i in.avi -f nut - | sl-file - | sl-info      # stdin (nut, ts, mkv, y4m...)\n  \
      sl-test -n 300 | sl-file -o bars.mp4                # encode (H.264 + AAC)\n  \
      sl-cam | sl-file -o rec.mp4 --fragmented            # survives kill -9\n  \
      sl-test | sl-file -o rtmp://server/live/key         # push (flv)\n  \
      sl-test | sl-file -o 'srt://host:9000?mode=caller'  # push (mpegts)\n  \
      sl-test | sl-file -o - --container nut | ffplay -   # to another program\n  \
      sl-file - -f i420 < in.y4m | sl-file -o out.mkv --codec ffv1   # lossless\n\n\
      Frames that change size or format mid-stream are scaled to the first size and format \
      (one output file, a warning). Ctrl-C, SIGTERM or a broken upstream finalise the output."
)]
// the shared source flags are for reading, the encoder flags for writing; -n and -t for both
#[command(mut_arg("format", |a| a.requires("input")
    .help("Pixel format to emit (rgba, bgra, rgb24, gray8, i420, nv12); default: the source's own.")))]
#[command(mut_arg("source_id", |a| a.requires("input")
    .help("Source id stamped on streams and frames; default: the input's file name.")))]
#[command(mut_arg("frames", |a| a.help_heading("Reading and writing")))]
#[command(mut_arg("duration", |a| a.help_heading("Reading and writing")))]
#[command(mut_group("EncodeArgs", |g| g.requires("output")))]
pub struct Args {
    /// File, URL (http, https, HLS, rtsp, rtmp, srt...), or `-` for stdin.
    input: Option<String>,

    /// Write to this file or URL (`-` for stdout) instead of reading one.
    #[arg(short, long, value_name = "OUTPUT")]
    output: Option<String>,

    // --- reading
    /// With --realtime or --clock, frames are stamped with this clock when they leave
    /// (capture time, and PTP time with `--clock ptp`); stamps already in a streamlib stream
    /// are kept.
    #[command(flatten, next_help_heading = "Reading")]
    source: SourceArgs,
    /// Scale frames to WIDTHxHEIGHT (or 1080p, 720p...), when reading or writing.
    #[arg(short, long, help_heading = "Reading and writing")]
    size: Option<Size>,
    /// Leave the audio out.
    #[arg(long, help_heading = "Reading")]
    no_audio: bool,
    /// Which video stream to read (0 = the first); default: FFmpeg's best.
    #[arg(long, value_name = "N", help_heading = "Reading", requires = "input")]
    video_stream: Option<usize>,
    /// Which audio stream to read (0 = the first); default: FFmpeg's best.
    #[arg(long, value_name = "N", help_heading = "Reading", requires = "input")]
    audio_stream: Option<usize>,
    /// Emit frames at their timestamps' pace, like a live source.
    #[arg(long, help_heading = "Reading", requires = "input")]
    realtime: bool,
    /// Start again at the end, forever (timestamps keep increasing).
    #[arg(long = "loop", help_heading = "Reading", requires = "input")]
    looping: bool,
    /// Start this far into the input (e.g. 90, 1m30s, 00:01:30).
    #[arg(long, value_parser = parse_duration, help_heading = "Reading", requires = "input")]
    start: Option<Duration>,
    /// An FFmpeg input option, KEY=VALUE (repeatable), e.g. rtsp_transport=tcp.
    #[arg(long = "input-option", value_name = "KEY=VALUE", value_parser = sl_cli::key_value, help_heading = "Reading", requires = "input")]
    input_options: Vec<(String, String)>,

    // --- writing
    /// Container: mp4, mkv, mov, ts, flv, nut, y4m, webm...; default: from the name.
    #[arg(short, long, help_heading = "Writing", requires = "output")]
    container: Option<String>,
    #[command(flatten, next_help_heading = "Writing")]
    encode: EncodeArgs,
    /// Audio encoder: aac (default for mp4/mkv/ts/flv), pcm_s16le (nut), libopus...
    #[arg(long, help_heading = "Writing", requires = "output")]
    audio_codec: Option<String>,
    /// Keyframe interval in frames (default: 2 seconds).
    #[arg(
        short = 'g',
        long,
        value_name = "FRAMES",
        help_heading = "Writing",
        requires = "output"
    )]
    keyint: Option<u32>,
    /// Fragmented MP4/MOV: the file stays playable even if sl-file is killed (kill -9).
    #[arg(long, help_heading = "Writing", requires = "output")]
    fragmented: bool,

    /// Codec threads (0: one per core).
    #[arg(long, default_value_t = 0, help_heading = "Reading and writing")]
    threads: usize,
    // the flags after the writing heading are under no heading again
    #[command(flatten, next_help_heading = None::<&str>)]
    flags: StageFlags,
}

sl_cli::stage_main!(Args, run, flags.common);

fn run(mut args: Args) -> anyhow::Result<()> {
    sl_media::set_libav_verbose(args.flags.common.verbose >= 2);
    // like every stage: never wait on a terminal for input, never write media to one
    if args.input.as_deref() == Some("-") && sl_cli::stdin_is_terminal() {
        return Err(sl_cli::usage(
            "no input: stdin is a terminal. Pipe a media file in, e.g. \
             `ffmpeg -i in.avi -f nut - | sl-file -`, or give a file name",
        ));
    }
    if args.output.as_deref() == Some("-") && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        return Err(sl_cli::usage(
            "refusing to write media to a terminal: pipe it into a program \
             (`sl-file -o - ... | ffplay -`) or write a file (`-o out.mkv`)",
        ));
    }
    if let (Some(input), Some(output)) = (&args.input, &args.output)
        && sl_media::same_file(std::path::Path::new(input), std::path::Path::new(output))
    {
        return Err(sl_cli::usage(format!(
            "{output} is the same file as the input {input}: writing it would destroy what is \
             being read; write to another name"
        )));
    }
    let mut stage = Stage::new(sl_cli::program())
        .limit(args.source.limit)
        .progress(args.flags.progress, false)
        .policy(args.flags.delivery.policy);
    // a file played like a live source, or asked for: frames get the time they leave
    if args.input.is_some() && (args.realtime || args.source.clock.clock.is_some()) {
        let clock = std::mem::take(&mut args.source.clock);
        stage = stage.clock(clock)?;
    }
    match (&args.input, &args.output) {
        (Some(input), output) if is_streamlib_file(input) => {
            let source = stream_file(&args, input)?;
            match output {
                None => stage.run_source(source),
                Some(_) => stage.run_source_into(source, recorder(&args)),
            }
        }
        (Some(input), output) => {
            let (source, streams) = open_source(&args, input)?;
            let stage = stage.pace(if args.realtime {
                Pace::Timestamps
            } else {
                Pace::Off
            });
            let file = FileSource {
                source,
                streams,
                looping: args.looping,
                produced_this_pass: false,
            };
            match output {
                None => stage.write_on_thread(true).run_source(file),
                Some(_) => stage.run_source_into(file, recorder(&args)),
            }
        }
        (None, Some(_)) => stage.run_sink(recorder(&args)),
        (None, None) => Err(sl_cli::usage(
            "give an INPUT to read (a file, a URL or `-`), or -o OUTPUT to write",
        )),
    }
}

/// Whether `input` is a file in our own format (`sl-test > capture.slv`).
fn is_streamlib_file(input: &str) -> bool {
    use std::io::Read;
    let mut head = [0u8; 8];
    input != "-"
        && !input.contains("://")
        && std::fs::File::open(input)
            .and_then(|mut f| f.read_exact(&mut head))
            .is_ok()
        && head == sl_wire::MAGIC
}

/// A streamlib stream saved to a file, read back as a source: its messages, checked, as they
/// were (with their stamps); a file cut short is reported like a truncated pipe (no
/// end-of-stream, exit 1).
struct StreamFile {
    name: String,
    reader: sl_wire::Reader<std::io::BufReader<std::fs::File>>,
}

fn stream_file(args: &Args, input: &str) -> anyhow::Result<StreamFile> {
    if args.source.format.is_some()
        || args.size.is_some()
        || args.looping
        || args.start.is_some()
        || args.realtime
    {
        return Err(sl_cli::usage(format!(
            "{input} is a streamlib stream: -f, -s, --loop, --start and --realtime do not apply; \
             pipe it through a stage instead (`sl-file {input} | sl-info`)"
        )));
    }
    let file = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(input)?);
    let reader = sl_wire::Reader::new(file).map_err(|e| anyhow::anyhow!("{input}: {e}"))?;
    log::info!("{input} is a streamlib stream: reading it as one");
    Ok(StreamFile {
        name: input.to_string(),
        reader,
    })
}

impl Source for StreamFile {
    fn start(&mut self, _out: &mut Output) -> anyhow::Result<()> {
        Ok(())
    }

    fn produce(&mut self, out: &mut Output) -> anyhow::Result<Flow> {
        match self.reader.next_message() {
            Ok(Some(m)) => {
                out.send(m)?;
                Ok(Flow::Continue)
            }
            Ok(None) => Ok(Flow::Stop),
            Err(e) => Err(anyhow::anyhow!("{}: {e}", self.name)),
        }
    }

    fn finish(&mut self, ending: Ending) -> anyhow::Result<()> {
        ending.into_result()
    }
}

fn source_id(input: &str) -> String {
    if input == "-" {
        return "stdin".into();
    }
    if input.contains("://") {
        return input.to_string();
    }
    std::path::Path::new(input)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| input.to_string())
}

fn open_source(
    args: &Args,
    input: &str,
) -> anyhow::Result<(sl_media::Source, Vec<(u16, StreamInfo)>)> {
    if args.looping && input == "-" {
        return Err(sl_cli::usage(
            "--loop needs a file: stdin cannot be rewound",
        ));
    }
    let opts = SourceOptions {
        format: args.source.format,
        size: args.size.map(|s| (s.width, s.height)),
        audio: !args.no_audio,
        video_stream: args.video_stream,
        audio_stream: args.audio_stream,
        start: args.start,
        source_id: args
            .source
            .source_id
            .clone()
            .unwrap_or_else(|| source_id(input)),
        options: args.input_options.clone(),
        threads: args.threads,
        // frames in pages of their own go into a pipe without a copy (sl_frame::pages)
        decoder_frames: args.output.is_none(),
        paged: args.output.is_none() && sl_cli::stdout_takes_pages(),
    };
    let source = sl_media::Source::open(input, opts, sl_cli::interrupted)?;
    if args.looping && !source.is_seekable() {
        return Err(anyhow::anyhow!(
            "--loop: {} cannot be rewound (a pipe or a live stream)",
            source.name()
        ));
    }
    let streams = source.streams();
    Ok((source, streams))
}

/// A decoded frame still in the decoder's buffers: written to the pipe straight from its
/// planes with one `writev` (measured on the 2-core machine with 1080p30 H.264: about 15%
/// more frames per second than copying it into a frame of our own first).
struct DecodedFrame(DecodedVideo);

impl WireItem for DecodedFrame {
    fn info(&self) -> &FrameInfo {
        &self.0.info
    }
    fn info_mut(&mut self) -> &mut FrameInfo {
        &mut self.0.info
    }
    fn bytes(&self) -> u64 {
        self.0.bytes() as u64
    }
    fn write(self: Box<Self>, w: &mut Writer<std::fs::File>) -> Result<Option<Vec<u8>>, WireError> {
        self.0.write(w)?;
        Ok(None)
    }
    fn into_message(self: Box<Self>, buf: Vec<u8>) -> anyhow::Result<Message> {
        Ok(self.0.into_message(buf)?)
    }
}

/// A file or URL being decoded.
struct FileSource {
    source: sl_media::Source,
    streams: Vec<(u16, StreamInfo)>,
    looping: bool,
    produced_this_pass: bool,
}

impl Source for FileSource {
    fn start(&mut self, out: &mut Output) -> anyhow::Result<()> {
        for (stream, info) in std::mem::take(&mut self.streams) {
            out.send(Message::Stream { stream, info })?;
        }
        Ok(())
    }

    fn produce(&mut self, out: &mut Output) -> anyhow::Result<Flow> {
        while let Some(buf) = out.buffer(0) {
            self.source.recycle(buf);
        }
        match self.source.next_output()? {
            Some(Decoded::Video(v)) => out.send_item(Box::new(DecodedFrame(v)))?,
            Some(Decoded::Message(m)) => out.send(m)?,
            None if self.looping && self.produced_this_pass => {
                self.produced_this_pass = false;
                self.source.rewind()?;
                return Ok(Flow::Continue);
            }
            None => return Ok(Flow::Stop),
        }
        self.produced_this_pass = true;
        Ok(Flow::Continue)
    }

    fn finish(&mut self, ending: Ending) -> anyhow::Result<()> {
        if self.source.decode_errors() > 0 {
            log::warn!(
                "{}: {} damaged packets or frames were skipped",
                self.source.name(),
                self.source.decode_errors()
            );
        }
        ending.into_result()
    }
}

fn sink_options(args: &Args) -> SinkOptions {
    SinkOptions {
        container: args.container.clone(),
        audio_codec: args.audio_codec.clone(),
        gop: args.keyint,
        fragmented: args.fragmented,
        threads: args.threads,
        size: args.size.map(|s| (s.width, s.height)),
        ..sl_record::sink_options(&args.encode)
    }
}

fn recorder(args: &Args) -> Recorder<FileTarget> {
    Recorder::new(
        FileTarget {
            output: args.output.clone().expect("writing needs -o"),
            opts: sink_options(args),
        },
        args.no_audio,
    )
}

/// A file or URL that frames are encoded into.
#[derive(Debug)]
struct FileTarget {
    output: String,
    opts: SinkOptions,
}

impl FileTarget {
    /// A local file we may delete if nothing usable was written to it.
    fn is_local_file(&self) -> bool {
        self.output != "-" && !self.output.contains("://")
    }
}

impl Target for FileTarget {
    type Encoder = MediaSink;

    fn name(&self) -> String {
        self.output.clone()
    }

    fn open(
        &mut self,
        video: Option<&StreamInfo>,
        audio: Option<&StreamInfo>,
    ) -> anyhow::Result<MediaSink> {
        // the sink removes what it created (an existing file stays as it was)
        Ok(MediaSink::open(&self.output, video, audio, &self.opts)?)
    }

    fn finish(
        &mut self,
        mut sink: MediaSink,
        failure: Option<anyhow::Error>,
    ) -> anyhow::Result<()> {
        let frames = sink.video_frames();
        if sink.has_video() && frames == 0 && self.is_local_file() {
            // never delete an existing recording: it was only to be replaced by a new one
            let replaced = sink.temporary_file().is_some();
            sink.discard();
            let e = failure.unwrap_or_else(|| anyhow::anyhow!("no video frame arrived"));
            return Err(e.context(if replaced {
                format!("nothing was recorded: {} was left as it was", self.output)
            } else {
                format!("nothing was recorded: {} removed", self.output)
            }));
        }
        let kept_at = sink.temporary_file().map(|p| p.display().to_string());
        let finished = if failure.is_some() {
            sink.finish_incomplete()
        } else {
            sink.finish()
        };
        let write_failed = sink.write_failure().is_some();
        drop(sink);
        match (failure, finished) {
            // a write failure (a full disk): the sink's error says what was kept and lost
            (_, Err(e)) if write_failed => Err(e.into()),
            // an existing file is replaced only by a finished recording
            (Some(e), _) if kept_at.is_some() => Err(e.context(format!(
                "{} was left as it was; the {frames} video frames that arrived are in {}",
                self.output,
                kept_at.unwrap_or_default()
            ))),
            (failure, finished) => {
                let how = if sl_cli::interrupted() {
                    "interrupted: "
                } else {
                    ""
                };
                if finished.is_ok() {
                    log::info!("{how}{} finalised with {frames} video frames", self.output);
                }
                sl_record::outcome(&self.output, frames, failure, finished.map_err(Into::into))
            }
        }
    }
}
