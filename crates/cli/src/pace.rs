//! Real-time pacing for sources: emit each frame when its timestamp comes due, like a camera.

use std::time::{Duration, Instant};

/// Sleeps until `start + t` for each frame time `t`. If the consumer is so slow that we fall
/// more than `max_lag` behind, the schedule is reset instead of bursting to catch up.
#[derive(Debug)]
pub struct Pacer {
    start: Option<Instant>,
    offset: f64,
    max_lag: Duration,
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer::new()
    }
}

impl Pacer {
    pub fn new() -> Pacer {
        Pacer {
            start: None,
            offset: 0.0,
            max_lag: Duration::from_millis(500),
        }
    }

    /// Wait until stream time `secs` (seconds since the first call's time) is due.
    pub fn wait_until(&mut self, secs: f64) {
        let now = Instant::now();
        let start = *self.start.get_or_insert_with(|| {
            self.offset = secs;
            now
        });
        let due = start + Duration::from_secs_f64((secs - self.offset).max(0.0));
        if due > now {
            std::thread::sleep(due - now);
        } else if now - due > self.max_lag {
            // far behind (a stalled consumer): restart the schedule from here
            self.start = Some(now);
            self.offset = secs;
        }
    }
}
