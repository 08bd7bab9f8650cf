//! sl-file as a user meets it: real files made and judged by ffmpeg/ffprobe, real pipes,
//! real signals, a real RTMP server (nginx), a real SRT listener (srt-live-transmit), and live
//! SRT and RTSP streams from ffmpeg.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sl_e2e::{
    Pipeline, bin, decode, free_tcp_port, free_udp_port, require, run_cmd, scratch_dir,
    wait_for_listener, wait_for_tcp,
};
use sl_frame::Rational;
use sl_wire::Message;

/// Run ffmpeg quietly, panicking with its stderr on failure.
fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("ffmpeg is installed by scripts/setup.sh");
    assert!(
        out.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What ffprobe sees in a file's first video stream (decoding every frame).
#[derive(Debug)]
struct Probe {
    frames: u64,
    width: u32,
    height: u32,
    duration: f64,
    codec: String,
}

fn probe(path: &Path) -> Probe {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=nb_read_frames,width,height,codec_name:format=duration",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("ffprobe");
    assert!(
        out.status.success(),
        "ffprobe cannot read {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    let s = &v["streams"][0];
    let num = |x: &serde_json::Value| -> f64 {
        x.as_str()
            .and_then(|s| s.parse().ok())
            .or(x.as_f64())
            .unwrap_or(0.0)
    };
    Probe {
        frames: num(&s["nb_read_frames"]) as u64,
        width: s["width"].as_u64().unwrap_or(0) as u32,
        height: s["height"].as_u64().unwrap_or(0) as u32,
        duration: num(&v["format"]["duration"]),
        codec: s["codec_name"].as_str().unwrap_or("").to_string(),
    }
}

/// Frame count of the first audio stream, by ffprobe.
fn audio_packets(path: &Path) -> u64 {
    let (code, out, err) = run_cmd(
        Path::new("ffprobe"),
        &[
            "-v",
            "error",
            "-count_packets",
            "-select_streams",
            "a:0",
            "-show_entries",
            "stream=nb_read_packets",
            "-of",
            "csv=p=0",
            path.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    out.trim().parse().unwrap_or(0)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A 2-second 320x240 30 fps H.264 + 48 kHz AAC mp4.
fn make_av_mp4(dir: &Path) -> PathBuf {
    let path = dir.join("av.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=30",
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
        s(&path),
    ]);
    path
}

#[test]
fn reads_an_mp4_with_video_and_audio() {
    let dir = scratch_dir("sl_file_read_mp4");
    let mp4 = make_av_mp4(&dir);
    let expected = probe(&mp4);
    assert_eq!(expected.frames, 60);

    let out = Pipeline::new().sl("sl-file", &[s(&mp4)]).run();
    out.assert_success();
    let msgs = out.messages();
    let mut video = Vec::new();
    let mut audio = Vec::new();
    let mut infos = Vec::new();
    for m in &msgs {
        match m {
            Message::Stream { info, .. } => infos.push(info.clone()),
            Message::Video { frame, .. } => video.push(frame.clone()),
            Message::Audio { chunk, .. } => audio.push(chunk.clone()),
            _ => {}
        }
    }
    assert_eq!(infos.len(), 2, "a video and an audio stream: {infos:?}");
    assert_eq!(infos[0].source_id, "av.mp4");
    assert_eq!(video.len() as u64, expected.frames);
    for (n, f) in video.iter().enumerate() {
        assert_eq!((f.width(), f.height()), (320, 240));
        assert_eq!(f.format().name(), "i420", "the source's own format");
        assert_eq!(f.info.frame_number, n as u64);
        assert_eq!(f.info.source_id, "av.mp4");
    }
    for w in video.windows(2) {
        assert!(
            w[1].info.pts > w[0].info.pts,
            "video timestamps must increase: {:?} then {:?}",
            w[0].info,
            w[1].info
        );
    }
    let first = video[0].info.pts_secs();
    let last = video.last().unwrap().info.pts_secs();
    assert!(
        (last - first - 59.0 / 30.0).abs() < 1e-3,
        "{first} .. {last}"
    );

    assert!(!audio.is_empty());
    for w in audio.windows(2) {
        assert!(
            w[1].info.pts > w[0].info.pts,
            "audio timestamps must increase"
        );
    }
    let rate = audio[0].sample_rate();
    assert_eq!(rate, 48000);
    let seconds: f64 = audio.iter().map(|c| c.duration_secs()).sum();
    assert!(
        seconds >= 1.95,
        "audio covers the duration: {seconds} s of sound for 2 s of video"
    );
    // audio chunks are contiguous: each starts where the previous ended
    for w in audio.windows(2) {
        let end = w[0].info.pts_secs() + w[0].duration_secs();
        assert!((w[1].info.pts_secs() - end).abs() < 0.002);
    }
}

#[test]
fn format_size_and_limits_when_reading() {
    let dir = scratch_dir("sl_file_read_opts");
    let mp4 = make_av_mp4(&dir);
    let out = Pipeline::new()
        .sl(
            "sl-file",
            &[
                s(&mp4),
                "-f",
                "rgba",
                "-s",
                "160x120",
                "--no-audio",
                "-n",
                "10",
                "--source-id",
                "cam1",
            ],
        )
        .run();
    out.assert_success();
    let msgs = out.messages();
    assert!(msgs.iter().all(|m| !matches!(m, Message::Audio { .. })));
    let frames = out.frames();
    assert_eq!(frames.len(), 10);
    assert!(frames.iter().all(|f| f.format().name() == "rgba"
        && (f.width(), f.height()) == (160, 120)
        && f.info.source_id == "cam1"));

    // --start 1s --duration 0.5s: 15 frames starting at 1 s
    let out = Pipeline::new()
        .sl("sl-file", &[s(&mp4), "--start", "1s", "-t", "0.5s"])
        .run();
    out.assert_success();
    let frames = out.frames();
    assert_eq!(frames.len(), 15);
    assert!((frames[0].info.pts_secs() - 1.0).abs() < 0.02);

    // --loop: timestamps keep increasing across the rewind
    let out = Pipeline::new()
        .sl("sl-file", &[s(&mp4), "--loop", "-n", "150", "--no-audio"])
        .run();
    out.assert_success();
    let frames = out.frames();
    assert_eq!(frames.len(), 150);
    for w in frames.windows(2) {
        assert!(w[1].info.pts > w[0].info.pts);
    }
}

/// `ffmpeg -f yuv4mpegpipe` frames, their framemd5 lines (without the header comments).
fn framemd5(path: &Path) -> Vec<String> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "framemd5", "-"])
        .output()
        .expect("ffmpeg");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.rsplit(',').next().unwrap().trim().to_string())
        .collect()
}

fn make_y4m(dir: &Path) -> PathBuf {
    let src = dir.join("src.y4m");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=176x144:rate=25",
        "-frames:v",
        "25",
        "-pix_fmt",
        "yuv420p",
        "-f",
        "yuv4mpegpipe",
        s(&src),
    ]);
    src
}

#[test]
fn y4m_round_trip_is_lossless() {
    let dir = scratch_dir("sl_file_y4m");
    let src = make_y4m(&dir);
    let out_path = dir.join("out.y4m");
    let out = Pipeline::new()
        .stdin(std::fs::read(&src).unwrap())
        .sl("sl-file", &["-"])
        .sl("sl-file", &["-o", s(&out_path)])
        .run();
    out.assert_success();
    let a = framemd5(&src);
    assert_eq!(a.len(), 25);
    assert_eq!(a, framemd5(&out_path), "frame-by-frame md5 must match");
}

#[test]
fn y4m_round_trip_through_rgba_is_within_conversion_tolerance() {
    let dir = scratch_dir("sl_file_y4m_rgba");
    let src = make_y4m(&dir);
    let out_path = dir.join("out.y4m");
    let out = Pipeline::new()
        .stdin(std::fs::read(&src).unwrap())
        .sl("sl-file", &["-", "-f", "rgba"])
        .sl("sl-info", &["--pass", "-q"])
        .sl("sl-file", &["-o", s(&out_path)])
        .run();
    out.assert_success();
    assert_eq!(probe(&out_path).frames, 25);
    // PSNR per frame: YUV->RGB->YUV at 8 bits with 4:2:0 chroma loses a little
    let o = Command::new("ffmpeg")
        .args(["-v", "info", "-i"])
        .arg(&src)
        .arg("-i")
        .arg(&out_path)
        .args(["-lavfi", "psnr", "-f", "null", "-"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    let line = err
        .lines()
        .find(|l| l.contains("PSNR y:"))
        .unwrap_or_else(|| panic!("no PSNR in {err}"));
    let field = |name: &str| -> f64 {
        let i = line.find(name).unwrap() + name.len();
        line[i..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (y, min) = (field("y:"), field("min:"));
    assert!(y > 40.0 && min > 38.0, "PSNR too low: {line}");
}

#[test]
fn encodes_sl_test_to_mp4_mkv_and_a_pipe() {
    let dir = scratch_dir("sl_file_encode");
    let mp4 = dir.join("bars.mp4");
    let out = Pipeline::new()
        .sl(
            "sl-test",
            &["--fast", "-n", "90", "-s", "640x360", "-r", "30"],
        )
        .sl("sl-file", &["-o", s(&mp4)])
        .run();
    out.assert_success();
    let p = probe(&mp4);
    assert_eq!((p.frames, p.width, p.height), (90, 640, 360), "{p:?}");
    assert_eq!(p.codec, "h264");
    assert!((p.duration - 3.0).abs() < 0.05, "{p:?}");

    // lossless ffv1 in mkv, from i420
    let mkv = dir.join("bars.mkv");
    let out = Pipeline::new()
        .sl(
            "sl-test",
            &["--fast", "-n", "12", "-s", "64x48", "-f", "i420"],
        )
        .sl("sl-file", &["-o", s(&mkv), "--codec", "ffv1"])
        .run();
    out.assert_success();
    let p = probe(&mkv);
    assert_eq!((p.frames, p.codec.as_str()), (12, "ffv1"));

    // -o - with a streamable container, read by ffprobe from the pipe
    let out = Pipeline::new()
        .sl("sl-test", &["--fast", "-n", "20", "-s", "64x48"])
        .sl("sl-file", &["-o", "-", "--container", "nut"])
        .cmd(
            "ffprobe",
            &[
                "-v",
                "error",
                "-count_frames",
                "-show_entries",
                "stream=nb_read_frames",
                "-of",
                "csv=p=0",
                "-",
            ],
        )
        .run();
    out.assert_success();
    assert_eq!(out.stdout_str().trim(), "20");

    // mp4 to a pipe is written fragmented (mp4 cannot seek back on a pipe)
    let out = Pipeline::new()
        .sl("sl-test", &["--fast", "-n", "20", "-s", "64x48"])
        .sl("sl-file", &["-o", "-", "--container", "mp4"])
        .run();
    out.assert_success();
    let piped = dir.join("piped.mp4");
    std::fs::write(&piped, &out.stdout).unwrap();
    assert_eq!(probe(&piped).frames, 20);
}

#[test]
fn transcodes_video_and_audio_through_the_pipe() {
    let dir = scratch_dir("sl_file_transcode");
    let mp4 = make_av_mp4(&dir);
    let out_path = dir.join("out.mkv");
    let out = Pipeline::new()
        .sl("sl-file", &[s(&mp4)])
        .sl("sl-file", &["-o", s(&out_path)])
        .run();
    out.assert_success();
    let p = probe(&out_path);
    assert_eq!((p.frames, p.width, p.height), (60, 320, 240));
    // 2 s of 48 kHz AAC is about 94 packets of 1024 samples
    let a = audio_packets(&out_path);
    assert!((90..=100).contains(&a), "{a} audio packets");
}

/// Wait until `path` holds at least `bytes` bytes (the writer is under way).
fn wait_for_size(path: &Path, bytes: u64) {
    let start = Instant::now();
    while std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) < bytes {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{} never reached {bytes} bytes",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The number in "finalised with N video frames" on stderr.
fn finalised_frames(stderr: &str) -> u64 {
    let i = stderr
        .find("finalised with ")
        .unwrap_or_else(|| panic!("no `finalised with` in: {stderr}"));
    stderr[i + 15..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn interrupt_while_writing(sig: &str) {
    let dir = scratch_dir(&format!("sl_file_sig{sig}"));
    let mp4 = dir.join("rec.mp4");
    let running = Pipeline::new()
        .sl(
            "sl-test",
            &["--fast", "-n", "100000", "-s", "320x240", "-p", "box"],
        )
        .sl("sl-file", &["-o", s(&mp4), "-v"])
        .timeout(Duration::from_secs(180))
        .spawn();
    wait_for_size(&mp4, 64 * 1024);
    running.signal(1, sig);
    let out = running.wait();
    let writer = out.stage(1);
    assert_eq!(writer.code, Some(130), "{writer:?}");
    // upstream sees its pipe close: a quiet end
    assert_eq!(out.stage(0).code, Some(0), "{:?}", out.stage(0));
    let n = finalised_frames(&writer.stderr);
    assert!(n > 0);
    let p = probe(&mp4);
    assert_eq!(p.frames, n, "ffprobe reads the file to the last frame");
}

#[test]
fn sigint_while_writing_mp4_finalises_it() {
    interrupt_while_writing("INT");
}

#[test]
fn sigterm_while_writing_mp4_finalises_it() {
    interrupt_while_writing("TERM");
}

/// GNU `timeout` sends its SIGTERM twice, to the program and then to its process group: the
/// two count as one request, and the recording is finalised (a later second signal would exit
/// at once).
#[test]
fn a_recording_under_gnu_timeout_is_finalised() {
    require("timeout");
    let dir = scratch_dir("sl_file_gnu_timeout");
    let mp4 = dir.join("rec.mp4");
    let file = bin("sl-file");
    let out = Pipeline::new()
        .sl(
            "sl-test",
            &["-n", "100000", "-s", "320x240", "-p", "box", "--fps", "30"],
        )
        .cmd(
            "timeout",
            &["--preserve-status", "2", s(&file), "-o", s(&mp4), "-v"],
        )
        .timeout(Duration::from_secs(60))
        .run();
    let writer = out.stage(1);
    assert_eq!(writer.code, Some(130), "{writer:?}");
    let n = finalised_frames(&writer.stderr);
    assert!(n >= 15, "two seconds at 30 fps: {n} frames");
    assert_eq!(
        probe(&mp4).frames,
        n,
        "ffprobe reads the file to the last frame"
    );
}

#[test]
fn kill_9_leaves_a_playable_fragmented_mp4() {
    let dir = scratch_dir("sl_file_kill9");
    let mp4 = dir.join("rec.mp4");
    let running = Pipeline::new()
        .sl(
            "sl-test",
            &["--fast", "-n", "100000", "-s", "320x240", "-p", "box"],
        )
        .sl("sl-file", &["-o", s(&mp4), "--fragmented", "-g", "15"])
        .timeout(Duration::from_secs(180))
        .spawn();
    wait_for_size(&mp4, 256 * 1024);
    running.signal(1, "KILL");
    let out = running.wait();
    assert_eq!(out.stage(1).signal, Some(9));
    let p = probe(&mp4);
    assert!(p.frames >= 15, "{p:?}");
    assert_eq!((p.width, p.height), (320, 240));
}

#[test]
fn truncated_upstream_is_finalised_and_reported() {
    let dir = scratch_dir("sl_file_truncated");
    let full = Pipeline::new()
        .sl("sl-test", &["--fast", "-n", "40", "-s", "64x48"])
        .run();
    full.assert_success();
    // cut in the middle of a frame
    let frame_bytes = 64 * 48 * 4;
    let cut = full.stdout.len() / 2 + frame_bytes / 3;
    let truncated = full.stdout[..cut].to_vec();
    let complete = match decode(&truncated) {
        Ok(_) => panic!("the cut stream must be truncated"),
        Err(_) => {
            let mut r = sl_wire::Reader::new(&truncated[..]).unwrap();
            let mut n = 0;
            while let Ok(Some(m)) = r.next_message() {
                n += matches!(m, Message::Video { .. }) as u64;
            }
            n
        }
    };
    let mp4 = dir.join("cut.mp4");
    let out = Pipeline::new()
        .stdin(truncated)
        .sl("sl-file", &["-o", s(&mp4), "-v"])
        .run();
    let st = out.stage(0);
    assert_eq!(st.code, Some(1), "{st:?}");
    assert!(st.stderr.contains("truncated"), "{}", st.stderr);
    assert!(st.stderr.contains("finalised"), "{}", st.stderr);
    assert!(!st.stderr.contains("panicked"));
    assert_eq!(probe(&mp4).frames, complete);
}

/// A child process stopped (SIGTERM, then waited for) when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start nginx with the RTMP module on 127.0.0.1 (application `live`, recording every stream
/// into `dir`); stopped when the returned guard drops.
fn start_nginx(dir: &Path) -> (Server, u16) {
    let port = free_tcp_port();
    let module = "/usr/lib/nginx/modules/ngx_rtmp_module.so";
    assert!(
        Path::new(module).exists(),
        "libnginx-mod-rtmp is missing: run scripts/setup.sh"
    );
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "load_module {module};\n\
             daemon off;\nmaster_process off;\nworker_processes 1;\n\
             pid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; \
             record all; record_path {d}; record_unique off; }} }} }}\n",
            d = dir.display()
        ),
    )
    .unwrap();
    let nginx = Server(
        Command::new("nginx")
            .args([
                "-p",
                s(dir),
                "-e",
                s(&dir.join("error.log")),
                "-c",
                s(&conf),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nginx is installed by scripts/setup.sh"),
    );
    wait_for_tcp(port, Duration::from_secs(20));
    (nginx, port)
}

#[test]
fn pushes_to_a_real_rtmp_server() {
    let dir = scratch_dir("sl_file_rtmp");
    let (nginx, port) = start_nginx(&dir);
    let url = format!("rtmp://127.0.0.1:{port}/live/test");
    let out = Pipeline::new()
        .sl("sl-test", &["--fast", "-n", "60", "-s", "320x240"])
        .sl("sl-file", &["-o", &url])
        .run();
    out.assert_success();
    drop(nginx); // stops nginx, which closes the recording
    let flv = dir.join("test.flv");
    let p = probe(&flv);
    assert_eq!((p.frames, p.width, p.height), (60, 320, 240), "{p:?}");
    assert_eq!(p.codec, "h264");
}

#[test]
fn pushes_to_a_real_srt_listener() {
    let dir = scratch_dir("sl_file_srt");
    let port = free_udp_port();
    let ts = dir.join("got.ts");
    let listener = Server(
        Command::new("srt-live-transmit")
            .args([
                "-a:no",
                &format!("srt://127.0.0.1:{port}?mode=listener"),
                "file://con",
            ])
            .stdout(std::fs::File::create(&ts).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("srt-live-transmit is installed by scripts/setup.sh"),
    );
    // wait until the listener's UDP socket is bound (ss lists it), not a fixed time
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ss = Command::new("ss")
            .args(["-Hlun", &format!("sport = :{port}")])
            .output()
            .expect("ss (iproute2) is installed by scripts/setup.sh");
        if !String::from_utf8_lossy(&ss.stdout).trim().is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "srt-live-transmit did not bind udp port {port} within 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let url = format!("srt://127.0.0.1:{port}?mode=caller");
    let out = Pipeline::new()
        .sl("sl-test", &["--fast", "-n", "60", "-s", "320x240"])
        .sl("sl-file", &["-o", &url])
        .run();
    out.assert_success();
    drop(listener);
    let p = probe(&ts);
    assert_eq!((p.frames, p.width, p.height), (60, 320, 240), "{p:?}");
}

/// Run sl-file with `args` (and optional stdin bytes); it must fail with `code`, say
/// something containing every one of `needles`, and not panic.
fn fails(args: &[&str], stdin: Option<Vec<u8>>, code: i32, needles: &[&str]) -> String {
    let mut p = Pipeline::new();
    if let Some(b) = stdin {
        p = p.stdin(b);
    }
    let out = p.sl("sl-file", args).run();
    let st = out.stage(0);
    assert_eq!(st.code, Some(code), "sl-file {args:?}: {st:?}");
    for n in needles {
        assert!(
            st.stderr.contains(n),
            "sl-file {args:?}: no `{n}` in: {}",
            st.stderr
        );
    }
    assert!(!st.stderr.contains("panicked"), "{}", st.stderr);
    st.stderr.clone()
}

#[test]
fn bad_inputs_get_clear_errors() {
    let dir = scratch_dir("sl_file_bad");
    // a missing file
    let missing = dir.join("nope.mp4");
    fails(&[s(&missing)], None, 1, &["nope.mp4", "no such file"]);

    // a corrupt file
    let corrupt = dir.join("corrupt.mp4");
    let junk: Vec<u8> = (0..100_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&corrupt, junk).unwrap();
    fails(&[s(&corrupt)], None, 1, &["corrupt.mp4", "ffprobe"]);

    // an unsupported codec: an AVI whose codec tag no decoder knows
    let avi = dir.join("odd.avi");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x48:rate=10",
        "-frames:v",
        "5",
        "-c:v",
        "mpeg4",
        s(&avi),
    ]);
    let bytes = std::fs::read(&avi).unwrap();
    let patched: Vec<u8> = {
        let mut b = bytes.clone();
        for i in 0..b.len().saturating_sub(4) {
            if &b[i..i + 4] == b"FMP4" || &b[i..i + 4] == b"fmp4" {
                b[i..i + 4].copy_from_slice(b"ZZZZ");
            }
        }
        b
    };
    std::fs::write(&avi, patched).unwrap();
    fails(&[s(&avi)], None, 1, &["odd.avi", "cannot decode"]);

    // a streamlib stream where a media file is expected, and the reverse
    let stream = Pipeline::new()
        .sl("sl-test", &["--fast", "-n", "2", "-s", "64x48"])
        .run()
        .stdout;
    fails(&["-"], Some(stream), 1, &["streamlib stream", "-o"]);
    let y4m = make_y4m(&dir);
    let out_mp4 = dir.join("never.mp4");
    fails(
        &["-o", s(&out_mp4)],
        Some(std::fs::read(&y4m).unwrap()),
        1,
        &["not a streamlib stream", "y4m", "sl-file -"],
    );
    assert!(!out_mp4.exists(), "no output file for a refused input");

    // an mp4 with its index at the end, on stdin
    let mp4 = make_av_mp4(&dir);
    fails(
        &["-"],
        Some(std::fs::read(&mp4).unwrap()),
        1,
        &["stdin", "moov", "sl-file in.mp4"],
    );

    // usage errors exit 2
    fails(&[], None, 2, &["INPUT"]);
    fails(&["-", "--loop"], None, 2, &["--loop"]);
}

#[test]
fn a_failing_source_leaves_no_output_file() {
    let dir = scratch_dir("sl_file_fail_chain");
    let corrupt = dir.join("corrupt.mkv");
    std::fs::write(&corrupt, b"this is not a video file at all, not even close").unwrap();
    let out_mp4 = dir.join("out.mp4");
    let out = Pipeline::new()
        .sl("sl-file", &[s(&corrupt)])
        .sl("sl-file", &["-o", s(&out_mp4)])
        .run();
    assert_eq!(out.stage(0).code, Some(1), "{:?}", out.stage(0));
    assert_eq!(out.stage(1).code, Some(1), "{:?}", out.stage(1));
    assert!(!out_mp4.exists(), "nothing recorded, so no file");
}

#[test]
fn source_timestamps_use_the_stream_time_base() {
    let dir = scratch_dir("sl_file_timebase");
    let src = make_y4m(&dir);
    let out = Pipeline::new().sl("sl-file", &[s(&src)]).run();
    out.assert_success();
    let frames = out.frames();
    assert_eq!(frames.len(), 25);
    assert_eq!(frames[0].info.time_base, Rational::new(1, 25));
    assert_eq!(frames[24].info.pts, 24);
}

/// Mean absolute difference between two byte slices.
fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as i32 - *y as i32).unsigned_abs() as u64)
        .sum::<u64>() as f64
        / a.len() as f64
}

#[test]
fn conversions_and_odd_sizes_match_ffmpeg() {
    let dir = scratch_dir("sl_file_odd_sizes");
    let mp4 = make_av_mp4(&dir);
    for (fmt, ff_fmt, size) in [
        ("rgba", "rgba", "320x240"),
        ("rgb24", "rgb24", "333x77"),
        ("nv12", "nv12", "161x121"),
        ("bgra", "bgra", "64x36"),
        ("gray8", "gray", "320x240"),
    ] {
        let out = Pipeline::new()
            .sl(
                "sl-file",
                &[s(&mp4), "-f", fmt, "-s", size, "-n", "5", "--no-audio"],
            )
            .run();
        out.assert_success();
        let frames = out.frames();
        assert_eq!(frames.len(), 5, "{fmt} {size}");
        let (w, h) = size.split_once('x').unwrap();
        assert_eq!(
            (
                frames[0].width().to_string(),
                frames[0].height().to_string()
            ),
            (w.to_string(), h.to_string())
        );
        let raw = Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(&mp4)
            .args([
                "-frames:v",
                "5",
                "-vf",
                &format!("scale={w}:{h}:flags=bicubic"),
                "-pix_fmt",
                ff_fmt,
                "-f",
                "rawvideo",
                "-",
            ])
            .output()
            .unwrap();
        assert!(raw.status.success());
        let ours: Vec<u8> = frames
            .iter()
            .flat_map(|f| f.to_packed().into_data())
            .collect();
        let d = mean_abs_diff(&ours, &raw.stdout);
        assert!(d < 2.0, "{fmt} {size}: mean difference {d} from ffmpeg");
    }
}

#[test]
fn reads_an_hls_playlist_over_http() {
    let dir = scratch_dir("sl_file_hls");
    let playlist = dir.join("index.m3u8");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=30",
        "-t",
        "3",
        "-c:v",
        "libx264",
        "-g",
        "30",
        "-pix_fmt",
        "yuv420p",
        "-f",
        "hls",
        "-hls_time",
        "1",
        "-hls_playlist_type",
        "vod",
        s(&playlist),
    ]);
    let port = free_tcp_port();
    let _server = Server(
        Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 is installed by scripts/setup.sh"),
    );
    wait_for_tcp(port, Duration::from_secs(20));
    let url = format!("http://127.0.0.1:{port}/index.m3u8");
    let out = Pipeline::new().sl("sl-file", &[&url]).run();
    out.assert_success();
    let frames = out.frames();
    assert_eq!(frames.len(), 90);
    assert!(frames.iter().all(|f| (f.width(), f.height()) == (320, 240)));
    for w in frames.windows(2) {
        assert!(w[1].info.pts > w[0].info.pts);
    }
    assert_eq!(frames[0].info.source_id, url);
}

#[test]
fn audio_only_files_round_trip() {
    let dir = scratch_dir("sl_file_audio_only");
    let wav = dir.join("tone.wav");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=300:sample_rate=44100",
        "-t",
        "2",
        s(&wav),
    ]);
    for out_name in ["back.wav", "back.m4a", "back.mkv"] {
        let out_path = dir.join(out_name);
        let out = Pipeline::new()
            .sl("sl-file", &[s(&wav)])
            .sl("sl-file", &["-o", s(&out_path)])
            .run();
        out.assert_success();
        let (code, dur, err) = run_cmd(
            Path::new("ffprobe"),
            &[
                "-v",
                "error",
                "-show_entries",
                "format=duration",
                "-of",
                "csv=p=0",
                s(&out_path),
            ],
        );
        assert_eq!(code, Some(0), "{out_name}: {err}");
        let d: f64 = dur.trim().parse().unwrap();
        assert!((d - 2.0).abs() < 0.05, "{out_name}: {d} s");
    }
}

#[test]
fn a_size_change_mid_stream_is_scaled_to_the_first_size() {
    use sl_frame::{PixelFormat, VideoFrame};
    use sl_wire::{StreamInfo, Writer};
    let dir = scratch_dir("sl_file_size_change");
    let mut bytes = Vec::new();
    {
        let mut w = Writer::new(&mut bytes).unwrap();
        let fps = Rational::new(10, 1);
        w.write_stream_info(0, &StreamInfo::raw_video(PixelFormat::Rgba, 64, 48, fps))
            .unwrap();
        for n in 0..20u32 {
            // the second half is bigger and in another format, announced by a new description
            let (fmt, wd, ht) = if n < 10 {
                (PixelFormat::Rgba, 64, 48)
            } else {
                (PixelFormat::I420, 96, 72)
            };
            if n == 10 {
                w.write_stream_info(0, &StreamInfo::raw_video(fmt, wd, ht, fps))
                    .unwrap();
            }
            let mut f = VideoFrame::new(fmt, wd, ht).unwrap();
            f.data_mut().fill(128);
            f.info.frame_number = n as u64;
            f.info.pts = n as i64;
            f.info.time_base = fps.inverse();
            w.write_video(0, &f).unwrap();
        }
        w.finish().unwrap();
    }
    let mp4 = dir.join("changed.mp4");
    let out = Pipeline::new()
        .stdin(bytes)
        .sl("sl-file", &["-o", s(&mp4)])
        .run();
    out.assert_success();
    assert!(
        out.stage(0).stderr.contains("mid-stream"),
        "a warning says what happened: {}",
        out.stage(0).stderr
    );
    let p = probe(&mp4);
    assert_eq!((p.frames, p.width, p.height), (20, 64, 48), "{p:?}");
}

#[test]
fn frame_limits_and_in_process_transcoding() {
    let dir = scratch_dir("sl_file_limits");
    // -n when writing: stop after N frames, finalised
    let mp4 = dir.join("ten.mp4");
    let out = Pipeline::new()
        .sl("sl-test", &["--fast", "-n", "1000", "-s", "64x48"])
        .sl("sl-file", &["-o", s(&mp4), "-n", "10"])
        .run();
    out.assert_success();
    assert_eq!(probe(&mp4).frames, 10);

    // INPUT and -o together: one process
    let src = make_av_mp4(&dir);
    let mkv = dir.join("direct.mkv");
    let out = Pipeline::new()
        .sl(
            "sl-file",
            &[s(&src), "-o", s(&mkv), "-s", "160x120", "--crf", "30"],
        )
        .run();
    out.assert_success();
    let p = probe(&mkv);
    assert_eq!((p.frames, p.width, p.height), (60, 160, 120));
    assert!(audio_packets(&mkv) > 0);

    // options of the other mode are usage errors, not silently ignored
    fails(&["-o", s(&mkv), "--realtime"], None, 2, &["INPUT"]);
    fails(&[s(&src), "--crf", "20"], None, 2, &["--output"]);
}

#[test]
fn reads_a_live_rtmp_stream() {
    let dir = scratch_dir("sl_file_rtmp_pull");
    let (_nginx, port) = start_nginx(&dir);
    let url = format!("rtmp://127.0.0.1:{port}/live/cam");
    // a live publisher: real-time frames, a keyframe every second
    let publisher = Pipeline::new()
        .sl("sl-test", &["-n", "900", "-s", "320x240", "-p", "box"])
        .sl("sl-file", &["-o", &url, "-g", "30"])
        .timeout(Duration::from_secs(120))
        .spawn();
    // the reader retries until the stream is published (nginx refuses unknown streams)
    let start = Instant::now();
    let frames = loop {
        let out = Pipeline::new()
            .sl("sl-file", &[&url, "-n", "30", "--no-audio"])
            .timeout(Duration::from_secs(60))
            .run();
        if out.stage(0).code == Some(0) {
            break out.frames();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "never read the stream: {:?}",
            out.stage(0)
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    publisher.signal(1, "INT");
    let _ = publisher.wait();
    assert_eq!(frames.len(), 30);
    assert!(frames.iter().all(|f| (f.width(), f.height()) == (320, 240)));
    for w in frames.windows(2) {
        assert!(w[1].info.pts > w[0].info.pts);
    }
}

#[test]
fn picks_among_several_streams() {
    let dir = scratch_dir("sl_file_streams");
    let two = dir.join("two.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=10",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x120:rate=10",
        "-map",
        "0:v",
        "-map",
        "1:v",
        "-t",
        "1",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        s(&two),
    ]);
    for (n, size) in [("0", (320, 240)), ("1", (160, 120))] {
        let out = Pipeline::new()
            .sl(
                "sl-file",
                &[s(&two), "--video-stream", n, "--realtime", "-n", "3"],
            )
            .run();
        out.assert_success();
        let frames = out.frames();
        assert_eq!(frames.len(), 3);
        assert_eq!((frames[0].width(), frames[0].height()), size);
    }
    fails(
        &[s(&two), "--video-stream", "2"],
        None,
        1,
        &["two.mkv", "no video stream 2"],
    );
}

/// ffmpeg publishing a live 320x240 30 fps H.264 test pattern (a keyframe every second, no
/// B-frames, paced in real time) as `format` to `url`; stopped when dropped. Its stderr goes to
/// `dir/publisher.log`.
fn live_publisher(dir: &Path, format: &str, extra: &[&str], url: &str) -> Server {
    require("ffmpeg");
    let log = std::fs::File::create(dir.join("publisher.log")).unwrap();
    Server(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"])
            // a backstop: a leaked publisher ends on its own
            .args(["-t", "120"])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-tune",
                "zerolatency",
            ])
            .args(["-g", "30", "-pix_fmt", "yuv420p"])
            .args(extra)
            .args(["-f", format, url])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("ffmpeg is installed by scripts/setup.sh"),
    )
}

/// Check sl-info's JSON report on what sl-file read from a live 320x240 30 fps peer: exactly
/// `frames` frames in one size, timestamps one frame apart (1/90000 time base), nothing
/// dropped, no gap, nothing reordered, and a clean end.
fn assert_live_report(out: &sl_e2e::Outcome, frames: u64, dir: &Path) {
    let publisher_log = std::fs::read_to_string(dir.join("publisher.log")).unwrap_or_default();
    out.assert_success();
    let report = out.json();
    let v = &report["streams"][0];
    let context = format!("{report:#}\npublisher: {publisher_log}");
    assert_eq!(report["ending"], "clean", "{context}");
    assert_eq!(v["kind"], "video", "{context}");
    assert_eq!(v["frames"], frames, "{context}");
    assert_eq!(
        v["formats"],
        serde_json::json!(["i420 320x240"]),
        "{context}"
    );
    assert_eq!(v["time_base"], "1/90000", "{context}");
    let span = v["last_pts"].as_i64().unwrap() - v["first_pts"].as_i64().unwrap();
    assert_eq!(span, (frames as i64 - 1) * 3000, "{context}");
    for trouble in ["dropped", "gaps", "reordered"] {
        assert_eq!(v[trouble], 0, "{trouble}: {context}");
    }
    assert_eq!(v["ended"], true, "{context}");
}

#[test]
fn reads_a_live_srt_stream_as_listener() {
    let dir = scratch_dir("sl_file_srt_listen");
    let port = free_udp_port();
    let reader = Pipeline::new()
        .sl(
            "sl-file",
            &[&format!("srt://127.0.0.1:{port}?mode=listener"), "-n", "30"],
        )
        .sl("sl-info", &["--json"])
        .timeout(Duration::from_secs(60))
        .spawn();
    wait_for_listener("udp", &format!("127.0.0.1:{port}"));
    let url = format!("srt://127.0.0.1:{port}?mode=caller");
    let _publisher = live_publisher(&dir, "mpegts", &[], &url);
    assert_live_report(&reader.wait(), 30, &dir);
}

#[test]
fn reads_a_live_srt_stream_as_caller() {
    let dir = scratch_dir("sl_file_srt_call");
    let port = free_udp_port();
    // ffmpeg as the SRT listener: it waits for sl-file before it sends anything
    let url = format!("srt://127.0.0.1:{port}?mode=listener");
    let _publisher = live_publisher(&dir, "mpegts", &[], &url);
    wait_for_listener("udp", &format!("127.0.0.1:{port}"));
    let out = Pipeline::new()
        .sl(
            "sl-file",
            &[&format!("srt://127.0.0.1:{port}?mode=caller"), "-n", "30"],
        )
        .sl("sl-info", &["--json"])
        .timeout(Duration::from_secs(60))
        .run();
    assert_live_report(&out, 30, &dir);
}

/// sl-file as an RTSP server for one publisher (`--input-option rtsp_flags=listen`), which
/// ffmpeg pushes to over TCP (RTP interleaved in the RTSP connection: no other ports).
fn read_rtsp_from_a_publisher(name: &str, sl_file_args: &[&str], publisher_args: &[&str]) {
    let dir = scratch_dir(name);
    let port = free_tcp_port();
    let url = format!("rtsp://127.0.0.1:{port}/live");
    let mut args = vec![url.as_str(), "--input-option", "rtsp_flags=listen"];
    args.extend_from_slice(sl_file_args);
    let reader = Pipeline::new()
        .sl("sl-file", &args)
        .sl("sl-info", &["--json"])
        .timeout(Duration::from_secs(60))
        .spawn();
    wait_for_listener("tcp", &format!("127.0.0.1:{port}"));
    let mut extra = vec!["-rtsp_transport", "tcp"];
    extra.extend_from_slice(publisher_args);
    let _publisher = live_publisher(&dir, "rtsp", &extra, &url);
    let expected = match sl_file_args {
        ["-n", n] => n.parse().unwrap(),
        _ => 60,
    };
    // the first frame comes from libav without a timestamp and the second with -1320: the
    // span and "reordered" checks hold sl-file to timestamps that still increase
    assert_live_report(&reader.wait(), expected, &dir);
}

#[test]
fn reads_a_live_rtsp_stream_as_the_server() {
    read_rtsp_from_a_publisher("sl_file_rtsp", &["-n", "30"], &[]);
}

#[test]
fn a_live_rtsp_stream_ends_when_its_publisher_stops() {
    // two seconds: 60 frames, then the publisher's TEARDOWN ends sl-file, exit 0
    read_rtsp_from_a_publisher("sl_file_rtsp_end", &[], &["-frames:v", "60"]);
}

#[test]
fn ctrl_c_while_waiting_for_a_peer_exits_130_with_a_clear_message() {
    let port = free_udp_port();
    let waiting = Pipeline::new()
        .sl(
            "sl-file",
            &[&format!("srt://127.0.0.1:{port}?mode=listener")],
        )
        .timeout(Duration::from_secs(30))
        .spawn();
    wait_for_listener("udp", &format!("127.0.0.1:{port}"));
    waiting.signal(0, "INT");
    let out = waiting.wait();
    let st = out.stage(0);
    assert_eq!(st.code, Some(130), "{st:?}");
    assert!(
        st.stderr.contains("interrupted before it opened"),
        "{}",
        st.stderr
    );
    assert!(!st.stderr.contains("Immediate exit"), "{}", st.stderr);
    assert!(!st.stderr.contains("panicked"), "{}", st.stderr);
    assert!(out.stdout.is_empty());
}

/// Every line sl-file wrote to stderr is its own (libav's lines go through its logger).
fn all_lines_prefixed(stderr: &str) {
    for line in stderr.lines() {
        assert!(
            line.starts_with("sl-file") || line.starts_with("  "),
            "a line without the stage's prefix: {line:?} in\n{stderr}"
        );
    }
}

#[test]
fn odd_sizes_are_padded_and_sizes_scaled_when_writing() {
    let dir = scratch_dir("sl_file_odd_sizes");
    let odd = dir.join("odd.mp4");
    let out = Pipeline::new()
        .sl("sl-test", &["--fast", "-n", "5", "-s", "101x101"])
        .sl("sl-file", &["-o", s(&odd)])
        .run();
    out.assert_success();
    assert!(
        out.stage(1).stderr.contains("padding to 102x102"),
        "{}",
        out.stage(1).stderr
    );
    let p = probe(&odd);
    assert_eq!((p.frames, p.width, p.height), (5, 102, 102), "{p:?}");
    // the picture is not stretched: its last column is repeated into the padding
    let (_, png_out, _) = run_cmd(
        Path::new("ffmpeg"),
        &[
            "-v",
            "error",
            "-i",
            s(&odd),
            "-frames:v",
            "1",
            "-vf",
            "crop=2:102:99:0,format=gray",
            "-f",
            "rawvideo",
            "-",
        ],
    );
    let cols = png_out.as_bytes();
    assert!(cols.len() >= 2 * 100);
    let diff: u32 = (0..100)
        .map(|y| (cols[2 * y] as i32 - cols[2 * y + 1] as i32).unsigned_abs())
        .sum();
    assert!(diff / 100 < 12, "column 101 repeats column 100: {diff}");

    // -s with -o scales
    let scaled = dir.join("scaled.mkv");
    Pipeline::new()
        .sl("sl-test", &["--fast", "-n", "5", "-s", "101x101"])
        .sl("sl-file", &["-o", s(&scaled), "-s", "64x48"])
        .run()
        .assert_success();
    let p = probe(&scaled);
    assert_eq!((p.frames, p.width, p.height), (5, 64, 48), "{p:?}");
}

#[test]
fn image_outputs_one_file_per_frame_or_one_overwritten_and_segments() {
    let dir = scratch_dir("sl_file_images");
    let pattern = dir.join("f%03d.png");
    Pipeline::new()
        .sl("sl-test", &["--fast", "-n", "3", "-s", "64x48"])
        .sl("sl-file", &["-o", s(&pattern)])
        .run()
        .assert_success();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["f001.png", "f002.png", "f003.png"], "no stray file");

    // one name for several frames: each frame overwrites it
    let one = dir.join("x.png");
    let out = Pipeline::new()
        .sl("sl-test", &["--fast", "-n", "3", "-s", "64x48"])
        .sl("sl-file", &["-o", s(&one), "-v"])
        .run();
    out.assert_success();
    assert!(
        out.stage(1).stderr.contains("overwrites"),
        "{}",
        out.stage(1).stderr
    );
    assert_eq!(probe(&one).width, 64);

    // the segment muxer takes the defaults of the container in its segments
    let segs = dir.join("seg%03d.ts");
    Pipeline::new()
        .sl("sl-test", &["--fast", "-n", "60", "-s", "64x48"])
        .sl(
            "sl-file",
            &[
                "-o",
                s(&segs),
                "--container",
                "segment",
                "--mux-option",
                "segment_time=1",
            ],
        )
        .run()
        .assert_success();
    let first = dir.join("seg000.ts");
    let p = probe(&first);
    assert_eq!(p.codec, "h264");
    assert!(p.frames > 0);
}

#[test]
fn audio_is_resampled_for_an_encoder_that_needs_another_rate() {
    let dir = scratch_dir("sl_file_resample");
    let src = dir.join("cd.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=64x48:rate=15",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=44100",
        "-t",
        "2",
        "-c:v",
        "libx264",
        "-c:a",
        "pcm_s16le",
        s(&src),
    ]);
    let webm = dir.join("out.webm");
    let out = Pipeline::new()
        .sl("sl-file", &[s(&src), "-o", s(&webm), "-v"])
        .run();
    out.assert_success();
    assert!(
        out.stage(0).stderr.contains("resampling it to 48000 Hz"),
        "{}",
        out.stage(0).stderr
    );
    let (code, info, err) = run_cmd(
        Path::new("ffprobe"),
        &[
            "-v",
            "error",
            "-select_streams",
            "a:0",
            "-show_entries",
            "stream=codec_name,sample_rate:format=duration",
            "-of",
            "csv=p=0",
            s(&webm),
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(info.contains("opus,48000"), "{info}");
    let secs = audio_seconds(&webm);
    assert!((1.9..2.1).contains(&secs), "{secs} s of audio for 2 s");
}

/// Seconds of decoded audio in a file's first audio stream.
fn audio_seconds(path: &Path) -> f64 {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args([
            "-map", "0:a:0", "-f", "f32le", "-ac", "1", "-ar", "48000", "-",
        ])
        .output()
        .expect("ffmpeg");
    out.stdout.len() as f64 / 4.0 / 48000.0
}

#[test]
fn unknown_extensions_point_to_container_and_libav_lines_are_prefixed() {
    let dir = scratch_dir("sl_file_xyz");
    let out = Pipeline::new()
        .sl("sl-test", &["--fast", "-n", "2", "-s", "64x48"])
        .sl("sl-file", &["-o", s(&dir.join("out.xyz"))])
        .run();
    let st = out.stage(1);
    assert_eq!(st.code, Some(1), "{st:?}");
    assert!(st.stderr.contains("--container"), "{}", st.stderr);
    assert!(!st.stderr.contains("0x"), "no addresses: {}", st.stderr);
    all_lines_prefixed(&st.stderr);
    assert!(!dir.join("out.xyz").exists());

    // libav's own complaints about a cut-off file come through the stage's logger
    let mp4 = make_av_mp4(&dir);
    let bytes = std::fs::read(&mp4).unwrap();
    let half = dir.join("half.mp4");
    std::fs::write(&half, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let out = Pipeline::new()
        .sl("sl-file", &[s(&half)])
        .sl("sl-info", &[])
        .run();
    all_lines_prefixed(&out.stage(0).stderr);
}

#[test]
fn a_saved_streamlib_stream_is_read_as_one() {
    let dir = scratch_dir("sl_file_slv");
    let capture = dir.join("capture.slv");
    let stream = Pipeline::new()
        .sl("sl-test", &["--fast", "-n", "10", "-s", "64x48"])
        .run()
        .stdout;
    std::fs::write(&capture, &stream).unwrap();
    let out = Pipeline::new().sl("sl-file", &[s(&capture)]).run();
    out.assert_success();
    assert_eq!(out.frames().len(), 10);
    let mp4 = dir.join("capture.mp4");
    Pipeline::new()
        .sl("sl-file", &[s(&capture), "-o", s(&mp4)])
        .run()
        .assert_success();
    assert_eq!(probe(&mp4).frames, 10);
    // a cut-off capture is reported like a truncated pipe
    let cut = dir.join("cut.slv");
    std::fs::write(&cut, &stream[..stream.len() / 2]).unwrap();
    let out = Pipeline::new().sl("sl-file", &[s(&cut)]).run();
    assert_eq!(out.stage(0).code, Some(1), "{:?}", out.stage(0));
    assert!(!out.frames_of_failed_stream().is_empty());
}
