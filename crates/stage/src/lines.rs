//! One live line per stage on a shared terminal.
//!
//! Every stage of `sl-test --progress | sl-draw x.rhai --progress | sl-info --pass` writes its
//! meter to the same terminal. Each used to redraw "its" line with `\r`, so the lines took
//! turns on one row and garbled each other. Now the stages that show a live line on one
//! terminal share a block of rows at the bottom, one row each, and the cursor waits on the
//! row below the block:
//!
//! - A small state file per user and terminal (`$XDG_RUNTIME_DIR`, else the temp dir, named
//!   by the terminal's device number) holds the block's height and which process has which
//!   row. Every change and every redraw happens under an exclusive `flock` on it, so only one
//!   stage moves the cursor at a time.
//! - A stage's first line takes the next row: it writes a newline (the block grows by one
//!   row, where the cursor was) and records `pid row`. Rows of processes that are gone are
//!   forgotten; when none is left the block starts afresh at the cursor (a new pipeline).
//! - A redraw moves up to its row, clears it, writes, and moves back down; lines are cut to
//!   the terminal's width, since a wrapped line would shift every row below it.
//! - The final stats line replaces the live line in its row, and the row is given up.
//!
//! Anything else written to the terminal meanwhile (a warning) pushes the cursor down and the
//! block is drawn one row lower from then on: untidy, but each line stays whole. Without the
//! state file (no writable folder) a stage falls back to redrawing one row with `\r`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;

/// The state of a terminal's block: its height in rows, and the live processes' rows.
#[derive(Debug, Default, PartialEq, Eq)]
struct Block {
    rows: u32,
    owners: Vec<(u32, u32)>,
}

impl Block {
    fn parse(s: &str) -> Block {
        let mut b = Block::default();
        let mut lines = s.lines();
        b.rows = lines
            .next()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0);
        for l in lines {
            let mut it = l.split_whitespace().map(|w| w.parse::<u32>());
            if let (Some(Ok(pid)), Some(Ok(row))) = (it.next(), it.next())
                && row < b.rows
            {
                b.owners.push((pid, row));
            }
        }
        b
    }

    fn render(&self) -> String {
        let mut s = format!("{}\n", self.rows);
        for (pid, row) in &self.owners {
            s.push_str(&format!("{pid} {row}\n"));
        }
        s
    }

    /// Forget processes that have exited; with none left, start a new block.
    fn prune(&mut self, alive: impl Fn(u32) -> bool) {
        self.owners.retain(|(pid, _)| alive(*pid));
        if self.owners.is_empty() {
            self.rows = 0;
        }
    }

    /// Take the next row for `pid`: its number.
    fn take(&mut self, pid: u32) -> u32 {
        let row = self.rows;
        self.rows += 1;
        self.owners.push((pid, row));
        row
    }

    fn give_up(&mut self, pid: u32) {
        self.owners.retain(|(p, _)| *p != pid);
    }
}

/// The escape sequence that writes `line` in `row` of a block `rows` high, the cursor being
/// at the start of the row below the block, and puts the cursor back there.
fn draw_in_row(line: &str, row: u32, rows: u32) -> String {
    let up = rows - row;
    format!("\x1b[{up}A\r\x1b[2K{line}\r\x1b[{up}B")
}

/// `line` cut to `width` characters (less one, so the cursor never wraps).
fn fit(line: &str, width: Option<u16>) -> &str {
    match width {
        Some(w) if w > 1 => match line.char_indices().nth(w as usize - 1) {
            Some((i, _)) => &line[..i],
            None => line,
        },
        _ => line,
    }
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// This process's row on the terminal its stderr is.
#[derive(Debug)]
pub struct SharedLine {
    state: File,
    row: Option<u32>,
}

impl SharedLine {
    /// The shared state for stderr's terminal, or `None` if it cannot be had (the caller then
    /// redraws one row with `\r`).
    pub fn open() -> Option<SharedLine> {
        let tty = rustix::fs::fstat(std::io::stderr().as_fd()).ok()?;
        let uid = std::fs::metadata("/proc/self").ok()?.uid();
        let dir = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|d| d.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        let path = dir.join(format!("sl-meter-{uid}-{:x}", tty.st_rdev));
        let state = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(path)
            .ok()?;
        // someone else's file (a shared temp dir) is not trusted
        if state.metadata().ok()?.uid() != uid {
            return None;
        }
        Some(SharedLine { state, row: None })
    }

    /// With the state locked, read it, let `f` change it and write to the terminal, and save
    /// it. The lock is released when the file's lock guard drops (end of this call).
    fn locked(&mut self, f: impl FnOnce(&mut Block, &mut Option<u32>) -> String) -> bool {
        let fd = self.state.as_fd();
        if rustix::fs::flock(fd, rustix::fs::FlockOperation::LockExclusive).is_err() {
            return false;
        }
        let mut text = String::new();
        let _ = (&self.state).seek(SeekFrom::Start(0));
        let _ = (&self.state).read_to_string(&mut text);
        let mut block = Block::parse(&text);
        let out = f(&mut block, &mut self.row);
        let mut err = std::io::stderr().lock();
        let wrote = err.write_all(out.as_bytes()).and_then(|()| err.flush());
        drop(err);
        let saved = self.state.set_len(0).and_then(|()| {
            (&self.state).seek(SeekFrom::Start(0))?;
            (&self.state).write_all(block.render().as_bytes())
        });
        let _ = rustix::fs::flock(fd, rustix::fs::FlockOperation::Unlock);
        wrote.is_ok() && saved.is_ok()
    }

    /// Show `line` in this process's row (taking one first if need be).
    pub fn draw(&mut self, line: &str) -> bool {
        let width = terminal_width();
        let pid = std::process::id();
        self.locked(|block, row| {
            let mut out = String::new();
            let r = match *row {
                Some(r) if block.owners.contains(&(pid, r)) => r,
                _ => {
                    block.prune(alive);
                    out.push('\n');
                    let r = block.take(pid);
                    *row = Some(r);
                    r
                }
            };
            out.push_str(&draw_in_row(fit(line, width), r, block.rows));
            out
        })
    }

    /// Replace the live line by `line` for good and give the row up.
    pub fn finish(&mut self, line: &str) -> bool {
        let pid = std::process::id();
        self.locked(|block, row| {
            let Some(r) = row.take().filter(|r| block.owners.contains(&(pid, *r))) else {
                // the row was lost (the block was started afresh): a line of its own
                return format!("{line}\n");
            };
            block.give_up(pid);
            // the summary may be wider than the terminal: cut it, as the live line was
            draw_in_row(fit(line, terminal_width()), r, block.rows)
        })
    }
}

fn terminal_width() -> Option<u16> {
    rustix::termios::tcgetwinsize(std::io::stderr().as_fd())
        .ok()
        .map(|w| w.ws_col)
        .filter(|c| *c > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_taken_in_turn_and_a_new_block_starts_when_everyone_has_gone() {
        let mut b = Block::default();
        assert_eq!(b.take(10), 0);
        assert_eq!(b.take(11), 1);
        let b2 = Block::parse(&b.render());
        assert_eq!(b2, b);
        b.give_up(10);
        b.prune(|p| p == 11);
        assert_eq!((b.rows, b.owners.clone()), (2, vec![(11, 1)]));
        assert_eq!(b.take(12), 2);
        b.prune(|_| false);
        assert_eq!(b, Block::default());
        // garbage reads as an empty block
        assert_eq!(Block::parse("x\n1 2 3\n"), Block::default());
    }

    #[test]
    fn a_row_is_drawn_from_the_row_below_the_block_and_lines_fit_the_terminal() {
        assert_eq!(draw_in_row("hi", 0, 3), "\x1b[3A\r\x1b[2Khi\r\x1b[3B");
        assert_eq!(draw_in_row("hi", 2, 3), "\x1b[1A\r\x1b[2Khi\r\x1b[1B");
        assert_eq!(fit("abcdef", Some(4)), "abc");
        assert_eq!(fit("abc", Some(80)), "abc");
        assert_eq!(fit("abc", None), "abc");
    }
}
