//! Timing and identity carried by every frame, after the seed's `TimestampedFrame`.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::Metadata;

/// A rational number `num/den`, used for time bases and frame rates.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rational {
    pub num: u32,
    pub den: u32,
}

impl Rational {
    pub const fn new(num: u32, den: u32) -> Rational {
        Rational { num, den }
    }

    /// Microseconds: the time base streamlib uses when nothing better is known.
    pub const MICROS: Rational = Rational::new(1, 1_000_000);

    pub fn as_f64(self) -> f64 {
        if self.den == 0 {
            0.0
        } else {
            self.num as f64 / self.den as f64
        }
    }

    /// The inverse, e.g. the time base `1/30` of a 30 fps rate.
    pub const fn inverse(self) -> Rational {
        Rational::new(self.den, self.num)
    }

    /// Is this usable as a time base or rate (both terms non-zero)?
    pub const fn is_valid(self) -> bool {
        self.num != 0 && self.den != 0
    }

    /// Seconds of `ticks` in this time base.
    pub fn ticks_to_secs(self, ticks: i64) -> f64 {
        ticks as f64 * self.as_f64()
    }

    /// Rescale `ticks` from this time base to `to`, rounding to nearest.
    pub fn rescale(self, ticks: i64, to: Rational) -> i64 {
        let num = ticks as i128 * self.num as i128 * to.den as i128;
        let den = self.den as i128 * to.num as i128;
        if den == 0 {
            return 0;
        }
        let half = den / 2;
        let r = if num >= 0 {
            (num + half) / den
        } else {
            (num - half) / den
        };
        r.clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }
}

impl fmt::Debug for Rational {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

impl fmt::Display for Rational {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

/// Timing, identity and metadata of one frame (video, audio or data).
#[derive(Clone, PartialEq)]
pub struct FrameInfo {
    /// Sequence number from 0 within its stream; a jump means frames were dropped upstream.
    pub frame_number: u64,
    /// Presentation timestamp in `time_base` units.
    pub pts: i64,
    pub time_base: Rational,
    /// Duration in `time_base` units, 0 when unknown.
    pub duration: i64,
    /// Wall-clock capture time in nanoseconds since the Unix epoch, when known.
    pub capture_time_ns: Option<i64>,
    /// PTP (IEEE 1588) time in nanoseconds of the PTP timescale, when the source is synced.
    pub ptp_time_ns: Option<i64>,
    /// Which source made the frame (a camera name, a file name, a `--source-id`).
    pub source_id: String,
    /// Whether a decoder can start here (always true for raw frames).
    pub keyframe: bool,
    pub metadata: Metadata,
}

impl Default for FrameInfo {
    fn default() -> Self {
        FrameInfo {
            frame_number: 0,
            pts: 0,
            time_base: Rational::MICROS,
            duration: 0,
            capture_time_ns: None,
            ptp_time_ns: None,
            source_id: String::new(),
            keyframe: true,
            metadata: Metadata::default(),
        }
    }
}

impl FrameInfo {
    /// Presentation time in seconds.
    pub fn pts_secs(&self) -> f64 {
        self.time_base.ticks_to_secs(self.pts)
    }

    /// Stamp the capture time with the current wall clock.
    pub fn stamp_now(&mut self) {
        self.capture_time_ns = Some(now_ns());
    }
}

impl fmt::Debug for FrameInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("FrameInfo");
        d.field("n", &self.frame_number)
            .field("pts", &self.pts)
            .field("tb", &self.time_base);
        if self.duration != 0 {
            d.field("duration", &self.duration);
        }
        if let Some(c) = self.capture_time_ns {
            d.field("capture_ns", &c);
        }
        if let Some(p) = self.ptp_time_ns {
            d.field("ptp_ns", &p);
        }
        if !self.source_id.is_empty() {
            d.field("source", &self.source_id);
        }
        if !self.keyframe {
            d.field("keyframe", &false);
        }
        if !self.metadata.is_empty() {
            d.field("metadata", &self.metadata);
        }
        d.finish()
    }
}

/// Nanoseconds since the Unix epoch, from the system clock.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_nanos() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rescale_rounds() {
        let tb30 = Rational::new(1, 30);
        assert_eq!(tb30.rescale(1, Rational::new(1, 90000)), 3000);
        assert_eq!(Rational::new(1, 90000).rescale(3000, tb30), 1);
        assert_eq!(
            Rational::new(1001, 30000).rescale(30, Rational::MICROS),
            1_001_000
        );
        assert_eq!(tb30.rescale(-1, Rational::new(1, 60)), -2);
    }
}
