//! stdin as a libav input: its first bytes are read by us first, so that an input libav
//! cannot take (a streamlib stream, an mp4 with its index at the end) gets an error that
//! says what it is, and then handed to libav together with the rest.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;

/// How many bytes to look at: enough for `describe_foreign`'s signatures.
const SNIFF: usize = 256;

/// A reader that yields `head` and then everything from `rest`.
pub(crate) struct Prefixed {
    head: Vec<u8>,
    pos: usize,
    rest: File,
}

impl Read for Prefixed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos < self.head.len() {
            let n = (self.head.len() - self.pos).min(buf.len());
            buf[..n].copy_from_slice(&self.head[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        self.rest.read(buf)
    }
}

/// Read the first bytes of stdin (until [`SNIFF`] bytes or the end) and return them with a
/// reader that replays them.
pub(crate) fn sniff_stdin() -> io::Result<(Vec<u8>, Prefixed)> {
    let mut rest = File::from(io::stdin().as_fd().try_clone_to_owned()?);
    let mut head = vec![0; SNIFF];
    let mut n = 0;
    while n < SNIFF {
        match rest.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    head.truncate(n);
    Ok((head.clone(), Prefixed { head, pos: 0, rest }))
}
