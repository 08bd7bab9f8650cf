//! The channel between two threads of a stage, following the delivery policy (`--policy`):
//! `block` waits for the consumer (lossless), `latest` keeps only the newest frame, `queue:N`
//! keeps N and drops the oldest. Only frames are ever dropped: stream descriptions, ends and
//! errors always arrive, in order. Memory stays bounded in every case.
//!
//! Several channels can share a [`Bell`], so one thread can wait for whichever of several
//! inputs has something (a compositor's inputs).

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub use sl_cli::Policy;

/// Items that are never dropped are still bounded: past this many, their sender waits.
const MAX_KEPT: usize = 64;

/// Rung whenever any channel sharing it gets an item or loses its sender.
#[derive(Debug, Default)]
pub struct Bell {
    rings: Mutex<u64>,
    rung: Condvar,
}

impl Bell {
    pub fn new() -> Arc<Bell> {
        Arc::new(Bell::default())
    }

    fn ring(&self) {
        *self.rings.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.rung.notify_all();
    }

    /// How many times it has rung: read before checking the channels, then [`Bell::wait`].
    pub fn count(&self) -> u64 {
        *self.rings.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wait until it rings again after `seen` rings, or `timeout` passes.
    pub fn wait(&self, seen: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut n = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        while *n == seen {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            n = self
                .rung
                .wait_timeout(n, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

struct State<T> {
    /// (item, droppable)
    queue: VecDeque<(T, bool)>,
    droppable: usize,
    dropped: u64,
    sender_gone: bool,
    receiver_gone: bool,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    changed: Condvar,
    policy: Policy,
    /// Frames held under `block`: read-ahead depth.
    depth: usize,
    bell: Option<Arc<Bell>>,
}

impl<T> Shared<T> {
    fn frames_capacity(&self) -> usize {
        match self.policy {
            Policy::Block => self.depth,
            Policy::Latest => 1,
            Policy::Queue(n) => n,
        }
    }
    fn notify(&self) {
        self.changed.notify_all();
        if let Some(b) = &self.bell {
            b.ring();
        }
    }
}

/// The producing side of a policy channel.
pub struct Sender<T>(Arc<Shared<T>>);
/// The consuming side of a policy channel.
pub struct Receiver<T>(Arc<Shared<T>>);

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sender({})", self.0.policy)
    }
}
impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Receiver({})", self.0.policy)
    }
}

/// A channel that follows `policy`; under `block` it holds up to `depth` frames.
pub fn channel<T>(policy: Policy, depth: usize) -> (Sender<T>, Receiver<T>) {
    channel_with_bell(policy, depth, None)
}

/// As [`channel`], ringing `bell` on every item.
pub fn channel_with_bell<T>(
    policy: Policy,
    depth: usize,
    bell: Option<Arc<Bell>>,
) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            droppable: 0,
            dropped: 0,
            sender_gone: false,
            receiver_gone: false,
        }),
        changed: Condvar::new(),
        policy,
        depth: depth.max(1),
        bell,
    });
    (Sender(Arc::clone(&shared)), Receiver(shared))
}

impl<T> Sender<T> {
    /// Hand over a frame. Under `block` this waits for room; otherwise it never waits and
    /// drops the oldest queued frame when full. Returns the item if the receiver is gone.
    pub fn send_frame(&self, item: T) -> Result<(), T> {
        self.send(item, true)
    }

    /// Hand over something that must arrive (a stream description, an end, an error):
    /// never dropped, and waits only if many such items are queued.
    pub fn send_kept(&self, item: T) -> Result<(), T> {
        self.send(item, false)
    }

    fn send(&self, item: T, droppable: bool) -> Result<(), T> {
        let s = &self.0;
        let mut st = s.state.lock().unwrap_or_else(|e| e.into_inner());
        let full = |st: &State<T>| {
            if droppable {
                st.droppable >= s.frames_capacity()
            } else {
                st.queue.len() - st.droppable >= MAX_KEPT
            }
        };
        if droppable && s.policy != Policy::Block {
            if full(&st)
                && let Some(i) = st.queue.iter().position(|(_, d)| *d)
            {
                st.queue.remove(i);
                st.droppable -= 1;
                st.dropped += 1;
            }
        } else {
            while full(&st) && !st.receiver_gone {
                st = s.changed.wait(st).unwrap_or_else(|e| e.into_inner());
            }
        }
        if st.receiver_gone {
            return Err(item);
        }
        st.queue.push_back((item, droppable));
        st.droppable += droppable as usize;
        drop(st);
        s.notify();
        Ok(())
    }

    /// Frames dropped so far because the consumer was behind.
    pub fn dropped(&self) -> u64 {
        self.0
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .dropped
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let mut st = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        st.sender_gone = true;
        drop(st);
        self.0.notify();
    }
}

/// What [`Receiver::try_recv`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum TryRecv<T> {
    Item(T),
    Empty,
    /// The sender is gone and everything was taken.
    Closed,
}

impl<T> Receiver<T> {
    /// The next item; `None` once the sender is gone and everything queued was taken.
    pub fn recv(&self) -> Option<T> {
        self.recv_until(None).unwrap_or(None)
    }

    /// As [`Receiver::recv`], giving up after `timeout` (`Err(())`).
    #[allow(clippy::result_unit_err)]
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<T>, ()> {
        self.recv_until(Some(Instant::now() + timeout))
    }

    pub fn try_recv(&self) -> TryRecv<T> {
        let s = &self.0;
        let mut st = s.state.lock().unwrap_or_else(|e| e.into_inner());
        match Self::pop(&mut st) {
            Some(item) => {
                drop(st);
                s.changed.notify_all();
                TryRecv::Item(item)
            }
            None if st.sender_gone => TryRecv::Closed,
            None => TryRecv::Empty,
        }
    }

    fn pop(st: &mut State<T>) -> Option<T> {
        let (item, droppable) = st.queue.pop_front()?;
        st.droppable -= droppable as usize;
        Some(item)
    }

    fn recv_until(&self, deadline: Option<Instant>) -> Result<Option<T>, ()> {
        let s = &self.0;
        let mut st = s.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(item) = Self::pop(&mut st) {
                drop(st);
                s.changed.notify_all();
                return Ok(Some(item));
            }
            if st.sender_gone {
                return Ok(None);
            }
            st = match deadline {
                None => s.changed.wait(st).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Err(());
                    }
                    s.changed
                        .wait_timeout(st, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }

    /// Frames dropped so far because this consumer was behind.
    pub fn dropped(&self) -> u64 {
        self.0
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .dropped
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let mut st = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        st.receiver_gone = true;
        st.queue.clear();
        st.droppable = 0;
        drop(st);
        self.0.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    #[test]
    fn block_is_lossless() {
        let (tx, rx) = channel(Policy::Block, 1);
        let t = thread::spawn(move || {
            for i in 0..1000 {
                tx.send_frame(i).unwrap();
            }
        });
        let got: Vec<i32> = std::iter::from_fn(|| rx.recv()).collect();
        t.join().unwrap();
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
        assert_eq!(rx.dropped(), 0);
    }

    #[test]
    fn latest_keeps_the_newest_frame_and_every_kept_item() {
        let (tx, rx) = channel(Policy::Latest, 3);
        tx.send_kept(-1).unwrap();
        for i in 0..10 {
            tx.send_frame(i).unwrap();
            if i == 4 {
                tx.send_kept(100).unwrap();
            }
        }
        drop(tx);
        let got: Vec<i32> = std::iter::from_fn(|| rx.recv()).collect();
        assert_eq!(got, vec![-1, 100, 9]);
        assert_eq!(rx.dropped(), 9);
    }

    #[test]
    fn queue_drops_the_oldest_frames() {
        let (tx, rx) = channel(Policy::Queue(3), 1);
        for i in 0..10 {
            tx.send_frame(i).unwrap();
        }
        assert_eq!(tx.dropped(), 7);
        drop(tx);
        let got: Vec<i32> = std::iter::from_fn(|| rx.recv()).collect();
        assert_eq!(got, vec![7, 8, 9]);
    }

    #[test]
    fn a_gone_receiver_unblocks_the_sender() {
        let (tx, rx) = channel(Policy::Block, 1);
        tx.send_frame(1).unwrap();
        let t = thread::spawn(move || tx.send_frame(2));
        // the sender is blocked (one frame held) until the receiver goes
        drop(rx);
        assert_eq!(t.join().unwrap(), Err(2));
    }

    #[test]
    fn a_bell_wakes_a_waiter_for_any_channel() {
        let bell = Bell::new();
        let (_tx0, rx0) = channel_with_bell::<i32>(Policy::Block, 1, Some(Arc::clone(&bell)));
        let (tx1, rx1) = channel_with_bell(Policy::Block, 1, Some(Arc::clone(&bell)));
        let seen = bell.count();
        assert_eq!(rx0.try_recv(), TryRecv::Empty);
        let t = thread::spawn(move || tx1.send_frame(7).unwrap());
        bell.wait(seen, Duration::from_secs(30));
        t.join().unwrap();
        assert_eq!(rx1.try_recv(), TryRecv::Item(7));
        assert_eq!(rx1.try_recv(), TryRecv::Closed);
    }
}
