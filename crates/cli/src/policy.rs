//! What a stage does when its consumer falls behind: block, keep only the latest frame, or
//! queue a bounded number and drop the oldest. Memory stays bounded in every case.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// A delivery policy, as given by `--policy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Policy {
    /// Lossless: the producer waits for the consumer (`block`).
    #[default]
    Block,
    /// Live: keep only the newest frame, dropping any the consumer has not taken (`latest`).
    Latest,
    /// Queue up to N frames, then drop the oldest (`queue:N`).
    Queue(usize),
}

impl FromStr for Policy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "block" => Ok(Policy::Block),
            "latest" | "drop" => Ok(Policy::Latest),
            _ => s
                .strip_prefix("queue:")
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|&n| n > 0)
                .map(Policy::Queue)
                .ok_or_else(|| {
                    format!("`{s}` is not a policy: use block, latest or queue:N (N > 0)")
                }),
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Policy::Block => f.write_str("block"),
            Policy::Latest => f.write_str("latest"),
            Policy::Queue(n) => write!(f, "queue:{n}"),
        }
    }
}

struct State<T> {
    queue: VecDeque<T>,
    dropped: u64,
    senders_gone: bool,
    receiver_gone: bool,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    changed: Condvar,
    policy: Policy,
}

impl<T> Shared<T> {
    fn capacity(&self) -> usize {
        match self.policy {
            Policy::Block | Policy::Latest => 1,
            Policy::Queue(n) => n,
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

/// A channel between a producer and a consumer thread that follows `policy`.
pub fn channel<T>(policy: Policy) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            dropped: 0,
            senders_gone: false,
            receiver_gone: false,
        }),
        changed: Condvar::new(),
        policy,
    });
    (Sender(Arc::clone(&shared)), Receiver(shared))
}

impl<T> Sender<T> {
    /// Hand over an item. Under `block` this waits for room; otherwise it never waits and
    /// drops the oldest queued item when full. Returns the item back if the receiver is gone.
    pub fn send(&self, item: T) -> Result<(), T> {
        let s = &self.0;
        let mut st = s.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.policy == Policy::Block {
            while st.queue.len() >= s.capacity() && !st.receiver_gone {
                st = s.changed.wait(st).unwrap_or_else(|e| e.into_inner());
            }
        } else if st.queue.len() >= s.capacity() {
            st.queue.pop_front();
            st.dropped += 1;
        }
        if st.receiver_gone {
            return Err(item);
        }
        st.queue.push_back(item);
        s.changed.notify_all();
        Ok(())
    }

    /// Items dropped so far because the consumer was behind.
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
        st.senders_gone = true;
        self.0.changed.notify_all();
    }
}

impl<T> Receiver<T> {
    /// The next item; `None` once the sender is gone and everything queued was taken.
    pub fn recv(&self) -> Option<T> {
        self.recv_until(None).unwrap_or(None)
    }

    /// Like [`Receiver::recv`], giving up after `timeout` (returns `Ok(None)` at the end,
    /// `Err(())` on timeout).
    #[allow(clippy::result_unit_err)]
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<T>, ()> {
        self.recv_until(Some(std::time::Instant::now() + timeout))
    }

    fn recv_until(&self, deadline: Option<std::time::Instant>) -> Result<Option<T>, ()> {
        let s = &self.0;
        let mut st = s.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(item) = st.queue.pop_front() {
                s.changed.notify_all();
                return Ok(Some(item));
            }
            if st.senders_gone {
                return Ok(None);
            }
            st = match deadline {
                None => s.changed.wait(st).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = std::time::Instant::now();
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

    /// Items dropped so far because this consumer was behind.
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
        self.0.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    #[test]
    fn parses() {
        assert_eq!("block".parse::<Policy>().unwrap(), Policy::Block);
        assert_eq!("latest".parse::<Policy>().unwrap(), Policy::Latest);
        assert_eq!("queue:4".parse::<Policy>().unwrap(), Policy::Queue(4));
        assert!("queue:0".parse::<Policy>().is_err());
        assert!("fast".parse::<Policy>().is_err());
    }

    #[test]
    fn block_is_lossless() {
        let (tx, rx) = channel(Policy::Block);
        let t = thread::spawn(move || {
            for i in 0..1000 {
                tx.send(i).unwrap();
            }
        });
        let got: Vec<i32> = std::iter::from_fn(|| rx.recv()).collect();
        t.join().unwrap();
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
        assert_eq!(rx.dropped(), 0);
    }

    #[test]
    fn latest_keeps_the_newest() {
        let (tx, rx) = channel(Policy::Latest);
        for i in 0..10 {
            tx.send(i).unwrap();
        }
        drop(tx);
        assert_eq!(rx.recv(), Some(9));
        assert_eq!(rx.recv(), None);
        assert_eq!(rx.dropped(), 9);
    }

    #[test]
    fn queue_drops_the_oldest() {
        let (tx, rx) = channel(Policy::Queue(3));
        for i in 0..10 {
            tx.send(i).unwrap();
        }
        assert_eq!(tx.dropped(), 7);
        drop(tx);
        let got: Vec<i32> = std::iter::from_fn(|| rx.recv()).collect();
        assert_eq!(got, vec![7, 8, 9]);
    }

    #[test]
    fn a_gone_receiver_unblocks_the_sender() {
        let (tx, rx) = channel(Policy::Block);
        tx.send(1).unwrap();
        let t = thread::spawn(move || tx.send(2));
        thread::sleep(Duration::from_millis(20));
        drop(rx);
        assert_eq!(t.join().unwrap(), Err(2));
    }
}
