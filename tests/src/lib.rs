//! A small harness that runs real binaries joined by real OS pipes, with a timeout, and
//! reports every stage's exit code and stderr.
//!
//! ```no_run
//! use sl_e2e::Pipeline;
//! let out = Pipeline::new()
//!     .sl("sl-test", &["--fast", "--frames", "10", "--size", "64x48"])
//!     .sl("sl-info", &["--pass"])
//!     .run();
//! out.assert_success();
//! assert_eq!(out.frames().len(), 10);
//! ```
//!
//! Binaries are found next to the test executable's profile directory (`target/<profile>/`),
//! so `cargo test` must have built the workspace's binaries first (it does, for
//! `cargo test --workspace`). stdin is fed from its own thread and every output is drained by
//! its own thread, so no pipe can deadlock the harness.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use sl_frame::VideoFrame;
use sl_wire::{Message, Reader, WireError};

/// The path of a workspace binary such as `sl-test`, checked to be built from the current
/// source: a test must never pass or fail because of a binary left over from older code.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/test-binary -> target/<profile>/
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --release --bins` (scripts/test.sh does) first",
        path.display()
    );
    if let Some(stale) = newer_source(&path) {
        panic!(
            "{} is older than {}, a source it is built from: run `cargo build --release --bins` \
             (scripts/test.sh does) before the tests",
            path.display(),
            stale.display()
        );
    }
    path
}

/// A source file `binary` depends on that changed after it was built, from the dependency
/// list cargo writes next to it (`target/<profile>/NAME.d`).
fn newer_source(binary: &Path) -> Option<PathBuf> {
    let built = std::fs::metadata(binary).and_then(|m| m.modified()).ok()?;
    let deps = std::fs::read_to_string(binary.with_extension("d")).ok()?;
    let (_, list) = deps.split_once(": ")?;
    // paths are separated by spaces; a space inside a path is escaped as `\ `
    let mut paths = Vec::new();
    let mut cur = String::new();
    let mut chars = list.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&' ') => cur.push(chars.next().expect("peeked")),
            ' ' | '\n' => paths.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    paths.push(cur);
    paths
        .into_iter()
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .find(|p| {
            std::fs::metadata(p)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t > built)
        })
}

/// A scratch directory under the target directory, emptied first.
pub fn scratch_dir(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("e2e-scratch")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Panic unless `program` is on PATH. The tests' judges (ffmpeg, Xvfb, Chromium, nginx...)
/// are installed by scripts/setup.sh; a missing one is a failure, never a silent skip.
pub fn require(program: &str) {
    assert!(
        have(program),
        "`{program}` is missing: run scripts/setup.sh (it installs scripts/deps/*.apt)"
    );
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// A UDP port on 127.0.0.1 that was free a moment ago.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Is an external program on PATH?
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program} >/dev/null 2>&1"))
        .status()
        .is_ok_and(|s| s.success())
}

#[derive(Debug, Clone)]
struct Stage {
    name: String,
    program: PathBuf,
    args: Vec<OsString>,
}

/// A shell pipeline to run.
#[derive(Debug, Clone)]
pub struct Pipeline {
    stages: Vec<Stage>,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
    env: Vec<(OsString, OsString)>,
    env_remove: Vec<OsString>,
    dir: Option<PathBuf>,
}

impl Default for Pipeline {
    fn default() -> Self {
        Self::new()
    }
}

impl Pipeline {
    pub fn new() -> Pipeline {
        Pipeline {
            stages: Vec::new(),
            stdin: None,
            timeout: Duration::from_secs(60),
            env: Vec::new(),
            env_remove: Vec::new(),
            dir: None,
        }
    }

    /// Add one of our binaries (`sl-test`...).
    pub fn sl(self, name: &str, args: &[&str]) -> Pipeline {
        let program = bin(name);
        self.push(name, program, args)
    }

    /// Add any program on PATH (`head`, `tee`, `ffmpeg`...).
    pub fn cmd(self, program: &str, args: &[&str]) -> Pipeline {
        self.push(program, PathBuf::from(program), args)
    }

    fn push(mut self, name: &str, program: PathBuf, args: &[&str]) -> Pipeline {
        self.stages.push(Stage {
            name: name.to_string(),
            program,
            args: args.iter().map(OsString::from).collect(),
        });
        self
    }

    /// Bytes to feed the first stage's stdin (default: none, stdin is /dev/null).
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Pipeline {
        self.stdin = Some(bytes.into());
        self
    }

    pub fn timeout(mut self, t: Duration) -> Pipeline {
        self.timeout = t;
        self
    }

    pub fn env(mut self, k: &str, v: impl Into<OsString>) -> Pipeline {
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn env_remove(mut self, k: &str) -> Pipeline {
        self.env_remove.push(k.into());
        self
    }

    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Pipeline {
        self.dir = Some(dir.into());
        self
    }

    /// Start every stage, joined by pipes.
    pub fn spawn(self) -> Running {
        assert!(!self.stages.is_empty(), "empty pipeline");
        let mut children: Vec<Child> = Vec::new();
        let mut stderr_threads = Vec::new();
        let mut stderr_so_far = Vec::new();
        let mut stdin_thread = None;
        let mut prev_stdout = None;
        let n = self.stages.len();
        for (i, st) in self.stages.iter().enumerate() {
            let mut cmd = Command::new(&st.program);
            cmd.args(&st.args);
            for (k, v) in &self.env {
                cmd.env(k, v);
            }
            for k in &self.env_remove {
                cmd.env_remove(k);
            }
            if let Some(d) = &self.dir {
                cmd.current_dir(d);
            }
            cmd.stdin(match prev_stdout.take() {
                Some(out) => Stdio::from(out),
                None if self.stdin.is_some() => Stdio::piped(),
                None => Stdio::null(),
            });
            cmd.stdout(Stdio::piped());
            cmd.stderr(Stdio::piped());
            let mut child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", st.program.display()));
            if i == 0
                && let Some(bytes) = self.stdin.clone()
            {
                let mut sin = child.stdin.take().expect("piped stdin");
                stdin_thread = Some(thread::spawn(move || {
                    // a stage that stops reading early closes the pipe: not an error here
                    let _ = sin.write_all(&bytes);
                }));
            }
            let err = child.stderr.take().expect("piped stderr");
            let so_far = Arc::new(Mutex::new(Vec::new()));
            stderr_so_far.push(so_far.clone());
            stderr_threads.push(thread::spawn(move || drain(err, &so_far)));
            if i + 1 < n {
                prev_stdout = Some(child.stdout.take().expect("piped stdout"));
            }
            children.push(child);
        }
        let last_out = children
            .last_mut()
            .unwrap()
            .stdout
            .take()
            .expect("piped stdout");
        let stdout_so_far = Arc::new(Mutex::new(Vec::new()));
        let so_far = stdout_so_far.clone();
        let stdout_thread = thread::spawn(move || drain(last_out, &so_far));
        Running {
            names: self.stages.iter().map(|s| s.name.clone()).collect(),
            children,
            stderr_threads,
            stderr_so_far,
            stdout_so_far,
            stdout_thread,
            stdin_thread,
            timeout: self.timeout,
            started: Instant::now(),
        }
    }

    /// Run to completion (or panic after the timeout, with every stage's stderr).
    pub fn run(self) -> Outcome {
        self.spawn().wait()
    }
}

/// A started pipeline.
#[derive(Debug)]
pub struct Running {
    names: Vec<String>,
    children: Vec<Child>,
    stderr_threads: Vec<JoinHandle<()>>,
    /// What each stage has written to stderr so far, and the last stage to stdout: what the
    /// `wait_for_*` methods watch.
    stderr_so_far: Vec<Arc<Mutex<Vec<u8>>>>,
    stdout_so_far: Arc<Mutex<Vec<u8>>>,
    stdout_thread: JoinHandle<()>,
    stdin_thread: Option<JoinHandle<()>>,
    timeout: Duration,
    started: Instant,
}

impl Running {
    /// Process id of stage `i`.
    pub fn pid(&self, i: usize) -> u32 {
        self.children[i].id()
    }

    /// Send a signal (`"INT"`, `"TERM"`, `"KILL"`) to stage `i`.
    pub fn signal(&self, i: usize, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid(i).to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{sig} {} failed", self.pid(i));
    }

    /// What stage `i` has written to stderr so far.
    pub fn stderr_so_far(&self, i: usize) -> String {
        String::from_utf8_lossy(&self.stderr_so_far[i].lock().unwrap()).into_owned()
    }

    /// How many bytes the last stage has written to stdout so far.
    pub fn stdout_len(&self) -> usize {
        self.stdout_so_far.lock().unwrap().len()
    }

    /// How many bytes stage `i` has written so far, to any file (`wchar` in /proc/PID/io):
    /// for a stage whose stdout goes into the next one, and that logs nothing, these are the
    /// bytes it has put into the pipe. Pages handed to a pipe with `vmsplice` are not counted
    /// (frames of `sl_frame::pages::PAGED_FROM` bytes and more, from sl-test and sl-file): a
    /// test that counts a source's frames this way uses smaller ones.
    pub fn bytes_written(&self, i: usize) -> u64 {
        let pid = self.pid(i);
        let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
        io.lines()
            .find_map(|l| l.strip_prefix("wchar:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Wait until `ready` says yes: the stages are under way. Panics, with every stage's
    /// stderr so far, if the pipeline's timeout passes, or if every stage has exited and all
    /// their output is in without `ready` saying yes.
    pub fn wait_until(&mut self, what: &str, mut ready: impl FnMut(&Running) -> bool) {
        loop {
            if ready(self) {
                return;
            }
            let all_done = self
                .children
                .iter_mut()
                .all(|c| c.try_wait().ok().flatten().is_some())
                && self.stdout_thread.is_finished()
                && self.stderr_threads.iter().all(JoinHandle::is_finished);
            // the output is all in: one last look
            if all_done && ready(self) {
                return;
            }
            if all_done || self.started.elapsed() > self.timeout {
                let why = if all_done {
                    "every stage exited".to_string()
                } else {
                    format!("{:?} passed", self.timeout)
                };
                let errs: Vec<String> = (0..self.names.len())
                    .map(|i| self.stderr_so_far(i))
                    .collect();
                for c in &mut self.children {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                panic!("{why} before {what}; stderr of {:?}: {errs:#?}", self.names);
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Wait until the last stage has written at least `bytes` bytes to stdout.
    pub fn wait_for_stdout(&mut self, bytes: usize) {
        self.wait_until(&format!("{bytes} bytes on stdout"), |r| {
            r.stdout_len() >= bytes
        });
    }

    /// Wait until the last stage has written `n` whole video frames to stdout.
    pub fn wait_for_frames(&mut self, n: usize) {
        self.wait_until(&format!("{n} video frames on stdout"), |r| {
            r.frames_so_far() >= n
        });
    }

    /// How many whole video frames the last stage has written to stdout so far.
    pub fn frames_so_far(&self) -> usize {
        let out = self.stdout_so_far.lock().unwrap();
        let Ok(mut r) = Reader::new(&out[..]) else {
            return 0;
        };
        let mut n = 0;
        while let Ok(Some(m)) = r.next_message() {
            n += matches!(m, Message::Video { .. }) as usize;
        }
        n
    }

    /// Wait until stage `i` has written `text` to stderr.
    pub fn wait_for_stderr(&mut self, i: usize, text: &str) {
        let what = format!("{} said {text:?} on stderr", self.names[i]);
        self.wait_until(&what, |r| r.stderr_so_far(i).contains(text));
    }

    /// Wait for every stage; kills them all and panics if the timeout passes.
    pub fn wait(mut self) -> Outcome {
        let mut statuses: Vec<Option<ExitStatus>> = vec![None; self.children.len()];
        loop {
            for (i, c) in self.children.iter_mut().enumerate() {
                if statuses[i].is_none() {
                    statuses[i] = c.try_wait().expect("try_wait");
                }
            }
            if statuses.iter().all(Option::is_some) {
                break;
            }
            if self.started.elapsed() > self.timeout {
                for c in &mut self.children {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                for t in self.stderr_threads {
                    let _ = t.join();
                }
                let errs: Vec<String> = self.stderr_so_far.iter().map(|e| taken(e)).collect();
                panic!(
                    "pipeline {:?} timed out after {:?}; stderr: {:#?}",
                    self.names, self.timeout, errs
                );
            }
            thread::sleep(Duration::from_millis(5));
        }
        if let Some(t) = self.stdin_thread {
            let _ = t.join();
        }
        let _ = self.stdout_thread.join();
        let stdout = std::mem::take(&mut *self.stdout_so_far.lock().unwrap());
        let stages = self
            .names
            .into_iter()
            .zip(statuses)
            .zip(self.stderr_threads.into_iter().zip(&self.stderr_so_far))
            .map(|((name, status), (t, err))| {
                let status = status.expect("waited");
                let _ = t.join();
                StageOutcome {
                    name,
                    code: status.code(),
                    signal: std::os::unix::process::ExitStatusExt::signal(&status),
                    stderr: taken(err),
                }
            })
            .collect();
        Outcome { stdout, stages }
    }
}

/// How one stage ended.
#[derive(Debug, Clone)]
pub struct StageOutcome {
    pub name: String,
    /// Exit code, None if killed by a signal.
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stderr: String,
}

/// How a whole pipeline ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// What the last stage wrote to stdout.
    pub stdout: Vec<u8>,
    pub stages: Vec<StageOutcome>,
}

impl Outcome {
    /// Panic unless every stage exited 0.
    pub fn assert_success(&self) -> &Outcome {
        for s in &self.stages {
            assert_eq!(
                s.code,
                Some(0),
                "stage {} exited {:?} (signal {:?}); stderr:\n{}\nall stages: {:#?}",
                s.name,
                s.code,
                s.signal,
                s.stderr,
                self.stages
            );
        }
        self
    }

    /// Stage `i` (0 is the first).
    pub fn stage(&self, i: usize) -> &StageOutcome {
        &self.stages[i]
    }

    /// The last stage.
    pub fn last(&self) -> &StageOutcome {
        self.stages.last().expect("a stage")
    }

    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Decode stdout as a streamlib stream (panics if it is not a complete one).
    pub fn messages(&self) -> Vec<Message> {
        decode(&self.stdout).unwrap_or_else(|e| panic!("stdout is not a complete stream: {e}"))
    }

    /// The video frames on stdout, in order.
    pub fn frames(&self) -> Vec<VideoFrame> {
        video_frames(&self.messages())
    }

    /// The video frames on stdout of a stream that must have been left *unfinished*, as a
    /// failed stage leaves it (no end-of-stream, so the next stage knows). Panics if stdout
    /// is a finished stream, or not a stream at all.
    pub fn frames_of_failed_stream(&self) -> Vec<VideoFrame> {
        let mut r = Reader::new(&self.stdout[..])
            .unwrap_or_else(|e| panic!("stdout is not a stream at all: {e}"));
        let mut frames = Vec::new();
        loop {
            match r.next_message() {
                Ok(Some(Message::Video { frame, .. })) => frames.push(frame),
                Ok(Some(_)) => {}
                Ok(None) => panic!("stdout is a finished stream: a failed stage must not end it"),
                Err(WireError::Truncated(_)) => return frames,
                Err(e) => panic!("stdout is not a valid stream: {e}"),
            }
        }
    }

    /// stdout parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout_str()))
    }
}

/// What a drained pipe held, as text, emptying its buffer.
fn taken(buf: &Mutex<Vec<u8>>) -> String {
    String::from_utf8_lossy(&std::mem::take(&mut *buf.lock().unwrap())).into_owned()
}

/// Read `from` to its end into `into`, as it comes.
fn drain(mut from: impl Read, into: &Mutex<Vec<u8>>) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => into.lock().unwrap().extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Poll `ready` until it gives a value, or panic after `timeout` saying what never came.
/// For conditions outside a pipeline: a file appears, a port accepts, a playlist grows.
pub fn wait_for<T>(timeout: Duration, what: &str, mut ready: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = ready() {
            return v;
        }
        assert!(start.elapsed() < timeout, "no {what} after {timeout:?}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Wait until the HLS playlist in `dir` lists at least `n` segments.
pub fn wait_for_segments(dir: &Path, n: usize, timeout: Duration) {
    wait_for(
        timeout,
        &format!("{n} segments listed in {}/index.m3u8", dir.display()),
        || {
            let text = std::fs::read_to_string(dir.join("index.m3u8")).ok()?;
            (text.lines().filter(|l| l.starts_with("#EXTINF")).count() >= n).then_some(())
        },
    )
}

/// Wait until something listens on TCP `addr` (`proto` `"tcp"`) or has bound UDP `addr`
/// (`"udp"`), by reading /proc/net: a probe connection would be the one connection an RTSP
/// listener accepts, and a probe bind could take the port from under the listener. A socket
/// bound to every address (0.0.0.0 or ::) on that port counts.
pub fn wait_for_listener(proto: &str, addr: &str) {
    let addr: std::net::SocketAddr = addr.parse().expect("an IP address and port");
    // /proc/net prints each 32-bit word of the address as the machine stores it
    let hex = |b: &[u8]| -> String {
        b.chunks(4)
            .map(|w| format!("{:08X}", u32::from_ne_bytes(w.try_into().expect("4 bytes"))))
            .collect()
    };
    let (table, ip, any) = match addr.ip() {
        std::net::IpAddr::V4(ip) => (proto.to_string(), hex(&ip.octets()), hex(&[0; 4])),
        std::net::IpAddr::V6(ip) => (format!("{proto}6"), hex(&ip.octets()), hex(&[0; 16])),
    };
    let port = format!(":{:04X}", addr.port());
    wait_for(
        Duration::from_secs(20),
        &format!("{proto} listener on {addr}"),
        || {
            let text = std::fs::read_to_string(format!("/proc/net/{table}")).ok()?;
            text.lines()
                .skip(1)
                .any(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    let local = f.get(1).copied().unwrap_or("");
                    let on = [format!("{ip}{port}"), format!("{any}{port}")];
                    // TCP state 0A is LISTEN; a bound UDP socket has no such state
                    on.iter().any(|o| o == local) && (proto == "udp" || f.get(3) == Some(&"0A"))
                })
                .then_some(())
        },
    )
}

/// Wait until something accepts TCP connections on 127.0.0.1:`port`.
pub fn wait_for_tcp(port: u16, timeout: Duration) {
    wait_for(timeout, &format!("listener on 127.0.0.1:{port}"), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
}

/// Decode a complete byte stream.
pub fn decode(bytes: &[u8]) -> Result<Vec<Message>, WireError> {
    let mut r = Reader::new(bytes)?;
    let mut v = Vec::new();
    while let Some(m) = r.next_message()? {
        v.push(m);
    }
    Ok(v)
}

/// The video frames among `messages`.
pub fn video_frames(messages: &[Message]) -> Vec<VideoFrame> {
    messages
        .iter()
        .filter_map(|m| match m {
            Message::Video { frame, .. } => Some(frame.clone()),
            _ => None,
        })
        .collect()
}

/// Run stage `name` with its stdout going into the file at `path` (not a pipe: frames are
/// written, never handed over in pages of their own), and return the video frames it wrote.
/// Panics if the stage fails.
pub fn video_frames_written_to_file(name: &str, args: &[&str], path: &Path) -> Vec<VideoFrame> {
    let status = Command::new(bin(name))
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(path).unwrap())
        .status()
        .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
    assert!(
        status.success(),
        "{name} {args:?} > {}: {status}",
        path.display()
    );
    video_frames(&decode(&std::fs::read(path).unwrap()).unwrap())
}

/// Run a program to completion and return (exit code, stdout, stderr).
pub fn run_cmd(program: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
