//! Link statistics: a periodic line on stderr and a summary (text or `--json`) at the end.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::proto::Msg;

/// Latency samples kept (a ring), enough for percentiles of a long run.
const MAX_SAMPLES: usize = 100_000;

#[derive(Debug)]
pub struct Stats {
    pub role: &'static str,
    start: Instant,
    pub frames: AtomicU64,
    pub bytes: AtomicU64,
    /// Frames a sender's queue dropped (superseded under `latest`).
    pub dropped: AtomicU64,
    /// Frames in flight reset because a newer one had arrived.
    pub reset_frames: AtomicU64,
    /// Frames a receiver discarded because a newer one of their stream was already written.
    pub stale_frames: AtomicU64,
    /// Frames a `block` sender lost with a connection: sent, or queued for it, but never
    /// written out by the peer.
    pub lost_frames: AtomicU64,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Last frame number per stream, for gaps.
    last: BTreeMap<u16, u64>,
    missing: u64,
    latencies_ns: Vec<i64>,
    next_sample: usize,
    conns: Vec<quinn::Connection>,
    /// A connection was made at some point.
    connected: bool,
    /// Path counters of connections already gone.
    done_sent: u64,
    done_lost: u64,
    last_rtt_ms: Option<f64>,
    /// The largest UDP payload the path took, as path MTU discovery found it.
    last_mtu: Option<u16>,
    /// The congestion window (bytes that may be in flight) when last looked at, and how
    /// often the congestion controller has cut it.
    last_cwnd: Option<u64>,
    congestion_events: u64,
}

impl Stats {
    pub fn new(role: &'static str) -> Stats {
        Stats {
            role,
            start: Instant::now(),
            frames: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            reset_frames: AtomicU64::new(0),
            stale_frames: AtomicU64::new(0),
            lost_frames: AtomicU64::new(0),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a connection was ever made (else a summary line has nothing to say).
    pub fn connected(&self) -> bool {
        self.inner().connected
    }

    /// Watch a connection's RTT and loss.
    pub fn add_conn(&self, c: &quinn::Connection) {
        let mut inner = self.inner();
        inner.connected = true;
        inner.conns.push(c.clone());
        // gaps are counted within a connection: the next may come from a restarted source,
        // numbering afresh (and a block sender counts what a lost connection took)
        inner.last.clear();
    }

    pub fn count_sent(&self, m: &Msg) {
        if m.is_frame() {
            self.frames.fetch_add(1, Ordering::Relaxed);
        }
        self.bytes.fetch_add(m.len, Ordering::Relaxed);
    }

    pub fn count_received(&self, m: &Msg) {
        self.bytes.fetch_add(m.len, Ordering::Relaxed);
        let Some(n) = m.frame_number else {
            return;
        };
        self.frames.fetch_add(1, Ordering::Relaxed);
        let mut inner = self.inner();
        if let Some(&last) = inner.last.get(&m.stream)
            && n > last + 1
        {
            inner.missing += n - last - 1;
        }
        // a lower number is a restarted sender: count gaps from there
        inner.last.insert(m.stream, n);
        if let Some(t) = m.capture_time_ns {
            let lat = now_ns() - t;
            if inner.latencies_ns.len() < MAX_SAMPLES {
                inner.latencies_ns.push(lat);
            } else {
                let i = inner.next_sample % MAX_SAMPLES;
                inner.latencies_ns[i] = lat;
            }
            inner.next_sample += 1;
        }
    }

    /// Frames missing in the frame numbers written (dropped anywhere upstream of here).
    pub fn missing(&self) -> u64 {
        self.inner().missing
    }

    fn path(&self) -> (u64, u64, Option<f64>) {
        let mut inner = self.inner();
        let mut sent = inner.done_sent;
        let mut lost = inner.done_lost;
        let mut rtt = None;
        let mut keep = Vec::new();
        for c in std::mem::take(&mut inner.conns) {
            let s = c.stats();
            rtt = Some(c.rtt().as_secs_f64() * 1e3);
            inner.last_mtu = Some(s.path.current_mtu);
            inner.last_cwnd = Some(s.path.cwnd);
            inner.congestion_events = s.path.congestion_events;
            sent += s.path.sent_packets;
            lost += s.path.lost_packets;
            if c.close_reason().is_some() {
                inner.done_sent += s.path.sent_packets;
                inner.done_lost += s.path.lost_packets;
            } else {
                keep.push(c);
            }
        }
        inner.conns = keep;
        if rtt.is_some() {
            inner.last_rtt_ms = rtt;
        }
        (sent, lost, inner.last_rtt_ms)
    }

    /// One status line.
    pub fn line(&self) -> String {
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        let frames = self.frames.load(Ordering::Relaxed);
        let bytes = self.bytes.load(Ordering::Relaxed);
        let (sent, lost, rtt) = self.path();
        let loss = if sent > 0 {
            100.0 * lost as f64 / sent as f64
        } else {
            0.0
        };
        format!(
            "{} frames, {:.1} fps, {:.1} Mbit/s, rtt {}, loss {:.2}%, dropped {}, missing {}",
            frames,
            frames as f64 / secs,
            bytes as f64 * 8.0 / secs / 1e6,
            rtt.map(|r| format!("{r:.2} ms"))
                .unwrap_or_else(|| "-".into()),
            loss,
            self.dropped.load(Ordering::Relaxed)
                + self.reset_frames.load(Ordering::Relaxed)
                + self.stale_frames.load(Ordering::Relaxed)
                + self.lost_frames.load(Ordering::Relaxed),
            self.missing(),
        )
    }

    /// The end-of-run summary as JSON.
    pub fn json(&self) -> serde_json::Value {
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        let frames = self.frames.load(Ordering::Relaxed);
        let bytes = self.bytes.load(Ordering::Relaxed);
        let (sent, lost, rtt) = self.path();
        let mut lat: Vec<i64> = self.inner().latencies_ns.clone();
        lat.sort_unstable();
        let pct = |p: f64| -> Option<f64> {
            if lat.is_empty() {
                return None;
            }
            let i = ((lat.len() - 1) as f64 * p).round() as usize;
            Some(lat[i] as f64 / 1e6)
        };
        serde_json::json!({
            "role": self.role,
            "frames": frames,
            "bytes": bytes,
            "seconds": secs,
            "fps": frames as f64 / secs,
            "mbit_per_s": bytes as f64 * 8.0 / secs / 1e6,
            "rtt_ms": rtt,
            "path_mtu": self.inner().last_mtu,
            "cwnd_bytes": self.inner().last_cwnd,
            "congestion_events": self.inner().congestion_events,
            "packets_sent": sent,
            "packets_lost": lost,
            "loss_percent": if sent > 0 { 100.0 * lost as f64 / sent as f64 } else { 0.0 },
            "dropped_frames": self.dropped.load(Ordering::Relaxed),
            "reset_frames": self.reset_frames.load(Ordering::Relaxed),
            "stale_frames": self.stale_frames.load(Ordering::Relaxed),
            "lost_frames": self.lost_frames.load(Ordering::Relaxed),
            "missing_frames": self.missing(),
            "latency_ms": {
                "samples": lat.len(),
                "p50": pct(0.5),
                "p99": pct(0.99),
                "max": lat.last().map(|&l| l as f64 / 1e6),
            },
        })
    }
}

/// Wall-clock time in ns since the Unix epoch (the clock capture times use).
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}
