//! Payload buffers that come back: the input thread reads each frame straight into one, the
//! network sends it from there (no copy out of the reader), and when the last reference is
//! gone (the peer acknowledged it, or it was dropped as stale) the buffer returns here for a
//! later frame of the same size, instead of being freed and its pages faulted in again.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use sl_frame::pages::{PageBuf, huge_pages_available};

/// Buffers kept for reuse: the frames a connection may hold at once (queued, in flight,
/// unacknowledged) are more, but past a few the saving is small and the memory is not.
const KEEP: usize = 8;

/// Buffers this large or larger live in 2 MB huge pages where the kernel offers them
/// (`sl_frame::pages`). A frame's buffer is touched again only every frame interval, and by
/// then this VM has forgotten its page translations: a 4 MB copy into a buffer idle for 33 ms
/// took 0.46-0.58 ms in 4 KB pages and 0.31-0.34 ms in huge pages (0.09 ms back to back).
const HUGE_FROM: usize = 1 << 20;

/// A kept buffer's memory (empty by default, for `mem::take` on drop).
#[derive(Debug)]
enum Mem {
    Heap(Vec<u8>),
    Huge(PageBuf),
}

impl Default for Mem {
    fn default() -> Mem {
        Mem::Heap(Vec::new())
    }
}

impl Mem {
    fn new(len: usize) -> Mem {
        if len >= HUGE_FROM
            && huge_pages_available()
            && let Some(p) = PageBuf::new(len, 0)
        {
            return Mem::Huge(p);
        }
        Mem::Heap(vec![0; len])
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Mem::Heap(v) => v,
            Mem::Huge(p) => p,
        }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        match self {
            Mem::Heap(v) => v,
            Mem::Huge(p) => p,
        }
    }
}

/// A pool of payload buffers shared by the input thread and whoever drops the last `Bytes`.
#[derive(Clone, Debug, Default)]
pub struct Pool {
    free: Arc<Mutex<Vec<Mem>>>,
}

/// A buffer of exactly `len` usable bytes, taken from a [`Pool`]; freeze it into `Bytes` to
/// send it.
#[derive(Debug)]
pub struct PoolBuf {
    buf: Mem,
    len: usize,
    pool: Pool,
}

impl Pool {
    pub fn new() -> Pool {
        Pool::default()
    }

    /// A buffer for `len` bytes: a kept one at least that large, or a new one.
    pub fn take(&self, len: usize) -> PoolBuf {
        let kept = {
            let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
            free.iter()
                .position(|b| b.bytes().len() >= len)
                .map(|i| free.swap_remove(i))
        };
        let buf = kept.unwrap_or_else(|| Mem::new(len));
        PoolBuf {
            buf,
            len,
            pool: self.clone(),
        }
    }

    fn give_back(&self, buf: Mem) {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        if free.len() < KEEP {
            free.push(buf);
        }
    }

    /// Buffers waiting for reuse.
    pub fn kept(&self) -> usize {
        self.free.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl PoolBuf {
    /// The filled buffer as `Bytes`, without a copy; it returns to the pool when the last
    /// clone is dropped.
    pub fn freeze(self) -> Bytes {
        if self.len == 0 {
            return Bytes::new();
        }
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for PoolBuf {
    fn as_ref(&self) -> &[u8] {
        &self.buf.bytes()[..self.len]
    }
}

impl AsMut<[u8]> for PoolBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.buf.bytes_mut()[..self.len]
    }
}

impl Drop for PoolBuf {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_when_the_last_bytes_is_dropped() {
        let pool = Pool::new();
        let mut b = pool.take(1000);
        b.as_mut().fill(7);
        let bytes = b.freeze();
        assert_eq!(bytes.len(), 1000);
        assert!(bytes.iter().all(|&x| x == 7));
        let part = bytes.slice(10..20);
        drop(bytes);
        assert_eq!(pool.kept(), 0, "a slice still holds it");
        drop(part);
        assert_eq!(pool.kept(), 1);
        // a smaller frame reuses it, and sees exactly its own length
        let mut b = pool.take(600);
        assert_eq!(pool.kept(), 0);
        assert_eq!(b.as_mut().len(), 600);
        drop(b);
        // a larger one cannot
        let b = pool.take(2000);
        assert_eq!(b.as_ref().len(), 2000);
        assert_eq!(pool.kept(), 1);
    }

    /// A frame-sized buffer is its own mapping in huge pages (where the kernel offers them:
    /// `PageBuf`'s own tests check the advice), comes back, and is reused as it is; small
    /// ones stay on the heap.
    #[test]
    fn large_buffers_live_in_huge_pages_and_are_reused() {
        let pool = Pool::new();
        let mut b = pool.take(1280 * 720 * 4);
        let huge = huge_pages_available();
        assert_eq!(matches!(b.buf, Mem::Huge(_)), huge);
        b.as_mut().fill(3);
        let at = b.as_ref().as_ptr();
        let bytes = b.freeze();
        assert_eq!(bytes.len(), 1280 * 720 * 4);
        drop(bytes);
        let b = pool.take(1280 * 720 * 4);
        assert_eq!(b.as_ref().as_ptr(), at, "the same memory again");
        assert!(b.as_ref().iter().all(|&x| x == 3));
        assert!(matches!(pool.take(HUGE_FROM - 1).buf, Mem::Heap(_)));
    }

    #[test]
    fn the_pool_keeps_a_bounded_number() {
        let pool = Pool::new();
        let held: Vec<_> = (0..KEEP + 5).map(|_| pool.take(16).freeze()).collect();
        drop(held);
        assert_eq!(pool.kept(), KEEP);
    }
}
