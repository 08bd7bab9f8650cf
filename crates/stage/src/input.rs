//! Reading a stage's input on a thread of its own: the stage's own thread stays responsive
//! (Ctrl-C finalises while upstream is silent) and its work overlaps the read. Frames cross
//! to the stage through a policy channel; their buffers come back through the [`Pool`].

use std::fs::File;
use std::sync::{Arc, Mutex};

use sl_wire::{Message, Reader, WireError, Writer};

use crate::policy::{self, Bell, Policy, Receiver};
use crate::pool::Pool;

/// Frames read ahead under `block`. Each may be 8 MB (1080p RGBA): memory stays bounded.
pub(crate) const READ_AHEAD: usize = 3;

/// A message, with what the stage's `note` function found out about it on the reader thread.
pub(crate) type Item<N> = Result<(Message, N), WireError>;

/// One input being read on its own thread. The thread is not joined: it may be blocked in a
/// read of a silent upstream, and ends by itself once the stage drops the receiver.
pub(crate) struct Input<N> {
    pub rx: Receiver<Item<N>>,
}

/// Whether the policy may drop this message when the stage is behind: video frames only
/// (audio, descriptions, metadata-only messages and ends always arrive).
fn droppable(m: &Message) -> bool {
    matches!(m, Message::Video { .. } | Message::Packet { .. })
}

/// The output a tee copies its input to; shared so the runner can end it when the stage
/// stops first (the user closed sl-show's window).
pub(crate) type PassOut = Arc<Mutex<Writer<File>>>;

/// Start reading `reader`. With `pass`, every message is also copied unchanged to `pass`
/// (a tee: sl-show --pass) as soon as it is read, whatever the stage does with it.
pub(crate) fn spawn<N: Send + 'static>(
    mut reader: Reader<File>,
    policy: Policy,
    bell: Option<Arc<Bell>>,
    pool: Pool,
    pass: Option<PassOut>,
    note: fn(&Message) -> N,
) -> Input<N> {
    let (tx, rx) = policy::channel_with_bell::<Item<N>>(policy, READ_AHEAD, bell);
    std::thread::Builder::new()
        .name("sl-reader".into())
        .spawn(move || {
            loop {
                for buf in pool.drain() {
                    reader.recycle(buf);
                }
                let read = match &pass {
                    None => reader.next_message(),
                    Some(w) => tee(&mut reader, w),
                };
                let (sent, last) = match read {
                    Ok(Some(m)) => {
                        let last = m.is_end_of_all();
                        let keep = !droppable(&m);
                        let n = note(&m);
                        let item = Ok((m, n));
                        let sent = if keep {
                            tx.send_kept(item)
                        } else {
                            tx.send_frame(item)
                        };
                        (sent.is_ok(), last)
                    }
                    // the end was read and sent already
                    Ok(None) => return,
                    Err(e) => (tx.send_kept(Err(e)).is_ok(), true),
                };
                if !sent || last {
                    return;
                }
            }
        })
        .expect("spawning the reader thread");
    Input { rx }
}

/// Read one message, copy it to `out` unchanged, and decode it. Once `out` was ended by the
/// runner, reading stops.
fn tee(reader: &mut Reader<File>, out: &PassOut) -> Result<Option<Message>, WireError> {
    let Some(raw) = reader.next_raw()? else {
        return Ok(None);
    };
    {
        let mut w = out.lock().unwrap_or_else(|e| e.into_inner());
        if w.is_finished() {
            return Ok(None);
        }
        w.write_raw(&raw)?;
    }
    let payload = raw.payload.to_vec();
    raw.head.clone().into_message(payload).map(Some)
}
