//! Encoding frames into HLS renditions: one [`sl_media::Sink`] per rendition, muxed by
//! libavformat's `hls` muxer, and a watch on each media playlist to measure when segments
//! get listed.
//!
//! Contract:
//! - every segment starts with a keyframe: keyframes are forced on every multiple of the
//!   segment time (by stream time) and scene-cut keyframes are off, so the muxer (which cuts
//!   at the first keyframe at or after each multiple of the segment time) cuts at every one;
//! - playlists are replaced atomically (the muxer's `temp_file` flag: written to `.tmp`, then
//!   renamed) and so are segments (a segment file appears only once it is complete);
//! - [`HlsWriter::finish`] (also run on drop) flushes the encoders and writes the trailers,
//!   which closes the last segment and ends event and VOD playlists with `#EXT-X-ENDLIST`;
//! - the master playlist of a ladder gives each variant `CODECS` read from its encoders (the
//!   H.264 SPS, the AAC profile), `FRAME-RATE`, and a `BANDWIDTH` that is a bound on the peak
//!   segment bit rate: at open, from the encoder's rate cap (VBV: `maxrate` plus `bufsize`
//!   spread over one segment, plus audio and 10% for the container); raised (master rewritten)
//!   if a listed segment measures higher; at finish, replaced by the measured peak, with the
//!   measured `AVERAGE-BANDWIDTH` (RFC 8216 4.3.4.2: once all segments exist, BANDWIDTH is
//!   their measured peak).

use std::collections::VecDeque;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use sl_cli::parse_bitrate;
use sl_frame::{AudioChunk, VideoFrame};
use sl_media::{Sink, SinkOptions};
use sl_wire::{StreamInfo, StreamKind};

use crate::HlsError;
use crate::codecs;
use crate::playlist::{
    MediaPlaylist, Variant, master_playlist, write_atomically, write_bytes_atomically,
};

/// How the media playlist grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlaylistType {
    /// A sliding window of the last N segments; older segment files are deleted.
    #[default]
    Live,
    /// Every segment stays listed; `#EXT-X-ENDLIST` at the end.
    Event,
    /// Like event, announced as `#EXT-X-PLAYLIST-TYPE:VOD`; FFmpeg writes it complete.
    Vod,
}

impl std::str::FromStr for PlaylistType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "live" => Ok(PlaylistType::Live),
            "event" => Ok(PlaylistType::Event),
            "vod" => Ok(PlaylistType::Vod),
            _ => Err(format!(
                "`{s}` is not a playlist type: use live, event or vod"
            )),
        }
    }
}

/// The segment container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SegmentType {
    /// MPEG-TS segments (`.ts`): plays everywhere.
    #[default]
    Ts,
    /// Fragmented MP4 / CMAF (`init.mp4` plus `.m4s` segments).
    Fmp4,
}

impl std::str::FromStr for SegmentType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "ts" | "mpegts" => Ok(SegmentType::Ts),
            "fmp4" | "cmaf" | "mp4" | "m4s" => Ok(SegmentType::Fmp4),
            _ => Err(format!("`{s}` is not a segment type: use ts or fmp4")),
        }
    }
}

impl SegmentType {
    fn extension(self) -> &'static str {
        match self {
            SegmentType::Ts => "ts",
            SegmentType::Fmp4 => "m4s",
        }
    }
}

/// One rung of a ladder: a size and a bit rate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rung {
    /// Folder and label (`720p`).
    pub name: String,
    pub width: u32,
    pub height: u32,
    /// Video bit rate in bits per second.
    pub bitrate: u64,
    /// Given by name (`720p`): the width follows the input's aspect ratio.
    pub fit_aspect: bool,
}

impl Rung {
    /// Parse a ladder: `1080p,720p,360p`, or sizes with rates: `1280x720@2500k,640x360@800k`.
    pub fn parse_ladder(s: &str) -> Result<Vec<Rung>, String> {
        let mut rungs = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (size, rate) = match part.split_once('@') {
                Some((a, b)) => (a, Some(b)),
                None => (part, None),
            };
            let (width, height) = match size.to_ascii_lowercase().as_str() {
                "2160p" | "4k" => (3840, 2160),
                "1440p" => (2560, 1440),
                "1080p" => (1920, 1080),
                "720p" => (1280, 720),
                "540p" => (960, 540),
                "480p" => (854, 480),
                "360p" => (640, 360),
                "240p" => (426, 240),
                other => {
                    let (w, h) = other.split_once('x').ok_or_else(|| {
                        format!("`{part}` is not a rung: use 720p or 1280x720, optionally @2500k")
                    })?;
                    let p = |v: &str| {
                        v.parse::<u32>()
                            .ok()
                            .filter(|n| (16..=8192).contains(n))
                            .ok_or_else(|| format!("`{part}`: size out of range"))
                    };
                    (p(w)?, p(h)?)
                }
            };
            // x264 wants even sizes for 4:2:0
            let (width, height) = (width & !1, height & !1);
            let bitrate = match rate {
                Some(r) => parse_bitrate(r)?,
                None => default_bitrate(width, height),
            };
            let fit_aspect = !size.to_ascii_lowercase().contains('x');
            let name = if fit_aspect {
                size.to_ascii_lowercase()
            } else {
                format!("{height}p")
            };
            if rungs.iter().any(|r: &Rung| r.name == name) {
                return Err(format!("the ladder lists {name} twice"));
            }
            rungs.push(Rung {
                name,
                width,
                height,
                bitrate,
                fit_aspect,
            });
        }
        if rungs.is_empty() {
            return Err("the ladder is empty: give e.g. 1080p,720p,360p".into());
        }
        rungs.sort_by_key(|r| std::cmp::Reverse(r.height));
        Ok(rungs)
    }
}

/// The ladder for an input of `source` size: named rungs take the input's aspect ratio, and
/// rungs taller than the input are left out (upscaling only costs bits), unless that would
/// leave none.
pub fn fit_ladder(ladder: &[Rung], source: Option<(u32, u32)>) -> Vec<Rung> {
    let Some((sw, sh)) = source.filter(|(w, h)| *w > 0 && *h > 0 && !ladder.is_empty()) else {
        return ladder.to_vec();
    };
    let mut fitted: Vec<Rung> = ladder
        .iter()
        .map(|r| {
            let mut r = r.clone();
            if r.fit_aspect {
                let w = (r.height as f64 * sw as f64 / sh as f64 / 2.0).round() as u32 * 2;
                r.width = w.max(2);
            }
            r
        })
        .collect();
    let kept: Vec<Rung> = fitted.iter().filter(|r| r.height <= sh).cloned().collect();
    if kept.is_empty() {
        log::warn!(
            "every rung of the ladder is taller than the {sw}x{sh} input: keeping the smallest, upscaled"
        );
        fitted.sort_by_key(|r| r.height);
        fitted.truncate(1);
        return fitted;
    }
    for r in fitted.iter().filter(|r| r.height > sh) {
        log::warn!(
            "ladder: leaving out {} ({}x{}): taller than the {sw}x{sh} input",
            r.name,
            r.width,
            r.height
        );
    }
    kept
}

/// Apple's authoring guidelines' ballpark for H.264 at 30 fps.
fn default_bitrate(width: u32, height: u32) -> u64 {
    let pixels = width as u64 * height as u64;
    match pixels {
        p if p >= 3840 * 2160 => 16_000_000,
        p if p >= 1920 * 1080 => 6_000_000,
        p if p >= 1280 * 720 => 3_000_000,
        p if p >= 854 * 480 => 1_400_000,
        p if p >= 640 * 360 => 800_000,
        _ => 400_000,
    }
}

/// Everything about an HLS output.
#[derive(Debug, Clone)]
pub struct HlsOptions {
    /// The output folder (created if missing).
    pub dir: PathBuf,
    /// Target segment duration in seconds.
    pub segment_time: f64,
    pub playlist_type: PlaylistType,
    /// Segments kept in a live playlist.
    pub list_size: u32,
    pub segment_type: SegmentType,
    /// Encoder settings (codec, preset, crf or bit rate, extra encoder and muxer options).
    /// `container`, `gop` and `fragmented` are set here.
    pub encode: SinkOptions,
    /// Renditions; empty: one, at the input's size, in the folder itself.
    pub ladder: Vec<Rung>,
}

impl Default for HlsOptions {
    fn default() -> Self {
        HlsOptions {
            dir: PathBuf::from("out"),
            segment_time: 2.0,
            playlist_type: PlaylistType::Live,
            list_size: 6,
            segment_type: SegmentType::Ts,
            encode: SinkOptions::default(),
            ladder: Vec::new(),
        }
    }
}

/// The media (or, for a ladder, master) playlist's name in the output folder.
pub const PLAYLIST: &str = "index.m3u8";

/// Whether `name` is one of the files a previous run of the writer leaves in a folder:
/// `index.m3u8`, `seg_<run>_<n>.ts|m4s`, `init_<run>.mp4` and their `.tmp` forms.
fn is_ours(name: &str) -> bool {
    let name = name.strip_suffix(".tmp").unwrap_or(name);
    name == PLAYLIST
        || name.starts_with("init_") && name.ends_with(".mp4")
        || name.starts_with("seg_") && (name.ends_with(".ts") || name.ends_with(".m4s"))
}

/// A tag unique to this run, in segment names: segments are immutable under their name, so
/// HTTP caches may keep them, and a new run never reuses an old name.
fn run_tag() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{:x}", t.as_secs() * 1000 + u64::from(t.subsec_millis()))
}

/// The smallest MPEG-TS segment libavformat recognises as MPEG-TS: its probe
/// (`mpegts_probe`) counts the data in 204-byte units and wants more than 10 of them, so 12
/// packets of 188 bytes. A last segment of two or three small frames (a Ctrl-C just after a
/// segment boundary) is 10 packets: complete and decodable, yet `ffprobe` and `ffmpeg -i`
/// said "End of file" (or guessed another format) unless told `-f mpegts`.
const MIN_TS_SEGMENT: u64 = 12 * TS_PACKET;
const TS_PACKET: u64 = 188;

/// Pad a short MPEG-TS segment up to [`MIN_TS_SEGMENT`] with null packets (PID 0x1FFF, which
/// every demuxer discards, ISO/IEC 13818-1 2.4.3.3), replacing it atomically. Returns its new
/// length.
fn pad_ts(path: &Path) -> std::io::Result<u64> {
    let mut bytes = std::fs::read(path)?;
    if bytes.len() as u64 >= MIN_TS_SEGMENT || !(bytes.len() as u64).is_multiple_of(TS_PACKET) {
        return Ok(bytes.len() as u64);
    }
    let mut null = [0xffu8; TS_PACKET as usize];
    // sync byte, PID 0x1FFF, payload only, continuity counter 0
    null[..4].copy_from_slice(&[0x47, 0x1f, 0xff, 0x10]);
    while (bytes.len() as u64) < MIN_TS_SEGMENT {
        bytes.extend_from_slice(&null);
    }
    write_bytes_atomically(path, &bytes)?;
    Ok(bytes.len() as u64)
}

/// Glass-to-playlist latency of one listed segment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Listed {
    /// Its duration (EXTINF).
    pub duration: f64,
    /// From its first frame entering the writer to the playlist listing it.
    pub first_frame: f64,
    /// From its last frame entering the writer to the playlist listing it.
    pub last_frame: f64,
}

/// Follows one media playlist: which segments appeared, and when.
#[derive(Debug)]
struct Watch {
    path: PathBuf,
    stamp: Option<(u64, i64, i64, u64)>,
    /// Segments ever listed (media sequence + listed count).
    listed: u64,
    /// Where the listed segments end on the stream's timeline (seconds from the first frame).
    listed_end: f64,
    /// Frames not yet in a listed segment: (seconds from the first frame, when it entered).
    pending: VecDeque<(f64, Instant)>,
    log: Vec<Listed>,
    /// Bit rates of the listed segments (sizes read from disk as they are listed).
    rates: Rates,
    /// MPEG-TS segments: a listed one too short for demuxers to recognise is padded.
    ts: bool,
}

/// Segment bit rates of a media playlist as RFC 8216 4.3.4.2 defines them: the peak is the
/// highest rate of any contiguous run of segments lasting 0.5 to 1.5 times the target
/// duration (so a short last segment holding one keyframe does not count alone); the
/// average is all bytes over all seconds.
#[derive(Debug, Default)]
pub(crate) struct Rates {
    /// (duration, bytes) of the last segments that can still be in a run with a later one.
    recent: VecDeque<(f64, u64)>,
    peak: Option<f64>,
    bytes: u64,
    secs: f64,
}

impl Rates {
    /// Add the next segment of a playlist with target duration `target` seconds.
    pub(crate) fn add(&mut self, duration: f64, bytes: u64, target: f64) {
        self.bytes += bytes;
        self.secs += duration;
        self.recent.push_back((duration, bytes));
        // the new runs are those ending with this segment
        let (mut d, mut b) = (0.0, 0u64);
        for &(sd, sb) in self.recent.iter().rev() {
            d += sd;
            b += sb;
            if d > 1.5 * target {
                break;
            }
            if d >= 0.5 * target && d > 0.0 {
                let rate = b as f64 * 8.0 / d;
                self.peak = Some(self.peak.map_or(rate, |p| p.max(rate)));
            }
        }
        // a later run that takes the oldest segment spans all of `recent` and more
        while !self.recent.is_empty()
            && self.recent.iter().map(|r| r.0).sum::<f64>() >= 1.5 * target
        {
            self.recent.pop_front();
        }
    }

    /// The peak segment bit rate in bits per second; for a stream too short for any run of
    /// half a target duration, its average.
    pub(crate) fn peak(&self) -> Option<u64> {
        self.peak
            .or_else(|| self.average_f64())
            .map(|r| r.ceil() as u64)
    }

    /// The average segment bit rate in bits per second.
    pub(crate) fn average(&self) -> Option<u64> {
        self.average_f64().map(|r| r.ceil() as u64)
    }

    fn average_f64(&self) -> Option<f64> {
        (self.secs > 0.0).then(|| self.bytes as f64 * 8.0 / self.secs)
    }
}

impl Watch {
    fn new(path: PathBuf, ts: bool) -> Watch {
        Watch {
            ts,
            path,
            stamp: None,
            listed: 0,
            listed_end: 0.0,
            pending: VecDeque::new(),
            log: Vec::new(),
            rates: Rates::default(),
        }
    }

    /// Look at the playlist (a `stat`, and a read only when it changed).
    fn poll(&mut self, name: &str) {
        let Ok(meta) = std::fs::metadata(&self.path) else {
            return;
        };
        let stamp = (meta.ino(), meta.mtime(), meta.mtime_nsec(), meta.len());
        if self.stamp == Some(stamp) {
            return;
        }
        self.stamp = Some(stamp);
        let now = Instant::now();
        let Ok(text) = std::fs::read_to_string(&self.path) else {
            return;
        };
        let Ok(pl) = MediaPlaylist::parse(&text) else {
            return;
        };
        let total = pl.media_sequence + pl.segments.len() as u64;
        if total <= self.listed {
            return;
        }
        let new = (total - self.listed).min(pl.segments.len() as u64) as usize;
        let target = pl.target_duration.max(1) as f64;
        for seg in &pl.segments[pl.segments.len() - new..] {
            // listed segments are complete (the muxer renames them into place first)
            let file = self.path.with_file_name(&seg.uri);
            match std::fs::metadata(&file) {
                Ok(m) => {
                    let mut len = m.len();
                    if self.ts && len < MIN_TS_SEGMENT {
                        match pad_ts(&file) {
                            Ok(padded) => len = padded,
                            Err(e) => log::warn!("{}: cannot pad it: {e}", file.display()),
                        }
                    }
                    self.rates.add(seg.duration, len, target)
                }
                _ => log::debug!("{name}{}: listed but not found; not measured", seg.uri),
            }
            self.listed_end += seg.duration;
            // frames within a millisecond of the boundary belong to the next segment
            let end = self.listed_end - 0.001;
            let mut first = None;
            let mut last = None;
            while let Some(&(t, at)) = self.pending.front() {
                if t >= end {
                    break;
                }
                first.get_or_insert(at);
                last = Some(at);
                self.pending.pop_front();
            }
            if let (Some(first), Some(last)) = (first, last) {
                let l = Listed {
                    duration: seg.duration,
                    first_frame: now.duration_since(first).as_secs_f64(),
                    last_frame: now.duration_since(last).as_secs_f64(),
                };
                log::info!(
                    "{name}{} listed ({:.3} s): glass-to-playlist {:.3} s from its first frame, {:.3} s from its last",
                    seg.uri,
                    l.duration,
                    l.first_frame,
                    l.last_frame
                );
                self.log.push(l);
            }
        }
        self.listed = total;
    }
}

/// One rendition: its encoder/muxer and the watch on its playlist.
struct Rendition {
    label: String,
    sink: Sink,
    watch: Watch,
    /// Its entry in the master playlist, for a ladder.
    variant: Option<usize>,
}

impl std::fmt::Debug for Rendition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rendition")
            .field("label", &self.label)
            .field("sink", &self.sink)
            .finish()
    }
}

/// What a finished writer reports.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub video_frames: u64,
    /// Glass-to-playlist latency of every listed segment, of every rendition.
    pub listed: Vec<Listed>,
}

/// Encodes frames into one or more HLS renditions in a folder.
#[derive(Debug)]
pub struct HlsWriter {
    dir: PathBuf,
    renditions: Vec<Rendition>,
    /// A ladder's master playlist and what it lists.
    master: Option<(PathBuf, Vec<Variant>)>,
    origin: Option<f64>,
    finished: bool,
    /// A VOD playlist: written as an event playlist, announced as VOD when finished.
    vod: bool,
}

impl HlsWriter {
    /// Create the folder, clear what an earlier run left in it (only files named like ours),
    /// open every rendition's encoder and muxer, and write the master playlist for a ladder.
    pub fn open(
        opts: &HlsOptions,
        video: Option<&StreamInfo>,
        audio: Option<&StreamInfo>,
    ) -> Result<HlsWriter, HlsError> {
        // under a second, FFmpeg 5.1's hls muxer writes #EXT-X-TARGETDURATION:0 (it rounds the
        // longest EXTINF to the nearest integer); sub-second pieces are LL-HLS parts, not
        // segments
        if !(opts.segment_time >= 1.0 && opts.segment_time <= 60.0) {
            return Err(HlsError::Options(format!(
                "a segment time of {} s is out of range (1 to 60)",
                opts.segment_time
            )));
        }
        if opts.playlist_type == PlaylistType::Live && opts.list_size < 2 {
            return Err(HlsError::Options(
                "a live playlist needs at least 2 segments (--list-size)".into(),
            ));
        }
        let vparams = video.and_then(StreamInfo::video);
        if video.is_none() && audio.is_none() {
            return Err(HlsError::Options(
                "nothing to stream: no video or audio".into(),
            ));
        }
        if !opts.ladder.is_empty() && vparams.is_none() {
            return Err(HlsError::Options("a ladder needs a video stream".into()));
        }
        std::fs::create_dir_all(&opts.dir).map_err(|e| HlsError::io(&opts.dir, e))?;
        clear_ours(&opts.dir)?;
        let mut renditions = Vec::new();
        let mut variants = Vec::new();
        let mut dirs = vec![opts.dir.clone()];
        let opened = Self::open_renditions(
            opts,
            video,
            audio,
            &mut renditions,
            &mut variants,
            &mut dirs,
        )
        .and_then(|()| {
            if variants.is_empty() {
                return Ok(None);
            }
            let path = opts.dir.join(PLAYLIST);
            write_atomically(&path, &master_playlist(&variants))
                .map_err(|e| HlsError::io(&path, e))?;
            Ok(Some((path, variants)))
        });
        let master = match opened {
            Ok(m) => m,
            Err(e) => {
                // Nothing is published by a writer that could not start: the renditions
                // opened so far are closed, then every playlist, init and segment file
                // written is removed (a placeholder playlist left behind promised a live
                // stream that would never come).
                drop(renditions);
                for d in dirs.iter().rev() {
                    let _ = clear_ours(d);
                }
                return Err(e);
            }
        };

        Ok(HlsWriter {
            dir: opts.dir.clone(),
            renditions,
            master,
            origin: None,
            finished: false,
            vod: opts.playlist_type == PlaylistType::Vod,
        })
    }

    /// Open every rendition's encoder and muxer (pushed to `renditions`, with their
    /// master playlist entries in `variants` and their folders in `dirs`).
    fn open_renditions(
        opts: &HlsOptions,
        video: Option<&StreamInfo>,
        audio: Option<&StreamInfo>,
        renditions: &mut Vec<Rendition>,
        variants: &mut Vec<Variant>,
        dirs: &mut Vec<PathBuf>,
    ) -> Result<(), HlsError> {
        let vparams = video.and_then(StreamInfo::video);
        // Keyframes are forced on the segment grid by stream time (Sink::force_keyframes_every),
        // which holds for variable or unknown frame rates too; the encoder's own interval is
        // twice a segment, a fallback that a constant-rate source never reaches.
        let fps = vparams.map(|v| v.fps).filter(|f| f.is_valid());
        let gop = (fps.map_or(30.0, |f| f.as_f64()) * opts.segment_time * 2.0)
            .round()
            .max(1.0) as u32;

        let run = run_tag();
        let ladder = fit_ladder(&opts.ladder, vparams.map(|v| (v.width, v.height)));
        let plan: Vec<Option<&Rung>> = if ladder.is_empty() {
            vec![None]
        } else {
            ladder.iter().map(Some).collect()
        };
        for rung in plan {
            let dir = match rung {
                Some(r) => opts.dir.join(&r.name),
                None => opts.dir.clone(),
            };
            if rung.is_some() {
                std::fs::create_dir_all(&dir).map_err(|e| HlsError::io(&dir, e))?;
                clear_ours(&dir)?;
                dirs.push(dir.clone());
            }
            let mut info = video.cloned();
            if let (Some(r), Some(StreamKind::Video(v))) =
                (rung, info.as_mut().map(|i| &mut i.kind))
            {
                v.width = r.width;
                v.height = r.height;
            }
            let mut enc = opts.encode.clone();
            enc.container = Some("hls".into());
            enc.fragmented = false;
            enc.gop = Some(gop);
            if let Some(r) = rung {
                enc.video_bitrate = Some(r.bitrate);
                // a capped rate keeps each rendition within its BANDWIDTH
                enc.codec_options
                    .push(("maxrate".into(), r.bitrate.to_string()));
                enc.codec_options
                    .push(("bufsize".into(), (r.bitrate * 2).to_string()));
            }
            let codec = enc.video_codec.clone().unwrap_or_else(|| "libx264".into());
            if codec.starts_with("libx26") {
                // Keyframes only on the segment grid, so every segment is one GOP. Closed
                // GOPs: with the global header the hls muxer asks for, FFmpeg 5.1's libx264
                // made every keyframe after the first a non-IDR I frame with a recovery-point
                // SEI (seen with trace_headers), which the mpegts muxer does not prefix with
                // SPS/PPS: segments after the first did not decode on their own.
                // Options given with -x come later and win.
                enc.codec_options
                    .insert(0, ("sc_threshold".into(), "0".into()));
                enc.codec_options
                    .insert(0, ("flags".into(), "+cgop".into()));
                // the forced keyframes (below) as IDRs, not recovery points
                enc.codec_options
                    .insert(0, ("forced-idr".into(), "1".into()));
            }
            enc.video_codec = Some(codec);
            let mut fo = muxer_options(opts, &dir, &run);
            fo.append(&mut enc.format_options);
            enc.format_options = fo;
            let playlist = dir.join(PLAYLIST);
            let path = playlist
                .to_str()
                .ok_or_else(|| HlsError::Options(format!("{} is not UTF-8", dir.display())))?
                .to_string();
            // a valid playlist with no segment yet, until the muxer lists the first one (the
            // hls muxer writes its own files: nothing opens this path before it does)
            write_atomically(&playlist, &empty_playlist(opts.segment_time))
                .map_err(|e| HlsError::io(&playlist, e))?;
            let mut sink = Sink::open(&path, info.as_ref(), audio, &enc)?;
            sink.force_keyframes_every(Some(opts.segment_time));
            let label = match rung {
                Some(r) => format!("{}/", r.name),
                None => String::new(),
            };
            let mut variant = None;
            if let (Some(r), Some(v)) = (rung, vparams) {
                let audio_rate = if sink.has_audio() {
                    opts.encode.audio_bitrate.unwrap_or(128_000)
                } else {
                    0
                };
                let (maxrate, bufsize) = rate_cap(&enc.codec_options, r.bitrate);
                // Over any stretch of t seconds a VBV-capped encoder emits at most
                // maxrate * t + bufsize bits: over one segment, maxrate + bufsize / segment.
                // Audio on top, and about 10% for the container.
                let video_peak = maxrate + (bufsize as f64 / opts.segment_time).ceil() as u64;
                let codecs =
                    codecs::codecs(sink.video_encoded().as_ref(), sink.audio_encoded().as_ref());
                if codecs.is_none() {
                    log::warn!(
                        "{}: cannot tell the RFC 6381 codec strings of {:?} and {:?}: the master \
                         playlist leaves CODECS out",
                        r.name,
                        sink.video_encoded().map(|e| e.codec),
                        sink.audio_encoded().map(|e| e.codec),
                    );
                }
                variant = Some(variants.len());
                variants.push(Variant {
                    bandwidth: (video_peak + audio_rate) * 11 / 10,
                    average_bandwidth: Some((r.bitrate.min(maxrate) + audio_rate) * 11 / 10),
                    codecs,
                    width: r.width,
                    height: r.height,
                    frame_rate: v.fps.is_valid().then(|| v.fps.as_f64()),
                    uri: format!("{}/{PLAYLIST}", r.name),
                });
            }
            renditions.push(Rendition {
                label,
                sink,
                watch: Watch::new(playlist, opts.segment_type == SegmentType::Ts),
                variant,
            });
        }
        Ok(())
    }

    /// The output folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether audio is encoded (false if there was none or the encoder refused it).
    pub fn has_audio(&self) -> bool {
        self.renditions.iter().any(|r| r.sink.has_audio())
    }

    /// Encode one video frame into every rendition.
    pub fn write_video(&mut self, frame: &VideoFrame) -> Result<(), HlsError> {
        let secs = frame.info.pts_secs();
        let t = secs - *self.origin.get_or_insert(secs);
        let now = Instant::now();
        for r in &mut self.renditions {
            r.watch.pending.push_back((t, now));
            r.sink.write_video(frame)?;
            r.watch.poll(&r.label);
        }
        self.raise_bandwidth()
    }

    /// Raise a variant's BANDWIDTH (and rewrite the master playlist) if its segments so far
    /// measure above it. Players that already read the master keep the old value; new ones
    /// get the measured one.
    fn raise_bandwidth(&mut self) -> Result<(), HlsError> {
        let Some((path, variants)) = self.master.as_mut() else {
            return Ok(());
        };
        let mut raised = false;
        for r in &self.renditions {
            let (Some(i), Some(peak)) = (r.variant, r.watch.rates.peak()) else {
                continue;
            };
            let v = &mut variants[i];
            if peak > v.bandwidth {
                log::info!(
                    "{}: a segment run measured {peak} bit/s, over the BANDWIDTH={} announced: \
                     raising it in the master playlist",
                    r.label,
                    v.bandwidth
                );
                v.bandwidth = peak;
                raised = true;
            }
        }
        if raised {
            write_atomically(path, &master_playlist(variants))
                .map_err(|e| HlsError::io(path, e))?;
        }
        Ok(())
    }

    /// Once every segment exists: the master playlist with each variant's measured peak as
    /// BANDWIDTH and its measured average as AVERAGE-BANDWIDTH.
    fn measured_master(&mut self) -> Result<(), HlsError> {
        let Some((path, variants)) = self.master.as_mut() else {
            return Ok(());
        };
        for r in &self.renditions {
            let Some(i) = r.variant else { continue };
            let (Some(peak), Some(average)) = (r.watch.rates.peak(), r.watch.rates.average())
            else {
                continue;
            };
            let v = &mut variants[i];
            log::info!(
                "{}: measured peak segment bit rate {peak} bit/s, average {average} bit/s \
                 (announced at start: BANDWIDTH={}, AVERAGE-BANDWIDTH={})",
                r.label,
                v.bandwidth,
                v.average_bandwidth.unwrap_or(0)
            );
            v.bandwidth = peak;
            v.average_bandwidth = Some(average);
        }
        write_atomically(path, &master_playlist(variants)).map_err(|e| HlsError::io(path, e))
    }

    /// Encode one audio chunk into every rendition.
    pub fn write_audio(&mut self, chunk: &AudioChunk) -> Result<(), HlsError> {
        for r in &mut self.renditions {
            r.sink.write_audio(chunk)?;
        }
        Ok(())
    }

    /// The first write failure of any rendition (a full disk...), if any.
    pub fn write_failure(&self) -> Option<String> {
        self.renditions.iter().find_map(|r| r.sink.write_failure())
    }

    /// Flush the encoders and write the trailers: the last segment is closed and listed, event
    /// and VOD playlists get `#EXT-X-ENDLIST`. Every rendition is finished even if one fails;
    /// the first error is returned. Safe to call twice.
    pub fn finish(&mut self) -> Result<Summary, HlsError> {
        let mut first_err = None;
        let mut summary = Summary::default();
        for r in &mut self.renditions {
            if !self.finished
                && let Err(e) = r.sink.finish()
            {
                first_err.get_or_insert(HlsError::from(kept(e, &r.watch.path)));
            }
            r.watch.poll(&r.label);
            summary.video_frames = summary.video_frames.max(r.sink.video_frames());
            summary.listed.extend(r.watch.log.iter().copied());
        }
        if !self.finished && self.vod && first_err.is_none() && self.write_failure().is_none() {
            for r in &self.renditions {
                if let Err(e) = announce_vod(&r.watch.path) {
                    first_err.get_or_insert(e);
                }
            }
        }
        // after a write failure the master keeps what it announced (its writes could fail
        // the same way, and a measured peak of a cut-off stream says little)
        if !self.finished
            && self.write_failure().is_none()
            && let Err(e) = self.measured_master()
        {
            first_err.get_or_insert(e);
        }
        self.finished = true;
        match first_err {
            Some(e) => Err(e),
            None => Ok(summary),
        }
    }
}

impl Drop for HlsWriter {
    fn drop(&mut self) {
        if !self.finished
            && let Err(e) = self.finish()
        {
            log::warn!("{e}");
        }
    }
}

/// Turn a finished event playlist into a VOD one (same segments, `#EXT-X-ENDLIST`).
fn announce_vod(path: &Path) -> Result<(), HlsError> {
    let text = std::fs::read_to_string(path).map_err(|e| HlsError::io(path, e))?;
    let vod = text.replace("#EXT-X-PLAYLIST-TYPE:EVENT", "#EXT-X-PLAYLIST-TYPE:VOD");
    write_atomically(path, &vod).map_err(|e| HlsError::io(path, e))
}

/// A rendition's write failure, with what its playlist still lists: the last playlist
/// written whole stays in place (sl-media never renames a half-written one over it), and
/// lists only segments written whole.
fn kept(e: sl_media::MediaError, playlist: &Path) -> sl_media::MediaError {
    if e.hint.is_none() {
        return e;
    }
    let listed = std::fs::read_to_string(playlist)
        .ok()
        .and_then(|t| MediaPlaylist::parse(&t).ok());
    let said = match listed {
        Some(p) => format!(
            "{} keeps the last complete playlist: {} segments, {:.1} s{}",
            playlist.display(),
            p.segments.len(),
            p.duration() + 0.0,
            if p.ended {
                ""
            } else {
                ", without an end marker"
            }
        ),
        None => format!("{} could not be read back", playlist.display()),
    };
    let hint = format!("{}\n  {said}", e.hint.as_deref().unwrap_or_default());
    e.hint(hint)
}

/// The effective VBV cap of a rendition: the last `maxrate` and `bufsize` in the encoder
/// options (later options win, as in libavcodec's dictionary), `bitrate` and twice it if
/// absent or unreadable.
fn rate_cap(codec_options: &[(String, String)], bitrate: u64) -> (u64, u64) {
    let last = |key: &str| {
        codec_options
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| parse_bitrate(v).ok())
    };
    let maxrate = last("maxrate").unwrap_or(bitrate);
    (maxrate, last("bufsize").unwrap_or(maxrate * 2))
}

/// A live playlist with no segment: what players find before the first segment is listed
/// (they reload it, as for any live playlist).
fn empty_playlist(segment_time: f64) -> String {
    format!(
        "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:0\n",
        segment_time.ceil().max(1.0) as u64
    )
}

/// The hls muxer's options for one rendition folder.
fn muxer_options(opts: &HlsOptions, dir: &Path, run: &str) -> Vec<(String, String)> {
    let mut flags = vec!["temp_file", "independent_segments", "program_date_time"];
    let mut o = vec![
        ("hls_time".to_string(), format!("{}", opts.segment_time)),
        (
            "hls_segment_filename".to_string(),
            dir.join(format!("seg_{run}_%05d.{}", opts.segment_type.extension()))
                .to_string_lossy()
                .into_owned(),
        ),
    ];
    match opts.playlist_type {
        PlaylistType::Live => {
            flags.push("delete_segments");
            o.push(("hls_list_size".into(), opts.list_size.to_string()));
            // segments leave the disk one segment after they leave the playlist (RFC 8216
            // 6.2.2: a client may still be fetching one that was just dropped)
            o.push(("hls_delete_threshold".into(), "1".into()));
        }
        PlaylistType::Event => {
            o.push(("hls_list_size".into(), "0".into()));
            o.push(("hls_playlist_type".into(), "event".into()));
        }
        PlaylistType::Vod => {
            // Written as an event playlist while it grows, made VOD when finished: FFmpeg's
            // own vod type writes the playlist only at the end, so a failure (a full disk)
            // left none listing the segments already written. See `HlsWriter::finish`.
            o.push(("hls_list_size".into(), "0".into()));
            o.push(("hls_playlist_type".into(), "event".into()));
        }
    }
    if opts.segment_type == SegmentType::Fmp4 {
        o.push(("hls_segment_type".into(), "fmp4".into()));
        o.push(("hls_fmp4_init_filename".into(), format!("init_{run}.mp4")));
    }
    o.push(("hls_flags".into(), flags.join("+")));
    o
}

/// Remove what an earlier run left in `dir`: only the playlist, init and segment names the
/// writer uses, so nothing else in the folder is touched.
fn clear_ours(dir: &Path) -> Result<(), HlsError> {
    let entries = std::fs::read_dir(dir).map_err(|e| HlsError::io(dir, e))?;
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if is_ours(name) && e.file_type().is_ok_and(|t| t.is_file()) {
            std::fs::remove_file(e.path()).map_err(|err| HlsError::io(&e.path(), err))?;
            removed += 1;
        }
    }
    if removed > 0 {
        log::info!(
            "removed {removed} playlist and segment files an earlier run left in {}",
            dir.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladders_parse() {
        let l = Rung::parse_ladder("360p,1080p, 720p").unwrap();
        let names: Vec<_> = l.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["1080p", "720p", "360p"]);
        let l = Rung::parse_ladder("1280x720@2500k").unwrap();
        assert_eq!(l[0].bitrate, 2_500_000);
        assert_eq!((l[0].width, l[0].height), (1280, 720));
        assert!(Rung::parse_ladder("").is_err());
        assert!(Rung::parse_ladder("720p,720p").is_err());
        assert!(Rung::parse_ladder("huge").is_err());
        assert!(Rung::parse_ladder("720p@fast").is_err());
    }

    #[test]
    fn ladders_fit_the_input() {
        let l = Rung::parse_ladder("1080p,720p,360p,200x100@100k").unwrap();
        // 4:3 input of 960x720: 1080p dropped, named rungs at 4:3, explicit sizes kept
        let f = fit_ladder(&l, Some((960, 720)));
        let sizes: Vec<_> = f.iter().map(|r| (r.width, r.height)).collect();
        assert_eq!(sizes, [(960, 720), (480, 360), (200, 100)]);
        // all taller than a tiny input: the smallest is kept
        let f = fit_ladder(&Rung::parse_ladder("1080p,720p").unwrap(), Some((320, 240)));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].height, 720);
        assert_eq!(fit_ladder(&l, None), l);
        assert!(fit_ladder(&[], Some((320, 240))).is_empty());
    }

    #[test]
    fn only_our_files_are_ours() {
        for n in [
            "index.m3u8",
            "init_18f3a.mp4",
            "seg_18f3a_00001.ts",
            "seg_18f3a_00002.m4s",
            "index.m3u8.tmp",
            "seg_18f3a_00003.ts.tmp",
        ] {
            assert!(is_ours(n), "{n}");
        }
        for n in [
            "notes.txt",
            "seg_00001.mp4",
            "master.m3u8",
            "video.ts",
            "init.mp4.bak",
        ] {
            assert!(!is_ours(n), "{n}");
        }
    }

    #[test]
    fn peak_is_the_fastest_run_of_half_to_one_and_a_half_targets() {
        let mut r = Rates::default();
        assert_eq!((r.peak(), r.average()), (None, None));
        // 2 s segments of 250 kB (1 Mbit/s), one of 500 kB (2 Mbit/s), then a 0.2 s tail of
        // 100 kB (4 Mbit/s alone, but shorter than half the target: only runs count)
        for (d, b) in [
            (2.0, 250_000),
            (2.0, 500_000),
            (2.0, 250_000),
            (0.2, 100_000),
        ] {
            r.add(d, b, 2.0);
        }
        assert_eq!(r.peak(), Some(2_000_000));
        assert_eq!(
            r.average(),
            Some(((1_100_000.0 * 8.0) / 6.2f64).ceil() as u64)
        );
        // 1 s segments against a 2 s target: runs of one to three segments
        let mut r = Rates::default();
        for b in [100_000, 400_000, 100_000, 100_000] {
            r.add(1.0, b, 2.0);
        }
        assert_eq!(r.peak(), Some(3_200_000));
        assert!(r.recent.len() <= 2, "{:?}", r.recent);
        // too short for any run: the average
        let mut r = Rates::default();
        r.add(0.5, 10_000, 2.0);
        assert_eq!(r.peak(), Some(160_000));
    }

    #[test]
    fn rate_cap_reads_the_last_options() {
        let o = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(rate_cap(&[], 1_000_000), (1_000_000, 2_000_000));
        assert_eq!(
            rate_cap(
                &o(&[("maxrate", "1M"), ("bufsize", "2M"), ("maxrate", "1500k")]),
                1_000_000
            ),
            (1_500_000, 2_000_000)
        );
    }

    #[test]
    fn short_ts_segments_are_padded_with_null_packets() {
        let dir = std::env::temp_dir().join(format!("sl-hls-pad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let seg = dir.join("seg.ts");
        let mut packet = [0u8; 188];
        packet[0] = 0x47;
        std::fs::write(&seg, packet.repeat(10)).unwrap();
        assert_eq!(pad_ts(&seg).unwrap(), MIN_TS_SEGMENT);
        let bytes = std::fs::read(&seg).unwrap();
        assert_eq!(bytes.len() as u64, MIN_TS_SEGMENT);
        assert_eq!(&bytes[..1880], &packet.repeat(10)[..], "the data is kept");
        for p in bytes[1880..].chunks(188) {
            assert_eq!(&p[..4], &[0x47, 0x1f, 0xff, 0x10], "null packets");
        }
        // long enough, or not whole packets: left alone
        std::fs::write(&seg, packet.repeat(12)).unwrap();
        assert_eq!(pad_ts(&seg).unwrap(), 12 * 188);
        std::fs::write(&seg, [0x47; 100]).unwrap();
        assert_eq!(pad_ts(&seg).unwrap(), 100);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn types_parse() {
        assert_eq!("VOD".parse::<PlaylistType>(), Ok(PlaylistType::Vod));
        assert_eq!("cmaf".parse::<SegmentType>(), Ok(SegmentType::Fmp4));
        assert!("dash".parse::<SegmentType>().is_err());
    }
}
