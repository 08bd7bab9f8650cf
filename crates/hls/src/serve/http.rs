//! One request to one response: which file a path names (and which it must not), content
//! types and caching, byte ranges.

use std::io::SeekFrom;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};

use hyper::body::{Body as _, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::io::AsyncSeekExt;

use super::body::Body;

const HLS_JS: &str = include_str!("../../assets/hls.light.min.js");
const PLAYER: &str = include_str!("../../assets/player.html");

const PLAYLIST_CACHE: &str = "no-cache, no-store, must-revalidate";
const SEGMENT_CACHE: &str = "public, max-age=86400, immutable";

/// Answer one request. Never fails: every problem is an HTTP status.
pub(super) async fn respond(
    req: Request<Incoming>,
    root: &Path,
    peer: SocketAddr,
) -> Response<Body> {
    let mut res = answer(&req, root).await;
    // a request body is never read: close rather than leave hyper to drain it
    if !req.body().is_end_stream() {
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let h = res.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    log::debug!(
        "{peer} {} {} {}",
        req.method(),
        req.uri().path(),
        res.status().as_u16()
    );
    res
}

async fn answer(req: &Request<Incoming>, root: &Path) -> Response<Body> {
    let head = match *req.method() {
        Method::GET => false,
        Method::HEAD => true,
        _ => {
            let mut r = simple(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD");
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
    };
    let target = match resolve(req.uri().path(), root) {
        Ok(t) => t,
        Err(code) => return simple(code, code.canonical_reason().unwrap_or("error")),
    };
    match target {
        Target::Player => bytes(
            "text/html; charset=utf-8",
            "no-cache",
            PLAYER.as_bytes(),
            head,
        ),
        Target::HlsJs => bytes(
            "text/javascript; charset=utf-8",
            "public, max-age=3600",
            HLS_JS.as_bytes(),
            head,
        ),
        Target::NoContent => {
            let mut r = Response::new(Body::Empty);
            *r.status_mut() = StatusCode::NO_CONTENT;
            set(&mut r, header::CACHE_CONTROL, "public, max-age=86400");
            r
        }
        Target::File(path) => {
            let range = req
                .headers()
                .get(header::RANGE)
                .and_then(|v| v.to_str().ok());
            file(&path, range, head).await
        }
    }
}

/// A file, whole or a range of it, read from disk as the client takes it.
async fn file(path: &Path, range: Option<&str>, head: bool) -> Response<Body> {
    let (ctype, cache) = content_type(path).expect("checked in resolve");
    // the length is the opened file's: a file renamed over meanwhile is sent as it was opened
    let mut f = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        // deleted since resolve (a live window's old segment): gone, as it should be
        Err(_) => return simple(StatusCode::NOT_FOUND, "not found"),
    };
    let len = match f.metadata().await {
        Ok(m) => m.len(),
        Err(_) => return simple(StatusCode::NOT_FOUND, "not found"),
    };
    let (status, start, count) = match range.map(|r| parse_range(r, len)) {
        None | Some(Range::Ignored) => (StatusCode::OK, 0, len),
        Some(Range::Part(a, b)) => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
        Some(Range::Unsatisfiable) => {
            let mut r = simple(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable");
            set(&mut r, header::CONTENT_RANGE, &format!("bytes */{len}"));
            return r;
        }
    };
    let body = if head || count == 0 {
        Body::Empty
    } else {
        if start > 0 && f.seek(SeekFrom::Start(start)).await.is_err() {
            return simple(StatusCode::INTERNAL_SERVER_ERROR, "cannot read the file");
        }
        Body::file(f, count)
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    set(&mut r, header::CONTENT_TYPE, ctype);
    set(&mut r, header::CACHE_CONTROL, cache);
    set(&mut r, header::ACCEPT_RANGES, "bytes");
    set(&mut r, header::CONTENT_LENGTH, &count.to_string());
    if status == StatusCode::PARTIAL_CONTENT {
        let end = start + count - 1;
        set(
            &mut r,
            header::CONTENT_RANGE,
            &format!("bytes {start}-{end}/{len}"),
        );
    }
    r
}

fn bytes(ctype: &str, cache: &str, data: &'static [u8], head: bool) -> Response<Body> {
    let body = if head {
        Body::Empty
    } else {
        Body::Bytes(Some(data.into()))
    };
    let mut r = Response::new(body);
    set(&mut r, header::CONTENT_TYPE, ctype);
    set(&mut r, header::CACHE_CONTROL, cache);
    set(&mut r, header::CONTENT_LENGTH, &data.len().to_string());
    r
}

fn simple(code: StatusCode, msg: &str) -> Response<Body> {
    let text = format!("{} {msg}\n", code.as_u16());
    let mut r = Response::new(Body::Bytes(Some(text.into())));
    *r.status_mut() = code;
    set(&mut r, header::CONTENT_TYPE, "text/plain; charset=utf-8");
    set(&mut r, header::CACHE_CONTROL, "no-cache");
    r
}

fn set(r: &mut Response<Body>, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
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

/// Map a request path (no query: hyper splits it off) to what to serve, or an HTTP status.
fn resolve(path: &str, root: &Path) -> Result<Target, StatusCode> {
    let bad = StatusCode::BAD_REQUEST;
    let path = path.split(['?', '#']).next().unwrap_or("");
    if !path.starts_with('/') {
        return Err(bad);
    }
    let decoded = percent_decode(path).ok_or(bad)?;
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
        return Err(bad);
    }
    if decoded
        .split('/')
        .skip(1)
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(bad);
    }
    let rel = Path::new(&decoded[1..]);
    for c in rel.components() {
        match c {
            Component::Normal(s) => {
                if s.to_str().is_none_or(|s| s.starts_with('.')) {
                    return Err(bad);
                }
            }
            // `..`, `.`, a second root: never
            _ => return Err(bad),
        }
    }
    if content_type(rel).is_none() {
        return Err(StatusCode::NOT_FOUND);
    }
    // symlinks are resolved: whatever the name says, the file must live under the root
    let canon = root
        .join(rel)
        .canonicalize()
        .map_err(|_| StatusCode::NOT_FOUND)?;
    // ... and be a media file by its own name too (a link `x.ts` to `notes.txt` is not)
    if !canon.starts_with(root) || !canon.is_file() || content_type(&canon).is_none() {
        return Err(StatusCode::NOT_FOUND);
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
    let ext = p.extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "m3u8" => ("application/vnd.apple.mpegurl", PLAYLIST_CACHE),
        "ts" => ("video/mp2t", SEGMENT_CACHE),
        "m4s" => ("video/iso.segment", SEGMENT_CACHE),
        "mp4" => ("video/mp4", SEGMENT_CACHE),
        "aac" => ("audio/aac", SEGMENT_CACHE),
        "vtt" => ("text/vtt", SEGMENT_CACHE),
        _ => return None,
    })
}

/// What a `Range` header asks of a file.
#[derive(Debug, PartialEq)]
enum Range {
    /// Bytes `a..=b`, within the file.
    Part(u64, u64),
    /// A single range that starts past the end (416).
    Unsatisfiable,
    /// Not a single byte range this server reads (another unit, several ranges, bad
    /// syntax): the whole file is sent, as RFC 9110 14.2 allows.
    Ignored,
}

/// A single `bytes=a-b`, `bytes=a-` or `bytes=-n` range of a file of `len` bytes.
fn parse_range(h: &str, len: u64) -> Range {
    let Some(spec) = h.trim().strip_prefix("bytes=") else {
        return Range::Ignored;
    };
    if spec.contains(',') {
        return Range::Ignored;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Range::Ignored;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        // the last n bytes
        return match b.parse::<u64>() {
            Ok(0) => Range::Unsatisfiable,
            Ok(_) if len == 0 => Range::Unsatisfiable,
            Ok(n) => Range::Part(len.saturating_sub(n), len - 1),
            Err(_) => Range::Ignored,
        };
    }
    let Ok(start) = a.parse::<u64>() else {
        return Range::Ignored;
    };
    let end = if b.is_empty() {
        None
    } else {
        match b.parse::<u64>() {
            Ok(e) if e >= start => Some(e),
            _ => return Range::Ignored,
        }
    };
    if start >= len {
        return Range::Unsatisfiable;
    }
    Range::Part(start, end.unwrap_or(len - 1).min(len - 1))
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
        assert_eq!(resolve("/notes.txt", &r), Err(StatusCode::NOT_FOUND));
        assert_eq!(resolve("/missing.ts", &r), Err(StatusCode::NOT_FOUND));
        assert_eq!(resolve("/720p", &r), Err(StatusCode::NOT_FOUND));
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
            "/%ff.ts",
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
        assert_eq!(resolve("/escape.ts", &r), Err(StatusCode::NOT_FOUND));
        let alias = r.join("alias.ts");
        let _ = std::fs::remove_file(&alias);
        std::os::unix::fs::symlink(r.join("notes.txt"), &alias).unwrap();
        assert_eq!(resolve("/alias.ts", &r), Err(StatusCode::NOT_FOUND));
        std::fs::remove_file(&outside).unwrap();
    }

    #[test]
    fn ranges() {
        use Range::*;
        assert_eq!(parse_range("bytes=0-9", 100), Part(0, 9));
        assert_eq!(parse_range("bytes=0-0", 100), Part(0, 0));
        assert_eq!(parse_range("bytes=90-", 100), Part(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), Part(90, 99));
        assert_eq!(parse_range("bytes=-1000", 100), Part(0, 99));
        assert_eq!(parse_range("bytes=50-500", 100), Part(50, 99));
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(
            parse_range("bytes=18446744073709551615-", 100),
            Unsatisfiable
        );
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ignored);
        assert_eq!(parse_range("items=0-1", 100), Ignored);
        assert_eq!(parse_range("bytes=9-2", 100), Ignored);
        assert_eq!(parse_range("bytes=x-2", 100), Ignored);
        assert_eq!(parse_range("bytes=99999999999999999999-", 100), Ignored);
    }
}
