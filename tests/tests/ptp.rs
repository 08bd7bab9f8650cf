//! sl-ptp against a real master: ptp4l (linuxptp) with software timestamps in one network
//! namespace, sl-ptp in others, joined by veth pairs on a bridge in the master's namespace.
//! Every namespace reads the same system clock, and ptp4l as a master with software
//! timestamps sends that clock's time (an arbitrary timescale), so sl-ptp's error is simply
//! `ptp_now - system_now`, read together by `sl-ptp --status --json`.
//!
//! ptp4l refuses a bridge (no timestamping on it), so the master's namespace holds a bridge
//! (the "switch") and ptp4l runs on a veth whose peer is a bridge port; each slave
//! namespace hangs off the bridge by its own veth pair.
//!
//! ptp4l only ever runs as master: as a slave it would steer the one system clock that all
//! namespaces share. These tests need root (network namespaces, ports 319/320); CI runs as
//! root. Frame-stamping tests that need no master are at the end.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use sl_e2e::{Pipeline, bin, require, scratch_dir};
use sl_frame::VideoFrame;

/// Bound on sl-ptp's error against the master, ns: the goal of issue #17, 100 us. Measured
/// here (2 loaded cores, software timestamps on both sides) the error stays within 10 us
/// (see docs/time.md), so the bound has a 10x margin: a failure means something broke.
const ERROR_BOUND_NS: i64 = 100_000;

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn require_root() {
    let uid = Command::new("id").arg("-u").output().expect("id -u");
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "the PTP tests create network namespaces and bind ports 319/320: run them as root (CI does)"
    );
    require("ip");
    require("ptp4l");
}

/// A master namespace with a bridge and ptp4l's veth on it, and `n` slave namespaces each
/// joined to the bridge by a veth pair. Deleted (with everything in it) on drop.
struct Net {
    master: String,
    slaves: Vec<String>,
    /// Slave-side interface name in each slave namespace.
    ifaces: Vec<String>,
    /// MACs of the masters' interfaces gm0 and gm2 (ptp4l's clock identity is made from it).
    master_macs: Vec<String>,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl Net {
    fn new(n: usize) -> Net {
        let id = format!(
            "{:x}{}",
            std::process::id() & 0xffff,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let master = format!("slptp-{id}-m");
        let mut net = Net {
            master: master.clone(),
            slaves: Vec::new(),
            ifaces: Vec::new(),
            master_macs: Vec::new(),
        };
        ip(&["netns", "add", &master]);
        ip(&["-n", &master, "link", "set", "lo", "up"]);
        // no IGMP snooping: like a plain switch, the bridge floods multicast to every port,
        // so delivery never depends on which join reports the bridge happened to see
        ip(&[
            "-n",
            &master,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        ip(&["-n", &master, "link", "set", "br0", "up"]);
        // two interfaces for masters: gm0 (10.99.0.1) and gm2 (10.99.0.2)
        for (gm, port, addr) in [
            ("gm0", "gm1", "10.99.0.1/24"),
            ("gm2", "gm3", "10.99.0.2/24"),
        ] {
            ip(&[
                "-n", &master, "link", "add", gm, "type", "veth", "peer", "name", port,
            ]);
            ip(&["-n", &master, "link", "set", port, "master", "br0"]);
            ip(&["-n", &master, "link", "set", port, "up"]);
            ip(&["-n", &master, "addr", "add", addr, "dev", gm]);
            ip(&["-n", &master, "link", "set", gm, "up"]);
        }
        for k in 0..n {
            let ns = format!("slptp-{id}-s{k}");
            let (a, b) = (format!("p{id}m{k}"), format!("p{id}s{k}"));
            ip(&["netns", "add", &ns]);
            net.slaves.push(ns.clone());
            ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
            ip(&["link", "set", &a, "netns", &master]);
            ip(&["link", "set", &b, "netns", &ns]);
            ip(&["-n", &master, "link", "set", &a, "master", "br0"]);
            ip(&["-n", &master, "link", "set", &a, "up"]);
            let addr = format!("10.99.0.{}/24", 10 + k);
            ip(&["-n", &ns, "addr", "add", &addr, "dev", &b]);
            ip(&["-n", &ns, "link", "set", &b, "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            net.ifaces.push(b);
        }
        for gm in ["gm0", "gm2"] {
            let out = Command::new("ip")
                .args(["-n", &master, "-o", "link", "show", gm])
                .output()
                .expect("ip link show");
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let mac = text
                .split("link/ether ")
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
                .expect("a master interface's MAC")
                .to_string();
            net.master_macs.push(mac);
        }
        net
    }

    /// The clock identity of ptp4l on gm0 (`k` 0) or gm2 (`k` 1) as sl-ptp prints it:
    /// EUI-64 from the MAC, port 1.
    fn master_identity(&self, k: usize) -> String {
        let m: Vec<&str> = self.master_macs[k].split(':').collect();
        format!("{}{}{}.fffe.{}{}{}-1", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in self.slaves.iter().chain([&self.master]) {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// A background process we started; stopped (SIGTERM, then SIGKILL) on drop.
struct Proc {
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    fn start(ns: &str, program: &Path, args: &[&str], log: PathBuf) -> Proc {
        let err = std::fs::File::create(&log).expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(err.try_clone().expect("dup"))
            .stderr(err)
            .spawn()
            .expect("start process");
        Proc {
            child: Some(child),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(5) {
                if c.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

fn ptp4l(net: &Net, dir: &Path, name: &str) -> Proc {
    ptp4l_args(net, dir, name, &["-i", "gm0"])
}

/// ptp4l as a master only, with software timestamps, never steering the system clock
/// (`--free_running 1` on top of `--masterOnly 1`: the namespaces share that clock).
fn ptp4l_args(net: &Net, dir: &Path, name: &str, extra: &[&str]) -> Proc {
    let mut args = vec![
        "-S",
        "-4",
        "-E",
        "-m",
        "--masterOnly",
        "1",
        "--free_running",
        "1",
    ];
    args.extend_from_slice(extra);
    Proc::start(&net.master, Path::new("ptp4l"), &args, dir.join(name))
}

fn sl_ptp(net: &Net, k: usize, socket: &Path, dir: &Path) -> Proc {
    sl_ptp_args(net, k, socket, dir, &[])
}

fn sl_ptp_args(net: &Net, k: usize, socket: &Path, dir: &Path, extra: &[&str]) -> Proc {
    let mut args = vec![
        "-i",
        &net.ifaces[k],
        "--socket",
        socket.to_str().expect("utf-8 path"),
        "-v",
    ];
    args.extend_from_slice(extra);
    Proc::start(
        &net.slaves[k],
        &bin("sl-ptp"),
        &args,
        dir.join(format!("sl-ptp-{k}.log")),
    )
}

/// `sl-ptp --status --json`, or None while no daemon answers.
fn status(socket: &Path) -> Option<serde_json::Value> {
    let out = Command::new(bin("sl-ptp"))
        .args(["--status", "--json", "--socket"])
        .arg(socket)
        .stdin(Stdio::null())
        .output()
        .expect("run sl-ptp --status");
    if !out.status.success() {
        return None;
    }
    Some(serde_json::from_slice(&out.stdout).expect("status is JSON"))
}

/// Poll the daemon until its state is `want`; panics with its log after `limit` (a
/// readiness wait, generous: not a speed check).
fn wait_state(socket: &Path, want: &str, daemon: &Proc, limit: Duration) -> serde_json::Value {
    let t = Instant::now();
    loop {
        if let Some(s) = status(socket)
            && s["state"] == want
        {
            return s;
        }
        assert!(
            t.elapsed() < limit,
            "sl-ptp never reached `{want}` in {limit:?}; last status {:?}; its log:\n{}",
            status(socket),
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// PTP now minus system now, ns, from one status.
fn error_ns(s: &serde_json::Value) -> i64 {
    let p = s["ptp_now_ns"].as_i64().expect("ptp_now_ns");
    let r = s["system_now_ns"].as_i64().expect("system_now_ns");
    p - r
}

/// `n` errors read 100 ms apart while locked.
fn sample_errors(socket: &Path, n: usize) -> Vec<i64> {
    let mut v = Vec::new();
    while v.len() < n {
        let s = status(socket).expect("daemon answers");
        assert_eq!(s["state"], "slave", "lost lock while sampling: {s}");
        v.push(error_ns(&s));
        std::thread::sleep(Duration::from_millis(100));
    }
    v
}

fn distribution(errors: &[i64]) -> String {
    let mut a: Vec<i64> = errors.iter().map(|e| e.abs()).collect();
    a.sort();
    let q = |p: f64| a[((p * (a.len() - 1) as f64).round()) as usize];
    let mean = errors.iter().sum::<i64>() as f64 / errors.len() as f64;
    format!(
        "{} samples: |error| p50 {:.1} us, p90 {:.1} us, p99 {:.1} us, max {:.1} us; mean error {:+.1} us",
        a.len(),
        q(0.5) as f64 / 1e3,
        q(0.9) as f64 / 1e3,
        q(0.99) as f64 / 1e3,
        q(1.0) as f64 / 1e3,
        mean / 1e3
    )
}

/// CLOCK_REALTIME - CLOCK_MONOTONIC, ns: changes only if someone steps or slews the clock.
fn realtime_minus_monotonic() -> i64 {
    let (r, m) = sl_clock::real_and_mono();
    r - m
}

#[test]
fn sl_ptp_locks_to_ptp4l_within_the_bound_and_never_touches_the_system_clock() {
    require_root();
    let before = realtime_minus_monotonic();
    let dir = scratch_dir("ptp-lock");
    let socket = dir.join("ptp.sock");
    let net = Net::new(1);
    let master = ptp4l(&net, &dir, "ptp4l.log");
    // ptp4l listens for a better master for ~7 s first; start timing once it is master
    let t = Instant::now();
    while !master.log().contains("assuming the grand master role") {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "ptp4l never became master:\n{}",
            master.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = Instant::now();
    let daemon = sl_ptp(&net, 0, &socket, &dir);
    let locked = wait_state(&socket, "slave", &daemon, Duration::from_secs(90));
    let lock_time = started.elapsed();
    assert_eq!(locked["master"], net.master_identity(0));
    assert_eq!(
        locked["ptp_timescale"], false,
        "ptp4l -S sends an arbitrary timescale"
    );
    let errors = sample_errors(&socket, 100);
    let report = distribution(&errors);
    eprintln!(
        "sl-ptp locked {:.1} s after it started, with a master present; {report}",
        lock_time.as_secs_f64()
    );
    let worst = errors.iter().map(|e| e.abs()).max().unwrap();
    assert!(
        worst < ERROR_BOUND_NS,
        "sl-ptp is off the master's time by up to {worst} ns ({report}); log:\n{}",
        daemon.log()
    );
    // The published error estimate covers the measured error.
    let s = status(&socket).unwrap();
    let est = s["error_now_ns"].as_f64().unwrap();
    assert!(
        est > 0.0 && est < ERROR_BOUND_NS as f64,
        "error estimate {est}"
    );
    drop(daemon);
    let after = realtime_minus_monotonic();
    assert!(
        (after - before).abs() < 1_000_000,
        "the system clock moved by {} ns against CLOCK_MONOTONIC while sl-ptp ran",
        after - before
    );
}

#[test]
fn sl_ptp_holds_over_when_the_master_stops_and_locks_again_when_it_returns() {
    require_root();
    let dir = scratch_dir("ptp-holdover");
    let socket = dir.join("ptp.sock");
    let net = Net::new(1);
    let mut master = ptp4l(&net, &dir, "ptp4l-1.log");
    let daemon = sl_ptp(&net, 0, &socket, &dir);
    wait_state(&socket, "slave", &daemon, Duration::from_secs(90));
    // A holdover carries on the rate fitted while locked; a fit of the first three Sync
    // samples (two seconds) is uncertain by tens of ppm on a loaded machine (26 ppm measured
    // once: 155 us off after 6 s of holdover). Hold the lock for ten more seconds first, as a
    // clock that has run for a while would.
    sample_errors(&socket, 100);
    master.stop();
    let held = wait_state(&socket, "holdover", &daemon, Duration::from_secs(60));
    // Time goes on from the last mapping, and the error estimate grows.
    let e1 = held["error_now_ns"].as_f64().unwrap();
    assert!(error_ns(&held).abs() < ERROR_BOUND_NS, "holdover: {held}");
    let t = Instant::now();
    loop {
        let s = status(&socket).unwrap();
        assert_eq!(s["state"], "holdover");
        if s["error_now_ns"].as_f64().unwrap() > e1 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the error estimate never grew: {s}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _master = ptp4l(&net, &dir, "ptp4l-2.log");
    wait_state(&socket, "slave", &daemon, Duration::from_secs(90));
    let errors = sample_errors(&socket, 20);
    eprintln!("after the master's restart: {}", distribution(&errors));
    assert!(errors.iter().all(|e| e.abs() < ERROR_BOUND_NS));
}

#[test]
fn two_sources_stamped_by_their_own_sl_ptp_line_up() {
    require_root();
    let dir = scratch_dir("ptp-two-sources");
    let net = Net::new(2);
    let _master = ptp4l(&net, &dir, "ptp4l.log");
    let sockets = [dir.join("a.sock"), dir.join("b.sock")];
    let daemons = [
        sl_ptp(&net, 0, &sockets[0], &dir),
        sl_ptp(&net, 1, &sockets[1], &dir),
    ];
    for (s, d) in sockets.iter().zip(&daemons) {
        wait_state(s, "slave", d, Duration::from_secs(90));
    }
    let mut offsets = Vec::new();
    for (k, socket) in sockets.iter().enumerate() {
        let sock = socket.to_str().unwrap();
        let id = format!("cam{k}");
        let sl_test = bin("sl-test");
        let run = |extra: &[&str]| {
            let mut args = vec![
                "netns",
                "exec",
                &net.slaves[k],
                sl_test.to_str().unwrap(),
                "-n",
                "30",
                "-s",
                "64x48",
                "--clock",
                "ptp",
                "--ptp-socket",
                sock,
                "--source-id",
                &id,
            ];
            args.extend_from_slice(extra);
            Pipeline::new().cmd("ip", &args)
        };
        // frames as made: every one carries PTP time within the bound of its capture time
        let out = run(&[]).run();
        out.assert_success();
        let frames = out.frames();
        assert_eq!(frames.len(), 30);
        for f in &frames {
            assert_eq!(f.info.source_id, id);
            let d = f.info.ptp_time_ns.expect("ptp_time") - f.info.capture_time_ns.unwrap();
            assert!(d.abs() < ERROR_BOUND_NS, "{id}: ptp - capture = {d} ns");
        }
        // and sl-info sees the same
        let out = run(&[]).sl("sl-info", &["--json"]).run();
        out.assert_success();
        let j = out.json();
        let s = &j["streams"][0];
        assert_eq!(s["source_id"], id);
        let off = s["latency"]["ptp_offset"]["p50_ms"]
            .as_f64()
            .expect("ptp_offset");
        offsets.push(off);
    }
    eprintln!(
        "ptp_time - capture_time, p50: {:.4} ms and {:.4} ms",
        offsets[0], offsets[1]
    );
    assert!(
        (offsets[0] - offsets[1]).abs() * 1e6 < (2 * ERROR_BOUND_NS) as f64,
        "the two sources disagree by {} ms",
        offsets[0] - offsets[1]
    );
}

#[test]
fn sl_ptp_follows_only_its_own_domain() {
    require_root();
    let dir = scratch_dir("ptp-domain");
    let net = Net::new(2);
    let _master = ptp4l_args(
        &net,
        &dir,
        "ptp4l.log",
        &["-i", "gm0", "--domainNumber", "7"],
    );
    let (other, same) = (dir.join("d0.sock"), dir.join("d7.sock"));
    let d0 = sl_ptp(&net, 0, &other, &dir);
    let d7 = sl_ptp_args(&net, 1, &same, &dir, &["--domain", "7"]);
    wait_state(&same, "slave", &d7, Duration::from_secs(90));
    // the domain-0 daemon hears the same packets and ignores them: counted, never a master
    let t = Instant::now();
    loop {
        let s = status(&other).expect("daemon answers");
        assert_eq!(s["state"], "listening", "{s}");
        assert!(s["master"].is_null(), "{s}");
        if s["counters"]["other_domain"].as_u64().unwrap() >= 3 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no domain-7 packet counted: {s}\n{}",
            d0.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // a stage on the unlocked daemon stamps capture time and no PTP time, and says why
    let out = Pipeline::new()
        .sl(
            "sl-test",
            &[
                "-n",
                "3",
                "--fast",
                "-s",
                "16x16",
                "--clock",
                "ptp",
                "--ptp-socket",
                other.to_str().unwrap(),
            ],
        )
        .run();
    out.assert_success();
    assert!(
        out.stage(0).stderr.contains("has not locked yet"),
        "{}",
        out.stage(0).stderr
    );
    for f in out.frames() {
        assert!(f.info.capture_time_ns.is_some());
        assert_eq!(f.info.ptp_time_ns, None);
    }
}

#[test]
fn sl_ptp_follows_the_best_of_two_masters_and_the_other_when_it_goes() {
    require_root();
    let dir = scratch_dir("ptp-two-masters");
    let socket = dir.join("ptp.sock");
    let net = Net::new(1);
    // gm2's master is worse (priority1 200 against 100)
    let mut best = ptp4l_args(&net, &dir, "best.log", &["-i", "gm0", "--priority1", "100"]);
    let _worse = ptp4l_args(
        &net,
        &dir,
        "worse.log",
        &["-i", "gm2", "--priority1", "200"],
    );
    let daemon = sl_ptp(&net, 0, &socket, &dir);
    let s = wait_state(&socket, "slave", &daemon, Duration::from_secs(90));
    // if the worse master's Announce came first, sl-ptp moves on when it hears the better one
    let t = Instant::now();
    let mut s = s;
    while s["master"] != net.master_identity(0) {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "never chose the best master: {s}"
        );
        std::thread::sleep(Duration::from_millis(200));
        s = status(&socket).unwrap();
    }
    let errors = sample_errors(&socket, 10);
    assert!(
        errors.iter().all(|e| e.abs() < ERROR_BOUND_NS),
        "{errors:?}"
    );
    assert!(s["counters"]["not_our_master"].as_u64().unwrap() > 0, "{s}");
    best.stop();
    // the best master goes: sl-ptp holds over, then follows the other one
    let t = Instant::now();
    loop {
        let s = status(&socket).unwrap();
        if s["state"] == "slave" && s["master"] == net.master_identity(1) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "never moved to the other master: {s}\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let errors = sample_errors(&socket, 10);
    assert!(
        errors.iter().all(|e| e.abs() < ERROR_BOUND_NS),
        "{errors:?}"
    );
}

// ---- no master needed ----

#[test]
fn a_stage_told_to_use_ptp_without_a_daemon_says_so() {
    let dir = scratch_dir("ptp-no-daemon");
    let sock = dir.join("nobody.sock");
    let out = Pipeline::new()
        .sl(
            "sl-test",
            &[
                "-n",
                "3",
                "--fast",
                "--clock",
                "ptp",
                "--ptp-socket",
                sock.to_str().unwrap(),
            ],
        )
        .run();
    let s = out.stage(0);
    assert_eq!(s.code, Some(1), "stderr: {}", s.stderr);
    assert!(
        s.stderr.contains("no sl-ptp daemon answers"),
        "{}",
        s.stderr
    );
    assert!(s.stderr.contains("--clock system"), "{}", s.stderr);
    // the environment spells it too
    let out = Pipeline::new()
        .env("SL_CLOCK", "ptp")
        .env("SL_PTP_SOCKET", sock.as_os_str())
        .sl("sl-test", &["-n", "3", "--fast"])
        .run();
    assert_eq!(out.stage(0).code, Some(1));
    let status = Pipeline::new()
        .sl("sl-ptp", &["--status", "--socket", sock.to_str().unwrap()])
        .run();
    assert_eq!(status.stage(0).code, Some(1));
    assert!(status.stage(0).stderr.contains("no sl-ptp daemon answers"));
}

fn stamps(frames: &[VideoFrame]) -> Vec<(Option<i64>, Option<i64>, String)> {
    frames
        .iter()
        .map(|f| {
            (
                f.info.capture_time_ns,
                f.info.ptp_time_ns,
                f.info.source_id.clone(),
            )
        })
        .collect()
}

/// Ten frames stamped with capture time and (trusted system) PTP time.
fn stamped_stream() -> (Vec<u8>, Vec<VideoFrame>) {
    let out = Pipeline::new()
        .sl(
            "sl-test",
            &[
                "-n",
                "10",
                "-s",
                "64x48",
                "--clock",
                "system-ptp",
                "--tai-offset",
                "37",
                "--source-id",
                "studio-a",
            ],
        )
        .run();
    out.assert_success();
    let frames = out.frames();
    for f in &frames {
        let c = f.info.capture_time_ns.expect("capture time");
        assert_eq!(f.info.ptp_time_ns, Some(c + 37_000_000_000));
    }
    (out.stdout.clone(), frames)
}

#[test]
fn clock_system_stamps_capture_time_only() {
    let out = Pipeline::new()
        .sl(
            "sl-test",
            &["-n", "3", "--fast", "-s", "64x48", "--clock", "system"],
        )
        .run();
    out.assert_success();
    for f in out.frames() {
        assert!(f.info.capture_time_ns.is_some());
        assert_eq!(f.info.ptp_time_ns, None);
    }
}

#[test]
fn stamps_survive_sl_draw() {
    let (bytes, frames) = stamped_stream();
    let circle = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/circle.rhai");
    let out = Pipeline::new()
        .stdin(bytes)
        .sl("sl-draw", &[circle.to_str().unwrap()])
        .run();
    out.assert_success();
    assert_eq!(stamps(&out.frames()), stamps(&frames));
}

#[test]
fn stamps_survive_a_stream_saved_to_a_file_and_read_back() {
    let (bytes, frames) = stamped_stream();
    let dir = scratch_dir("ptp-slv");
    let slv = dir.join("take.slv");
    std::fs::write(&slv, &bytes).unwrap();
    let out = Pipeline::new()
        .sl("sl-file", &[slv.to_str().unwrap()])
        .run();
    out.assert_success();
    assert_eq!(stamps(&out.frames()), stamps(&frames));
}

#[test]
fn stamps_survive_an_encode_into_nut_and_a_decode() {
    let (bytes, frames) = stamped_stream();
    // raw video in NUT, as `sl-file -o - --container nut` pipes it to another program
    let out = Pipeline::new()
        .stdin(bytes.clone())
        .sl("sl-file", &["-o", "-", "--container", "nut"])
        .sl("sl-file", &["-"])
        .run();
    out.assert_success();
    assert_eq!(stamps(&out.frames()), stamps(&frames));
    // and H.264 (frames reordered inside the encoder) in a NUT file
    let dir = scratch_dir("ptp-nut");
    let nut = dir.join("take.nut");
    Pipeline::new()
        .stdin(bytes)
        .sl(
            "sl-file",
            &[
                "-o",
                nut.to_str().unwrap(),
                "--codec",
                "libx264",
                "--preset",
                "medium",
            ],
        )
        .run()
        .assert_success();
    let out = Pipeline::new()
        .sl("sl-file", &[nut.to_str().unwrap()])
        .run();
    out.assert_success();
    assert_eq!(stamps(&out.frames()), stamps(&frames));
    // ffmpeg reads the file as any NUT
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=codec_name,nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(&nut)
        .output()
        .expect("ffprobe (scripts/setup.sh installs it)");
    assert_eq!(String::from_utf8_lossy(&probe.stdout).trim(), "h264,10");
}

#[test]
fn sl_info_reports_latency_per_stream() {
    // PTP basis: sl-info reads the same trusted clock the source stamped with
    let out = Pipeline::new()
        .sl(
            "sl-test",
            &["-n", "20", "-s", "64x48", "--clock", "system-ptp"],
        )
        .sl("sl-info", &["--json", "--clock", "system-ptp"])
        .run();
    out.assert_success();
    let j = out.json();
    let l = &j["streams"][0]["latency"];
    assert_eq!(l["basis"], "ptp", "{j}");
    assert_eq!(l["latency"]["samples"], 20);
    let (p50, p99, max) = (
        l["latency"]["p50_ms"].as_f64().unwrap(),
        l["latency"]["p99_ms"].as_f64().unwrap(),
        l["latency"]["max_ms"].as_f64().unwrap(),
    );
    assert!(0.0 <= p50 && p50 <= p99 && p99 <= max, "{l}");
    // system basis, in the text report and on the live meter
    let out = Pipeline::new()
        .sl("sl-test", &["-n", "45", "-s", "64x48"])
        .sl("sl-info", &["--pass", "--stats"])
        .run();
    out.assert_success();
    let err = &out.last().stderr;
    assert!(err.contains("latency (system): p50 "), "{err}");
    // the meter's line (live on a terminal, once at the end with --stats) carries it too
    let meter = err
        .lines()
        .find(|l| l.starts_with("sl-info: ") && l.contains("fps"))
        .unwrap_or_else(|| panic!("no meter line: {err}"));
    assert!(meter.contains("#0 latency (system)"), "{meter}");
}

/// Every source stamps its frames with `--clock`: capture time, and with a PTP clock the PTP
/// time of that same instant (here the trusted system clock plus the TAI offset).
#[test]
fn every_source_stamps_with_the_clock_it_is_given() {
    let dir = scratch_dir("ptp-every-source");
    let mkv = dir.join("bars.mkv");
    Pipeline::new()
        .sl("sl-test", &["-n", "10", "--fast", "-s", "64x48"])
        .sl("sl-file", &["-o", mkv.to_str().unwrap()])
        .run()
        .assert_success();
    let clock = ["--clock", "system-ptp", "--tai-offset", "37"];
    let circle = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/circle.rhai");
    let sources: Vec<(&str, Vec<&str>)> = vec![
        ("sl-test", vec!["-n", "5", "--fast", "-s", "64x48"]),
        ("sl-file", vec![mkv.to_str().unwrap(), "-n", "5"]),
        (
            "sl-file",
            vec![mkv.to_str().unwrap(), "-n", "5", "--realtime"],
        ),
        (
            "sl-draw",
            vec![
                circle.to_str().unwrap(),
                "--size",
                "64x48",
                "-n",
                "5",
                "--fast",
            ],
        ),
        ("sl-cam", vec!["--fake", "yuyv:64x48@30", "-n", "5"]),
    ];
    for (stage, args) in sources {
        let mut with_clock = args.clone();
        with_clock.extend(clock);
        let before = sl_clock::real_ns();
        let out = Pipeline::new().sl(stage, &with_clock).run();
        out.assert_success();
        let after = sl_clock::real_ns();
        let frames = out.frames();
        assert_eq!(frames.len(), 5, "{stage} {with_clock:?}");
        for f in &frames {
            let c = f
                .info
                .capture_time_ns
                .unwrap_or_else(|| panic!("{stage} {with_clock:?}: no capture time"));
            assert!(
                (before - 5_000_000_000..=after).contains(&c),
                "{stage}: capture time {c} outside the run [{before}, {after}]"
            );
            assert_eq!(
                f.info.ptp_time_ns,
                Some(c + 37_000_000_000),
                "{stage} {with_clock:?}"
            );
        }
    }
    // a filter keeps what its source stamped: --clock there is a usage error, not a restamp
    let out = Pipeline::new()
        .sl("sl-test", &["-n", "2", "--fast", "-s", "64x48"])
        .sl("sl-draw", &[circle.to_str().unwrap(), "--clock", "ptp"])
        .run();
    assert_eq!(out.last().code, Some(2), "{}", out.last().stderr);
    assert!(out.last().stderr.contains("give it to the source"));
}
