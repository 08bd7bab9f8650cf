//! One recorder for every stage that encodes (`sl-file -o`, `sl-hls`). Stream descriptions
//! are collected until the first frame; the output opens then, with the video and audio
//! streams chosen ([`Routes`]); frames are encoded; and the output is finalised whatever ends
//! the input (its end, Ctrl-C, a truncated upstream, an encoding error). What differs between
//! stages is only where the frames go: a [`Target`].

use sl_frame::{AudioChunk, VideoFrame};
use sl_media::Routes;
use sl_stage::{Ending, Flow, Pool, Sink};
use sl_wire::{Message, StreamInfo};

use anyhow::anyhow;

/// An open output that encodes frames.
pub trait Encoder {
    fn write_video(&mut self, frame: &VideoFrame) -> anyhow::Result<()>;
    fn write_audio(&mut self, chunk: &AudioChunk) -> anyhow::Result<()>;
    /// Whether it encodes audio (the audio stream is dropped otherwise).
    fn has_audio(&self) -> bool;
}

impl Encoder for sl_media::Sink {
    fn write_video(&mut self, frame: &VideoFrame) -> anyhow::Result<()> {
        Ok(sl_media::Sink::write_video(self, frame)?)
    }
    fn write_audio(&mut self, chunk: &AudioChunk) -> anyhow::Result<()> {
        Ok(sl_media::Sink::write_audio(self, chunk)?)
    }
    fn has_audio(&self) -> bool {
        sl_media::Sink::has_audio(self)
    }
}

impl Encoder for sl_hls_core::HlsWriter {
    fn write_video(&mut self, frame: &VideoFrame) -> anyhow::Result<()> {
        Ok(sl_hls_core::HlsWriter::write_video(self, frame)?)
    }
    fn write_audio(&mut self, chunk: &AudioChunk) -> anyhow::Result<()> {
        Ok(sl_hls_core::HlsWriter::write_audio(self, chunk)?)
    }
    fn has_audio(&self) -> bool {
        sl_hls_core::HlsWriter::has_audio(self)
    }
}

/// Where a recording goes: a file or URL, an HLS folder.
pub trait Target {
    type Encoder: Encoder;

    /// The output's name, for messages (`out.mp4`, `out/`).
    fn name(&self) -> String;

    /// Open the output for the chosen streams. On failure, leave nothing behind (and an
    /// existing file as it was).
    fn open(
        &mut self,
        video: Option<&StreamInfo>,
        audio: Option<&StreamInfo>,
    ) -> anyhow::Result<Self::Encoder>;

    /// Finalise the output whatever happened; `failure` is what stopped the input, if
    /// anything. Returns the stage's result: the failure saying what was kept, a write
    /// failure (a full disk) saying what was lost, or success. [`outcome`] is the usual end.
    fn finish(
        &mut self,
        encoder: Self::Encoder,
        failure: Option<anyhow::Error>,
    ) -> anyhow::Result<()>;
}

/// The usual end of [`Target::finish`]: `name` now holds `frames` video frames; `finished` is
/// how finalising went.
pub fn outcome(
    name: &str,
    frames: u64,
    failure: Option<anyhow::Error>,
    finished: anyhow::Result<()>,
) -> anyhow::Result<()> {
    match (failure, finished) {
        (Some(e), Ok(())) => Err(e.context(format!(
            "{name} is finalised with the {frames} video frames that arrived"
        ))),
        (Some(e), Err(f)) => Err(e.context(format!("{f:#}"))),
        (None, Err(e)) => Err(e),
        (None, Ok(())) => Ok(()),
    }
}

/// Messages in, an encoded output out: a [`Sink`] for the stage runtime, or driven directly
/// by a stage that decodes and encodes in one process.
#[derive(Debug)]
pub struct Recorder<T: Target> {
    target: T,
    no_audio: bool,
    routes: Routes,
    encoder: Option<T::Encoder>,
}

impl<T: Target> Recorder<T> {
    /// `no_audio`: leave any audio stream out.
    pub fn new(target: T, no_audio: bool) -> Recorder<T> {
        Recorder {
            target,
            no_audio,
            routes: Routes::default(),
            encoder: None,
        }
    }

    /// Take one message; a video frame's buffer comes back for reuse. Errors are encoding
    /// or writing failures.
    pub fn handle(&mut self, m: Message) -> anyhow::Result<Option<Vec<u8>>> {
        match m {
            Message::Stream { stream, info } => self.routes.describe(stream, info),
            Message::Video { stream, frame } => {
                if self.open_if_needed()? && self.routes.is_video(stream) {
                    self.encoder_mut().write_video(&frame)?;
                }
                return Ok(Some(frame.into_data()));
            }
            Message::Audio { stream, chunk } => {
                if self.open_if_needed()? && self.routes.is_audio(stream) {
                    self.encoder_mut().write_audio(&chunk)?;
                }
            }
            Message::Packet { .. } => {
                return Err(anyhow!(
                    "the stream carries compressed packets: {} encodes raw frames; decode them \
                     first (`... | sl-file - | {}`)",
                    sl_cli::program(),
                    sl_cli::program()
                ));
            }
            Message::Data { .. } | Message::End { .. } | Message::Unknown(_) => {}
        }
        Ok(None)
    }

    fn encoder_mut(&mut self) -> &mut T::Encoder {
        self.encoder.as_mut().expect("opened")
    }

    /// Open the output at the first frame; true once it is open.
    fn open_if_needed(&mut self) -> anyhow::Result<bool> {
        if self.encoder.is_some() {
            return Ok(true);
        }
        let Some((video, audio)) = self.routes.choose(self.no_audio) else {
            return Err(anyhow!(
                "a frame arrived before any raw video or audio stream description: nothing to write"
            ));
        };
        let encoder = self.target.open(video.as_ref(), audio.as_ref())?;
        if !encoder.has_audio() {
            self.routes.drop_audio();
        }
        self.encoder = Some(encoder);
        Ok(true)
    }

    /// Finalise the output whatever happened; `failure` is what stopped the input, if
    /// anything. Returns the stage's result: the failure (saying what was kept) or a
    /// finalising error.
    pub fn finish(&mut self, failure: Option<anyhow::Error>) -> anyhow::Result<()> {
        let name = self.target.name();
        let Some(encoder) = self.encoder.take() else {
            return match failure {
                Some(e) => Err(e.context(format!("nothing was written to {name}"))),
                None => Err(anyhow!(
                    "the stream ended before any frame arrived: nothing was written to {name}"
                )),
            };
        };
        self.target.finish(encoder, failure)
    }
}

impl<T: Target> Sink for Recorder<T> {
    fn message(&mut self, m: Message, pool: &Pool) -> anyhow::Result<Flow> {
        if let Some(buf) = self.handle(m)? {
            pool.put(buf);
        }
        Ok(Flow::Continue)
    }

    fn finish(&mut self, ending: Ending) -> anyhow::Result<()> {
        let failure = match ending {
            Ending::Failed(e) => Some(e),
            Ending::Clean | Ending::Interrupted => None,
        };
        Recorder::finish(self, failure)
    }
}

/// The encoder settings the shared encoder flags (`sl_cli::EncodeArgs`, flattened into
/// `sl-file` and `sl-hls`) ask for; the stage fills in the rest (container, keyframes,
/// threads, size).
pub fn sink_options(flags: &sl_cli::EncodeArgs) -> sl_media::SinkOptions {
    sl_media::SinkOptions {
        video_codec: flags.codec.clone(),
        preset: flags.preset.clone(),
        crf: flags.crf,
        video_bitrate: flags.bitrate,
        audio_bitrate: flags.audio_bitrate,
        codec_options: flags.codec_options.clone(),
        format_options: flags.mux_options.clone(),
        ..sl_media::SinkOptions::default()
    }
}
