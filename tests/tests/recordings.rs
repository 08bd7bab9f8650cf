//! Recordings are never destroyed or silently lost (issue 11), judged by ffprobe: a full
//! disk (a small tmpfs this test mounts itself), an output that is the input, kill -9 on a
//! fragmented recording, a truncated input, timestamps that jump, streams that cannot be
//! written; plus corrupted media through sl-file (a bounded fuzz run; SL_FUZZ_LONG=1 for
//! a long one).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sl_e2e::{Pipeline, bin, decode, require, run_cmd, scratch_dir};
use sl_frame::{PixelFormat, Rational, VideoFrame};
use sl_wire::{Message, StreamInfo, StreamKind, VideoFormat, VideoParams, Writer};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Run ffmpeg quietly, panicking with its stderr on failure.
fn ffmpeg(args: &[&str]) {
    require("ffmpeg");
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Video frames ffprobe decodes from `path`'s first video stream, or None if it cannot
/// read the file at all.
fn probe_frames(path: &Path) -> Option<u64> {
    require("ffprobe");
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe");
    if !out.status.success() {
        return None;
    }
    // a playlist lists its stream once per program too: the first line
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| !l.trim().is_empty())?
        .trim()
        .trim_end_matches(',')
        .parse()
        .ok()
}

/// A copy of a live playlist, for ffprobe: absolute URIs, and an end marker so that ffprobe
/// reads what is listed instead of waiting for more.
fn ended_copy(playlist: &Path, text: &str, into: &Path) -> PathBuf {
    let dir = playlist.parent().unwrap();
    let mut out = String::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with("#EXT-X-ENDLIST") {
            continue;
        }
        if let Some((a, b)) = line.split_once("URI=\"") {
            out.push_str(&format!("{a}URI=\"{}/{b}\n", dir.display()));
        } else if line.starts_with('#') {
            out.push_str(line);
            out.push('\n');
        } else {
            out.push_str(&format!("{}/{line}\n", dir.display()));
        }
    }
    out.push_str("#EXT-X-ENDLIST\n");
    let copy = into.join("judge.m3u8");
    std::fs::write(&copy, out).unwrap();
    copy
}

/// The format duration ffprobe reports, in seconds.
fn probe_duration(path: &Path) -> f64 {
    let (code, out, err) = run_cmd(
        Path::new("ffprobe"),
        &[
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
            s(path),
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    out.trim().parse().unwrap_or(0.0)
}

/// A small tmpfs mounted on a scratch folder, unmounted when dropped: a disk that fills.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(name: &str, size: &str) -> Tmpfs {
        let dir = scratch_dir(name);
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "cannot mount a {size} tmpfs on {} (the full-disk tests need root, as CI runs): {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // lazily: a failed assertion may leave a child still holding a file open
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// The segment URIs of a media playlist, checked to be one.
fn listed_segments(playlist: &Path) -> (Vec<String>, String) {
    let text = std::fs::read_to_string(playlist)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", playlist.display()));
    assert!(
        text.starts_with("#EXTM3U\n"),
        "{} is not a playlist: {text:?}",
        playlist.display()
    );
    assert!(text.contains("#EXT-X-TARGETDURATION:"), "{text}");
    let segs = text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    (segs, text)
}

fn hls_on_a_full_disk(name: &str, extra: &[&str]) {
    let disk = Tmpfs::mount(name, "3m");
    let out_dir = disk.dir.join("hls");
    let mut args = vec![s(&out_dir), "-v"];
    args.extend_from_slice(extra);
    // noise does not compress: about 0.7 MB a segment, the disk fills after a few
    let out = Pipeline::new()
        .sl(
            "sl-test",
            &[
                "--fast", "-s", "160x120", "-f", "i420", "-p", "noise", "-n", "900",
            ],
        )
        .sl("sl-hls", &args)
        .timeout(Duration::from_secs(300))
        .run();
    let hls = out.stage(1);
    assert_eq!(hls.code, Some(1), "a full disk is a failure: {hls:?}");
    assert!(
        hls.stderr.contains("No space left on device") && hls.stderr.contains("disk is full"),
        "says why: {}",
        hls.stderr
    );
    assert!(
        hls.stderr.contains("keeps the last complete playlist"),
        "says what was kept: {}",
        hls.stderr
    );
    assert!(!hls.stderr.contains(" finalised:"), "{}", hls.stderr);
    // the last complete playlist is in place, and everything it lists is whole
    let playlist = out_dir.join("index.m3u8");
    let (segs, text) = listed_segments(&playlist);
    assert!(!segs.is_empty(), "a segment or more fitted: {text}");
    for seg in &segs {
        let path = out_dir.join(seg);
        let len = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{seg} is listed but missing ({e}): {text}"))
            .len();
        assert!(len > 0, "{seg} is listed but empty: {text}");
    }
    let judge = ended_copy(&playlist, &text, &scratch_dir(&format!("{name}_judge")));
    let frames = probe_frames(&judge)
        .unwrap_or_else(|| panic!("ffprobe cannot play the kept playlist: {text}"));
    assert!(frames >= 60, "{frames} frames in {text}");
    // nothing half-written is left about
    for e in std::fs::read_dir(&out_dir).unwrap().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        assert!(!n.ends_with(".tmp"), "{n} left behind");
        assert!(e.metadata().unwrap().len() > 0, "{n} is empty");
    }
}

#[test]
fn full_disk_hls_ts_live_fails_and_keeps_the_last_playlist() {
    hls_on_a_full_disk("rec_full_hls_ts", &[]);
}

#[test]
fn full_disk_hls_fmp4_fails_and_keeps_the_last_playlist() {
    hls_on_a_full_disk("rec_full_hls_fmp4", &["--segment-type", "fmp4"]);
}

#[test]
fn full_disk_hls_event_fails_and_keeps_the_last_playlist() {
    hls_on_a_full_disk("rec_full_hls_event", &["--playlist-type", "event"]);
}

#[test]
fn full_disk_hls_vod_fails_and_keeps_the_last_playlist() {
    hls_on_a_full_disk("rec_full_hls_vod", &["--playlist-type", "vod"]);
}

fn noise_into(output: &Path, extra: &[&str]) -> sl_e2e::Outcome {
    let mut args = vec!["-o", s(output)];
    args.extend_from_slice(extra);
    Pipeline::new()
        .sl(
            "sl-test",
            &[
                "--fast", "-s", "640x480", "-f", "i420", "-p", "noise", "-n", "600",
            ],
        )
        .sl("sl-file", &args)
        .timeout(Duration::from_secs(300))
        .run()
}

#[test]
fn full_disk_sl_file_fails_and_says_what_was_lost() {
    let disk = Tmpfs::mount("rec_full_file", "4m");
    // an mp4 gets its index last: on a full disk it cannot be finalised, and it says so
    let mp4 = disk.dir.join("rec.mp4");
    let out = noise_into(&mp4, &[]);
    let st = out.stage(1);
    assert_eq!(st.code, Some(1), "{st:?}");
    assert!(
        st.stderr.contains("No space left on device"),
        "{}",
        st.stderr
    );
    assert!(
        st.stderr.contains("will not play") && st.stderr.contains("--fragmented"),
        "{}",
        st.stderr
    );
    assert!(!st.stderr.contains("finalised with"), "{}", st.stderr);
    std::fs::remove_file(&mp4).unwrap();

    // a fragmented mp4 keeps the fragments that reached the disk
    let out = noise_into(&mp4, &["--fragmented"]);
    let st = out.stage(1);
    assert_eq!(st.code, Some(1), "{st:?}");
    assert!(
        st.stderr.contains("keeps what reached the disk"),
        "{}",
        st.stderr
    );
    let kept = probe_frames(&mp4).expect("the fragments written are playable");
    assert!(kept > 0, "{kept}");
}

#[test]
fn full_disk_never_replaces_an_existing_recording() {
    let disk = Tmpfs::mount("rec_full_replace", "4m");
    let old = disk.dir.join("old.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x120:rate=30",
        "-t",
        "1",
        "-c:v",
        "libx264",
        s(&old),
    ]);
    let before = std::fs::read(&old).unwrap();
    let out = noise_into(&old, &[]);
    let st = out.stage(1);
    assert_eq!(st.code, Some(1), "{st:?}");
    assert!(st.stderr.contains("was left as it was"), "{}", st.stderr);
    assert_eq!(
        std::fs::read(&old).unwrap(),
        before,
        "the old file is untouched"
    );
    let names: Vec<_> = std::fs::read_dir(&disk.dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["old.mkv"],
        "no partial file is left to fill the disk"
    );
}

/// A 60-frame 320x240 H.264 mp4 with its index first (faststart), as phones write them.
fn make_faststart_mp4(dir: &Path) -> PathBuf {
    let path = dir.join("clip.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=30",
        "-t",
        "2",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-movflags",
        "+faststart",
        s(&path),
    ]);
    assert_eq!(probe_frames(&path), Some(60));
    path
}

#[test]
fn output_that_is_the_input_is_refused() {
    let dir = scratch_dir("rec_same_file");
    let clip = make_faststart_mp4(&dir);
    let before = std::fs::read(&clip).unwrap();
    let hard = dir.join("hard.mp4");
    std::fs::hard_link(&clip, &hard).unwrap();
    let soft = dir.join("soft.mp4");
    std::os::unix::fs::symlink(&clip, &soft).unwrap();
    for output in [&clip, &hard, &soft] {
        let out = Pipeline::new()
            .sl("sl-file", &[s(&clip), "-o", s(output)])
            .run();
        let st = out.stage(0);
        assert_eq!(st.code, Some(2), "{st:?}");
        assert!(
            st.stderr.contains("is the same file as the input"),
            "{}",
            st.stderr
        );
        assert_eq!(
            std::fs::read(&clip).unwrap(),
            before,
            "the input is untouched"
        );
    }
}

#[test]
fn piping_a_file_into_itself_replaces_it_only_when_complete() {
    let dir = scratch_dir("rec_pipe_into_itself");
    let clip = make_faststart_mp4(&dir);
    // the reader opens clip.mp4 first; the writer writes next to it and renames at the end
    let out = Pipeline::new()
        .sl("sl-file", &[s(&clip)])
        .sl("sl-file", &["-o", s(&clip), "-v"])
        .run();
    out.assert_success();
    assert!(out.stage(1).stderr.contains("replacing it when finalised"));
    assert_eq!(probe_frames(&clip), Some(60), "every frame of the old file");
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["clip.mp4"], "no temporary file left");

    // a truncated upstream does not replace the existing file either
    let full = Pipeline::new()
        .sl("sl-test", &["--fast", "-n", "40", "-s", "64x48"])
        .run();
    let cut = full.stdout[..full.stdout.len() / 2].to_vec();
    let before = std::fs::read(&clip).unwrap();
    let out = Pipeline::new()
        .stdin(cut)
        .sl("sl-file", &["-o", s(&clip)])
        .run();
    let st = out.stage(0);
    assert_eq!(st.code, Some(1), "{st:?}");
    assert!(st.stderr.contains("was left as it was"), "{}", st.stderr);
    assert_eq!(std::fs::read(&clip).unwrap(), before);
    let kept: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p != &clip)
        .collect();
    assert_eq!(kept.len(), 1, "what arrived is kept next to it: {kept:?}");
    assert!(probe_frames(&kept[0]).unwrap() > 0);
}

/// The `moof` boxes at the top level of an MP4 file's bytes.
fn top_level_boxes(bytes: &[u8], name: &[u8; 4]) -> usize {
    let mut n = 0;
    let mut at = 0usize;
    while at + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        if &bytes[at + 4..at + 8] == name {
            n += 1;
        }
        if size < 8 {
            break;
        }
        at += size;
    }
    n
}

#[test]
fn kill_9_on_a_low_bitrate_live_fragmented_recording_loses_at_most_a_fragment() {
    let dir = scratch_dir("rec_kill9_live");
    let mp4 = dir.join("live.mp4");
    // 150 frames (5 s at 30 fps) of a small, nearly still picture: a few kB a second,
    // then the source goes quiet without ending, as a live source between frames
    let src = Pipeline::new()
        .sl(
            "sl-test",
            &[
                "--fast", "-s", "96x64", "-p", "box", "-n", "150", "-r", "30",
            ],
        )
        .run();
    src.assert_success();
    let mut w = Writer::new(Vec::new()).unwrap();
    for m in decode(&src.stdout).unwrap() {
        if !matches!(m, Message::End { .. }) {
            w.write_message(&m).unwrap();
        }
    }
    let bytes = w.get_ref().clone();
    let mut child = Command::new(bin("sl-file"))
        .args(["-o", s(&mp4), "--fragmented"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&bytes).unwrap();
    // Each fragment (at most 1 s) reaches the file as soon as it is complete: 4 s of the
    // 5 s fed are on disk once encoded, however few bytes they are. (Before, they sat in
    // libav's 32 KiB buffer, and this waited for ever.)
    let start = Instant::now();
    loop {
        let on_disk = std::fs::read(&mp4).unwrap_or_default();
        if top_level_boxes(&on_disk, b"moof") >= 4 {
            break;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "after 60 s the file holds {} bytes and {} fragments of the 5 s fed",
                on_disk.len(),
                top_level_boxes(&on_disk, b"moof")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let size = std::fs::metadata(&mp4).unwrap().len();
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    drop(stdin);
    assert!(size < 64 * 1024, "a low bit rate: {size} bytes");
    let frames = probe_frames(&mp4).expect("playable after kill -9");
    // four fragments of about a second (30 frames) each, give or take a frame
    assert!(frames >= 100, "{frames} frames of 150 survived");
}

#[test]
fn a_truncated_input_file_is_not_passed_on_as_finished() {
    let dir = scratch_dir("rec_truncated_input");
    let clip = make_faststart_mp4(&dir);
    let bytes = std::fs::read(&clip).unwrap();
    let half = dir.join("half.mp4");
    std::fs::write(&half, &bytes[..bytes.len() / 2]).unwrap();
    let out = Pipeline::new()
        .sl("sl-file", &[s(&half)])
        .sl("sl-info", &["--json"])
        .run();
    let reader = out.stage(0);
    assert_eq!(reader.code, Some(1), "{reader:?}");
    assert!(reader.stderr.contains("cut off"), "{}", reader.stderr);
    let info = out.stage(1);
    assert_eq!(
        info.code,
        Some(1),
        "sl-info sees a truncated stream: {info:?}"
    );
    let report = out.json();
    assert_ne!(report["ending"], "clean", "{report:#}");
    let frames = report["streams"][0]["frames"].as_u64().unwrap();
    assert!(
        (1..60).contains(&frames),
        "the frames before the cut are passed on: {frames}"
    );

    // into a file: finalised with what arrived, and exit 1
    let mp4 = dir.join("copy.mkv");
    let out = Pipeline::new()
        .sl("sl-file", &[s(&half), "-o", s(&mp4)])
        .run();
    assert_eq!(out.stage(0).code, Some(1), "{:?}", out.stage(0));
    assert!(probe_frames(&mp4).unwrap() > 0);
}

/// Two 2-second MPEG-TS pieces whose timestamps are `offset` seconds apart, one file.
fn ts_with_a_jump(dir: &Path, name: &str, first: f64, offset: f64) -> PathBuf {
    let path = dir.join(name);
    let mut all = Vec::new();
    for (i, at) in [first, first + offset].iter().enumerate() {
        let piece = dir.join(format!("{name}.{i}.ts"));
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x120:rate=30",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "2",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-output_ts_offset",
            &format!("{at}"),
            s(&piece),
        ]);
        all.extend(std::fs::read(&piece).unwrap());
    }
    std::fs::write(&path, all).unwrap();
    path
}

#[test]
fn timestamp_jumps_and_wraps_are_rebased_and_the_mp4_plays() {
    let dir = scratch_dir("rec_ts_jumps");
    // a day's jump, and a piece crossing the MPEG-TS 2^33 wrap (95443.7 s)
    for (name, first, offset) in [
        ("day.ts", 10.0, 86_400.0),
        ("wrap.ts", 95_441.0, 2.0),
        ("back.ts", 90_000.0, -80_000.0),
    ] {
        let input = ts_with_a_jump(&dir, name, first, offset);
        let mp4 = dir.join(format!("{name}.mp4"));
        let out = Pipeline::new()
            .sl("sl-file", &[s(&input), "-o", s(&mp4)])
            .run();
        let st = out.stage(0);
        assert_eq!(st.code, Some(0), "{name}: {st:?}");
        let frames = probe_frames(&mp4).unwrap_or_else(|| panic!("{name}: unplayable"));
        assert_eq!(frames, 120, "{name}");
        let d = probe_duration(&mp4);
        assert!((3.9..4.3).contains(&d), "{name}: {d} s, the jump taken out");
        if offset.abs() > 10.0 {
            assert!(st.stderr.contains("jumped"), "{name}: {}", st.stderr);
        }
    }
}

fn video_info(w: u32, h: u32, source: &str) -> StreamInfo {
    StreamInfo {
        kind: StreamKind::Video(VideoParams {
            format: VideoFormat::Raw(PixelFormat::Rgba),
            width: w,
            height: h,
            fps: Rational::new(30, 1),
            color: Default::default(),
        }),
        source_id: source.into(),
        time_base: Rational::new(1, 30),
        extradata: Vec::new(),
        metadata: Default::default(),
    }
}

fn frame(w: u32, h: u32, n: u64) -> VideoFrame {
    let mut f = VideoFrame::new(PixelFormat::Rgba, w, h).unwrap();
    f.info.pts = n as i64;
    f.info.frame_number = n;
    f.info.time_base = Rational::new(1, 30);
    f.info.duration = 1;
    f
}

#[test]
fn streams_that_are_not_written_are_named() {
    let dir = scratch_dir("rec_dropped_streams");
    let mut w = Writer::new(Vec::new()).unwrap();
    w.write_stream_info(0, &video_info(64, 48, "cam1")).unwrap();
    w.write_stream_info(1, &video_info(32, 24, "cam2")).unwrap();
    for n in 0..30 {
        w.write_video(0, &frame(64, 48, n)).unwrap();
        w.write_video(1, &frame(32, 24, n)).unwrap();
        // a stream nobody described
        w.write_video(7, &frame(16, 16, n)).unwrap();
    }
    w.finish().unwrap();
    let mkv = dir.join("two.mkv");
    let out = Pipeline::new()
        .stdin(w.get_ref().clone())
        .sl("sl-file", &["-o", s(&mkv)])
        .run();
    out.assert_success();
    let err = &out.stage(0).stderr;
    assert!(
        err.contains("stream 1 (video, from cam2) is not written"),
        "{err}"
    );
    assert!(err.contains("stream 7, which was never described"), "{err}");
    assert_eq!(err.matches("stream 7").count(), 1, "warned once: {err}");
    assert_eq!(probe_frames(&mkv), Some(30));
}

#[test]
fn hls_that_cannot_start_leaves_no_playlist() {
    let dir = scratch_dir("rec_hls_no_start");
    let out_dir = dir.join("hls");
    let out = Pipeline::new()
        .sl("sl-test", &["--fast", "-n", "10", "-s", "64x48"])
        .sl("sl-hls", &[s(&out_dir), "--codec", "no-such-encoder"])
        .run();
    let st = out.stage(1);
    assert_eq!(st.code, Some(1), "{st:?}");
    assert!(st.stderr.contains("nothing was written"), "{}", st.stderr);
    let left: Vec<_> = std::fs::read_dir(&out_dir)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?} left behind");
}

/// Run `command` (a shell command line) with a terminal as stdin and stdout, through
/// util-linux's `script`; returns its output and exit code.
fn on_a_terminal(command: &str) -> (Option<i32>, String) {
    require("script");
    let out = Command::new("timeout")
        .args(["20", "script", "-q", "-e", "-c", command, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn sl_file_refuses_a_terminal_for_media_in_and_out() {
    let sl_file = bin("sl-file");
    // stdin a terminal: refused at once instead of waiting for input
    let (code, text) = on_a_terminal(&format!("{} -", sl_file.display()));
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("stdin is a terminal"), "{text}");
    // stdout a terminal: no binary written to it
    let dir = scratch_dir("rec_tty_out");
    let clip = make_faststart_mp4(&dir);
    let (code, text) = on_a_terminal(&format!(
        "{} {} -o - --container nut",
        sl_file.display(),
        clip.display()
    ));
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("refusing to write media to a terminal"),
        "{text}"
    );
    assert!(
        text.len() < 2000,
        "no media on the terminal: {} bytes",
        text.len()
    );
}

/// A small deterministic generator for the fuzz cases (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One mutation of a media file: flipped bytes, a cut, a duplicated or zeroed run.
fn mutate(rng: &mut Rng, src: &[u8]) -> Vec<u8> {
    let mut v = src.to_vec();
    match rng.below(5) {
        0 => {
            for _ in 0..1 + rng.below(32) {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
        }
        1 => v.truncate(rng.below(v.len())),
        2 => {
            let a = rng.below(v.len());
            let n = rng.below(4096).min(v.len() - a);
            for b in &mut v[a..a + n] {
                *b = 0;
            }
        }
        3 => {
            let a = rng.below(v.len());
            let n = rng.below(8192).min(v.len() - a);
            let run = v[a..a + n].to_vec();
            let at = rng.below(v.len());
            v.splice(at..at, run);
        }
        _ => {
            // a header field: the first 512 bytes get random values
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(v.len().min(512));
                v[i] = rng.next() as u8;
            }
        }
    }
    v
}

#[test]
fn corrupted_media_gets_a_clear_error_never_a_crash_or_a_hang() {
    let dir = scratch_dir("rec_fuzz");
    let cases: usize = if std::env::var_os("SL_FUZZ_LONG").is_some() {
        600
    } else {
        36
    };
    let mut seeds = Vec::new();
    for (name, extra) in [
        ("a.mp4", vec!["-c:v", "libx264", "-c:a", "aac"]),
        ("a.mkv", vec!["-c:v", "libx264", "-c:a", "libopus"]),
        ("a.ts", vec!["-c:v", "libx264", "-c:a", "aac"]),
    ] {
        let path = dir.join(name);
        let mut args = vec![
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=96x64:rate=15",
            "-f",
            "lavfi",
            "-i",
            "sine=sample_rate=48000",
            "-t",
            "1",
            "-pix_fmt",
            "yuv420p",
        ];
        args.extend(extra);
        args.push(s(&path));
        ffmpeg(&args);
        seeds.push((name, std::fs::read(&path).unwrap()));
    }
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut failures = Vec::new();
    for case in 0..cases {
        let (name, src) = &seeds[case % seeds.len()];
        let bytes = mutate(&mut rng, src);
        let path = dir.join(format!("case{case}-{name}"));
        std::fs::write(&path, &bytes).unwrap();
        let out = Pipeline::new()
            .sl("sl-file", &[s(&path)])
            .sl("sl-info", &[])
            .timeout(Duration::from_secs(60))
            .run();
        let st = out.stage(0);
        let ok = match st.code {
            Some(0) => true,
            Some(1) => st.stderr.contains("sl-file:") && st.stderr.len() > 20,
            _ => false,
        };
        if !ok || st.stderr.contains("panicked") {
            failures.push(format!("case {case} ({}): {st:?}", path.display()));
        } else {
            let _ = std::fs::remove_file(&path);
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn devices_and_fifos_are_outputs_too() {
    // not regular files: written in place, never replaced, never synced (EINVAL)
    let out = Pipeline::new()
        .sl("sl-test", &["--fast", "-n", "5", "-s", "64x48"])
        .sl("sl-file", &["-o", "/dev/null", "--container", "nut"])
        .run();
    out.assert_success();
    let dir = scratch_dir("rec_fifo_out");
    let fifo = dir.join("pipe.nut");
    let ok = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(ok.success());
    let reader = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=nb_read_frames",
        ])
        .args(["-of", "csv=p=0"])
        .arg(&fifo)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    Pipeline::new()
        .sl("sl-test", &["--fast", "-n", "5", "-s", "64x48"])
        .sl("sl-file", &["-o", s(&fifo)])
        .run()
        .assert_success();
    let got = reader.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&got.stdout).trim(), "5");
}
