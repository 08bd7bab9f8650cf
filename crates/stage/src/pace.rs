//! The one pacer: frames leave (or are shown) when their stream time comes due, like a
//! camera or a player. Sources use it through the runner (`--fast` turns it off); sl-show's
//! window uses it through [`Pacer::due`].

use std::time::{Duration, Instant};

/// Schedules stream times against the wall clock. The first time seen starts the schedule.
/// A time more than a second before the last one (a loop, a new stream; not audio
/// interleaved a little behind video) or one more than `max_lag` late (a stalled consumer, a
/// pause) restarts it from now, instead of bursting to catch up.
#[derive(Debug, Clone)]
pub struct Pacer {
    origin: Option<(Instant, f64)>,
    last: f64,
    max_lag: Duration,
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer::new()
    }
}

/// How far back a time may step without restarting the schedule.
const JUMP_BACK: f64 = 1.0;

/// Longest single sleep, so Ctrl-C is seen within it even across a long gap in timestamps.
const SLICE: Duration = Duration::from_millis(100);

impl Pacer {
    pub fn new() -> Pacer {
        Pacer {
            origin: None,
            last: f64::NEG_INFINITY,
            max_lag: Duration::from_millis(500),
        }
    }

    /// Forget the schedule (after a pause): the next time is due at once.
    pub fn reset(&mut self) {
        self.origin = None;
    }

    /// When stream time `secs` is due, seen at `now`.
    pub fn due(&mut self, secs: f64, now: Instant) -> Instant {
        let restart = match self.origin {
            None => true,
            Some(_) if secs < self.last - JUMP_BACK => true,
            Some((start, first)) => {
                let due = start + Duration::from_secs_f64((secs - first).max(0.0));
                now > due && now - due > self.max_lag
            }
        };
        if restart {
            self.origin = Some((now, secs));
        }
        self.last = self.last.max(secs);
        if restart {
            self.last = secs;
        }
        let (start, first) = self.origin.expect("set above");
        start + Duration::from_secs_f64((secs - first).max(0.0))
    }

    /// Sleep until stream time `secs` is due (returns early on SIGINT/SIGTERM).
    pub fn wait_until(&mut self, secs: f64) {
        let due = self.due(secs, Instant::now());
        loop {
            let now = Instant::now();
            if now >= due || sl_cli::interrupted() {
                return;
            }
            std::thread::sleep((due - now).min(SLICE));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_from_the_first_time_and_restarts_on_a_jump_back() {
        let mut p = Pacer::new();
        let t0 = Instant::now();
        assert_eq!(p.due(10.0, t0), t0);
        assert_eq!(p.due(10.5, t0), t0 + Duration::from_millis(500));
        // a loop: timestamps start again
        let t1 = t0 + Duration::from_millis(600);
        assert_eq!(p.due(0.0, t1), t1);
        // far behind: no burst, the schedule restarts
        let t2 = t1 + Duration::from_secs(5);
        assert_eq!(p.due(0.5, t2), t2);
        assert_eq!(p.due(0.75, t2), t2 + Duration::from_millis(250));
    }
}
