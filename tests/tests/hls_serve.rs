//! `sl-hls --serve` end to end: the real binary serving a real folder, judged by a raw
//! HTTP/1.1 client written here (statuses, headers, bytes), by /proc (the server's memory),
//! and by Debian's Chromium playing the player page (tests/browser/play.mjs).
//!
//! - what is served, how (types, caching, ranges, HEAD, keep-alive), and nothing outside the
//!   folder;
//! - 200 slow clients ("slowloris": a header line every 5 s) for 20 s while a player keeps
//!   fetching the live playlist and every new segment (`SL_FUZZ_LONG=1`: 120 s);
//! - ranged reads, HEADs and abandoned downloads of a 400 MB file leave the server's peak
//!   memory within a few MB;
//! - the player page opened before the stream has a segment starts playing once one exists;
//! - the README's HLS line, run as written, is live when a browser opens it;
//! - `--serve PORT`, `--serve :PORT`, the "serving on" line, and Ctrl-C after the end.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use sl_e2e::{bin, free_tcp_port, require, run_cmd, scratch_dir, wait_for_segments};

// ---------------------------------------------------------------------------------------
// a raw HTTP/1.1 client

#[derive(Debug)]
struct Resp {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
    fn content_length(&self) -> Option<u64> {
        self.header("content-length").and_then(|v| v.parse().ok())
    }
}

/// Read a response head (byte by byte: nothing of a next response is swallowed).
fn read_head(s: &mut TcpStream) -> std::io::Result<(u16, String)> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b)? == 0 {
            return Err(std::io::Error::new(
                ErrorKind::UnexpectedEof,
                format!(
                    "closed after {} bytes of head: {:?}",
                    head.len(),
                    String::from_utf8_lossy(&head)
                ),
            ));
        }
        head.push(b[0]);
        if head.len() > 64 * 1024 {
            return Err(std::io::Error::other("response head too long"));
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {head:?}")))?;
    Ok((status, head))
}

/// One request on `s` (kept alive unless `extra` says otherwise); the body is read by its
/// Content-Length.
fn request(
    s: &mut TcpStream,
    method: &str,
    target: &str,
    extra: &[(&str, &str)],
) -> std::io::Result<Resp> {
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    let (status, head) = read_head(s)?;
    let mut r = Resp {
        status,
        head,
        body: Vec::new(),
    };
    if method != "HEAD" && status != 204 && status != 304 {
        let n = r
            .content_length()
            .ok_or_else(|| std::io::Error::other(format!("no Content-Length: {}", r.head)))?;
        r.body = vec![0; n as usize];
        s.read_exact(&mut r.body)?;
    }
    Ok(r)
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// One request on a fresh connection.
fn http(port: u16, method: &str, target: &str, extra: &[(&str, &str)]) -> Resp {
    let mut s = connect(port);
    request(&mut s, method, target, extra).unwrap_or_else(|e| panic!("{method} {target}: {e}"))
}

/// A connection to 127.0.0.1:`port` from the loopback address `from` (all of 127/8 is
/// loopback on Linux): many "clients" on one machine.
fn connect_from(from: Ipv4Addr, port: u16) -> std::io::Result<TcpStream> {
    use socket2::{Domain, SockAddr, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    s.bind(&SockAddr::from(SocketAddr::from((from, 0))))?;
    s.connect_timeout(
        &SockAddr::from(SocketAddr::from(([127, 0, 0, 1], port))),
        Duration::from_secs(10),
    )?;
    Ok(s.into())
}

// ---------------------------------------------------------------------------------------
// sl-hls serving a folder

/// An sl-hls serving a folder; stopped with SIGINT when dropped.
struct Served {
    child: Child,
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
    /// The thread that reads stderr into `log`: joined once sl-hls has exited, so that the
    /// log holds every last line.
    log_thread: Option<thread::JoinHandle<()>>,
    /// Held open so that sl-hls waits for frames that never come (serving only).
    stdin_held: Option<ChildStdin>,
}

impl Served {
    /// `sl-hls DIR --serve ADDR EXTRA...`, stdin from `input` (`None`: a pipe nobody
    /// writes); returns once it says where it serves.
    fn start(dir: &Path, addr: &str, extra: &[&str], input: Option<Stdio>) -> Served {
        Served::start_env(dir, addr, extra, input, &[])
    }

    fn start_env(
        dir: &Path,
        addr: &str,
        extra: &[&str],
        input: Option<Stdio>,
        env: &[(&str, &str)],
    ) -> Served {
        let mut cmd = Command::new(bin("sl-hls"));
        cmd.arg(dir).args(["--serve", addr]).args(extra);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let piped = input.is_none();
        let mut child = cmd
            .stdin(input.unwrap_or(Stdio::piped()))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sl-hls starts");
        let stdin = if piped { child.stdin.take() } else { None };
        let log = Arc::new(Mutex::new(Vec::new()));
        let err = child.stderr.take().unwrap();
        let log_thread = {
            let log = Arc::clone(&log);
            thread::spawn(move || {
                for l in BufReader::new(err).lines() {
                    let Ok(l) = l else { break };
                    log.lock().unwrap().push(l);
                }
            })
        };
        let mut served = Served {
            child,
            port: 0,
            log,
            log_thread: Some(log_thread),
            stdin_held: stdin,
        };
        let line = served.wait_for_line("serving ", Duration::from_secs(30));
        served.port = line
            .split("http://")
            .nth(1)
            .and_then(|u| u.trim_end_matches('/').rsplit(':').next())
            .and_then(|p| p.trim_end_matches('/').parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        served
    }

    /// The first stderr line containing `what`, waiting up to `timeout` for it.
    fn wait_for_line(&mut self, what: &str, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            if let Some(l) = self.log.lock().unwrap().iter().find(|l| l.contains(what)) {
                return l.clone();
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                self.read_last_lines();
                panic!(
                    "sl-hls ended ({st}) before saying {what:?}:\n{}",
                    self.log.lock().unwrap().join("\n")
                );
            }
            assert!(
                start.elapsed() < timeout,
                "sl-hls did not say {what:?} in {timeout:?}:\n{}",
                self.log.lock().unwrap().join("\n")
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn stderr(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// After the exit: wait until stderr is read to its end.
    fn read_last_lines(&mut self) {
        if let Some(t) = self.log_thread.take() {
            let _ = t.join();
        }
    }

    fn interrupt(&self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
    }

    /// Wait for the exit code (after a signal), at most `timeout`.
    fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                self.read_last_lines();
                return st.code();
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                panic!("sl-hls did not exit in {timeout:?}:\n{}", self.stderr());
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's peak resident memory so far (VmHWM), in bytes.
    fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmHWM")
            * 1024
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        // an end of input first: sl-hls may still be waiting for a stream header
        self.stdin_held = None;
        if matches!(self.child.try_wait(), Ok(None)) {
            self.interrupt();
            let start = Instant::now();
            while matches!(self.child.try_wait(), Ok(None)) {
                if start.elapsed() > Duration::from_secs(20) {
                    let _ = self.child.kill();
                    break;
                }
                thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.wait();
    }
}

/// A real-time test pattern on a pipe, killed when dropped.
struct Source(Child);

impl Source {
    fn start(args: &[&str]) -> Source {
        Source(
            Command::new(bin("sl-test"))
                .args(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("sl-test starts"),
        )
    }
    fn stdout(&mut self) -> Stdio {
        Stdio::from(self.0.stdout.take().unwrap())
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The segment URIs of a media playlist.
fn segments(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------------------
// what is served, and how

#[test]
fn serves_types_caching_ranges_head_and_keep_alive_and_nothing_outside() {
    let root = scratch_dir("hls-serve-what");
    let dir = root.join("out");
    std::fs::create_dir_all(dir.join("360p")).unwrap();
    std::fs::create_dir_all(root.join("private")).unwrap();
    let playlist = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg_1_00000.ts\n";
    std::fs::write(dir.join("index.m3u8"), playlist).unwrap();
    let seg: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.join("seg_1_00000.ts"), &seg).unwrap();
    std::fs::write(dir.join("360p/seg_1_00000.m4s"), b"m4s").unwrap();
    std::fs::write(dir.join("init_1.mp4"), b"init").unwrap();
    std::fs::write(dir.join("notes.txt"), "not media").unwrap();
    std::fs::write(dir.join(".hidden.ts"), "hidden").unwrap();
    std::fs::write(root.join("secret.ts"), "outside").unwrap();
    std::fs::write(root.join("private/secret.m3u8"), "outside").unwrap();
    std::os::unix::fs::symlink(root.join("secret.ts"), dir.join("link.ts")).unwrap();
    std::os::unix::fs::symlink(root.join("private"), dir.join("linkdir")).unwrap();
    std::os::unix::fs::symlink(dir.join("notes.txt"), dir.join("alias.ts")).unwrap();
    let s = Served::start(&dir, "127.0.0.1:0", &[], None);
    let port = s.port;

    // the player page and hls.js
    let r = http(port, "GET", "/", &[]);
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(String::from_utf8_lossy(&r.body).contains("index.m3u8"));
    let r = http(port, "GET", "/_sl/hls.light.min.js", &[]);
    assert_eq!(r.status, 200);
    assert!(r.body.len() > 100_000, "hls.js is compiled in");

    // types and caching
    for (path, ctype, cached) in [
        ("/index.m3u8", "application/vnd.apple.mpegurl", false),
        ("/seg_1_00000.ts", "video/mp2t", true),
        ("/360p/seg_1_00000.m4s", "video/iso.segment", true),
        ("/init_1.mp4", "video/mp4", true),
    ] {
        let r = http(port, "GET", path, &[]);
        assert_eq!(r.status, 200, "{path}: {}", r.head);
        assert_eq!(r.header("content-type"), Some(ctype), "{path}");
        let cache = r.header("cache-control").unwrap_or("");
        if cached {
            assert!(cache.contains("max-age="), "{path}: {cache}");
        } else {
            assert!(cache.contains("no-cache"), "{path}: {cache}");
        }
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
        assert_eq!(
            r.body,
            std::fs::read(dir.join(&path[1..])).unwrap(),
            "{path}"
        );
    }
    // header names as most servers write them (existing scripts grep for them)
    let r = http(port, "GET", "/index.m3u8", &[]);
    assert!(
        r.head
            .contains("Content-Type: application/vnd.apple.mpegurl"),
        "{}",
        r.head
    );

    // HEAD: the length, no body
    let mut c = connect(port);
    let r = request(&mut c, "HEAD", "/seg_1_00000.ts", &[]).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.content_length(), Some(seg.len() as u64), "{}", r.head);
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    // keep-alive: the same connection answers again, and the HEAD sent no body on it
    for (range, a, b) in [
        ("bytes=0-0", 0usize, 0usize),
        ("bytes=1000-1999", 1000, 1999),
        ("bytes=99990-", 99_990, 99_999),
        ("bytes=-10", 99_990, 99_999),
        ("bytes=50000-999999", 50_000, 99_999),
    ] {
        let r = request(&mut c, "GET", "/seg_1_00000.ts", &[("Range", range)]).unwrap();
        assert_eq!(r.status, 206, "{range}: {}", r.head);
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {a}-{b}/{}", seg.len()).as_str()),
            "{range}"
        );
        assert_eq!(r.body, &seg[a..=b], "{range}");
    }
    let r = request(
        &mut c,
        "GET",
        "/seg_1_00000.ts",
        &[("Range", "bytes=100000-")],
    )
    .unwrap();
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */100000"));
    // several ranges are not read: the whole file, as RFC 9110 allows
    let r = request(
        &mut c,
        "GET",
        "/seg_1_00000.ts",
        &[("Range", "bytes=0-1,5-6")],
    )
    .unwrap();
    assert_eq!((r.status, r.body.len()), (200, seg.len()));
    let r = request(&mut c, "GET", "/index.m3u8", &[]).unwrap();
    assert_eq!(r.body, playlist.as_bytes(), "still the same connection");

    // nothing outside the folder, nothing but HLS files in it
    for bad in [
        "/../secret.ts",
        "/..%2fsecret.ts",
        "/%2e%2e/secret.ts",
        "/%2E%2E%2Fsecret.ts",
        "/360p/../../secret.ts",
        "/360p/%2e%2e/%2e%2e/secret.ts",
        "/./index.m3u8",
        "//etc/passwd",
        "/link.ts",
        "/linkdir/secret.m3u8",
        "/alias.ts",
        "/notes.txt",
        "/.hidden.ts",
        "/etc/passwd",
        "/missing.ts",
        "/%00index.m3u8",
        "/index.m3u8%00.ts",
        "/%zz.ts",
        "/%c0%ae%c0%ae/secret.ts",
        "/360p",
        "http://127.0.0.1/../secret.ts",
    ] {
        let r = http(port, "GET", bad, &[]);
        assert!(
            r.status == 400 || r.status == 404,
            "{bad} answered {}: {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
        let body = String::from_utf8_lossy(&r.body);
        assert!(
            !body.contains("outside") && !body.contains("not media"),
            "{bad}"
        );
    }
    // a raw backslash or a bare `..` never reaches a file either
    for raw in ["GET /..\\secret.ts HTTP/1.1", "GET ../secret.ts HTTP/1.1"] {
        let mut c = connect(port);
        write!(c, "{raw}\r\nHost: x\r\n\r\n").unwrap();
        let (status, _) = read_head(&mut c).unwrap();
        assert!(status == 400 || status == 404, "{raw}: {status}");
    }
    // absolute-form targets (RFC 9112 3.2.2) name the same files
    let r = http(port, "GET", "http://127.0.0.1/index.m3u8", &[]);
    assert_eq!(r.status, 200);
    // other methods: 405, and a request body is never read
    let r = http(port, "POST", "/index.m3u8", &[("Content-Length", "5")]);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    // a head larger than the bound: refused, not buffered
    let big = "x".repeat(40_000);
    let mut c = connect(port);
    let sent = write!(
        c,
        "GET /index.m3u8 HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n"
    );
    let answer = sent.and_then(|()| read_head(&mut c));
    if let Ok((status, _)) = answer {
        assert_eq!(status, 431);
    } // else: closed before the whole head was read, also a refusal
    drop(s);
}

// ---------------------------------------------------------------------------------------
// slow clients

/// What one slow client met.
#[derive(Debug, Default, Clone, Copy)]
struct SlowStats {
    connects: u32,
    /// Turned away at once (503, or closed before its first trickle).
    refused: u32,
    /// Let in, then cut off by the server while trickling its head.
    cut: u32,
}

/// Until `deadline`: connect from `from`, optionally make one good request, then send a
/// request head one line every 5 s; when the server closes the connection, do it again.
fn slow_client(
    from: Ipv4Addr,
    port: u16,
    deadline: Instant,
    first_a_good_request: bool,
) -> SlowStats {
    let mut st = SlowStats::default();
    while Instant::now() < deadline {
        let Ok(mut s) = connect_from(from, port) else {
            thread::sleep(Duration::from_millis(500));
            continue;
        };
        st.connects += 1;
        let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
        let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
        if first_a_good_request {
            match request(&mut s, "GET", "/index.m3u8", &[]) {
                Ok(r) if r.status == 200 => {}
                _ => {
                    st.refused += 1;
                    thread::sleep(Duration::from_secs(1));
                    continue;
                }
            }
        }
        let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
        let mut trickled = 0;
        let mut line: &[u8] = b"GET /index.m3u8 HTTP/1.1\r\n";
        let closed = 'conn: loop {
            if s.write_all(line).is_err() {
                break 'conn true;
            }
            line = b"X-Slow: 1\r\n";
            // wait 5 s for the next line, watching for the server's answer or close
            let next = Instant::now() + Duration::from_secs(5);
            while Instant::now() < next {
                if Instant::now() >= deadline {
                    break 'conn false;
                }
                let mut b = [0u8; 256];
                match s.read(&mut b) {
                    Ok(_) => break 'conn true, // an answer (503, 408) or EOF: it is over
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(_) => break 'conn true,
                }
            }
            trickled += 1;
        };
        if closed {
            if trickled == 0 {
                st.refused += 1;
                thread::sleep(Duration::from_secs(1));
            } else {
                st.cut += 1;
            }
        }
    }
    st
}

/// What the player met.
#[derive(Debug, Default)]
struct PlayerStats {
    playlists: u32,
    /// New segments fetched whole after the slow clients started.
    segments: u32,
    failures: Vec<String>,
}

/// Until `deadline`, like a player: fetch the live playlist on a kept-alive connection and
/// every segment it lists that is new, checking each answer.
fn player(port: u16, deadline: Instant) -> PlayerStats {
    let mut st = PlayerStats::default();
    let mut seen: Vec<String> = Vec::new();
    let mut conn: Option<TcpStream> = None;
    let mut first = true;
    while Instant::now() < deadline {
        let c = conn.get_or_insert_with(|| connect(port));
        let pl = match request(c, "GET", "/index.m3u8", &[]) {
            Ok(r) if r.status == 200 && r.body.starts_with(b"#EXTM3U") => r,
            Ok(r) => {
                st.failures.push(format!("playlist: {}", r.head));
                conn = None;
                continue;
            }
            Err(e) => {
                st.failures.push(format!("playlist: {e}"));
                conn = None;
                continue;
            }
        };
        st.playlists += 1;
        for seg in segments(&String::from_utf8_lossy(&pl.body)) {
            if seen.contains(&seg) {
                continue;
            }
            seen.push(seg.clone());
            if first {
                continue; // listed before the slow clients came
            }
            match request(c, "GET", &format!("/{seg}"), &[]) {
                Ok(r) if r.status == 200 && r.body.first() == Some(&0x47) => st.segments += 1,
                // the live window moved on while we were busy: gone, as it should be
                Ok(r) if r.status == 404 => {}
                Ok(r) => st.failures.push(format!("{seg}: {}", r.head)),
                Err(e) => {
                    st.failures.push(format!("{seg}: {e}"));
                    conn = None;
                    break;
                }
            }
        }
        first = false;
        thread::sleep(Duration::from_millis(300));
    }
    st
}

#[test]
fn two_hundred_slow_clients_do_not_lock_out_a_player() {
    let long = std::env::var("SL_FUZZ_LONG").is_ok_and(|v| v == "1");
    let secs = if long { 120 } else { 20 };
    let dir = scratch_dir("hls-serve-slow-clients");
    let mut src = Source::start(&["-p", "box", "-s", "320x240"]);
    let served = Served::start(
        &dir,
        "127.0.0.1:0",
        &["--segment-time", "1", "--list-size", "6"],
        Some(src.stdout()),
    );
    wait_for_segments(&dir, 2, Duration::from_secs(60));
    let port = served.port;
    let rss_before = served.peak_rss();
    let deadline = Instant::now() + Duration::from_secs(secs);
    // 100 from one address (over its share: most are turned away), 100 from 100 addresses
    // (all let in: they hold connections until the header timeout cuts them off), half of
    // those after one good request on the connection (the timeout between requests)
    let mut slow = Vec::new();
    for i in 0..200u32 {
        let (from, good_first) = if i < 100 {
            (Ipv4Addr::new(127, 0, 0, 2), false)
        } else {
            (Ipv4Addr::new(127, 0, 1, (i - 99) as u8), i % 2 == 0)
        };
        slow.push(
            thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || slow_client(from, port, deadline, good_first))
                .unwrap(),
        );
    }
    let player = thread::spawn(move || player(port, deadline));
    let played = player.join().unwrap();
    let stats: Vec<SlowStats> = slow.into_iter().map(|t| t.join().unwrap()).collect();
    let one_ip = stats[..100].iter().fold(SlowStats::default(), sum);
    let (mut fresh, mut kept) = (SlowStats::default(), SlowStats::default());
    for (i, st) in stats.iter().enumerate().skip(100) {
        if i % 2 == 0 {
            kept = sum(kept, st);
        } else {
            fresh = sum(fresh, st);
        }
    }
    let rss_after = served.peak_rss();
    eprintln!(
        "{secs} s: player {} playlists, {} new segments, failures {:?}; one address: {one_ip:?}; \
         50 addresses, new connections: {fresh:?}; 50 addresses, after one request: {kept:?}; \
         sl-hls peak RSS {} -> {} MB",
        played.playlists,
        played.segments,
        played.failures,
        rss_before >> 20,
        rss_after >> 20
    );
    assert!(
        played.failures.is_empty(),
        "the player was turned away: {:?}",
        played.failures
    );
    assert!(
        played.segments >= 5,
        "the player got only {} new segments in {secs} s: {played:?}",
        played.segments
    );
    assert!(
        one_ip.refused > 0,
        "100 connections from one address were all let in: {one_ip:?}"
    );
    assert!(
        fresh.cut >= 25,
        "slow first request heads were not cut off: {fresh:?}"
    );
    assert!(
        kept.cut >= 25,
        "slow heads after a first request on the connection were not cut off: {kept:?}"
    );
}

fn sum(a: SlowStats, b: &SlowStats) -> SlowStats {
    SlowStats {
        connects: a.connects + b.connects,
        refused: a.refused + b.refused,
        cut: a.cut + b.cut,
    }
}

// ---------------------------------------------------------------------------------------
// memory

#[test]
fn ranges_heads_and_abandoned_downloads_of_a_large_file_keep_memory_bounded() {
    const SIZE: u64 = 400 << 20;
    const MARK_AT: u64 = 300 << 20;
    const MARK: &[u8] = b"sl-hls range mark";
    let dir = scratch_dir("hls-serve-memory");
    {
        use std::io::{Seek, SeekFrom};
        // sparse: 400 MB that take no disk
        let mut f = std::fs::File::create(dir.join("big.mp4")).unwrap();
        f.set_len(SIZE).unwrap();
        f.seek(SeekFrom::Start(MARK_AT)).unwrap();
        f.write_all(MARK).unwrap();
    }
    let served = Served::start(&dir, "127.0.0.1:0", &[], None);
    let port = served.port;
    // warm up: the runtime, a connection, a file read
    let r = http(port, "GET", "/big.mp4", &[("Range", "bytes=0-65535")]);
    assert_eq!(r.status, 206);
    let before = served.peak_rss();

    let mut workers = Vec::new();
    for w in 0..8u64 {
        workers.push(thread::spawn(move || {
            let mut c = connect(port);
            for i in 0..40u64 {
                match i % 5 {
                    0 => {
                        let r = request(&mut c, "HEAD", "/big.mp4", &[]).unwrap();
                        assert_eq!((r.status, r.content_length()), (200, Some(SIZE)));
                    }
                    1 => {
                        let r =
                            request(&mut c, "GET", "/big.mp4", &[("Range", "bytes=0-0")]).unwrap();
                        assert_eq!((r.status, r.body.len()), (206, 1));
                    }
                    2 => {
                        let range = format!("bytes={MARK_AT}-{}", MARK_AT + MARK.len() as u64 - 1);
                        let r = request(&mut c, "GET", "/big.mp4", &[("Range", &range)]).unwrap();
                        assert_eq!(r.status, 206);
                        assert_eq!(r.body, MARK, "the range is read from its offset");
                    }
                    3 => {
                        // 1 MB somewhere past the middle
                        let a = (200 << 20) + (w * 40 + i) * (1 << 20) / 2;
                        let range = format!("bytes={a}-{}", a + (1 << 20) - 1);
                        let r = request(&mut c, "GET", "/big.mp4", &[("Range", &range)]).unwrap();
                        assert_eq!((r.status, r.body.len()), (206, 1 << 20));
                    }
                    _ => {
                        let r =
                            request(&mut c, "GET", "/big.mp4", &[("Range", "bytes=-1")]).unwrap();
                        assert_eq!(
                            r.header("content-range"),
                            Some("bytes 419430399-419430399/419430400")
                        );
                    }
                }
            }
        }));
    }
    // downloads of the whole file abandoned after 4 MB, by clients that read slowly
    for _ in 0..8 {
        workers.push(thread::spawn(move || {
            let mut c = connect(port);
            write!(c, "GET /big.mp4 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let (status, _) = read_head(&mut c).unwrap();
            assert_eq!(status, 200);
            let mut buf = vec![0u8; 64 * 1024];
            for _ in 0..64 {
                c.read_exact(&mut buf).unwrap();
                thread::sleep(Duration::from_millis(20));
            }
        }));
    }
    // and two whole downloads
    for _ in 0..2 {
        workers.push(thread::spawn(move || {
            let mut c = connect(port);
            write!(
                c,
                "GET /big.mp4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            let (status, head) = read_head(&mut c).unwrap();
            assert_eq!(status, 200, "{head}");
            let mut buf = vec![0u8; 1 << 20];
            let (mut total, mut mark_seen) = (0u64, false);
            loop {
                let n = c.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                if total <= MARK_AT && MARK_AT < total + n as u64 {
                    let off = (MARK_AT - total) as usize;
                    mark_seen |= buf[off..n].starts_with(&MARK[..MARK.len().min(n - off)]);
                }
                total += n as u64;
            }
            assert_eq!(total, SIZE);
            assert!(mark_seen);
        }));
    }
    for w in workers {
        w.join().expect("a client failed");
    }
    let after = served.peak_rss();
    eprintln!(
        "200 HEADs and ranged GETs on 8 connections, 8 abandoned and 2 whole downloads of a \
         400 MB file: sl-hls peak RSS {:.1} MB -> {:.1} MB",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0
    );
    assert!(
        after - before < 32 << 20,
        "sl-hls's peak memory grew by {} MB",
        (after - before) >> 20
    );
}

// ---------------------------------------------------------------------------------------
// the command line

#[test]
fn a_bare_port_serves_on_loopback_says_where_and_ctrl_c_after_the_end_exits_0() {
    // `--serve PORT`: 127.0.0.1:PORT, said on a plain line (not a warning)
    let dir = scratch_dir("hls-serve-port");
    let port = free_tcp_port();
    let mut src = Command::new(bin("sl-test"))
        .args(["--fast", "-p", "box", "-s", "320x240", "-n", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut s = Served::start(
        &dir,
        &port.to_string(),
        &["--playlist-type", "vod"],
        Some(Stdio::from(src.stdout.take().unwrap())),
    );
    assert_eq!(s.port, port);
    let line = s.wait_for_line("serving ", Duration::from_secs(5));
    assert_eq!(
        line,
        format!(
            "sl-hls: serving {} on http://127.0.0.1:{port}/",
            dir.display()
        )
    );
    assert_eq!(http(port, "GET", "/", &[]).status, 200);
    s.wait_for_line("still serving", Duration::from_secs(120));
    let _ = src.wait();
    assert_eq!(http(port, "GET", "/index.m3u8", &[]).status, 200);
    // Ctrl-C now loses and interrupts nothing: success
    s.interrupt();
    assert_eq!(s.wait(Duration::from_secs(20)), Some(0), "{}", s.stderr());
    let err = s.stderr();
    assert!(!err.contains("warning") && !err.contains("error"), "{err}");

    // `--serve :PORT`, and Ctrl-C while the stream is still live: interrupted, 130
    let dir = scratch_dir("hls-serve-colon-port");
    let port = free_tcp_port();
    let mut live = Source::start(&["-p", "box", "-s", "320x240"]);
    let mut s = Served::start(
        &dir,
        &format!(":{port}"),
        &["--segment-time", "1"],
        Some(live.stdout()),
    );
    assert_eq!(s.port, port);
    wait_for_segments(&dir, 1, Duration::from_secs(60));
    assert_eq!(http(port, "GET", "/index.m3u8", &[]).status, 200);
    s.interrupt();
    assert_eq!(s.wait(Duration::from_secs(20)), Some(130), "{}", s.stderr());
    let text = std::fs::read_to_string(dir.join("index.m3u8")).unwrap();
    assert!(text.contains("#EXT-X-ENDLIST"), "finalised:\n{text}");

    // what is not an address: a usage error that says what is
    for bad in ["99999", "host", "localhost:http"] {
        let (code, _, err) = run_cmd(&bin("sl-hls"), &["out", "--serve", bad]);
        assert_eq!(code, Some(2), "--serve {bad}: {err}");
        assert!(err.contains("127.0.0.1") || err.contains("65535"), "{err}");
    }
}

// ---------------------------------------------------------------------------------------
// the browser

fn browser_dir() -> PathBuf {
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

/// Start tests/browser/play.mjs on `url` (it plays until 3 s have played or 90 s passed).
fn start_browser(url: &str, engine: &str) -> Child {
    Command::new("node")
        .current_dir(browser_dir())
        .args(["play.mjs", url, engine, "3", "90"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs")
}

/// The JSON line play.mjs printed; panics unless it played.
fn browser_result(child: Child, engine: &str) -> String {
    let out = child.wait_with_output().expect("node ends");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{engine}: playback failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_player_page_opened_before_the_first_segment_plays_once_there_is_one() {
    for engine in ["native", "hlsjs"] {
        let dir = scratch_dir(&format!("hls-serve-page-first-{engine}"));
        // nothing on stdin yet: no playlist at all
        let mut s = Served::start_env(
            &dir,
            "127.0.0.1:0",
            &["--segment-time", "4"],
            None,
            &[("RUST_LOG", "sl_hls_core::serve=debug")],
        );
        let page = start_browser(&format!("http://127.0.0.1:{}/", s.port), engine);
        // the page has asked for the playlist and got a 404
        s.wait_for_line("GET /index.m3u8 404", Duration::from_secs(60));
        // now the stream starts: an empty live playlist for 4 s, then a first segment
        let mut src = Source::start(&["-p", "box", "-s", "320x240"]);
        let stdin = s.stdin_held.take().unwrap();
        let mut copy = src.0.stdout.take().unwrap();
        let feeder = thread::spawn(move || {
            let mut stdin = stdin;
            let _ = std::io::copy(&mut copy, &mut stdin);
        });
        let r = browser_result(page, engine);
        let want = if engine == "native" {
            "native"
        } else {
            "hls.js"
        };
        assert!(r.contains(&format!("\"engine\":\"{want}\"")), "{r}");
        // (native HLS then also waits for a second segment)
        assert!(
            r.contains("\"waited\":[\"no playlist\",\"no segment yet\""),
            "the page saw neither the missing nor the empty playlist: {r}"
        );
        drop(src);
        let _ = feeder.join();
        drop(s);
    }
}

#[test]
fn the_readme_hls_example_is_live_when_a_browser_opens_it() {
    require("ffmpeg");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let readme = std::fs::read_to_string(repo.join("README.md")).unwrap();
    let line = readme
        .lines()
        .find(|l| l.contains("| sl-hls ") && l.contains("--serve"))
        .expect("README.md has an sl-hls --serve example");
    let command = line.split(" #").next().unwrap().trim();
    assert!(command.contains("8080"), "{command}");
    // the line as written; only the port is one that is free here, and talk.mp4 is made
    let dir = scratch_dir("hls-serve-readme");
    let port = free_tcp_port();
    let command = command.replace("8080", &port.to_string());
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
            "30",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-c:a",
            "aac",
            "-shortest",
            dir.join("talk.mp4").to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "ffmpeg: {err}");
    std::os::unix::fs::symlink(repo.join("examples"), dir.join("examples")).unwrap();
    let bins = bin("sl-hls").parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bins.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    use std::os::unix::process::CommandExt;
    let mut sh = Command::new("sh")
        .args(["-c", &command])
        .current_dir(&dir)
        .env("PATH", path)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let group = sh.id();
    let stop = |sig: &str| {
        let _ = Command::new("kill")
            .args([&format!("-{sig}"), "--", &format!("-{group}")])
            .status();
    };
    let out = dir.join("out");
    let start = Instant::now();
    while !std::fs::read_to_string(out.join("index.m3u8")).is_ok_and(|t| t.contains("#EXTINF")) {
        if start.elapsed() > Duration::from_secs(60) || sh.try_wait().unwrap().is_some() {
            stop("KILL");
            let o = sh.wait_with_output().unwrap();
            panic!(
                "`{command}` listed no segment: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        thread::sleep(Duration::from_millis(100));
    }
    // a user opens the page: the browser's own engine
    let page = start_browser(&format!("http://127.0.0.1:{port}/"), "auto");
    let r = browser_result(page, "auto");
    let text = std::fs::read_to_string(out.join("index.m3u8")).unwrap();
    let still_live = sh.try_wait().unwrap().is_none() && !text.contains("#EXT-X-ENDLIST");
    stop("INT");
    let o = sh.wait_with_output().unwrap();
    assert!(
        still_live,
        "the stream ended before the browser had played 3 s of it ({r}):\n{text}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = std::fs::read_to_string(out.join("index.m3u8")).unwrap();
    assert!(
        text.contains("#EXT-X-ENDLIST"),
        "finalised on Ctrl-C:\n{text}"
    );
}
