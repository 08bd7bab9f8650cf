//! sl-file: read video/audio files and URLs into frames, or write frames to files and URLs.

mod read;
mod write;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use sl_cli::{Common, FrameLimit, Size, parse_duration};
use sl_frame::PixelFormat;

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
struct Args {
    /// File, URL (http, https, HLS, rtsp, rtmp, srt...), or `-` for stdin.
    input: Option<String>,

    /// Write to this file or URL (`-` for stdout) instead of reading one.
    #[arg(short, long, value_name = "OUTPUT")]
    output: Option<String>,

    // --- reading
    /// Pixel format to emit (rgba, bgra, rgb24, gray8, i420, nv12); default: the source's own.
    #[arg(short, long, help_heading = "Reading", requires = "input")]
    format: Option<PixelFormat>,
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
    #[command(flatten, next_help_heading = "Reading and writing")]
    limit: FrameLimit,
    /// Source id stamped on streams and frames; default: the input's file name.
    #[arg(long, help_heading = "Reading", requires = "input")]
    source_id: Option<String>,
    /// An FFmpeg input option, KEY=VALUE (repeatable), e.g. rtsp_transport=tcp.
    #[arg(long = "input-option", value_name = "KEY=VALUE", value_parser = key_value, help_heading = "Reading", requires = "input")]
    input_options: Vec<(String, String)>,

    // --- writing
    /// Container: mp4, mkv, mov, ts, flv, nut, y4m, webm...; default: from the name.
    #[arg(short, long, help_heading = "Writing", requires = "output")]
    container: Option<String>,
    /// Video encoder: libx264 (mp4/mkv/ts/flv), rawvideo (y4m/nut), ffv1 (lossless)...
    #[arg(long, help_heading = "Writing", requires = "output")]
    codec: Option<String>,
    /// Audio encoder: aac (default for mp4/mkv/ts/flv), pcm_s16le (nut), libopus...
    #[arg(long, help_heading = "Writing", requires = "output")]
    audio_codec: Option<String>,
    /// Quality for libx264 (0 lossless .. 51; default 23).
    #[arg(long, help_heading = "Writing", requires = "output")]
    crf: Option<f32>,
    /// Encoder speed preset (libx264: ultrafast .. veryslow; default veryfast).
    #[arg(long, help_heading = "Writing", requires = "output")]
    preset: Option<String>,
    /// Video bit rate (e.g. 4M, 2500k) instead of --crf.
    #[arg(long, value_parser = bitrate, help_heading = "Writing", requires = "output")]
    bitrate: Option<u64>,
    /// Audio bit rate (default 128k for AAC).
    #[arg(long, value_parser = bitrate, help_heading = "Writing", requires = "output")]
    audio_bitrate: Option<u64>,
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
    /// An encoder option, KEY=VALUE (repeatable), e.g. tune=zerolatency.
    #[arg(short = 'x', long = "codec-option", value_name = "KEY=VALUE", value_parser = key_value, help_heading = "Writing", requires = "output")]
    codec_options: Vec<(String, String)>,
    /// A muxer option, KEY=VALUE (repeatable), e.g. movflags=+faststart.
    #[arg(long = "mux-option", value_name = "KEY=VALUE", value_parser = key_value, help_heading = "Writing", requires = "output")]
    mux_options: Vec<(String, String)>,

    /// Codec threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Show a live progress line on stderr.
    #[arg(long)]
    progress: bool,
    /// Print a stats line on stderr at the end.
    #[arg(long)]
    stats: bool,
    #[command(flatten)]
    common: Common,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))?;
    Ok((k.trim().to_string(), v.to_string()))
}

fn bitrate(s: &str) -> Result<u64, String> {
    let bad = || format!("`{s}` is not a bit rate: use e.g. 4M, 2500k or 800000");
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1e3),
        Some('m' | 'M') => (&t[..t.len() - 1], 1e6),
        _ => (t, 1.0),
    };
    let v: f64 = num.parse().map_err(|_| bad())?;
    if !(v.is_finite() && v > 0.0) {
        return Err(bad());
    }
    Ok((v * mult) as u64)
}

fn main() -> ExitCode {
    sl_cli::run(|a: &Args| &a.common, run)
}

fn run(args: Args) -> anyhow::Result<()> {
    sl_media::set_libav_verbose(args.common.verbose >= 2);
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
    match (&args.input, &args.output) {
        (Some(_), _) => read::run(&args),
        (None, Some(_)) => write::run(&args),
        (None, None) => Err(sl_cli::usage(
            "give an INPUT to read (a file, a URL or `-`), or -o OUTPUT to write",
        )),
    }
}
