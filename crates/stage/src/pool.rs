//! Frame buffers handed back for reuse. A fresh buffer is zero-filled by the allocator's
//! first touch (3 MB for a 1080p I420 frame, 8 MB for RGBA) and then written over; one that
//! comes back from the writer or a sink is read or drawn into again as it is.

use std::sync::{Arc, Mutex};

/// Buffers kept at most: enough for the frames in flight between a stage's threads.
const KEEP: usize = 6;

/// A small, shared pool of payload buffers.
#[derive(Debug, Clone, Default)]
pub struct Pool(Arc<Mutex<Vec<Vec<u8>>>>);

impl Pool {
    pub fn new() -> Pool {
        Pool::default()
    }

    /// Give a buffer back (dropped if enough are waiting).
    pub fn put(&self, buf: Vec<u8>) {
        if buf.capacity() == 0 {
            return;
        }
        let mut v = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if v.len() < KEEP {
            v.push(buf);
        }
    }

    /// A buffer of at least `len` bytes' capacity if one is waiting, else any waiting one.
    pub fn take(&self, len: usize) -> Option<Vec<u8>> {
        let mut v = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match v.iter().position(|b| b.capacity() >= len) {
            Some(i) => Some(v.swap_remove(i)),
            None => v.pop(),
        }
    }

    /// Every waiting buffer, for a reader to read into.
    pub fn drain(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
