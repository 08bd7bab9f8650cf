//! The four roles (`send`, `listen`, `serve`, `recv`) and the key commands.

use std::io::{self, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use quinn::{Connection, ConnectionError, Endpoint, VarInt};
use sl_wire::Limits;
use tokio::sync::mpsc;

use crate::NetError;
use crate::codec::{CodecOptions, Decoded, Emit, LinkDecoder, LinkEncoder};
use crate::hub::{Finish, Hub, SubPolicy, Subscription};
use crate::keys::{self, Fingerprint, Identity, Pins};
use crate::link::{self, Handed, Output, PullEnd, PushEnd, Resume};
use crate::pool::{Pool, PoolBuf};
use crate::proto::{
    self, Hello, Msg, PROTOCOL_VERSION, REPLY_MAGIC, Role, StreamReader, WirePolicy, close,
};
use crate::stats::Stats;
use crate::tls::{self, PinCheck, Verifier};

/// `--policy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    Block,
    Latest,
}

impl std::str::FromStr for Policy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "block" => Ok(Policy::Block),
            "latest" => Ok(Policy::Latest),
            _ => Err(format!("`{s}` is not a policy: use block or latest")),
        }
    }
}

impl Policy {
    fn sub(self) -> SubPolicy {
        match self {
            Policy::Block => SubPolicy::Block,
            Policy::Latest => SubPolicy::Latest,
        }
    }
    fn wire(self) -> WirePolicy {
        match self {
            Policy::Block => WirePolicy::Block,
            Policy::Latest => WirePolicy::Latest,
        }
    }
}

/// What every role takes.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// This machine's key file (default under `$XDG_CONFIG_HOME/streamlib`).
    pub key: Option<PathBuf>,
    /// Peer keys pinned on the command line.
    pub peers: Vec<Fingerprint>,
    /// The allowed-keys file (default next to the key).
    pub allowed_keys: Option<PathBuf>,
    /// Accept any peer key (loudly).
    pub insecure_accept_any_key: bool,
    /// Delivery policy (send: for the link; recv: asked of the server; serve: the default for
    /// receivers that do not ask... receivers always ask, so unused there).
    pub policy: Option<Policy>,
    /// Print a stats line every two seconds.
    pub stats: bool,
    /// Print the end summary as JSON (on stderr).
    pub json: bool,
    pub quiet: bool,
    /// serve: wait for this many receivers before reading the input.
    pub wait_for: usize,
    /// send/recv: reconnect after a lost connection.
    pub reconnect: bool,
    /// send/serve: how raw video is coded on the link (`None`: the role's default).
    pub codec: Option<CodecOptions>,
}

fn say(quiet: bool, msg: impl std::fmt::Display) {
    if !quiet {
        eprintln!("{}: {msg}", sl_cli::program());
    }
}

struct Setup {
    id: Identity,
    check: Arc<Verifier>,
}

fn setup(o: &Options) -> anyhow::Result<Setup> {
    let path = match &o.key {
        // a key named on the command line must be there: a mistyped path would otherwise
        // become a new identity that no peer has pinned (only `sl-net key` makes one there)
        Some(p) if !p.exists() => {
            return Err(sl_cli::usage(format!(
                "there is no key at {}: check the path, or make a key there with \
                 `sl-net key --key {}` and pin its fingerprint on the other machine",
                p.display(),
                p.display()
            )));
        }
        Some(p) => p.clone(),
        None => keys::default_key_path()?,
    };
    let (id, created) = Identity::load_or_create(&path)?;
    if created {
        say(
            o.quiet,
            format!(
                "made this machine's key in {}; its fingerprint is {}",
                path.display(),
                id.fingerprint
            ),
        );
    }
    let file = match &o.allowed_keys {
        Some(f) => f.clone(),
        None => keys::default_allowed_path()?,
    };
    let mut pins = Pins::new(&o.peers, Some(&file))?;
    if o.insecure_accept_any_key {
        pins.accept_any = true;
        // printed even with -q: skipping authentication is never quiet
        eprintln!(
            "{}: warning: --insecure-accept-any-key: accepting ANY peer key; anyone who can \
             reach this machine can send or receive the stream",
            sl_cli::program()
        );
    } else if pins.is_empty() {
        return Err(sl_cli::usage(format!(
            "no peer key is pinned, so every peer would be refused: pass `--peer FINGERPRINT` \
             (the other machine's `sl-net key`), or add it to {} with `sl-net allow FINGERPRINT`. \
             This machine's key is {}",
            file.display(),
            id.fingerprint
        )));
    }
    Ok(Setup {
        id,
        check: PinCheck::new(pins),
    })
}

/// `sl-net key`: print this machine's fingerprint (making the key on first use).
pub fn key_command(key: Option<PathBuf>) -> anyhow::Result<()> {
    let path = match key {
        Some(p) => p,
        None => keys::default_key_path()?,
    };
    let (id, created) = Identity::load_or_create(&path)?;
    if created {
        eprintln!(
            "{}: made a new key in {}",
            sl_cli::program(),
            path.display()
        );
    }
    let mut out = io::stdout().lock();
    writeln!(out, "{}", id.fingerprint)?;
    Ok(())
}

/// `sl-net allow FINGERPRINT [COMMENT]`.
pub fn allow_command(fp: Fingerprint, comment: &str, file: Option<PathBuf>) -> anyhow::Result<()> {
    if comment.chars().any(char::is_control) {
        return Err(sl_cli::usage(
            "a comment is one line of text: it cannot hold a newline or other control character",
        ));
    }
    let file = match file {
        Some(f) => f,
        None => keys::default_allowed_path()?,
    };
    if keys::allow(&file, &fp, comment)? {
        eprintln!("{}: {fp} added to {}", sl_cli::program(), file.display());
    } else {
        eprintln!(
            "{}: {fp} was already in {}",
            sl_cli::program(),
            file.display()
        );
    }
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    crate::alloc::keep_freed_memory();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the network runtime")
}

/// Parse `quic://host:port`, `host:port`, `[v6]:port`, or `:port` (all addresses, for a
/// listener).
/// Every address `addr` names, in the resolver's order of preference (a name may have an
/// IPv6 and an IPv4 address: a dialer tries each, [`connect_any`]; a listener binds the first).
fn resolve(addr: &str, listening: bool) -> anyhow::Result<Vec<SocketAddr>> {
    let a = addr.strip_prefix("quic://").unwrap_or(addr);
    let a = a.trim_end_matches('/');
    // an IPv6 address needs brackets to be told from its port
    if !a.starts_with('[')
        && let Some((host, port)) = a.rsplit_once(':')
        && host.contains(':')
        && host.parse::<std::net::Ipv6Addr>().is_ok()
    {
        let scheme = if addr.starts_with("quic://") {
            "quic://"
        } else {
            ""
        };
        return Err(sl_cli::usage(format!(
            "`{addr}`: an IPv6 address goes in brackets before its port, `{scheme}[{host}]:{port}`"
        )));
    }
    let with_host = if a.starts_with(':') {
        if !listening {
            return Err(sl_cli::usage(format!(
                "`{addr}` has no host: say which machine, e.g. `quic://studio{a}`"
            )));
        }
        format!("[::]{a}")
    } else {
        a.to_string()
    };
    let found = match with_host.to_socket_addrs() {
        Ok(addrs) => {
            let mut all: Vec<SocketAddr> = Vec::new();
            for a in addrs {
                if !all.contains(&a) {
                    all.push(a);
                }
            }
            all
        }
        // HOST:PORT in form, but the name was not found: not a usage error
        Err(e) => match with_host.rsplit_once(':') {
            Some((host, port)) if port.parse::<u16>().is_ok() => bail!(
                "cannot find the machine `{host}` ({e}): check the name, or give its IP address"
            ),
            _ => {
                return Err(sl_cli::usage(format!(
                    "`{addr}` is not an address this program can use ({e}): write HOST:PORT, \
                     [IPv6]:PORT or :PORT"
                )));
            }
        },
    };
    let Some(first) = found.first() else {
        bail!("`{addr}` resolves to no address")
    };
    if !listening && first.port() == 0 {
        return Err(sl_cli::usage(format!(
            "`{addr}`: port 0 cannot be dialled; give the port the other side listens on"
        )));
    }
    Ok(found)
}

fn bind_server(addr: SocketAddr, s: &Setup, live: bool) -> anyhow::Result<Endpoint> {
    let cfg = tls::server_config(&s.id, Arc::clone(&s.check), live, addr.ip().is_loopback())?;
    udp_socket(addr, false)
        .and_then(|sock| endpoint(sock, Some(cfg)))
        .map_err(|e| match e.kind() {
            io::ErrorKind::AddrInUse => anyhow!(
                "address {addr} is in use (another sl-net listen or serve?): pick another port, or \
             stop the program using it"
            ),
            io::ErrorKind::PermissionDenied => anyhow!(
                "not allowed to listen on {addr}: ports below 1024 need privileges; pick a higher \
             port"
            ),
            io::ErrorKind::AddrNotAvailable => {
                anyhow!(
                    "{addr} is not an address of this machine: listen on `:PORT` for all addresses"
                )
            }
            _ => anyhow!("cannot listen on {addr}: {e}"),
        })
}

fn client_endpoint(targets: &[SocketAddr], s: &Setup, live: bool) -> anyhow::Result<Endpoint> {
    // dual-stack when any address is IPv6: quinn maps the IPv4 ones
    let local: SocketAddr = if targets.iter().any(SocketAddr::is_ipv6) {
        "[::]:0".parse().expect("address")
    } else {
        "0.0.0.0:0".parse().expect("address")
    };
    let mut ep = udp_socket(local, true)
        .and_then(|sock| endpoint(sock, None))
        .context("opening a UDP socket")?;
    ep.set_default_client_config(tls::client_config(
        &s.id,
        Arc::clone(&s.check),
        live,
        targets.iter().all(|t| t.ip().is_loopback()),
    )?);
    Ok(ep)
}

/// Socket buffers: a few of the largest datagrams each way is not enough at gigabits per
/// second (the kernel's default of 208 KiB holds three 64 KiB datagrams, and a receiver a
/// moment late drops the rest, which QUIC then reads as congestion). The kernel caps these at
/// net.core.rmem_max / wmem_max.
const SOCKET_BUFFER: usize = 8 << 20;

/// A UDP socket bound to `addr` (a dual-stack one for a dialer's `[::]`), with large buffers.
fn udp_socket(addr: SocketAddr, dual_stack: bool) -> io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if dual_stack && addr.is_ipv6() {
        let _ = sock.set_only_v6(false);
    }
    // too large for the system's limit is fine: the kernel takes what it allows
    let _ = sock.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = sock.set_send_buffer_size(SOCKET_BUFFER);
    sock.bind(&addr.into())?;
    Ok(sock.into())
}

fn endpoint(sock: std::net::UdpSocket, cfg: Option<quinn::ServerConfig>) -> io::Result<Endpoint> {
    Endpoint::new(
        tls::endpoint_config(),
        cfg,
        sock,
        Arc::new(quinn::TokioRuntime),
    )
}

fn peer_fingerprint(c: &Connection) -> Option<Fingerprint> {
    let certs = c
        .peer_identity()?
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .ok()?;
    let parsed = rustls::server::ParsedCertificate::try_from(certs.first()?).ok()?;
    Some(Fingerprint::of_spki(
        parsed.subject_public_key_info().as_ref(),
    ))
}

/// TLS alert numbers inside QUIC crypto error codes (0x100 + alert).
fn crypto_alert(e: &ConnectionError) -> Option<u8> {
    let code = match e {
        ConnectionError::ConnectionClosed(c) => u64::from(c.error_code),
        ConnectionError::TransportError(t) => u64::from(t.code),
        _ => return None,
    };
    (0x100..0x200).contains(&code).then(|| (code - 0x100) as u8)
}

const ALERT_NO_APPLICATION_PROTOCOL: u8 = 120;
const ALERT_CERTIFICATE_REQUIRED: u8 = 116;

/// Explain a failed handshake on the dialing side.
fn dial_error(e: ConnectionError, addr: &str, s: &Setup, role: &str) -> anyhow::Error {
    let seen = s.check.last_seen();
    if seen.refused
        && let Some(fp) = seen.fingerprint
    {
        return anyhow!(
            "refused {addr}: it presented key {fp}, which is not pinned here. If that is the \
             right machine (check with `sl-net key` there), {}",
            s.check.pins().how_to_pin(&fp)
        );
    }
    match crypto_alert(&e) {
        Some(ALERT_NO_APPLICATION_PROTOCOL) => anyhow!(
            "{addr} does not speak sl-net protocol {PROTOCOL_VERSION} (another streamlib \
             release, or not sl-net at all): use the same release on both machines"
        ),
        Some(_) => anyhow!(
            "{addr} refused this machine's key {fp}: on that machine, run `sl-net allow {fp}` \
             or pass `--peer {fp}` to its {role}",
            fp = s.id.fingerprint
        ),
        None => match e {
            ConnectionError::TimedOut => anyhow!(
                "no answer from {addr}: is `sl-net {role}` running there, and can UDP reach \
                 that port?"
            ),
            e => anyhow!("cannot connect to {addr}: {e}"),
        },
    }
}

/// Explain a failed handshake on the accepting side (a warning: the listener goes on).
fn accept_error(e: &ConnectionError, from: SocketAddr, s: &Setup) -> String {
    let seen = s.check.last_seen();
    if seen.refused
        && let Some(fp) = seen.fingerprint
    {
        return format!(
            "refused a connection from {from}: its key {fp} is not pinned here. If you trust \
             that machine, {}",
            s.check.pins().how_to_pin(&fp)
        );
    }
    match crypto_alert(e) {
        Some(ALERT_NO_APPLICATION_PROTOCOL) => format!(
            "refused a connection from {from}: it does not speak sl-net protocol \
             {PROTOCOL_VERSION} (another streamlib release?)"
        ),
        // the peer's alert: it refused our key
        Some(_) if matches!(e, ConnectionError::ConnectionClosed(_)) => format!(
            "{from} refused this machine's key {fp}: on that machine, run `sl-net allow {fp}` \
             or pass `--peer {fp}`",
            fp = s.id.fingerprint
        ),
        // our own: the handshake failed here before any key was seen
        Some(ALERT_CERTIFICATE_REQUIRED) => format!(
            "refused a connection from {from}: it presented no key (it is not sl-net, or not \
             this release of it)"
        ),
        Some(_) => format!(
            "refused a connection from {from}: its handshake failed ({e}); it is not sl-net, \
             or not this release of it"
        ),
        None => format!("a connection from {from} failed: {e}"),
    }
}

/// How long a dialer waits on one address of a name before trying its next one as well
/// (Happy Eyeballs, RFC 8305): a name's IPv6 address may not answer from here while its IPv4
/// one does, as `localhost` does when the listener is bound to 127.0.0.1.
const NEXT_ADDRESS_AFTER: Duration = Duration::from_millis(250);

/// Handshakes under way on this process's dialling endpoint. Once one address of a name has
/// answered, the attempts at its other addresses are left to finish on their own (one that
/// connects late is closed at once, telling its peer; one that never answers times out), and
/// [`drain`] does not wait for them: nobody is there to be told.
static HANDSHAKING: AtomicUsize = AtomicUsize::new(0);

/// Counts one handshake in [`HANDSHAKING`] for as long as it lives (also when its task is
/// aborted).
struct Handshaking;

impl Handshaking {
    fn new() -> Handshaking {
        HANDSHAKING.fetch_add(1, Ordering::SeqCst);
        Handshaking
    }
}

impl Drop for Handshaking {
    fn drop(&mut self) {
        HANDSHAKING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The QUIC handshake with the first of `targets` to answer. They are tried in order, each
/// started when the one before has failed or after [`NEXT_ADDRESS_AFTER`]; once one is
/// connected, the others are left to end by themselves (see [`HANDSHAKING`]).
async fn connect_any(
    ep: &Endpoint,
    targets: &[SocketAddr],
    addr: &str,
    s: &Setup,
    peer_role: &str,
) -> anyhow::Result<Connection> {
    let mut attempts = tokio::task::JoinSet::new();
    let mut next = targets.iter().copied();
    let mut failed: Vec<(SocketAddr, ConnectionError)> = Vec::new();
    let start = |attempts: &mut tokio::task::JoinSet<_>, t: SocketAddr| -> anyhow::Result<()> {
        let connecting = ep
            .connect(t, "streamlib")
            .map_err(|e| anyhow!("cannot connect to {addr} ({t}): {e}"))?;
        let counted = Handshaking::new();
        attempts.spawn(async move {
            let r = connecting.await;
            // a connection made after another address won is dropped with the task's result,
            // which closes it
            drop(counted);
            (t, r)
        });
        Ok(())
    };
    let first = next
        .next()
        .ok_or_else(|| anyhow!("`{addr}` has no address"))?;
    start(&mut attempts, first)?;
    let mut left = targets.len() - 1;
    let timer = tokio::time::sleep(NEXT_ADDRESS_AFTER);
    tokio::pin!(timer);
    loop {
        let joined = tokio::select! {
            j = attempts.join_next() => j,
            _ = &mut timer, if left > 0 => None,
        };
        let outcome = match joined {
            // the timer: the next address as well
            None if left > 0 => None,
            None => break,
            Some(Ok((_, Ok(conn)))) => {
                attempts.detach_all();
                return Ok(conn);
            }
            Some(Ok((t, Err(e)))) => Some((t, e)),
            Some(Err(e)) => bail!("connecting to {addr}: {e}"),
        };
        if let Some(f) = outcome {
            failed.push(f);
        }
        if let Some(t) = next.next() {
            start(&mut attempts, t)?;
            left -= 1;
            timer
                .as_mut()
                .reset(tokio::time::Instant::now() + NEXT_ADDRESS_AFTER);
        } else if attempts.is_empty() {
            break;
        }
    }
    // Report an answer (a refusal says more than silence), else the first address's silence.
    let i = failed
        .iter()
        .position(|(_, e)| !matches!(e, ConnectionError::TimedOut))
        .unwrap_or(0);
    let (t, e) = failed.swap_remove(i);
    let named = if targets.len() == 1 {
        addr.to_string()
    } else if matches!(e, ConnectionError::TimedOut) {
        let tried: Vec<String> = targets.iter().map(SocketAddr::to_string).collect();
        format!("{addr} (tried {})", tried.join(", "))
    } else {
        format!("{addr} ({t})")
    };
    Err(dial_error(e, &named, s, peer_role))
}

/// The far side stopped (Ctrl-C there, or its output closed) while this side was dialling
/// it: as after a closed pipe, the end, not a fault to retry.
#[derive(Debug)]
struct PeerStopped(String);

impl std::fmt::Display for PeerStopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} stopped receiving", self.0)
    }
}

impl std::error::Error for PeerStopped {}

/// Dial and exchange hellos. The acceptor's refusal comes back as an error.
async fn dial(
    ep: &Endpoint,
    targets: &[SocketAddr],
    addr: &str,
    s: &Setup,
    hello: Hello,
    peer_role: &str,
) -> anyhow::Result<(Connection, HelloStream)> {
    let conn = connect_any(ep, targets, addr, s, peer_role).await?;
    let exchange = async {
        let (mut tx, mut rx) = conn.open_bi().await?;
        tx.write_all(&hello.encode()).await?;
        let mut r = StreamReader { rs: &mut rx };
        let mut head = [0u8; 5];
        r.exact(&mut head).await?;
        let reason = r.str(proto::MAX_REASON).await?;
        Ok::<_, NetError>((tx, rx, head, reason))
    };
    let (tx, rx, head, reason) = match tokio::time::timeout(Duration::from_secs(10), exchange).await
    {
        Ok(Ok(x)) => x,
        Ok(Err(
            NetError::Connection(e)
            | NetError::Read(quinn::ReadError::ConnectionLost(e))
            | NetError::Write(quinn::WriteError::ConnectionLost(e)),
        )) => {
            if let ConnectionError::ApplicationClosed(c) = &e {
                let code = c.error_code.into_inner();
                if code == u64::from(close::INTERRUPTED)
                    || code == u64::from(close::DOWNSTREAM_CLOSED)
                {
                    return Err(PeerStopped(addr.to_string()).into());
                }
                bail!("{addr} refused: {}", String::from_utf8_lossy(&c.reason));
            }
            return Err(dial_error(e, addr, s, peer_role));
        }
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => bail!("{addr} accepted the connection but never answered the hello"),
    };
    if &head[..4] != REPLY_MAGIC {
        bail!("{addr} answered with something that is not sl-net");
    }
    if head[4] != 0 {
        bail!("{addr} refused: {reason}");
    }
    Ok((conn, HelloStream { tx, rx }))
}

/// The hello stream, kept open for the connection's life: afterwards it carries the
/// puller's delivery reports (see [`crate::proto`]).
struct HelloStream {
    tx: quinn::SendStream,
    rx: quinn::RecvStream,
}

impl HelloStream {
    /// The half a pusher reads delivery reports from; the other half stays open.
    fn for_push(self) -> quinn::RecvStream {
        let tx = self.tx;
        tokio::spawn(async move {
            let _keep = tx;
            std::future::pending::<()>().await;
        });
        self.rx
    }

    /// The half a puller writes delivery reports to; the other half stays open.
    fn for_pull(self) -> quinn::SendStream {
        let rx = self.rx;
        tokio::spawn(async move {
            let _keep = rx;
            std::future::pending::<()>().await;
        });
        self.tx
    }
}

/// Read the dialer's hello on an accepted connection.
async fn read_hello(conn: &Connection) -> Result<(Hello, HelloStream), NetError> {
    let (tx, mut rx) = tokio::time::timeout(Duration::from_secs(10), conn.accept_bi())
        .await
        .map_err(|_| NetError::Protocol("the peer sent no hello within 10 s".into()))??;
    let mut b = [0u8; Hello::LEN];
    StreamReader { rs: &mut rx }.exact(&mut b).await?;
    Ok((Hello::decode(&b)?, HelloStream { tx, rx }))
}

async fn reply(tx: &mut quinn::SendStream, refusal: Option<&str>) -> Result<(), NetError> {
    let mut b = REPLY_MAGIC.to_vec();
    b.push(refusal.is_some() as u8);
    b.extend_from_slice(&proto::encode_str(refusal.unwrap_or("")));
    tx.write_all(&b).await?;
    Ok(())
}

/// Let closing connections tell their peers (the close frame must go out before the
/// endpoint is dropped), for a second at most.
///
/// Handshakes still under way are not waited for: they are attempts at a name's other
/// addresses, which never answered ([`HANDSHAKING`]).
async fn drain(ep: &Endpoint) {
    let closed = async {
        while ep.open_connections() > HANDSHAKING.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        tokio::select! {
            _ = ep.wait_idle() => {}
            _ = closed => {}
        }
    })
    .await;
}

async fn until_interrupted() {
    while !sl_cli::interrupted() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn start_stats_printer(rt: &tokio::runtime::Runtime, stats: &Arc<Stats>, on: bool) {
    if !on {
        return;
    }
    let stats = Arc::clone(stats);
    rt.spawn(async move {
        let mut t = tokio::time::interval(Duration::from_secs(2));
        t.tick().await;
        loop {
            t.tick().await;
            eprintln!("{}: {}: {}", sl_cli::program(), stats.role, stats.line());
        }
    });
}

/// Say at once that stdin is a terminal, not after trying to connect.
fn refuse_terminal_input(role: &str, addr: &str) -> anyhow::Result<()> {
    if sl_cli::stdin_is_terminal() {
        return Err(sl_cli::usage(format!(
            "no input: stdin is a terminal. Pipe a stream in, e.g. `sl-test | sl-net {role} {addr}`"
        )));
    }
    Ok(())
}

/// The end-of-run summary on stderr: a line of figures once connected, or with --json always
/// one JSON object, which also says whether the run succeeded and, if not, why.
fn summary(json: bool, quiet: bool, stats: &Stats, r: &anyhow::Result<()>) {
    if json {
        let mut v = stats.json();
        v["ok"] = r.is_ok().into();
        v["error"] = match r {
            Ok(()) => serde_json::Value::Null,
            Err(e) => format!("{e:#}").into(),
        };
        v["interrupted"] = sl_cli::interrupted().into();
        eprintln!("{v}");
    } else if !quiet && stats.connected() {
        eprintln!("{}: {}: {}", sl_cli::program(), stats.role, stats.line());
    }
}

/// `--json` on a command line that does not parse (an unknown option, a bad value): the
/// summary object every run of a role ends with, its figures zero, `ok` false and `error`
/// the usage message, so a script that reads the summary finds one on every run. `args` is
/// the command line after the program name; nothing is printed without `--json` in it.
pub fn usage_error_summary(args: &[String], message: &str) {
    let options = args.iter().take_while(|a| *a != "--");
    if !options.clone().any(|a| a == "--json") {
        return;
    }
    let role = options.clone().find(|a| !a.starts_with('-')).and_then(|a| {
        ["send", "listen", "serve", "recv"]
            .into_iter()
            .find(|r| r == a)
    });
    let mut v = match role {
        Some(role) => Stats::new(role).json(),
        None => serde_json::json!({}),
    };
    let first = message
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(message);
    v["ok"] = false.into();
    v["error"] = first.trim().trim_start_matches("error: ").into();
    v["interrupted"] = false.into();
    eprintln!("{v}");
}

/// Read stdin into the hub on a thread of its own, coding raw video as `codec` says. With
/// `go`, only the stream header is read (so input that is not a stream fails at once) and the
/// rest waits for the go-ahead; a `go` dropped unsent ends the thread.
fn spawn_input(
    hub: Arc<Hub>,
    codec: CodecOptions,
    go: Option<std::sync::mpsc::Receiver<()>>,
) -> JoinHandle<anyhow::Result<()>> {
    std::thread::spawn(move || {
        let mut reader = match sl_cli::frame_input() {
            Ok(r) => r,
            Err(e) => {
                hub.fail(format!("{e:#}"));
                return Err(e);
            }
        };
        hub.start();
        if let Some(go) = go
            && go.recv().is_err()
        {
            return Ok(());
        }
        let mut encoder = LinkEncoder::new(codec, hub.keyframe_requests());
        let mut emits = Vec::new();
        // each payload is read straight into a buffer of its own, which goes on the wire as
        // it is (no copy) and comes back for a later frame when sent (crate::pool)
        let pool = Pool::new();
        loop {
            match reader.next_raw_into(|len| pool.take(len)) {
                Ok(Some(raw)) => {
                    emits.clear();
                    if let Err(e) = encoder.process(&raw.head, raw.payload.as_ref(), &mut emits) {
                        let e = anyhow::Error::from(e).context("coding the stream for the link");
                        hub.fail(format!("{e:#}"));
                        return Err(e);
                    }
                    let end = raw.is_end_of_all();
                    let flags = raw.prefix_and_header[1];
                    let mut payload = Some(raw.payload);
                    for emit in emits.drain(..) {
                        let m = match emit {
                            // the input message itself (once): its payload goes as read
                            Emit::Original => {
                                let mut parts = vec![Bytes::copy_from_slice(raw.prefix_and_header)];
                                let p = payload.take().map(PoolBuf::freeze).unwrap_or_default();
                                if !p.is_empty() {
                                    parts.push(p);
                                }
                                Msg::from_head(&raw.head, flags, parts)
                            }
                            Emit::New(m) => match Msg::from_message(&m) {
                                Ok(m) => m,
                                Err(e) => {
                                    let e = anyhow::Error::from(e)
                                        .context("coding the stream for the link");
                                    hub.fail(format!("{e:#}"));
                                    return Err(e);
                                }
                            },
                        };
                        hub.publish(m);
                    }
                    if end {
                        return Ok(());
                    }
                }
                Ok(None) => return Ok(()),
                // Ctrl-C reached the whole pipeline: the stage before may have died first
                Err(_) if sl_cli::interrupted() => {
                    hub.end_now();
                    return Ok(());
                }
                Err(e) => {
                    let e = anyhow::Error::from(e).context("reading stdin");
                    hub.fail(format!("{e:#}"));
                    return Err(e);
                }
            }
        }
    })
}

/// A writer thread owning stdout. Link-coded frames are decoded back to raw here, off the
/// network runtime.
fn spawn_output() -> anyhow::Result<(Output, JoinHandle<anyhow::Result<bool>>)> {
    let mut w = sl_cli::frame_output()?;
    // one message handed over ahead: the rest wait in the link's queue, where a `latest`
    // frame can still be dropped for a newer one (link::pull)
    let (tx, mut rx) = mpsc::channel::<(Msg, Handed)>(1);
    let out = Output::new(tx);
    let (closed, broken, failed, settled) = (
        Arc::clone(&out.closed),
        Arc::clone(&out.broken),
        Arc::clone(&out.failed),
        Arc::clone(&out.settled),
    );
    let (written, written_changed) = (Arc::clone(&out.written), Arc::clone(&out.written_changed));
    let t = std::thread::spawn(move || -> anyhow::Result<bool> {
        let mut decoder = LinkDecoder::new(Limits::default());
        // an ordered record counts as written once it is in the pipe (the sender's
        // reports, by which a `block` one resumes after a lost connection)
        let count = |how: Handed| {
            if how != Handed::Message {
                written.fetch_add(1, Ordering::SeqCst);
                written_changed.notify_one();
            }
        };
        let r = (|| -> anyhow::Result<bool> {
            while let Some((m, how)) = rx.blocking_recv() {
                if how == Handed::Skip {
                    count(how);
                    continue;
                }
                let decoded = match m.kind {
                    sl_wire::kind::STREAM_INFO | sl_wire::kind::PACKET | sl_wire::kind::END => {
                        decoder.process(m.head()?, &m.payload())?
                    }
                    _ => Decoded::Original,
                };
                let msgs = match decoded {
                    Decoded::Original => vec![m],
                    Decoded::Replaced(ms) => ms
                        .iter()
                        .map(Msg::from_message)
                        .collect::<Result<Vec<_>, _>>()?,
                };
                for m in msgs {
                    if m.is_end_of_all() {
                        w.finish()?;
                        // END is a record too: the last report says it is written out, so a
                        // `block` sender that then loses the connection (its DONE with it)
                        // knows the link ended
                        count(how);
                        return Ok(true);
                    }
                    let mut slices: Vec<io::IoSlice<'_>> =
                        m.parts.iter().map(|p| io::IoSlice::new(p)).collect();
                    write_all_slices(w.get_mut(), &mut slices)?;
                }
                count(how);
            }
            w.flush()?;
            Ok(false)
        })();
        let _settle = Settle(settled);
        match &r {
            Err(e) if sl_cli::is_broken_pipe(e) => {
                broken.store(true, Ordering::Relaxed);
                closed.notify_one();
                return Ok(false);
            }
            Err(_) => {
                // the stream cannot go on (a frame that does not decode): stop the link too
                failed.store(true, Ordering::Relaxed);
                broken.store(true, Ordering::Relaxed);
                closed.notify_one();
            }
            Ok(_) => {}
        }
        r
    });
    Ok((out, t))
}

/// Marks the output settled when the writer thread ends, however it ends.
struct Settle(Arc<link::Settled>);
impl Drop for Settle {
    fn drop(&mut self) {
        self.0.set();
    }
}

fn write_all_slices(w: &mut impl Write, slices: &mut [io::IoSlice<'_>]) -> io::Result<()> {
    let mut bufs: &mut [io::IoSlice<'_>] = slices;
    while !bufs.is_empty() {
        let n = bufs.len().min(1024);
        match w.write_vectored(&bufs[..n]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(k) => io::IoSlice::advance_slices(&mut bufs, k),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Wait for the writer thread after the output channel is dropped.
fn finish_output(out: Output, t: JoinHandle<anyhow::Result<bool>>) -> anyhow::Result<bool> {
    drop(out);
    t.join()
        .map_err(|_| anyhow!("the output thread panicked"))?
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((200u64 << attempt.min(5)).min(5000))
}

/// `sl-net send ADDR`: push stdin to a listener.
pub fn send(addr: &str, o: Options) -> anyhow::Result<()> {
    let (json, quiet) = (o.json, o.quiet);
    let stats = Arc::new(Stats::new("send"));
    let r = send_run(addr, o, Arc::clone(&stats));
    summary(json, quiet, &stats, &r);
    r
}

fn send_run(addr: &str, o: Options, stats: Arc<Stats>) -> anyhow::Result<()> {
    refuse_terminal_input("send", addr)?;
    let targets = resolve(addr, false)?;
    let s = setup(&o)?;
    let policy = o.policy.unwrap_or(Policy::Block);
    let rt = runtime()?;
    start_stats_printer(&rt, &stats, o.stats);
    let hub = Hub::new();
    let mut sub = hub
        .subscribe(policy.sub())
        .expect("a new hub has not ended");
    let codec = o
        .codec
        .clone()
        .unwrap_or_else(CodecOptions::default_for_send);
    let input = spawn_input(Arc::clone(&hub), codec, None);
    let hello = Hello {
        version: PROTOCOL_VERSION,
        role: Role::Push,
        policy: policy.wire(),
    };
    let result = rt.block_on(async {
        let _guard = rt.enter();
        let ep = client_endpoint(&targets, &s, policy == Policy::Latest)?;
        let interrupt_hub = Arc::clone(&hub);
        tokio::spawn(async move {
            until_interrupted().await;
            interrupt_hub.end_now();
        });
        // Dial once the input has shown it is a stream: input that is not (the stage before
        // failed, or wrote text) is an error here, and the listener never hears of it.
        tokio::select! {
            _ = hub.started() => {}
            _ = until_interrupted() => {}
        }
        let mut connected_once = false;
        let mut attempt = 0;
        // a `block` link resumes on a new connection where the receiver stopped writing out
        let mut resume = (policy == Policy::Block).then(|| Resume::new(new_session()));
        loop {
            let nothing_to_resend = resume.as_ref().is_none_or(Resume::is_empty);
            let dialled = tokio::select! {
                c = dial(&ep, &targets, addr, &s, hello, "listen") => c,
                // the input is not a stream (or broke) before a frame of it was queued: say
                // so now, rather than after a connection attempt that may time out
                _ = sub.failed_with_nothing_queued(), if nothing_to_resend => {
                    sub.leave();
                    return Ok(());
                }
                _ = until_interrupted(), if !connected_once => {
                    sub.leave();
                    return Ok(());
                }
            };
            let (conn, hello_stream) = match dialled {
                Ok(c) => c,
                Err(e) if e.is::<PeerStopped>() => {
                    log::info!("{e}");
                    sub.leave();
                    return Ok(());
                }
                Err(e) if connected_once && o.reconnect && !sl_cli::interrupted() => {
                    log::warn!("{e:#}; trying again");
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                    continue;
                }
                Err(e) => {
                    sub.leave();
                    return Err(e);
                }
            };
            if connected_once && policy == Policy::Block && hub.all_intra() {
                // the subscription goes on where it was; the new connection first sends again
                // what the last one's receiver did not write out (link::Resume)
                let again = resume.as_ref().map_or(0, Resume::frames_to_resend);
                say(
                    o.quiet,
                    if again > 0 {
                        format!(
                            "reconnected to {addr}; sending again the {again} frames it had \
                             not written out"
                        )
                    } else {
                        format!("reconnected to {addr}; it had written out everything sent")
                    },
                );
            } else if connected_once {
                // the new connection starts with the stream descriptions (and an H.264 link
                // at a keyframe)
                let fresh = match hub.subscribe(policy.sub()) {
                    Some(f) => f,
                    None => {
                        sub.leave();
                        bail!("the input ended while the link to {addr} was down: frames were lost")
                    }
                };
                if let Some(r) = resume.as_mut() {
                    // sent and not written out, or queued for the lost connection: the fresh
                    // subscription starts after them, under a session of its own
                    stats.lost_frames.fetch_add(
                        r.frames_to_resend() + sub.queued_frames(),
                        Ordering::Relaxed,
                    );
                    *r = Resume::new(new_session());
                }
                sub.leave();
                sub = fresh;
                say(o.quiet, format!("reconnected to {addr}"));
                let lost = stats.lost_frames.load(Ordering::Relaxed);
                if lost > 0 {
                    log::warn!(
                        "{lost} frames lost with the connection so far (never written out at \
                         {addr}; coded frames start again at a keyframe); the run will end with \
                         exit 1"
                    );
                }
            }
            connected_once = true;
            attempt = 0;
            stats.add_conn(&conn);
            log::info!(
                "connected to {addr} ({})",
                peer_fingerprint(&conn)
                    .map(|f| f.to_string())
                    .unwrap_or_default()
            );
            let end = link::push(
                &conn,
                &sub,
                &stats,
                hello_stream.for_push(),
                resume.as_mut(),
            )
            .await;
            match end {
                Ok(PushEnd::Done) => {
                    conn.close(VarInt::from_u32(close::DONE), b"");
                    drain(&ep).await;
                    return Ok(());
                }
                Ok(PushEnd::InputFailed(_)) => {
                    conn.close(VarInt::from_u32(close::INPUT_FAILED), b"");
                    drain(&ep).await;
                    // the input thread's error is the one to report
                    return Ok(());
                }
                Ok(PushEnd::PeerClosed { code, reason }) => {
                    sub.leave();
                    return peer_closed(code, &reason, addr);
                }
                Ok(PushEnd::Lost(e)) if o.reconnect && !sl_cli::interrupted() => {
                    log::warn!("lost the connection to {addr} ({e}); reconnecting");
                    tokio::time::sleep(backoff(0)).await;
                }
                Ok(PushEnd::Lost(e)) => {
                    sub.leave();
                    bail!("lost the connection to {addr}: {e}");
                }
                Err(e) => {
                    sub.leave();
                    conn.close(VarInt::from_u32(close::PROTOCOL), b"");
                    return Err(e.into());
                }
            }
        }
    });
    rt_shutdown(rt);
    // a failed input is the real error, reported once, by the input thread (which returns
    // as soon as it has failed the hub)
    if (input.is_finished() || matches!(hub.finish(), Some(Finish::Failed(_))))
        && let Ok(Err(e)) = input.join()
    {
        return Err(e);
    }
    if policy == Policy::Block {
        // `block` drops nothing, except an H.264 link's frames up to the keyframe a new
        // connection starts at: lost with the connection too
        let skipped = stats.dropped.swap(0, Ordering::Relaxed);
        stats.lost_frames.fetch_add(skipped, Ordering::Relaxed);
    }
    let lost = stats.lost_frames.load(Ordering::Relaxed);
    if result.is_ok() && lost > 0 {
        bail!(
            "{lost} frames were lost with the connection to {addr} (never written out \
             there): an H.264 stream cannot be sent again from the middle of a group of \
             pictures, so a new connection starts at a keyframe"
        );
    }
    result
}

/// A `block` sender's session number (link::Resume): random, so a listener never takes a
/// restarted sender's messages for ones it has.
fn new_session() -> u64 {
    ring::rand::generate::<[u8; 8]>(&ring::rand::SystemRandom::new())
        .map(|r| u64::from_le_bytes(r.expose()))
        .unwrap_or_else(|_| crate::stats::now_ns() as u64 ^ u64::from(std::process::id()))
}

fn rt_shutdown(rt: tokio::runtime::Runtime) {
    rt.shutdown_timeout(Duration::from_millis(200));
}

fn peer_closed(code: u32, reason: &str, addr: &str) -> anyhow::Result<()> {
    match code {
        // the receiving side stopped (Ctrl-C there) or its downstream closed: like a closed
        // pipe, a quiet end
        close::INTERRUPTED | close::DOWNSTREAM_CLOSED | close::DONE => {
            log::info!("{addr} stopped receiving");
            Ok(())
        }
        close::REPLACED => bail!("{addr} took a newer connection from this machine instead"),
        _ => bail!(
            "{addr} closed the connection: {}",
            if reason.is_empty() {
                "no reason given"
            } else {
                reason
            }
        ),
    }
}

/// The sender a listener receives from: its connection, key, and the task pulling from it.
type Active = (
    Connection,
    Option<Fingerprint>,
    tokio::task::JoinHandle<Result<PullEnd, NetError>>,
);

/// How long a listener whose stream was written out while its link was down waits for the
/// sender to connect again and hear so (it retries at most 5 s apart).
const ENDED_UNHEARD_WAIT: Duration = Duration::from_secs(30);

/// `sl-net listen ADDR`: accept one sender, write its stream to stdout.
pub fn listen(addr: &str, o: Options) -> anyhow::Result<()> {
    let (json, quiet) = (o.json, o.quiet);
    let stats = Arc::new(Stats::new("listen"));
    let r = listen_run(addr, o, Arc::clone(&stats));
    summary(json, quiet, &stats, &r);
    r
}

fn listen_run(addr: &str, o: Options, stats: Arc<Stats>) -> anyhow::Result<()> {
    let bind = resolve(addr, true)?[0];
    let s = setup(&o)?;
    let (out, writer) = spawn_output()?;
    let rt = runtime()?;
    start_stats_printer(&rt, &stats, o.stats);
    let result: anyhow::Result<bool> = rt.block_on(async {
        let ep = bind_server(bind, &s, false)?;
        say(
            o.quiet,
            format!(
                "listening on {} as {}",
                ep.local_addr().map(|a| a.to_string()).unwrap_or_default(),
                s.id.fingerprint
            ),
        );
        let mut active: Option<Active> = None;
        // the stream is written out, but its connection was lost before the sender heard so:
        // until then, wait for the sender to connect again, to tell it
        let mut ended_unheard: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(ended_unheard.unwrap_or_else(tokio::time::Instant::now)), if ended_unheard.is_some() => {
                    log::warn!("the sender did not connect again to hear that its stream was written out here");
                    return Ok(true);
                }
                incoming = ep.accept() => {
                    let Some(incoming) = incoming else { bail!("the endpoint closed") };
                    let from = incoming.remote_address();
                    let conn = match incoming.await {
                        Ok(c) => c,
                        Err(e) => {
                            log::warn!("{}", accept_error(&e, from, &s));
                            continue;
                        }
                    };
                    let fp = peer_fingerprint(&conn);
                    let (hello, mut hs) = match read_hello(&conn).await {
                        Ok(h) => h,
                        Err(e) => {
                            log::warn!("a connection from {from} failed before its hello: {e}");
                            conn.close(VarInt::from_u32(close::PROTOCOL), e.to_string().as_bytes());
                            continue;
                        }
                    };
                    if hello.role != Role::Push {
                        let why = "this is `sl-net listen`, which receives a stream: to pull one, connect `sl-net recv` to an `sl-net serve`";
                        let _ = reply(&mut hs.tx, Some(why)).await;
                        log::warn!("refused {from}: it wants to receive, but a listener receives too");
                        conn.close(VarInt::from_u32(close::REFUSED), why.as_bytes());
                        continue;
                    }
                    if ended_unheard.is_some() {
                        // the sender of the stream written out, resuming its session, is told
                        // it is done; anyone else is refused
                        let _ = reply(&mut hs.tx, None).await;
                        let session = tokio::time::timeout(
                            Duration::from_secs(5),
                            link::resumed_session(&conn, &Limits::default()),
                        )
                        .await;
                        if let Ok(Ok(Some(session))) = session
                            && out.session() == Some(session)
                        {
                            log::info!("{from} connected again: told it its stream was written out");
                            conn.close(VarInt::from_u32(close::DONE), b"");
                            drain(&ep).await;
                            return Ok(true);
                        }
                        let why = "this listener's stream has ended: start a new `sl-net listen` for another";
                        log::warn!("refused {from}: the stream here has ended");
                        conn.close(VarInt::from_u32(close::REFUSED), why.as_bytes());
                        continue;
                    }
                    if let Some((old, old_fp, task)) = active.take() {
                        if old_fp == fp {
                            log::warn!("{from} connected again: taking the new connection (the sender restarted?)");
                            task.abort();
                            old.close(VarInt::from_u32(close::REPLACED), b"replaced by a newer connection");
                        } else {
                            let why = "busy: this listener already receives from another sender";
                            log::warn!("refused {from}: busy receiving from another sender");
                            let _ = reply(&mut hs.tx, Some(why)).await;
                            conn.close(VarInt::from_u32(close::REFUSED), why.as_bytes());
                            active = Some((old, old_fp, task));
                            continue;
                        }
                    }
                    if reply(&mut hs.tx, None).await.is_err() {
                        continue;
                    }
                    log::info!("receiving from {from} ({})", fp.map(|f| f.to_string()).unwrap_or_default());
                    stats.add_conn(&conn);
                    let task = {
                        let (conn, out, stats) = (conn.clone(), out.clone(), Arc::clone(&stats));
                        let reports = hs.for_pull();
                        tokio::spawn(async move { link::pull(&conn, &out, Limits::default(), &stats, reports).await })
                    };
                    active = Some((conn, fp, task));
                }
                end = async { (&mut active.as_mut().expect("guarded").2).await }, if active.is_some() => {
                    let (conn, _, _) = active.take().expect("active");
                    let end = end.map_err(|e| anyhow!("the receiving task failed: {e}"))?;
                    match end {
                        Ok(PullEnd::Done { heard }) => {
                            // tell the sender how the stream really ended: written, or not
                            // decodable after all
                            out.settled().await;
                            let (code, why) = out.close_code_at_end();
                            conn.close(code, why);
                            if !heard
                                && code.into_inner() == u64::from(close::DONE)
                                && out.session().is_some()
                            {
                                // the connection was lost while the last of the stream was
                                // written out (the link was down): a `block` sender connects
                                // again to resend what it has not heard was written, so tell
                                // it then
                                log::warn!(
                                    "the stream is written out, but its sender may not have heard so (the connection was lost); waiting up to {} s for it to connect again",
                                    ENDED_UNHEARD_WAIT.as_secs()
                                );
                                ended_unheard = Some(tokio::time::Instant::now() + ENDED_UNHEARD_WAIT);
                                continue;
                            }
                            drain(&ep).await;
                            return Ok(true);
                        }
                        Ok(PullEnd::DownstreamClosed) => {
                            let (code, why) = out.close_code();
                            conn.close(code, why);
                            drain(&ep).await;
                            return Ok(false);
                        }
                        Ok(PullEnd::InputFailed(r)) => {
                            conn.close(VarInt::from_u32(close::DONE), b"");
                            drain(&ep).await;
                            bail!("the sender's input failed, so this stream is truncated too: {r}");
                        }
                        Ok(PullEnd::PeerClosed { code, reason }) => {
                            bail!("the sender closed the connection (code {code}): {reason}");
                        }
                        Ok(PullEnd::Lost(e)) => {
                            log::warn!("lost the sender ({e}); waiting for it to connect again (Ctrl-C to stop)");
                        }
                        Err(e) => bail!("the stream from {} failed: {e}", conn.remote_address()),
                    }
                }
                _ = until_interrupted() => {
                    if let Some((conn, _, task)) = active.take() {
                        task.abort();
                        conn.close(VarInt::from_u32(close::INTERRUPTED), b"interrupted");
                    }
                    drain(&ep).await;
                    return Ok(false);
                }
            }
        }
    });
    rt_shutdown(rt);
    if matches!(result, Ok(false)) && sl_cli::interrupted() {
        // Ctrl-C: finalise the output as every stage does
        let _ = out.tx_blocking(Msg::end_of_all());
    }
    let wrote = finish_output(out, writer);
    result?;
    wrote?;
    Ok(())
}

/// `sl-net serve ADDR`: publish stdin to every receiver that connects.
pub fn serve(addr: &str, o: Options) -> anyhow::Result<()> {
    let (json, quiet) = (o.json, o.quiet);
    let stats = Arc::new(Stats::new("serve"));
    let r = serve_run(addr, o, Arc::clone(&stats));
    summary(json, quiet, &stats, &r);
    r
}

fn serve_run(addr: &str, o: Options, stats: Arc<Stats>) -> anyhow::Result<()> {
    refuse_terminal_input("serve", addr)?;
    let bind = resolve(addr, true)?[0];
    let s = Arc::new(setup(&o)?);
    let rt = runtime()?;
    start_stats_printer(&rt, &stats, o.stats);
    let hub = Hub::new();
    let codec = o
        .codec
        .clone()
        .unwrap_or_else(CodecOptions::default_for_serve);
    // with --wait-for, the input's header is read now and the stream once enough receivers
    // are here
    let (go, wait) = if o.wait_for > 0 {
        let (tx, rx) = std::sync::mpsc::channel();
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let input = spawn_input(Arc::clone(&hub), codec, wait);
    let mut go = go;
    let quiet = o.quiet;
    let result: anyhow::Result<()> = rt.block_on(async {
        // a live fan-out (receivers default to latest): BBR, see tls::transport
        let ep = bind_server(bind, &s, true)?;
        say(
            quiet,
            format!(
                "serving on {} as {}",
                ep.local_addr().map(|a| a.to_string()).unwrap_or_default(),
                s.id.fingerprint
            ),
        );
        let mut tasks = tokio::task::JoinSet::new();
        let mut ticker = tokio::time::interval(Duration::from_millis(50));
        let mut served = 0usize;
        loop {
            tokio::select! {
                incoming = ep.accept() => {
                    let Some(incoming) = incoming else { bail!("the endpoint closed") };
                    let (s, hub, stats) = (Arc::clone(&s), Arc::clone(&hub), Arc::clone(&stats));
                    tasks.spawn(async move { serve_one(incoming, &s, &hub, &stats).await });
                }
                Some(r) = tasks.join_next(), if !tasks.is_empty() => {
                    served += 1;
                    if let Ok(Err(e)) = r {
                        log::warn!("{e:#}");
                    }
                }
                _ = ticker.tick() => {
                    if hub.subscribers() >= o.wait_for
                        && let Some(go) = go.take()
                    {
                        let _ = go.send(());
                    }
                    if sl_cli::interrupted() {
                        hub.end_now();
                    }
                    if hub.finish().is_some() && tasks.is_empty() {
                        log::info!("served {served} receivers");
                        drain(&ep).await;
                        return Ok(());
                    }
                }
            }
        }
    });
    rt_shutdown(rt);
    result?;
    if (input.is_finished() || matches!(hub.finish(), Some(Finish::Failed(_))))
        && let Ok(Err(e)) = input.join()
    {
        return Err(e);
    }
    Ok(())
}

async fn serve_one(
    incoming: quinn::Incoming,
    s: &Setup,
    hub: &Arc<Hub>,
    stats: &Arc<Stats>,
) -> anyhow::Result<()> {
    let from = incoming.remote_address();
    let conn = incoming
        .await
        .map_err(|e| anyhow!("{}", accept_error(&e, from, s)))?;
    let (hello, mut hs) = read_hello(&conn)
        .await
        .with_context(|| format!("a connection from {from} failed before its hello"))?;
    if hello.role != Role::Pull {
        let why = "this is `sl-net serve`, which sends a stream: to push one, connect `sl-net send` to an `sl-net listen`";
        let _ = reply(&mut hs.tx, Some(why)).await;
        conn.close(VarInt::from_u32(close::REFUSED), why.as_bytes());
        bail!("refused {from}: it wants to send, but serve sends too");
    }
    let policy = match hello.policy {
        WirePolicy::Block => SubPolicy::Block,
        WirePolicy::Latest => SubPolicy::Latest,
    };
    let Some(sub) = hub.subscribe(policy) else {
        let why = "the stream has ended";
        let _ = reply(&mut hs.tx, Some(why)).await;
        conn.close(VarInt::from_u32(close::REFUSED), why.as_bytes());
        return Ok(());
    };
    let _leave = Leave(Arc::clone(&sub));
    reply(&mut hs.tx, None).await?;
    stats.add_conn(&conn);
    log::info!(
        "{from} ({}) receives with --policy {}",
        peer_fingerprint(&conn)
            .map(|f| f.to_string())
            .unwrap_or_default(),
        if policy == SubPolicy::Block {
            "block"
        } else {
            "latest"
        }
    );
    match link::push(&conn, &sub, stats, hs.for_push(), None).await? {
        PushEnd::Done => {}
        PushEnd::InputFailed(_) => conn.close(VarInt::from_u32(close::INPUT_FAILED), b""),
        PushEnd::PeerClosed { code, reason } => {
            if !matches!(
                code,
                close::DONE | close::INTERRUPTED | close::DOWNSTREAM_CLOSED
            ) {
                log::warn!("{from} closed the connection (code {code}): {reason}");
            }
        }
        PushEnd::Lost(e) => log::warn!("lost receiver {from}: {e}"),
    }
    Ok(())
}

struct Leave(Arc<Subscription>);
impl Drop for Leave {
    fn drop(&mut self) {
        self.0.leave();
    }
}

/// `sl-net recv ADDR`: pull a served stream to stdout.
pub fn recv(addr: &str, o: Options) -> anyhow::Result<()> {
    let (json, quiet) = (o.json, o.quiet);
    let stats = Arc::new(Stats::new("recv"));
    let r = recv_run(addr, o, Arc::clone(&stats));
    summary(json, quiet, &stats, &r);
    r
}

fn recv_run(addr: &str, o: Options, stats: Arc<Stats>) -> anyhow::Result<()> {
    let targets = resolve(addr, false)?;
    let s = setup(&o)?;
    let policy = o.policy.unwrap_or(Policy::Latest);
    let (out, writer) = spawn_output()?;
    let rt = runtime()?;
    start_stats_printer(&rt, &stats, o.stats);
    let hello = Hello {
        version: PROTOCOL_VERSION,
        role: Role::Pull,
        policy: policy.wire(),
    };
    let result: anyhow::Result<()> = rt.block_on(async {
        let ep = client_endpoint(&targets, &s, false)?;
        let mut connected_once = false;
        let mut attempt = 0;
        loop {
            let conn = tokio::select! {
                c = dial(&ep, &targets, addr, &s, hello, "serve") => c,
                _ = until_interrupted() => return Ok(()),
            };
            let (conn, hello_stream) = match conn {
                Ok(c) => c,
                Err(e) if connected_once && o.reconnect => {
                    log::warn!("{e:#}; trying again");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff(attempt)) => {}
                        _ = until_interrupted() => return Ok(()),
                    }
                    attempt += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if connected_once {
                say(o.quiet, format!("reconnected to {addr}"));
            }
            connected_once = true;
            attempt = 0;
            stats.add_conn(&conn);
            let end = tokio::select! {
                e = link::pull(&conn, &out, Limits::default(), &stats, hello_stream.for_pull()) => e,
                _ = until_interrupted() => {
                    conn.close(VarInt::from_u32(close::INTERRUPTED), b"interrupted");
                    drain(&ep).await;
                    return Ok(());
                }
            };
            match end {
                Ok(PullEnd::Done { .. }) => {
                    out.settled().await;
                    let (code, why) = out.close_code_at_end();
                    conn.close(code, why);
                    drain(&ep).await;
                    return Ok(());
                }
                Ok(PullEnd::DownstreamClosed) => {
                    let (code, why) = out.close_code();
                    conn.close(code, why);
                    drain(&ep).await;
                    return Ok(());
                }
                Ok(PullEnd::InputFailed(r)) => {
                    conn.close(VarInt::from_u32(close::DONE), b"");
                    drain(&ep).await;
                    bail!("the server's input failed, so this stream is truncated too: {r}");
                }
                Ok(PullEnd::Lost(e)) if o.reconnect => {
                    log::warn!("lost the connection to {addr} ({e}); reconnecting");
                }
                Ok(PullEnd::PeerClosed { code, reason })
                    if o.reconnect && code != close::REFUSED =>
                {
                    log::warn!("{addr} closed the connection ({reason}); reconnecting");
                }
                Ok(PullEnd::Lost(e)) => bail!("lost the connection to {addr}: {e}"),
                Ok(PullEnd::PeerClosed { code, reason }) => {
                    bail!("{addr} closed the connection (code {code}): {reason}")
                }
                Err(e) => bail!("the stream from {addr} failed: {e}"),
            }
        }
    });
    rt_shutdown(rt);
    if result.is_ok() && sl_cli::interrupted() {
        let _ = out.tx_blocking(Msg::end_of_all());
    }
    let wrote = finish_output(out, writer);
    result?;
    wrote?;
    Ok(())
}
