//! A stage's output: stdout as a frame stream, written on the stage's thread or on a writer
//! thread of its own, with the limit (`--frames`/`--duration`), pacing by timestamps, the
//! capture-time stamp and the meter applied on the way. A stage only calls [`Output::send`].

use std::fs::File;
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::anyhow;

use sl_clock::ClockArgs;
use sl_frame::FrameInfo;
use sl_wire::{Message, WireError, Writer};

use crate::limit::{Admit, Limiter};
use crate::meter::Meter;
use crate::pace::Pacer;
use crate::policy::{self, Policy};
use crate::pool::Pool;
use crate::{Ending, Sink};

/// A video frame held outside a [`Message`] (a decoder's own buffers) that writes itself:
/// `sl-file` sends decoded frames straight from libav's planes with one `writev`.
pub trait WireItem: Send + 'static {
    fn info(&self) -> &FrameInfo;
    fn info_mut(&mut self) -> &mut FrameInfo;
    /// Payload bytes, for the meter.
    fn bytes(&self) -> u64;
    /// Write it; a buffer that can be reused comes back.
    fn write(self: Box<Self>, w: &mut Writer<File>) -> Result<Option<Vec<u8>>, WireError>;
    /// As a message of its own (a copy into `buf`), for a sink in the same process.
    fn into_message(self: Box<Self>, buf: Vec<u8>) -> anyhow::Result<Message>;
}

/// Work done on the writer thread to each message before it is written (a format
/// conversion), so the stage's thread never touches the whole frame again. The pool takes
/// buffers the hook frees.
pub type OnWrite = Box<dyn FnMut(Message, &Pool) -> Message + Send>;

// boxing each message would allocate once per frame for the sake of the small variants
#[allow(clippy::large_enum_variant)]
enum Out {
    Msg(Message),
    Item(Box<dyn WireItem>),
    Finish,
}

enum Writing {
    Inline(Box<Writer<File>>, Meter),
    Thread {
        tx: policy::Sender<Out>,
        handle: JoinHandle<anyhow::Result<Meter>>,
    },
    /// Into a sink in this process (decode and encode in one: `sl-file IN -o OUT`).
    Local(Box<dyn Sink>, Meter),
    Done,
}

/// How the output is written; set through [`crate::Stage`].
pub(crate) struct OutputOptions {
    pub threaded: bool,
    pub policy: Policy,
    pub on_write: Option<OnWrite>,
    pub clear_recycled: bool,
    pub pace: bool,
    pub stamp: Option<Arc<ClockArgs>>,
    pub live_meter: bool,
}

/// Where a stage sends what it makes.
pub struct Output {
    writing: Writing,
    pool: Pool,
    limit: Limiter,
    pacer: Option<Pacer>,
    stamp: Option<Arc<ClockArgs>>,
    stopped: bool,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output")
            .field("threaded", &matches!(self.writing, Writing::Thread { .. }))
            .field("stopped", &self.stopped)
            .finish()
    }
}

/// Write one message and count it; returns its buffer for reuse.
fn write_message(
    w: &mut Writer<File>,
    meter: &mut Meter,
    m: Message,
) -> Result<Option<Vec<u8>>, WireError> {
    match m {
        Message::Video { stream, frame } => {
            let bytes = frame.data().len() as u64;
            let secs = frame.info.pts_secs();
            let back = w.write_video_owned(stream, frame)?;
            meter.frame(bytes, Some(secs));
            Ok(back)
        }
        Message::Packet { stream, packet } => {
            w.write_packet(stream, &packet)?;
            meter.frame(packet.data.len() as u64, Some(packet.info.pts_secs()));
            Ok(Some(packet.data))
        }
        Message::Audio { stream, chunk } => {
            w.write_audio(stream, &chunk)?;
            meter.bytes(chunk.data().len() as u64);
            Ok(Some(chunk.into_data()))
        }
        other => {
            w.write_message(&other)?;
            Ok(None)
        }
    }
}

fn write_item(
    w: &mut Writer<File>,
    meter: &mut Meter,
    item: Box<dyn WireItem>,
) -> Result<Option<Vec<u8>>, WireError> {
    let (bytes, secs) = (item.bytes(), item.info().pts_secs());
    let back = item.write(w)?;
    meter.frame(bytes, Some(secs));
    Ok(back)
}

impl Output {
    /// stdout as this stage's output (a terminal is refused; the stream header is written).
    pub(crate) fn open(
        label: &str,
        limit: Limiter,
        pool: Pool,
        opts: OutputOptions,
    ) -> anyhow::Result<Output> {
        let w = sl_cli::frame_output()?;
        let meter = Meter::new(label, opts.live_meter);
        let writing = if opts.threaded {
            let (tx, rx) = policy::channel::<Out>(opts.policy, 2);
            let pool = pool.clone();
            let mut on_write = opts.on_write;
            let clear = opts.clear_recycled;
            let handle = std::thread::Builder::new()
                .name("sl-writer".into())
                .spawn(move || writer_thread(w, meter, rx, pool, on_write.as_mut(), clear))
                .expect("spawning the writer thread");
            Writing::Thread { tx, handle }
        } else {
            Writing::Inline(Box::new(w), meter)
        };
        Ok(Output {
            writing,
            pool,
            limit,
            pacer: opts.pace.then(Pacer::new),
            stamp: opts.stamp,
            stopped: false,
        })
    }

    /// Messages go to `sink` instead of stdout.
    pub(crate) fn local(
        label: &str,
        limit: Limiter,
        sink: Box<dyn Sink>,
        pace: bool,
        live_meter: bool,
    ) -> Output {
        Output {
            writing: Writing::Local(sink, Meter::new(label, live_meter)),
            pool: Pool::new(),
            limit,
            pacer: pace.then(Pacer::new),
            stamp: None,
            stopped: false,
        }
    }

    /// Whether the limit was reached (the stage should stop; the runner ends the stream).
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Video frames sent so far.
    pub fn video_frames(&self) -> u64 {
        self.limit.video_frames()
    }

    /// Would a frame at `secs` of stream time, after `frames` frames, be past the limit?
    pub fn limit_reached(&self, frames: u64, secs: f64) -> bool {
        self.limit.reached(frames, secs)
    }

    /// A buffer back from the writer, of at least `len` bytes' capacity if one is waiting.
    pub fn buffer(&self, len: usize) -> Option<Vec<u8>> {
        self.pool.take(len)
    }

    /// The pool buffers come back to (for a stage's own reuse).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Apply the limit's verdict: true if the message goes on.
    fn admitted(&mut self, admit: Admit) -> bool {
        if admit == Admit::Stop {
            self.stopped = true;
        }
        admit == Admit::Pass
    }

    /// Pace a frame by its timestamp, and stamp its capture time.
    fn pace_and_stamp(&mut self, info: Option<&mut FrameInfo>) -> anyhow::Result<()> {
        let Some(info) = info else { return Ok(()) };
        if let Some(p) = &mut self.pacer {
            p.wait_until(info.pts_secs());
        }
        // The one place a source's frames get their capture time (and, with `--clock ptp`,
        // their PTP time), once paced: the moment they leave. A source that knows better (a
        // camera's driver time, a screen grab's start) sets the capture time itself and gets
        // the PTP time of that instant.
        if let Some(clock) = &self.stamp {
            match info.capture_time_ns {
                None => clock.stamp(info)?,
                Some(at) => {
                    if info.ptp_time_ns.is_none() {
                        clock.stamp_at(info, at)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Send a message on. Past the limit nothing more is sent, and [`Output::stopped`] says so.
    /// The end of the whole stream is the runner's to write: a stage never sends it.
    pub fn send(&mut self, mut m: Message) -> anyhow::Result<()> {
        if self.stopped || m.is_end_of_all() {
            return Ok(());
        }
        let verdict = self.limit.admit(&m);
        if !self.admitted(verdict) {
            return Ok(());
        }
        self.pace_and_stamp(m.frame_info_mut())?;
        let frame = matches!(m, Message::Video { .. } | Message::Packet { .. });
        self.put(Out::Msg(m), frame)
    }

    /// Send a frame that writes itself (see [`WireItem`]).
    pub fn send_item(&mut self, mut item: Box<dyn WireItem>) -> anyhow::Result<()> {
        if self.stopped {
            return Ok(());
        }
        let verdict = self.limit.admit_video(item.info().pts_secs());
        if !self.admitted(verdict) {
            return Ok(());
        }
        self.pace_and_stamp(Some(item.info_mut()))?;
        self.put(Out::Item(item), true)
    }

    fn put(&mut self, out: Out, frame: bool) -> anyhow::Result<()> {
        match &mut self.writing {
            Writing::Inline(w, meter) => {
                let back = match out {
                    Out::Msg(m) => write_message(w, meter, m)?,
                    Out::Item(i) => write_item(w, meter, i)?,
                    Out::Finish => None,
                };
                if let Some(b) = back {
                    self.pool.put(b);
                }
                Ok(())
            }
            Writing::Thread { tx, .. } => {
                let sent = if frame {
                    tx.send_frame(out)
                } else {
                    tx.send_kept(out)
                };
                if sent.is_ok() {
                    return Ok(());
                }
                // the writer stopped: its error says why (often a closed pipe)
                match std::mem::replace(&mut self.writing, Writing::Done) {
                    Writing::Thread { tx, handle } => {
                        drop(tx);
                        match handle.join() {
                            Ok(Err(e)) => Err(e),
                            Ok(Ok(_)) => Err(anyhow!("the writer thread stopped")),
                            Err(_) => Err(anyhow!("the writer thread panicked")),
                        }
                    }
                    _ => unreachable!("matched above"),
                }
            }
            Writing::Local(sink, meter) => {
                let m = match out {
                    Out::Msg(m) => m,
                    Out::Item(i) => i.into_message(self.pool.take(0).unwrap_or_default())?,
                    Out::Finish => return Ok(()),
                };
                count(meter, &m);
                if sink.message(m, &self.pool)? == crate::Flow::Stop {
                    self.stopped = true;
                }
                Ok(())
            }
            Writing::Done => Err(anyhow!("the output is closed")),
        }
    }

    /// End output into a local sink: its `finish`, with how the source ended.
    pub(crate) fn finish_local(mut self, ending: Ending, stats: bool) -> anyhow::Result<()> {
        match std::mem::replace(&mut self.writing, Writing::Done) {
            Writing::Local(mut sink, mut meter) => {
                let r = sink.finish(ending);
                meter.finish(stats);
                r
            }
            _ => ending.into_result(),
        }
    }

    /// End the output: with `complete`, the end-of-stream message (a finished stream);
    /// without, a flush only, so the next stage sees a truncated stream. Prints the meter's
    /// final line (always with `stats`).
    pub(crate) fn finish(mut self, complete: bool, stats: bool) -> anyhow::Result<()> {
        match std::mem::replace(&mut self.writing, Writing::Done) {
            Writing::Inline(mut w, mut meter) => {
                let r = if complete { w.finish() } else { w.flush() };
                meter.finish(stats);
                r?;
                Ok(())
            }
            Writing::Thread { tx, handle } => {
                if complete {
                    let _ = tx.send_kept(Out::Finish);
                }
                let dropped = tx.dropped();
                drop(tx);
                let mut meter = handle
                    .join()
                    .map_err(|_| anyhow!("the writer thread panicked"))??;
                meter.dropped += dropped;
                meter.finish(stats);
                Ok(())
            }
            Writing::Local(mut sink, mut meter) => {
                let ending = if complete {
                    Ending::Clean
                } else {
                    Ending::Failed(anyhow!("the stage failed"))
                };
                let r = sink.finish(ending);
                meter.finish(stats);
                r
            }
            Writing::Done => Ok(()),
        }
    }
}

/// Count a message taken by a sink in the meter.
pub(crate) fn count(meter: &mut Meter, m: &Message) {
    match m {
        Message::Video { frame, .. } => {
            meter.frame(frame.data().len() as u64, Some(frame.info.pts_secs()))
        }
        Message::Packet { packet, .. } => {
            meter.frame(packet.data.len() as u64, Some(packet.info.pts_secs()))
        }
        Message::Audio { chunk, .. } => meter.bytes(chunk.data().len() as u64),
        _ => {}
    }
}

fn writer_thread(
    mut w: Writer<File>,
    mut meter: Meter,
    rx: policy::Receiver<Out>,
    pool: Pool,
    mut on_write: Option<&mut OnWrite>,
    clear: bool,
) -> anyhow::Result<Meter> {
    while let Some(out) = rx.recv() {
        let back = match out {
            Out::Msg(m) => {
                let m = match on_write.as_mut() {
                    Some(f) => f(m, &pool),
                    None => m,
                };
                write_message(&mut w, &mut meter, m)?
            }
            Out::Item(i) => write_item(&mut w, &mut meter, i)?,
            Out::Finish => {
                w.finish()?;
                return Ok(meter);
            }
        };
        if let Some(mut b) = back {
            if clear {
                b.fill(0);
            }
            pool.put(b);
        }
    }
    // no end-of-stream message: the stage failed, the stream stays truncated
    w.flush()?;
    Ok(meter)
}
