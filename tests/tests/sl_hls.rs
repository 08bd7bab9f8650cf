//! sl-hls end to end: real pipelines into real folders, judged by ffprobe (segment durations
//! against EXTINF, target duration, keyframes, continuous timestamps, increasing DTS, the live
//! window) and by Debian's Chromium playing the stream through sl-hls's own HTTP server, with
//! hls.js and natively. The tools are installed by scripts/setup.sh; a missing one fails the
//! test with a hint rather than skipping it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sl_e2e::{Pipeline, bin, free_tcp_port, require, run_cmd, scratch_dir, wait_for_segments};

/// A media playlist as the test reads it, independently of sl-hls's own parser.
#[derive(Debug, Default)]
struct Playlist {
    target: f64,
    sequence: u64,
    map: Option<String>,
    kind: Option<String>,
    ended: bool,
    segments: Vec<(f64, String)>,
    text: String,
}

fn read_playlist(path: &Path) -> Playlist {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert!(text.starts_with("#EXTM3U"), "not a playlist:\n{text}");
    let mut p = Playlist {
        text: text.clone(),
        ..Playlist::default()
    };
    let mut dur = None;
    for l in text.lines() {
        if let Some(v) = l.strip_prefix("#EXT-X-TARGETDURATION:") {
            p.target = v.trim().parse().unwrap();
        } else if let Some(v) = l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            p.sequence = v.trim().parse().unwrap();
        } else if let Some(v) = l.strip_prefix("#EXT-X-PLAYLIST-TYPE:") {
            p.kind = Some(v.trim().to_string());
        } else if let Some(v) = l.strip_prefix("#EXT-X-MAP:URI=\"") {
            p.map = Some(v.split('"').next().unwrap().to_string());
        } else if let Some(v) = l.strip_prefix("#EXTINF:") {
            dur = Some(v.split(',').next().unwrap().parse::<f64>().unwrap());
        } else if l.trim() == "#EXT-X-ENDLIST" {
            p.ended = true;
        } else if !l.starts_with('#') && !l.trim().is_empty() {
            p.segments
                .push((dur.take().expect("EXTINF before URI"), l.trim().to_string()));
        }
    }
    p
}

/// What ffprobe says about one segment's video packets.
#[derive(Debug)]
struct Probed {
    first_pts: f64,
    end_pts: f64,
    first_is_key: bool,
    /// Video packets (frames).
    packets: usize,
    dts: Vec<f64>,
    width: u32,
    streams: Vec<String>,
}

fn probe(file: &Path) -> Probed {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .arg("packet=pts_time,dts_time,duration_time,flags")
        .args(["-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe {}: {:?}",
        file.display(),
        out
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut pts = Vec::new();
    let mut dts = Vec::new();
    let mut first_is_key = None;
    let mut end: f64 = f64::MIN;
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = l.split(',').collect();
        let p: f64 = f[0].parse().unwrap_or_else(|_| panic!("pts in {l}"));
        let d: f64 = f[1].parse().unwrap_or_else(|_| panic!("dts in {l}"));
        let du: f64 = f[2].parse().unwrap_or(0.0);
        first_is_key.get_or_insert(f[3].starts_with('K'));
        pts.push(p);
        dts.push(d);
        end = end.max(p + du);
    }
    assert!(!pts.is_empty(), "{} has no video packets", file.display());
    // the decoder's view: a segment must decode on its own (SPS/PPS in it)
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_name,width"])
        .args(["-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("ffprobe runs");
    let streams: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().trim_end_matches(',').to_string())
        .filter(|l| !l.is_empty())
        .collect();
    let width = streams
        .iter()
        .find(|s| s.starts_with("h264"))
        .and_then(|s| s.split(',').nth(1))
        .and_then(|w| w.parse().ok())
        .unwrap_or(0);
    Probed {
        first_pts: pts.iter().cloned().fold(f64::MAX, f64::min),
        end_pts: end,
        first_is_key: first_is_key.unwrap(),
        packets: pts.len(),
        dts,
        width,
        streams,
    }
}

/// Check a rendition folder's playlist and every segment in it; returns the playlist and the
/// probes. `fmp4` segments are probed with their init segment in front.
fn check_rendition(dir: &Path) -> (Playlist, Vec<Probed>) {
    let pl = read_playlist(&dir.join("index.m3u8"));
    assert!(!pl.segments.is_empty(), "no segment listed:\n{}", pl.text);
    let mut probes = Vec::new();
    for (i, (extinf, uri)) in pl.segments.iter().enumerate() {
        assert!(
            !uri.contains('/') && !uri.contains(".."),
            "segment URIs are plain names: {uri}"
        );
        let path = dir.join(uri);
        assert!(path.is_file(), "listed segment {uri} is missing");
        let file = match &pl.map {
            Some(init) => {
                let joined = dir.join(format!("probe-{i}.mp4"));
                let mut bytes = std::fs::read(dir.join(init)).expect("init segment");
                bytes.extend(std::fs::read(&path).unwrap());
                std::fs::write(&joined, bytes).unwrap();
                joined
            }
            None => path.clone(),
        };
        let p = probe(&file);
        if pl.map.is_some() {
            let _ = std::fs::remove_file(&file);
        }
        let measured = p.end_pts - p.first_pts;
        assert!(
            (measured - extinf).abs() <= 0.05,
            "{uri}: EXTINF {extinf} but its video lasts {measured:.3} s"
        );
        // RFC 8216 4.3.3.1: EXTINF rounded to the nearest integer <= TARGETDURATION
        assert!(
            extinf.round() <= pl.target,
            "{uri}: EXTINF {extinf} over the target duration {}",
            pl.target
        );
        assert!(p.first_is_key, "{uri} does not start with a keyframe");
        assert!(
            p.width > 0,
            "{uri} does not decode on its own: {:?}",
            p.streams
        );
        for w in p.dts.windows(2) {
            assert!(w[1] > w[0], "{uri}: DTS does not increase: {w:?}");
        }
        if let Some(prev) = probes.last() {
            let prev: &Probed = prev;
            assert!(
                (p.first_pts - prev.end_pts).abs() <= 0.05,
                "{uri}: starts at {:.3} s but the previous segment ends at {:.3} s",
                p.first_pts,
                prev.end_pts
            );
            assert!(
                p.dts[0] > *prev.dts.last().unwrap(),
                "{uri}: DTS goes back across segments"
            );
        }
        probes.push(p);
    }
    let leftovers: Vec<_> = files(dir, ".tmp");
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    (pl, probes)
}

fn files(dir: &Path, suffix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(suffix))
        .collect();
    v.sort();
    v
}

fn hls_args<'a>(dir: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![dir.to_str().unwrap()];
    v.extend_from_slice(extra);
    v
}

#[test]
fn ts_event_is_finalised_at_end_of_stream() {
    require("ffprobe");
    let dir = scratch_dir("hls-ts-event");
    let out = Pipeline::new()
        .sl(
            "sl-test",
            &["--fast", "-p", "box", "-n", "300", "-s", "320x240"],
        )
        .sl("sl-hls", &hls_args(&dir, &["--playlist-type", "event"]))
        .timeout(Duration::from_secs(120))
        .run();
    out.assert_success();
    assert_eq!(out.last().stderr, "", "a clean run is quiet");
    let (pl, _) = check_rendition(&dir);
    assert!(pl.ended, "no ENDLIST:\n{}", pl.text);
    assert_eq!(pl.kind.as_deref(), Some("EVENT"));
    assert_eq!(pl.sequence, 0);
    assert_eq!(pl.segments.len(), 5, "{}", pl.text);
    assert_eq!(pl.target, 2.0);
    let total: f64 = pl.segments.iter().map(|s| s.0).sum();
    assert!(
        (total - 10.0).abs() < 0.05,
        "300 frames at 30 fps listed as {total} s"
    );
}

#[test]
fn vod_with_audio_in_fmp4_and_ts() {
    require("ffprobe");
    require("ffmpeg");
    let dir = scratch_dir("hls-fmp4-vod");
    let input = dir.join("in.mp4");
    let (code, _, err) = run_cmd(
        Path::new("ffmpeg"),
        &[
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "7",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-c:a",
            "aac",
            "-shortest",
            input.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "ffmpeg: {err}");
    for (seg, ext) in [("fmp4", ".m4s"), ("ts", ".ts")] {
        let out_dir = dir.join(seg);
        let out = Pipeline::new()
            .sl("sl-file", &[input.to_str().unwrap()])
            .sl(
                "sl-hls",
                &hls_args(&out_dir, &["--playlist-type", "vod", "--segment-type", seg]),
            )
            .timeout(Duration::from_secs(120))
            .run();
        out.assert_success();
        let (pl, probes) = check_rendition(&out_dir);
        assert!(pl.ended);
        assert_eq!(pl.kind.as_deref(), Some("VOD"));
        assert_eq!(pl.map.is_some(), seg == "fmp4", "EXT-X-MAP:\n{}", pl.text);
        assert!(pl.segments.iter().all(|s| s.1.ends_with(ext)));
        for p in &probes {
            assert!(
                p.streams.iter().any(|s| s.starts_with("aac")),
                "{seg}: no audio in a segment: {:?}",
                p.streams
            );
        }
        let total: f64 = pl.segments.iter().map(|s| s.0).sum();
        assert!((total - 7.0).abs() < 0.1, "{seg}: 7 s listed as {total} s");
    }
}

#[test]
fn live_window_keeps_n_segments_and_deletes_older_files() {
    require("ffprobe");
    let dir = scratch_dir("hls-live-window");
    let out = Pipeline::new()
        .sl(
            "sl-test",
            &["--fast", "-p", "box", "-n", "600", "-s", "320x240"],
        )
        .sl(
            "sl-hls",
            &hls_args(&dir, &["--list-size", "3", "--segment-time", "1"]),
        )
        .timeout(Duration::from_secs(120))
        .run();
    out.assert_success();
    let (pl, _) = check_rendition(&dir);
    assert_eq!(pl.segments.len(), 3, "{}", pl.text);
    assert_eq!(pl.sequence, 17, "20 one-second segments, the last 3 listed");
    assert_eq!(pl.kind, None, "a live playlist has no PLAYLIST-TYPE");
    let on_disk = files(&dir, ".ts");
    // the window, plus one segment kept for a client still fetching it (RFC 8216 6.2.2)
    assert!(on_disk.len() <= 4, "old segments not deleted: {on_disk:?}");
    let listed: Vec<&String> = pl.segments.iter().map(|s| &s.1).collect();
    assert!(on_disk.iter().all(|f| listed.contains(&f) || f < listed[0]));
    assert!(!on_disk.iter().any(|f| f.ends_with("_00000.ts")));
}

#[test]
fn sigint_mid_live_run_leaves_a_valid_playlist() {
    require("ffprobe");
    for (kind, sig) in [("live", "INT"), ("event", "TERM")] {
        let dir = scratch_dir(&format!("hls-sigint-{kind}"));
        let mut running = Pipeline::new()
            .sl("sl-test", &["-p", "box", "-s", "320x240"]) // real time, forever
            .sl(
                "sl-hls",
                &hls_args(&dir, &["--playlist-type", kind, "--segment-time", "1"]),
            )
            .timeout(Duration::from_secs(60))
            .spawn();
        wait_for_segments(&dir, 2, Duration::from_secs(30));
        // mid-segment: by the frames sl-test has written (320x240 RGBA, 30 a segment), not by
        // a sleep after the listing, whose lag behind the input (the encoder's look-ahead)
        // moves with the machine's load: a signal just after a boundary leaves a segment of
        // two or three frames
        let frame: u64 = 320 * 240 * 4;
        running.wait_until("sl-test to be half-way through a segment", |r| {
            let n = r.bytes_written(0) / frame;
            n >= 75 && (12..=18).contains(&(n % 30))
        });
        running.signal(1, sig);
        let out = running.wait();
        assert_eq!(
            out.stage(1).code,
            Some(130),
            "sl-hls after SIG{sig}: {:?}",
            out.stage(1)
        );
        let (pl, _) = check_rendition(&dir);
        assert!(pl.ended, "{kind}: no ENDLIST after SIGINT:\n{}", pl.text);
        assert!(
            pl.segments.len() >= 3,
            "{kind}: the partial segment is listed"
        );
    }
}

/// Segment files (complete: not `.tmp`) in `dir`.
fn segment_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.flatten()
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with("seg_") && n.ends_with(".ts")
            })
            .count()
    })
}

/// A Ctrl-C at any moment leaves a playlist whose every listed segment ffprobe reads, holding
/// every frame sl-hls took in. Two moments, twice each: right after a segment file appears
/// (the muxer has just begun the next one), and right after sl-test has written the first
/// frames of a segment (the encoder then holds one to three frames of it, so the last segment
/// is 8 to 10 TS packets: complete, yet too short for libavformat's MPEG-TS probe, and
/// `ffprobe` said "End of file" until sl-hls padded such segments).
#[test]
fn sigint_at_a_segment_boundary_leaves_segments_ffprobe_reads() {
    require("ffprobe");
    let frame: u64 = 320 * 240 * 4;
    for round in 0..4 {
        let dir = scratch_dir(&format!("hls-sigint-boundary-{round}"));
        let mut running = Pipeline::new()
            .sl("sl-test", &["-p", "box", "-s", "320x240"]) // real time, forever
            .sl(
                "sl-hls",
                &hls_args(
                    &dir,
                    &["--playlist-type", "event", "--segment-time", "1", "-v"],
                ),
            )
            .timeout(Duration::from_secs(60))
            .spawn();
        let moment = if round % 2 == 0 {
            let n = 2 + round / 2;
            running.wait_until(&format!("segment file {n}"), |_| segment_files(&dir) >= n);
            format!("right after segment file {n} appeared")
        } else {
            let mut at = 0;
            running.wait_until("sl-test to begin a segment", |r| {
                at = r.bytes_written(0) / frame;
                at >= 60 && (1..=3).contains(&(at % 30))
            });
            format!("after sl-test's frame {at}")
        };
        running.signal(1, "INT");
        let out = running.wait();
        let hls = out.stage(1);
        assert_eq!(hls.code, Some(130), "sl-hls after SIGINT {moment}: {hls:?}");
        let (pl, probes) = check_rendition(&dir);
        assert!(pl.ended, "{moment}: no ENDLIST:\n{}", pl.text);
        let counted: usize = hls
            .stderr
            .split("finalised: ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{moment}: no frame count in {}", hls.stderr));
        let listed: usize = probes.iter().map(|p| p.packets).sum();
        assert_eq!(
            listed, counted,
            "{moment}: the segments hold {listed} frames, sl-hls took in {counted}:\n{}",
            pl.text
        );
    }
}

/// At 5 frames a second every 1 s segment is a few TS packets: each must still read as
/// MPEG-TS (libavformat's probe wants 12 packets; shorter ones are padded with null packets).
#[test]
fn low_rate_segments_are_readable() {
    require("ffprobe");
    let dir = scratch_dir("hls-low-rate");
    let out = Pipeline::new()
        .sl(
            "sl-test",
            &["--fast", "-p", "box", "-n", "20", "-r", "5", "-s", "64x48"],
        )
        .sl(
            "sl-hls",
            &hls_args(&dir, &["--playlist-type", "event", "--segment-time", "1"]),
        )
        .timeout(Duration::from_secs(60))
        .run();
    out.assert_success();
    let (pl, probes) = check_rendition(&dir);
    assert_eq!(pl.segments.len(), 4, "{}", pl.text);
    assert_eq!(probes.iter().map(|p| p.packets).sum::<usize>(), 20);
}

#[test]
fn truncated_upstream_finalises_then_fails() {
    require("ffprobe");
    let dir = scratch_dir("hls-truncated");
    // 320x240 RGBA frames are 307200 bytes: about 100 frames, cut mid-frame
    let out = Pipeline::new()
        .sl(
            "sl-test",
            &["--fast", "-p", "box", "-n", "300", "-s", "320x240"],
        )
        .cmd("head", &["-c", "30000000"])
        .sl("sl-hls", &hls_args(&dir, &["--playlist-type", "event"]))
        .timeout(Duration::from_secs(120))
        .run();
    assert_eq!(out.last().code, Some(1), "{:?}", out.last());
    assert!(
        out.last().stderr.contains("finalised"),
        "the error says the output was finalised: {}",
        out.last().stderr
    );
    let (pl, _) = check_rendition(&dir);
    assert!(pl.ended);
    let total: f64 = pl.segments.iter().map(|s| s.0).sum();
    assert!(
        (3.0..3.4).contains(&total),
        "about 97 frames listed, got {total} s"
    );
}

#[test]
fn ladder_writes_a_master_playlist_and_renditions() {
    require("ffprobe");
    let dir = scratch_dir("hls-ladder");
    let out = Pipeline::new()
        .sl(
            "sl-test",
            &["--fast", "-p", "box", "-n", "120", "-s", "640x360"],
        )
        .sl(
            "sl-hls",
            &hls_args(
                &dir,
                &["--playlist-type", "vod", "--ladder", "720p,360p,240p@300k"],
            ),
        )
        .timeout(Duration::from_secs(120))
        .run();
    out.assert_success();
    let master = std::fs::read_to_string(dir.join("index.m3u8")).unwrap();
    assert!(master.contains("#EXT-X-STREAM-INF:BANDWIDTH="), "{master}");
    assert!(master.contains("RESOLUTION=640x360") && master.contains("RESOLUTION=426x240"));
    assert!(master.contains("360p/index.m3u8") && master.contains("240p/index.m3u8"));
    // taller than the 360p input: left out, with a warning
    assert!(
        !master.contains("720p") && !dir.join("720p").exists(),
        "{master}"
    );
    assert!(
        out.last().stderr.contains("leaving out 720p"),
        "{}",
        out.last().stderr
    );
    for (name, width) in [("360p", 640), ("240p", 426)] {
        let (pl, probes) = check_rendition(&dir.join(name));
        assert!(pl.ended);
        assert!(
            probes.iter().all(|p| p.width == width),
            "{name}: {probes:?}"
        );
    }
}

/// One `#EXT-X-STREAM-INF` of a master playlist, as the test reads it.
#[derive(Debug)]
struct StreamInf {
    attrs: Vec<(String, String)>,
    uri: String,
}

impl StreamInf {
    fn get(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The variants of a master playlist; attribute values keep no quotes (commas inside quotes
/// stay in the value).
fn read_master(path: &Path) -> Vec<StreamInf> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        let Some(list) = l.strip_prefix("#EXT-X-STREAM-INF:") else {
            continue;
        };
        let mut attrs = Vec::new();
        let mut rest = list;
        while !rest.is_empty() {
            let (key, r) = rest.split_once('=').expect("NAME=value");
            let (value, r) = match r.strip_prefix('"') {
                Some(q) => {
                    let (v, r) = q.split_once('"').expect("closing quote");
                    (v, r.strip_prefix(',').unwrap_or(r))
                }
                None => r.split_once(',').unwrap_or((r, "")),
            };
            attrs.push((key.to_string(), value.to_string()));
            rest = r;
        }
        let uri = lines
            .next()
            .expect("URI after EXT-X-STREAM-INF")
            .to_string();
        out.push(StreamInf { attrs, uri });
    }
    assert!(
        !out.is_empty(),
        "no variant in the master playlist:\n{text}"
    );
    out
}

/// ffprobe's `profile` and `level` of a file's first video stream, and whether it has an
/// audio stream with `profile=LC`.
fn probe_profile(file: &Path) -> (String, u32, Option<String>) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_streams", "-of", "compact"])
        .arg(file)
        .output()
        .expect("ffprobe runs");
    assert!(out.status.success(), "ffprobe {}: {out:?}", file.display());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |line: &str, name: &str| -> Option<String> {
        line.split('|')
            .find_map(|f| f.strip_prefix(&format!("{name}=")))
            .map(str::to_string)
    };
    let video = text
        .lines()
        .find(|l| l.contains("codec_type=video"))
        .unwrap_or_else(|| panic!("no video stream in {}: {text}", file.display()));
    let audio = text.lines().find(|l| l.contains("codec_type=audio"));
    (
        field(video, "profile").expect("profile"),
        field(video, "level")
            .and_then(|l| l.parse().ok())
            .expect("level"),
        audio.map(|a| {
            format!(
                "{}/{}",
                field(a, "codec_name").unwrap_or_default(),
                field(a, "profile").unwrap_or_default()
            )
        }),
    )
}

/// Every variant of the master playlist in `dir`: CODECS agrees with ffprobe's view of its
/// first segment (avc1.PPCCLL: profile_idc 66/77/100 for Baseline/Main/High, level*10 in
/// hex; mp4a.40.2 exactly when there is AAC-LC audio), FRAME-RATE is there, and a finished
/// stream's BANDWIDTH is at least every segment's bit rate (RFC 8216 4.3.4.2) and its
/// AVERAGE-BANDWIDTH is the measured average.
fn check_master(dir: &Path, audio: bool) {
    for v in read_master(&dir.join("index.m3u8")) {
        let rdir = dir.join(v.uri.trim_end_matches("/index.m3u8"));
        let pl = read_playlist(&dir.join(&v.uri));
        let first = rdir.join(&pl.segments[0].1);
        let file = match &pl.map {
            Some(init) => {
                let joined = rdir.join("probe-codecs.mp4");
                let mut bytes = std::fs::read(rdir.join(init)).unwrap();
                bytes.extend(std::fs::read(&first).unwrap());
                std::fs::write(&joined, bytes).unwrap();
                joined
            }
            None => first,
        };
        let (profile, level, probed_audio) = probe_profile(&file);
        let codecs = v
            .get("CODECS")
            .unwrap_or_else(|| panic!("no CODECS: {v:?}"));
        let list: Vec<&str> = codecs.split(',').collect();
        let avc = list[0]
            .strip_prefix("avc1.")
            .unwrap_or_else(|| panic!("video is not avc1: {codecs}"));
        assert_eq!(avc.len(), 6, "{codecs}");
        let byte = |i: usize| u8::from_str_radix(&avc[i..i + 2], 16).unwrap();
        let want_profile = match profile.as_str() {
            "Constrained Baseline" | "Baseline" => 66,
            "Main" => 77,
            "High" => 100,
            other => panic!("unexpected profile {other}"),
        };
        assert_eq!(
            byte(0),
            want_profile,
            "{}: {codecs} vs ffprobe {profile}",
            v.uri
        );
        assert_eq!(
            u32::from(byte(4)),
            level,
            "{}: {codecs} vs ffprobe level {level}",
            v.uri
        );
        if profile == "Constrained Baseline" {
            assert_ne!(byte(2) & 0x40, 0, "constraint_set1 in {codecs}");
        }
        assert_eq!(probed_audio.is_some(), audio, "{probed_audio:?}");
        if let Some(a) = probed_audio {
            assert_eq!(a, "aac/LC");
            assert_eq!(list[1..], ["mp4a.40.2"], "{codecs}");
        } else {
            assert_eq!(list.len(), 1, "{codecs}");
        }
        let fps: f64 = v.get("FRAME-RATE").expect("FRAME-RATE").parse().unwrap();
        assert!((fps - 30.0).abs() < 0.01, "{v:?}");
        // the stream is finished: BANDWIDTH must be at least the peak segment bit rate
        let bandwidth: f64 = v.get("BANDWIDTH").unwrap().parse().unwrap();
        let average: f64 = v
            .get("AVERAGE-BANDWIDTH")
            .expect("AVERAGE-BANDWIDTH")
            .parse()
            .unwrap();
        let (mut bytes, mut secs) = (0u64, 0.0);
        for (d, uri) in &pl.segments {
            let size = std::fs::metadata(rdir.join(uri)).unwrap().len();
            bytes += size;
            secs += d;
            if *d >= 0.5 * pl.target {
                let rate = size as f64 * 8.0 / d;
                assert!(rate <= bandwidth, "{uri}: {rate} bit/s over {v:?}");
            }
        }
        let measured = bytes as f64 * 8.0 / secs;
        assert!(
            (average - measured).abs() <= measured * 0.01,
            "{v:?}: measured {measured}"
        );
        assert!(bandwidth >= average, "{v:?}");
    }
}

#[test]
fn master_playlist_codecs_match_the_segments() {
    require("ffprobe");
    require("ffmpeg");
    let dir = scratch_dir("hls-codecs");
    // no audio, Main profile via -x: the CODECS string follows the encoder, not a constant
    let out = Pipeline::new()
        .sl(
            "sl-test",
            &["--fast", "-p", "box", "-n", "150", "-s", "640x360"],
        )
        .sl(
            "sl-hls",
            &hls_args(
                &dir.join("video"),
                &[
                    "--playlist-type",
                    "vod",
                    "--ladder",
                    "360p,240p@300k",
                    "-x",
                    "profile=main",
                ],
            ),
        )
        .timeout(Duration::from_secs(120))
        .run();
    out.assert_success();
    check_master(&dir.join("video"), false);
    let master = std::fs::read_to_string(dir.join("video/index.m3u8")).unwrap();
    assert!(master.contains("CODECS=\"avc1.4d"), "{master}");
    // with audio (AAC-LC), in TS and fMP4
    let input = dir.join("in.mp4");
    let (code, _, err) = run_cmd(
        Path::new("ffmpeg"),
        &[
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "5",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-c:a",
            "aac",
            "-shortest",
            input.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "ffmpeg: {err}");
    for seg in ["ts", "fmp4"] {
        let out_dir = dir.join(seg);
        let out = Pipeline::new()
            .sl("sl-file", &[input.to_str().unwrap()])
            .sl(
                "sl-hls",
                &hls_args(
                    &out_dir,
                    &[
                        "--playlist-type",
                        "event",
                        "--segment-type",
                        seg,
                        "--ladder",
                        "360p,240p",
                    ],
                ),
            )
            .timeout(Duration::from_secs(120))
            .run();
        out.assert_success();
        check_master(&out_dir, true);
    }
}

/// One raw HTTP/1.1 request; returns (status, headers, body).
fn http(port: u16, method: &str, target: &str) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head, buf[split + 4..].to_vec())
}

/// An sl-hls run serving `dir`, stopped with SIGINT when dropped.
struct Served {
    child: std::process::Child,
    port: u16,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// Encode `frames` of a test pattern with sl-hls and keep serving the folder.
fn serve(dir: &Path, frames: &str, extra: &[&str]) -> Served {
    let port = free_tcp_port();
    let addr = format!("127.0.0.1:{port}");
    let mut src = Command::new(bin("sl-test"))
        .args(["--fast", "-p", "box", "-s", "640x360", "-n", frames])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut args: Vec<&str> = vec![dir.to_str().unwrap(), "--serve", &addr, "-q"];
    args.extend_from_slice(extra);
    let child = Command::new(bin("sl-hls"))
        .args(&args)
        .stdin(src.stdout.take().unwrap())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let served = Served { child, port };
    let start = Instant::now();
    loop {
        if read_playlist_if_ended(dir) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "sl-hls did not finish encoding"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = src.wait();
    served
}

fn read_playlist_if_ended(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join("index.m3u8")) else {
        return false;
    };
    if text.contains("#EXT-X-STREAM-INF") {
        // a master playlist: every rendition must have ended
        return text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .all(|uri| {
                std::fs::read_to_string(dir.join(uri.trim()))
                    .is_ok_and(|t| t.contains("#EXT-X-ENDLIST"))
            });
    }
    text.contains("#EXT-X-ENDLIST")
}

#[test]
fn serve_types_caching_and_no_escapes() {
    let root = scratch_dir("hls-serve");
    let dir = root.join("out");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(root.join("secret.ts"), "outside").unwrap();
    std::fs::write(dir.join("notes.txt"), "not media").unwrap();
    std::os::unix::fs::symlink(root.join("secret.ts"), dir.join("link.ts")).unwrap();
    let s = serve(&dir, "90", &["--playlist-type", "event"]);
    let pl = read_playlist(&dir.join("index.m3u8"));

    let (st, head, body) = http(s.port, "GET", "/");
    assert_eq!(st, 200);
    assert!(head.contains("text/html"));
    assert!(String::from_utf8_lossy(&body).contains("index.m3u8"));
    let (st, head, _) = http(s.port, "GET", "/_sl/hls.light.min.js");
    assert_eq!(st, 200, "{head}");

    let (st, head, body) = http(s.port, "GET", "/index.m3u8");
    assert_eq!(st, 200);
    assert!(
        head.contains("Content-Type: application/vnd.apple.mpegurl"),
        "{head}"
    );
    assert!(head.contains("Cache-Control: no-cache"), "{head}");
    assert!(body.starts_with(b"#EXTM3U"));

    let seg = &pl.segments[0].1;
    let (st, head, body) = http(s.port, "GET", &format!("/{seg}"));
    assert_eq!(st, 200);
    assert!(head.contains("Content-Type: video/mp2t"), "{head}");
    assert!(head.contains("max-age="), "segments are cacheable: {head}");
    assert_eq!(body, std::fs::read(dir.join(seg)).unwrap());
    let (st, _, body) = http(s.port, "HEAD", &format!("/{seg}"));
    assert_eq!(st, 200);
    assert!(body.is_empty());

    for bad in [
        "/../secret.ts",
        "/..%2fsecret.ts",
        "/%2e%2e/secret.ts",
        "/%2E%2E%2Fsecret.ts",
        "/./index.m3u8",
        "//etc/passwd",
        "/link.ts",
        "/notes.txt",
        "/etc/passwd",
        "/missing.ts",
        "/%00index.m3u8",
    ] {
        let (st, _, body) = http(s.port, "GET", bad);
        assert!(
            st == 400 || st == 404,
            "{bad} answered {st}: {}",
            String::from_utf8_lossy(&body)
        );
        assert!(!String::from_utf8_lossy(&body).contains("outside"));
    }
    let (st, _, _) = http(s.port, "POST", "/index.m3u8");
    assert_eq!(st, 405);
}

fn browser_setup() -> PathBuf {
    require("node");
    assert!(
        Path::new("/usr/bin/chromium").exists() || Path::new("/usr/lib/chromium/chromium").exists(),
        "chromium is not installed: run scripts/setup.sh"
    );
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let st = Command::new(repo.join("scripts/setup-browser.sh"))
        .status()
        .expect("scripts/setup-browser.sh runs");
    assert!(st.success(), "scripts/setup-browser.sh failed");
    repo.join("tests/browser")
}

fn play(port: u16, engine: &str) -> String {
    let dir = browser_setup();
    let url = format!("http://127.0.0.1:{port}/");
    let out = Command::new("node")
        .current_dir(&dir)
        .args(["play.mjs", &url, engine, "3", "60"])
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{engine} playback failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn browser_plays_ts_with_hlsjs_and_natively() {
    let dir = scratch_dir("hls-browser-ts");
    let s = serve(&dir, "300", &["--playlist-type", "event"]);
    let r = play(s.port, "hlsjs");
    assert!(r.contains("\"engine\":\"hls.js\""), "{r}");
    let r = play(s.port, "native");
    assert!(r.contains("\"engine\":\"native\""), "{r}");
}

#[test]
fn browser_plays_fmp4_with_hlsjs_and_natively() {
    let dir = scratch_dir("hls-browser-fmp4");
    let s = serve(
        &dir,
        "300",
        &["--playlist-type", "vod", "--segment-type", "fmp4"],
    );
    let r = play(s.port, "hlsjs");
    assert!(r.contains("\"engine\":\"hls.js\""), "{r}");
    let r = play(s.port, "native");
    assert!(r.contains("\"engine\":\"native\""), "{r}");
}

#[test]
fn usage_errors() {
    let (code, _, err) = run_cmd(&bin("sl-hls"), &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("OUTDIR"), "{err}");
    let (code, man, _) = run_cmd(&bin("sl-hls"), &["--man"]);
    assert_eq!(code, Some(0));
    assert!(man.contains("segment"), "a man page without OUTDIR");
    let (code, _, err) = run_cmd(&bin("sl-hls"), &["out", "--playlist-type", "dash"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("live, event or vod"), "{err}");
    let out = Pipeline::new()
        .sl("sl-test", &["--fast", "-n", "3", "-s", "64x48"])
        .sl(
            "sl-hls",
            &[
                scratch_dir("hls-usage").to_str().unwrap(),
                "--segment-time",
                "0.5",
            ],
        )
        .run();
    assert_eq!(out.last().code, Some(1), "{:?}", out.last());
    assert!(
        out.last().stderr.contains("1 to 60"),
        "{}",
        out.last().stderr
    );
    let (code, _, err) = run_cmd(&bin("sl-hls"), &["out", "--ladder", "huge"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("720p"), "{err}");
}

#[test]
fn browser_plays_a_live_window_while_it_is_written() {
    let dir = scratch_dir("hls-browser-live");
    let port = free_tcp_port();
    let addr = format!("127.0.0.1:{port}");
    // real time, 40 s: playback happens while segments are still being written and deleted
    let mut src = Command::new(bin("sl-test"))
        .args(["-p", "box", "-s", "640x360", "-t", "40s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = Command::new(bin("sl-hls"))
        .args([dir.to_str().unwrap(), "--serve", &addr, "-q"])
        .args(["--segment-time", "1", "--list-size", "4"])
        .stdin(src.stdout.take().unwrap())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let served = Served { child, port };
    wait_for_segments(&dir, 3, Duration::from_secs(30));
    let r = play(served.port, "hlsjs");
    assert!(r.contains("\"engine\":\"hls.js\""), "{r}");
    let r = play(served.port, "native");
    assert!(r.contains("\"engine\":\"native\""), "{r}");
    assert!(
        !read_playlist_if_ended(&dir),
        "the stream was still live during playback"
    );
    drop(served);
    let _ = src.kill();
    let _ = src.wait();
}

#[test]
fn keyframes_follow_the_segment_grid_in_stream_time() {
    require("ffprobe");
    // 1.3 s at 25 fps is 32.5 frames: keyframes forced by time, not by a frame count
    let dir = scratch_dir("hls-grid");
    let out = Pipeline::new()
        .sl(
            "sl-test",
            &[
                "--fast", "-p", "box", "-n", "200", "-r", "25", "-s", "320x240",
            ],
        )
        .sl(
            "sl-hls",
            &hls_args(&dir, &["--playlist-type", "event", "--segment-time", "1.3"]),
        )
        .timeout(Duration::from_secs(120))
        .run();
    out.assert_success();
    let (pl, probes) = check_rendition(&dir);
    assert!(pl.ended);
    // each boundary is the first frame at or after a multiple of 1.3 s
    let starts: Vec<f64> = probes
        .iter()
        .map(|p| p.first_pts - probes[0].first_pts)
        .collect();
    for (i, s) in starts.iter().enumerate() {
        let grid = 1.3 * i as f64;
        assert!(
            *s >= grid - 0.002 && *s < grid + 0.04 + 0.002,
            "segment {i} starts at {s:.3} s, off the 1.3 s grid: {starts:?}"
        );
    }
}

#[test]
fn browser_plays_a_ladder_through_its_master_playlist() {
    let dir = scratch_dir("hls-browser-ladder");
    let s = serve(
        &dir,
        "300",
        &["--playlist-type", "event", "--ladder", "360p,240p"],
    );
    let master = std::fs::read_to_string(dir.join("index.m3u8")).unwrap();
    // what players read while it is written: CODECS (hls.js sets up its decoders from it)
    assert!(master.contains("#EXT-X-STREAM-INF"), "{master}");
    assert!(master.contains(",CODECS=\"avc1."), "{master}");
    let r = play(s.port, "hlsjs");
    assert!(r.contains("\"engine\":\"hls.js\""), "{r}");
    let r = play(s.port, "native");
    assert!(r.contains("\"engine\":\"native\""), "{r}");
}

#[test]
fn a_player_polling_the_folder_never_reads_half_a_playlist() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = scratch_dir("hls-atomic");
    let running = Pipeline::new()
        .sl(
            "sl-test",
            &["--fast", "-p", "box", "-n", "1800", "-s", "160x120"],
        )
        .sl(
            "sl-hls",
            &hls_args(&dir, &["--segment-time", "1", "--list-size", "4"]),
        )
        .timeout(Duration::from_secs(120))
        .spawn();
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let (stop, path) = (Arc::clone(&stop), dir.join("index.m3u8"));
        std::thread::spawn(move || {
            let (mut reads, mut torn) = (0u32, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                if let Ok(text) = std::fs::read_to_string(&path) {
                    reads += 1;
                    let last = text.trim_end().lines().last().unwrap_or("");
                    let no_segment_yet = !text.contains("#EXTINF") && text.ends_with('\n');
                    let whole = text.starts_with("#EXTM3U")
                        && text.contains("#EXT-X-TARGETDURATION:")
                        && (last.ends_with(".ts") || last == "#EXT-X-ENDLIST" || no_segment_yet);
                    if !whole {
                        torn.push(text);
                    }
                }
            }
            (reads, torn)
        })
    };
    let out = running.wait();
    stop.store(true, Ordering::Relaxed);
    out.assert_success();
    let (reads, torn) = poller.join().unwrap();
    assert!(
        reads > 10,
        "the poller read the playlist only {reads} times"
    );
    assert!(
        torn.is_empty(),
        "{} torn reads, e.g.:\n{}",
        torn.len(),
        torn[0]
    );
    check_rendition(&dir);
}
