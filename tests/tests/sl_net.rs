//! sl-net as a user meets it: two "machines" (each its own XDG_CONFIG_HOME, so its own key)
//! joined over loopback, real pipes, real signals.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use sl_e2e::{Pipeline, Running, bin, decode, free_udp_port, run_cmd, scratch_dir, video_frames};
use sl_wire::{Message, Reader, WireError};

/// A machine: its own config directory, hence its own key.
struct Machine {
    dir: PathBuf,
    fp: String,
}

fn machine(name: &str) -> Machine {
    let dir = scratch_dir(&format!("sl-net-{name}"));
    let out = Command::new(bin("sl-net"))
        .arg("key")
        .env("XDG_CONFIG_HOME", &dir)
        .output()
        .expect("run sl-net key");
    assert!(out.status.success(), "sl-net key: {:?}", out);
    let fp = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(fp.starts_with("SHA256:"), "{fp}");
    // a second call prints the same key: it was kept
    let again = Command::new(bin("sl-net"))
        .arg("key")
        .env("XDG_CONFIG_HOME", &dir)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(again.stdout).unwrap().trim(), fp);
    Machine { dir, fp }
}

/// A running program whose stdout is collected as it arrives.
struct Proc {
    child: Child,
    out: Arc<Mutex<Vec<u8>>>,
    out_thread: Option<JoinHandle<()>>,
    err_thread: Option<JoinHandle<String>>,
}

impl Proc {
    fn start(m: &Machine, args: &[&str], stdin: Option<Stdio>) -> Proc {
        let mut child = Command::new(bin("sl-net"))
            .args(args)
            .env("XDG_CONFIG_HOME", &m.dir)
            .stdin(stdin.unwrap_or_else(Stdio::null))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sl-net");
        let out = Arc::new(Mutex::new(Vec::new()));
        let mut so = child.stdout.take().unwrap();
        let o2 = Arc::clone(&out);
        let out_thread = thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            loop {
                match so.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => o2.lock().unwrap().extend_from_slice(&buf[..n]),
                }
            }
        });
        let mut se = child.stderr.take().unwrap();
        let err_thread = thread::spawn(move || {
            let mut s = String::new();
            let _ = se.read_to_string(&mut s);
            s
        });
        Proc {
            child,
            out,
            out_thread: Some(out_thread),
            err_thread: Some(err_thread),
        }
    }

    fn bytes_out(&self) -> usize {
        self.out.lock().unwrap().len()
    }

    /// Wait until stdout holds at least `n` bytes (panics after 30 s).
    fn wait_for_output(&mut self, n: usize) {
        let t = Instant::now();
        while self.bytes_out() < n {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!(
                    "exited {st} before writing {n} bytes: {}",
                    self.stderr_now()
                );
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "no output after 30 s"
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn stderr_now(&mut self) -> String {
        let _ = self.child.kill();
        self.err_thread
            .take()
            .map(|t| t.join().unwrap())
            .unwrap_or_default()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    /// Wait (60 s at most) and return (exit code, stdout, stderr).
    fn finish(mut self) -> (Option<i32>, Vec<u8>, String) {
        let t = Instant::now();
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            if t.elapsed() > Duration::from_secs(60) {
                let _ = self.child.kill();
                let err = self.err_thread.take().unwrap().join().unwrap();
                panic!("sl-net did not exit within 60 s; stderr:\n{err}");
            }
            thread::sleep(Duration::from_millis(10));
        };
        self.out_thread.take().unwrap().join().unwrap();
        let err = self.err_thread.take().unwrap().join().unwrap();
        let out = std::mem::take(&mut *self.out.lock().unwrap());
        (status.code(), out, err)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Wait until something has bound UDP `addr` (a listener is ready).
fn wait_bound(addr: &str) {
    sl_e2e::wait_for_listener("udp", addr);
}

/// `sl-net listen ADDR ARGS...` run by machine `m`, once it is listening.
fn listening(m: &Machine, addr: &str, args: &[&str]) -> Proc {
    let listener = Proc::start(m, &[&["listen", addr], args].concat(), None);
    wait_bound(addr);
    listener
}

/// `sl-test TEST_ARGS | sl-net serve ADDR ARGS...` run by machine `m`, once it is listening.
fn serving(m: &Machine, test_args: &[&str], addr: &str, args: &[&str]) -> Running {
    let server = send_pipeline(m, test_args, &[&["serve", addr], args].concat()).spawn();
    wait_bound(addr);
    server
}

/// A pipeline `sl-test ARGS | sl-net send ...` run by machine `m`.
fn send_pipeline(m: &Machine, test_args: &[&str], send_args: &[&str]) -> Pipeline {
    Pipeline::new()
        .sl("sl-test", test_args)
        .sl("sl-net", send_args)
        .env("XDG_CONFIG_HOME", &m.dir)
}

fn test_stream(args: &[&str]) -> Vec<u8> {
    let out = Pipeline::new().sl("sl-test", args).run();
    out.assert_success();
    out.stdout
}

#[test]
fn send_to_listen_delivers_every_frame_and_ends_cleanly_on_both_sides() {
    let (a, b) = (machine("send-a"), machine("send-b"));
    let addr = format!("127.0.0.1:{}", free_udp_port());
    let listener = listening(&b, &addr, &["--peer", &a.fp, "--json"]);
    let sent = send_pipeline(
        &a,
        &["--fast", "-n", "60", "-s", "320x240", "-p", "box"],
        &["send", &addr, "--peer", &b.fp],
    )
    .run();
    sent.assert_success();
    let (code, out, err) = listener.finish();
    assert_eq!(code, Some(0), "listen: {err}");
    let got = decode(&out).expect("a complete stream");
    let want = decode(&test_stream(&[
        "--fast", "-n", "60", "-s", "320x240", "-p", "box",
    ]))
    .unwrap();
    assert!(
        matches!(got[0], Message::Stream { .. }),
        "descriptions first"
    );
    let (gf, wf) = (video_frames(&got), video_frames(&want));
    assert_eq!(gf.len(), 60);
    for (g, w) in gf.iter().zip(&wf) {
        assert_eq!(g.info.frame_number, w.info.frame_number);
        assert_eq!(g.info.pts, w.info.pts);
        assert_eq!(
            g.data(),
            w.data(),
            "pixels of frame {}",
            g.info.frame_number
        );
        assert!(g.info.capture_time_ns.is_some(), "capture times travel");
    }
    // the --json summary is one JSON object on stderr
    let json_line = err
        .lines()
        .find(|l| l.starts_with('{'))
        .expect("json summary");
    let v: serde_json::Value = serde_json::from_str(json_line).unwrap();
    assert_eq!(v["frames"], 60);
    assert_eq!(v["missing_frames"], 0);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["error"], serde_json::Value::Null, "{v}");
}

#[test]
fn ipv6_loopback_works() {
    let (a, b) = (machine("v6-a"), machine("v6-b"));
    let port = free_udp_port();
    let addr = format!("[::1]:{port}");
    let listener = listening(&b, &addr, &["--peer", &a.fp]);
    send_pipeline(
        &a,
        &["--fast", "-n", "10", "-s", "64x48"],
        &["send", &format!("quic://{addr}"), "--peer", &b.fp],
    )
    .run()
    .assert_success();
    let (code, out, err) = listener.finish();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(video_frames(&decode(&out).unwrap()).len(), 10);
}

#[test]
fn an_unpinned_sender_is_refused_and_both_sides_say_how_to_pin() {
    let (a, b, c) = (machine("unpin-a"), machine("unpin-b"), machine("unpin-c"));
    let addr = format!("127.0.0.1:{}", free_udp_port());
    // the listener trusts c, not a
    let listener = listening(&b, &addr, &["--peer", &c.fp]);
    let sent = send_pipeline(
        &a,
        &["--fast", "-n", "5", "-s", "64x48"],
        &["send", &addr, "--peer", &b.fp],
    )
    .run();
    let s = sent.stage(1);
    assert_eq!(s.code, Some(1), "{}", s.stderr);
    assert!(
        s.stderr.contains("refused this machine's key")
            && s.stderr.contains(&format!("sl-net allow {}", a.fp)),
        "sender: {}",
        s.stderr
    );
    listener.signal("INT");
    let (code, out, err) = listener.finish();
    assert_eq!(code, Some(130), "{err}");
    assert!(
        err.contains(&a.fp) && err.contains("not pinned") && err.contains("--peer"),
        "listener: {err}"
    );
    // Ctrl-C still ends the listener's output properly, with no frames in it
    assert!(video_frames(&decode(&out).unwrap()).is_empty());
}

#[test]
fn a_listener_with_the_wrong_key_is_refused_by_the_sender() {
    let (a, b, c) = (machine("wrong-a"), machine("wrong-b"), machine("wrong-c"));
    let addr = format!("127.0.0.1:{}", free_udp_port());
    let listener = listening(&b, &addr, &["--peer", &a.fp]);
    // the sender expects c's key at that address
    let sent = send_pipeline(
        &a,
        &["--fast", "-n", "5", "-s", "64x48"],
        &["send", &addr, "--peer", &c.fp],
    )
    .run();
    let s = sent.stage(1);
    assert_eq!(s.code, Some(1), "{}", s.stderr);
    assert!(
        s.stderr.contains(&b.fp) && s.stderr.contains("not pinned"),
        "sender: {}",
        s.stderr
    );
    listener.signal("INT");
    let (code, _, err) = listener.finish();
    assert_eq!(code, Some(130), "{err}");
    assert!(
        err.contains("refused this machine's key"),
        "listener: {err}"
    );
}

#[test]
fn nothing_pinned_is_a_usage_error_naming_this_key() {
    let a = machine("nopin");
    let (code, _, err) = {
        let out = Command::new(bin("sl-net"))
            .args(["listen", "127.0.0.1:1"])
            .env("XDG_CONFIG_HOME", &a.dir)
            .stdout(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code(),
            (),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--peer") && err.contains(&a.fp), "{err}");
}

#[test]
fn a_key_file_named_on_the_command_line_must_exist() {
    let a = machine("keyfile");
    let named = a.dir.join("studio-key.pem");
    let typo = a.dir.join("studio-kye.pem");
    let run = |args: &[&str]| {
        let out = Command::new(bin("sl-net"))
            .args(args)
            .env("XDG_CONFIG_HOME", &a.dir)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // a role given a path with nothing there refuses, says how to make one, and makes none
    let (code, _, err) = run(&["listen", "127.0.0.1:1", "--key", typo.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("no key at") && err.contains("sl-net key --key"),
        "{err}"
    );
    assert!(!typo.exists(), "no key was made at the mistyped path");
    // `sl-net key --key FILE` makes one there, and a role then uses that key
    let (code, fp, err) = run(&["key", "--key", named.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(fp.starts_with("SHA256:") && fp != a.fp, "{fp}");
    let (code, again, _) = run(&["key", "--key", named.to_str().unwrap()]);
    assert_eq!((code, again.as_str()), (Some(0), fp.as_str()));
    // (nothing pinned: the usage error names the key this run would present)
    let (code, _, err) = run(&["listen", "127.0.0.1:1", "--key", named.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(&fp) && !err.contains(&a.fp), "{err}");
}

#[test]
fn allowed_keys_file_pins_peers() {
    let (a, b) = (machine("allow-a"), machine("allow-b"));
    for (m, other) in [(&a, &b), (&b, &a)] {
        let (code, _, err) = {
            let out = Command::new(bin("sl-net"))
                .args(["allow", &other.fp, "the other one"])
                .env("XDG_CONFIG_HOME", &m.dir)
                .output()
                .unwrap();
            (
                out.status.code(),
                (),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        };
        assert_eq!(code, Some(0), "{err}");
    }
    let addr = format!("127.0.0.1:{}", free_udp_port());
    let listener = listening(&b, &addr, &[]);
    send_pipeline(&a, &["--fast", "-n", "3", "-s", "64x48"], &["send", &addr])
        .run()
        .assert_success();
    let (code, out, err) = listener.finish();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(video_frames(&decode(&out).unwrap()).len(), 3);
}

#[test]
fn a_truncated_upstream_gives_a_truncated_downstream_and_exit_1_on_both_sides() {
    let (a, b) = (machine("trunc-a"), machine("trunc-b"));
    let addr = format!("127.0.0.1:{}", free_udp_port());
    let listener = listening(&b, &addr, &["--peer", &a.fp]);
    let mut bytes = test_stream(&["--fast", "-n", "8", "-s", "64x48"]);
    bytes.truncate(bytes.len() - 16); // no END
    let sent = Pipeline::new()
        .sl("sl-net", &["send", &addr, "--peer", &b.fp])
        .env("XDG_CONFIG_HOME", &a.dir)
        .stdin(bytes)
        .run();
    let s = sent.stage(0);
    assert_eq!(s.code, Some(1), "{}", s.stderr);
    assert!(s.stderr.contains("truncated"), "{}", s.stderr);
    let (code, out, err) = listener.finish();
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("truncated"), "{err}");
    let mut r = Reader::new(&out[..]).unwrap();
    let mut frames = 0;
    loop {
        match r.next_message() {
            Ok(Some(Message::Video { .. })) => frames += 1,
            Ok(Some(_)) => {}
            Ok(None) => panic!("the listener ended a stream whose sender's input was truncated"),
            Err(WireError::Truncated(_)) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(frames, 8);
}

#[test]
fn garbage_input_is_named_at_once_and_the_listener_waits_on_for_a_real_sender() {
    let (a, b) = (machine("garbage-a"), machine("garbage-b"));
    let addr = format!("127.0.0.1:{}", free_udp_port());
    let listener = listening(&b, &addr, &["--peer", &a.fp]);
    // text, and nothing at all (the stage before failed before writing its stream)
    for input in [&b"hello, this is text and not video\n"[..], b""] {
        let sent = Pipeline::new()
            .sl("sl-net", &["send", &addr, "--peer", &b.fp])
            .env("XDG_CONFIG_HOME", &a.dir)
            .stdin(input.to_vec())
            .run();
        let s = sent.stage(0);
        assert_eq!(s.code, Some(1), "{}", s.stderr);
        assert!(
            s.stderr.contains("not a streamlib stream") || s.stderr.contains("empty"),
            "{}",
            s.stderr
        );
        assert!(!s.stderr.contains("connected"), "{}", s.stderr);
    }
    // the input failed before anything was sent: the listener never saw a connection, and
    // takes the sender that comes next
    send_pipeline(
        &a,
        &["--fast", "-n", "4", "-s", "64x48"],
        &["send", &addr, "--peer", &b.fp],
    )
    .run()
    .assert_success();
    let (code, out, err) = listener.finish();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(video_frames(&decode(&out).unwrap()).len(), 4, "{err}");
}

#[test]
fn garbage_input_to_a_server_waiting_for_receivers_is_named_at_once() {
    let a = machine("garbage-serve");
    let addr = format!("127.0.0.1:{}", free_udp_port());
    let server = Proc::start(
        &a,
        &[
            "serve",
            &addr,
            "--wait-for",
            "2",
            "--insecure-accept-any-key",
        ],
        Some(Stdio::from(
            std::fs::File::open(scratch_file("garbage-serve", b"not video either\n")).unwrap(),
        )),
    );
    // it used to wait for its receivers before reading a byte, and so forever
    let (code, _, err) = server.finish();
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("not a streamlib stream"), "{err}");
}

/// A file of `bytes` in a scratch directory of its own.
fn scratch_file(name: &str, bytes: &[u8]) -> PathBuf {
    let f = scratch_dir(&format!("sl-net-file-{name}")).join(name);
    std::fs::write(&f, bytes).unwrap();
    f
}

/// `sl-net ARGS` run by machine `m` with `/etc/hosts` replaced by `hosts` (a mount namespace
/// of its own), so a test can give a name two addresses.
fn with_hosts(m: &Machine, hosts: &str, args: &[&str], stdin: Vec<u8>) -> sl_e2e::Outcome {
    sl_e2e::require("unshare");
    let file = scratch_file("hosts", hosts.as_bytes());
    let script = format!(
        "mount --bind {} /etc/hosts && exec \"$0\" \"$@\"",
        file.display()
    );
    let mut argv = vec!["-m", "sh", "-c", &script];
    let sl_net = bin("sl-net");
    let sl_net = sl_net.to_str().unwrap();
    argv.push(sl_net);
    argv.extend_from_slice(args);
    Pipeline::new()
        .cmd("unshare", &argv)
        .env("XDG_CONFIG_HOME", &m.dir)
        .stdin(stdin)
        .run()
}

#[test]
fn a_name_whose_ipv6_address_does_not_answer_is_reached_on_its_ipv4_one() {
    let (a, b) = (machine("names-a"), machine("names-b"));
    let port = free_udp_port();
    // `studio` has an IPv6 address first (nobody listens there) and an IPv4 one, as
    // `localhost` has on most machines
    let hosts = "::1 studio\n127.0.0.1 studio\n127.0.0.1 localhost\n";
    let listener = listening(&b, &format!("127.0.0.1:{port}"), &["--peer", &a.fp]);
    let input = test_stream(&["--fast", "-n", "6", "-s", "64x48"]);
    let target = format!("studio:{port}");
    let sent = with_hosts(&a, hosts, &["send", &target, "--peer", &b.fp], input);
    assert_eq!(sent.stage(0).code, Some(0), "{}", sent.stage(0).stderr);
    let (code, out, err) = listener.finish();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(video_frames(&decode(&out).unwrap()).len(), 6, "{err}");
    // nobody on either address: the error names both
    let nobody = format!("studio:{}", free_udp_port());
    let input = test_stream(&["--fast", "-n", "2", "-s", "64x48"]);
    let sent = with_hosts(&a, hosts, &["send", &nobody, "--peer", &b.fp], input);
    let s = sent.stage(0);
    assert_eq!(s.code, Some(1), "{}", s.stderr);
    assert!(s.stderr.contains("no answer from studio:"), "{}", s.stderr);
    assert!(
        s.stderr.contains("[::1]:") && s.stderr.contains("127.0.0.1:"),
        "{}",
        s.stderr
    );
}

#[test]
fn random_datagrams_do_not_disturb_a_listener() {
    let (a, b) = (machine("udp-a"), machine("udp-b"));
    let addr = format!("127.0.0.1:{}", free_udp_port());
    let listener = listening(&b, &addr, &["--peer", &a.fp]);
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for i in 0..500 {
        let len = 1 + (i * 37) % 1400;
        let pkt: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        sock.send_to(&pkt, &addr).unwrap();
    }
    send_pipeline(
        &a,
        &["--fast", "-n", "5", "-s", "64x48"],
        &["send", &addr, "--peer", &b.fp],
    )
    .run()
    .assert_success();
    let (code, out, err) = listener.finish();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(video_frames(&decode(&out).unwrap()).len(), 5);
}

#[test]
fn address_in_use_and_unreachable_host_are_clear_errors() {
    let (a, b) = (machine("addr-a"), machine("addr-b"));
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(bin("sl-net"))
        .args(["listen", &addr, "--peer", &a.fp])
        .env("XDG_CONFIG_HOME", &b.dir)
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("in use"), "{err}");
    drop(taken);
    // nobody listens on this port
    let nobody = format!("127.0.0.1:{}", free_udp_port());
    let sent = send_pipeline(
        &a,
        &["--fast", "-n", "3", "-s", "64x48"],
        &["send", &nobody, "--peer", &b.fp],
    )
    .run();
    let s = sent.stage(1);
    assert_eq!(s.code, Some(1), "{}", s.stderr);
    assert!(s.stderr.contains("no answer from"), "{}", s.stderr);
}

#[test]
fn ctrl_c_on_the_sender_ends_both_sides_cleanly() {
    let (a, b) = (machine("intr-a"), machine("intr-b"));
    let addr = format!("127.0.0.1:{}", free_udp_port());
    let mut listener = listening(&b, &addr, &["--peer", &a.fp]);
    // a live source that never ends by itself
    let running = send_pipeline(
        &a,
        &["-s", "160x120", "--fps", "30"],
        &["send", &addr, "--peer", &b.fp],
    )
    .spawn();
    listener.wait_for_output(160 * 120 * 4 * 3);
    // Ctrl-C in a terminal reaches every stage of the pipeline
    running.signal(1, "INT");
    running.signal(0, "INT");
    let sent = running.wait();
    assert_eq!(sent.stage(1).code, Some(130), "{}", sent.stage(1).stderr);
    let (code, out, err) = listener.finish();
    assert_eq!(code, Some(0), "{err}");
    let frames = video_frames(&decode(&out).expect("a complete stream"));
    assert!(frames.len() >= 3);
}

#[test]
fn ctrl_c_on_the_listener_ends_its_output_and_the_sender_quietly() {
    let (a, b) = (machine("lintr-a"), machine("lintr-b"));
    let addr = format!("127.0.0.1:{}", free_udp_port());
    let mut listener = listening(&b, &addr, &["--peer", &a.fp]);
    let running = send_pipeline(
        &a,
        &["-s", "160x120", "--fps", "30"],
        &["send", &addr, "--peer", &b.fp],
    )
    .spawn();
    listener.wait_for_output(160 * 120 * 4 * 3);
    listener.signal("INT");
    let (code, out, err) = listener.finish();
    assert_eq!(code, Some(130), "{err}");
    assert!(decode(&out).is_ok(), "the output is a complete stream");
    running.signal(0, "INT");
    let sent = running.wait();
    assert_eq!(sent.stage(1).code, Some(0), "{}", sent.stage(1).stderr);
}

#[test]
fn ten_receivers_with_block_each_get_every_frame() {
    let (a, b) = (machine("fan-a"), machine("fan-b"));
    let addr = format!("127.0.0.1:{}", free_udp_port());
    let server = serving(
        &a,
        &["--fast", "-n", "100", "-s", "160x120", "-p", "box"],
        &addr,
        &["--wait-for", "10", "--peer", &b.fp],
    );
    let recvs: Vec<Proc> = (0..10)
        .map(|_| {
            Proc::start(
                &b,
                &["recv", &addr, "--policy", "block", "--peer", &a.fp],
                None,
            )
        })
        .collect();
    let served = server.wait();
    served.assert_success();
    for (i, r) in recvs.into_iter().enumerate() {
        let (code, out, err) = r.finish();
        assert_eq!(code, Some(0), "recv {i}: {err}");
        let msgs = decode(&out).expect("a complete stream");
        assert!(matches!(msgs[0], Message::Stream { .. }));
        let frames = video_frames(&msgs);
        let numbers: Vec<u64> = frames.iter().map(|f| f.info.frame_number).collect();
        assert_eq!(numbers, (0..100).collect::<Vec<_>>(), "recv {i}");
    }
}

#[test]
fn latest_delivers_whole_frames_in_order_and_counts_the_gaps() {
    let (a, b) = (machine("latest-a"), machine("latest-b"));
    let addr = format!("127.0.0.1:{}", free_udp_port());
    let server = serving(
        &a,
        &["--fast", "-n", "120", "-s", "1280x720", "-p", "box"],
        &addr,
        &["--wait-for", "1", "--codec", "raw", "--peer", &b.fp],
    );
    let r = Proc::start(
        &b,
        &[
            "recv", &addr, "--policy", "latest", "--peer", &a.fp, "--json",
        ],
        None,
    );
    server.wait().assert_success();
    let (code, out, err) = r.finish();
    assert_eq!(code, Some(0), "{err}");
    let frames = video_frames(&decode(&out).expect("a complete stream"));
    assert!(!frames.is_empty());
    let numbers: Vec<u64> = frames.iter().map(|f| f.info.frame_number).collect();
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "in order: {numbers:?}"
    );
    let want = decode(&test_stream(&[
        "--fast", "-n", "120", "-s", "1280x720", "-p", "box",
    ]))
    .unwrap();
    let wf = video_frames(&want);
    for f in &frames {
        assert_eq!(
            f.data(),
            wf[f.info.frame_number as usize].data(),
            "whole frames only"
        );
    }
    let json_line = err
        .lines()
        .find(|l| l.starts_with('{'))
        .expect("json summary");
    let v: serde_json::Value = serde_json::from_str(json_line).unwrap();
    let first = numbers[0];
    let missing = (numbers.last().unwrap() - first + 1) - numbers.len() as u64;
    assert_eq!(v["missing_frames"], missing, "{v}");
}

/// A reader downstream of the listener that takes 100 ms over each frame, a third of the
/// source's rate: under `latest` the listener drops the frames it could not hand over (stale,
/// as the sender would on a slow link) instead of queueing them, so the output does not fall
/// further behind the source for as long as it runs.
#[test]
fn latest_behind_a_slow_reader_drops_stale_frames_instead_of_falling_behind() {
    let (a, b) = (machine("slow-out-a"), machine("slow-out-b"));
    let addr = format!("127.0.0.1:{}", free_udp_port());
    let mut child = Command::new(bin("sl-net"))
        .args(["listen", &addr, "--peer", &a.fp, "--json"])
        .env("XDG_CONFIG_HOME", &b.dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_bound(&addr);
    let so = child.stdout.take().unwrap();
    let reader = thread::spawn(move || {
        let mut r = Reader::new(so).unwrap();
        let mut got = Vec::new();
        while let Ok(Some(m)) = r.next_message() {
            if matches!(m, Message::Video { .. }) {
                thread::sleep(Duration::from_millis(100));
            }
            got.push(m);
        }
        got
    });
    let mut se = child.stderr.take().unwrap();
    let err_thread = thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    // 90 frames at 30 fps: three seconds, read at ten frames a second at most
    send_pipeline(
        &a,
        &["-n", "90", "--fps", "30", "-s", "320x240", "-p", "box"],
        &["send", &addr, "--policy", "latest", "--peer", &b.fp],
    )
    .run()
    .assert_success();
    let status = child.wait().unwrap();
    let got = reader.join().unwrap();
    let err = err_thread.join().unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(
        got.last().is_some_and(Message::is_end_of_all),
        "a clean end"
    );
    let frames = video_frames(&got);
    let numbers: Vec<u64> = frames.iter().map(|f| f.info.frame_number).collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
    // queueing every frame for the reader would deliver all 90, nine seconds of reading for
    // three of source: the last frame out nearly six seconds late, and later the longer it ran
    assert!(
        numbers.len() < 60,
        "frames the reader could not take were dropped: {numbers:?}"
    );
    assert_eq!(numbers.last(), Some(&89), "the newest frame gets through");
    let v: serde_json::Value =
        serde_json::from_str(err.lines().find(|l| l.starts_with('{')).expect("json")).unwrap();
    let missing = numbers.last().unwrap() - numbers[0] + 1 - numbers.len() as u64;
    assert_eq!(v["missing_frames"], missing, "the gaps are reported: {v}");
    assert!(
        v["stale_frames"].as_u64().unwrap() > 0,
        "the listener says it dropped them as stale: {v}"
    );
}

#[test]
fn a_late_receiver_starts_with_the_descriptions() {
    let (a, b) = (machine("late-a"), machine("late-b"));
    let addr = format!("127.0.0.1:{}", free_udp_port());
    let server = serving(
        &a,
        &["-n", "150", "-s", "160x120", "--fps", "30"],
        &addr,
        &["--wait-for", "1", "--peer", &b.fp],
    );
    let mut first = Proc::start(&b, &["recv", &addr, "--peer", &a.fp], None);
    first.wait_for_output(160 * 120 * 4 * 10);
    let late = Proc::start(&b, &["recv", &addr, "--peer", &a.fp], None);
    server.wait().assert_success();
    let (code, out, err) = late.finish();
    assert_eq!(code, Some(0), "{err}");
    let msgs = decode(&out).expect("a complete stream");
    assert!(
        matches!(msgs[0], Message::Stream { .. }),
        "description first"
    );
    let frames = video_frames(&msgs);
    assert!(
        !frames.is_empty() && frames[0].info.frame_number > 0,
        "joined late"
    );
    let (code, _, err) = first.finish();
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn a_restarted_sender_is_picked_up_by_the_waiting_listener() {
    let (a, b) = (machine("restart-a"), machine("restart-b"));
    let addr = format!("127.0.0.1:{}", free_udp_port());
    let mut listener = listening(&b, &addr, &["--peer", &a.fp]);
    let first = send_pipeline(
        &a,
        &["-s", "160x120", "--fps", "30", "--source-id", "one"],
        &["send", &addr, "--peer", &b.fp],
    )
    .spawn();
    listener.wait_for_output(160 * 120 * 4 * 3);
    // the sender dies without a word
    first.signal(1, "KILL");
    first.signal(0, "KILL");
    let _ = first.wait();
    send_pipeline(
        &a,
        &["--fast", "-n", "20", "-s", "320x240", "--source-id", "two"],
        &["send", &addr, "--peer", &b.fp],
    )
    .run()
    .assert_success();
    let (code, out, err) = listener.finish();
    assert_eq!(code, Some(0), "{err}");
    let msgs = decode(&out).expect("a complete stream: the new sender ended it");
    let infos: Vec<&str> = msgs
        .iter()
        .filter_map(|m| match m {
            Message::Stream { info, .. } => Some(info.source_id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(infos.first(), Some(&"one"));
    assert_eq!(
        infos.last(),
        Some(&"two"),
        "a new description for the new sender"
    );
    let frames = video_frames(&msgs);
    let second: Vec<_> = frames
        .iter()
        .filter(|f| f.info.source_id == "two")
        .collect();
    assert_eq!(second.len(), 20);
    assert!(frames.iter().any(|f| f.info.source_id == "one"));
}

/// Frame numbers of the video frames in a (possibly truncated) stream.
fn frame_numbers(out: &[u8]) -> Vec<u64> {
    let mut n = Vec::new();
    let Ok(mut r) = Reader::new(out) else {
        return n;
    };
    while let Ok(Some(m)) = r.next_message() {
        if let Message::Video { frame, .. } = m {
            n.push(frame.info.frame_number);
        }
    }
    n
}

/// Frame numbers of a complete stream (it must end with END).
fn complete_frame_numbers(out: &[u8], what: &str) -> Vec<u64> {
    video_frames(&decode(out).expect(what))
        .iter()
        .map(|f| f.info.frame_number)
        .collect()
}

/// The `--json` summary among a stage's stderr lines.
fn json_summary(stderr: &str) -> serde_json::Value {
    serde_json::from_str(stderr.lines().find(|l| l.starts_with('{')).expect("json")).unwrap()
}

/// A `block` sender whose listener is killed mid-stream reconnects to the listener started in
/// its place and sends again what the dead one never wrote out: between the two outputs,
/// every frame arrived, and the sender ends with exit 0.
#[test]
fn a_block_sender_whose_listener_dies_resends_what_it_never_wrote_out() {
    let (a, b) = (machine("block-lost-a"), machine("block-lost-b"));
    let addr = format!("127.0.0.1:{}", free_udp_port());
    let mut first = listening(&b, &addr, &["--peer", &a.fp]);
    let sender = send_pipeline(
        &a,
        &["-n", "240", "-s", "160x120", "--fps", "30"],
        &["send", &addr, "--peer", &b.fp, "--json"],
    )
    .spawn();
    first.wait_for_output(160 * 120 * 4 * 10);
    first.child.kill().unwrap(); // SIGKILL: it writes nothing more, and says nothing
    let (_, out1, _) = first.finish();
    let second = listening(&b, &addr, &["--peer", &a.fp]);
    let sent = sender.wait();
    let (code, out2, err2) = second.finish();
    assert_eq!(
        code,
        Some(0),
        "the new listener gets a clean stream: {err2}"
    );
    let s = sent.stage(1);
    assert_eq!(s.code, Some(0), "{s:?}");
    assert!(s.stderr.contains("sending again"), "{}", s.stderr);
    let (n1, n2) = (frame_numbers(&out1), frame_numbers(&out2));
    let msgs = decode(&out2).expect("a complete stream");
    assert!(
        matches!(msgs[0], Message::Stream { .. }),
        "the new output starts with the description"
    );
    // the second output picks up where the first stopped writing: no gap, no repeat within it
    assert!(!n1.is_empty() && !n2.is_empty(), "{n1:?} {n2:?}");
    let resumed_at = n2[0];
    assert!(
        resumed_at <= n1.last().unwrap() + 1,
        "frames {}..{resumed_at} were lost between the outputs",
        n1.last().unwrap() + 1
    );
    assert_eq!(
        n2,
        (resumed_at..240).collect::<Vec<u64>>(),
        "the second output is every frame from {resumed_at} on"
    );
    assert_eq!(n1, (0..n1.len() as u64).collect::<Vec<u64>>());
    let v = json_summary(&s.stderr);
    assert_eq!(v["lost_frames"], 0, "{v}");
    assert_eq!(v["ok"], true, "{v}");
}

/// `sl-test -n 300 -s 160x120 --fps 30 | sl-net send ARGS...` to a listener that stops
/// answering for longer than the connection's timeout (SIGSTOP; a network outage is the same
/// to both ends), then goes on. The sender's outcome, and the listener's (code, out, err).
fn across_an_outage(
    tag: &str,
    send_args: &[&str],
) -> (sl_e2e::Outcome, (Option<i32>, Vec<u8>, String)) {
    let (a, b) = (machine(&format!("{tag}-a")), machine(&format!("{tag}-b")));
    let addr = format!("127.0.0.1:{}", free_udp_port());
    let mut listener = listening(&b, &addr, &["--peer", &a.fp]);
    let sender = send_pipeline(
        &a,
        &["-n", "300", "-s", "160x120", "--fps", "30"],
        &[&["send", &addr, "--peer", &b.fp], send_args].concat(),
    )
    .spawn();
    listener.wait_for_output(160 * 120 * 4 * 20);
    listener.signal("STOP");
    // past the 5 s idle timeout: both ends give the connection up
    thread::sleep(Duration::from_secs(7));
    listener.signal("CONT");
    let sent = sender.wait();
    (sent, listener.finish())
}

/// The outage comes after the sender has read all its input and sent END, while the listener
/// still has frames to write behind a slow reader: QUIC had acknowledged them, but they were
/// not written out. The sender waits for the listener's word that END was written, so it
/// reconnects and sends them again instead of ending with exit 0 and a stream without its end.
#[test]
fn a_block_link_whose_outage_comes_after_the_input_ended_still_delivers_the_end() {
    let (a, b) = (machine("outage-end-a"), machine("outage-end-b"));
    let addr = format!("127.0.0.1:{}", free_udp_port());
    let mut child = Command::new(bin("sl-net"))
        .args(["listen", &addr, "--peer", &a.fp])
        .env("XDG_CONFIG_HOME", &b.dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_bound(&addr);
    // about a frame (160x120 RGBA) every 100 ms
    let mut so = child.stdout.take().unwrap();
    let reader = thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = vec![0u8; 160 * 120 * 4];
        loop {
            match so.read(&mut buf) {
                Ok(0) | Err(_) => return all,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
            thread::sleep(Duration::from_millis(100));
        }
    });
    let mut se = child.stderr.take().unwrap();
    let err_thread = thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    let sender = send_pipeline(
        &a,
        &["--fast", "-n", "60", "-s", "160x120"],
        &["send", &addr, "--peer", &b.fp],
    )
    .spawn();
    // the sender's input has ended by now (it is at most 32 frames ahead of the reader)
    thread::sleep(Duration::from_millis(4500));
    let pid = child.id().to_string();
    let sig = |s: &str| {
        assert!(
            Command::new("kill")
                .args([s, &pid])
                .status()
                .unwrap()
                .success()
        );
    };
    sig("-STOP");
    thread::sleep(Duration::from_secs(7));
    sig("-CONT");
    let sent = sender.wait();
    let status = child.wait().unwrap();
    let out = reader.join().unwrap();
    let err = err_thread.join().unwrap();
    sent.assert_success();
    assert_eq!(status.code(), Some(0), "{err}");
    let numbers = complete_frame_numbers(&out, "a complete stream, with its END");
    assert_eq!(numbers, (0..60).collect::<Vec<u64>>(), "{err}");
}

/// An H.264-coded `block` link cannot be resumed mid-group: after an outage it starts again at
/// a keyframe, the frames in between are counted lost, said, and the sender exits 1; the
/// output stays a stream that decodes.
#[test]
fn an_h264_block_link_across_an_outage_counts_the_frames_it_skips_and_exits_1() {
    let (sent, (code, out, err)) = across_an_outage("outage264", &["--codec", "h264", "--json"]);
    let s = sent.stage(1);
    assert_eq!(s.code, Some(1), "{}", s.stderr);
    assert!(s.stderr.contains("frames were lost"), "{}", s.stderr);
    let v = json_summary(&s.stderr);
    let lost = v["lost_frames"].as_u64().unwrap();
    assert_eq!(code, Some(0), "{err}");
    let numbers = complete_frame_numbers(&out, "a complete stream");
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "in order, none twice"
    );
    assert!(lost > 0, "{v}");
    assert_eq!(
        numbers.len() as u64 + lost,
        300,
        "every frame written or counted lost: {} + {lost}",
        numbers.len()
    );
}

/// A `block` link across an outage reconnects, and the output has every frame once, in
/// order: the sender sends again what was not reported written, and the listener skips what
/// it had written out after all.
#[test]
fn a_block_link_across_an_outage_delivers_every_frame_once() {
    let (sent, (code, out, err)) = across_an_outage("outage", &[]);
    sent.assert_success();
    assert!(
        sent.stage(1).stderr.contains("reconnected"),
        "{}",
        sent.stage(1).stderr
    );
    assert_eq!(code, Some(0), "{err}");
    let numbers = complete_frame_numbers(&out, "a complete stream");
    assert_eq!(numbers, (0..300).collect::<Vec<u64>>(), "{err}");
}

#[test]
fn the_fingerprint_can_be_checked_with_openssl() {
    sl_e2e::require("openssl");
    let m = machine("openssl");
    let key = m.dir.join("streamlib").join("net-key.pem");
    // the pipeline docs/sl-net.md gives
    let out = Command::new("sh")
        .arg("-c")
        .arg("openssl pkey -in \"$0\" -pubout -outform DER | openssl dgst -sha256 -binary | base64")
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let b64 = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        format!("SHA256:{}", b64.trim().trim_end_matches('=')),
        m.fp,
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_key_other_users_can_read_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let m = machine("open-key");
    let key = m.dir.join("streamlib").join("net-key.pem");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "made private");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(bin("sl-net"))
        .arg("key")
        .env("XDG_CONFIG_HOME", &m.dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), m.fp);
    assert!(
        err.contains("can be read by other users") && err.contains("chmod 600"),
        "{err}"
    );
}

#[test]
fn help_and_usage() {
    let (code, out, _) = run_cmd(&bin("sl-net"), &["--help"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("listen") && out.contains("serve") && out.contains("latest"));
    let (code, _, err) = run_cmd(&bin("sl-net"), &["send"]);
    assert_eq!(code, Some(2), "{err}");
    let (code, _, err) = run_cmd(
        &bin("sl-net"),
        &["send", "h:1", "--policy", "sometimes", "--peer", "SHA256:x"],
    );
    assert_eq!(code, Some(2), "{err}");
    // the link codecs: named in the help, bad values are usage errors that say what to use
    let (code, out, _) = run_cmd(&bin("sl-net"), &["serve", "--help"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("--codec") && out.contains("jpeg for serve") && out.contains("--bitrate"),
        "{out}"
    );
    for (flag, value, says) in [
        ("--codec", "vp9", "raw, jpeg or h264"),
        // the one bit-rate parser of every stage (sl_cli::parse_bitrate)
        ("--bitrate", "fast", "not a bit rate: use e.g. 4M, 2500k"),
        ("--quality", "101", "1..=100"),
        ("--preset", "bogus", "ultrafast"),
    ] {
        let (code, _, err) = run_cmd(&bin("sl-net"), &["send", "127.0.0.1:9", flag, value]);
        assert_eq!(code, Some(2), "{flag} {value}: {err}");
        assert!(err.contains(says), "{flag} {value}: {err}");
    }
    // with --json, a command line that does not parse still ends with the summary object
    // (and without it, the usage message stays the only output)
    let (code, _, err) = run_cmd(
        &bin("sl-net"),
        &["recv", "127.0.0.1:9", "--json", "--codec", "h264"],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("Usage: sl-net recv"), "{err}");
    let last = err.lines().last().expect("a summary");
    let v: serde_json::Value = serde_json::from_str(last).expect(last);
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["role"], "recv", "{v}");
    assert_eq!(v["frames"], 0, "{v}");
    assert!(v["error"].as_str().unwrap().contains("'--codec'"), "{v}");
    let (code, _, err) = run_cmd(&bin("sl-net"), &["recv", "127.0.0.1:9", "--codec", "h264"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(!err.contains('{'), "{err}");
    // addresses a user gets slightly wrong: the error shows the right form
    for (addr, says) in [
        ("::1:4433", "`[::1]:4433`"),
        ("quic://::1:4433", "`quic://[::1]:4433`"),
        ("127.0.0.1:0", "port 0 cannot be dialled"),
        (":4433", "`quic://studio:4433`"),
    ] {
        let (code, _, err) = run_cmd(
            &bin("sl-net"),
            &[
                "send",
                addr,
                "--peer",
                "SHA256:tiBAId32ObmOhF2epCcRYzvLJ/xP5qihIHDBA9sxD98",
            ],
        );
        assert_eq!(code, Some(2), "{addr}: {err}");
        assert!(err.contains(says), "{addr}: {err}");
    }
}

/// Two network namespaces joined by a veth pair, made for one test and removed when dropped.
/// Packets into either side are dropped at 5% at random (nftables `numgen`), and packets into
/// `b` are delayed 40 ms by tests/net/delay.py through NFQUEUE (this kernel has no netem).
struct Lossy {
    a: String,
    b: String,
    ip_a: String,
    delayer: Option<Child>,
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| {
            panic!("{args:?}: {e} (scripts/setup.sh installs iproute2, nftables, iptables)")
        });
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Lossy {
    fn new(tag: u8) -> Lossy {
        for p in ["ip", "nft", "iptables", "python3"] {
            sl_e2e::require(p);
        }
        let id = std::process::id() % 100_000;
        let (a, b) = (format!("slnet{id}{tag}a"), format!("slnet{id}{tag}b"));
        let (va, vb) = (format!("sl{id}{tag}a"), format!("sl{id}{tag}b"));
        let net = format!("10.213.{}", 100 + tag);
        let mut l = Lossy {
            a: a.clone(),
            b: b.clone(),
            ip_a: format!("{net}.1"),
            delayer: None,
        };
        sh(&["ip", "netns", "add", &a]);
        sh(&["ip", "netns", "add", &b]);
        sh(&[
            "ip", "link", "add", &va, "type", "veth", "peer", "name", &vb,
        ]);
        sh(&["ip", "link", "set", &va, "netns", &a]);
        sh(&["ip", "link", "set", &vb, "netns", &b]);
        for (ns, dev, ip) in [
            (&a, &va, format!("{net}.1/24")),
            (&b, &vb, format!("{net}.2/24")),
        ] {
            sh(&["ip", "-n", ns, "addr", "add", &ip, "dev", dev]);
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            sh(&[
                "ip", "netns", "exec", ns, "nft", "add", "table", "inet", "loss",
            ]);
            sh(&[
                "ip",
                "netns",
                "exec",
                ns,
                "nft",
                "add",
                "chain",
                "inet",
                "loss",
                "in",
                "{ type filter hook input priority -10; }",
            ]);
            sh(&[
                "ip", "netns", "exec", ns, "nft", "add", "rule", "inet", "loss", "in", "iifname",
                dev, "numgen", "random", "mod", "100", "<", "5", "drop",
            ]);
        }
        sh(&[
            "ip",
            "netns",
            "exec",
            &b,
            "iptables",
            "-A",
            "INPUT",
            "-i",
            &vb,
            "-j",
            "NFQUEUE",
            "--queue-num",
            "0",
        ]);
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/net/delay.py");
        let mut child = Command::new("ip")
            .args(["netns", "exec", &b, "python3", script, "0", "40"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the delayer");
        let mut line = [0u8; 6];
        child
            .stdout
            .as_mut()
            .unwrap()
            .read_exact(&mut line)
            .expect("delayer ready");
        assert_eq!(&line, b"ready\n");
        l.delayer = Some(child);
        l
    }

    /// `ip netns exec NS program args...` as a pipeline stage's argument list.
    fn exec<'s>(ns: &'s str, program: &'s str, args: &[&'s str]) -> Vec<&'s str> {
        let mut v = vec!["netns", "exec", ns, program];
        v.extend_from_slice(args);
        v
    }

    fn wait_bound(&self, ns: &str, port: u16) {
        let t = Instant::now();
        loop {
            let out = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    ns,
                    "ss",
                    "-Hlun",
                    &format!("sport = :{port}"),
                ])
                .output()
                .unwrap();
            if !out.stdout.is_empty() {
                return;
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "nothing bound {port} in {ns}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Lossy {
    fn drop(&mut self) {
        if let Some(mut d) = self.delayer.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// serve in namespace a, recv in namespace b, 150 small live frames (30 fps) across 5% loss
/// each way and 40 ms of delay. Returns the frame numbers received and the recv summary.
fn lossy_run(tag: u8, policy: &str) -> (Vec<u64>, serde_json::Value) {
    let (frames, v) = lossy_run_frames(tag, policy, "jpeg");
    (frames.iter().map(|f| f.info.frame_number).collect(), v)
}

/// [`lossy_run`] with a link codec, returning the frames.
fn lossy_run_frames(
    tag: u8,
    policy: &str,
    codec: &str,
) -> (Vec<sl_frame::VideoFrame>, serde_json::Value) {
    let (fa, fb) = (
        machine(&format!("loss{tag}-a")),
        machine(&format!("loss{tag}-b")),
    );
    let net = Lossy::new(tag);
    let port = 4433u16;
    let addr = format!("{}:{port}", net.ip_a);
    let (sl_test, sl_net) = (bin("sl-test"), bin("sl-net"));
    let (sl_test, sl_net) = (sl_test.to_str().unwrap(), sl_net.to_str().unwrap());
    let server = Pipeline::new()
        .cmd(
            "ip",
            &Lossy::exec(
                &net.a,
                sl_test,
                &["-n", "150", "-s", "64x48", "-f", "gray8"],
            ),
        )
        .cmd(
            "ip",
            &Lossy::exec(
                &net.a,
                sl_net,
                &[
                    "serve",
                    &addr,
                    "--wait-for",
                    "1",
                    "--codec",
                    codec,
                    "--peer",
                    &fb.fp,
                ],
            ),
        )
        .env("XDG_CONFIG_HOME", &fa.dir)
        .timeout(Duration::from_secs(120))
        .spawn();
    net.wait_bound(&net.a, port);
    let recv = Pipeline::new()
        .cmd(
            "ip",
            &Lossy::exec(
                &net.b,
                sl_net,
                &[
                    "recv",
                    &addr,
                    "--policy",
                    policy,
                    "--peer",
                    &fa.fp,
                    "--json",
                    "--no-reconnect",
                ],
            ),
        )
        .env("XDG_CONFIG_HOME", &fb.dir)
        .timeout(Duration::from_secs(120))
        .run();
    let served = server.wait();
    served.assert_success();
    recv.assert_success();
    let frames = video_frames(&decode(&recv.stdout).expect("a complete stream"));
    let err = &recv.stage(0).stderr;
    let json_line = err
        .lines()
        .find(|l| l.starts_with('{'))
        .expect("json summary");
    let v: serde_json::Value = serde_json::from_str(json_line).unwrap();
    eprintln!("{policy} ({codec}) over 5% loss and 40 ms: {v}");
    (frames, v)
}

/// Most of the last two seconds' frames (90..150 of a 30 fps source) arrive. Not counted from
/// the first frame: the server holds its live source until the receiver is there (`--wait-for
/// 1`), and a handshake whose packets are lost too takes 0.3, 0.9 or 2.1 s, so the frames the
/// source made meanwhile are stale when the link comes up, and `latest` rightly drops them.
fn assert_frames_keep_coming(numbers: &[u64]) {
    let late = numbers.iter().filter(|&&n| n >= 90).count();
    assert!(
        late >= 40,
        "frames keep coming: {late} of the last 60 arrived: {numbers:?}"
    );
}

#[test]
fn latest_keeps_frames_coming_across_loss_and_delay() {
    let (numbers, v) = lossy_run(1, "latest");
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "in order, whole: {numbers:?}"
    );
    // the newest frame is never superseded, so the end of the stream always arrives
    assert_eq!(numbers.last(), Some(&149), "{numbers:?}");
    assert_frames_keep_coming(&numbers);
    let missing = 150 - numbers.len() as u64 - numbers[0];
    assert_eq!(v["missing_frames"], missing);
    assert!(v["latency_ms"]["p99"].as_f64().is_some());
    assert!(
        v["packets_lost"].as_u64().unwrap() > 0,
        "the loss was real: {v}"
    );
}

#[test]
fn an_h264_link_under_latest_decodes_right_across_loss_and_delay() {
    let (frames, v) = lossy_run_frames(3, "latest", "h264");
    let numbers: Vec<u64> = frames.iter().map(|f| f.info.frame_number).collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
    assert_frames_keep_coming(&numbers);
    let want = video_frames(
        &decode(&test_stream(&[
            "--fast", "-n", "150", "-s", "64x48", "-f", "gray8",
        ]))
        .unwrap(),
    );
    for f in &frames {
        let d = mean_abs_diff(f, &want[f.info.frame_number as usize]);
        assert!(
            d < 2.0,
            "frame {} decodes wrong: diff {d:.2}",
            f.info.frame_number
        );
    }
    assert!(
        v["packets_lost"].as_u64().unwrap() > 0,
        "the loss was real: {v}"
    );
}

#[test]
fn block_loses_nothing_across_loss_and_delay() {
    let (numbers, v) = lossy_run(2, "block");
    assert_eq!(numbers, (0..150).collect::<Vec<_>>());
    assert_eq!(v["missing_frames"], 0);
    assert!(
        v["packets_lost"].as_u64().unwrap() > 0,
        "the loss was real: {v}"
    );
}

#[test]
fn a_receiver_reconnects_to_a_restarted_server_and_sees_a_new_description() {
    let (a, b) = (machine("rserve-a"), machine("rserve-b"));
    let addr = format!("127.0.0.1:{}", free_udp_port());
    let first = serving(
        &a,
        &["-s", "160x120", "--fps", "30", "--source-id", "one"],
        &addr,
        &["--wait-for", "1", "--peer", &b.fp],
    );
    let mut r = Proc::start(
        &b,
        &["recv", &addr, "--policy", "block", "--peer", &a.fp],
        None,
    );
    r.wait_for_output(160 * 120 * 4 * 3);
    // the server dies without a word, and comes back
    first.signal(1, "KILL");
    first.signal(0, "KILL");
    let _ = first.wait();
    let second = Pipeline::new()
        .sl(
            "sl-test",
            &["--fast", "-n", "20", "-s", "64x48", "--source-id", "two"],
        )
        .sl(
            "sl-net",
            &["serve", &addr, "--wait-for", "1", "--peer", &b.fp],
        )
        .env("XDG_CONFIG_HOME", &a.dir)
        .spawn();
    second.wait().assert_success();
    let (code, out, err) = r.finish();
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("reconnected"), "{err}");
    let msgs = decode(&out).expect("one complete stream across both servers");
    let infos: Vec<&str> = msgs
        .iter()
        .filter_map(|m| match m {
            Message::Stream { info, .. } => Some(info.source_id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(infos.first(), Some(&"one"));
    assert_eq!(infos.last(), Some(&"two"));
    let frames = video_frames(&msgs);
    assert_eq!(
        frames.iter().filter(|f| f.info.source_id == "two").count(),
        20
    );
}

// ---- compression per link (--codec) ----

/// Mean absolute difference of two frames' bytes (same format and size).
fn mean_abs_diff(a: &sl_frame::VideoFrame, b: &sl_frame::VideoFrame) -> f64 {
    assert_eq!(
        (a.format(), a.width(), a.height()),
        (b.format(), b.width(), b.height())
    );
    let (w, h) = (a.width(), a.height());
    let mut sum = 0u64;
    let mut n = 0u64;
    for p in 0..a.plane_count() {
        let (row, rows) = a.format().plane_dims(p, w, h);
        for y in 0..rows {
            let (ra, rb) = (&a.row(p, y)[..row], &b.row(p, y)[..row]);
            sum += ra
                .iter()
                .zip(rb)
                .map(|(x, y)| (*x as i32 - *y as i32).unsigned_abs() as u64)
                .sum::<u64>();
            n += row as u64;
        }
    }
    sum as f64 / n as f64
}

/// sl-test's moving gradient (measured worst mean abs diff after a link: jpeg 0.68, h264 0.66
/// of 255 for RGBA, 0.3 for YUV) with everything else a stream can carry around it: metadata and
/// PTP times on every frame, an audio stream, a data stream and an already compressed
/// H.264 stream (stream 2, made-up bytes: they must arrive byte for byte).
fn rich_stream(format: &str, size: &str, frames: u32) -> (Vec<u8>, Vec<Message>) {
    use sl_frame::{AudioChunk, FrameInfo, Metadata, Packet, Rational, SampleFormat, VideoCodec};
    use sl_wire::{AudioParams, DataMessage, StreamInfo, StreamKind, VideoFormat, VideoParams};
    let n = frames.to_string();
    let base = decode(&test_stream(&[
        "--fast", "-n", &n, "-s", size, "-f", format, "-p", "gradient",
    ]))
    .unwrap();
    let mut msgs = Vec::new();
    let mut meta = Metadata::new();
    meta.insert("camera", "studio-2");
    msgs.push(Message::Stream {
        stream: 1,
        info: StreamInfo {
            kind: StreamKind::Audio(AudioParams {
                format: SampleFormat::S16,
                planar: false,
                channels: 2,
                sample_rate: 48_000,
            }),
            source_id: "mic".into(),
            time_base: Rational::new(1, 48_000),
            extradata: Vec::new(),
            metadata: meta.clone(),
        },
    });
    msgs.push(Message::Stream {
        stream: 2,
        info: StreamInfo {
            kind: StreamKind::Video(VideoParams {
                format: VideoFormat::Coded(VideoCodec::H264),
                width: 64,
                height: 48,
                fps: Rational::new(30, 1),
                color: sl_frame::ColorInfo::default(),
            }),
            source_id: "file".into(),
            time_base: Rational::new(1, 90_000),
            extradata: vec![0, 0, 0, 1, 0x67, 1, 2, 3],
            metadata: Metadata::new(),
        },
    });
    msgs.push(Message::Stream {
        stream: 3,
        info: StreamInfo {
            kind: StreamKind::Data,
            source_id: "detector".into(),
            time_base: Rational::MICROS,
            extradata: Vec::new(),
            metadata: Metadata::new(),
        },
    });
    for m in base {
        match m {
            Message::Video { stream, mut frame } => {
                let i = frame.info.frame_number;
                frame.info.ptp_time_ns = Some(1_700_000_000_000_000_000 + i as i64 * 33_333_333);
                frame.info.metadata.insert("label", format!("frame {i}"));
                frame.info.metadata.insert("score", 0.25 + i as f64);
                frame.info.duration = 1;
                msgs.push(Message::Video { stream, frame });
                let mut chunk = AudioChunk::new(
                    SampleFormat::S16,
                    48_000,
                    2,
                    false,
                    1600,
                    (0..6400).map(|k| (k as u64 * 7 + i) as u8).collect(),
                )
                .unwrap();
                chunk.info = FrameInfo {
                    frame_number: i,
                    pts: i as i64 * 1600,
                    time_base: Rational::new(1, 48_000),
                    capture_time_ns: Some(1_000 + i as i64),
                    source_id: "mic".into(),
                    ..FrameInfo::default()
                };
                msgs.push(Message::Audio { stream: 1, chunk });
                let mut info = FrameInfo {
                    frame_number: i,
                    pts: i as i64 * 3000,
                    time_base: Rational::new(1, 90_000),
                    keyframe: i % 10 == 0,
                    source_id: "file".into(),
                    ..FrameInfo::default()
                };
                info.metadata.insert("n", i as i64);
                msgs.push(Message::Packet {
                    stream: 2,
                    packet: Packet {
                        info,
                        codec: VideoCodec::H264,
                        width: 64,
                        height: 48,
                        data: (0..(100 + i as usize * 13))
                            .map(|k| (k * 31) as u8)
                            .collect(),
                    },
                });
                let mut dinfo = FrameInfo {
                    frame_number: i,
                    source_id: "detector".into(),
                    ..FrameInfo::default()
                };
                dinfo.metadata.insert("faces", i as i64 % 3);
                msgs.push(Message::Data {
                    stream: 3,
                    data: DataMessage {
                        info: dinfo,
                        payload: vec![i as u8; 5],
                    },
                });
            }
            Message::End { stream } if stream == sl_wire::ALL_STREAMS => {}
            other => msgs.push(other),
        }
    }
    let mut w = sl_wire::Writer::new(Vec::new()).unwrap();
    for m in &msgs {
        w.write_message(m).unwrap();
    }
    w.finish().unwrap();
    msgs.push(Message::End {
        stream: sl_wire::ALL_STREAMS,
    });
    (w.get_ref().clone(), msgs)
}

/// Send `input` through `send --codec CODEC` to a listener; returns what the listener wrote.
fn coded_link(tag: &str, codec: &str, input: Vec<u8>) -> Vec<Message> {
    let (a, b) = (machine(&format!("{tag}-a")), machine(&format!("{tag}-b")));
    let addr = format!("127.0.0.1:{}", free_udp_port());
    let listener = listening(&b, &addr, &["--peer", &a.fp]);
    let sent = Pipeline::new()
        .sl(
            "sl-net",
            &["send", &addr, "--peer", &b.fp, "--codec", codec, "--json"],
        )
        .env("XDG_CONFIG_HOME", &a.dir)
        .stdin(input)
        .run();
    sent.assert_success();
    let (code, out, err) = listener.finish();
    assert_eq!(code, Some(0), "listen: {err}");
    decode(&out).expect("a complete stream")
}

/// Every message but the raw video is the same; video frames have the same timing,
/// identity, metadata, format and size, with pixels within `max_diff` on average.
fn assert_same_but_pixels(got: &[Message], want: &[Message], max_diff: f64) -> f64 {
    assert_eq!(
        got.len(),
        want.len(),
        "one message out for every message in"
    );
    let mut worst = 0.0f64;
    for (g, w) in got.iter().zip(want) {
        match (g, w) {
            (
                Message::Video {
                    stream: gs,
                    frame: gf,
                },
                Message::Video {
                    stream: ws,
                    frame: wf,
                },
            ) => {
                assert_eq!(gs, ws);
                assert_eq!(
                    gf.info, wf.info,
                    "timing, ids and metadata travel unchanged"
                );
                assert_eq!(gf.color, wf.color);
                let d = mean_abs_diff(gf, wf);
                assert!(
                    d <= max_diff,
                    "frame {}: mean abs diff {d:.2} > {max_diff}",
                    gf.info.frame_number
                );
                worst = worst.max(d);
            }
            _ => assert_eq!(g, w, "non-video messages arrive unchanged"),
        }
    }
    worst
}

#[test]
fn a_jpeg_link_delivers_every_frame_close_to_the_source_and_the_rest_unchanged() {
    for (format, size) in [
        ("rgba", "320x240"),
        ("i420", "161x121"),
        ("nv12", "320x240"),
    ] {
        let (input, want) = rich_stream(format, size, 30);
        let got = coded_link(&format!("jpeg-{format}"), "jpeg", input);
        let worst = assert_same_but_pixels(&got, &want, 2.0);
        eprintln!("jpeg {format} {size}: worst mean abs diff {worst:.2}");
    }
}

#[test]
fn an_h264_link_delivers_every_frame_close_to_the_source_and_the_rest_unchanged() {
    for (format, size) in [
        ("rgba", "320x240"),
        ("i420", "320x240"),
        ("gray8", "160x120"),
    ] {
        let (input, want) = rich_stream(format, size, 60);
        let got = coded_link(&format!("h264-{format}"), "h264", input);
        let worst = assert_same_but_pixels(&got, &want, 2.0);
        eprintln!("h264 {format} {size}: worst mean abs diff {worst:.2}");
    }
}

#[test]
fn a_coded_link_is_much_smaller_than_raw() {
    let a = machine("size-a");
    let b = machine("size-b");
    let mut bytes = Vec::new();
    for codec in ["raw", "jpeg", "h264"] {
        let addr = format!("127.0.0.1:{}", free_udp_port());
        let listener = listening(&b, &addr, &["--peer", &a.fp]);
        let sent = send_pipeline(
            &a,
            &["--fast", "-n", "30", "-s", "640x360", "-p", "box"],
            &["send", &addr, "--peer", &b.fp, "--codec", codec, "--json"],
        )
        .run();
        sent.assert_success();
        let (code, out, err) = listener.finish();
        assert_eq!(code, Some(0), "{err}");
        assert_eq!(video_frames(&decode(&out).unwrap()).len(), 30);
        let json_line = sent
            .last()
            .stderr
            .lines()
            .find(|l| l.starts_with('{'))
            .expect("json summary")
            .to_string();
        let v: serde_json::Value = serde_json::from_str(&json_line).unwrap();
        bytes.push(v["bytes"].as_u64().unwrap());
    }
    eprintln!("bytes on the link, raw / jpeg / h264: {bytes:?}");
    assert!(bytes[1] * 5 < bytes[0], "jpeg: {bytes:?}");
    assert!(bytes[2] * 5 < bytes[1], "h264: {bytes:?}");
}

/// Read a child's stdout slowly, so the link behind it has to drop frames under `latest`.
fn slow_reader(mut so: std::process::ChildStdout) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = vec![0u8; 32 << 10];
        loop {
            match so.read(&mut buf) {
                Ok(0) | Err(_) => return all,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
            thread::sleep(Duration::from_millis(5));
        }
    })
}

#[test]
fn h264_under_latest_drops_until_a_keyframe_so_every_delivered_frame_decodes_right() {
    let (a, b) = (machine("h264-latest-a"), machine("h264-latest-b"));
    let addr = format!("127.0.0.1:{}", free_udp_port());
    // 60 fps for two seconds, read at about 20: the link has to drop, and recovers at the
    // keyframes the receiver's drops ask for
    let args = ["-n", "120", "--fps", "60", "-s", "320x240", "-p", "box"];
    let server = serving(
        &a,
        &args,
        &addr,
        &["--wait-for", "1", "--codec", "h264", "--peer", &b.fp],
    );
    let mut child = Command::new(bin("sl-net"))
        .args([
            "recv", &addr, "--policy", "latest", "--peer", &a.fp, "--json",
        ])
        .env("XDG_CONFIG_HOME", &b.dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let reader = slow_reader(child.stdout.take().unwrap());
    let mut se = child.stderr.take().unwrap();
    let err_thread = thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    server.wait().assert_success();
    let status = child.wait().unwrap();
    let out = reader.join().unwrap();
    let err = err_thread.join().unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    let frames = video_frames(&decode(&out).expect("a complete stream"));
    let want = video_frames(
        &decode(&test_stream(&[
            "--fast", "-n", "120", "-s", "320x240", "-p", "box",
        ]))
        .unwrap(),
    );
    let numbers: Vec<u64> = frames.iter().map(|f| f.info.frame_number).collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
    assert!(
        numbers.len() < 120,
        "the slow reader made the link drop frames: {numbers:?}"
    );
    let gap = numbers
        .windows(2)
        .position(|w| w[1] > w[0] + 1)
        .expect("a gap");
    assert!(
        numbers.len() > gap + 2,
        "frames keep coming after the first gap (from a keyframe): {numbers:?}"
    );
    for f in &frames {
        let d = mean_abs_diff(f, &want[f.info.frame_number as usize]);
        assert!(
            d < 4.0,
            "frame {} decodes wrong: diff {d:.2} ({numbers:?})",
            f.info.frame_number
        );
    }
    let v: serde_json::Value =
        serde_json::from_str(err.lines().find(|l| l.starts_with('{')).expect("json")).unwrap();
    let missing = numbers.last().unwrap() - numbers[0] + 1 - numbers.len() as u64;
    assert_eq!(v["missing_frames"], missing, "{v}");
}

#[test]
fn a_late_recv_of_an_h264_serve_starts_at_a_keyframe() {
    let (a, b) = (machine("h264-late-a"), machine("h264-late-b"));
    let addr = format!("127.0.0.1:{}", free_udp_port());
    let args = ["-n", "150", "-s", "320x240", "--fps", "30", "-p", "box"];
    let server = serving(
        &a,
        &args,
        &addr,
        &["--wait-for", "1", "--codec", "h264", "--peer", &b.fp],
    );
    let mut first = Proc::start(
        &b,
        &["recv", &addr, "--policy", "block", "--peer", &a.fp],
        None,
    );
    // a third of a second in: between two of the two-second keyframes
    first.wait_for_output(320 * 240 * 4 * 10);
    let late = Proc::start(&b, &["recv", &addr, "--peer", &a.fp], None);
    server.wait().assert_success();
    let want = video_frames(
        &decode(&test_stream(&[
            "--fast", "-n", "150", "-s", "320x240", "-p", "box",
        ]))
        .unwrap(),
    );
    for (who, p) in [("late", late), ("first", first)] {
        let (code, out, err) = p.finish();
        assert_eq!(code, Some(0), "{who}: {err}");
        let msgs = decode(&out).expect("a complete stream");
        assert!(
            matches!(msgs[0], Message::Stream { .. }),
            "{who}: description first"
        );
        let frames = video_frames(&msgs);
        assert!(!frames.is_empty(), "{who}");
        if who == "late" {
            assert!(frames[0].info.frame_number > 0, "joined late");
        } else {
            assert_eq!(frames.len(), 150, "block gets every frame");
        }
        for f in &frames {
            let d = mean_abs_diff(f, &want[f.info.frame_number as usize]);
            assert!(d < 4.0, "{who}: frame {} diff {d:.2}", f.info.frame_number);
        }
    }
}

#[test]
fn a_coded_frame_that_does_not_decode_is_a_clear_error_on_both_sides() {
    use sl_frame::{FrameInfo, Packet, PixelFormat, Rational, VideoCodec};
    use sl_wire::StreamInfo;
    // a raw stream whose second frame is "link-coded" garbage, as a broken or hostile
    // sender would send it
    let mut w = sl_wire::Writer::new(Vec::new()).unwrap();
    w.write_stream_info(
        0,
        &StreamInfo::raw_video(PixelFormat::Rgba, 64, 48, Rational::new(30, 1)),
    )
    .unwrap();
    let mut f = sl_frame::VideoFrame::new(PixelFormat::Rgba, 64, 48).unwrap();
    w.write_video(0, &f).unwrap();
    f.info.frame_number = 1;
    w.write_packet(
        0,
        &Packet {
            info: FrameInfo {
                frame_number: 1,
                ..FrameInfo::default()
            },
            codec: VideoCodec::Jpeg,
            width: 64,
            height: 48,
            data: b"\xff\xd8 this is not a jpeg at all".to_vec(),
        },
    )
    .unwrap();
    w.write_video(0, &f).unwrap();
    w.finish().unwrap();
    let (a, b) = (machine("badjpeg-a"), machine("badjpeg-b"));
    let addr = format!("127.0.0.1:{}", free_udp_port());
    let listener = listening(&b, &addr, &["--peer", &a.fp]);
    let sent = Pipeline::new()
        .sl(
            "sl-net",
            &["send", &addr, "--peer", &b.fp, "--no-reconnect"],
        )
        .env("XDG_CONFIG_HOME", &a.dir)
        .stdin(w.get_ref().clone())
        .run();
    let (code, out, err) = listener.finish();
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("frame 1 of stream 0") && err.contains("does not decode"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    // what came before the bad frame was written, and the output is truncated, not ended
    let mut r = Reader::new(&out[..]).unwrap();
    assert!(matches!(r.next_message(), Ok(Some(Message::Stream { .. }))));
    assert!(matches!(r.next_message(), Ok(Some(Message::Video { .. }))));
    assert!(matches!(r.next_message(), Err(WireError::Truncated(_))));
    let s = sent.stage(0);
    assert_eq!(s.code, Some(1), "{}\nLISTENER: {err}", s.stderr);
    assert!(
        s.stderr.contains("could not decode"),
        "{}\nLISTENER: {err}",
        s.stderr
    );
}

// ---- another protocol version ----

/// A peer of an older sl-net release: it speaks the same QUIC and TLS but an older
/// application protocol (`sl-net/1`, before link codecs).
mod old_release {
    use std::sync::Arc;

    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    pub const ALPN: &[u8] = b"sl-net/1";

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    pub fn runtime() -> tokio::runtime::Runtime {
        // its own thread, so the old listener answers while the test waits on sl-net
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    }

    /// A listener of the old release on `addr`; returns how its first handshake ended.
    pub async fn listen_once(ep: quinn::Endpoint) -> Result<(), quinn::ConnectionError> {
        let incoming = ep.accept().await.expect("an incoming connection");
        incoming.await.map(|_| ())
    }

    pub fn server(addr: std::net::SocketAddr) -> quinn::Endpoint {
        let ck = rcgen::generate_simple_self_signed(vec!["streamlib".into()]).unwrap();
        let cert = CertificateDer::from(ck.cert.der().to_vec());
        let key = PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap();
        quinn::Endpoint::server(quinn::ServerConfig::with_crypto(Arc::new(crypto)), addr).unwrap()
    }

    /// Connect as an old sender; returns how the handshake ended.
    pub async fn dial(addr: std::net::SocketAddr) -> Result<(), quinn::ConnectionError> {
        let mut tls = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(sl_tls::Pinned::new(AnyKey))
            .with_no_client_auth();
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
        let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        ep.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
        let r = ep.connect(addr, "streamlib").unwrap().await.map(|_| ());
        ep.wait_idle().await;
        r
    }

    /// The old peer never gets as far as checking keys: the handshake stops at ALPN.
    #[derive(Debug)]
    struct AnyKey;

    impl sl_tls::Pin for AnyKey {
        fn check(&self, _: &CertificateDer<'_>) -> Result<(), rustls::Error> {
            Ok(())
        }
    }
}

#[test]
fn a_sender_facing_a_listener_of_another_version_says_so_and_exits_1() {
    let a = machine("oldlisten-a");
    let port = free_udp_port();
    let addr = format!("127.0.0.1:{port}");
    let rt = old_release::runtime();
    let ep = {
        let _g = rt.enter();
        old_release::server(addr.parse().unwrap())
    };
    let old = rt.spawn(old_release::listen_once(ep));
    let sent = send_pipeline(
        &a,
        &["--fast", "-n", "5", "-s", "64x48"],
        &[
            "send",
            &addr,
            "--peer",
            "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "--no-reconnect",
        ],
    )
    .run();
    let s = sent.last();
    assert_eq!(s.code, Some(1), "{}", s.stderr);
    assert!(
        s.stderr.contains("does not speak sl-net protocol 3")
            && s.stderr.contains("use the same release on both machines"),
        "{}",
        s.stderr
    );
    assert!(!s.stderr.contains("panicked"), "{}", s.stderr);
    // and the old listener was refused at the handshake, before any frame
    let r = rt.block_on(old).unwrap();
    assert!(r.is_err(), "{r:?}");
}

#[test]
fn a_listener_refuses_a_sender_of_another_version_with_a_message_and_keeps_listening() {
    let (a, b) = (machine("oldsend-a"), machine("oldsend-b"));
    let addr = format!("127.0.0.1:{}", free_udp_port());
    let listener = listening(&b, &addr, &["--peer", &a.fp]);
    let rt = old_release::runtime();
    let r = rt.block_on(old_release::dial(addr.parse().unwrap()));
    let e = r.expect_err("an old release is refused");
    assert!(e.to_string().contains("error 120"), "{e}");
    // a sender of this release still gets through
    send_pipeline(
        &a,
        &["--fast", "-n", "5", "-s", "64x48"],
        &["send", &addr, "--peer", &b.fp],
    )
    .run()
    .assert_success();
    let (code, out, err) = listener.finish();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(video_frames(&decode(&out).unwrap()).len(), 5);
    assert!(
        err.contains("does not speak sl-net protocol 3"),
        "the listener says why it refused: {err}"
    );
}
