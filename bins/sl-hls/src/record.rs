//! The stage's loop: read messages on their own thread (so SIGINT/SIGTERM finalise the output
//! even while upstream is silent), open the writer at the first frame, finalise whatever
//! happens.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, anyhow};
use sl_cli::{Meter, Step};
use sl_hls_core::{HlsOptions, HlsWriter, Server, Summary};
use sl_media::{Routes, SinkOptions};
use sl_wire::Message;

use crate::Args;

fn options(args: &Args, outdir: &Path) -> anyhow::Result<HlsOptions> {
    let mut codec_options = Vec::new();
    if let Some(t) = &args.tune {
        codec_options.push(("tune".to_string(), t.clone()));
    }
    codec_options.extend(args.codec_options.iter().cloned());
    if args.ladder.is_some() && (args.bitrate.is_some() || args.crf.is_some()) {
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
            video_codec: Some(args.codec.clone()),
            preset: Some(args.preset.clone()),
            crf: args.crf,
            video_bitrate: args.bitrate,
            audio_bitrate: args.audio_bitrate,
            codec_options,
            format_options: args.mux_options.clone(),
            threads: args.threads,
            ..SinkOptions::default()
        },
        ladder: args.ladder.clone().map(|l| l.0).unwrap_or_default(),
    })
}

/// Messages in, HLS out.
struct Recorder {
    opts: HlsOptions,
    no_audio: bool,
    routes: Routes,
    writer: Option<HlsWriter>,
    meter: Meter,
}

impl Recorder {
    /// Take one message; a video frame's buffer comes back for reuse.
    fn handle(&mut self, m: Message) -> anyhow::Result<Option<Vec<u8>>> {
        match m {
            Message::Stream { stream, info } => self.routes.describe(stream, info),
            Message::Video { stream, frame } => {
                self.open_if_needed()?;
                if self.routes.is_video(stream) {
                    self.writer.as_mut().expect("opened").write_video(&frame)?;
                    self.meter.frame(frame.data().len() as u64);
                }
                return Ok(Some(frame.into_data()));
            }
            Message::Audio { stream, chunk } => {
                self.open_if_needed()?;
                if self.routes.is_audio(stream) {
                    self.writer.as_mut().expect("opened").write_audio(&chunk)?;
                    self.meter.bytes(chunk.data().len() as u64);
                }
            }
            Message::Packet { .. } => {
                return Err(anyhow!(
                    "the stream carries compressed packets: sl-hls encodes raw frames; decode them first (sl-file -)"
                ));
            }
            Message::Data { .. } | Message::End { .. } | Message::Unknown(_) => {}
        }
        Ok(None)
    }

    fn open_if_needed(&mut self) -> anyhow::Result<()> {
        if self.writer.is_some() {
            return Ok(());
        }
        let Some((video, audio)) = self.routes.choose(self.no_audio) else {
            return Err(anyhow!(
                "a frame arrived before any raw video or audio stream description: nothing to encode"
            ));
        };
        let writer = HlsWriter::open(&self.opts, video.as_ref(), audio.as_ref())
            .with_context(|| format!("writing HLS into {}", self.opts.dir.display()))?;
        if !writer.has_audio() {
            self.routes.drop_audio();
        }
        log::info!(
            "writing {} into {}",
            if self.routes.has_audio() {
                "H.264 + AAC"
            } else {
                "H.264"
            },
            self.opts.dir.display()
        );
        self.writer = Some(writer);
        Ok(())
    }

    /// Finalise whatever happened; `failure` is what stopped the input, if anything.
    fn finish(mut self, failure: Option<anyhow::Error>, stats: bool) -> anyhow::Result<()> {
        let dir = self.opts.dir.display().to_string();
        let Some(mut writer) = self.writer.take() else {
            return match failure {
                Some(e) => Err(e.context(format!("nothing was written to {dir}"))),
                None => Err(anyhow!(
                    "the stream ended before any frame arrived: nothing was written to {dir}"
                )),
            };
        };
        let finished = writer.finish();
        let full = writer.write_failure().is_some();
        self.meter.finish(stats);
        let summary = finished.as_ref().ok().cloned().unwrap_or_default();
        if stats {
            print_stats(&summary);
        }
        let how = if sl_cli::interrupted() {
            "interrupted: "
        } else {
            ""
        };
        if !full {
            log::info!(
                "{how}{dir} finalised: {} frames, {} segments",
                summary.video_frames,
                summary.listed.len()
            );
        }
        match (failure, finished) {
            // a write failure (a full disk): the writer's error says what was kept and lost
            (_, Err(e)) if full => Err(e.into()),
            (Some(e), _) => Err(e.context(format!(
                "{dir} is finalised with the {} frames that arrived",
                summary.video_frames
            ))),
            (None, Err(e)) => Err(e.into()),
            (None, Ok(_)) => Ok(()),
        }
    }
}

fn print_stats(s: &Summary) {
    let n = s.listed.len();
    if n == 0 {
        eprintln!("sl-hls: {} frames, no segment listed", s.video_frames);
        return;
    }
    let mean = |f: fn(&sl_hls_core::Listed) -> f64| s.listed.iter().map(f).sum::<f64>() / n as f64;
    let max = |f: fn(&sl_hls_core::Listed) -> f64| s.listed.iter().map(f).fold(0.0, f64::max);
    eprintln!(
        "sl-hls: {} frames, {n} segments listed; glass-to-playlist: first frame mean {:.3} s max {:.3} s, last frame mean {:.3} s max {:.3} s",
        s.video_frames,
        mean(|l| l.first_frame),
        max(|l| l.first_frame),
        mean(|l| l.last_frame),
        max(|l| l.last_frame),
    );
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    sl_media::set_libav_verbose(args.common.verbose >= 2);
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
            if !args.common.quiet {
                eprintln!(
                    "sl-hls: serving {} on http://{}/",
                    outdir.display(),
                    s.addr()
                );
            }
            Some(s)
        }
        None => None,
    };
    let input = sl_cli::ReadAhead::spawn(sl_cli::frame_input()?);
    let mut rec = Recorder {
        opts,
        no_audio: args.no_audio,
        routes: Routes::default(),
        writer: None,
        meter: Meter::new("sl-hls", args.progress),
    };
    let failure = input.run(|m| rec.handle(m).map(Step::from));
    let result = rec.finish(failure, args.stats);
    if let Some(s) = server
        && result.is_ok()
        && !sl_cli::interrupted()
    {
        if !args.common.quiet {
            eprintln!(
                "sl-hls: the stream ended; still serving on http://{}/ (Ctrl-C to stop)",
                s.addr()
            );
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
