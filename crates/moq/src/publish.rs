//! `sl-net publish moq://HOST:PORT/BROADCAST`: stdin to a MoQ broadcast on a relay.
//!
//! A blocking thread reads stdin (`sl_wire::Reader`, bounded) and writes each message into
//! its stream's track (moq-net's producers are plain state machines, no await needed); a
//! tokio task holds the relay session and reconnects it whenever it drops. MoQ never makes
//! the publisher wait for a subscriber: the broadcast keeps the last `retention` of groups
//! in memory, here and in the relay, and each subscriber takes what its policy wants.

use std::collections::BTreeMap;
use std::fs::File;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use bytes::{BufMut, Bytes, BytesMut};
use moq_net::{Timestamp, broadcast, group, track};
use sl_wire::{ALL_STREAMS, MessageHead, Reader, StreamInfo, StreamKind};
use tokio::sync::watch;

use crate::catalog::{self, Catalog, Section, TrackEntry};
use crate::connect::{self, Dial, MoqUrl};
use crate::{CertFingerprint, MAX_TRACKS};

/// How `sl-net publish` reaches the relay and what it keeps.
#[derive(Clone, Debug)]
pub struct PublishOptions {
    pub fingerprint: Option<CertFingerprint>,
    /// A moq-token JWT (the contents of `--token FILE`).
    pub token: Option<String>,
    /// How long groups stay available to subscribers that lag or join (`--retention`); by
    /// default 2 s for raw video (megabytes a frame) and 10 s for everything else.
    pub retention: Option<Duration>,
    /// How long to keep the session after the end, so the relay has sent the last groups.
    pub linger: Duration,
    pub quiet: bool,
}

impl Default for PublishOptions {
    fn default() -> Self {
        PublishOptions {
            fingerprint: None,
            token: None,
            retention: None,
            linger: Duration::from_secs(2),
            quiet: false,
        }
    }
}

/// Publish stdin to the broadcast at `url` until its end (exit 0), a truncated input (the
/// broadcast ends without END, so subscribers report it; exit 1) or Ctrl-C (ended properly).
pub fn publish(url: &str, opts: PublishOptions) -> anyhow::Result<()> {
    let url: MoqUrl = url
        .parse()
        .map_err(|e: crate::MoqError| sl_cli::usage(e.to_string()))?;
    let reader = sl_cli::frame_input()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run(url, opts, reader))
}

async fn run(url: MoqUrl, opts: PublishOptions, reader: Reader<File>) -> anyhow::Result<()> {
    let dial = Dial {
        fingerprint: opts.fingerprint,
        token: opts.token.clone(),
    };
    let origin = connect::origin();
    // The session's path is the broadcast (the relay scopes the session to it), so the
    // broadcast itself sits at the empty path under it.
    let broadcast = origin
        .create_broadcast("")
        .context("creating the broadcast")?;
    broadcast
        .announce(Default::default())
        .context("announcing the broadcast")?;
    let catalog_track = broadcast
        .create_track(
            hang::Catalog::<()>::DEFAULT_NAME,
            hang::Catalog::<()>::default_track_info(),
        )
        .context("creating the catalog track")?;

    // Reach the relay before reading anything, so a wrong address or token is an error at
    // once rather than frames written into the void.
    let first = connect::connect(&url, &dial, Some(&origin), None)
        .await
        .with_context(|| format!("publishing to {url}"))?;
    if !opts.quiet {
        log::info!("publishing to {url}");
    }

    let (done_tx, done_rx) = watch::channel(false);
    let refused: Refused = Arc::new(Mutex::new(None));
    let keeper = tokio::spawn(keep_connected(
        url.clone(),
        dial,
        origin.clone(),
        first,
        done_rx,
        refused.clone(),
    ));

    let retention = opts.retention;
    let r2 = refused.clone();
    let (result, pump) = tokio::task::spawn_blocking(move || {
        let mut p = Pump::new(broadcast, catalog_track, retention, r2);
        let r = p.run(reader);
        (r, p)
    })
    .await
    .context("the stdin reader stopped")?;
    let frames = pump.frames;
    // On an error the pump (and with it the broadcast and its tracks) is gone without an
    // END: subscribers report a truncated stream. After the end, let the relay take the
    // last groups before the session goes.
    if result.is_ok() {
        tokio::time::sleep(opts.linger).await;
        pump.finish();
    }
    drop(pump);
    let _ = done_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), keeper).await;
    if let Some(why) = refused.lock().expect("refusal lock").take() {
        anyhow::bail!(why);
    }
    if !opts.quiet {
        log::info!("published {frames} frames");
    }
    result
}

/// Hold a session to the relay, reconnecting when it drops, until `done`.
async fn keep_connected(
    url: MoqUrl,
    dial: Dial,
    origin: moq_net::origin::Producer,
    first: connect::Connected,
    mut done: watch::Receiver<bool>,
    refused: Refused,
) {
    let mut current = Some(first);
    let mut backoff = Duration::from_millis(100);
    loop {
        if let Some(conn) = &current {
            tokio::select! {
                err = conn.session.closed() => {
                    if connect::is_refusal(&err) {
                        *refused.lock().expect("refusal lock") = Some(connect::refusal(&url, &err));
                        return;
                    }
                    log::warn!("lost the relay at {url} ({err}): reconnecting");
                    current = None;
                }
                _ = done.changed() => break,
            }
        }
        if *done.borrow() {
            break;
        }
        match connect::connect(&url, &dial, Some(&origin), None).await {
            Ok(conn) => {
                log::info!("reconnected to {url}");
                backoff = Duration::from_millis(100);
                current = Some(conn);
            }
            Err(e) if connect::is_refusal(&e) => {
                *refused.lock().expect("refusal lock") = Some(connect::refusal(&url, &e));
                return;
            }
            Err(e) => {
                log::debug!("reconnecting to {url}: {e}");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = done.changed() => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
    if let Some(conn) = current {
        let _ = tokio::time::timeout(Duration::from_secs(3), conn.session.close()).await;
    }
}

/// Set when the relay refuses the session: the publisher stops with this message.
type Refused = Arc<Mutex<Option<String>>>;

/// One stream's track.
struct TrackOut {
    name: String,
    kind: &'static str,
    track: track::Producer,
    /// The open group (compressed video: the current keyframe run).
    group: Option<group::Producer>,
    /// The stream's current STREAM_INFO message, first in every group.
    info: Option<Bytes>,
    stream_info: Option<StreamInfo>,
    /// Compressed video: a group per keyframe run; anything else: a group per message.
    keyframe_runs: bool,
    ended: bool,
}

impl TrackOut {
    fn new_group(&mut self) -> anyhow::Result<&mut group::Producer> {
        if let Some(g) = self.group.take() {
            g.finish()?;
        }
        let mut g = self.track.append_group()?;
        if let Some(info) = &self.info {
            g.write_frame(Timestamp::now(), info.clone())?;
        }
        Ok(self.group.insert(g))
    }

    fn close_group(&mut self) -> anyhow::Result<()> {
        if let Some(g) = self.group.take() {
            g.finish()?;
        }
        Ok(())
    }

    /// Write `msg` as the last message of this track, then finish the track.
    fn end_with(&mut self, msg: Bytes) -> anyhow::Result<()> {
        if self.ended {
            return Ok(());
        }
        let g = match self.group.as_mut() {
            Some(g) => g,
            None => self.new_group()?,
        };
        g.write_frame(Timestamp::now(), msg)?;
        self.close_group()?;
        // The track itself is finished after the linger (`Pump::finish`): a subscription
        // that reaches a finished track while it is being set up is cancelled by moq-net.
        self.ended = true;
        Ok(())
    }
}

struct Pump {
    broadcast: broadcast::Producer,
    catalog: track::Producer,
    section: Section,
    tracks: BTreeMap<u16, TrackOut>,
    retention: Option<Duration>,
    frames: u64,
    refused: Refused,
}

fn kind_of_head(head: &MessageHead) -> Option<&'static str> {
    Some(match head {
        MessageHead::Stream { info, .. } => match info.kind {
            StreamKind::Video(_) => "video",
            StreamKind::Audio(_) => "audio",
            StreamKind::Data => "data",
        },
        MessageHead::Video { .. } | MessageHead::Packet { .. } => "video",
        MessageHead::Audio { .. } => "audio",
        MessageHead::Data { .. } => "data",
        MessageHead::End { .. } | MessageHead::Unknown(_) => return None,
    })
}

impl Pump {
    fn new(
        broadcast: broadcast::Producer,
        catalog: track::Producer,
        retention: Option<Duration>,
        refused: Refused,
    ) -> Self {
        let publisher = {
            let mut id = [0u8; 8];
            let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id);
            id.iter().map(|b| format!("{b:02x}")).collect()
        };
        Pump {
            broadcast,
            catalog,
            section: Section {
                version: sl_wire::VERSION,
                publisher,
                tracks: BTreeMap::new(),
                ended: false,
            },
            tracks: BTreeMap::new(),
            retention,
            frames: 0,
            refused,
        }
    }

    fn publish_catalog(&mut self) -> anyhow::Result<()> {
        let mut cat = Catalog::default();
        for t in self.tracks.values() {
            catalog::describe(&mut cat, &t.name, t.stream_info.as_ref(), t.kind);
        }
        cat.ext.streamlib = Some(self.section.clone());
        let json = cat.to_json().context("writing the catalog")?;
        let mut g = self.catalog.append_group()?;
        g.write_frame(Timestamp::now(), json)?;
        g.finish()?;
        Ok(())
    }

    /// The track of `stream`, made (and announced in the catalog) on its first message.
    fn track(&mut self, stream: u16, head: &MessageHead) -> anyhow::Result<Option<&mut TrackOut>> {
        if !self.tracks.contains_key(&stream) {
            let Some(kind) = kind_of_head(head) else {
                return Ok(None);
            };
            if self.tracks.len() >= MAX_TRACKS {
                anyhow::bail!(
                    "the input has more than {MAX_TRACKS} streams: a MoQ broadcast carries at \
                     most {MAX_TRACKS} tracks here"
                );
            }
            let raw_video = matches!(head, MessageHead::Video { .. })
                || matches!(head, MessageHead::Stream { info, .. }
                    if matches!(&info.kind, StreamKind::Video(v) if matches!(v.format, sl_wire::VideoFormat::Raw(_))));
            let keyframe_runs = matches!(head, MessageHead::Packet { .. })
                || matches!(head, MessageHead::Stream { info, .. }
                    if matches!(&info.kind, StreamKind::Video(v) if matches!(v.format, sl_wire::VideoFormat::Coded(_))));
            let retention = self.retention.unwrap_or(if raw_video {
                Duration::from_secs(2)
            } else {
                Duration::from_secs(10)
            });
            let name = format!("{kind}.{stream}");
            let track = self
                .broadcast
                .create_track(
                    name.as_str(),
                    track::Info::default().with_max_age(retention),
                )
                .with_context(|| format!("creating track {name}"))?;
            self.section.tracks.insert(
                name.clone(),
                TrackEntry {
                    stream,
                    kind: kind.to_string(),
                    groups: if keyframe_runs {
                        "keyframe-run"
                    } else {
                        "frame"
                    }
                    .to_string(),
                },
            );
            self.tracks.insert(
                stream,
                TrackOut {
                    name,
                    kind,
                    track,
                    group: None,
                    info: None,
                    stream_info: None,
                    keyframe_runs,
                    ended: false,
                },
            );
            if !matches!(head, MessageHead::Stream { .. }) {
                self.publish_catalog()?;
            }
        }
        Ok(self.tracks.get_mut(&stream))
    }

    /// Finish every track (after their END went out and the relay had time to take it).
    fn finish(&self) {
        for t in self.tracks.values() {
            let _ = t.track.finish();
        }
        let _ = self.catalog.finish();
    }

    fn end_all(&mut self, end: Bytes) -> anyhow::Result<()> {
        for t in self.tracks.values_mut() {
            t.end_with(end.clone())?;
        }
        self.section.ended = true;
        self.publish_catalog()
    }

    fn run(&mut self, mut reader: Reader<File>) -> anyhow::Result<()> {
        let mut end_all = BytesMut::new();
        end_all.put_slice(&[sl_wire::kind::END, 0]);
        end_all.put_u16_le(ALL_STREAMS);
        end_all.put_u32_le(0);
        end_all.put_u64_le(0);
        let end_all = end_all.freeze();
        loop {
            if sl_cli::interrupted() {
                return self.end_all(end_all);
            }
            if let Some(why) = self.refused.lock().expect("refusal lock").clone() {
                anyhow::bail!(why);
            }
            let raw = reader.next_raw().context("reading stdin")?;
            let Some(raw) = raw else {
                return self.end_all(end_all);
            };
            let mut buf = BytesMut::with_capacity(raw.prefix_and_header.len() + raw.payload.len());
            buf.put_slice(raw.prefix_and_header);
            buf.put_slice(raw.payload);
            let msg = buf.freeze();
            let head = raw.head.clone();
            let stream = head.stream();
            match &head {
                MessageHead::End {
                    stream: ALL_STREAMS,
                } => return self.end_all(end_all),
                MessageHead::End { .. } => {
                    if let Some(t) = self.tracks.get_mut(&stream) {
                        t.end_with(msg)?;
                    }
                }
                MessageHead::Stream { info, .. } => {
                    let t = self.track(stream, &head)?.expect("a stream has a kind");
                    if t.info.as_ref() != Some(&msg) {
                        t.info = Some(msg.clone());
                        t.stream_info = Some(info.clone());
                        if let Some(g) = t.group.as_mut() {
                            g.write_frame(Timestamp::now(), msg)?;
                        }
                        self.publish_catalog()?;
                    }
                }
                MessageHead::Packet { info, .. } => {
                    self.frames += 1;
                    let Some(t) = self.track(stream, &head)? else {
                        continue;
                    };
                    if t.ended {
                        continue;
                    }
                    let g = match t.group.as_mut() {
                        Some(g) if !info.keyframe || !t.keyframe_runs => g,
                        _ => t.new_group()?,
                    };
                    g.write_frame(Timestamp::now(), msg)?;
                    if !t.keyframe_runs {
                        t.close_group()?;
                    }
                }
                _ => {
                    if head.frame_info().is_some() {
                        self.frames += 1;
                    }
                    let Some(t) = self.track(stream, &head)? else {
                        log::debug!(
                            "skipping a message of unknown kind for stream {stream}, which has no track"
                        );
                        continue;
                    };
                    if t.ended {
                        continue;
                    }
                    if t.keyframe_runs
                        && let Some(group) = t.group.as_mut()
                    {
                        // inside a keyframe run: keep it with its frames
                        group.write_frame(Timestamp::now(), msg)?;
                    } else {
                        t.new_group()?.write_frame(Timestamp::now(), msg)?;
                        t.close_group()?;
                    }
                }
            }
        }
    }
}
