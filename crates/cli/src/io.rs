//! stdin and stdout as frame streams.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use anyhow::Context;
use rustix::pipe::fcntl_setpipe_size;
use sl_wire::{Reader, WireError, Writer};

use crate::usage;

/// Pipes are enlarged to this. Measured on this project's 2-core machine: 1080p RGBA through
/// a default 64 KiB pipe moves ~150 frames/s; with 1 MiB pipes and whole-frame writes, over
/// twice that, because each frame needs 8x fewer wake-ups of the reader. 1 MiB is also
/// Linux's default `pipe-max-size` for unprivileged processes.
const PIPE_SIZE: usize = 1 << 20;

fn is_terminal(fd: BorrowedFd<'_>) -> bool {
    rustix::termios::isatty(fd)
}

/// Whether stdin is a terminal (no stream piped in).
pub fn stdin_is_terminal() -> bool {
    is_terminal(io::stdin().as_fd())
}

/// Whether a source should make its frames in pages of their own ([`sl_frame::pages`]): stdout
/// is a pipe, which takes such pages without a copy, and the kernel gives transparent huge
/// pages, without which a fresh mapping per frame costs more than the copy it saves.
pub fn stdout_takes_pages() -> bool {
    sl_wire::is_pipe(io::stdout().as_fd()) && sl_frame::pages::huge_pages_available()
}

/// Try to enlarge the pipe behind `fd`; not a pipe, or not allowed, is fine.
fn enlarge_pipe(fd: BorrowedFd<'_>) {
    let _ = fcntl_setpipe_size(fd, PIPE_SIZE);
}

/// stdout as a frame stream: refuses a terminal (usage error with a hint), enlarges the pipe,
/// writes the stream header. Writes go straight to fd 1 (Rust's `Stdout` is line-buffered,
/// which would scan every frame for newlines).
pub fn frame_output() -> anyhow::Result<Writer<File>> {
    let out = io::stdout();
    if is_terminal(out.as_fd()) {
        return Err(usage(format!(
            "refusing to write binary frames to a terminal: pipe them into another stage \
             (`{} ... | sl-info`) or a file (`> out.slv`)",
            crate::program()
        )));
    }
    enlarge_pipe(out.as_fd());
    let file = File::from(
        out.as_fd()
            .try_clone_to_owned()
            .context("duplicating stdout")?,
    );
    Ok(Writer::new(file)?)
}

/// stdin as a frame stream: refuses a terminal with a hint, enlarges the pipe, checks the
/// stream header (a non-streamlib input gets an error naming what it looks like).
pub fn frame_input() -> anyhow::Result<Reader<File>> {
    let input = io::stdin();
    if is_terminal(input.as_fd()) {
        return Err(usage(format!(
            "no input: stdin is a terminal. Pipe a stream in, e.g. `sl-test | {}`",
            crate::program()
        )));
    }
    enlarge_pipe(input.as_fd());
    let file = File::from(
        input
            .as_fd()
            .try_clone_to_owned()
            .context("duplicating stdin")?,
    );
    Reader::new(file).context("reading stdin")
}

/// Whether an error (anywhere in its chain) is a closed pipe downstream.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<WireError>()
                .is_some_and(WireError::is_broken_pipe)
    })
}
