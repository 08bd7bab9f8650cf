//! `sl-net subscribe moq://HOST:PORT/BROADCAST`: a MoQ broadcast to stdout, as the same
//! streamlib stream the publisher read (apart from frames dropped by `--policy latest`).
//!
//! One task per track reads its groups in order and decodes every frame as a streamlib
//! message (bounded by [`crate::MAX_FRAME`] and `sl_wire`'s limits) into a channel; one
//! thread writes them to stdout, dropping what it already wrote (after a reconnection) and
//! STREAM_INFOs that repeat the last one (every group starts with one).
//!
//! Ends: the END message read on every track (or a catalog saying the stream ended) ends
//! stdout properly, exit 0. The relay going away: reconnect, and carry on where each track
//! was. The broadcast going away without its END (its publisher died): wait
//! `reconnect_timeout` for it to come back, then exit 1, stdout left without END.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use moq_net::track::{Position, Subscription};
use sl_cli::Policy;
use sl_wire::{ALL_STREAMS, Limits, Message, Writer};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::catalog::{Catalog, Section};
use crate::connect::{self, Dial, MoqUrl};
use crate::{CertFingerprint, MAX_CATALOG, MAX_FRAME, MAX_TRACKS, MoqError};

/// How `sl-net subscribe` reaches the relay and what it delivers.
#[derive(Clone, Debug)]
pub struct SubscribeOptions {
    pub fingerprint: Option<CertFingerprint>,
    pub token: Option<String>,
    /// `block`: every group the relay still holds, in order; `latest`: skip groups a newer
    /// one superseded (MoQ's own model).
    pub policy: Policy,
    /// How long to wait for a lost relay or broadcast to come back before giving up.
    pub reconnect_timeout: Duration,
    pub quiet: bool,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        SubscribeOptions {
            fingerprint: None,
            token: None,
            policy: Policy::Latest,
            reconnect_timeout: Duration::from_secs(10),
            quiet: false,
        }
    }
}

/// What the writer thread is given (a message by value: boxing it would allocate per frame).
#[allow(clippy::large_enum_variant)]
enum Item {
    Msg(Message),
    /// A new publisher took over the broadcast: its frame numbers start again.
    NewPublisher,
}

/// Where each track got to, kept across reconnections.
#[derive(Default)]
struct Progress {
    /// Track name to the next group to ask for (block policy).
    next_group: HashMap<String, u64>,
    publisher: Option<String>,
}

/// How a track task ended.
#[derive(Debug, PartialEq)]
enum TrackEnd {
    /// It carried the END of the whole stream.
    EndAll,
    /// Its stream ended (END for its index), or the publisher finished the track.
    Finished,
    /// stdout is gone.
    Stopped,
}

/// Subscribe to the broadcast at `url` and write it to stdout.
pub fn subscribe(url: &str, opts: SubscribeOptions) -> anyhow::Result<()> {
    let url: MoqUrl = url
        .parse()
        .map_err(|e: MoqError| sl_cli::usage(e.to_string()))?;
    if let Policy::Queue(_) = opts.policy {
        return Err(sl_cli::usage(
            "sl-net subscribe takes --policy block or latest (MoQ skips whole groups, it has no queue:N)",
        ));
    }
    let writer = sl_cli::frame_output()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (tx, rx) = mpsc::channel::<Item>(4);
    let written = Arc::new(AtomicU64::new(0));
    let w = written.clone();
    let out = std::thread::spawn(move || write_out(writer, rx, w));
    let result = rt.block_on(run(&url, &opts, tx, written.clone()));
    // The channel is closed now: the writer finishes what it has.
    let wrote = out
        .join()
        .map_err(|_| anyhow::anyhow!("the stdout writer panicked"))?;
    match (result, wrote) {
        (_, Err(e)) => Err(e),
        (Ok(()), Ok(ended)) if ended || sl_cli::interrupted() => Ok(()),
        (Ok(()), Ok(_)) => Ok(()),
        (Err(e), Ok(_)) => Err(e.context(format!(
            "{url}: the stream is truncated after {} frames (stdout was left without its end)",
            written.load(Ordering::Relaxed)
        ))),
    }
}

/// Write messages to stdout, without duplicates; returns whether the stream was ended.
fn write_out(
    mut w: Writer<File>,
    mut rx: mpsc::Receiver<Item>,
    written: Arc<AtomicU64>,
) -> anyhow::Result<bool> {
    let mut last_frame: HashMap<u16, u64> = HashMap::new();
    let mut last_info: HashMap<u16, sl_wire::StreamInfo> = HashMap::new();
    let mut ended_streams: Vec<u16> = Vec::new();
    while let Some(item) = rx.blocking_recv() {
        let msg = match item {
            Item::NewPublisher => {
                last_frame.clear();
                ended_streams.clear();
                continue;
            }
            Item::Msg(m) => m,
        };
        let stream = msg.stream();
        match &msg {
            Message::End {
                stream: ALL_STREAMS,
            } => {
                w.finish().context("writing stdout")?;
                return Ok(true);
            }
            Message::End { .. } => {
                if ended_streams.contains(&stream) {
                    continue;
                }
                ended_streams.push(stream);
            }
            Message::Stream { info, .. } => {
                if last_info.get(&stream) == Some(info) {
                    continue;
                }
                last_info.insert(stream, info.clone());
            }
            m => {
                if let Some(fi) = m.frame_info() {
                    if last_frame
                        .get(&stream)
                        .is_some_and(|&n| fi.frame_number <= n)
                    {
                        continue;
                    }
                    last_frame.insert(stream, fi.frame_number);
                    written.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        w.write_message(&msg).context("writing stdout")?;
        // Live output: a frame is not left in a buffer waiting for the next one.
        w.flush().context("writing stdout")?;
    }
    if sl_cli::interrupted() {
        w.finish().context("writing stdout")?;
        return Ok(true);
    }
    w.flush().context("writing stdout")?;
    Ok(false)
}

enum Attempt {
    /// The stream ended (or Ctrl-C, or stdout closed).
    Done,
    /// The relay went away.
    Lost(String),
    /// The broadcast went away without its end.
    Gone,
}

async fn run(
    url: &MoqUrl,
    opts: &SubscribeOptions,
    tx: mpsc::Sender<Item>,
    written: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let dial = Dial {
        fingerprint: opts.fingerprint,
        token: opts.token.clone(),
    };
    let progress = Arc::new(Mutex::new(Progress::default()));
    let mut connected_once = false;
    let mut trouble_since: Option<(Instant, String)> = None;
    loop {
        if sl_cli::interrupted() {
            return Ok(());
        }
        let origin = connect::origin();
        let conn = match connect::connect(url, &dial, None, Some(origin.clone())).await {
            Ok(c) => c,
            Err(e) if !connected_once => {
                return Err(anyhow::Error::new(e).context(format!("subscribing to {url}")));
            }
            Err(e) if connect::is_refusal(&e) => anyhow::bail!(connect::refusal(url, &e)),
            Err(e) => {
                let (since, _) = trouble_since.get_or_insert((Instant::now(), e.to_string()));
                if since.elapsed() > opts.reconnect_timeout {
                    anyhow::bail!(
                        "lost the relay at {url} and could not reconnect within {:?}: {e}",
                        opts.reconnect_timeout
                    );
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
        };
        if connected_once {
            log::info!("reconnected to {url}");
        } else {
            log::info!("connected to {url}");
        }
        connected_once = true;
        match attempt(
            url,
            opts,
            &conn,
            origin,
            &tx,
            &progress,
            &written,
            &mut trouble_since,
        )
        .await?
        {
            Attempt::Done => return Ok(()),
            Attempt::Lost(why) => {
                log::warn!("lost the relay at {url} ({why}): reconnecting");
                trouble_since.get_or_insert((Instant::now(), why));
            }
            Attempt::Gone => {
                let (since, _) = trouble_since.get_or_insert((Instant::now(), String::new()));
                if since.elapsed() >= opts.reconnect_timeout {
                    anyhow::bail!(
                        "the publisher of {url} went away without ending its stream (and did not come back within {:?})",
                        opts.reconnect_timeout
                    );
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn attempt(
    url: &MoqUrl,
    opts: &SubscribeOptions,
    conn: &connect::Connected,
    origin: moq_net::origin::Producer,
    tx: &mpsc::Sender<Item>,
    progress: &Arc<Mutex<Progress>>,
    written: &Arc<AtomicU64>,
    trouble: &mut Option<(Instant, String)>,
) -> anyhow::Result<Attempt> {
    let wait_limit = trouble
        .as_ref()
        .map(|(since, _)| opts.reconnect_timeout.saturating_sub(since.elapsed()));
    let consumer = origin.consume();
    // Wait for the broadcast to be announced (the publisher may not be there yet).
    let started = Instant::now();
    let mut said = false;
    let broadcast = loop {
        if sl_cli::interrupted() {
            return Ok(Attempt::Done);
        }
        match consumer.request_broadcast("").await {
            Ok(b) => break b,
            Err(moq_net::Error::Unroutable) | Err(moq_net::Error::NotFound) => {}
            Err(moq_net::Error::Unauthorized) => anyhow::bail!(
                "the relay does not let this session subscribe to {url}: check --token"
            ),
            Err(e) => return Ok(Attempt::Lost(e.to_string())),
        }
        if let Some(limit) = wait_limit
            && started.elapsed() > limit
        {
            return Ok(Attempt::Gone);
        }
        if !said
            && !opts.quiet
            && wait_limit.is_none()
            && started.elapsed() > Duration::from_millis(500)
        {
            log::info!("waiting for {url} to be published");
            said = true;
        }
        tokio::select! {
            err = conn.session.closed() => {
                if connect::is_refusal(&err) {
                    anyhow::bail!(connect::refusal(url, &err));
                }
                return Ok(Attempt::Lost(err.to_string()));
            }
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    };
    // Back in business: the next trouble starts its own clock.
    *trouble = None;
    log::debug!("subscribed to {url}");

    let mut catalog = broadcast
        .track(hang::Catalog::<()>::DEFAULT_NAME)
        .context("the broadcast's catalog")?
        .subscribe(hang::Catalog::<()>::default_subscription())
        .await
        .map_err(|e| anyhow::anyhow!("subscribing to the catalog of {url}: {e}"))?
        .ordered();

    let mut tasks: JoinSet<Result<TrackEnd, MoqError>> = JoinSet::new();
    let mut following: BTreeMap<String, u16> = BTreeMap::new();
    let mut running = 0usize;
    let mut end_seen = false;
    let mut catalog_ended = false;
    let mut catalog_open = true;
    let mut broadcast_gone = false;
    let mut idle_since: Option<(Instant, u64)> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        if running == 0 && (end_seen || (catalog_ended && following.is_empty())) {
            if catalog_ended && following.is_empty() {
                let _ = tx
                    .send(Item::Msg(Message::End {
                        stream: ALL_STREAMS,
                    }))
                    .await;
            }
            return Ok(Attempt::Done);
        }
        tokio::select! {
            group = catalog.next_group(), if catalog_open => {
                let mut group = match group {
                    Ok(Some(g)) => g,
                    Ok(None) => { catalog_open = false; continue; }
                    Err(e) => { catalog_open = false; log::debug!("catalog: {e}"); continue; }
                };
                let Ok(Some(mut frame)) = group.next_frame().await else { continue };
                if frame.size > MAX_CATALOG {
                    anyhow::bail!("{url}: the catalog is {} bytes, more than the {MAX_CATALOG} accepted", frame.size);
                }
                let Ok(bytes) = frame.read_all().await else { continue };
                let cat = Catalog::from_slice(&bytes)
                    .map_err(|e| anyhow::anyhow!("{url}: the catalog is not valid: {e}"))?;
                let Some(section) = cat.ext.streamlib else {
                    anyhow::bail!("{url} is not a streamlib broadcast (its catalog has no streamlib section): sl-net subscribe reads what sl-net publish sends");
                };
                follow(&section, &broadcast, opts, tx, progress, &mut following, &mut tasks, &mut running).await?;
                catalog_ended = section.ended;
            }
            done = tasks.join_next(), if running > 0 => {
                running -= 1;
                match done {
                    Some(Ok(Ok(TrackEnd::EndAll))) => end_seen = true,
                    Some(Ok(Ok(TrackEnd::Finished))) => {}
                    Some(Ok(Ok(TrackEnd::Stopped))) => return Ok(Attempt::Done),
                    Some(Ok(Err(MoqError::Protocol(why)))) => anyhow::bail!("{url}: {why}"),
                    Some(Ok(Err(e))) => {
                        log::debug!("a track ended: {e}");
                        tasks.abort_all();
                        return Ok(if broadcast_gone { Attempt::Gone } else { Attempt::Lost(e.to_string()) });
                    }
                    Some(Err(e)) if e.is_cancelled() => {}
                    Some(Err(e)) => anyhow::bail!("a track reader failed: {e}"),
                    None => {}
                }
            }
            err = conn.session.closed() => {
                tasks.abort_all();
                if connect::is_refusal(&err) {
                    anyhow::bail!(connect::refusal(url, &err));
                }
                return Ok(Attempt::Lost(err.to_string()));
            }
            _ = broadcast.closed(), if !broadcast_gone => {
                // Tracks in flight may still drain what the relay holds: give them until
                // they stop making progress.
                broadcast_gone = true;
            }
            _ = tick.tick() => {
                if sl_cli::interrupted() {
                    tasks.abort_all();
                    return Ok(Attempt::Done);
                }
                if broadcast_gone {
                    let now = written.load(Ordering::Relaxed);
                    match idle_since {
                        Some((since, n)) if n == now => {
                            if since.elapsed() > Duration::from_secs(2) {
                                tasks.abort_all();
                                return Ok(Attempt::Gone);
                            }
                        }
                        _ => idle_since = Some((Instant::now(), now)),
                    }
                }
            }
        }
    }
}

/// Start a task for every track of the catalog not followed yet.
#[allow(clippy::too_many_arguments)]
async fn follow(
    section: &Section,
    broadcast: &moq_net::broadcast::Consumer,
    opts: &SubscribeOptions,
    tx: &mpsc::Sender<Item>,
    progress: &Arc<Mutex<Progress>>,
    following: &mut BTreeMap<String, u16>,
    tasks: &mut JoinSet<Result<TrackEnd, MoqError>>,
    running: &mut usize,
) -> anyhow::Result<()> {
    {
        let mut p = progress.lock().expect("progress lock");
        if p.publisher.as_deref() != Some(section.publisher.as_str()) {
            if p.publisher.is_some() {
                // A new publisher: its groups and frame numbers start again.
                p.next_group.clear();
                let _ = tx.try_send(Item::NewPublisher);
            }
            p.publisher = Some(section.publisher.chars().take(64).collect());
        }
    }
    for (name, entry) in &section.tracks {
        if following.contains_key(name) {
            continue;
        }
        if following.len() >= MAX_TRACKS || name.len() > 256 {
            anyhow::bail!(
                "the broadcast lists more than {MAX_TRACKS} tracks, or a track name longer than 256 bytes"
            );
        }
        following.insert(name.clone(), entry.stream);
        let block = !matches!(opts.policy, Policy::Latest);
        let subscription = if block {
            // Every group the relay still holds (the floor is set per subscription).
            Subscription::default().with_max_age(Duration::from_secs(3600))
        } else {
            // MoQ's live model: groups that a newer one superseded are skipped.
            Subscription::default()
        };
        let track = broadcast
            .track(name)
            .map_err(|e| anyhow::anyhow!("track {name}: {e}"))?;
        tasks.spawn(follow_track(
            track,
            subscription,
            block,
            name.clone(),
            entry.stream,
            tx.clone(),
            progress.clone(),
        ));
        *running += 1;
    }
    Ok(())
}

/// The most groups a block subscriber fetches to fill a gap (a late join, a reconnection):
/// beyond that it starts where the relay's subscription starts.
const MAX_BACKFILL: u64 = 1000;

/// Follow one track, resubscribing (from where it got to) when moq-net cancels the
/// subscription under it, as it may when a track finishes while it is being set up.
async fn follow_track(
    track: moq_net::track::Consumer,
    subscription: Subscription,
    block: bool,
    name: String,
    stream: u16,
    tx: mpsc::Sender<Item>,
    progress: Arc<Mutex<Progress>>,
) -> Result<TrackEnd, MoqError> {
    let mut tries = 0;
    loop {
        let start = progress
            .lock()
            .expect("progress lock")
            .next_group
            .get(&name)
            .copied();
        let mut sub = subscription.clone();
        if block {
            sub = sub.with_start(Position::group(start.unwrap_or(0)));
        }
        let before = start;
        let result = match track.subscribe(sub).await {
            Ok(s) => read_track(&track, s.ordered(), block, &name, stream, &tx, &progress).await,
            Err(e) => Err(e.into()),
        };
        match result {
            Err(MoqError::Moq(
                moq_net::Error::Cancel | moq_net::Error::Stream(moq_net::StreamError::Cancel),
            )) if tries < 20 => {
                let now = progress
                    .lock()
                    .expect("progress lock")
                    .next_group
                    .get(&name)
                    .copied();
                tries = if now != before { 0 } else { tries + 1 };
                log::debug!("track {name}: subscription cancelled, subscribing again");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

async fn read_track(
    consumer: &moq_net::track::Consumer,
    mut track: moq_net::track::Ordered,
    block: bool,
    name: &str,
    stream: u16,
    tx: &mpsc::Sender<Item>,
    progress: &Arc<Mutex<Progress>>,
) -> Result<TrackEnd, MoqError> {
    let limits = Limits::default();
    let mut expected = progress
        .lock()
        .expect("progress lock")
        .next_group
        .get(name)
        .copied();
    while let Some(group) = track.next_group().await? {
        let seq = group.sequence;
        // block: fill a gap from the relay's cache (a young broadcast joined after its
        // first groups, or groups that went by during a reconnection)
        let from = match expected {
            Some(e) => e,
            None if seq <= MAX_BACKFILL => 0,
            None => seq,
        };
        log::trace!("track {name}: group {seq} (expected {expected:?})");
        if block && from < seq && seq - from <= MAX_BACKFILL {
            log::debug!("track {name}: fetching groups {from}..{seq}");
            for missing in from..seq {
                match consumer.fetch_group(missing, None).await {
                    Ok(g) => {
                        if let Some(end) = read_group(g, &limits, name, stream, tx).await? {
                            return Ok(end);
                        }
                    }
                    Err(e) => log::debug!("track {name}: group {missing} is gone ({e})"),
                }
            }
        }
        if let Some(end) = read_group(group, &limits, name, stream, tx).await? {
            return Ok(end);
        }
        expected = Some(seq + 1);
        progress
            .lock()
            .expect("progress lock")
            .next_group
            .insert(name.to_string(), seq + 1);
    }
    Ok(TrackEnd::Finished)
}

/// Read one group's messages into the channel; `Some` when the track ends with it.
async fn read_group(
    mut group: moq_net::group::Consumer,
    limits: &Limits,
    name: &str,
    stream: u16,
    tx: &mpsc::Sender<Item>,
) -> Result<Option<TrackEnd>, MoqError> {
    loop {
        let mut frame = match group.next_frame().await {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(None),
            // Superseded while we read it (latest): on to the next group.
            Err(moq_net::Error::Old) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if frame.size > MAX_FRAME {
            return Err(MoqError::Protocol(format!(
                "track {name} sent a {}-byte frame, more than the {MAX_FRAME} accepted",
                frame.size
            )));
        }
        let bytes = match frame.read_all().await {
            Ok(b) => b,
            Err(moq_net::Error::Old) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut buf = &bytes[..];
        let msg = Message::decode_with_limits(&mut buf, limits).map_err(|e| {
            MoqError::Protocol(format!(
                "track {name} carried a message that is not valid: {e}"
            ))
        })?;
        if !buf.is_empty() {
            return Err(MoqError::Protocol(format!(
                "track {name} carried {} bytes after its message",
                buf.len()
            )));
        }
        let end_all = matches!(
            msg,
            Message::End {
                stream: ALL_STREAMS
            }
        );
        let end_stream = matches!(msg, Message::End { .. }) && !end_all;
        if !end_all && msg.stream() != stream {
            return Err(MoqError::Protocol(format!(
                "track {name} (stream {stream}) carried a message of stream {}",
                msg.stream()
            )));
        }
        if tx.send(Item::Msg(msg)).await.is_err() {
            return Ok(Some(TrackEnd::Stopped));
        }
        if end_all {
            return Ok(Some(TrackEnd::EndAll));
        }
        if end_stream {
            return Ok(Some(TrackEnd::Finished));
        }
    }
}
