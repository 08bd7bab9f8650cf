//! `--frames N` / `--duration D`, with one meaning in every stage: N video frames, or D of
//! stream time since the first frame (not since timestamp 0: a file cut from the middle of a
//! broadcast starts at 3 hours). Audio follows the video: past the limit it is left out, and
//! a stream with no video stops on its own audio's time.

use sl_cli::FrameLimit;
use sl_wire::{Message, StreamKind};

/// What to do with a message under the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Pass,
    /// Leave it out and go on (audio past the video's limit).
    Skip,
    /// The limit is reached: end the stream cleanly, without this message.
    Stop,
}

/// Applies a [`FrameLimit`] to a sequence of messages.
#[derive(Debug, Clone, Default)]
pub struct Limiter {
    limit: FrameLimit,
    first_video: Option<f64>,
    first_audio: Option<f64>,
    video_frames: u64,
    has_video: bool,
}

impl Limiter {
    pub fn new(limit: FrameLimit) -> Limiter {
        Limiter {
            limit,
            ..Limiter::default()
        }
    }

    pub fn is_unlimited(&self) -> bool {
        self.limit.is_unlimited()
    }

    /// Video frames let through so far.
    pub fn video_frames(&self) -> u64 {
        self.video_frames
    }

    /// Would a video frame at `secs` since the first one, after `frames` frames, be past the
    /// limit? For sources, before they spend time making it.
    pub fn reached(&self, frames: u64, secs: f64) -> bool {
        self.limit.frames.is_some_and(|n| frames >= n)
            || self
                .limit
                .duration
                .is_some_and(|d| secs >= d.as_secs_f64() - 1e-9)
    }

    /// [`Limiter::admit`] for a video frame at `secs` (its timestamp) held elsewhere.
    pub fn admit_video(&mut self, secs: f64) -> Admit {
        if self.limit.is_unlimited() {
            return Admit::Pass;
        }
        self.has_video = true;
        let rel = secs - *self.first_video.get_or_insert(secs);
        if self.reached(self.video_frames, rel) {
            return Admit::Stop;
        }
        self.video_frames += 1;
        Admit::Pass
    }

    pub fn admit(&mut self, m: &Message) -> Admit {
        if self.limit.is_unlimited() {
            return Admit::Pass;
        }
        match m {
            Message::Stream { info, .. } => {
                self.has_video |= matches!(info.kind, StreamKind::Video(_));
                Admit::Pass
            }
            Message::Video { .. } | Message::Packet { .. } => {
                self.admit_video(m.frame_info().map_or(0.0, |i| i.pts_secs()))
            }
            Message::Audio { chunk, .. } => {
                let secs = chunk.info.pts_secs();
                let rel = secs - *self.first_audio.get_or_insert(secs);
                let over = self
                    .limit
                    .duration
                    .is_some_and(|d| rel >= d.as_secs_f64() - 1e-9);
                if over && !self.has_video {
                    Admit::Stop
                } else if over
                    || (self.has_video && self.limit.frames.is_some_and(|n| self.video_frames >= n))
                {
                    Admit::Skip
                } else {
                    Admit::Pass
                }
            }
            _ => Admit::Pass,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sl_frame::{PixelFormat, Rational, VideoFrame};
    use std::time::Duration;

    fn video(pts: i64) -> Message {
        let mut frame = VideoFrame::new(PixelFormat::Gray8, 2, 2).unwrap();
        frame.info.pts = pts;
        frame.info.time_base = Rational::new(1, 10);
        Message::Video { stream: 0, frame }
    }

    #[test]
    fn duration_counts_from_the_first_frame_not_from_zero() {
        let mut l = Limiter::new(FrameLimit {
            frames: None,
            duration: Some(Duration::from_secs(1)),
        });
        // a stream that starts at 1000 s
        let got: Vec<Admit> = (10_000..10_020).map(|p| l.admit(&video(p))).collect();
        assert_eq!(got.iter().filter(|a| **a == Admit::Pass).count(), 10);
        assert_eq!(got[10], Admit::Stop);
    }

    #[test]
    fn frames_counts_video_frames() {
        let mut l = Limiter::new(FrameLimit {
            frames: Some(3),
            duration: None,
        });
        let got: Vec<Admit> = (0..5).map(|p| l.admit(&video(p))).collect();
        assert_eq!(
            got,
            [
                Admit::Pass,
                Admit::Pass,
                Admit::Pass,
                Admit::Stop,
                Admit::Stop
            ]
        );
    }
}
