//! sl-net publish / subscribe through a real moq-relay (Media over QUIC) on loopback.
//!
//! moq-relay is installed by scripts/setup.sh (scripts/deps/moq-relay.sh) into
//! ~/.cache/streamlib/moq-relay-0.17.10/; a missing relay is a failure naming that script.
//! Every test runs its own relay on its own ports.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use sl_e2e::{bin, decode, free_tcp_port, scratch_dir};
use sl_frame::{BBox, FrameInfo, Metadata, Packet, Rational, Value, VideoCodec};
use sl_wire::{Message, StreamInfo, StreamKind, VideoFormat, VideoParams, Writer};

const RELAY_VERSION: &str = "0.17.10";

fn relay_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("MOQ_RELAY") {
        return PathBuf::from(p);
    }
    let cache = std::env::var_os("STREAMLIB_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/streamlib")
        });
    let p = cache.join(format!("moq-relay-{RELAY_VERSION}/bin/moq-relay"));
    assert!(
        p.exists(),
        "moq-relay {RELAY_VERSION} is missing ({}): run scripts/setup.sh (scripts/deps/moq-relay.sh builds it once per machine)",
        p.display()
    );
    p
}

/// A moq-relay on 127.0.0.1:port (QUIC on UDP, HTTP on TCP, the same number).
struct Relay {
    child: Child,
    port: u16,
    log: Arc<Mutex<String>>,
}

fn start_relay(port: u16, extra: &[&str]) -> Relay {
    let addr = format!("127.0.0.1:{port}");
    let mut args: Vec<String> = vec![
        "--listen".into(),
        addr.clone(),
        "--listen-tls-generate".into(),
        "localhost".into(),
        "--web-http-listen".into(),
        addr.clone(),
    ];
    if !extra.iter().any(|a| a.starts_with("--auth")) {
        args.push("--auth-public".into());
        args.push("**".into());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut child = Command::new(relay_bin())
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start moq-relay");
    let log = Arc::new(Mutex::new(String::new()));
    let mut err = child.stderr.take().unwrap();
    let l2 = log.clone();
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = err.read(&mut buf) {
            if n == 0 {
                break;
            }
            l2.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let mut relay = Relay { child, port, log };
    // Ready when it serves its certificate's fingerprint.
    let t = Instant::now();
    loop {
        if let Some(st) = relay.child.try_wait().unwrap() {
            panic!(
                "moq-relay exited {st} at start:\n{}",
                relay.log.lock().unwrap()
            );
        }
        if fingerprint(port).is_some() {
            return relay;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "moq-relay not ready after 30 s:\n{}",
            relay.log.lock().unwrap()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

impl Relay {
    fn url(&self, broadcast: &str) -> String {
        format!("moq://127.0.0.1:{}/{broadcast}", self.port)
    }
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.kill();
    }
}

fn fingerprint(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET /certificate.sha256 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    if !text.starts_with("HTTP/1.1 200") {
        return None;
    }
    text.split("\r\n\r\n").nth(1).map(|b| b.trim().to_string())
}

/// A port free on both TCP and UDP a moment ago.
fn free_port() -> u16 {
    loop {
        let p = free_tcp_port();
        if std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

/// A running program whose stdout and stderr are collected as they arrive.
struct Proc {
    child: Child,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<String>>,
    threads: Vec<JoinHandle<()>>,
}

impl Proc {
    fn start(program: &str, args: &[&str], stdin: Stdio, read_stdout: bool) -> Proc {
        let mut child = Command::new(bin(program))
            .args(args)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {program}: {e}"));
        let out = Arc::new(Mutex::new(Vec::new()));
        let err = Arc::new(Mutex::new(String::new()));
        let mut threads = Vec::new();
        if read_stdout {
            let mut so = child.stdout.take().unwrap();
            let o2 = out.clone();
            threads.push(thread::spawn(move || {
                let mut buf = vec![0u8; 1 << 16];
                while let Ok(n) = so.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    o2.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            }));
        }
        let mut se = child.stderr.take().unwrap();
        let e2 = err.clone();
        threads.push(thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = se.read(&mut buf) {
                if n == 0 {
                    break;
                }
                e2.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }));
        Proc {
            child,
            out,
            err,
            threads,
        }
    }

    fn stderr(&self) -> String {
        self.err.lock().unwrap().clone()
    }

    /// After the exit: wait until stdout and stderr are read to their ends.
    fn read_to_end(&mut self) {
        for t in self.threads.drain(..) {
            t.join().unwrap();
        }
    }

    /// Wait until stderr says `what` (60 s at most).
    fn wait_stderr(&mut self, what: &str) {
        let t = Instant::now();
        while !self.stderr().contains(what) {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.read_to_end();
                panic!("exited {st} before saying `{what}`:\n{}", self.stderr());
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "no `{what}` after 60 s:\n{}",
                self.stderr()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Frames decoded so far from the collected stdout (a prefix of the stream).
    fn frames_so_far(&self) -> usize {
        let bytes = self.out.lock().unwrap().clone();
        count_frames_prefix(&bytes)
    }

    fn wait_frames(&mut self, n: usize) {
        let t = Instant::now();
        while self.frames_so_far() < n {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("exited {st} before {n} frames:\n{}", self.stderr());
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "not {n} frames after 60 s:\n{}",
                self.stderr()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait for the exit (120 s at most): (code, stdout, stderr).
    fn finish(mut self) -> (Option<i32>, Vec<u8>, String) {
        let t = Instant::now();
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            if t.elapsed() > Duration::from_secs(120) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.read_to_end();
                panic!("did not exit within 120 s; stderr:\n{}", self.stderr());
            }
            thread::sleep(Duration::from_millis(20));
        };
        self.read_to_end();
        let out = std::mem::take(&mut *self.out.lock().unwrap());
        (status.code(), out, self.stderr())
    }
}

/// Count whole frame messages at the start of a (possibly unfinished) stream.
fn count_frames_prefix(bytes: &[u8]) -> usize {
    if bytes.len() < 16 {
        return 0;
    }
    let mut at = 16usize;
    let mut frames = 0;
    while let Some(len) = bytes.get(at..).and_then(sl_wire::message_len) {
        let end = at + len as usize;
        if end > bytes.len() {
            break;
        }
        if matches!(bytes[at], 2..=5) {
            frames += 1;
        }
        at = end;
    }
    frames
}

fn sl_test_stream(args: &[&str]) -> Vec<u8> {
    let out = Command::new(bin("sl-test"))
        .args(args)
        .output()
        .expect("sl-test");
    assert!(
        out.status.success(),
        "sl-test: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn publish_from(bytes: Vec<u8>, url: &str, extra: &[&str]) -> Proc {
    let mut args = vec!["publish", url];
    args.extend_from_slice(extra);
    let mut p = Proc::start("sl-net", &args, Stdio::piped(), true);
    let mut stdin = p.child.stdin.take().unwrap();
    p.threads.push(thread::spawn(move || {
        let _ = stdin.write_all(&bytes);
    }));
    p
}

fn subscriber(url: &str, policy: &str, extra: &[&str]) -> Proc {
    let mut args = vec!["-v", "subscribe", url, "--policy", policy];
    args.extend_from_slice(extra);
    Proc::start("sl-net", &args, Stdio::null(), true)
}

fn frame_numbers(msgs: &[Message]) -> Vec<u64> {
    msgs.iter()
        .filter_map(|m| m.frame_info().map(|f| f.frame_number))
        .collect()
}

#[test]
fn block_one_publisher_twenty_subscribers_get_the_same_stream() {
    let relay = start_relay(free_port(), &[]);
    let url = relay.url("twenty");
    let input = sl_test_stream(&["-n", "60", "-s", "64x48", "--fast"]);
    let sent = decode(&input).expect("sl-test's stream decodes");
    let mut subs: Vec<Proc> = (0..20).map(|_| subscriber(&url, "block", &[])).collect();
    for s in &mut subs {
        s.wait_stderr("connected to");
    }
    let publisher = publish_from(input, &url, &["--retention", "60s"]);
    let (code, _, err) = publisher.finish();
    assert_eq!(code, Some(0), "publisher: {err}");
    for (i, s) in subs.into_iter().enumerate() {
        let (code, out, err) = s.finish();
        assert_eq!(code, Some(0), "subscriber {i}: {err}");
        let got = decode(&out).unwrap_or_else(|e| panic!("subscriber {i}: {e}\n{err}"));
        // the same stream, message for message: descriptions, frames, pixels, timing, END
        assert_eq!(
            got.len(),
            sent.len(),
            "subscriber {i}: {:?}",
            frame_numbers(&got)
        );
        assert_eq!(got, sent, "subscriber {i}");
    }
}

/// A PACKET stream (H.264 codec code, keyframe every 10 packets) with detections and PTP
/// time on every frame, written by the test at a steady pace.
fn packet_stream(
    n: u64,
    gap: Duration,
    mut out: ChildStdin,
    on_frame: impl Fn(u64),
) -> Vec<Message> {
    let mut sent = Vec::new();
    let info = StreamInfo {
        kind: StreamKind::Video(VideoParams {
            format: VideoFormat::Coded(VideoCodec::H264),
            width: 64,
            height: 48,
            fps: Rational { num: 100, den: 1 },
            color: Default::default(),
        }),
        source_id: "cam".into(),
        time_base: Rational { num: 1, den: 100 },
        extradata: vec![0, 0, 0, 1, 0x67, 0x64, 0, 0x1f, 0, 0, 0, 1, 0x68, 1],
        metadata: Metadata::default(),
    };
    let mut buf = Vec::new();
    let mut w = Writer::new(&mut buf).unwrap();
    w.write_stream_info(0, &info).unwrap();
    drop(w);
    out.write_all(&buf).unwrap();
    sent.push(Message::Stream { stream: 0, info });
    for i in 0..n {
        let mut meta = Metadata::default();
        meta.insert(
            "detections",
            Value::Boxes(vec![BBox {
                x: i as f32,
                y: 2.0,
                w: 10.0,
                h: 12.0,
                score: 0.9,
                class_id: 1,
                label: "face".into(),
            }]),
        );
        let fi = FrameInfo {
            frame_number: i,
            pts: i as i64,
            time_base: Rational { num: 1, den: 100 },
            keyframe: i % 10 == 0,
            ptp_time_ns: Some(1_700_000_000_000_000_000 + i as i64 * 10_000_000),
            source_id: "cam".into(),
            metadata: meta,
            ..FrameInfo::default()
        };
        let packet = Packet {
            info: fi,
            codec: VideoCodec::H264,
            width: 64,
            height: 48,
            data: vec![(i % 251) as u8; 200 + (i as usize % 50)],
        };
        let msg = Message::Packet { stream: 0, packet };
        let mut buf = Vec::new();
        let mut w = Writer::new(&mut buf).unwrap();
        w.write_message(&msg).unwrap();
        drop(w);
        out.write_all(&buf[16..]).unwrap();
        sent.push(msg);
        on_frame(i);
        thread::sleep(gap);
    }
    out.write_all(&[6, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        .unwrap();
    sent.push(Message::End {
        stream: sl_wire::ALL_STREAMS,
    });
    sent
}

#[test]
fn a_late_subscriber_starts_at_a_keyframe_and_metadata_travels_with_frames() {
    let relay = start_relay(free_port(), &[]);
    let url = relay.url("packets");
    let mut early = subscriber(&url, "block", &[]);
    early.wait_stderr("connected to");
    let mut publisher = Proc::start("sl-net", &["publish", &url], Stdio::piped(), true);
    let stdin = publisher.child.stdin.take().unwrap();
    let late: Arc<Mutex<Option<Proc>>> = Arc::new(Mutex::new(None));
    let l2 = late.clone();
    let url2 = url.clone();
    let writer = thread::spawn(move || {
        packet_stream(300, Duration::from_millis(10), stdin, |i| {
            // join in the middle of a keyframe run
            if i == 125 {
                *l2.lock().unwrap() = Some(subscriber(&url2, "latest", &[]));
            }
        })
    });
    let sent = writer.join().unwrap();
    let (code, _, err) = publisher.finish();
    assert_eq!(code, Some(0), "publisher: {err}");

    let (code, out, err) = early.finish();
    assert_eq!(code, Some(0), "early subscriber: {err}");
    assert_eq!(
        decode(&out).unwrap(),
        sent,
        "the early subscriber gets the stream as it went in"
    );

    let late = late.lock().unwrap().take().unwrap();
    let (code, out, err) = late.finish();
    assert_eq!(code, Some(0), "late subscriber: {err}");
    let got = decode(&out).unwrap();
    assert!(
        matches!(got[0], Message::Stream { .. }),
        "the description comes first"
    );
    let packets: Vec<&Packet> = got
        .iter()
        .filter_map(|m| match m {
            Message::Packet { packet, .. } => Some(packet),
            _ => None,
        })
        .collect();
    assert!(!packets.is_empty(), "{err}");
    assert!(packets[0].info.frame_number > 0, "it joined late");
    assert!(
        packets[0].info.keyframe,
        "starts at a keyframe: frame {}",
        packets[0].info.frame_number
    );
    for pair in packets.windows(2) {
        let (a, b) = (&pair[0].info, &pair[1].info);
        assert!(b.frame_number > a.frame_number);
        if b.frame_number != a.frame_number + 1 {
            assert!(
                b.keyframe,
                "a skip lands on a keyframe ({} -> {})",
                a.frame_number, b.frame_number
            );
        }
    }
    // each frame kept its own metadata
    for p in &packets {
        let sent_p = sent.iter().find_map(|m| match m {
            Message::Packet { packet, .. } if packet.info.frame_number == p.info.frame_number => {
                Some(packet)
            }
            _ => None,
        });
        assert_eq!(Some(*p), sent_p);
    }
    assert!(matches!(got.last(), Some(Message::End { .. })));
}

#[test]
fn a_stalled_subscriber_does_not_slow_the_others() {
    let relay = start_relay(free_port(), &[]);
    let url = relay.url("stall");
    // its stdout is never read: it stalls once the pipe is full
    let mut stalled = Proc::start(
        "sl-net",
        &["-v", "subscribe", &url, "--policy", "block"],
        Stdio::null(),
        false,
    );
    let mut reader = subscriber(&url, "block", &[]);
    stalled.wait_stderr("connected to");
    reader.wait_stderr("connected to");
    // 320x240 RGBA is 300 KB a frame: the stalled pipe fills after a few
    let input = sl_test_stream(&["-n", "120", "-s", "320x240", "-r", "60"]);
    let publisher = publish_from(input.clone(), &url, &["--retention", "30s"]);
    let (code, out, err) = reader.finish();
    assert_eq!(code, Some(0), "reader: {err}");
    assert_eq!(decode(&out).unwrap(), decode(&input).unwrap());
    assert!(
        stalled.child.try_wait().unwrap().is_none(),
        "the stalled subscriber is still stalled"
    );
    let (code, _, err) = publisher.finish();
    assert_eq!(code, Some(0), "publisher: {err}");
    let _ = stalled.child.kill();
}

#[test]
fn a_bad_token_is_refused_and_a_good_one_admitted() {
    let dir = scratch_dir("sl-moq-auth");
    let key = dir.join("relay.jwk");
    let other = dir.join("other.jwk");
    for k in [&key, &other] {
        let st = Command::new(bin("sl-moq-auth"))
            .arg("key")
            .arg(k)
            .status()
            .unwrap();
        assert!(st.success());
    }
    let sign = |k: &PathBuf, args: &[&str], file: &str| {
        let out = Command::new(bin("sl-moq-auth"))
            .arg("sign")
            .arg(k)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let p = dir.join(file);
        std::fs::write(&p, &out.stdout).unwrap();
        p.to_string_lossy().into_owned()
    };
    let pub_tok = sign(&key, &["--root", "secret", "--publish", ""], "pub.jwt");
    let sub_tok = sign(&key, &["--root", "secret", "--subscribe", ""], "sub.jwt");
    let forged = sign(&other, &["--root", "secret", "--publish", ""], "forged.jwt");
    let auth_port = free_tcp_port();
    let mut auth = Proc::start(
        "sl-moq-auth",
        &[
            "serve",
            key.to_str().unwrap(),
            &format!("127.0.0.1:{auth_port}"),
        ],
        Stdio::null(),
        true,
    );
    auth.wait_stderr("answering moq-relay");
    let relay = start_relay(
        free_port(),
        &["--auth-url", &format!("http://127.0.0.1:{auth_port}/")],
    );
    let url = relay.url("secret");
    let input = sl_test_stream(&["-n", "10", "-s", "32x32", "--fast"]);

    for (tok, who) in [
        (forged.as_str(), "a forged token"),
        (sub_tok.as_str(), "a subscribe-only token"),
    ] {
        let p = publish_from(input.clone(), &url, &["--token", tok]);
        let (code, _, err) = p.finish();
        assert_eq!(code, Some(1), "{who} must be refused: {err}");
        assert!(
            err.contains("refused") || err.contains("nauthorized"),
            "{who}: {err}"
        );
    }
    let p = publish_from(input.clone(), &url, &[]);
    let (code, _, err) = p.finish();
    assert_eq!(code, Some(1), "no token must be refused: {err}");

    let mut s = subscriber(&url, "block", &["--token", &sub_tok]);
    s.wait_stderr("connected to");
    let p = publish_from(
        input.clone(),
        &url,
        &["--token", &pub_tok, "--retention", "60s"],
    );
    let (code, _, err) = p.finish();
    assert_eq!(code, Some(0), "a good token: {err}");
    let (code, out, err) = s.finish();
    assert_eq!(code, Some(0), "subscriber: {err}");
    assert_eq!(decode(&out).unwrap(), decode(&input).unwrap());
    let _ = auth.child.kill();
}

#[test]
fn the_relay_restarts_and_both_sides_carry_on() {
    let port = free_port();
    let mut relay = start_relay(port, &[]);
    let url = relay.url("restart");
    let mut sub = subscriber(&url, "block", &[]);
    sub.wait_stderr("connected to");
    let mut publisher = Proc::start("sl-net", &["-v", "publish", &url], Stdio::piped(), true);
    let mut stdin = publisher.child.stdin.take().unwrap();
    // a paced source: 30 fps for 12 s
    let mut source = Command::new(bin("sl-test"))
        .args(["-n", "360", "-s", "64x48", "-r", "30"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut so = source.stdout.take().unwrap();
    let pump = thread::spawn(move || {
        let _ = std::io::copy(&mut so, &mut stdin);
    });
    sub.wait_frames(30);
    relay.kill();
    let before = sub.frames_so_far();
    let relay2 = start_relay(port, &[]);
    publisher.wait_stderr("reconnected");
    sub.wait_stderr("reconnected");
    pump.join().unwrap();
    source.wait().unwrap();
    let (code, _, err) = publisher.finish();
    assert_eq!(code, Some(0), "publisher: {err}");
    let (code, out, err) = sub.finish();
    assert_eq!(code, Some(0), "subscriber: {err}");
    let got = decode(&out).unwrap();
    let numbers = frame_numbers(&got);
    assert!(
        numbers.windows(2).all(|w| w[1] > w[0]),
        "in order, no duplicates"
    );
    assert!(
        numbers.len() > before,
        "frames after the restart: {} then {}",
        before,
        numbers.len()
    );
    assert_eq!(numbers.last(), Some(&359), "to the last frame");
    assert!(matches!(got.last(), Some(Message::End { .. })));
    drop(relay2);
}

#[test]
fn a_dead_publisher_leaves_subscribers_truncated() {
    let relay = start_relay(free_port(), &[]);
    let url = relay.url("dead");
    let mut sub = subscriber(&url, "block", &["--reconnect-timeout", "2s"]);
    sub.wait_stderr("connected to");
    let mut publisher = Proc::start("sl-net", &["publish", &url], Stdio::piped(), true);
    let mut stdin = publisher.child.stdin.take().unwrap();
    let input = sl_test_stream(&["-n", "10", "-s", "32x32", "--fast"]);
    // everything but the END, then the publisher is killed
    let end = input.len() - 16;
    stdin.write_all(&input[..end]).unwrap();
    sub.wait_frames(10);
    let _ = publisher.child.kill();
    drop(stdin);
    let (code, out, err) = sub.finish();
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("truncated") && err.contains("went away"),
        "{err}"
    );
    let got = decode(&out);
    assert!(got.is_err(), "stdout has no END");
    assert_eq!(count_frames_prefix(&out), 10);
}

#[test]
fn bad_addresses_are_usage_errors() {
    for url in [
        "quic://127.0.0.1:1/x",
        "moq://127.0.0.1/x",
        "moq://127.0.0.1:4443/",
    ] {
        let p = Proc::start("sl-net", &["subscribe", url], Stdio::null(), true);
        let (code, _, err) = p.finish();
        assert_eq!(code, Some(2), "{url}: {err}");
        assert!(err.contains("moq://HOST:PORT/BROADCAST"), "{err}");
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters, ending at a letter
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Wait until `relay`'s log holds `what`, or fail with the log.
fn wait_relay_log(relay: &Relay, what: &str) {
    let t = Instant::now();
    loop {
        // the relay colours its log even into a pipe: match the text without the escapes
        if strip_ansi(&relay.log.lock().unwrap()).contains(what) {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "moq-relay never logged {what:?} in 30 s:\n{}",
            relay.log.lock().unwrap()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn two_relays_in_a_cluster_a_subscriber_on_the_second_gets_the_first_ones_publisher() {
    // Relay A stands alone; relay B dials A as a cluster peer, verifying A's self-signed
    // certificate by the fingerprint A serves (what docs/scaling.md tells operators to do).
    let a = start_relay(free_port(), &[]);
    let fp = fingerprint(a.port).expect("relay A serves its fingerprint");
    let peer = format!("https://127.0.0.1:{}/", a.port);
    let b = start_relay(
        free_port(),
        &[
            "--cluster-connect",
            &peer,
            "--connect-tls-fingerprint",
            &fp,
            "--connect-tls-host-name",
            "localhost",
        ],
    );
    wait_relay_log(
        &b,
        &format!("connected peer={}", peer.trim_end_matches('/')),
    );
    let input = sl_test_stream(&["-n", "45", "-s", "64x48", "-r", "30"]);
    let sent = decode(&input).unwrap();
    // one subscriber on each relay; the publisher only knows A
    let mut far = subscriber(&b.url("mesh"), "block", &[]);
    let mut near = subscriber(&a.url("mesh"), "block", &[]);
    far.wait_stderr("connected to");
    near.wait_stderr("connected to");
    let publisher = publish_from(input, &a.url("mesh"), &["--retention", "60s"]);
    let (code, _, err) = publisher.finish();
    assert_eq!(code, Some(0), "publisher: {err}");
    for (name, s) in [("on relay B", far), ("on relay A", near)] {
        let (code, out, err) = s.finish();
        assert_eq!(code, Some(0), "subscriber {name}: {err}");
        let got = decode(&out).unwrap_or_else(|e| panic!("subscriber {name}: {e}\n{err}"));
        assert_eq!(
            got.len(),
            sent.len(),
            "subscriber {name}: {:?}",
            frame_numbers(&got)
        );
        assert_eq!(got, sent, "subscriber {name}: the same stream");
    }
}
