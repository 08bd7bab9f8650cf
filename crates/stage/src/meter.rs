//! The meter: counts what a stage moves, redraws one live status line on stderr while it runs
//! (only on a terminal, and only when asked), and prints a final stats line.
//!
//! Several stages showing live lines on one terminal get a row each ([`crate::lines`]).
//!
//! The line reads like ffmpeg's, which is what its users look for:
//! `sl-test: frame=300 fps=30.0 size=2.8 GB time=00:00:10.00 bitrate=2211.8 Mbit/s speed=1.00x`.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use crate::lines::SharedLine;

pub use sl_cli::human_bytes;

/// Counts frames and bytes, and the stream time of the last frame.
#[derive(Debug)]
pub struct Meter {
    label: String,
    live: bool,
    start: Instant,
    last: Instant,
    last_frames: u64,
    first_secs: Option<f64>,
    stream_secs: f64,
    pub frames: u64,
    pub bytes: u64,
    pub dropped: u64,
    drawn: bool,
    note: String,
    /// This stage's row among the live lines on the terminal (opened at the first draw;
    /// `None` then: redraw one row with `\r`).
    row: Option<Option<SharedLine>>,
}

const INTERVAL: Duration = Duration::from_millis(500);

impl Meter {
    /// `live` asks for the periodic line; it is drawn only when stderr is a terminal (a log
    /// file gets the final line only). The counts are kept either way.
    pub fn new(label: impl Into<String>, live: bool) -> Meter {
        let now = Instant::now();
        Meter {
            label: label.into(),
            live: live && std::io::stderr().is_terminal(),
            start: now,
            last: now,
            last_frames: 0,
            first_secs: None,
            stream_secs: 0.0,
            frames: 0,
            bytes: 0,
            dropped: 0,
            drawn: false,
            note: String::new(),
            row: None,
        }
    }

    /// Count one frame of `bytes` bytes at stream time `secs` (its timestamp, if known).
    pub fn frame(&mut self, bytes: u64, secs: Option<f64>) {
        self.frames += 1;
        self.bytes += bytes;
        if let Some(s) = secs {
            self.stream_secs = s - *self.first_secs.get_or_insert(s);
        }
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

    /// Count bytes that are not a video frame (headers, audio...).
    pub fn bytes(&mut self, bytes: u64) {
        self.bytes += bytes;
    }

    /// The ffmpeg-style status: frame, fps, size, time, bitrate, speed.
    fn status(&self, fps: f64) -> String {
        let wall = self.elapsed().max(1e-9);
        let t = self.stream_secs.max(0.0);
        let bitrate = if t > 0.0 {
            format!("{:.1} Mbit/s", self.bytes as f64 * 8.0 / t / 1e6)
        } else {
            "N/A".into()
        };
        let mut s = format!(
            "frame={} fps={fps:.1} size={} time={:02}:{:02}:{:05.2} bitrate={bitrate} speed={:.2}x",
            self.frames,
            human_bytes(self.bytes as f64),
            (t / 3600.0) as u64,
            ((t / 60.0) as u64) % 60,
            t % 60.0,
            t / wall,
        );
        if self.dropped > 0 {
            s.push_str(&format!(" dropped={}", self.dropped));
        }
        if !self.note.is_empty() {
            s.push_str("  ");
            s.push_str(&self.note);
        }
        s
    }

    fn draw(&mut self, now: Instant) {
        let dt = (now - self.last).as_secs_f64().max(1e-9);
        let fps = (self.frames - self.last_frames) as f64 / dt;
        let line = format!("{}: {}", self.label, self.status(fps));
        let shared = self.row.get_or_insert_with(SharedLine::open);
        if !shared.as_mut().is_some_and(|s| s.draw(&line)) {
            *shared = None;
            let _ = write!(std::io::stderr().lock(), "\r\x1b[2K{line}");
        }
        self.drawn = true;
        self.last = now;
        self.last_frames = self.frames;
    }

    /// Seconds since the meter started.
    pub fn elapsed(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// The summary: `300 frames in 2.00 s (150.0 fps, 1.2 GB/s)`, then the status fields.
    pub fn summary(&self) -> String {
        let secs = self.elapsed().max(1e-9);
        format!(
            "{} frames in {:.2} s ({:.1} fps, {}/s); {}",
            self.frames,
            secs,
            self.frames as f64 / secs,
            human_bytes(self.bytes as f64 / secs),
            self.status(self.frames as f64 / secs)
        )
    }

    /// Clear the live line and print the final stats line if asked (`stats`) or if a live
    /// line was shown.
    pub fn finish(&mut self, stats: bool) {
        if self.drawn
            && let Some(Some(mut shared)) = self.row.take()
        {
            let line = format!("{}: {}", self.label, self.summary());
            if shared.finish(&line) {
                self.drawn = false;
                return;
            }
        }
        let mut err = std::io::stderr().lock();
        if self.drawn {
            let _ = write!(err, "\r\x1b[2K");
        }
        if stats || self.drawn {
            let _ = writeln!(err, "{}: {}", self.label, self.summary());
        }
        self.drawn = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_reads_like_ffmpeg() {
        let mut m = Meter::new("sl-x", false);
        for i in 0..31 {
            m.frame(1_000_000, Some(100.0 + i as f64 / 30.0));
        }
        let s = m.status(30.0);
        assert!(
            s.starts_with(
                "frame=31 fps=30.0 size=31.0 MB time=00:00:01.00 bitrate=248.0 Mbit/s speed="
            ),
            "{s}"
        );
    }
}
