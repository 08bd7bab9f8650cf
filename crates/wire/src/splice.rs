//! Zero-copy pass-through: forward messages whose payloads move from the input pipe to the
//! output pipe inside the kernel (`splice(2)`), never through this process's memory.
//!
//! A pass-through stage built on `read` + `write` copies every payload twice (kernel to user,
//! user to kernel), like `cat`. With `splice` a pass-through stage costs a few system calls
//! per frame whatever its size, which is how a metering stage in the middle of a 1080p
//! pipeline can move more frames per second than `cat` does.

use std::io::{self, BufRead, Read, Write};
use std::os::fd::AsFd;

use rustix::pipe::{SpliceFlags, splice};

use crate::{MessageHead, Reader, WireError, Writer};

impl<R: Read + AsFd> Reader<R> {
    /// Forward the next message to `out` unchanged and return its header, payload length and
    /// size on the wire, or `None` after the end of the stream (which is forwarded too). Payloads are
    /// spliced when the input or output is a pipe, and copied otherwise.
    pub fn forward<W: Write + AsFd>(
        &mut self,
        out: &mut Writer<W>,
    ) -> Result<Option<(MessageHead, u64, u64)>, WireError> {
        let Some((head, len)) = self.read_head()? else {
            return Ok(None);
        };
        if let MessageHead::End {
            stream: crate::ALL_STREAMS,
        } = head
        {
            out.finish()?;
            return Ok(Some((head, 0, self.head_buf.len() as u64)));
        }
        out.write_bytes(&self.head_buf)?;
        let wire = self.head_buf.len() as u64 + len;
        // what the read-ahead buffer already holds goes out first
        let mut left = len;
        let buffered = self.inner.buffer();
        let take = buffered.len().min(left as usize);
        if take > 0 {
            out.write_bytes(&buffered[..take])?;
            self.inner.consume(take);
            left -= take as u64;
        }
        out.flush()?;
        while left > 0 {
            let chunk = left.min(1 << 30) as usize;
            let n = match splice(
                self.inner.get_ref().as_fd(),
                None,
                out.get_ref().as_fd(),
                None,
                chunk,
                SpliceFlags::MOVE,
            ) {
                Ok(n) => n,
                Err(rustix::io::Errno::INTR) => continue,
                // neither side is a pipe (or splice is not supported): copy instead
                Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOSYS) => {
                    return self.copy_rest(out, left, head, wire);
                }
                Err(e) => return Err(WireError::Io(io::Error::from(e))),
            };
            if n == 0 {
                return Err(self.truncated_payload((len - left) as usize, len as usize));
            }
            left -= n as u64;
        }
        out.add_bytes(len);
        Ok(Some((head, len, wire)))
    }

    /// Read the next message's header and throw its payload away without copying it into
    /// this process (spliced into /dev/null when the input is a pipe). For stages that only
    /// look at headers, such as `sl-info`. Returns the header, payload length and wire size.
    pub fn next_head_skipping_payload(
        &mut self,
    ) -> Result<Option<(MessageHead, u64, u64)>, WireError> {
        let Some((head, len)) = self.read_head()? else {
            return Ok(None);
        };
        let wire = self.head_buf.len() as u64 + len;
        let mut left = len;
        let take = self.inner.buffer().len().min(left as usize);
        self.inner.consume(take);
        left -= take as u64;
        if left > 0 && self.devnull.is_none() {
            self.devnull = std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/null")
                .ok();
        }
        while left > 0 {
            let Some(null) = self.devnull.as_ref() else {
                break;
            };
            let chunk = left.min(1 << 30) as usize;
            match splice(
                self.inner.get_ref().as_fd(),
                None,
                null,
                None,
                chunk,
                SpliceFlags::MOVE,
            ) {
                Ok(0) => return Err(self.truncated_payload((len - left) as usize, len as usize)),
                Ok(n) => left -= n as u64,
                Err(rustix::io::Errno::INTR) => {}
                Err(_) => {
                    // not a pipe: read and drop instead
                    self.devnull = None;
                    break;
                }
            }
        }
        if left > 0 {
            let skipped = io::copy(&mut (&mut self.inner).take(left), &mut io::sink())?;
            if skipped < left {
                let got = len - left + skipped;
                return Err(self.truncated_payload(got as usize, len as usize));
            }
        }
        Ok(Some((head, len, wire)))
    }

    fn copy_rest<W: Write + AsFd>(
        &mut self,
        out: &mut Writer<W>,
        left: u64,
        head: MessageHead,
        wire: u64,
    ) -> Result<Option<(MessageHead, u64, u64)>, WireError> {
        let total = wire - self.head_buf.len() as u64;
        let copied = io::copy(&mut (&mut self.inner).take(left), out.get_mut())?;
        if copied < left {
            return Err(self.truncated_payload((total - left + copied) as usize, total as usize));
        }
        out.add_bytes(total);
        Ok(Some((head, total, wire)))
    }
}
