//! The stage runtime. A stage says what it makes, changes or consumes per message, and what
//! it does at the end; the runtime owns everything else: threads, read-ahead and buffer
//! reuse, the delivery policy (`--policy`), pacing, `--frames`/`--duration`, the meter,
//! signals, and the end-of-stream message.
//!
//! A stage is one of four roles:
//!
//! - a [`Source`] makes messages from nothing but its device or file (`sl-test`, `sl-cam`,
//!   `sl-screen`, `sl-file INPUT`, `sl-draw` without input);
//! - a [`Filter`] takes messages from one or several inputs and sends messages on
//!   (`sl-draw` over a stream; a compositor has several inputs, a model is slower than the
//!   frame rate: `--policy latest` then hands it the newest frame each time it is ready);
//! - a [`Sink`] consumes messages (`sl-show`, `sl-file -o`, `sl-hls`), optionally passing
//!   the input on unchanged;
//! - a [`Tap`] only looks at message headers (`sl-info`): the payloads are spliced from pipe
//!   to pipe, or skipped, without entering the process.
//!
//! A frame's life through a filter:
//!
//! ```text
//! stdin ─▶ reader thread ─▶ policy channel ─▶ Filter::message ─▶ Output::send ─▶ [writer thread] ─▶ stdout
//!          (read-ahead,      (block: waits;     (the stage's       (limit, pacing,    (one writev or
//!           Filter::note)     latest/queue:N     own work)          capture stamp)     vmsplice)
//!                             drop frames)                                   │
//!          ◀──────────────────── frame buffers come back through the Pool ───┘
//! ```
//!
//! The ends are the runtime's too: a clean end (every input's END, a source that stops, the
//! limit) and Ctrl-C call the stage's `finish` and then write END; a failure (a truncated
//! input, an error) calls `finish` with it and leaves the output without END, so the next
//! stage knows, and the process exits 1. A closed pipe downstream is a quiet exit 0.
//!
//! ```no_run
//! use sl_stage::{Flow, Output, Source, Stage};
//! use sl_frame::{PixelFormat, Rational, VideoFrame};
//! use sl_wire::{Message, StreamInfo};
//!
//! struct Grey { n: u64 }
//!
//! impl Source for Grey {
//!     fn start(&mut self, out: &mut Output) -> anyhow::Result<()> {
//!         let info = StreamInfo::raw_video(PixelFormat::Gray8, 64, 48, Rational::new(30, 1));
//!         out.send(Message::Stream { stream: 0, info })
//!     }
//!     fn produce(&mut self, out: &mut Output) -> anyhow::Result<Flow> {
//!         let mut frame = VideoFrame::new(PixelFormat::Gray8, 64, 48)?;
//!         frame.data_mut().fill(128);
//!         frame.info.frame_number = self.n;
//!         frame.info.pts = self.n as i64;
//!         frame.info.time_base = Rational::new(1, 30);
//!         self.n += 1;
//!         out.send(Message::Video { stream: 0, frame })?;
//!         Ok(Flow::Continue)
//!     }
//! }
//!
//! fn run() -> anyhow::Result<()> {
//!     Stage::new("sl-grey")
//!         .pace(sl_stage::Pace::Frames(Rational::new(30, 1)))
//!         .run_source(Grey { n: 0 })
//! }
//! ```

mod input;
mod limit;
mod lines;
mod meter;
mod output;
mod pace;
pub mod policy;
mod pool;
mod run;

pub use limit::{Admit, Limiter};
pub use meter::{Meter, human_bytes};
pub use output::{OnWrite, Output, WireItem};
pub use pace::Pacer;
pub use policy::Policy;
pub use pool::Pool;
pub use run::{Pace, Stage};

use sl_wire::{Message, MessageHead};

/// Go on, or stop cleanly (the runner then ends the stream with END).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// How a stage's run ended, handed to its `finish`.
#[derive(Debug)]
pub enum Ending {
    /// The input ended with END, the source stopped, or the limit was reached.
    Clean,
    /// SIGINT or SIGTERM: finalise, the process exits 130.
    Interrupted,
    /// A truncated or invalid input, or the stage's own error: finalise what can be, and
    /// return it (with context) so the process exits 1.
    Failed(anyhow::Error),
}

impl Ending {
    /// `Err` for a failure, `Ok` otherwise: what most `finish` methods return last.
    pub fn into_result(self) -> anyhow::Result<()> {
        match self {
            Ending::Failed(e) => Err(e),
            _ => Ok(()),
        }
    }

    pub fn is_failed(&self) -> bool {
        matches!(self, Ending::Failed(_))
    }
}

/// A stage that makes messages.
pub trait Source {
    /// Describe the streams (send their `Message::Stream`s). Open devices before the runner
    /// starts, so bad arguments fail before anything is written.
    fn start(&mut self, _out: &mut Output) -> anyhow::Result<()> {
        Ok(())
    }

    /// Make the next frame (or message) and send it. Under [`Pace::Frames`] each call is
    /// made when its frame is due. `Flow::Stop` ends the stream cleanly.
    fn produce(&mut self, out: &mut Output) -> anyhow::Result<Flow>;

    /// After the last `produce`, whatever the ending. Returns the stage's result.
    fn finish(&mut self, ending: Ending) -> anyhow::Result<()> {
        ending.into_result()
    }
}

/// A stage that takes messages from one or more inputs and sends messages on.
pub trait Filter {
    /// What the reader thread finds out about each message before the filter gets it: work
    /// that reads a whole frame belongs there, where it overlaps the filter's own. `()` for
    /// most filters.
    type Note: Send + Default + 'static;

    /// Run on the reader thread for each message.
    fn note(_m: &Message) -> Self::Note {
        Self::Note::default()
    }

    /// Before the first message (send new stream descriptions here if the filter makes
    /// streams of its own).
    fn start(&mut self, _out: &mut Output) -> anyhow::Result<()> {
        Ok(())
    }

    /// Take one message from input `input` (0 for stdin) and send what follows from it.
    /// Messages the filter does not change go on as they are: `out.send(m)`.
    fn message(
        &mut self,
        input: usize,
        m: Message,
        note: Self::Note,
        out: &mut Output,
    ) -> anyhow::Result<Flow>;

    /// At the end, before END is written: send what is held back. Returns the stage's result.
    fn finish(&mut self, ending: Ending, _out: &mut Output) -> anyhow::Result<()> {
        ending.into_result()
    }
}

/// A stage that consumes messages.
pub trait Sink {
    /// Take one message. Buffers done with can go back to `pool` for the reader.
    fn message(&mut self, m: Message, pool: &Pool) -> anyhow::Result<Flow>;

    /// Called when no message came for [`Sink::tick_every`] (a window handles its keys).
    fn tick(&mut self) -> anyhow::Result<Flow> {
        Ok(Flow::Continue)
    }

    fn tick_every(&self) -> std::time::Duration {
        std::time::Duration::from_millis(100)
    }

    /// Always called, with how the input ended: finalise the output. Returns the stage's
    /// result (a failure with context, say what was kept).
    fn finish(&mut self, ending: Ending) -> anyhow::Result<()>;
}

/// A stage that only looks at headers.
pub trait Tap {
    /// One message's header, its payload length and its size on the wire.
    fn observe(
        &mut self,
        head: &MessageHead,
        payload_len: u64,
        wire_len: u64,
    ) -> anyhow::Result<()>;

    /// Text for the end of the meter's live line (sl-info's latency), asked after each
    /// frame; `None` keeps the last one.
    fn note(&mut self) -> Option<String> {
        None
    }

    /// Always called, with how the input ended.
    fn finish(&mut self, ending: Ending) -> anyhow::Result<()>;
}
