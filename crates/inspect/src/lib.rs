//! Statistics over a stream, built from message headers only (payloads are never decoded,
//! so inspecting costs nothing next to moving the bytes).
//!
//! Per stream: kind, format and geometry (and every change of them), frame count, the
//! timestamp range and the rate it implies, the arrival rate, bytes and bitrate, and three
//! kinds of trouble: **drops** (frame numbers that skip), **gaps** (a presentation timestamp
//! more than 1.5 frame durations after the previous one) and **reordering** (a timestamp
//! earlier than the previous one).

pub mod latency;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

use serde::Serialize;
use sl_cli::human_bytes;
use sl_frame::Rational;
use sl_wire::{ALL_STREAMS, MessageHead, StreamInfo, StreamKind};

/// How the stream ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Ending {
    /// Still reading.
    Open,
    /// The end-of-stream message arrived.
    Clean,
    /// The input stopped without one.
    Truncated,
}

#[derive(Debug, Default)]
struct Stream {
    info: Option<StreamInfo>,
    kind: &'static str,
    formats: Vec<String>,
    frames: u64,
    bytes: u64,
    time_base: Option<Rational>,
    first_pts: Option<i64>,
    last_pts: Option<i64>,
    max_end: Option<i64>,
    last_duration: i64,
    last_frame_number: Option<u64>,
    dropped: u64,
    gaps: u64,
    reordered: u64,
    keyframes: u64,
    first_arrival: Option<Instant>,
    last_arrival: Option<Instant>,
    ended: bool,
    audio_samples: u64,
    /// ffprobe-style fields of the first format seen.
    shape: Option<Shape>,
    latency: latency::Latency,
}

/// What a stream carries, as ffprobe names it.
#[derive(Clone, Debug, Default, PartialEq)]
struct Shape {
    codec_name: String,
    width: Option<u32>,
    height: Option<u32>,
    pix_fmt: Option<String>,
    sample_fmt: Option<String>,
    sample_rate: Option<u32>,
    channels: Option<u16>,
}

/// FFmpeg's name for one of our pixel formats (`pix_fmt`).
fn ffmpeg_pix_fmt(name: &str) -> String {
    match name {
        "i420" => "yuv420p",
        "gray8" => "gray",
        other => other,
    }
    .to_string()
}

fn video_shape(format: &str, coded: Option<&str>, width: u32, height: u32) -> Shape {
    Shape {
        codec_name: coded.unwrap_or("rawvideo").to_string(),
        width: Some(width),
        height: Some(height),
        pix_fmt: coded.is_none().then(|| ffmpeg_pix_fmt(format)),
        ..Shape::default()
    }
}

fn audio_shape(format: sl_frame::SampleFormat, planar: bool, rate: u32, channels: u16) -> Shape {
    let f = format.to_string();
    // FFmpeg's sample formats: s16, s16p, flt, fltp, dbl...
    let base = match f.as_str() {
        "f32" => "flt",
        "f64" => "dbl",
        other => other,
    };
    Shape {
        codec_name: "pcm".into(),
        sample_fmt: Some(format!("{base}{}", if planar { "p" } else { "" })),
        sample_rate: Some(rate),
        channels: Some(channels),
        ..Shape::default()
    }
}

fn gcd(a: u128, b: u128) -> u128 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// `num/den` in lowest terms, as ffprobe writes rates (`30/1`, `30000/1001`).
fn rational_string(num: u128, den: u128) -> Option<String> {
    if den == 0 {
        return None;
    }
    let g = gcd(num, den).max(1);
    Some(format!("{}/{}", num / g, den / g))
}

/// Round to a microunit, so a rate computed as 30.000000000000004 reads 30.
fn tidy(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

/// Accumulates statistics from message headers.
#[derive(Debug)]
pub struct Inspector {
    streams: BTreeMap<u16, Stream>,
    messages: u64,
    bytes: u64,
    ending: Ending,
    start: Instant,
    clock: Clock,
}

/// Reads (system now, PTP now if known) in ns, for latency.
struct Clock(Box<dyn Fn() -> (i64, Option<i64>) + Send>);

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

impl Default for Inspector {
    fn default() -> Self {
        Inspector::new()
    }
}

/// The per-stream part of a [`Report`].
#[derive(Debug, Clone, Serialize)]
pub struct StreamReport {
    pub index: u16,
    pub kind: &'static str,
    pub source_id: String,
    /// Format descriptions in order of appearance (`rgba 1920x1080`); more than one means the
    /// format or size changed mid-stream.
    pub formats: Vec<String>,
    pub nominal_fps: Option<f64>,
    pub time_base: Option<String>,
    pub frames: u64,
    pub keyframes: u64,
    pub bytes: u64,
    pub first_pts: Option<i64>,
    pub last_pts: Option<i64>,
    /// Seconds from the first timestamp to the end of the last frame.
    pub duration: Option<f64>,
    /// Frames per second implied by the timestamps.
    pub fps: Option<f64>,
    /// Frames per second as they arrived (wall clock).
    pub arrival_fps: Option<f64>,
    /// Bits per second over the stream's duration.
    pub bitrate: Option<f64>,
    pub dropped: u64,
    pub gaps: u64,
    pub reordered: u64,
    pub ended: bool,
    pub audio_samples: Option<u64>,
    /// As ffprobe: `rawvideo`, `h264`, `mjpeg`, `pcm`.
    pub codec_name: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// FFmpeg's name of the pixel format (`rgba`, `yuv420p`, `nv12`, `gray`...).
    pub pix_fmt: Option<String>,
    /// FFmpeg's name of the sample format (`s16`, `fltp`...).
    pub sample_fmt: Option<String>,
    pub sample_rate: Option<u32>,
    pub channels: Option<u16>,
    /// The nominal frame rate as a rational (`30/1`, `30000/1001`), as ffprobe's.
    pub r_frame_rate: Option<String>,
    /// The rate the timestamps imply, as an exact rational in lowest terms.
    pub avg_frame_rate: Option<String>,
    /// Glass-to-glass latency (see [`latency`]); absent when no frame carries a time.
    pub latency: Option<latency::LatencyReport>,
}

/// Everything `sl-info` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub streams: Vec<StreamReport>,
    pub messages: u64,
    pub bytes: u64,
    pub ending: Ending,
    pub wall_seconds: f64,
}

fn describe(info: &StreamInfo) -> String {
    match &info.kind {
        StreamKind::Video(v) => format!("{} {}x{}", v.format.name(), v.width, v.height),
        StreamKind::Audio(a) => format!(
            "{} {} Hz {} ch{}",
            a.format.name(),
            a.sample_rate,
            a.channels,
            if a.planar { " planar" } else { "" }
        ),
        StreamKind::Data => "data".into(),
    }
}

impl Inspector {
    pub fn new() -> Inspector {
        Inspector {
            streams: BTreeMap::new(),
            messages: 0,
            bytes: 16,
            ending: Ending::Open,
            start: Instant::now(),
            clock: Clock(Box::new(|| (sl_frame::now_ns(), None))),
        }
    }

    /// Measure latency with `clock` (system now, PTP now) instead of the system clock alone.
    pub fn with_clock(mut self, clock: impl Fn() -> (i64, Option<i64>) + Send + 'static) -> Self {
        self.clock = Clock(Box::new(clock));
        self
    }

    /// One line on the latency of every stream that has one, for the live meter.
    pub fn latency_line(&self) -> Option<String> {
        let parts: Vec<String> = self
            .streams
            .iter()
            .filter_map(|(i, s)| Some(format!("#{i} {}", s.latency.report()?.line())))
            .collect();
        (!parts.is_empty()).then(|| parts.join("  "))
    }

    /// Count one message: its decoded header, its payload length, its size on the wire.
    pub fn observe(&mut self, head: &MessageHead, payload_len: u64, wire_len: u64) {
        self.messages += 1;
        self.bytes += wire_len;
        let now = Instant::now();
        match head {
            MessageHead::End {
                stream: ALL_STREAMS,
            } => {
                self.ending = Ending::Clean;
                for s in self.streams.values_mut() {
                    s.ended = true;
                }
            }
            MessageHead::End { stream } => self.streams.entry(*stream).or_default().ended = true,
            MessageHead::Stream { stream, info } => {
                let s = self.streams.entry(*stream).or_default();
                s.kind = info.kind_name();
                let d = describe(info);
                if s.formats.last() != Some(&d) {
                    s.formats.push(d);
                }
                if s.shape.is_none() {
                    s.shape = match &info.kind {
                        StreamKind::Video(v) => Some(match v.format {
                            sl_wire::VideoFormat::Raw(p) => {
                                video_shape(p.name(), None, v.width, v.height)
                            }
                            sl_wire::VideoFormat::Coded(c) => {
                                video_shape("", Some(codec_name(c.name())), v.width, v.height)
                            }
                        }),
                        StreamKind::Audio(a) => {
                            Some(audio_shape(a.format, a.planar, a.sample_rate, a.channels))
                        }
                        StreamKind::Data => None,
                    };
                }
                s.info = Some(info.clone());
            }
            MessageHead::Unknown { .. } => {}
            _ => {
                let Some(info) = head.frame_info() else {
                    return;
                };
                let s = self.streams.entry(head.stream()).or_default();
                let (kind, fmt) = match head {
                    MessageHead::Video {
                        format,
                        width,
                        height,
                        ..
                    } => {
                        s.shape.get_or_insert_with(|| {
                            video_shape(format.name(), None, *width, *height)
                        });
                        ("video", Some(format!("{} {width}x{height}", format.name())))
                    }
                    MessageHead::Packet {
                        codec,
                        width,
                        height,
                        ..
                    } => {
                        s.shape.get_or_insert_with(|| {
                            video_shape("", Some(codec_name(codec.name())), *width, *height)
                        });
                        ("video", Some(format!("{} {width}x{height}", codec.name())))
                    }
                    MessageHead::Audio {
                        format,
                        sample_rate,
                        channels,
                        planar,
                        samples,
                        ..
                    } => {
                        s.audio_samples += *samples as u64;
                        s.shape.get_or_insert_with(|| {
                            audio_shape(*format, *planar, *sample_rate, *channels)
                        });
                        let p = if *planar { " planar" } else { "" };
                        (
                            "audio",
                            Some(format!("{format} {sample_rate} Hz {channels} ch{p}")),
                        )
                    }
                    _ => ("data", None),
                };
                if s.kind.is_empty() {
                    s.kind = kind;
                }
                if let Some(f) = fmt
                    && s.formats.last() != Some(&f)
                {
                    s.formats.push(f);
                }
                s.frames += 1;
                s.bytes += payload_len;
                if info.keyframe {
                    s.keyframes += 1;
                }
                let (sys_now, ptp_now) = (self.clock.0)();
                s.latency.observe(info, sys_now, ptp_now);
                s.first_arrival.get_or_insert(now);
                s.last_arrival = Some(now);
                if let Some(prev) = s.last_frame_number
                    && info.frame_number > prev + 1
                {
                    s.dropped += info.frame_number - prev - 1;
                }
                s.last_frame_number = Some(info.frame_number);
                // timestamps: compare in the stream's first time base
                let tb = *s.time_base.get_or_insert(info.time_base);
                let pts = info.time_base.rescale(info.pts, tb);
                let dur = info.time_base.rescale(info.duration, tb);
                let expected = if dur > 0 {
                    dur
                } else {
                    nominal_frame_ticks(s.info.as_ref(), tb).unwrap_or(0)
                };
                if let Some(last) = s.last_pts {
                    if pts < last {
                        s.reordered += 1;
                    } else if expected > 0 && (pts - last) * 2 > expected * 3 {
                        s.gaps += 1;
                    }
                }
                s.first_pts.get_or_insert(pts);
                s.last_pts = Some(pts);
                s.last_duration = expected;
                let end = pts + expected;
                s.max_end = Some(s.max_end.map_or(end, |m| m.max(end)));
            }
        }
    }

    /// The input ended without an end-of-stream message.
    pub fn mark_truncated(&mut self) {
        if self.ending == Ending::Open {
            self.ending = Ending::Truncated;
        }
    }

    pub fn ending(&self) -> Ending {
        self.ending
    }

    pub fn report(&self) -> Report {
        let streams = self
            .streams
            .iter()
            .map(|(&index, s)| {
                let tb = s.time_base;
                let duration = match (tb, s.first_pts, s.max_end) {
                    (Some(tb), Some(a), Some(b)) if b > a => Some(tb.ticks_to_secs(b - a)),
                    _ => None,
                };
                let fps = match (tb, s.first_pts, s.last_pts) {
                    (Some(tb), Some(a), Some(b)) if b > a && s.kind == "video" => {
                        Some((s.frames - 1) as f64 / tb.ticks_to_secs(b - a))
                    }
                    _ => None,
                };
                let arrival_fps = match (s.first_arrival, s.last_arrival) {
                    (Some(a), Some(b)) if b > a && s.frames > 1 => {
                        Some((s.frames - 1) as f64 / (b - a).as_secs_f64())
                    }
                    _ => None,
                };
                let nominal = s.info.as_ref().and_then(|i| match &i.kind {
                    StreamKind::Video(v) if v.fps.is_valid() => Some(v.fps),
                    _ => None,
                });
                let nominal_fps = nominal.map(|r| tidy(r.as_f64()));
                let avg_frame_rate = match (tb, s.first_pts, s.last_pts) {
                    (Some(tb), Some(a), Some(b)) if b > a && s.kind == "video" => rational_string(
                        (s.frames - 1) as u128 * tb.den as u128,
                        (b - a) as u128 * tb.num as u128,
                    ),
                    _ => None,
                };
                let shape = s.shape.clone().unwrap_or_default();
                StreamReport {
                    index,
                    kind: if s.kind.is_empty() { "unknown" } else { s.kind },
                    source_id: s
                        .info
                        .as_ref()
                        .map(|i| i.source_id.clone())
                        .unwrap_or_default(),
                    formats: s.formats.clone(),
                    nominal_fps,
                    time_base: tb.map(|t| format!("{}/{}", t.num, t.den)),
                    frames: s.frames,
                    keyframes: s.keyframes,
                    bytes: s.bytes,
                    first_pts: s.first_pts,
                    last_pts: s.last_pts,
                    duration,
                    fps: fps.map(tidy),
                    arrival_fps: arrival_fps.map(tidy),
                    bitrate: duration
                        .filter(|d| *d > 0.0)
                        .map(|d| (s.bytes as f64 * 8.0 / d).round()),
                    dropped: s.dropped,
                    gaps: s.gaps,
                    reordered: s.reordered,
                    ended: s.ended,
                    audio_samples: (s.kind == "audio").then_some(s.audio_samples),
                    codec_name: s.shape.as_ref().map(|sh| sh.codec_name.clone()),
                    width: shape.width,
                    height: shape.height,
                    pix_fmt: shape.pix_fmt,
                    sample_fmt: shape.sample_fmt,
                    sample_rate: shape.sample_rate,
                    channels: shape.channels,
                    r_frame_rate: nominal
                        .and_then(|r| rational_string(r.num as u128, r.den as u128)),
                    avg_frame_rate,
                    latency: s.latency.report(),
                }
            })
            .collect();
        Report {
            streams,
            messages: self.messages,
            bytes: self.bytes,
            ending: self.ending,
            wall_seconds: self.start.elapsed().as_secs_f64(),
        }
    }
}

/// Ticks of one frame at the stream's nominal rate, in `tb`.
fn nominal_frame_ticks(info: Option<&StreamInfo>, tb: Rational) -> Option<i64> {
    let StreamKind::Video(v) = &info?.kind else {
        return None;
    };
    if !v.fps.is_valid() {
        return None;
    }
    Some(v.fps.inverse().rescale(1, tb)).filter(|&t| t > 0)
}

/// FFmpeg's codec name for one of ours.
fn codec_name(ours: &str) -> &'static str {
    match ours {
        "h264" => "h264",
        "jpeg" => "mjpeg",
        _ => "unknown",
    }
}

impl Report {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serialises")
    }

    /// The human-readable report with every line under a heading naming who reports it, for
    /// a report that shares stderr with others (`sl-info --pass` in a pipe of stages).
    pub fn to_text_labelled(&self, label: &str) -> String {
        let mut o = format!("{label}:\n");
        for line in self.to_text().lines() {
            let _ = writeln!(o, "  {line}");
        }
        o
    }

    /// The human-readable report.
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        for s in &self.streams {
            let _ = write!(o, "stream {}: {}", s.index, s.kind);
            if let Some(f) = s.formats.first() {
                let _ = write!(o, " {f}");
            }
            if let Some(fps) = s.nominal_fps {
                let _ = write!(o, " @ {}", trim(fps));
            }
            if !s.source_id.is_empty() {
                let _ = write!(o, ", source \"{}\"", s.source_id);
            }
            o.push('\n');
            if s.formats.len() > 1 {
                let _ = writeln!(o, "  format changes: {}", s.formats.join(" -> "));
            }
            let _ = writeln!(
                o,
                "  frames: {} ({} dropped, {} gaps, {} reordered)",
                s.frames, s.dropped, s.gaps, s.reordered
            );
            if let (Some(d), Some(a), Some(b)) = (s.duration, s.first_pts, s.last_pts) {
                let _ = writeln!(
                    o,
                    "  duration: {d:.3} s (pts {a} .. {b}, time base {})",
                    s.time_base.as_deref().unwrap_or("?")
                );
            }
            if let Some(samples) = s.audio_samples {
                let _ = writeln!(o, "  samples: {samples}");
            }
            let mut rates = Vec::new();
            if let Some(f) = s.fps {
                rates.push(format!("{f:.2} fps by timestamps"));
            }
            if let Some(f) = s.arrival_fps {
                rates.push(format!("{f:.2} fps as received"));
            }
            if !rates.is_empty() {
                let _ = writeln!(o, "  rate: {}", rates.join(", "));
            }
            let _ = write!(o, "  size: {}", human_bytes(s.bytes as f64));
            if let Some(b) = s.bitrate {
                let _ = write!(o, ", {:.1} Mbit/s", b / 1e6);
            }
            o.push('\n');
            if let Some(l) = &s.latency {
                let _ = writeln!(o, "  {}", l.line());
                if let Some(off) = &l.ptp_offset {
                    let _ = writeln!(
                        o,
                        "  ptp_time - capture time: p50 {:.3} ms (min {:.3}, max {:.3})",
                        off.p50_ms, off.min_ms, off.max_ms
                    );
                }
            }
        }
        let end = match self.ending {
            Ending::Clean => "clean (end-of-stream received)",
            Ending::Truncated => "TRUNCATED (no end-of-stream: the upstream stage stopped early)",
            Ending::Open => "open",
        };
        let _ = writeln!(
            o,
            "total: {} messages, {} in {:.2} s; end: {end}",
            self.messages,
            human_bytes(self.bytes as f64),
            self.wall_seconds
        );
        o
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sl_frame::{FrameInfo, PixelFormat};

    fn video(n: u64, pts: i64) -> MessageHead {
        MessageHead::Video {
            stream: 0,
            info: FrameInfo {
                frame_number: n,
                pts,
                time_base: Rational::new(1, 30),
                duration: 1,
                ..Default::default()
            },
            format: PixelFormat::Rgba,
            width: 4,
            height: 4,
            color: Default::default(),
            strides: vec![16],
        }
    }

    #[test]
    fn counts_drops_gaps_and_reordering() {
        let mut i = Inspector::new();
        let info = StreamInfo::raw_video(PixelFormat::Rgba, 4, 4, Rational::new(30, 1));
        i.observe(&MessageHead::Stream { stream: 0, info }, 0, 16);
        for (n, pts) in [(0, 0), (1, 1), (2, 2), (5, 5), (6, 4), (7, 7)] {
            i.observe(&video(n, pts), 64, 200);
        }
        i.observe(
            &MessageHead::End {
                stream: ALL_STREAMS,
            },
            0,
            16,
        );
        let r = i.report();
        let s = &r.streams[0];
        assert_eq!(s.frames, 6);
        assert_eq!(s.dropped, 2); // 3 and 4 never came
        assert_eq!(s.gaps, 2); // 2 -> 5 and 4 -> 7
        assert_eq!(s.reordered, 1); // 5 -> 4
        assert_eq!(s.duration, Some(8.0 / 30.0));
        assert_eq!(r.ending, Ending::Clean);
        assert!(r.to_text().contains("2 dropped, 2 gaps, 1 reordered"));
        assert!(r.to_json().contains("\"ending\": \"clean\""));
    }

    #[test]
    fn json_reads_like_ffprobe() {
        let mut i = Inspector::new();
        let info = StreamInfo::raw_video(PixelFormat::I420, 64, 48, Rational::new(30000, 1001));
        i.observe(&MessageHead::Stream { stream: 0, info }, 0, 16);
        // 10 frames at 1001/30000 s each, in a 1/90000 time base (3003 ticks apart)
        for n in 0..10u64 {
            let mut h = video(n, 0);
            if let MessageHead::Video { info, format, .. } = &mut h {
                info.time_base = Rational::new(1, 90000);
                info.pts = n as i64 * 3003;
                info.duration = 3003;
                *format = PixelFormat::I420;
            }
            i.observe(&h, 64, 200);
        }
        let j: serde_json::Value = serde_json::from_str(&i.report().to_json()).unwrap();
        let s = &j["streams"][0];
        assert_eq!(s["width"], 64);
        assert_eq!(s["height"], 48);
        assert_eq!(s["pix_fmt"], "yuv420p");
        assert_eq!(s["codec_name"], "rawvideo");
        assert_eq!(s["r_frame_rate"], "30000/1001");
        assert_eq!(s["avg_frame_rate"], "30000/1001");
        assert_eq!(s["fps"], 29.97003);
        let t = i.report().to_text_labelled("sl-info (pass)");
        assert!(t.starts_with("sl-info (pass):\n  stream 0: video"), "{t}");
    }
}
