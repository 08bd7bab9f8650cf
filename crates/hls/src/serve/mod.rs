//! The HTTP server of `sl-hls --serve`: an HLS output folder and a player page, over hyper's
//! HTTP/1.1 server.
//!
//! What it serves, and nothing else (see [`http`]):
//! - `/` (and `/index.html`): a player page (native HLS where the browser has it, else the
//!   hls.js copy compiled into the binary; `?engine=native` or `?engine=hlsjs` forces one);
//!   it waits until the playlist lists a segment before it starts a player, so it can be
//!   opened before the stream starts;
//! - `/_sl/hls.light.min.js`: that hls.js copy (Apache-2.0, see `assets/hls.js-LICENSE`);
//! - files under the folder with an HLS extension (`.m3u8`, `.ts`, `.m4s`, `.mp4`, `.aac`,
//!   `.vtt`), by GET or HEAD, with single byte ranges.
//!
//! How it holds up against clients that are slow or hostile:
//! - **Async, not a thread per connection**: hyper on a current-thread tokio runtime on one
//!   thread of its own, so an idle or slow connection costs a socket and a few kB, not a thread.
//! - **Bounded connections**: at most [`MAX_CONNECTIONS`] at once, and at most
//!   [`MAX_PER_CLIENT`] from one IP address; beyond either, a `503` with `Retry-After` is
//!   written without reading the request, and the socket is closed at once. So one client
//!   opening many connections locks out only itself.
//! - **Timeouts**: a request head must arrive whole within [`HEADER_TIMEOUT`] of the
//!   connection opening or of the end of the previous response (hyper 1.12's header-read
//!   timeout, which starts again whenever a kept-alive connection goes idle: a client
//!   trickling a header line every few seconds is cut off, and so is an idle keep-alive
//!   connection); a connection on which no byte moves either way for [`IDLE_TIMEOUT`] is
//!   closed (a client that stopped reading its response).
//! - **Files streamed from disk** in [`body::CHUNK`]-byte reads on tokio's blocking pool
//!   (capped at [`BLOCKING_THREADS`] threads), only as fast as the client takes them (hyper
//!   asks for the next chunk only once its write buffer, at most [`MAX_BUF`] bytes, has
//!   drained); a range is read from its offset; HEAD and `416` read nothing. So memory per
//!   connection is bounded whatever the file size.
//! - **Request heads** are bounded to [`MAX_BUF`] bytes (`431` beyond) and 64 header lines;
//!   request bodies are never read (a request with one gets its answer and the connection is
//!   closed).
//! - **Keep-alive** (HTTP/1.1 persistent connections): players fetch a playlist and segments
//!   again and again on the same connection.
//!
//! Paths are checked twice: the decoded path may hold no `..`, `.`-files, backslashes, NULs
//! or bad percent-escapes (400), and the file's canonical path (symlinks resolved) must still
//! be inside the folder's canonical path (404 otherwise). Playlists are sent `no-cache`;
//! segment names are unique per run, so segments are sent as immutable for a day.

mod body;
mod http;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::HlsError;

/// Connections served at once, from all clients.
///
/// Below the usual 1024 open-file limit, with room for the writer's own files.
pub const MAX_CONNECTIONS: usize = 512;
/// Connections served at once from one IP address. A browser opens about 6 per host; 32
/// leaves room for several tabs and players behind one address.
pub const MAX_PER_CLIENT: usize = 32;
/// Time for a whole request head to arrive (from the connection opening, or from the end of
/// the previous response on a kept-alive connection: so also the keep-alive idle time).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection on which no byte was read or written for this long is closed: a response
/// whose client stopped reading it (the header timeout covers the time between requests).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// hyper's read buffer (so the largest request head) and the write buffer it fills before it
/// waits for the socket to drain.
pub const MAX_BUF: usize = 16 * 1024;
/// Threads reading files at once (tokio's blocking pool; it defaults to 512).
pub const BLOCKING_THREADS: usize = 8;

/// A running server.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
}

impl Server {
    /// Bind `addr` and serve `root` from a background thread, until the process ends.
    ///
    /// `addr` is anything [`std::net::TcpListener::bind`] takes (`127.0.0.1:8080`,
    /// `[::]:8080`, `localhost:8080`); [`listen_address`] turns the user's spellings into one.
    pub fn start(addr: &str, root: &Path) -> Result<Server, HlsError> {
        let serve_err = |source| HlsError::Serve {
            addr: addr.to_string(),
            source,
        };
        let root = root.canonicalize().map_err(|e| HlsError::io(root, e))?;
        // bound here, on the caller's thread, so a port in use is the caller's error
        let listener = std::net::TcpListener::bind(addr).map_err(serve_err)?;
        let local = listener.local_addr().map_err(serve_err)?;
        listener.set_nonblocking(true).map_err(serve_err)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .max_blocking_threads(BLOCKING_THREADS)
            .thread_name("sl-hls-serve-io")
            .build()
            .map_err(serve_err)?;
        let shared = Arc::new(Shared {
            root,
            limits: Mutex::new(Limits::default()),
            epoch: Instant::now(),
        });
        std::thread::Builder::new()
            .name("sl-hls-serve".into())
            .spawn(move || {
                runtime.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(l) => accept_loop(l, shared).await,
                        Err(e) => log::error!("the HTTP server cannot run: {e}"),
                    }
                })
            })
            .map_err(serve_err)?;
        Ok(Server { addr: local })
    }

    /// The address it listens on (with the real port when asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// The address to listen on for what the user typed after `--serve`: a bare port (`8080`)
/// or `:port` means `127.0.0.1:port` (this machine only); `HOST:PORT` and `[V6]:PORT` are
/// kept as they are, once the port is checked.
pub fn listen_address(s: &str) -> Result<String, String> {
    let s = s.trim();
    let port_only = s.strip_prefix(':').unwrap_or(s);
    if !port_only.is_empty() && port_only.bytes().all(|b| b.is_ascii_digit()) {
        return match port_only.parse::<u16>() {
            Ok(p) => Ok(format!("127.0.0.1:{p}")),
            Err(_) => Err(format!("`{s}`: a port is 0 to 65535")),
        };
    }
    if s.parse::<SocketAddr>().is_ok() {
        return Ok(s.to_string());
    }
    match s.rsplit_once(':') {
        Some((host, port))
            if !host.is_empty() && !host.contains(':') && port.parse::<u16>().is_ok() =>
        {
            Ok(s.to_string())
        }
        _ => Err(format!(
            "`{s}` is not an address to listen on: give a port (8080, served on 127.0.0.1), \
             :PORT, HOST:PORT (0.0.0.0:8080 for every interface) or [IPV6]:PORT"
        )),
    }
}

/// What every connection shares.
#[derive(Debug)]
struct Shared {
    root: PathBuf,
    limits: Mutex<Limits>,
    /// Activity times are kept as milliseconds since this instant.
    epoch: Instant,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

/// Open connections, in all and per client address.
#[derive(Debug, Default)]
struct Limits {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// A connection's place under the limits, given back when it is dropped.
#[derive(Debug)]
struct Slot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut l = self.shared.limits.lock().unwrap_or_else(|p| p.into_inner());
        l.total -= 1;
        if let Some(n) = l.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                l.per_ip.remove(&self.ip);
            }
        }
    }
}

/// A slot for a connection from `ip`, or `None` when it is over a limit.
fn admit(shared: &Arc<Shared>, ip: IpAddr) -> Option<Slot> {
    // an IPv4 client on a dual-stack socket arrives as ::ffff:a.b.c.d: count it as a.b.c.d
    let ip = ip.to_canonical();
    let mut l = shared.limits.lock().unwrap_or_else(|p| p.into_inner());
    let mine = l.per_ip.get(&ip).copied().unwrap_or(0);
    if l.total >= MAX_CONNECTIONS || mine >= MAX_PER_CLIENT {
        return None;
    }
    l.total += 1;
    *l.per_ip.entry(ip).or_insert(0) += 1;
    Some(Slot {
        shared: Arc::clone(shared),
        ip,
    })
}

const BUSY: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Length: 37\r\nRetry-After: 1\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n\
503 too many connections: try later\n";

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut last_error: Option<Instant> = None;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // out of file descriptors, usually: wait for connections to close rather than
                // spin on a listener that stays readable; say so at most once a minute
                if last_error.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                    log::warn!("the HTTP server cannot accept a connection: {e}");
                    last_error = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        match admit(&shared, peer.ip()) {
            Some(slot) => {
                tokio::spawn(serve_connection(stream, peer, slot));
            }
            None => {
                // never wait for this client: what fits in the socket buffer now (all of it,
                // on a fresh connection) is sent, then the socket is closed
                log::debug!("{peer}: refused, over the connection limits");
                let _ = stream.try_write(BUSY);
            }
        }
    }
}

async fn serve_connection(stream: TcpStream, peer: SocketAddr, slot: Slot) {
    let _ = stream.set_nodelay(true);
    let shared = Arc::clone(&slot.shared);
    let last = Arc::new(AtomicU64::new(shared.now_ms()));
    let io = Tracked {
        io: stream,
        last: Arc::clone(&last),
        epoch: shared.epoch,
    };
    let root = shared.root.clone();
    let service = service_fn(move |req| {
        let root = root.clone();
        async move { Ok::<_, std::convert::Infallible>(http::respond(req, &root, peer).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(true)
        .max_buf_size(MAX_BUF)
        .max_headers(64)
        // "Content-Type", as most servers write it (and as scripts grep for it)
        .title_case_headers(true);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    loop {
        let idle =
            Duration::from_millis(shared.now_ms().saturating_sub(last.load(Ordering::Relaxed)));
        if idle >= IDLE_TIMEOUT {
            log::debug!("{peer}: closed after {IDLE_TIMEOUT:?} without traffic");
            break;
        }
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    log::debug!("{peer}: {e}");
                }
                break;
            }
            _ = tokio::time::sleep(IDLE_TIMEOUT - idle) => {}
        }
    }
    drop(slot);
}

/// A TCP stream that notes when a byte last moved either way (for the idle timeout).
struct Tracked {
    io: TcpStream,
    last: Arc<AtomicU64>,
    epoch: Instant,
}

impl Tracked {
    fn touch(&self) {
        self.last
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.touch();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.touch();
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(listen_address("8095").unwrap(), "127.0.0.1:8095");
        assert_eq!(listen_address(":8095").unwrap(), "127.0.0.1:8095");
        assert_eq!(listen_address("0").unwrap(), "127.0.0.1:0");
        assert_eq!(listen_address("0.0.0.0:80").unwrap(), "0.0.0.0:80");
        assert_eq!(listen_address("[::1]:8080").unwrap(), "[::1]:8080");
        assert_eq!(listen_address("localhost:8080").unwrap(), "localhost:8080");
        for bad in [
            "", ":", "99999", ":70000", "host", "host:", "host:x", "::1", "a:b:c",
        ] {
            assert!(listen_address(bad).is_err(), "{bad} was taken");
        }
    }

    #[test]
    fn limits_per_client_and_in_all() {
        let shared = Arc::new(Shared {
            root: PathBuf::from("/"),
            limits: Mutex::new(Limits::default()),
            epoch: Instant::now(),
        });
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let mut held: Vec<Slot> = (0..MAX_PER_CLIENT)
            .map(|i| admit(&shared, if i % 2 == 0 { a } else { mapped }).unwrap())
            .collect();
        assert!(admit(&shared, a).is_none(), "one address over its share");
        assert!(
            admit(&shared, mapped).is_none(),
            "the same address, IPv4-mapped"
        );
        held.pop();
        assert!(
            admit(&shared, a).is_some(),
            "a slot given back is free again"
        );
        drop(held);
        let mut all = Vec::new();
        for i in 0..MAX_CONNECTIONS {
            let ip = IpAddr::from([10, 1, (i / 250) as u8, (i % 250) as u8]);
            all.push(admit(&shared, ip).unwrap());
        }
        assert!(admit(&shared, "10.9.9.9".parse().unwrap()).is_none());
        drop(all);
        let l = shared.limits.lock().unwrap();
        assert_eq!((l.total, l.per_ip.len()), (0, 0), "every slot given back");
    }
}
