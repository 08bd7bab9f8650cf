//! Reading stdin's stream on a thread of its own, for stages whose main loop must stay
//! responsive (finalise on Ctrl-C while upstream is silent) and whose work overlaps the read.

use std::fs::File;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::Duration;

use sl_wire::{Message, Reader, WireError};

/// Messages read ahead by a thread (a few at most: memory stays bounded). Frame buffers given
/// back with [`ReadAhead::recycle`] are read into again: a fresh buffer would be zero-filled
/// first (3 MB per 1080p i420 frame) and then written over by the read.
#[derive(Debug)]
pub struct ReadAhead {
    rx: Receiver<Result<Option<Message>, WireError>>,
    back: SyncSender<Vec<u8>>,
}

/// What [`ReadAhead::next`] got.
#[derive(Debug)]
// boxing would allocate once per frame for the sake of two empty variants
#[allow(clippy::large_enum_variant)]
pub enum Next {
    Message(Message),
    /// The stream ended cleanly (end-of-stream).
    End,
    /// Nothing arrived within the timeout.
    Idle,
}

impl ReadAhead {
    pub fn spawn(mut reader: Reader<File>) -> ReadAhead {
        let (tx, rx) = sync_channel(4);
        let (back, back_rx) = sync_channel::<Vec<u8>>(4);
        std::thread::spawn(move || {
            loop {
                while let Ok(buf) = back_rx.try_recv() {
                    reader.recycle(buf);
                }
                let r = reader.next_message();
                let last = !matches!(r, Ok(Some(_)));
                if tx.send(r).is_err() || last {
                    break;
                }
            }
        });
        ReadAhead { rx, back }
    }

    /// The next message, waiting at most `timeout`. A truncated or malformed input is an
    /// error; so is the reading thread stopping without a clean end.
    pub fn next(&self, timeout: Duration) -> Result<Next, WireError> {
        match self.rx.recv_timeout(timeout) {
            Ok(Ok(Some(m))) => Ok(Next::Message(m)),
            Ok(Ok(None)) => Ok(Next::End),
            Ok(Err(e)) => Err(e),
            Err(RecvTimeoutError::Timeout) => Ok(Next::Idle),
            Err(RecvTimeoutError::Disconnected) => Ok(Next::End),
        }
    }

    /// Hand a frame buffer back for a later read (dropped if enough are waiting).
    pub fn recycle(&self, buf: Vec<u8>) {
        let _ = self.back.try_send(buf);
    }

    /// Give every message to `take` until the stream ends, `take` says [`Step::Stop`] or
    /// fails, or SIGINT/SIGTERM arrives (checked at least every 100 ms, even while upstream
    /// is silent). Returns the failure, if any: `take`'s, or the input's (truncated,
    /// malformed).
    pub fn run(
        &self,
        mut take: impl FnMut(Message) -> anyhow::Result<Step>,
    ) -> Option<anyhow::Error> {
        while !crate::interrupted() {
            match self.next(Duration::from_millis(100)) {
                Ok(Next::Message(m)) => match take(m) {
                    Ok(Step::Continue) => {}
                    Ok(Step::Recycle(buf)) => self.recycle(buf),
                    Ok(Step::Stop) => return None,
                    Err(e) => return Some(e),
                },
                Ok(Next::End) => return None,
                Ok(Next::Idle) => {}
                Err(e) => return Some(anyhow::Error::from(e).context("reading stdin")),
            }
        }
        None
    }
}

/// What to do after a message, for [`ReadAhead::run`].
#[derive(Debug)]
pub enum Step {
    Continue,
    /// Go on, and read into this frame buffer again.
    Recycle(Vec<u8>),
    Stop,
}

impl From<Option<Vec<u8>>> for Step {
    fn from(buf: Option<Vec<u8>>) -> Step {
        buf.map_or(Step::Continue, Step::Recycle)
    }
}
