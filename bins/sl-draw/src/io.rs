//! Frame I/O on threads of its own, so the drawing thread never copies whole frames.
//!
//! A 1080p RGBA frame is 8 MB; reading it from the pipe, checking its alpha, and writing it
//! out again pushes about 24 MB through a core's caches per frame. Done on the thread that
//! runs the script, that evicts the Rhai interpreter (its AST, function tables and the
//! font) from the 1 MB L2 between calls, and each call starts cold: 0.14 ms per call at
//! 1080p against 0.02 ms at 64x64, measured on the 2-core test machine. With reading on one
//! thread and writing on another, the drawing thread only touches the pixels it draws on;
//! as a bonus reading, drawing and writing overlap on a multi-core machine.

use std::fs::File;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use sl_cli::Meter;
use sl_draw_core::pixels;
use sl_frame::{PixelFormat, VideoFrame};
use sl_wire::{Message, Reader, WireError, Writer};

/// Frames queued between two threads. Small: each one may be 8 MB (memory stays bounded).
const QUEUE: usize = 2;

/// A message read from stdin, and for packed RGBA/BGRA frames whether every pixel is opaque
/// (the drawing thread needs to know, and the check reads all 8 MB of a 1080p frame).
pub(crate) type Incoming = anyhow::Result<(Message, Option<bool>)>;

/// Read messages on a thread. The receiver ends after the last message of a clean stream;
/// a broken one ends with an `Err`. Buffers sent to `back` are reused for later frames.
pub(crate) fn spawn_reader(mut input: Reader<File>, back: Receiver<Vec<u8>>) -> Receiver<Incoming> {
    let (tx, rx) = sync_channel::<Incoming>(QUEUE);
    std::thread::spawn(move || {
        loop {
            while let Ok(buf) = back.try_recv() {
                input.recycle(buf);
            }
            let item = match input.next_message() {
                Ok(Some(m)) => {
                    let opaque = match &m {
                        Message::Video { frame, .. }
                            if matches!(frame.format(), PixelFormat::Rgba | PixelFormat::Bgra)
                                && frame.is_packed() =>
                        {
                            Some(pixels::is_opaque(frame.data()))
                        }
                        _ => None,
                    };
                    Ok((m, opaque))
                }
                Ok(None) => return,
                Err(e) => Err(e.into()),
            };
            let failed = item.is_err();
            if tx.send(item).is_err() || failed {
                return;
            }
        }
    });
    rx
}

// boxing each message would allocate once per frame for the sake of the rare `Finish`
#[allow(clippy::large_enum_variant)]
enum Out {
    Msg(Message),
    /// End the stream cleanly (an end-of-stream message). Without it, closing the queue
    /// leaves the stream truncated, as a failed upstream must.
    Finish,
}

/// Writes messages on a thread; video frames go through a closure that writes them (and may
/// convert them first) and returns the buffer to reuse.
pub(crate) struct WriterThread {
    tx: SyncSender<Out>,
    handle: JoinHandle<anyhow::Result<()>>,
}

/// What the writer does with each video frame: write it, return its buffer for reuse.
pub(crate) type WriteFrame =
    Box<dyn FnMut(&mut Writer<File>, u16, VideoFrame) -> Result<Vec<u8>, WireError> + Send>;

impl WriterThread {
    pub(crate) fn start(
        mut out: Writer<File>,
        mut meter: Meter,
        back: SyncSender<Vec<u8>>,
        mut write_frame: WriteFrame,
    ) -> WriterThread {
        let (tx, rx) = sync_channel::<Out>(QUEUE);
        let handle = std::thread::spawn(move || -> anyhow::Result<()> {
            for m in rx {
                match m {
                    Out::Msg(Message::Video { stream, frame }) => {
                        let bytes = frame.data().len() as u64;
                        let buf = write_frame(&mut out, stream, frame)?;
                        meter.frame(bytes);
                        let _ = back.try_send(buf);
                    }
                    Out::Msg(other) => out.write_message(&other)?,
                    Out::Finish => {
                        out.finish()?;
                        meter.finish(false);
                        return Ok(());
                    }
                }
            }
            out.flush()?;
            Ok(())
        });
        WriterThread { tx, handle }
    }

    /// Queue a message; false if the writer has stopped (its error comes from `end`).
    pub(crate) fn send(&self, m: Message) -> bool {
        self.tx.send(Out::Msg(m)).is_ok()
    }

    /// Wait for everything queued to be written. `complete`: end the stream cleanly;
    /// otherwise leave it truncated (the input failed).
    pub(crate) fn end(self, complete: bool) -> anyhow::Result<()> {
        if complete {
            let _ = self.tx.send(Out::Finish);
        }
        drop(self.tx);
        self.handle
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the writer thread panicked")))
    }
}
