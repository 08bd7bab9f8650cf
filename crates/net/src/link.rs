//! Moving messages over one connection: [`push`] from a hub subscription, [`pull`] to the
//! output. The layout on the connection is described in [`crate::proto`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use quinn::{Connection, ConnectionError, RecvStream, SendStream, VarInt};
use sl_wire::{Limits, PREFIX_LEN};
use tokio::sync::{Notify, Semaphore, mpsc};

use crate::NetError;
use crate::hub::{Next, SubPolicy, Subscription};
use crate::proto::{
    self, Msg, REC_ABORT, REC_MESSAGE, REC_RESUME, StreamReader, TAG_FRAME, TAG_ORDERED, close,
};
use crate::stats::Stats;

/// Frames of a `latest` link that may be unacknowledged at once: this bounds the lag behind a
/// slow link to about this many frames. A frame holds its place for a round trip plus the
/// receiver's acknowledgement delay (up to 25 ms), so with two, a 30 fps source over a 40 ms
/// path already lost frames to waiting alone (bench-net: 242 of 300 delivered); four keep
/// such a path busy.
const LATEST_IN_FLIGHT: usize = 4;

/// Records a `block` link sends ahead of the receiver's reports of what it has written out.
/// QUIC's flow control alone would let a sender write tens of megabytes into a connection
/// whose peer has died, all of it lost when the connection times out; with this bound the
/// input waits (as a pipe's writer would) once the peer stops answering.
const BLOCK_IN_FLIGHT: u64 = 32;

/// And at most this many bytes of them (but always one record): a `block` sender keeps what
/// it sent until the receiver reports it written ([`Resume`]), so this bounds its memory
/// behind a slow reader (1080p RGBA: 8 frames, where 32 held 265 MB).
const BLOCK_BYTES_IN_FLIGHT: u64 = 64 << 20;

/// How a push ended.
#[derive(Debug)]
pub enum PushEnd {
    /// The stream ended and the peer confirmed it.
    Done,
    /// The input failed; the peer was told.
    InputFailed(String),
    /// The peer hung up first (Ctrl-C there, its downstream closed, refused...).
    PeerClosed { code: u32, reason: String },
    /// The connection was lost (timeout, reset).
    Lost(ConnectionError),
}

fn conn_end(e: ConnectionError) -> PushEnd {
    match e {
        ConnectionError::ApplicationClosed(c) => PushEnd::PeerClosed {
            code: c.error_code.into_inner() as u32,
            reason: String::from_utf8_lossy(&c.reason).into_owned(),
        },
        e => PushEnd::Lost(e),
    }
}

/// Newest acknowledged frame per stream, so frames still in flight behind it are reset.
#[derive(Debug, Default)]
struct Acked {
    newest: Mutex<BTreeMap<u16, u64>>,
    changed: Notify,
}

/// How many ordered records the puller has written out, from its delivery reports.
#[derive(Debug, Default)]
struct Delivered {
    records: std::sync::atomic::AtomicU64,
    changed: Notify,
}

impl Delivered {
    async fn read_reports(&self, mut rs: RecvStream) {
        let mut r = StreamReader { rs: &mut rs };
        while let Ok(n) = r.u64().await {
            self.records.fetch_max(n, Ordering::SeqCst);
            self.changed.notify_waiters();
        }
    }

    /// Wait until fewer than `max` of the first `written` records are undelivered.
    async fn wait_below(&self, written: u64, max: u64) {
        loop {
            let n = self.changed.notified();
            if written.saturating_sub(self.records.load(Ordering::SeqCst)) < max {
                return;
            }
            n.await;
        }
    }
}

/// What a `block` sender carries from one connection to the next, so that the next one takes
/// up where the receiver stopped writing out: the messages sent but not reported written are
/// sent again, after the stream descriptions in effect before them, and numbered within the
/// session, so a receiver that did pass some of them on (its reports were lost with the
/// connection) skips those. Nothing is lost and nothing is written twice. Only for streams
/// whose frames stand alone: an H.264-coded link starts again at a keyframe instead.
#[derive(Debug)]
pub struct Resume {
    session: u64,
    /// The session number of the first message in `unconfirmed`.
    first: u64,
    /// Messages sent and not yet reported written, oldest first (at most about
    /// [`BLOCK_IN_FLIGHT`]).
    unconfirmed: VecDeque<Msg>,
    /// The stream descriptions in effect before `first`.
    infos: BTreeMap<u16, Msg>,
    /// On the current connection: records sent before the numbered ones (the descriptions),
    /// and how many numbered ones were reported written.
    synthetic: u64,
    confirmed: u64,
}

impl Resume {
    pub fn new(session: u64) -> Resume {
        Resume {
            session,
            first: 0,
            unconfirmed: VecDeque::new(),
            infos: BTreeMap::new(),
            synthetic: 0,
            confirmed: 0,
        }
    }

    /// Take in the receiver's report: `written` of this connection's records.
    fn sync(&mut self, written: u64) {
        let done = written.saturating_sub(self.synthetic);
        if done > self.confirmed {
            self.confirm(done - self.confirmed);
            self.confirmed = done;
        }
    }

    /// Nothing to send again.
    pub fn is_empty(&self) -> bool {
        self.unconfirmed.is_empty()
    }

    /// Frames that a new connection will send again.
    pub fn frames_to_resend(&self) -> u64 {
        self.unconfirmed.iter().filter(|m| m.is_frame()).count() as u64
    }

    /// The first `n` unconfirmed messages were written out: forget them.
    fn confirm(&mut self, n: u64) {
        for _ in 0..n {
            let Some(m) = self.unconfirmed.pop_front() else {
                return;
            };
            self.first += 1;
            if m.kind == sl_wire::kind::STREAM_INFO {
                self.infos.insert(m.stream, m);
            } else if m.kind == sl_wire::kind::END {
                if m.is_end_of_all() {
                    self.infos.clear();
                } else {
                    self.infos.remove(&m.stream);
                }
            }
        }
    }
}

/// Send everything `sub` yields on `conn` until the stream ends. `reports` is the hello
/// stream's receiving half, where the puller reports what it has written out. With `resume`
/// (`block` only), the connection first sends again what the last one's receiver never
/// wrote out, and a lost connection leaves what this one's did not in `resume`.
pub async fn push(
    conn: &Connection,
    sub: &Arc<Subscription>,
    stats: &Arc<Stats>,
    reports: RecvStream,
    resume: Option<&mut Resume>,
) -> Result<PushEnd, NetError> {
    let latest = sub.policy == SubPolicy::Latest;
    let mut ordered = match conn.open_uni().await {
        Ok(s) => s,
        Err(e) => return Ok(conn_end(e)),
    };
    let delivered = Arc::new(Delivered::default());
    let _reader = AbortOnDrop({
        let d = Arc::clone(&delivered);
        tokio::spawn(async move { d.read_reports(reports).await })
    });
    let mut sent = Sent::default();
    let mut resume = resume;
    let resuming = resume.is_some();
    let r = push_loop(
        conn,
        sub,
        stats,
        &mut ordered,
        latest,
        &delivered,
        &mut sent,
        resume.as_deref_mut(),
    )
    .await;
    if let Some(r) = resume {
        r.sync(delivered.records.load(Ordering::SeqCst));
    }
    let end = match r {
        Ok(end) => Ok(end),
        Err(NetError::Connection(e)) => Ok(conn_end(e)),
        Err(NetError::Write(quinn::WriteError::ConnectionLost(e))) => Ok(conn_end(e)),
        Err(e) => Err(e),
    };
    if let Ok(PushEnd::Lost(_)) = end
        && !latest
        && !resuming
    {
        // sent, but the peer never said it wrote them out: gone with the connection
        let lost = sent.frames_after(delivered.records.load(Ordering::SeqCst));
        stats.lost_frames.fetch_add(lost, Ordering::Relaxed);
    }
    end
}

/// The records sent on the ordered stream and not yet reported written: whether each was a
/// frame (to count the ones a lost connection took with it) and its size (to bound them).
#[derive(Default)]
struct Sent {
    /// Record number, size and whether a frame, oldest first (pruned as reports come).
    records: VecDeque<(u64, u64, bool)>,
    bytes: u64,
}

impl Sent {
    fn prune(&mut self, delivered: u64) {
        while let Some(&(i, size, _)) = self.records.front()
            && i < delivered
        {
            self.bytes -= size;
            self.records.pop_front();
        }
    }

    fn record(&mut self, index: u64, m: &Msg, delivered: u64) {
        self.prune(delivered);
        let size = m.parts.iter().map(|p| p.len() as u64).sum();
        self.bytes += size;
        self.records.push_back((index, size, m.is_frame()));
    }

    /// Frames among the records from `delivered` on.
    fn frames_after(&self, delivered: u64) -> u64 {
        self.records
            .iter()
            .filter(|&&(i, _, frame)| frame && i >= delivered)
            .count() as u64
    }

    /// Wait until fewer than `max` of the first `written` records are unreported and, unless
    /// none is, they hold less than [`BLOCK_BYTES_IN_FLIGHT`].
    async fn wait_room(&mut self, delivered: &Delivered, written: u64, max: u64) {
        loop {
            let n = delivered.changed.notified();
            let d = delivered.records.load(Ordering::SeqCst);
            self.prune(d);
            let ahead = written.saturating_sub(d);
            if ahead < max && (ahead == 0 || self.bytes < BLOCK_BYTES_IN_FLIGHT) {
                return;
            }
            n.await;
        }
    }
}

/// One message record on the ordered stream.
async fn write_record(
    ordered: &mut SendStream,
    frames_before: u64,
    m: &Msg,
) -> Result<(), NetError> {
    let mut head = Vec::with_capacity(9);
    head.push(REC_MESSAGE);
    head.extend_from_slice(&frames_before.to_le_bytes());
    let mut chunks = Vec::with_capacity(m.parts.len() + 1);
    chunks.push(Bytes::from(head));
    chunks.extend(m.parts.iter().cloned());
    ordered.write_all_chunks(&mut chunks).await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn push_loop(
    conn: &Connection,
    sub: &Arc<Subscription>,
    stats: &Arc<Stats>,
    ordered: &mut SendStream,
    latest: bool,
    delivered: &Delivered,
    sent: &mut Sent,
    mut resume: Option<&mut Resume>,
) -> Result<PushEnd, NetError> {
    ordered.write_all(&[TAG_ORDERED]).await?;
    let in_flight = Arc::new(Semaphore::new(LATEST_IN_FLIGHT));
    let acked = Arc::new(Acked::default());
    let mut frames_opened: u64 = 0;
    let mut records: u64 = 0;
    // A resumed connection: the descriptions in effect, the resume point, then every message
    // the last connection's receiver did not report written.
    if let Some(r) = resume.as_deref_mut() {
        r.synthetic = r.infos.len() as u64;
        r.confirmed = 0;
        for info in r.infos.values() {
            write_record(ordered, 0, info).await?;
            records += 1;
        }
        let mut rec = vec![REC_RESUME];
        rec.extend_from_slice(&r.session.to_le_bytes());
        rec.extend_from_slice(&r.first.to_le_bytes());
        ordered.write_all(&rec).await?;
        for m in r.unconfirmed.iter() {
            write_record(ordered, 0, m).await?;
            sent.record(records, m, 0);
            records += 1;
        }
    }
    loop {
        if let Some(r) = resume.as_deref_mut() {
            // forget what the receiver has written out
            r.sync(delivered.records.load(Ordering::SeqCst));
        }
        let permit = if latest {
            tokio::select! {
                p = Arc::clone(&in_flight).acquire_owned() => Some(p.expect("never closed")),
                e = conn.closed() => return Ok(conn_end(e)),
            }
        } else {
            None
        };
        // Under `latest`, frames that are not all keyframes (H.264) travel on the ordered
        // stream, whose buffers would otherwise let lag build up behind a slow path or
        // reader: take the next message only once the puller has written out all but a few,
        // so the subscription's queue drops superseded frames meanwhile (and then waits for a
        // keyframe). Under `block`, see BLOCK_IN_FLIGHT.
        let ahead = if latest {
            LATEST_IN_FLIGHT as u64
        } else {
            BLOCK_IN_FLIGHT
        };
        if latest {
            tokio::select! {
                _ = delivered.wait_below(records, ahead) => {}
                e = conn.closed() => return Ok(conn_end(e)),
            }
        } else {
            tokio::select! {
                _ = sent.wait_room(delivered, records, ahead) => {}
                e = conn.closed() => return Ok(conn_end(e)),
            }
        }
        let next = tokio::select! {
            n = sub.next() => n,
            e = conn.closed() => return Ok(conn_end(e)),
        };
        stats.dropped.store(sub.dropped(), Ordering::Relaxed);
        let m = match next {
            Some(Next::Msg(m)) => m,
            Some(Next::Failed(reason)) => {
                let mut rec = vec![REC_ABORT];
                rec.extend_from_slice(&proto::encode_str(&reason));
                ordered.write_all(&rec).await?;
                let _ = ordered.finish();
                // the peer closes once it has passed the failure on
                let _ = tokio::time::timeout(Duration::from_secs(5), conn.closed()).await;
                return Ok(PushEnd::InputFailed(reason));
            }
            Some(Next::Overflowed) => {
                conn.close(
                    VarInt::from_u32(close::PROTOCOL),
                    b"receiver too far behind",
                );
                return Err(NetError::Protocol(
                    "a receiver fell more than 1024 stream descriptions behind: cut off".into(),
                ));
            }
            None => return Ok(finish_ordered(conn, ordered, delivered, resume, None).await),
        };
        stats.count_sent(&m);
        let end = m.is_end_of_all();
        // raw frames and JPEG-coded ones stand alone: one stream each, reset when stale
        let standalone = matches!(m.kind, sl_wire::kind::VIDEO | sl_wire::kind::PACKET);
        if latest && standalone && sub.hub().is_intra(m.stream) {
            let seq = frames_opened;
            frames_opened += 1;
            let s = conn.open_uni().await?;
            let permit = permit.expect("latest has a permit");
            let acked = Arc::clone(&acked);
            let stats = Arc::clone(stats);
            let control_before = records;
            tokio::spawn(async move {
                let mut header = Vec::with_capacity(9);
                header.push(TAG_FRAME);
                header.extend_from_slice(&control_before.to_le_bytes());
                if send_frame(s, header, m, seq, &acked, &stats).await.is_err() {
                    // the connection went; push notices through its own calls
                }
                drop(permit);
            });
            continue;
        }
        if let Some(r) = resume.as_deref_mut() {
            // kept until the receiver reports it written (before the write: a connection lost
            // during it leaves it to be sent again)
            r.unconfirmed.push_back(m.clone());
        }
        write_record(ordered, frames_opened, &m).await?;
        sent.record(records, &m, delivered.records.load(Ordering::SeqCst));
        records += 1;
        if end {
            return Ok(finish_ordered(conn, ordered, delivered, resume, Some(records)).await);
        }
    }
}

/// After END: finish the ordered stream and wait until the peer has acknowledged all of it,
/// then for its DONE, or its error if it could not use what it got (a frame that does not
/// decode). The wait is bounded: a peer that acknowledged END has the whole stream, but on a
/// busy machine it may take seconds to get through it (2 s was too short in CI).
///
/// A resumable (`block`) link waits for that DONE however long the receiver's output takes
/// (its reader may be slow): QUIC acknowledging the stream means only that the receiver has
/// it in memory. A connection lost before the DONE is `Lost`, so the sender reconnects and
/// sends again what was not written out, END included, unless the receiver had reported every
/// message written, END included: then its DONE was lost with the connection (it may have
/// exited, content, already), and the link has ended.
///
/// The receiver's DONE is one packet, sent once: on a lossy path it can be lost, and waiting
/// for it would last until the idle timeout (5 s). So once the receiver has reported every
/// record written out, END included (`records`, this connection's count, when END was sent),
/// the wait for its DONE is short ([`done_grace`]); then this side closes with DONE itself.
/// The receiver takes that as word that its last report was heard.
async fn finish_ordered(
    conn: &Connection,
    ordered: &mut SendStream,
    delivered: &Delivered,
    resume: Option<&mut Resume>,
    records: Option<u64>,
) -> PushEnd {
    let resumable = resume.is_some();
    let _ = ordered.finish();
    let end = match ordered.stopped().await {
        Ok(None) => {
            let written_out = async {
                match records {
                    Some(n) => {
                        delivered.wait_below(n, 1).await;
                        tokio::time::sleep(done_grace(conn.rtt())).await;
                    }
                    None => std::future::pending().await,
                }
            };
            let closed = tokio::select! {
                e = conn.closed() => Some(e),
                _ = written_out => {
                    log::debug!("every record, END included, was reported written out, and the receiver's DONE did not come: closing");
                    conn.close(VarInt::from_u32(close::DONE), b"");
                    return PushEnd::Done;
                }
                _ = tokio::time::sleep(Duration::from_secs(15)), if !resumable => None,
            };
            match closed {
                Some(ConnectionError::ApplicationClosed(c))
                    if c.error_code.into_inner() as u32 != close::DONE =>
                {
                    conn_end(ConnectionError::ApplicationClosed(c))
                }
                Some(ConnectionError::ApplicationClosed(_)) | None => PushEnd::Done,
                Some(e) if resumable => PushEnd::Lost(e),
                Some(_) => PushEnd::Done,
            }
        }
        Ok(Some(code)) => PushEnd::PeerClosed {
            code: code.into_inner() as u32,
            reason: "stopped reading".into(),
        },
        Err(quinn::StoppedError::ConnectionLost(e)) => conn_end(e),
        Err(e) => PushEnd::PeerClosed {
            code: close::PROTOCOL,
            reason: e.to_string(),
        },
    };
    match (end, resume) {
        (PushEnd::Lost(e), Some(r)) => {
            r.sync(delivered.records.load(Ordering::SeqCst));
            if r.is_empty() {
                log::info!("lost the connection ({e}) after the receiver wrote out everything");
                PushEnd::Done
            } else {
                PushEnd::Lost(e)
            }
        }
        (end, _) => end,
    }
}

/// How long a sender waits for the receiver's DONE once the receiver has reported END written
/// out. The receiver closes once the sender's acknowledgement of that report reaches it, so
/// the DONE comes about one round trip after the report, or one retransmission later if the
/// acknowledgement was lost: three round trips and 100 ms cover both.
fn done_grace(rtt: Duration) -> Duration {
    rtt * 3 + Duration::from_millis(100)
}

/// Send one frame on its own stream; reset it if a newer frame of its stream is acknowledged
/// first (it is stale: the receiver would drop it anyway).
async fn send_frame(
    mut s: SendStream,
    header: Vec<u8>,
    m: Msg,
    seq: u64,
    acked: &Acked,
    stats: &Stats,
) -> Result<(), NetError> {
    let stream = m.stream;
    let mut chunks = Vec::with_capacity(m.parts.len() + 1);
    chunks.push(Bytes::from(header));
    chunks.extend(m.parts.iter().cloned());
    let superseded = async {
        loop {
            let notified = acked.changed.notified();
            if acked
                .newest
                .lock()
                .map(|n| n.get(&stream).is_some_and(|&a| a > seq))
                .unwrap_or(false)
            {
                return;
            }
            notified.await;
        }
    };
    tokio::pin!(superseded);
    let sent = async {
        s.write_all_chunks(&mut chunks).await?;
        let _ = s.finish();
        s.stopped()
            .await
            .map_err(|e| NetError::Protocol(e.to_string()))
    };
    tokio::select! {
        r = sent => {
            if let Ok(None) = r {
                if let Ok(mut n) = acked.newest.lock() {
                    let e = n.entry(stream).or_insert(seq);
                    *e = (*e).max(seq);
                }
                acked.changed.notify_waiters();
            }
            r.map(|_| ())
        }
        _ = &mut superseded => {
            let _ = s.reset(VarInt::from_u32(0));
            stats.reset_frames.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    }
}

/// How a pull ended.
#[derive(Debug)]
pub enum PullEnd {
    /// END for all streams was written, and reported to the pusher, which acknowledged the
    /// report (`heard`) or did not within [`FINAL_REPORT_WAIT`].
    Done { heard: bool },
    /// The pusher's input failed or was truncated (its reason).
    InputFailed(String),
    /// The output pipe closed.
    DownstreamClosed,
    /// The pusher hung up without ending (Ctrl-C there is an END, so this is a failure).
    PeerClosed { code: u32, reason: String },
    /// The connection was lost.
    Lost(ConnectionError),
}

/// Where pulled messages go: a writer thread owning stdout.
#[derive(Debug, Clone)]
pub struct Output {
    tx: mpsc::Sender<(Msg, Handed)>,
    /// Ordered records handed to the writer (skipped ones too), over the process's life.
    handed: Arc<std::sync::atomic::AtomicU64>,
    /// Ordered records the writer has written out (or skipped), over the process's life.
    pub written: Arc<std::sync::atomic::AtomicU64>,
    pub written_changed: Arc<Notify>,
    /// The sender's session and the number of its next message record not yet handed to the
    /// writer: a resumed connection's records below it are skipped (see [`Resume`]).
    session: Arc<Mutex<Option<(u64, u64)>>>,
    pub closed: Arc<Notify>,
    pub broken: Arc<std::sync::atomic::AtomicBool>,
    /// The writer stopped on an error of the stream itself (a frame that does not decode),
    /// not a closed pipe: the link closes as a protocol error.
    pub failed: Arc<std::sync::atomic::AtomicBool>,
    /// Set when the writer has stopped (after END, or on an error).
    pub settled: Arc<Settled>,
}

/// A flag with a wake-up, set once.
#[derive(Debug, Default)]
pub struct Settled {
    flag: std::sync::atomic::AtomicBool,
    notify: Notify,
}

impl Settled {
    pub fn set(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    async fn wait(&self) {
        loop {
            let n = self.notify.notified();
            if self.flag.load(Ordering::SeqCst) {
                return;
            }
            n.await;
        }
    }
}

impl Output {
    pub fn new(tx: mpsc::Sender<(Msg, Handed)>) -> Output {
        Output {
            tx,
            handed: Arc::default(),
            written: Arc::default(),
            written_changed: Arc::default(),
            session: Arc::default(),
            closed: Arc::new(Notify::new()),
            broken: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            failed: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            settled: Arc::new(Settled::default()),
        }
    }

    /// How to close the connection when the output stops taking messages.
    pub fn close_code(&self) -> (VarInt, &'static [u8]) {
        if self.failed.load(Ordering::Relaxed) {
            (
                VarInt::from_u32(close::PROTOCOL),
                b"the receiver could not decode the stream",
            )
        } else {
            (VarInt::from_u32(close::DOWNSTREAM_CLOSED), b"")
        }
    }

    /// Wait until the writer has written END or stopped on an error.
    pub async fn settled(&self) {
        self.settled.wait().await
    }

    /// How to close the connection after END: DONE, unless the writer failed on it.
    pub fn close_code_at_end(&self) -> (VarInt, &'static [u8]) {
        if self.failed.load(Ordering::Relaxed) {
            self.close_code()
        } else {
            (VarInt::from_u32(close::DONE), b"")
        }
    }

    /// Queue a message from outside the runtime (after it stopped).
    pub fn tx_blocking(&self, m: Msg) -> bool {
        self.tx.blocking_send((m, Handed::Message)).is_ok()
    }

    async fn write(&self, m: Msg, how: Handed) -> bool {
        if self.broken.load(Ordering::Relaxed) {
            return false;
        }
        // counted once it is in the channel (a task aborted while waiting here handed nothing)
        if self.tx.send((m, how)).await.is_err() {
            return false;
        }
        if how != Handed::Message {
            self.handed.fetch_add(1, Ordering::SeqCst);
        }
        true
    }

    /// A resumed connection's message record `numbered` is being handed to the writer: the
    /// session's records up to it are this output's now.
    fn passed_on(&self, how: Handed, numbered: Option<(u64, u64)>) {
        if how != Handed::Record {
            return;
        }
        let Some((session, number)) = numbered else {
            return;
        };
        let mut known = self.session.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((s, next)) = known.as_mut()
            && *s == session
        {
            *next = (*next).max(number.saturating_add(1));
        }
    }

    /// The `block` session whose messages this output has (see [`Resume`]).
    pub fn session(&self) -> Option<u64> {
        let known = self.session.lock().unwrap_or_else(|p| p.into_inner());
        known.map(|(s, _)| s)
    }

    /// Whether a resumed connection's message record `number` of `session` was handed to the
    /// writer already (by an earlier connection).
    fn has(&self, session: u64, number: u64) -> bool {
        let known = self.session.lock().unwrap_or_else(|p| p.into_inner());
        known.is_some_and(|(s, next)| s == session && number < next)
    }
}

/// What the writer thread is handed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handed {
    /// A message to write that is not an ordered record (a `latest` frame stream's frame).
    Message,
    /// An ordered record to write, then count as written.
    Record,
    /// An ordered record the output already has (a resumed connection's): only counted.
    Skip,
}

enum Event {
    Record {
        frames_before: u64,
        msg: Msg,
    },
    Abort(String),
    /// The message records after this are `number`, `number + 1`... of `session`.
    Resume {
        session: u64,
        number: u64,
    },
    OrderedEnd,
    Frame {
        seq: u64,
        control_before: u64,
        msg: Msg,
    },
    FrameGone {
        seq: u64,
    },
    Failed(NetError),
}

/// Frames read at once from frame streams; bounds the memory a peer can make us hold.
const FRAME_READERS: usize = 8;

/// Ordered records waiting for the writer before no more are taken from the connection.
const QUEUED_RECORDS: usize = 4;

/// Receive on `conn` and write to `out` until the stream ends, reporting on `reports` (the
/// hello stream's sending half) how many ordered records have been written out.
pub async fn pull(
    conn: &Connection,
    out: &Output,
    limits: Limits,
    stats: &Arc<Stats>,
    mut reports: SendStream,
) -> Result<PullEnd, NetError> {
    // each event may hold a whole frame: a few are enough to keep the writer busy
    let (tx, mut rx) = mpsc::channel::<Event>(16);
    let acceptor = {
        let conn = conn.clone();
        let tx = tx.clone();
        tokio::spawn(async move { accept_streams(conn, tx, limits).await })
    };
    drop(tx);
    let _guard = AbortOnDrop(acceptor);
    let mut asm = Assembler::default();
    let mut queue = OutQueue::default();
    // records handed to the writer before this connection: reports count from here
    let base = out.handed.load(Ordering::SeqCst);
    let mut reported: u64 = 0;
    // the session number of the next message record, after a resume record
    let mut numbered: Option<(u64, u64)> = None;
    loop {
        if asm.ordered.is_empty() && asm.ordered_ended && queue.is_empty() {
            if let Some(r) = asm.abort.take() {
                return Ok(PullEnd::InputFailed(r));
            }
            return Err(NetError::Protocol(
                "the sender closed its stream without an end-of-stream".into(),
            ));
        }
        let ev = tokio::select! {
            biased;
            // hand the writer what it has room for; a frame waiting here is dropped when a
            // newer one of its stream arrives, so a slow reader downstream costs frames, not lag
            permit = out.tx.reserve(), if !queue.is_empty() => {
                let Ok(permit) = permit else {
                    return Ok(PullEnd::DownstreamClosed);
                };
                if out.broken.load(Ordering::Relaxed) {
                    return Ok(PullEnd::DownstreamClosed);
                }
                let (m, how, numbered) = queue.pop().expect("not empty");
                let end = m.is_end_of_all();
                if how != Handed::Skip {
                    stats.count_received(&m);
                }
                if how != Handed::Message {
                    out.handed.fetch_add(1, Ordering::SeqCst);
                }
                out.passed_on(how, numbered);
                permit.send((m, how));
                if end {
                    // once END is out, the last report, and a (bounded) wait for the pusher
                    // to acknowledge it: one that does not has lost this connection without
                    // knowing yet, and a `block` one will connect again to hear how it ended
                    out.settled().await;
                    let n = out.written.load(Ordering::SeqCst).saturating_sub(base);
                    let heard = reports.write_all(&n.to_le_bytes()).await.is_ok()
                        && reports.finish().is_ok()
                        && match tokio::time::timeout(FINAL_REPORT_WAIT, reports.stopped()).await
                        {
                            Ok(Ok(None)) => true,
                            // a pusher closes with DONE once it has this report, in case the
                            // DONE from this side is lost (see `finish_ordered`)
                            Ok(Err(quinn::StoppedError::ConnectionLost(
                                ConnectionError::ApplicationClosed(c),
                            ))) => c.error_code.into_inner() == u64::from(close::DONE),
                            _ => false,
                        };
                    return Ok(PullEnd::Done { heard });
                }
                continue;
            }
            // the writer wrote something out: report this connection's records written, by
            // which the pusher paces its ordered stream (and a `block` one resumes)
            _ = out.written_changed.notified() => {
                let n = out.written.load(Ordering::SeqCst).saturating_sub(base);
                if n > reported {
                    reported = n;
                    let _ = reports.write_all(&n.to_le_bytes()).await;
                }
                continue;
            }
            // records are never dropped: past a few waiting, take no more until the writer
            // has taken one, so a slow reader holds a `block` link back as a pipe would
            ev = rx.recv(), if queue.records() < QUEUED_RECORDS => ev,
            e = conn.closed() => {
                // deliver what already arrived before reporting
                queue.flush(out, stats).await;
                match e {
                    ConnectionError::ApplicationClosed(c) => return Ok(PullEnd::PeerClosed {
                        code: c.error_code.into_inner() as u32,
                        reason: String::from_utf8_lossy(&c.reason).into_owned(),
                    }),
                    e => return Ok(PullEnd::Lost(e)),
                }
            }
            _ = out.closed.notified() => return Ok(PullEnd::DownstreamClosed),
        };
        let Some(ev) = ev else {
            queue.flush(out, stats).await;
            return Ok(PullEnd::Lost(ConnectionError::LocallyClosed));
        };
        match ev {
            Event::Record { frames_before, msg } => asm.ordered.push_back((frames_before, msg)),
            Event::Frame {
                seq,
                control_before,
                msg,
            } => {
                asm.waiting.insert(seq, (control_before, msg));
            }
            Event::FrameGone { seq } => asm.resolve(seq),
            Event::Abort(reason) => asm.abort = Some(reason),
            Event::Resume { session, number } => {
                numbered = Some((session, number));
                let mut known = out.session.lock().unwrap_or_else(|p| p.into_inner());
                // another session (a restarted sender): nothing of it was written here yet
                if known.is_none_or(|(s, _)| s != session) {
                    *known = Some((session, 0));
                }
            }
            Event::OrderedEnd => asm.ordered_ended = true,
            Event::Failed(e) => {
                conn.close(VarInt::from_u32(close::PROTOCOL), e.to_string().as_bytes());
                return Err(e);
            }
        }
        for (m, record) in asm.pump(stats) {
            let mut how = if record {
                Handed::Record
            } else {
                Handed::Message
            };
            let mut this = None;
            if record && let Some((session, number)) = numbered.as_mut() {
                // a resumed connection's message record: skipped if this output has it already
                if out.has(*session, *number) {
                    how = Handed::Skip;
                }
                this = Some((*session, *number));
                *number = number.saturating_add(1);
            }
            queue.push(m, how, this, stats);
        }
    }
}

/// Messages put in order, waiting for the writer thread. A frame from a frame stream (a
/// `latest` link's) is dropped as stale when a newer frame of the same stream joins the queue
/// before it was handed over; records are never dropped. So the queue holds at most one frame
/// per stream, plus the records the pusher may send ahead of our reports.
#[derive(Default)]
struct OutQueue {
    /// Each message, how it goes to the writer, and for a resumed connection's message
    /// record its session and number.
    q: VecDeque<Queued>,
}

type Queued = (Msg, Handed, Option<(u64, u64)>);

impl OutQueue {
    fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    /// Ordered records waiting (a few: the queue is short).
    fn records(&self) -> usize {
        self.q
            .iter()
            .filter(|(_, how, _)| *how != Handed::Message)
            .count()
    }

    fn push(&mut self, m: Msg, how: Handed, numbered: Option<(u64, u64)>, stats: &Stats) {
        if how == Handed::Message {
            let before = self.q.len();
            self.q.retain(|(old, how, _)| {
                *how != Handed::Message || old.stream != m.stream || !old.is_frame()
            });
            let stale = (before - self.q.len()) as u64;
            stats.stale_frames.fetch_add(stale, Ordering::Relaxed);
        }
        self.q.push_back((m, how, numbered));
    }

    fn pop(&mut self) -> Option<Queued> {
        self.q.pop_front()
    }

    /// Hand the writer everything still queued (the connection is gone).
    async fn flush(&mut self, out: &Output, stats: &Stats) {
        while let Some((m, how, numbered)) = self.pop() {
            let counted = (how != Handed::Skip).then(|| m.clone());
            if !out.write(m, how).await {
                return;
            }
            // counted once handed (a task aborted in the write handed nothing)
            if let Some(m) = counted {
                stats.count_received(&m);
            }
            out.passed_on(how, numbered);
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);
impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How long a puller waits for its pusher to acknowledge the report that END was written
/// (a live connection does within a round trip; the idle timeout is 5 s).
pub const FINAL_REPORT_WAIT: Duration = Duration::from_secs(5);

/// The session a reconnecting `block` pusher resumes, read from the start of its ordered
/// stream (the descriptions it sends first are read and dropped): `None` if it sends no
/// resume record. For a receiver whose output has ended already, to tell its pusher so.
pub async fn resumed_session(conn: &Connection, limits: &Limits) -> Result<Option<u64>, NetError> {
    let mut rs = conn
        .accept_uni()
        .await
        .map_err(|e| NetError::Read(quinn::ReadError::ConnectionLost(e)))?;
    let mut r = StreamReader { rs: &mut rs };
    let mut tag = [0u8; 1];
    r.exact(&mut tag).await?;
    if tag[0] != TAG_ORDERED {
        return Ok(None);
    }
    // the descriptions in effect come first: a few, each bounded by `limits`
    for _ in 0..=u16::MAX as usize {
        if !r.exact_or_end(&mut tag).await? {
            return Ok(None);
        }
        match tag[0] {
            REC_MESSAGE => {
                r.u64().await?;
                r.message(limits).await?;
            }
            REC_RESUME => return Ok(Some(r.u64().await?)),
            _ => return Ok(None),
        }
    }
    Ok(None)
}

async fn accept_streams(conn: Connection, tx: mpsc::Sender<Event>, limits: Limits) {
    let readers = Arc::new(Semaphore::new(FRAME_READERS));
    let mut seen_ordered = false;
    loop {
        let mut rs = match conn.accept_uni().await {
            Ok(rs) => rs,
            Err(_) => return,
        };
        let index = rs.id().index();
        if !seen_ordered {
            seen_ordered = true;
            let tx = tx.clone();
            tokio::spawn(async move {
                let r = read_ordered(&mut rs, &tx, &limits).await;
                if let Err(e) = r
                    && !matches!(e, NetError::Read(quinn::ReadError::ConnectionLost(_)))
                {
                    let _ = tx.send(Event::Failed(e)).await;
                }
            });
            continue;
        }
        // frame streams are numbered after the ordered stream (the pusher's first)
        let seq = index.saturating_sub(1);
        let permit = match Arc::clone(&readers).acquire_owned().await {
            Ok(p) => p,
            Err(_) => return,
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            let ev = match read_frame(&mut rs, &limits).await {
                Ok(Some((control_before, msg))) => Event::Frame {
                    seq,
                    control_before,
                    msg,
                },
                // reset by the pusher (superseded), or lost with the connection
                Ok(None) | Err(NetError::Read(_)) => Event::FrameGone { seq },
                Err(e) => Event::Failed(e),
            };
            let _ = tx.send(ev).await;
            drop(permit);
        });
    }
}

async fn read_ordered(
    rs: &mut RecvStream,
    tx: &mpsc::Sender<Event>,
    limits: &Limits,
) -> Result<(), NetError> {
    let mut r = StreamReader { rs };
    let mut tag = [0u8; 1];
    r.exact(&mut tag).await?;
    if tag[0] != TAG_ORDERED {
        return Err(NetError::Protocol(format!(
            "the first stream has tag {}, not the ordered stream's",
            tag[0]
        )));
    }
    loop {
        if !r.exact_or_end(&mut tag).await? {
            let _ = tx.send(Event::OrderedEnd).await;
            return Ok(());
        }
        match tag[0] {
            REC_MESSAGE => {
                let frames_before = r.u64().await?;
                let Some(msg) = r.message(limits).await? else {
                    return Err(NetError::Protocol("a record without its message".into()));
                };
                if tx.send(Event::Record { frames_before, msg }).await.is_err() {
                    return Ok(());
                }
            }
            REC_ABORT => {
                let reason = r.str(proto::MAX_REASON).await?;
                let _ = tx.send(Event::Abort(reason)).await;
            }
            REC_RESUME => {
                let session = r.u64().await?;
                let number = r.u64().await?;
                if tx.send(Event::Resume { session, number }).await.is_err() {
                    return Ok(());
                }
            }
            t => return Err(NetError::Protocol(format!("unknown record type {t}"))),
        }
    }
}

async fn read_frame(rs: &mut RecvStream, limits: &Limits) -> Result<Option<(u64, Msg)>, NetError> {
    let mut r = StreamReader { rs };
    let mut head = [0u8; 9];
    if !r.exact_or_end(&mut head).await? {
        return Ok(None);
    }
    if head[0] != TAG_FRAME {
        return Err(NetError::Protocol(format!(
            "a frame stream has tag {}",
            head[0]
        )));
    }
    let control_before = u64::from_le_bytes(head[1..9].try_into().expect("8 bytes"));
    let mut prefix = [0u8; PREFIX_LEN];
    r.exact(&mut prefix).await?;
    let msg = r.message_after(prefix, limits).await?;
    if !msg.is_frame() {
        return Err(NetError::Protocol(
            "a frame stream carried a message that is not a frame".into(),
        ));
    }
    Ok(Some((control_before, msg)))
}

/// Puts ordered records and frame streams back in order (see [`crate::proto`]).
#[derive(Default)]
struct Assembler {
    ordered: VecDeque<(u64, Msg)>,
    ordered_ended: bool,
    abort: Option<String>,
    records_done: u64,
    /// Complete frames waiting for the records sent before them.
    waiting: BTreeMap<u64, (u64, Msg)>,
    /// Every frame stream below this is resolved (written, dropped or reset).
    resolved_below: u64,
    resolved_above: BTreeSet<u64>,
    /// Newest frame stream written, per stream index.
    newest: BTreeMap<u16, u64>,
}

impl Assembler {
    fn resolve(&mut self, seq: u64) {
        if seq == self.resolved_below {
            self.resolved_below += 1;
            while self.resolved_above.remove(&self.resolved_below) {
                self.resolved_below += 1;
            }
        } else if seq > self.resolved_below {
            self.resolved_above.insert(seq);
        }
    }

    /// Messages now in order, each with whether it is an ordered record.
    fn pump(&mut self, stats: &Stats) -> Vec<(Msg, bool)> {
        let mut out = Vec::new();
        loop {
            let mut progress = false;
            while let Some((fb, _)) = self.ordered.front() {
                if *fb > self.resolved_below {
                    break;
                }
                let (_, m) = self.ordered.pop_front().expect("front");
                self.records_done += 1;
                out.push((m, true));
                progress = true;
            }
            let ready: Vec<u64> = self
                .waiting
                .iter()
                .filter(|(_, (cb, _))| *cb <= self.records_done)
                .map(|(s, _)| *s)
                .collect();
            for seq in ready {
                let (_, m) = self.waiting.remove(&seq).expect("present");
                match self.newest.get(&m.stream) {
                    // a newer frame of this stream was written: this one is stale
                    Some(&n) if n > seq => {
                        stats.stale_frames.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        self.newest.insert(m.stream, seq);
                        out.push((m, false));
                    }
                }
                self.resolve(seq);
                progress = true;
            }
            if !progress {
                return out;
            }
        }
    }
}
