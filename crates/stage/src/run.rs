//! The runner: the loops every stage used to write for itself.

use std::fs::File;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use sl_cli::{FrameLimit, Progress};
use sl_clock::ClockArgs;
use sl_frame::Rational;
use sl_wire::{Message, Reader};

use crate::input::{self, Input, PassOut};
use crate::limit::{Admit, Limiter};
use crate::output::{OnWrite, Output, OutputOptions};
use crate::pace::Pacer;
use crate::policy::{Bell, Policy, TryRecv};
use crate::pool::Pool;
use crate::{Ending, Filter, Flow, Sink, Source, Tap};

/// How a source is paced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pace {
    /// As fast as the consumer takes frames (`--fast`), or the source has its own clock (a
    /// camera's driver).
    #[default]
    Off,
    /// One `produce` call per frame at this rate, each made when it comes due (a test
    /// pattern, a screen grab): what is made is fresh when it leaves.
    Frames(Rational),
    /// Each frame leaves when its timestamp comes due (a file played as a live source).
    Timestamps,
}

/// A stage's configuration: what the runner needs from the shared flags, and how this stage
/// wants its threads. Build one, then hand it a [`Source`], [`Filter`], [`Sink`] or [`Tap`].
pub struct Stage {
    label: String,
    limit: FrameLimit,
    progress: Progress,
    live_by_default: bool,
    policy: Policy,
    pace: Pace,
    threaded_output: bool,
    on_write: Option<OnWrite>,
    clear_recycled: bool,
    stamp: Option<Arc<ClockArgs>>,
    pass: bool,
    inputs: Vec<Reader<File>>,
}

impl std::fmt::Debug for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stage")
            .field("label", &self.label)
            .field("limit", &self.limit)
            .field("policy", &self.policy)
            .field("pace", &self.pace)
            .field("threaded_output", &self.threaded_output)
            .field("inputs", &self.inputs.len())
            .finish()
    }
}

/// How long the runner waits for input before checking for Ctrl-C again.
const POLL: Duration = Duration::from_millis(100);

impl Stage {
    /// A stage named for its meter and messages (`sl_cli::program()` is the usual name).
    pub fn new(label: impl Into<String>) -> Stage {
        Stage {
            label: label.into(),
            limit: FrameLimit::default(),
            progress: Progress::default(),
            live_by_default: false,
            policy: Policy::Block,
            pace: Pace::Off,
            threaded_output: false,
            on_write: None,
            clear_recycled: false,
            stamp: None,
            pass: false,
            inputs: Vec::new(),
        }
    }

    /// `--frames` / `--duration`: applied to what the stage sends (sources, filters) or takes
    /// (sinks).
    pub fn limit(mut self, limit: FrameLimit) -> Stage {
        self.limit = limit;
        self
    }

    /// `--progress` / `--no-progress` / `--stats`; `live_by_default` for stages whose job is
    /// the meter (`sl-info --pass`).
    pub fn progress(mut self, progress: Progress, live_by_default: bool) -> Stage {
        self.progress = progress;
        self.live_by_default = live_by_default;
        self
    }

    /// `--policy`: between the reader and the stage (filters, sinks), or between the stage
    /// and its writer thread (sources).
    pub fn policy(mut self, policy: Policy) -> Stage {
        self.policy = policy;
        self
    }

    /// How a source is paced.
    pub fn pace(mut self, pace: Pace) -> Stage {
        self.pace = pace;
        self
    }

    /// Write on a thread of its own: pays when making a frame is real work (decoding,
    /// drawing), so the pipe write of one overlaps the making of the next.
    pub fn write_on_thread(mut self, yes: bool) -> Stage {
        self.threaded_output = yes;
        self
    }

    /// Work on the writer thread before each message is written (implies a writer thread).
    pub fn on_write(mut self, f: OnWrite) -> Stage {
        self.on_write = Some(f);
        self.threaded_output = true;
        self
    }

    /// Zero buffers before they come back for reuse (a canvas that must start transparent).
    pub fn clear_recycled(mut self, yes: bool) -> Stage {
        self.clear_recycled = yes;
        self
    }

    /// Stamp frames that leave without a capture time with the time they leave (sources),
    /// on the system clock, or the one `$SL_CLOCK` names.
    pub fn stamp_capture_time(mut self, yes: bool) -> Stage {
        self.stamp = yes.then(|| self.stamp.take().unwrap_or_default());
        self
    }

    /// Stamp with this clock (`--clock`): capture time, and PTP time when the clock has one.
    /// A `--clock ptp` with no `sl-ptp` running fails here, before anything is written.
    pub fn clock(mut self, clock: ClockArgs) -> anyhow::Result<Stage> {
        clock.ptp_now()?;
        self.stamp = Some(Arc::new(clock));
        Ok(self)
    }

    /// Also copy the input, unchanged, to stdout as it is read (a sink in the middle of a
    /// pipe: `sl-show --pass`).
    pub fn pass_through(mut self, yes: bool) -> Stage {
        self.pass = yes;
        self
    }

    /// Read these streams instead of stdin (a filter with several inputs).
    pub fn inputs(mut self, inputs: Vec<Reader<File>>) -> Stage {
        self.inputs = inputs;
        self
    }

    fn live(&self) -> bool {
        self.progress.live(self.live_by_default)
    }

    fn open_output(&mut self, pool: &Pool, pace: bool) -> anyhow::Result<Output> {
        Output::open(
            &self.label,
            Limiter::new(self.limit),
            pool.clone(),
            OutputOptions {
                threaded: self.threaded_output,
                policy: self.policy,
                on_write: self.on_write.take(),
                clear_recycled: self.clear_recycled,
                pace,
                stamp: self.stamp.clone(),
                live_meter: self.live(),
            },
        )
    }

    /// Start a reader thread per input; with [`Stage::pass_through`], the first input is
    /// also copied to stdout (returned, to be ended by the runner).
    fn open_inputs<N: Send + 'static>(
        &mut self,
        pool: &Pool,
        bell: &Arc<Bell>,
        note: fn(&Message) -> N,
    ) -> anyhow::Result<(Vec<Input<N>>, Option<PassOut>)> {
        let mut readers = std::mem::take(&mut self.inputs);
        if readers.is_empty() {
            readers.push(sl_cli::frame_input()?);
        }
        let pass = if self.pass {
            Some(Arc::new(Mutex::new(sl_cli::frame_output()?)))
        } else {
            None
        };
        let inputs = readers
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                input::spawn(
                    r,
                    self.policy,
                    Some(Arc::clone(bell)),
                    pool.clone(),
                    pass.clone().filter(|_| i == 0),
                    note,
                )
            })
            .collect();
        Ok((inputs, pass))
    }

    /// Run a source until it stops, the limit is reached, Ctrl-C, or it fails.
    pub fn run_source<S: Source>(mut self, mut source: S) -> anyhow::Result<()> {
        let pool = Pool::new();
        let mut out = self.open_output(&pool, self.pace == Pace::Timestamps)?;
        let stats = self.progress.stats;
        let ending = match source.start(&mut out) {
            Err(e) => Ending::Failed(e),
            Ok(()) => self.produce_loop(&mut source, &mut out),
        };
        end(out, ending, stats, |ending, _| source.finish(ending))
    }

    /// Run a source into a sink in this process (decode and encode in one, `sl-file IN -o
    /// OUT`): the same limit and pacing as [`Stage::run_source`], and the sink's `finish`
    /// with how the source ended.
    pub fn run_source_into<S: Source, K: Sink + 'static>(
        self,
        mut source: S,
        sink: K,
    ) -> anyhow::Result<()> {
        let mut out = Output::local(
            &self.label,
            Limiter::new(self.limit),
            Box::new(sink),
            self.pace == Pace::Timestamps,
            self.live(),
        );
        let ending = match source.start(&mut out) {
            Err(e) => Ending::Failed(e),
            Ok(()) => self.produce_loop(&mut source, &mut out),
        };
        let ending = match source.finish(ending) {
            Ok(()) if sl_cli::interrupted() => Ending::Interrupted,
            Ok(()) => Ending::Clean,
            Err(e) => Ending::Failed(e),
        };
        out.finish_local(ending, self.progress.stats)
    }

    /// Call `produce` until the source stops, the limit, Ctrl-C or a failure.
    fn produce_loop<S: Source>(&self, source: &mut S, out: &mut Output) -> Ending {
        let mut pacer = Pacer::new();
        let mut n = 0u64;
        loop {
            if sl_cli::interrupted() {
                return Ending::Interrupted;
            }
            // past the limit before the next frame is made (and waited for)
            let secs = match self.pace {
                Pace::Frames(fps) => fps.inverse().ticks_to_secs(n as i64),
                _ => f64::NEG_INFINITY,
            };
            if out.limit_reached(out.video_frames(), secs) {
                return Ending::Clean;
            }
            if let Pace::Frames(_) = self.pace {
                pacer.wait_until(secs);
                if sl_cli::interrupted() {
                    return Ending::Interrupted;
                }
            }
            match source.produce(out) {
                Ok(Flow::Continue) if !out.stopped() => n += 1,
                Ok(_) => return Ending::Clean,
                Err(e) => return Ending::Failed(e),
            }
        }
    }

    /// Run a filter over stdin (or [`Stage::inputs`]) until every input ends, the filter or
    /// the limit stops it, Ctrl-C, or a failure. Unknown message kinds go straight on.
    pub fn run_filter<F: Filter>(mut self, mut filter: F) -> anyhow::Result<()> {
        let pool = Pool::new();
        let bell = Bell::new();
        let (inputs, _) = self.open_inputs(&pool, &bell, F::note)?;
        let mut out = self.open_output(&pool, false)?;
        let stats = self.progress.stats;
        let ending = match filter.start(&mut out) {
            Err(e) => Ending::Failed(e),
            Ok(()) => drive(&inputs, &bell, None, |event| match event {
                Event::Message(_, m @ Message::Unknown(_), _) => {
                    out.send(m).map(|()| Flow::Continue)
                }
                Event::Message(i, m, note) => {
                    let flow = filter.message(i, m, note, &mut out)?;
                    Ok(if out.stopped() { Flow::Stop } else { flow })
                }
                Event::Idle => Ok(Flow::Continue),
            }),
        };
        drop(inputs);
        end(out, ending, stats, |ending, out| filter.finish(ending, out))
    }

    /// Run a sink over stdin until it ends, the sink or the limit stops it, Ctrl-C, or a
    /// failure. `finish` always runs, with how it ended, so output is finalised.
    pub fn run_sink<K: Sink>(mut self, mut sink: K) -> anyhow::Result<()> {
        let pool = Pool::new();
        let bell = Bell::new();
        let (inputs, pass) = self.open_inputs(&pool, &bell, |_| ())?;
        let mut limit = Limiter::new(self.limit);
        let mut meter = crate::Meter::new(self.label.clone(), self.live());
        let tick = sink.tick_every();
        let ending = drive(&inputs, &bell, Some(tick), |event| match event {
            Event::Message(_, m, ()) => match limit.admit(&m) {
                Admit::Pass => {
                    crate::output::count(&mut meter, &m);
                    sink.message(m, &pool)
                }
                Admit::Skip => Ok(Flow::Continue),
                Admit::Stop => Ok(Flow::Stop),
            },
            Event::Idle => sink.tick(),
        });
        drop(inputs);
        // the stage stopped first (a closed window) or was interrupted: the copy still ends
        // cleanly; after a failed input it stays truncated
        let ended = match (&pass, &ending) {
            (Some(w), Ending::Clean | Ending::Interrupted) => w
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .finish()
                .map_err(anyhow::Error::from),
            _ => Ok(()),
        };
        let result = sink.finish(ending).and(ended);
        meter.finish(self.progress.stats);
        result
    }

    /// Run a tap: it sees every message's header; with `pass`, the stream goes to stdout
    /// unchanged, payloads spliced from pipe to pipe inside the kernel (see
    /// docs/performance.md), else payloads are skipped unread.
    /// The input is stdin, or the first of [`Stage::inputs`] (a file named on the command line).
    pub fn run_tap<T: Tap>(mut self, mut tap: T, pass: bool) -> anyhow::Result<()> {
        let from_stdin = self.inputs.is_empty();
        let mut reader = if from_stdin {
            sl_cli::frame_input()?
        } else {
            self.inputs.remove(0)
        };
        let mut writer = if pass {
            Some(sl_cli::frame_output()?)
        } else {
            None
        };
        let mut meter = crate::Meter::new(self.label.clone(), self.live());
        let result: anyhow::Result<()> = (|| {
            while !sl_cli::interrupted() {
                let next = match writer.as_mut() {
                    Some(w) => reader.forward(w)?,
                    None => reader.next_head_skipping_payload()?,
                };
                let Some((head, payload, wire)) = next else {
                    return Ok(());
                };
                tap.observe(&head, payload, wire)?;
                if matches!(
                    head,
                    sl_wire::MessageHead::Video { .. } | sl_wire::MessageHead::Packet { .. }
                ) {
                    if let Some(note) = tap.note() {
                        meter.set_note(note);
                    }
                    meter.frame(wire, head.frame_info().map(|i| i.pts_secs()));
                } else {
                    meter.bytes(wire);
                }
            }
            Ok(())
        })();
        meter.finish(self.progress.stats);
        let ending = match result {
            Ok(()) if sl_cli::interrupted() => Ending::Interrupted,
            Ok(()) => Ending::Clean,
            Err(e) => Ending::Failed(e.context(if from_stdin {
                "reading stdin"
            } else {
                "reading the input"
            })),
        };
        // the input ended cleanly (its end was forwarded) or was interrupted: end our output
        // too; a failed input leaves it truncated
        if let (Some(w), Ending::Interrupted) = (writer.as_mut(), &ending) {
            w.finish()?;
        }
        self.inputs.clear();
        tap.finish(ending)
    }
}

/// What the runner hands the loop body.
// boxing each message would allocate once per frame for the sake of `Idle`
#[allow(clippy::large_enum_variant)]
enum Event<N> {
    Message(usize, Message, N),
    Idle,
}

/// The input loop shared by filters and sinks: messages from every input in turn, idle
/// ticks, Ctrl-C checked at least every 100 ms, and how it ended.
fn drive<N>(
    inputs: &[Input<N>],
    bell: &Bell,
    tick: Option<Duration>,
    mut on: impl FnMut(Event<N>) -> anyhow::Result<Flow>,
) -> Ending {
    let mut ended = vec![false; inputs.len()];
    let mut last_tick = Instant::now();
    let wait = tick.map_or(POLL, |t| t.min(POLL));
    loop {
        if sl_cli::interrupted() {
            return Ending::Interrupted;
        }
        let seen = bell.count();
        let mut got = false;
        for (i, input) in inputs.iter().enumerate() {
            if ended[i] {
                continue;
            }
            match input.rx.try_recv() {
                TryRecv::Item(Ok((m, note))) => {
                    got = true;
                    if m.is_end_of_all() {
                        ended[i] = true;
                        if ended.iter().all(|e| *e) {
                            return Ending::Clean;
                        }
                        continue;
                    }
                    match on(Event::Message(i, m, note)) {
                        Ok(Flow::Continue) => {}
                        Ok(Flow::Stop) => return Ending::Clean,
                        Err(e) => return Ending::Failed(e),
                    }
                }
                TryRecv::Item(Err(e)) => {
                    let what = if inputs.len() == 1 {
                        "reading stdin".to_string()
                    } else {
                        format!("reading input {i}")
                    };
                    return Ending::Failed(anyhow::Error::from(e).context(what));
                }
                TryRecv::Empty => {}
                TryRecv::Closed => {
                    return Ending::Failed(anyhow!("the reader thread stopped"));
                }
            }
        }
        if !got {
            if let Some(t) = tick
                && last_tick.elapsed() >= t
            {
                last_tick = Instant::now();
                match on(Event::Idle) {
                    Ok(Flow::Continue) => {}
                    Ok(Flow::Stop) => return Ending::Clean,
                    Err(e) => return Ending::Failed(e),
                }
            }
            bell.wait(seen, wait);
        }
    }
}

/// Close a source's or filter's output after its `finish`: a clean end or Ctrl-C writes the
/// end of the stream; a failure leaves it truncated, so the next stage knows.
fn end(
    mut out: Output,
    ending: Ending,
    stats: bool,
    finish: impl FnOnce(Ending, &mut Output) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let complete = !matches!(ending, Ending::Failed(_));
    let result = finish(ending, &mut out);
    let closed = out.finish(complete && result.is_ok(), stats);
    result.and(closed)
}
