//! A live progress meter and a final stats line, on stderr.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Counts frames and bytes; when enabled, redraws one status line on stderr a few times a
/// second (in place on a terminal, as separate lines otherwise).
#[derive(Debug)]
pub struct Meter {
    label: String,
    live: bool,
    tty: bool,
    start: Instant,
    last: Instant,
    last_frames: u64,
    last_bytes: u64,
    pub frames: u64,
    pub bytes: u64,
    pub dropped: u64,
    drawn: bool,
    note: String,
}

const INTERVAL: Duration = Duration::from_millis(500);

impl Meter {
    /// `live` turns the periodic line on; the counts are kept either way.
    pub fn new(label: impl Into<String>, live: bool) -> Meter {
        let now = Instant::now();
        Meter {
            label: label.into(),
            live,
            tty: std::io::stderr().is_terminal(),
            start: now,
            last: now,
            last_frames: 0,
            last_bytes: 0,
            frames: 0,
            bytes: 0,
            dropped: 0,
            drawn: false,
            note: String::new(),
        }
    }

    /// Count one frame of `bytes` bytes; redraw if it is time.
    pub fn frame(&mut self, bytes: u64) {
        self.frames += 1;
        self.bytes += bytes;
        if self.live {
            let now = Instant::now();
            if now - self.last >= INTERVAL {
                self.draw(now);
            }
        }
    }

    /// Text shown at the end of the live line (sl-info's latency), until changed.
    pub fn set_note(&mut self, note: impl Into<String>) {
        self.note = note.into();
    }

    /// Count bytes that are not a frame (headers, audio...).
    pub fn bytes(&mut self, bytes: u64) {
        self.bytes += bytes;
    }

    fn draw(&mut self, now: Instant) {
        let dt = (now - self.last).as_secs_f64().max(1e-9);
        let fps = (self.frames - self.last_frames) as f64 / dt;
        let bps = (self.bytes - self.last_bytes) as f64 / dt;
        let mut line = format!(
            "{}: {} frames  {:.1} fps  {}/s  {:.1} s{}",
            self.label,
            self.frames,
            fps,
            human_bytes(bps),
            (now - self.start).as_secs_f64(),
            if self.dropped > 0 {
                format!("  {} dropped", self.dropped)
            } else {
                String::new()
            }
        );
        if !self.note.is_empty() {
            line.push_str("  ");
            line.push_str(&self.note);
        }
        let mut err = std::io::stderr().lock();
        let _ = if self.tty {
            write!(err, "\r\x1b[2K{line}")
        } else {
            writeln!(err, "{line}")
        };
        self.drawn = true;
        self.last = now;
        self.last_frames = self.frames;
        self.last_bytes = self.bytes;
    }

    /// Seconds since the meter started.
    pub fn elapsed(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// The summary: `300 frames in 2.00 s (150.0 fps, 1.2 GB/s)`.
    pub fn summary(&self) -> String {
        let secs = self.elapsed().max(1e-9);
        format!(
            "{} frames in {:.2} s ({:.1} fps, {}/s){}",
            self.frames,
            secs,
            self.frames as f64 / secs,
            human_bytes(self.bytes as f64 / secs),
            if self.dropped > 0 {
                format!(", {} dropped", self.dropped)
            } else {
                String::new()
            }
        )
    }

    /// Clear the live line and print the final stats line if asked (`stats`) or if a live
    /// line was shown.
    pub fn finish(&mut self, stats: bool) {
        let mut err = std::io::stderr().lock();
        if self.drawn && self.tty {
            let _ = write!(err, "\r\x1b[2K");
        }
        if stats || self.drawn {
            let _ = writeln!(err, "{}: {}", self.label, self.summary());
        }
        self.drawn = false;
    }
}

/// `1.5 MB`, `3.2 GB`: decimal units, as network and disk rates are quoted.
pub fn human_bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(999.0), "999 B");
        assert_eq!(human_bytes(1_500_000.0), "1.5 MB");
        assert_eq!(human_bytes(8_294_400.0 * 150.0), "1.2 GB");
    }
}
