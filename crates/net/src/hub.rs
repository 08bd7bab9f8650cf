//! Fan-out of one input to any number of subscribers (connections), each with its own
//! policy, memory bounded.
//!
//! The input thread [`Hub::publish`]es every message. Each subscriber has a queue:
//!
//! - `block`: at most [`BLOCK_DEPTH`] messages; the input waits while any blocking
//!   subscriber's queue is full, so nothing is lost and the slowest lossless receiver sets the
//!   pace (as a pipe does).
//! - `latest`: a frame supersedes a queued, unsent frame of the same stream (the older one is
//!   dropped whole and counted); descriptions and ends are always kept, at most
//!   [`CONTROL_DEPTH`] of them. A subscriber that has to skip a frame of a stream whose
//!   frames are not all keyframes (H.264) waits for that stream's next keyframe.
//!
//! A subscriber that joins late first gets the last description of every stream, then starts
//! each stream at its next keyframe (every raw frame is one).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use sl_wire::kind;

use crate::codec::KeyframeRequest;
use crate::proto::Msg;

/// Messages a blocking subscriber may have queued before the input waits.
pub const BLOCK_DEPTH: usize = 4;
/// Descriptions and ends a live subscriber may have queued before it is cut off.
pub const CONTROL_DEPTH: usize = 1024;

/// A subscriber's policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubPolicy {
    Block,
    Latest,
}

/// How the input ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finish {
    /// END for all streams was published (it is the last queued message).
    End,
    /// The input failed or was truncated: subscribers pass this on, and end without END.
    Failed(String),
}

#[derive(Debug, Default)]
struct SubQueue {
    items: VecDeque<Msg>,
    wait_key: BTreeSet<u16>,
    dropped: u64,
    finish: Option<Finish>,
    /// The consumer went away.
    gone: bool,
    /// Too far behind on control messages: cut off.
    overflowed: bool,
}

/// One subscriber's queue, shared by the input thread and its connection's task.
#[derive(Debug)]
pub struct Subscription {
    q: Mutex<SubQueue>,
    notify: tokio::sync::Notify,
    pub policy: SubPolicy,
    hub: Arc<Hub>,
}

#[derive(Debug, Default)]
struct HubState {
    /// The last description of each stream, for late subscribers.
    infos: BTreeMap<u16, Msg>,
    /// Streams whose frames have all been keyframes so far.
    not_intra: BTreeSet<u16>,
    subs: Vec<Arc<Subscription>>,
    finish: Option<Finish>,
}

/// The fan-out point.
#[derive(Debug, Default)]
pub struct Hub {
    state: Mutex<HubState>,
    /// Signalled when a blocking subscriber takes a message or goes away.
    space: Condvar,
    /// Raised when a subscriber waits for a keyframe (it joined late, or dropped a frame of
    /// an H.264 stream): the link encoder then makes one soon.
    keyframes: Arc<KeyframeRequest>,
    /// The input's stream header was read: it is a stream.
    started: std::sync::atomic::AtomicBool,
    started_changed: tokio::sync::Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Hub {
    pub fn new() -> Arc<Hub> {
        Arc::new(Hub::default())
    }

    /// Add a subscriber. It first gets the current description of every stream. None if the
    /// input has already ended.
    pub fn subscribe(self: &Arc<Self>, policy: SubPolicy) -> Option<Arc<Subscription>> {
        let mut st = lock(&self.state);
        if st.finish.is_some() {
            return None;
        }
        let q = SubQueue {
            items: st.infos.values().cloned().collect(),
            wait_key: st.infos.keys().copied().collect(),
            ..SubQueue::default()
        };
        let sub = Arc::new(Subscription {
            q: Mutex::new(q),
            notify: tokio::sync::Notify::new(),
            policy,
            hub: Arc::clone(self),
        });
        st.subs.push(Arc::clone(&sub));
        sub.notify.notify_one();
        self.keyframes.ask();
        Some(sub)
    }

    /// Where subscribers ask the link encoder for a keyframe.
    pub fn keyframe_requests(&self) -> Arc<KeyframeRequest> {
        Arc::clone(&self.keyframes)
    }

    pub fn subscribers(&self) -> usize {
        lock(&self.state).subs.len()
    }

    /// Publish one message to every subscriber, waiting while a blocking one is full.
    pub fn publish(&self, m: Msg) {
        let mut st = lock(&self.state);
        loop {
            if st.finish.is_some() {
                // ended already (Ctrl-C): the rest of the input is not sent
                return;
            }
            let full = st.subs.iter().any(|s| {
                s.policy == SubPolicy::Block && {
                    let q = lock(&s.q);
                    !q.gone && q.items.len() >= BLOCK_DEPTH
                }
            });
            if !full {
                break;
            }
            st = self.space.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        match m.kind {
            kind::STREAM_INFO => {
                st.infos.insert(m.stream, m.clone());
            }
            kind::END if m.is_end_of_all() => {
                st.infos.clear();
                st.finish = Some(Finish::End);
            }
            kind::END => {
                st.infos.remove(&m.stream);
            }
            _ => {}
        }
        if m.is_frame() && !m.keyframe {
            st.not_intra.insert(m.stream);
        }
        let intra = !st.not_intra.contains(&m.stream);
        st.subs.retain(|s| !lock(&s.q).gone);
        for s in &st.subs {
            s.push(m.clone(), intra);
        }
    }

    /// The input failed: every subscriber gets the reason after what is queued.
    pub fn fail(&self, reason: String) {
        let mut st = lock(&self.state);
        st.finish = Some(Finish::Failed(reason.clone()));
        for s in &st.subs {
            let mut q = lock(&s.q);
            q.finish = Some(Finish::Failed(reason.clone()));
            drop(q);
            s.notify.notify_one();
        }
        drop(st);
        self.started_changed.notify_waiters();
    }

    /// End every subscriber's stream now (Ctrl-C): an END for all streams after what is
    /// queued; later input is ignored.
    pub fn end_now(&self) {
        let end = Msg::end_of_all();
        let mut st = lock(&self.state);
        if st.finish.is_some() {
            return;
        }
        st.finish = Some(Finish::End);
        st.infos.clear();
        for s in &st.subs {
            let mut q = lock(&s.q);
            q.finish = Some(Finish::End);
            q.items.push_back(end.clone());
            drop(q);
            s.notify.notify_one();
        }
        self.space.notify_all();
    }

    /// How the input ended, once it has.
    pub fn finish(&self) -> Option<Finish> {
        lock(&self.state).finish.clone()
    }

    /// The input's stream header was read.
    pub fn start(&self) {
        self.started
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.started_changed.notify_waiters();
    }

    /// Wait until the input's stream header was read, or the input failed or ended.
    pub async fn started(&self) {
        loop {
            let n = self.started_changed.notified();
            if self.started.load(std::sync::atomic::Ordering::SeqCst) || self.finish().is_some() {
                return;
            }
            n.await;
        }
    }

    /// Whether every frame so far, of every stream, was a keyframe (raw or JPEG-coded).
    pub fn all_intra(&self) -> bool {
        lock(&self.state).not_intra.is_empty()
    }

    /// Whether frames of `stream` have all been keyframes so far.
    pub fn is_intra(&self, stream: u16) -> bool {
        !lock(&self.state).not_intra.contains(&stream)
    }
}

/// What a subscriber's consumer gets next.
#[derive(Debug)]
pub enum Next {
    Msg(Msg),
    Failed(String),
    /// Cut off: too far behind on descriptions.
    Overflowed,
}

impl Subscription {
    fn push(&self, m: Msg, intra: bool) {
        let mut q = lock(&self.q);
        if q.gone || q.overflowed {
            return;
        }
        if m.kind == kind::END && m.is_end_of_all() {
            q.finish = Some(Finish::End);
        }
        if m.is_frame() {
            if q.wait_key.contains(&m.stream) {
                if !m.keyframe {
                    q.dropped += 1;
                    return;
                }
                log::debug!(
                    "stream {}: keyframe {} ends the wait",
                    m.stream,
                    shown(m.frame_number)
                );
                q.wait_key.remove(&m.stream);
            }
            if self.policy == SubPolicy::Latest {
                // queued, unsent frames of this stream after the last control message
                let queued: Vec<usize> = q
                    .items
                    .iter()
                    .enumerate()
                    .rev()
                    .take_while(|(_, it)| it.is_frame())
                    .filter(|(_, it)| it.stream == m.stream)
                    .map(|(i, _)| i)
                    .collect();
                if intra || m.keyframe {
                    // they are stale: this frame (a fresh start for H.264) supersedes them
                    for i in queued {
                        q.items.remove(i);
                        q.dropped += 1;
                    }
                } else if !queued.is_empty() {
                    // Behind on a stream whose frames reference the ones before (H.264):
                    // the queued ones still decode, this one and the rest of its group are
                    // dropped, and the encoder is asked for a keyframe to start again from.
                    q.dropped += 1;
                    q.wait_key.insert(m.stream);
                    self.hub.keyframes.ask();
                    log::debug!(
                        "stream {}: behind at frame {}; dropping until a keyframe",
                        m.stream,
                        shown(m.frame_number)
                    );
                    return;
                }
            }
        } else if self.policy == SubPolicy::Latest && q.items.len() >= CONTROL_DEPTH {
            q.overflowed = true;
            q.items.clear();
        }
        q.items.push_back(m);
        drop(q);
        self.notify.notify_one();
    }

    /// The next message, waiting for one; None after END was taken.
    pub async fn next(&self) -> Option<Next> {
        loop {
            {
                let mut q = lock(&self.q);
                if q.overflowed {
                    return Some(Next::Overflowed);
                }
                if let Some(m) = q.items.pop_front() {
                    let was_full = q.items.len() + 1 >= BLOCK_DEPTH;
                    drop(q);
                    if self.policy == SubPolicy::Block && was_full {
                        let _st = lock(&self.hub.state);
                        self.hub.space.notify_all();
                    }
                    return Some(Next::Msg(m));
                }
                match &q.finish {
                    Some(Finish::End) => return None,
                    Some(Finish::Failed(r)) => return Some(Next::Failed(r.clone())),
                    None => {}
                }
            }
            self.notify.notified().await;
        }
    }

    /// Wait until the input has failed with nothing queued here: there is nothing to send,
    /// and the input's own error is the one to report (a dialer stops dialling for it).
    pub async fn failed_with_nothing_queued(&self) {
        loop {
            {
                let q = lock(&self.q);
                if q.items.is_empty() && matches!(q.finish, Some(Finish::Failed(_))) {
                    return;
                }
            }
            self.notify.notified().await;
        }
    }

    /// Frames queued for this subscriber and not yet taken.
    pub fn queued_frames(&self) -> u64 {
        lock(&self.q).items.iter().filter(|m| m.is_frame()).count() as u64
    }

    /// Frames dropped for this subscriber so far.
    pub fn dropped(&self) -> u64 {
        lock(&self.q).dropped
    }

    /// Whether a message is waiting (a newer frame supersedes one in flight).
    pub fn has_queued_frame(&self, stream: u16) -> bool {
        lock(&self.q)
            .items
            .iter()
            .any(|m| m.is_frame() && m.stream == stream)
    }

    /// The consumer is done: the input no longer waits for it.
    pub fn leave(&self) {
        lock(&self.q).gone = true;
        let _st = lock(&self.hub.state);
        self.hub.space.notify_all();
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }
}

/// A frame number for a log line ("?" for a frame without one).
fn shown(n: Option<u64>) -> String {
    n.map_or_else(|| "?".into(), |n| n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn msg(kind: u8, stream: u16, frame: Option<u64>, key: bool) -> Msg {
        Msg {
            kind,
            stream,
            keyframe: key,
            frame_number: frame,
            capture_time_ns: None,
            parts: vec![Bytes::from_static(b"x")],
            len: 1,
        }
    }

    fn drain(s: &Subscription) -> Vec<(u8, Option<u64>)> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut out = Vec::new();
        loop {
            let q = lock(&s.q);
            if q.items.is_empty() {
                break;
            }
            drop(q);
            match rt.block_on(s.next()) {
                Some(Next::Msg(m)) => out.push((m.kind, m.frame_number)),
                _ => break,
            }
        }
        out
    }

    #[test]
    fn latest_keeps_the_newest_frame_and_every_description() {
        let hub = Hub::new();
        let s = hub.subscribe(SubPolicy::Latest).unwrap();
        hub.publish(msg(kind::STREAM_INFO, 0, None, false));
        for i in 0..5 {
            hub.publish(msg(kind::VIDEO, 0, Some(i), true));
        }
        hub.publish(msg(kind::STREAM_INFO, 0, None, false));
        hub.publish(msg(kind::VIDEO, 0, Some(5), true));
        hub.publish(msg(kind::VIDEO, 0, Some(6), true));
        assert_eq!(
            drain(&s),
            vec![
                (kind::STREAM_INFO, None),
                (kind::VIDEO, Some(4)),
                (kind::STREAM_INFO, None),
                (kind::VIDEO, Some(6))
            ]
        );
        assert_eq!(s.dropped(), 5);
    }

    #[test]
    fn late_subscriber_gets_descriptions_then_a_keyframe() {
        let hub = Hub::new();
        hub.publish(msg(kind::STREAM_INFO, 0, None, false));
        hub.publish(msg(kind::PACKET, 0, Some(0), true));
        hub.publish(msg(kind::PACKET, 0, Some(1), false));
        let s = hub.subscribe(SubPolicy::Block).unwrap();
        hub.publish(msg(kind::PACKET, 0, Some(2), false));
        hub.publish(msg(kind::PACKET, 0, Some(3), true));
        hub.publish(msg(kind::PACKET, 0, Some(4), false));
        assert_eq!(
            drain(&s),
            vec![
                (kind::STREAM_INFO, None),
                (kind::PACKET, Some(3)),
                (kind::PACKET, Some(4))
            ]
        );
    }

    #[test]
    fn latest_on_h264_keeps_the_chain_decodable_and_asks_for_a_keyframe() {
        let hub = Hub::new();
        let s = hub.subscribe(SubPolicy::Latest).unwrap();
        hub.keyframes.clear_for_test();
        hub.publish(msg(kind::STREAM_INFO, 0, None, false));
        hub.publish(msg(kind::PACKET, 0, Some(0), true));
        hub.publish(msg(kind::PACKET, 0, Some(1), false));
        assert!(
            hub.keyframes.asked_for_test(),
            "behind: a keyframe is asked for"
        );
        hub.publish(msg(kind::PACKET, 0, Some(2), false));
        hub.publish(msg(kind::PACKET, 0, Some(3), true));
        hub.publish(msg(kind::PACKET, 0, Some(4), false));
        // 0 is still queued when 1 comes: 1 and 2 are dropped (they would follow a frame the
        // receiver has not got yet, and 2 references 1); the keyframe 3 supersedes 0
        assert_eq!(
            drain(&s),
            vec![(kind::STREAM_INFO, None), (kind::PACKET, Some(3))]
        );
        assert_eq!(s.dropped(), 4);
    }

    #[test]
    fn block_waits_for_the_slowest_and_loses_nothing() {
        let hub = Hub::new();
        let s = hub.subscribe(SubPolicy::Block).unwrap();
        let h2 = Arc::clone(&hub);
        let t = std::thread::spawn(move || {
            for i in 0..50 {
                h2.publish(msg(kind::VIDEO, 0, Some(i), true));
            }
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut got = Vec::new();
        while got.len() < 50 {
            assert!(lock(&s.q).items.len() <= BLOCK_DEPTH);
            if let Some(Next::Msg(m)) = rt.block_on(s.next()) {
                got.push(m.frame_number.unwrap());
            }
        }
        t.join().unwrap();
        assert_eq!(got, (0..50).collect::<Vec<_>>());
    }
}
