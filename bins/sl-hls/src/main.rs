//! sl-hls: encode a stream of frames into HTTP Live Streaming, and optionally serve it.

mod record;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sl_cli::Common;
use sl_hls_core::{PlaylistType, Rung, SegmentType, parse_bitrate};

/// Encode frames from stdin (H.264 with libx264, AAC when the stream has audio) into HTTP Live
/// Streaming in OUTDIR: segments of --segment-time seconds, each starting with a keyframe, and
/// index.m3u8, replaced atomically. With --serve, also serve OUTDIR and a player page over
/// HTTP.
#[derive(Parser, Debug)]
#[command(
    name = "sl-hls",
    version,
    after_help = "Examples:\n  \
      sl-cam | sl-draw overlay.rhai | sl-hls out/                 # live window of 6 segments\n  \
      sl-file talk.mp4 --realtime | sl-hls out/ --serve 8080      # open http://127.0.0.1:8080/\n  \
      sl-file talk.mp4 | sl-hls out/ --playlist-type vod --segment-type fmp4\n  \
      sl-test --realtime | sl-hls out/ --ladder 1080p,720p,360p    # master playlist + 3 renditions\n  \
      sl-file in.mp4 | sl-hls out/ -v                             # log each segment's glass-to-playlist latency\n\n\
      End of stream, Ctrl-C, SIGTERM or a truncated upstream close the last segment and finalise \
      the playlist (#EXT-X-ENDLIST for event and vod). Files an earlier run left in OUTDIR \
      (index.m3u8, seg_*, init_*.mp4) are removed first; nothing else there is touched."
)]
pub(crate) struct Args {
    /// Output folder (created if missing). Required; optional only to clap, so that --man and
    /// --completions work without one.
    #[arg(value_name = "OUTDIR")]
    pub outdir: Option<PathBuf>,

    /// Target segment duration in seconds (keyframes are placed on this grid).
    #[arg(short = 't', long, default_value_t = 2.0, value_name = "SECONDS")]
    pub segment_time: f64,
    /// live: a sliding window (old segments deleted); event: grows; vod: complete at the end.
    #[arg(long, default_value = "live", value_name = "live|event|vod")]
    pub playlist_type: PlaylistType,
    /// Segments kept in a live playlist.
    #[arg(long, default_value_t = 6, value_name = "N")]
    pub list_size: u32,
    /// Segment container: ts (MPEG-TS) or fmp4 (fragmented MP4, CMAF).
    #[arg(long, default_value = "ts", value_name = "ts|fmp4")]
    pub segment_type: SegmentType,
    /// Renditions with a master playlist: e.g. 1080p,720p,360p or 1280x720@2500k,640x360@800k.
    #[arg(long, value_name = "LIST", value_parser = parse_ladder)]
    pub ladder: Option<Ladder>,

    /// Serve OUTDIR and a player page over HTTP: a port (8080: on 127.0.0.1 only), :PORT or
    /// HOST:PORT (0.0.0.0:8080: every interface). After the stream ends, serving goes on until
    /// Ctrl-C, which then exits 0 (the output was already complete).
    #[arg(long, value_name = "ADDR", value_parser = sl_hls_core::listen_address)]
    pub serve: Option<String>,

    /// Video encoder.
    #[arg(long, default_value = "libx264", help_heading = "Encoding")]
    pub codec: String,
    /// libx264 preset (ultrafast .. veryslow).
    #[arg(long, default_value = "veryfast", help_heading = "Encoding")]
    pub preset: String,
    /// libx264 tune (zerolatency, film, animation...).
    #[arg(long, help_heading = "Encoding")]
    pub tune: Option<String>,
    /// Quality (0 lossless .. 51; default 23); ignored with --bitrate or --ladder.
    #[arg(long, help_heading = "Encoding")]
    pub crf: Option<f32>,
    /// Video bit rate (e.g. 4M, 2500k) instead of --crf.
    #[arg(long, value_parser = parse_bitrate, help_heading = "Encoding")]
    pub bitrate: Option<u64>,
    /// Audio bit rate (default 128k).
    #[arg(long, value_parser = parse_bitrate, help_heading = "Encoding")]
    pub audio_bitrate: Option<u64>,
    /// Leave the audio out.
    #[arg(long, help_heading = "Encoding")]
    pub no_audio: bool,
    /// An encoder option, KEY=VALUE (repeatable), e.g. x264-params=bframes=0.
    #[arg(short = 'x', long = "codec-option", value_name = "KEY=VALUE", value_parser = key_value, help_heading = "Encoding")]
    pub codec_options: Vec<(String, String)>,
    /// An hls muxer option, KEY=VALUE (repeatable), e.g. hls_base_url=https://cdn/x/.
    #[arg(long = "mux-option", value_name = "KEY=VALUE", value_parser = key_value, help_heading = "Encoding")]
    pub mux_options: Vec<(String, String)>,
    /// Encoder threads (0: one per core).
    #[arg(long, default_value_t = 0, help_heading = "Encoding")]
    pub threads: usize,

    /// Show a live progress line on stderr.
    #[arg(long)]
    pub progress: bool,
    /// Print stats at the end: frames, segments, glass-to-playlist latency.
    #[arg(long)]
    pub stats: bool,
    #[command(flatten)]
    pub common: Common,
}

/// The renditions of `--ladder` (a newtype: clap reads a bare `Vec` as a repeated flag).
#[derive(Clone, Debug)]
pub(crate) struct Ladder(pub Vec<Rung>);

fn parse_ladder(s: &str) -> Result<Ladder, String> {
    Rung::parse_ladder(s).map(Ladder)
}

fn key_value(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))?;
    Ok((k.trim().to_string(), v.to_string()))
}

fn main() -> ExitCode {
    sl_cli::run(|a: &Args| &a.common, record::run)
}
