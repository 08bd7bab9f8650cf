//! Glass-to-glass latency per stream: how old each frame is when it arrives here.
//!
//! Two bases, best first:
//! - **ptp**: PTP now minus the frame's `ptp_time`, when the frame carries one and this
//!   process has a PTP clock (`--clock ptp`): right across machines that follow one master.
//! - **system**: system clock now minus the frame's capture time: right on one machine, or
//!   across machines whose system clocks are synchronised (NTP: ~1 ms; phc2sys: ~1 us).
//!
//! Values go into a log-scale histogram (1 % wide buckets from 1 us up, exact min and max),
//! so memory stays bounded however long the stream, and p50/p99 are within 1 %. Negative
//! latencies (the clocks disagree) are kept, not clipped: they say the clocks are off.
//!
//! Separately, `ptp_offset` is `ptp_time - capture_time` over the frames that carry both:
//! how far the stamping machine's system clock was from PTP. Streams stamped on machines
//! that follow one master line up when their `ptp_time`s are compared, whatever this says.

use serde::Serialize;
use sl_frame::FrameInfo;

const GROWTH: f64 = 1.01;
const BUCKETS: usize = 2900; // 1 us * 1.01^2900 > 10^6 s

/// Signed values, 1 % resolution.
#[derive(Debug, Clone)]
pub struct Histogram {
    pos: Vec<u64>,
    neg: Vec<u64>,
    count: u64,
    min: i64,
    max: i64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            pos: vec![0; BUCKETS],
            neg: vec![0; BUCKETS],
            count: 0,
            min: i64::MAX,
            max: i64::MIN,
        }
    }
}

fn bucket(mag_ns: u64) -> usize {
    if mag_ns < 1000 {
        return 0;
    }
    let k = ((mag_ns as f64 / 1000.0).ln() / GROWTH.ln()).floor() as usize + 1;
    k.min(BUCKETS - 1)
}

/// A representative value of bucket `k` (its geometric middle), ns.
fn value(k: usize) -> f64 {
    if k == 0 {
        500.0
    } else {
        1000.0 * GROWTH.powf(k as f64 - 0.5)
    }
}

impl Histogram {
    pub fn add(&mut self, v: i64) {
        self.count += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        if v >= 0 {
            self.pos[bucket(v as u64)] += 1;
        } else {
            self.neg[bucket(v.unsigned_abs())] += 1;
        }
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The `q`-quantile (0..=1), ns; None when empty. Clamped to the exact min and max.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        // the ends are known exactly
        if rank == 1 {
            return Some(self.min as f64);
        }
        if rank == self.count {
            return Some(self.max as f64);
        }
        let mut seen = 0;
        // most negative first
        for k in (0..BUCKETS).rev() {
            seen += self.neg[k];
            if seen >= rank {
                return Some((-value(k)).clamp(self.min as f64, self.max as f64));
            }
        }
        for k in 0..BUCKETS {
            seen += self.pos[k];
            if seen >= rank {
                return Some(value(k).clamp(self.min as f64, self.max as f64));
            }
        }
        Some(self.max as f64)
    }

    fn summary(&self) -> Option<Summary> {
        Some(Summary {
            samples: self.count,
            p50_ms: self.quantile(0.5)? / 1e6,
            p99_ms: self.quantile(0.99)? / 1e6,
            min_ms: self.min as f64 / 1e6,
            max_ms: self.max as f64 / 1e6,
        })
    }
}

/// Percentiles of one measure, in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    pub samples: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
}

/// What a stream's report says about time.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LatencyReport {
    /// `ptp` or `system`: which clocks the latency compares (see the module docs).
    pub basis: &'static str,
    pub latency: Summary,
    /// `ptp_time - capture_time` of the frames carrying both.
    pub ptp_offset: Option<Summary>,
}

/// Per-stream accumulator.
#[derive(Debug, Clone, Default)]
pub struct Latency {
    ptp: Histogram,
    system: Histogram,
    offset: Histogram,
}

impl Latency {
    /// One frame arriving at system time `now_ns`, and PTP time `ptp_now_ns` if known.
    pub fn observe(&mut self, info: &FrameInfo, now_ns: i64, ptp_now_ns: Option<i64>) {
        if let (Some(t), Some(now)) = (info.ptp_time_ns, ptp_now_ns) {
            self.ptp.add(now - t);
        }
        if let Some(c) = info.capture_time_ns {
            self.system.add(now_ns - c);
            if let Some(p) = info.ptp_time_ns {
                self.offset.add(p - c);
            }
        }
    }

    pub fn report(&self) -> Option<LatencyReport> {
        let (basis, h) = if self.ptp.count() > 0 {
            ("ptp", &self.ptp)
        } else {
            ("system", &self.system)
        };
        Some(LatencyReport {
            basis,
            latency: h.summary()?,
            ptp_offset: self.offset.summary(),
        })
    }
}

impl LatencyReport {
    /// `latency (ptp): p50 12.3 ms, p99 20.1 ms, max 31.0 ms`
    pub fn line(&self) -> String {
        let l = &self.latency;
        format!(
            "latency ({}): p50 {} ms, p99 {} ms, max {} ms",
            self.basis,
            ms(l.p50_ms),
            ms(l.p99_ms),
            ms(l.max_ms)
        )
    }
}

fn ms(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_within_one_percent() {
        let mut h = Histogram::default();
        for v in 1..=1000i64 {
            h.add(v * 1_000_000); // 1..1000 ms
        }
        let p50 = h.quantile(0.5).unwrap() / 1e6;
        let p99 = h.quantile(0.99).unwrap() / 1e6;
        assert!((p50 - 500.0).abs() <= 5.0, "{p50}");
        assert!((p99 - 990.0).abs() <= 10.0, "{p99}");
        assert_eq!(h.quantile(1.0).unwrap(), 1e9);
        assert_eq!(h.quantile(0.0).unwrap(), 1e6);
    }

    #[test]
    fn negative_values_are_kept() {
        let mut h = Histogram::default();
        for v in [-5_000_000i64, -1_000_000, 2_000_000] {
            h.add(v);
        }
        assert!((h.quantile(0.5).unwrap() + 1e6).abs() < 1e4);
        assert_eq!(h.summary().unwrap().min_ms, -5.0);
    }

    #[test]
    fn prefers_ptp_and_reports_the_offset() {
        let mut l = Latency::default();
        assert!(l.report().is_none());
        let info = FrameInfo {
            capture_time_ns: Some(1_000_000_000),
            ptp_time_ns: Some(1_000_200_000),
            ..Default::default()
        };
        l.observe(&info, 1_010_000_000, Some(1_030_200_000));
        let r = l.report().unwrap();
        assert_eq!(r.basis, "ptp");
        assert!((r.latency.p50_ms - 30.0).abs() < 0.3);
        assert!((r.ptp_offset.unwrap().p50_ms - 0.2).abs() < 0.003);
        let mut s = Latency::default();
        s.observe(&info, 1_010_000_000, None);
        let r = s.report().unwrap();
        assert_eq!(r.basis, "system");
        assert!((r.latency.max_ms - 10.0).abs() < 1e-9);
        assert!(r.line().starts_with("latency (system): p50 10.0 ms"));
    }
}
