//! A small HTTP/1.1 server for an HLS output folder and a player page.
//!
//! What it serves, and nothing else:
//! - `/` (and `/index.html`): a player page (native HLS where the browser has it, else the
//!   hls.js copy compiled into the binary; `?engine=native` or `?engine=hlsjs` forces one);
//! - `/_sl/hls.light.min.js`: that hls.js copy (Apache-2.0, see `assets/hls.js-LICENSE`);
//! - files under the folder with an HLS extension (`.m3u8`, `.ts`, `.m4s`, `.mp4`, `.aac`,
//!   `.vtt`), by GET or HEAD, with single byte ranges.
//!
//! Paths are checked twice: the decoded path may hold no `..`, `.`-files, backslashes, NULs
//! or bad percent-escapes (400), and the file's canonical path (symlinks resolved) must still
//! be inside the folder's canonical path (404 otherwise). Playlists are sent `no-cache`;
//! segment names are unique per run, so segments are sent as immutable for a day.
//!
//! One thread per connection, at most [`MAX_CONNECTIONS`] at once (503 beyond), with read
//! and write timeouts so a slow client cannot hold a thread forever.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::HlsError;

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 64;
const MAX_HEADER_BYTES: usize = 16 * 1024;
const HLS_JS: &str = include_str!("../assets/hls.light.min.js");
const PLAYER: &str = include_str!("../assets/player.html");

/// A running server.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
}

impl Server {
    /// Bind `addr` and serve `root` from a background thread.
    pub fn start(addr: &str, root: &Path) -> Result<Server, HlsError> {
        let root = root.canonicalize().map_err(|e| HlsError::io(root, e))?;
        let listener = TcpListener::bind(addr).map_err(|e| HlsError::Serve {
            addr: addr.to_string(),
            source: e,
        })?;
        let local = listener.local_addr().map_err(|e| HlsError::Serve {
            addr: addr.to_string(),
            source: e,
        })?;
        let root = Arc::new(root);
        let active = Arc::new(AtomicUsize::new(0));
        std::thread::Builder::new()
            .name("sl-hls-serve".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    let Ok(stream) = conn else { continue };
                    if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                        active.fetch_sub(1, Ordering::SeqCst);
                        let mut s = stream;
                        // on the accept thread: never wait long for this client
                        let _ = s.set_write_timeout(Some(Duration::from_millis(500)));
                        let _ = respond_simple(&mut s, 503, "busy", false);
                        continue;
                    }
                    let root = Arc::clone(&root);
                    let slot = Arc::clone(&active);
                    let spawned = std::thread::Builder::new()
                        .name("sl-hls-conn".into())
                        .spawn(move || {
                            serve_connection(stream, &root);
                            slot.fetch_sub(1, Ordering::SeqCst);
                        });
                    if spawned.is_err() {
                        // the closure never ran: give its slot back
                        active.fetch_sub(1, Ordering::SeqCst);
                        log::warn!("cannot start a thread for an HTTP connection");
                    }
                }
            })
            .map_err(|e| HlsError::Serve {
                addr: addr.to_string(),
                source: e,
            })?;
        Ok(Server { addr: local })
    }

    /// The address it listens on (with the real port when asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// A parsed request head.
#[derive(Debug, PartialEq)]
struct Request {
    method: String,
    target: String,
    range: Option<String>,
    keep_alive: bool,
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Result<Request, u16>> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = reader
            .by_ref()
            .take((MAX_HEADER_BYTES - head.len().min(MAX_HEADER_BYTES)) as u64 + 1)
            .read_until(b'\n', &mut line)
            .ok()?;
        if n == 0 {
            return if head.is_empty() {
                None
            } else {
                Some(Err(400))
            };
        }
        if head.len() + line.len() > MAX_HEADER_BYTES {
            return Some(Err(431));
        }
        let blank = line == b"\r\n" || line == b"\n";
        if blank && head.is_empty() {
            continue; // tolerated before a request line
        }
        head.extend_from_slice(&line);
        if blank {
            break;
        }
    }
    let Ok(text) = std::str::from_utf8(&head) else {
        return Some(Err(400));
    };
    Some(parse_head(text))
}

fn parse_head(text: &str) -> Result<Request, u16> {
    let mut lines = text.lines();
    let first = lines.next().ok_or(400u16)?;
    let mut parts = first.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(400);
    };
    if !version.starts_with("HTTP/1.") {
        return Err(505);
    }
    let mut range = None;
    let mut keep_alive = version == "HTTP/1.1";
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k.trim().to_ascii_lowercase().as_str() {
            "range" => range = Some(v.to_string()),
            "connection" => {
                let v = v.to_ascii_lowercase();
                if v.contains("close") {
                    keep_alive = false;
                } else if v.contains("keep-alive") {
                    keep_alive = true;
                }
            }
            _ => {}
        }
    }
    Ok(Request {
        method: method.to_string(),
        target: target.to_string(),
        range,
        keep_alive,
    })
}

fn serve_connection(stream: TcpStream, root: &Path) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(15)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(30)));
    let _ = stream.set_nodelay(true);
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut out = write_half;
    let mut reader = BufReader::new(stream);
    // keep-alive: players fetch a playlist and segments again and again
    for _ in 0..1000 {
        let req = match read_request(&mut reader) {
            None => return,
            Some(Err(code)) => {
                let _ = respond_simple(&mut out, code, "bad request", false);
                return;
            }
            Some(Ok(r)) => r,
        };
        let keep = req.keep_alive;
        match handle(&req, root, &mut out) {
            Ok(()) if keep => {}
            _ => return,
        }
    }
}

/// What a request resolves to.
#[derive(Debug, PartialEq)]
enum Target {
    Player,
    HlsJs,
    /// `/favicon.ico`: browsers ask for it; 204, rather than a 404 in the console.
    NoContent,
    File(PathBuf),
}

/// Map a request target to what to serve, or an HTTP status.
fn resolve(target: &str, root: &Path) -> Result<Target, u16> {
    let path = target.split(['?', '#']).next().unwrap_or("");
    if !path.starts_with('/') {
        return Err(400);
    }
    let decoded = percent_decode(path).ok_or(400u16)?;
    if decoded == "/" || decoded == "/index.html" {
        return Ok(Target::Player);
    }
    if decoded == "/_sl/hls.light.min.js" {
        return Ok(Target::HlsJs);
    }
    if decoded == "/favicon.ico" {
        return Ok(Target::NoContent);
    }
    if decoded.contains('\0') || decoded.contains('\\') {
        return Err(400);
    }
    let rel = Path::new(&decoded[1..]);
    for c in rel.components() {
        match c {
            Component::Normal(s) => {
                if s.to_str().is_none_or(|s| s.starts_with('.')) {
                    return Err(400);
                }
            }
            // `..`, `.`, a second root: never
            _ => return Err(400),
        }
    }
    if decoded
        .split('/')
        .skip(1)
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(400);
    }
    if content_type(rel).is_none() {
        return Err(404);
    }
    let full = root.join(rel);
    // symlinks are resolved: whatever the name says, the file must live under the root
    let canon = full.canonicalize().map_err(|_| 404u16)?;
    if !canon.starts_with(root) || !canon.is_file() {
        return Err(404);
    }
    Ok(Target::File(canon))
}

/// `%XX` escapes decoded; `None` for a bad escape or a result that is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let v = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Content type and cache policy by extension; `None`: not served.
fn content_type(p: &Path) -> Option<(&'static str, &'static str)> {
    const PLAYLIST: &str = "no-cache, no-store, must-revalidate";
    const SEGMENT: &str = "public, max-age=86400, immutable";
    let ext = p.extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "m3u8" => ("application/vnd.apple.mpegurl", PLAYLIST),
        "ts" => ("video/mp2t", SEGMENT),
        "m4s" => ("video/iso.segment", SEGMENT),
        "mp4" => ("video/mp4", SEGMENT),
        "aac" => ("audio/aac", SEGMENT),
        "vtt" => ("text/vtt", SEGMENT),
        _ => return None,
    })
}

fn handle(req: &Request, root: &Path, out: &mut TcpStream) -> std::io::Result<()> {
    let head = match req.method.as_str() {
        "GET" => false,
        "HEAD" => true,
        _ => return respond_simple(out, 405, "only GET and HEAD", req.keep_alive),
    };
    match resolve(&req.target, root) {
        Err(code) => respond_simple(out, code, reason(code), req.keep_alive),
        Ok(Target::Player) => respond_bytes(
            out,
            "text/html; charset=utf-8",
            "no-cache",
            PLAYER.as_bytes(),
            head,
            req.keep_alive,
        ),
        Ok(Target::HlsJs) => respond_bytes(
            out,
            "text/javascript; charset=utf-8",
            "public, max-age=3600",
            HLS_JS.as_bytes(),
            head,
            req.keep_alive,
        ),
        Ok(Target::NoContent) => write_response(
            out,
            204,
            "text/plain",
            "public, max-age=86400",
            "",
            b"",
            head,
            req.keep_alive,
        ),
        Ok(Target::File(path)) => {
            let (ctype, cache) = content_type(&path).expect("checked in resolve");
            // read whole: segments are a few MB, and a file renamed over meanwhile is fine
            let data = match std::fs::read(&path) {
                Ok(d) => d,
                Err(_) => return respond_simple(out, 404, "not found", req.keep_alive),
            };
            match req
                .range
                .as_deref()
                .map(|r| parse_range(r, data.len() as u64))
            {
                Some(Some((a, b))) => {
                    let body = &data[a as usize..=b as usize];
                    let extra = format!("Content-Range: bytes {a}-{b}/{}\r\n", data.len());
                    write_response(out, 206, ctype, cache, &extra, body, head, req.keep_alive)
                }
                Some(None) => {
                    let extra = format!("Content-Range: bytes */{}\r\n", data.len());
                    write_response(
                        out,
                        416,
                        "text/plain",
                        "no-cache",
                        &extra,
                        b"",
                        head,
                        req.keep_alive,
                    )
                }
                None => respond_bytes(out, ctype, cache, &data, head, req.keep_alive),
            }
        }
    }
}

/// A single `bytes=a-b`, `bytes=a-` or `bytes=-n` range within `len`; `None` if unsatisfiable
/// or not understood.
fn parse_range(h: &str, len: u64) -> Option<(u64, u64)> {
    let spec = h.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || len == 0 {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 {
            return None;
        }
        (len.saturating_sub(n), len - 1)
    } else {
        let start: u64 = a.parse().ok()?;
        let end = if b.is_empty() {
            len - 1
        } else {
            b.parse::<u64>().ok()?.min(len - 1)
        };
        (start, end)
    };
    (start <= end && start < len).then_some((start, end))
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

fn respond_simple(out: &mut TcpStream, code: u16, msg: &str, keep: bool) -> std::io::Result<()> {
    let body = format!("{code} {msg}\n");
    let extra = if code == 405 {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    write_response(
        out,
        code,
        "text/plain; charset=utf-8",
        "no-cache",
        extra,
        body.as_bytes(),
        false,
        keep,
    )
}

fn respond_bytes(
    out: &mut TcpStream,
    ctype: &str,
    cache: &str,
    body: &[u8],
    head: bool,
    keep: bool,
) -> std::io::Result<()> {
    write_response(
        out,
        200,
        ctype,
        cache,
        "Accept-Ranges: bytes\r\n",
        body,
        head,
        keep,
    )
}

#[allow(clippy::too_many_arguments)]
fn write_response(
    out: &mut TcpStream,
    code: u16,
    ctype: &str,
    cache: &str,
    extra: &str,
    body: &[u8],
    head: bool,
    keep: bool,
) -> std::io::Result<()> {
    let header = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nCache-Control: {cache}\r\n\
         Access-Control-Allow-Origin: *\r\nX-Content-Type-Options: nosniff\r\nConnection: {}\r\n{extra}\r\n",
        reason(code),
        body.len(),
        if keep { "keep-alive" } else { "close" },
    );
    out.write_all(header.as_bytes())?;
    if !head {
        out.write_all(body)?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        let d = std::env::temp_dir().join(format!("sl-hls-serve-{}", std::process::id()));
        std::fs::create_dir_all(d.join("720p")).unwrap();
        std::fs::write(d.join("index.m3u8"), "#EXTM3U\n").unwrap();
        std::fs::write(d.join("720p/seg_1_00000.ts"), "ts").unwrap();
        std::fs::write(d.join("notes.txt"), "private").unwrap();
        d.canonicalize().unwrap()
    }

    #[test]
    fn serves_only_hls_files_under_the_root() {
        let r = root();
        assert_eq!(resolve("/", &r), Ok(Target::Player));
        assert_eq!(resolve("/?engine=native", &r), Ok(Target::Player));
        assert_eq!(
            resolve("/index.m3u8?_HLS_msn=3", &r),
            Ok(Target::File(r.join("index.m3u8")))
        );
        assert_eq!(
            resolve("/720p/seg_1_00000.ts", &r),
            Ok(Target::File(r.join("720p/seg_1_00000.ts")))
        );
        assert_eq!(resolve("/notes.txt", &r), Err(404));
        assert_eq!(resolve("/missing.ts", &r), Err(404));
        for bad in [
            "/../etc/passwd",
            "/720p/../index.m3u8",
            "/%2e%2e/x.ts",
            "/%2E%2E%2Fetc%2Fpasswd",
            "/..%2f..%2fx.m3u8",
            "//etc/x.m3u8",
            "/./index.m3u8",
            "/%00.ts",
            "/a\\..\\b.ts",
            "/%zz.ts",
            "/.hidden.ts",
            "index.m3u8",
            "http://x/index.m3u8",
        ] {
            assert!(resolve(bad, &r).is_err(), "{bad} was served");
        }
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_out_of_the_root_are_not_followed() {
        let r = root();
        let outside =
            std::env::temp_dir().join(format!("sl-hls-outside-{}.ts", std::process::id()));
        std::fs::write(&outside, "secret").unwrap();
        let link = r.join("escape.ts");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        assert_eq!(resolve("/escape.ts", &r), Err(404));
        std::fs::remove_file(&outside).unwrap();
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=50-500", 100), Some((50, 99)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }

    #[test]
    fn request_heads() {
        let r = parse_head("GET /a.ts HTTP/1.1\r\nRange: bytes=0-1\r\nConnection: close\r\n\r\n")
            .unwrap();
        assert_eq!(r.target, "/a.ts");
        assert_eq!(r.range.as_deref(), Some("bytes=0-1"));
        assert!(!r.keep_alive);
        assert_eq!(parse_head("GET /a HTTP/2\r\n\r\n"), Err(505));
        assert_eq!(parse_head("GET  /a HTTP/1.1\r\n\r\n"), Err(400));
    }
}
