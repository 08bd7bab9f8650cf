//! The PTP slave as a pure state machine: messages and local receive times in, a mapping from
//! the local monotonic clock to the master's time out. No sockets, no clocks are read here, so
//! every behaviour is unit-tested with hand-made packets.
//!
//! # Contract
//!
//! - **Never steers a clock.** The result is a [`Mapping`]: `ptp = anchor_ptp + (mono -
//!   anchor_mono) * (1 + rate)`, published for stages to read. The system clock is untouched.
//! - **Best master** (a simplified BMCA): among masters whose Announce was heard in our domain
//!   within 3 announce intervals, the best by priority1, clockClass, clockAccuracy,
//!   offsetScaledLogVariance, priority2, grandmaster identity, stepsRemoved, then port identity
//!   wins. One Announce qualifies a master (the standard asks for two; one lets us lock sooner).
//!   Sync, Follow_Up and Delay_Resp from any other port are ignored, so two masters never mix.
//! - **Other domains** are ignored entirely (counted in [`Counters::other_domain`]).
//! - **Delay** (E2E): one Delay_Req per master's logMinDelayReqInterval (1 s until it says);
//!   the path delay is the minimum of the last [`DELAY_WINDOW`] measurements (software timestamps
//!   only ever add delay, so the minimum is the least disturbed).
//! - **Offset**: a robust straight line (offset and rate) through the last [`WINDOW`] Sync
//!   samples: the rate is the median of pairwise slopes (Theil-Sen), the offset the median
//!   of what is left, so a few late samples cannot drag it.
//! - **Outliers and jumps**: once locked, a sample further than [`JUMP_NS`] (or 20x the error
//!   estimate) from the prediction is dropped; [`JUMP_CONFIRM`] such samples in a row that agree
//!   with each other mean the master's time stepped: the filter restarts from them (logged),
//!   and the mapping jumps with the master.
//! - **States**: `listening` (no master), `uncalibrated` (a master, not yet [`LOCK_SAMPLES`]
//!   samples and a delay), `slave` (locked), `holdover` (was locked; the master went away or is
//!   being replaced: the last mapping goes on, its error growing by [`HOLDOVER_PPB`]).
//! - **Error estimate**: 3 sigma of the Sync samples around the line (from their median
//!   absolute deviation), plus half the spread of the delay window (median minus minimum),
//!   plus 1 µs; it grows with the time since the last sample.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::msg::{Announce, Body, Header, Message, PortIdentity};

/// Sync samples kept for the offset and rate fit.
pub const WINDOW: usize = 32;
/// Delay measurements kept for the minimum.
pub const DELAY_WINDOW: usize = 64;
/// Sync samples (with a delay measured) before `slave`.
pub const LOCK_SAMPLES: usize = 3;
/// A locked sample this far from the prediction is an outlier (or a jump).
pub const JUMP_NS: i64 = 1_000_000;
/// Outliers in a row, agreeing within [`JUMP_NS`], that mean the master stepped.
pub const JUMP_CONFIRM: usize = 3;
/// How fast the error estimate grows between samples while locked (rate-estimate uncertainty).
pub const LOCKED_PPB: f64 = 200.0;
/// How fast it grows in holdover: a free-running oscillator after rate correction.
pub const HOLDOVER_PPB: f64 = 2000.0;

/// The port state, as published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Listening,
    Uncalibrated,
    Slave,
    Holdover,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Listening => "listening",
            State::Uncalibrated => "uncalibrated",
            State::Slave => "slave",
            State::Holdover => "holdover",
        }
    }
}

/// Local monotonic time to master time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Mapping {
    /// CLOCK_MONOTONIC, ns.
    pub anchor_mono_ns: i64,
    /// The master's time at `anchor_mono_ns`, ns of its timescale.
    pub anchor_ptp_ns: i64,
    /// Master seconds per local second, minus one, in parts per billion.
    pub rate_ppb: f64,
    /// Error estimate at the anchor, ns.
    pub error_ns: f64,
    /// Growth of the error estimate away from the anchor, ppb.
    pub growth_ppb: f64,
}

impl Mapping {
    /// The master's time at local monotonic `mono_ns`.
    pub fn ptp_at(&self, mono_ns: i64) -> i64 {
        let dt = mono_ns - self.anchor_mono_ns;
        self.anchor_ptp_ns + dt + (dt as f64 * self.rate_ppb * 1e-9).round() as i64
    }

    /// The error estimate at `mono_ns`, ns.
    pub fn error_at(&self, mono_ns: i64) -> f64 {
        let dt = (mono_ns - self.anchor_mono_ns).unsigned_abs() as f64;
        self.error_ns + dt * self.growth_ppb * 1e-9
    }
}

/// Counts of what was heard and dropped, for logs and `sl-ptp status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub other_domain: u64,
    pub not_our_master: u64,
    pub outliers: u64,
    pub jumps: u64,
    pub unmatched: u64,
}

#[derive(Debug, Clone, Copy)]
struct Foreign {
    announce: Announce,
    last_seen: i64,
    log_interval: i8,
}

/// A Delay_Req the caller must send now, then report with [`Slave::delay_req_sent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub sequence: u16,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    t2: i64,
    /// t1 - t2: master minus local, minus the path delay.
    y: f64,
}

/// The slave.
#[derive(Debug)]
pub struct Slave {
    domain: u8,
    me: PortIdentity,
    foreign: HashMap<PortIdentity, Foreign>,
    master: Option<PortIdentity>,
    /// Sync waiting for its Follow_Up: sequence, t2, correction.
    pending_sync: Option<(u16, i64, i64)>,
    /// Latest complete (t1, t2).
    last_sync: Option<(i64, i64)>,
    samples: VecDeque<Sample>,
    delays: VecDeque<f64>,
    suspects: Vec<Sample>,
    delay_seq: u16,
    /// Delay_Req in flight: sequence and t3 (None until sent).
    delay_pending: Option<(u16, Option<i64>)>,
    next_delay_req: i64,
    delay_interval_ns: i64,
    fit: Option<(f64, f64, f64, i64)>, // (a, b, median absolute residual, t_ref)
    locked: bool,
    mapping: Option<Mapping>,
    pub counters: Counters,
}

fn interval_ns(log: i8) -> i64 {
    let log = log.clamp(-7, 7) as i32;
    if log >= 0 {
        1_000_000_000i64 << log
    } else {
        1_000_000_000i64 >> (-log)
    }
}

fn better(a: &(PortIdentity, Announce), b: &(PortIdentity, Announce)) -> std::cmp::Ordering {
    let key = |(p, x): &(PortIdentity, Announce)| {
        (
            x.priority1,
            x.clock_class,
            x.clock_accuracy,
            x.variance,
            x.priority2,
            x.grandmaster,
            x.steps_removed,
            *p,
        )
    };
    key(a).cmp(&key(b))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A line through (t, y) that outliers cannot drag: the slope is the median of the slopes
/// between samples at least 100 ms apart (Theil-Sen), the offset the median of what is left.
/// Software timestamps make a few samples late by tens of microseconds; a least-squares fit
/// tilts towards them and the tilt is then extrapolated (measured: +-1 ppm, +-16 us here).
/// Returns (a, b, median absolute residual) with y = a + b (t - t_ref).
fn robust_line(points: &[Sample], t_ref: i64) -> (f64, f64, f64) {
    let mut slopes = Vec::with_capacity(points.len() * points.len() / 2);
    for (i, p) in points.iter().enumerate() {
        for q in &points[i + 1..] {
            let dt = (q.t2 - p.t2) as f64;
            if dt.abs() >= 1e8 {
                slopes.push((q.y - p.y) / dt);
            }
        }
    }
    // Rates beyond 500 ppm are no real oscillator: a bad fit, not a clock.
    let b = if slopes.is_empty() {
        0.0
    } else {
        median(&mut slopes).clamp(-500e-6, 500e-6)
    };
    let mut rest: Vec<f64> = points
        .iter()
        .map(|p| p.y - b * (p.t2 - t_ref) as f64)
        .collect();
    let a = median(&mut rest);
    let mut res: Vec<f64> = rest.iter().map(|r| (r - a).abs()).collect();
    (a, b, median(&mut res))
}

impl Slave {
    /// A slave in `domain`, whose own port identity is `me` (requestingPortIdentity).
    pub fn new(domain: u8, me: PortIdentity) -> Slave {
        Slave {
            domain,
            me,
            foreign: HashMap::new(),
            master: None,
            pending_sync: None,
            last_sync: None,
            samples: VecDeque::new(),
            delays: VecDeque::new(),
            suspects: Vec::new(),
            delay_seq: 0,
            delay_pending: None,
            next_delay_req: i64::MIN,
            delay_interval_ns: 1_000_000_000,
            fit: None,
            locked: false,
            mapping: None,
            counters: Counters::default(),
        }
    }

    pub fn state(&self) -> State {
        match (self.master.is_some() && self.locked, self.mapping.is_some()) {
            (true, _) => State::Slave,
            (false, true) => State::Holdover,
            (false, false) if self.master.is_some() => State::Uncalibrated,
            _ => State::Listening,
        }
    }

    /// The port we follow.
    pub fn master(&self) -> Option<PortIdentity> {
        self.master
    }

    /// The grandmaster behind it, from its Announce.
    pub fn grandmaster(&self) -> Option<([u8; 8], Announce)> {
        let f = self.foreign.get(&self.master?)?;
        Some((f.announce.grandmaster, f.announce))
    }

    /// The current mapping: `None` until the first lock; kept through holdover.
    pub fn mapping(&self) -> Option<Mapping> {
        self.mapping
    }

    /// The current path delay estimate, ns.
    pub fn delay_ns(&self) -> Option<f64> {
        self.delays.iter().copied().min_by(f64::total_cmp)
    }

    /// Handle one parsed message received at local monotonic time `rx_mono` (the kernel's
    /// receive timestamp for event messages). Returns true when the mapping changed.
    pub fn handle(&mut self, m: &Message, rx_mono: i64) -> bool {
        let h = &m.header;
        if h.domain != self.domain {
            self.counters.other_domain += 1;
            return false;
        }
        if h.source.clock == self.me.clock {
            return false; // our own Delay_Req looped back
        }
        match &m.body {
            Body::Announce(a) => {
                self.foreign.insert(
                    h.source,
                    Foreign {
                        announce: *a,
                        last_seen: rx_mono,
                        log_interval: h.log_interval,
                    },
                );
                self.choose_master(rx_mono);
                false
            }
            _ if Some(h.source) != self.master => {
                self.counters.not_our_master += 1;
                false
            }
            Body::Sync { origin_ns } => {
                if h.two_step {
                    self.pending_sync = Some((h.sequence, rx_mono, h.correction_ns));
                    false
                } else {
                    self.pending_sync = None;
                    self.sync_sample(origin_ns + h.correction_ns, rx_mono)
                }
            }
            Body::FollowUp { precise_origin_ns } => match self.pending_sync.take() {
                Some((seq, t2, corr)) if seq == h.sequence => {
                    self.sync_sample(precise_origin_ns + corr + h.correction_ns, t2)
                }
                other => {
                    self.pending_sync = other;
                    self.counters.unmatched += 1;
                    false
                }
            },
            Body::DelayResp {
                receive_ns,
                requesting,
            } => self.delay_resp(h, *receive_ns, *requesting),
            Body::DelayReq { .. } => false,
        }
    }

    fn delay_resp(&mut self, h: &Header, receive_ns: i64, requesting: PortIdentity) -> bool {
        if requesting != self.me {
            return false; // another slave's answer
        }
        let Some((seq, Some(t3))) = self.delay_pending else {
            self.counters.unmatched += 1;
            return false;
        };
        if seq != h.sequence {
            self.counters.unmatched += 1;
            return false;
        }
        self.delay_pending = None;
        self.delay_interval_ns = interval_ns(h.log_interval);
        let Some((t1, t2)) = self.last_sync else {
            return false;
        };
        let t4 = receive_ns - h.correction_ns;
        let d = ((t2 - t1) + (t4 - t3)) as f64 / 2.0;
        log::debug!("delay {d} ns (t4-t3 {} ns)", t4 - t3);
        // Beyond -1 ms or 1 s it is a broken exchange, not a path; small negative values are
        // timestamp noise on a very short path, kept as 0.
        if !(-1e6..1e9).contains(&d) {
            self.counters.outliers += 1;
            return false;
        }
        if self.delays.len() == DELAY_WINDOW {
            self.delays.pop_front();
        }
        self.delays.push_back(d.max(0.0));
        self.update()
    }

    fn sync_sample(&mut self, t1: i64, t2: i64) -> bool {
        self.last_sync = Some((t1, t2));
        log::debug!("sync t1-t2 {} ns", t1 - t2);
        let s = Sample {
            t2,
            y: (t1 - t2) as f64,
        };
        if self.locked
            && let Some((a, b, resid, t_ref)) = self.fit
        {
            let predicted = a + b * (t2 - t_ref) as f64;
            let r = s.y - predicted;
            let limit = (JUMP_NS as f64).max(20.0 * resid);
            if r.abs() > limit {
                self.counters.outliers += 1;
                if let Some(first) = self.suspects.first()
                    && (first.y - s.y).abs() > JUMP_NS as f64
                {
                    self.suspects.clear();
                }
                self.suspects.push(s);
                if self.suspects.len() < JUMP_CONFIRM {
                    return false;
                }
                log::warn!(
                    "the master's time jumped by {:.3} ms; following it",
                    r / 1e6
                );
                self.counters.jumps += 1;
                self.samples = self.suspects.drain(..).collect();
                return self.update();
            }
        }
        self.suspects.clear();
        if self.samples.len() == WINDOW {
            self.samples.pop_front();
        }
        self.samples.push_back(s);
        self.update()
    }

    /// Refit and republish. True when the mapping changed.
    fn update(&mut self) -> bool {
        let Some(delay) = self.delay_ns() else {
            return false;
        };
        if self.samples.len() < LOCK_SAMPLES {
            return false;
        }
        let pts: Vec<Sample> = self.samples.iter().copied().collect();
        let t_ref = pts.last().expect("samples").t2;
        let (a, b, mad) = robust_line(&pts, t_ref);
        let mut d: Vec<f64> = self.delays.iter().copied().collect();
        let spread = median(&mut d) - delay;
        // ~3 sigma of the Sync samples around the line, half the delay window's spread, 1 us
        let sigma = MAD_TO_SIGMA * mad;
        let error = 3.0 * sigma + spread / 2.0 + 1000.0;
        self.fit = Some((a, b, mad, t_ref));
        self.locked = true;
        // offset at t_ref: master - local = y + delay
        self.mapping = Some(Mapping {
            anchor_mono_ns: t_ref,
            anchor_ptp_ns: t_ref + (a + delay).round() as i64,
            rate_ppb: b * 1e9,
            error_ns: error,
            growth_ppb: LOCKED_PPB.max(3.0 * rate_sigma_ppb(&pts, sigma)),
        });
        true
    }

    /// Timers: expire silent masters, and say when a Delay_Req is due. Call at least every
    /// 100 ms and after every message. Returns true when the state changed.
    pub fn poll(&mut self, now: i64) -> (bool, Option<Outgoing>) {
        let before = self.state();
        self.foreign.retain(|_, f| {
            // ANNOUNCE_RECEIPT_TIMEOUT of 3 intervals, at least one second
            now - f.last_seen <= (3 * interval_ns(f.log_interval)).max(1_000_000_000)
        });
        self.choose_master(now);
        let mut out = None;
        if self.master.is_some() && self.last_sync.is_some() && now >= self.next_delay_req {
            self.delay_seq = self.delay_seq.wrapping_add(1);
            self.delay_pending = Some((self.delay_seq, None));
            self.next_delay_req = now + self.delay_interval_ns;
            let msg = Message {
                header: Header {
                    domain: self.domain,
                    two_step: false,
                    correction_ns: 0,
                    source: self.me,
                    sequence: self.delay_seq,
                    log_interval: 0x7f,
                },
                body: Body::DelayReq { origin_ns: 0 },
            };
            out = Some(Outgoing {
                sequence: self.delay_seq,
                bytes: msg.to_bytes(),
            });
        }
        (self.state() != before, out)
    }

    /// The Delay_Req `sequence` left at local monotonic time `t3`.
    pub fn delay_req_sent(&mut self, sequence: u16, t3: i64) {
        if let Some((seq, sent)) = &mut self.delay_pending
            && *seq == sequence
        {
            *sent = Some(t3);
        }
    }

    fn choose_master(&mut self, now: i64) {
        let best = self
            .foreign
            .iter()
            .map(|(p, f)| (*p, f.announce))
            .min_by(better)
            .map(|(p, _)| p);
        if best == self.master {
            return;
        }
        match best {
            Some(p) => log::info!("following master {p}"),
            None => log::warn!("no master heard: holding over"),
        }
        self.master = best;
        self.locked = false;
        self.fit = None;
        self.samples.clear();
        self.suspects.clear();
        self.delays.clear();
        self.pending_sync = None;
        self.last_sync = None;
        self.delay_pending = None;
        self.next_delay_req = now;
        if let Some(m) = &mut self.mapping {
            m.growth_ppb = holdover_growth(m.growth_ppb);
        }
    }
}

/// The standard deviation of normally distributed samples from their median absolute
/// deviation.
const MAD_TO_SIGMA: f64 = 1.4826;

/// How uncertain the fitted rate is, ppb (one sigma): the samples' scatter (`sigma`, ns)
/// around the line over the time the window spans, as for a least-squares slope,
/// sigma * sqrt(12 / n) / span.
/// Just after locking, three samples over two seconds with tens of microseconds of timestamp
/// noise give a rate uncertain by tens of ppm, which a holdover then carries on for seconds:
/// the published error has to grow that fast too.
fn rate_sigma_ppb(points: &[Sample], sigma: f64) -> f64 {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return 0.0;
    };
    let span = (last.t2 - first.t2) as f64;
    if span <= 0.0 {
        return 0.0;
    }
    sigma * (12.0 / points.len() as f64).sqrt() / span * 1e9
}

/// The error's growth in holdover: a free-running oscillator ([`HOLDOVER_PPB`]) on top of
/// what the rate was uncertain by while locked (beyond [`LOCKED_PPB`], the floor).
pub fn holdover_growth(locked_growth_ppb: f64) -> f64 {
    HOLDOVER_PPB + (locked_growth_ppb - LOCKED_PPB).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i64 = 1_000_000_000;

    fn id(n: u8) -> PortIdentity {
        PortIdentity {
            clock: [n, 0, 0, 0xff, 0xfe, 0, 0, n],
            port: 1,
        }
    }

    fn header(src: PortIdentity, seq: u16, domain: u8, two_step: bool) -> Header {
        Header {
            domain,
            two_step,
            correction_ns: 0,
            source: src,
            sequence: seq,
            log_interval: 0,
        }
    }

    fn announce(src: PortIdentity, priority1: u8, domain: u8) -> Message {
        Message {
            header: header(src, 0, domain, false),
            body: Body::Announce(Announce {
                utc_offset: 37,
                priority1,
                clock_class: 248,
                clock_accuracy: 0xfe,
                variance: 0xffff,
                priority2: 128,
                grandmaster: src.clock,
                steps_removed: 0,
                time_source: 0xa0,
                ptp_timescale: true,
            }),
        }
    }

    /// A simulated master `offset` ns ahead of local time, `delay` ns away, answering our
    /// Delay_Req. Drives one second: Sync (two-step or one-step) then the delay exchange.
    struct Sim {
        master: PortIdentity,
        offset: i64,
        delay: i64,
        seq: u16,
        two_step: bool,
        domain: u8,
    }

    impl Sim {
        fn second(&mut self, s: &mut Slave, now: i64) {
            s.handle(&announce(self.master, 128, self.domain), now);
            self.seq = self.seq.wrapping_add(1);
            let t1 = now + self.offset;
            let t2 = now + self.delay;
            if self.two_step {
                let sync = Message {
                    header: header(self.master, self.seq, self.domain, true),
                    body: Body::Sync { origin_ns: 0 },
                };
                s.handle(&sync, t2);
                let fu = Message {
                    header: header(self.master, self.seq, self.domain, false),
                    body: Body::FollowUp {
                        precise_origin_ns: t1,
                    },
                };
                s.handle(&fu, t2 + 1000);
            } else {
                let sync = Message {
                    header: header(self.master, self.seq, self.domain, false),
                    body: Body::Sync { origin_ns: t1 },
                };
                s.handle(&sync, t2);
            }
            let t3 = now + SEC / 2;
            let (_, out) = s.poll(t3);
            if let Some(out) = out {
                s.delay_req_sent(out.sequence, t3);
                let t4 = t3 + self.delay + self.offset;
                let resp = Message {
                    header: header(self.master, out.sequence, self.domain, false),
                    body: Body::DelayResp {
                        receive_ns: t4,
                        requesting: s.me,
                    },
                };
                s.handle(&resp, t3 + 2 * self.delay);
            }
        }
    }

    fn sim(master: PortIdentity, offset: i64, two_step: bool) -> Sim {
        Sim {
            master,
            offset,
            delay: 50_000,
            seq: 0,
            two_step,
            domain: 0,
        }
    }

    #[test]
    fn locks_to_a_two_step_and_a_one_step_master() {
        for two_step in [true, false] {
            let mut s = Slave::new(0, id(9));
            assert_eq!(s.state(), State::Listening);
            let m = id(1);
            s.handle(&announce(m, 128, 0), 0);
            assert_eq!(s.state(), State::Uncalibrated);
            let mut sim = sim(m, 37 * SEC + 123_456, two_step);
            for k in 1..=5 {
                sim.second(&mut s, k * SEC);
                s.handle(&announce(m, 128, 0), k * SEC);
            }
            assert_eq!(s.state(), State::Slave, "two_step {two_step}");
            let map = s.mapping().unwrap();
            let now = 6 * SEC;
            assert!((map.ptp_at(now) - (now + 37 * SEC + 123_456)).abs() < 10);
            assert!((s.delay_ns().unwrap() - 50_000.0).abs() < 1.0);
        }
    }

    #[test]
    fn a_rate_fitted_from_few_noisy_samples_widens_the_published_error() {
        // the master and this clock run at the same rate, but each Sync arrives up to 40 us
        // late at random (software timestamps on a loaded machine)
        let jitter = [0, 40_000, 5_000, 35_000, 10_000, 30_000, 0, 25_000];
        let run = |n: usize| {
            let mut s = Slave::new(0, id(9));
            let m = id(1);
            let mut sim = sim(m, 0, true);
            for k in 1..=n as i64 {
                s.handle(&announce(m, 128, 0), k * SEC);
                sim.offset = 5 * SEC - jitter[(k as usize - 1) % jitter.len()];
                sim.second(&mut s, k * SEC);
            }
            s.mapping().unwrap()
        };
        let (few, many) = (run(4), run(32));
        // the truth drifts by the fitted rate's error in a holdover: the error published
        // for a 10 s holdover must cover it
        for map in [few, many] {
            let holdover = Mapping {
                growth_ppb: holdover_growth(map.growth_ppb),
                ..map
            };
            let t = map.anchor_mono_ns + 10 * SEC;
            let off = (holdover.ptp_at(t) - (t + 5 * SEC)).abs() as f64;
            assert!(
                off < holdover.error_at(t),
                "{off} ns off, error says {} (rate {} ppb, growth {} ppb)",
                holdover.error_at(t),
                map.rate_ppb,
                holdover.growth_ppb
            );
        }
        assert!(few.growth_ppb > LOCKED_PPB, "{}", few.growth_ppb);
        assert!(few.growth_ppb > many.growth_ppb);
    }

    #[test]
    fn follows_a_rate_difference() {
        let mut s = Slave::new(0, id(9));
        let m = id(1);
        // master runs 20 ppm fast: offset grows 20 us per second
        let mut sim = sim(m, 0, true);
        for k in 1..=12 {
            s.handle(&announce(m, 128, 0), k * SEC);
            sim.offset = 5 * SEC + k * 20_000;
            sim.second(&mut s, k * SEC);
        }
        let map = s.mapping().unwrap();
        assert!((map.rate_ppb - 20_000.0).abs() < 50.0, "{}", map.rate_ppb);
        let t = 13 * SEC;
        let truth = t + 5 * SEC + 13 * 20_000;
        assert!(
            (map.ptp_at(t) - truth).abs() < 2_000,
            "{}",
            map.ptp_at(t) - truth
        );
    }

    #[test]
    fn ignores_other_domains_and_other_ports() {
        let mut s = Slave::new(0, id(9));
        s.handle(&announce(id(1), 128, 4), 0);
        assert_eq!(s.state(), State::Listening);
        assert_eq!(s.counters.other_domain, 1);
        s.handle(&announce(id(1), 128, 0), 0);
        // a second master with worse priority sends Syncs with a different time: ignored
        s.handle(&announce(id(2), 200, 0), 0);
        assert_eq!(s.master(), Some(id(1)));
        let mut good = sim(id(1), 1000 * SEC, true);
        let mut other = sim(id(2), 7 * SEC, true);
        for k in 1..=5 {
            good.second(&mut s, k * SEC);
            other.second(&mut s, k * SEC);
            s.handle(&announce(id(1), 128, 0), k * SEC);
            s.handle(&announce(id(2), 200, 0), k * SEC);
        }
        assert_eq!(s.state(), State::Slave);
        assert!(s.counters.not_our_master > 0);
        let now = 6 * SEC;
        assert!((s.mapping().unwrap().ptp_at(now) - (now + 1000 * SEC)).abs() < 10);
    }

    #[test]
    fn a_better_master_takes_over() {
        let mut s = Slave::new(0, id(9));
        s.handle(&announce(id(2), 200, 0), 0);
        assert_eq!(s.master(), Some(id(2)));
        s.handle(&announce(id(1), 100, 0), 0);
        assert_eq!(s.master(), Some(id(1)));
    }

    #[test]
    fn holds_over_when_the_master_goes_and_locks_again() {
        let mut s = Slave::new(0, id(9));
        let m = id(1);
        let mut sim = sim(m, 3 * SEC, true);
        for k in 1..=5 {
            s.handle(&announce(m, 128, 0), k * SEC);
            sim.second(&mut s, k * SEC);
        }
        assert_eq!(s.state(), State::Slave);
        let e_locked = s.mapping().unwrap().error_at(6 * SEC);
        // silence: after 3 announce intervals the master is gone
        let (changed, _) = s.poll(20 * SEC);
        assert!(changed);
        assert_eq!(s.state(), State::Holdover);
        let map = s.mapping().unwrap();
        assert!(map.error_at(30 * SEC) > e_locked + 40_000.0);
        assert!((map.ptp_at(30 * SEC) - (33 * SEC)).abs() < 10);
        // it comes back
        for k in 40..=45 {
            s.handle(&announce(m, 128, 0), k * SEC);
            sim.second(&mut s, k * SEC);
        }
        assert_eq!(s.state(), State::Slave);
    }

    #[test]
    fn drops_an_outlier_and_follows_a_jump() {
        let mut s = Slave::new(0, id(9));
        let m = id(1);
        let mut sim = sim(m, 3 * SEC, true);
        for k in 1..=6 {
            s.handle(&announce(m, 128, 0), k * SEC);
            sim.second(&mut s, k * SEC);
        }
        // one Sync 50 ms late: dropped
        sim.offset = 3 * SEC - 50_000_000;
        sim.second(&mut s, 7 * SEC);
        sim.offset = 3 * SEC;
        sim.second(&mut s, 8 * SEC);
        assert_eq!(s.counters.outliers, 1);
        assert!((s.mapping().unwrap().ptp_at(9 * SEC) - 12 * SEC).abs() < 10);
        // the master steps by +2 s and stays there
        sim.offset = 5 * SEC;
        for k in 9..=11 {
            sim.second(&mut s, k * SEC);
        }
        assert_eq!(s.counters.jumps, 1);
        assert!((s.mapping().unwrap().ptp_at(12 * SEC) - 17 * SEC).abs() < 100_000);
        for k in 12..=14 {
            sim.second(&mut s, k * SEC);
        }
        assert!((s.mapping().unwrap().ptp_at(15 * SEC) - 20 * SEC).abs() < 10);
        assert_eq!(s.state(), State::Slave);
    }

    #[test]
    fn stray_and_mismatched_messages_change_nothing() {
        let mut s = Slave::new(0, id(9));
        let m = id(1);
        s.handle(&announce(m, 128, 0), 0);
        // Follow_Up without Sync, Delay_Resp without request, Delay_Resp for another slave
        let fu = Message {
            header: header(m, 5, 0, false),
            body: Body::FollowUp {
                precise_origin_ns: 1,
            },
        };
        assert!(!s.handle(&fu, 1));
        let resp = Message {
            header: header(m, 5, 0, false),
            body: Body::DelayResp {
                receive_ns: 1,
                requesting: id(7),
            },
        };
        assert!(!s.handle(&resp, 2));
        let mine = Message {
            header: header(m, 5, 0, false),
            body: Body::DelayResp {
                receive_ns: 1,
                requesting: id(9),
            },
        };
        assert!(!s.handle(&mine, 3));
        assert_eq!(s.state(), State::Uncalibrated);
        assert!(s.mapping().is_none());
    }
}
