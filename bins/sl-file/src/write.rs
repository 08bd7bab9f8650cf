//! Writing: frames from stdin (or from a source in this process) into a file or URL.

use anyhow::anyhow;
use sl_cli::{Meter, Step};
use sl_media::{Routes, Sink, SinkOptions};
use sl_wire::Message;

use crate::Args;

pub(crate) fn sink_options(args: &Args) -> SinkOptions {
    SinkOptions {
        container: args.container.clone(),
        video_codec: args.codec.clone(),
        audio_codec: args.audio_codec.clone(),
        crf: args.crf,
        preset: args.preset.clone(),
        video_bitrate: args.bitrate,
        audio_bitrate: args.audio_bitrate,
        gop: args.keyint,
        fragmented: args.fragmented,
        codec_options: args.codec_options.clone(),
        format_options: args.mux_options.clone(),
        threads: args.threads,
        size: args.size.map(|s| (s.width, s.height)),
    }
}

/// A local file we may delete if nothing usable was written to it.
fn is_local_file(output: &str) -> bool {
    output != "-" && !output.contains("://")
}

/// Turns a sequence of messages into an output: opens the sink at the first frame (with the
/// streams described so far), encodes, and finalises whatever happens.
pub(crate) struct Recorder {
    output: String,
    opts: SinkOptions,
    no_audio: bool,
    routes: Routes,
    sink: Option<Sink>,
    pub(crate) meter: Meter,
}

impl Recorder {
    pub(crate) fn new(args: &Args) -> Recorder {
        let output = args.output.clone().expect("writing needs -o");
        Recorder {
            output,
            opts: sink_options(args),
            no_audio: args.no_audio,
            routes: Routes::default(),
            sink: None,
            meter: Meter::new("sl-file", args.progress),
        }
    }

    /// Take one message; a video frame's buffer comes back for reuse. Errors are encoding
    /// or writing failures.
    pub(crate) fn handle(&mut self, m: Message) -> anyhow::Result<Option<Vec<u8>>> {
        match m {
            Message::Stream { stream, info } => self.routes.describe(stream, info),
            Message::Video { stream, frame } => {
                self.open_if_needed()?;
                if self.routes.is_video(stream) {
                    let sink = self.sink.as_mut().expect("opened");
                    sink.write_video(&frame)?;
                    self.meter.frame(frame.data().len() as u64);
                }
                return Ok(Some(frame.into_data()));
            }
            Message::Audio { stream, chunk } => {
                self.open_if_needed()?;
                if self.routes.is_audio(stream) {
                    let sink = self.sink.as_mut().expect("opened");
                    sink.write_audio(&chunk)?;
                    self.meter.bytes(chunk.data().len() as u64);
                }
            }
            Message::Packet { .. } => {
                return Err(anyhow!(
                    "the stream carries compressed packets: sl-file -o writes raw frames; decode them first"
                ));
            }
            Message::Data { .. } | Message::End { .. } | Message::Unknown(_) => {}
        }
        Ok(None)
    }

    fn open_if_needed(&mut self) -> anyhow::Result<()> {
        if self.sink.is_some() {
            return Ok(());
        }
        let Some((video, audio)) = self.routes.choose(self.no_audio) else {
            return Err(anyhow!(
                "a frame arrived before any raw video or audio stream description: nothing to write"
            ));
        };
        match Sink::open(&self.output, video.as_ref(), audio.as_ref(), &self.opts) {
            Ok(sink) => {
                if !sink.has_audio() {
                    self.routes.drop_audio();
                }
                self.sink = Some(sink);
                Ok(())
            }
            // the sink removes what it created (an existing file stays as it was)
            Err(e) => Err(e.into()),
        }
    }

    /// Finalise the output (trailer written) whatever happened upstream; `failure` is the
    /// error that stopped the input, if any.
    pub(crate) fn finish(
        mut self,
        failure: Option<anyhow::Error>,
        stats: bool,
    ) -> anyhow::Result<()> {
        let Some(mut sink) = self.sink.take() else {
            return match failure {
                Some(e) => Err(e.context(format!("nothing was written to {}", self.output))),
                None => Err(anyhow!(
                    "the stream ended before any frame arrived: nothing was written to {}",
                    self.output
                )),
            };
        };
        let frames = sink.video_frames();
        if sink.has_video() && frames == 0 && is_local_file(&self.output) {
            let replaced = sink.temporary_file().is_some();
            sink.discard();
            self.meter.finish(stats);
            let e = failure.unwrap_or_else(|| anyhow!("no video frame arrived"));
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
        self.meter.finish(stats);
        if write_failed {
            // the error says what was kept and lost
        } else if sl_cli::interrupted() {
            log::info!(
                "interrupted: {} finalised with {frames} video frames",
                self.output
            );
        } else {
            log::info!("{} finalised with {frames} video frames", self.output);
        }
        match (failure, finished) {
            // a write failure (a full disk): the sink's error says what was kept and lost
            (_, Err(e)) if write_failed => Err(e.into()),
            // an existing file is replaced only by a finished recording
            (Some(e), _) if kept_at.is_some() => Err(e.context(format!(
                "{} was left as it was; the {frames} video frames that arrived are in {}",
                self.output,
                kept_at.unwrap_or_default()
            ))),
            (Some(e), _) => Err(e.context(format!(
                "{} is finalised with the {frames} video frames that arrived",
                self.output
            ))),
            (None, Err(e)) => Err(e.into()),
            (None, Ok(())) => Ok(()),
        }
    }
}

/// `sl-file -o OUTPUT`: read the wire format from stdin. The reading happens on its own
/// thread so that SIGINT/SIGTERM finalise the output even while upstream is silent.
pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let input = sl_cli::ReadAhead::spawn(sl_cli::frame_input()?);
    let mut rec = Recorder::new(args);
    let mut first_video: Option<f64> = None;
    let mut video_frames = 0u64;
    let failure = input.run(|m| {
        if let Message::Video { frame, .. } = &m {
            let secs = frame.info.pts_secs();
            let rel = secs - *first_video.get_or_insert(secs);
            if args.limit.reached(video_frames, rel) {
                return Ok(Step::Stop);
            }
            video_frames += 1;
        }
        rec.handle(m).map(Step::from)
    });
    rec.finish(failure, args.stats)
}
