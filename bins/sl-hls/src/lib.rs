//! sl-hls: encode a stream of frames into HTTP Live Streaming, and optionally serve it. On
//! the stage runtime it is the shared [`Recorder`] as a sink, with an HLS folder as its
//! target.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use sl_cli::{EncodeArgs, FrameLimit, StageFlags};
use sl_hls_core::{HlsOptions, HlsWriter, PlaylistType, Rung, SegmentType, Server, Summary};
use sl_media::SinkOptions;
use sl_record::{Recorder, Target};
use sl_stage::Stage;
use sl_wire::StreamInfo;

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
      sl-test | sl-hls out/ --ladder 1080p,720p,360p              # master playlist + 3 renditions\n  \
      sl-file in.mp4 | sl-hls out/ -v                             # log each segment's latency\n\n\
      End of stream, Ctrl-C, SIGTERM or a truncated upstream close the last segment and finalise \
      the playlist (#EXT-X-ENDLIST for event and vod). Files an earlier run left in OUTDIR \
      (index.m3u8, seg_*, init_*.mp4) are removed first; nothing else there is touched."
)]
#[command(mut_arg("codec", |a| a.default_value("libx264")))]
#[command(mut_arg("preset", |a| a.default_value("veryfast")))]
pub struct Args {
    /// Output folder (created if missing). Required; optional only to clap, so that --man and
    /// --completions work without one.
    #[arg(value_name = "OUTDIR")]
    outdir: Option<PathBuf>,

    /// Target segment duration in seconds (keyframes are placed on this grid).
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
    segment_time: f64,
    /// live: a sliding window (old segments deleted); event: grows; vod: complete at the end.
    #[arg(long, default_value = "live", value_name = "live|event|vod")]
    playlist_type: PlaylistType,
    /// Segments kept in a live playlist.
    #[arg(long, default_value_t = 6, value_name = "N")]
    list_size: u32,
    /// Segment container: ts (MPEG-TS) or fmp4 (fragmented MP4, CMAF).
    #[arg(long, default_value = "ts", value_name = "ts|fmp4")]
    segment_type: SegmentType,
    /// Renditions with a master playlist: e.g. 1080p,720p,360p or 1280x720@2500k,640x360@800k.
    #[arg(long, value_name = "LIST", value_parser = parse_ladder)]
    ladder: Option<Ladder>,

    /// Serve OUTDIR and a player page over HTTP: a port (8080: on 127.0.0.1 only), :PORT or
    /// HOST:PORT (0.0.0.0:8080: every interface). After the stream ends, serving goes on until
    /// Ctrl-C, which then exits 0 (the output was already complete).
    #[arg(long, value_name = "ADDR", value_parser = sl_hls_core::listen_address)]
    serve: Option<String>,

    #[command(flatten, next_help_heading = "Encoding")]
    encode: EncodeArgs,
    /// libx264 tune (zerolatency, film, animation...).
    #[arg(long, help_heading = "Encoding")]
    tune: Option<String>,
    /// Leave the audio out.
    #[arg(long, help_heading = "Encoding")]
    no_audio: bool,
    /// Encoder threads (0: one per core).
    #[arg(long, default_value_t = 0, help_heading = "Encoding")]
    threads: usize,

    // the flags after the encoder's heading are under no heading again
    #[command(flatten, next_help_heading = None::<&str>)]
    limit: FrameLimit,
    /// (--stats adds segments and glass-to-playlist latency.)
    #[command(flatten)]
    flags: StageFlags,
}

/// The renditions of `--ladder` (a newtype: clap reads a bare `Vec` as a repeated flag).
#[derive(Clone, Debug)]
struct Ladder(Vec<Rung>);

fn parse_ladder(s: &str) -> Result<Ladder, String> {
    Rung::parse_ladder(s).map(Ladder)
}

sl_cli::stage_main!(Args, run, flags.common);

fn options(args: &Args, outdir: &Path) -> anyhow::Result<HlsOptions> {
    let mut encode = sl_record::sink_options(&args.encode);
    if let Some(t) = &args.tune {
        encode
            .codec_options
            .insert(0, ("tune".to_string(), t.clone()));
    }
    if args.ladder.is_some() && (args.encode.bitrate.is_some() || args.encode.crf.is_some()) {
        return Err(sl_cli::usage(
            "--ladder sets each rendition's bit rate: give rates in the ladder (720p@2500k) instead of --bitrate or --crf",
        ));
    }
    Ok(HlsOptions {
        dir: outdir.to_path_buf(),
        segment_time: args.segment_time,
        playlist_type: args.playlist_type,
        list_size: args.list_size,
        segment_type: args.segment_type,
        encode: SinkOptions {
            threads: args.threads,
            ..encode
        },
        ladder: args.ladder.clone().map(|l| l.0).unwrap_or_default(),
    })
}

/// An HLS folder that frames are encoded into.
struct HlsTarget {
    opts: HlsOptions,
    stats: bool,
}

impl Target for HlsTarget {
    type Encoder = HlsWriter;

    fn name(&self) -> String {
        self.opts.dir.display().to_string()
    }

    fn open(
        &mut self,
        video: Option<&StreamInfo>,
        audio: Option<&StreamInfo>,
    ) -> anyhow::Result<HlsWriter> {
        let writer = HlsWriter::open(&self.opts, video, audio)
            .with_context(|| format!("writing HLS into {}", self.opts.dir.display()))?;
        log::info!(
            "writing {} into {}",
            if writer.has_audio() {
                "H.264 + AAC"
            } else {
                "H.264"
            },
            self.opts.dir.display()
        );
        Ok(writer)
    }

    fn finish(
        &mut self,
        mut writer: HlsWriter,
        failure: Option<anyhow::Error>,
    ) -> anyhow::Result<()> {
        let finished = writer.finish();
        // a write failure (a full disk): the writer's error says what was kept and lost
        let full = writer.write_failure().is_some();
        let summary = finished.as_ref().ok().cloned().unwrap_or_default();
        if self.stats {
            print_stats(&summary);
        }
        let finished = match finished {
            Err(e) if full => return Err(e.into()),
            other => other.map(|_| ()).map_err(anyhow::Error::from),
        };
        let how = if sl_cli::interrupted() {
            "interrupted: "
        } else {
            ""
        };
        log::info!(
            "{how}{} finalised: {} frames, {} segments",
            self.opts.dir.display(),
            summary.video_frames,
            summary.listed.len()
        );
        sl_record::outcome(&self.name(), summary.video_frames, failure, finished)
    }
}

fn print_stats(s: &Summary) {
    let n = s.listed.len();
    if n == 0 {
        sl_cli::say(&format!(
            "sl-hls: {} frames, no segment listed",
            s.video_frames
        ));
        return;
    }
    let mean = |f: fn(&sl_hls_core::Listed) -> f64| s.listed.iter().map(f).sum::<f64>() / n as f64;
    let max = |f: fn(&sl_hls_core::Listed) -> f64| s.listed.iter().map(f).fold(0.0, f64::max);
    sl_cli::say(&format!(
        "sl-hls: {} frames, {n} segments listed; glass-to-playlist: first frame mean {:.3} s max {:.3} s, last frame mean {:.3} s max {:.3} s",
        s.video_frames,
        mean(|l| l.first_frame),
        max(|l| l.first_frame),
        mean(|l| l.last_frame),
        max(|l| l.last_frame),
    ));
}

fn run(args: Args) -> anyhow::Result<()> {
    sl_media::set_libav_verbose(args.flags.common.verbose >= 2);
    let Some(outdir) = args.outdir.clone() else {
        return Err(sl_cli::usage(
            "give the output folder: sl-hls OUTDIR (e.g. `... | sl-hls out/`)",
        ));
    };
    let opts = options(&args, &outdir)?;
    // serving starts before the input is read, so the page can be opened before the stream
    // starts (it waits for a first segment)
    let server = match &args.serve {
        Some(addr) => {
            std::fs::create_dir_all(&outdir)
                .with_context(|| format!("creating {}", outdir.display()))?;
            let s = Server::start(addr, &outdir)?;
            // news, not a warning, yet the user needs the URL: a plain line unless -q
            if !args.flags.common.quiet {
                sl_cli::say(&format!(
                    "sl-hls: serving {} on http://{}/",
                    outdir.display(),
                    s.addr()
                ));
            }
            Some(s)
        }
        None => None,
    };
    let recorder = Recorder::new(
        HlsTarget {
            opts,
            stats: args.flags.progress.stats,
        },
        args.no_audio,
    );
    let result = Stage::new(sl_cli::program())
        .limit(args.limit)
        .progress(args.flags.progress, false)
        .policy(args.flags.delivery.policy)
        .run_sink(recorder);
    if let Some(s) = server
        && result.is_ok()
        && !sl_cli::interrupted()
    {
        if !args.flags.common.quiet {
            sl_cli::say(&format!(
                "sl-hls: the stream ended; still serving on http://{}/ (Ctrl-C to stop)",
                s.addr()
            ));
        }
        while !sl_cli::interrupted() {
            std::thread::sleep(Duration::from_millis(100));
        }
        // This Ctrl-C stops only the serving: the output was complete and finalised when the
        // stream ended, nothing was interrupted or lost, so the run succeeded.
        std::process::exit(i32::from(sl_cli::exit::SUCCESS));
    }
    result
}
