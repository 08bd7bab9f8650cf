//! sl-net: streamlib streams between machines over QUIC (quinn, rustls with ring).
//!
//! Four roles, run by `sl-net`: `send` pushes stdin to a `listen`er, which writes it to its
//! stdout; `serve` publishes stdin to every `recv` that connects. Whoever dials, the side
//! with stdin pushes and the side with stdout pulls ([`link`]).
//!
//! Security is always on: TLS 1.3, both sides present this machine's key ([`keys`]) and
//! accept the other only if its key's fingerprint is pinned ([`tls`]). Network input is
//! hostile: every length is bounded before anything is kept and headers are checked by
//! `sl_wire` ([`proto`]).
//!
//! Delivery follows each receiver's policy ([`hub`]): `block` is lossless back-pressure,
//! `latest` sends every raw video frame on its own QUIC stream, drops frames that a newer
//! one supersedes (whole, never half) and resets ones still in flight behind a newer one,
//! so a lost packet never holds up later frames and lag never builds up.
//!
//! tokio lives only inside this crate: the roles are blocking functions that run their own
//! runtime.

mod alloc;
pub mod codec;
pub mod hub;
pub mod keys;
pub mod link;
pub mod pool;
pub mod proto;
mod roles;
pub mod stats;
pub mod tls;
mod yuv;

pub use codec::{Codec, CodecOptions};
pub use keys::{Fingerprint, Identity, Pins};
pub use roles::{
    Options, Policy, allow_command, key_command, listen, recv, send, serve, usage_error_summary,
};

/// What can go wrong in sl-net's library.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("{0}")]
    Key(String),
    #[error("TLS set-up: {0}")]
    Tls(String),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error(
        "the peer speaks sl-net protocol version {0}, this program version {v}: use the same \
         streamlib release on both machines",
        v = proto::PROTOCOL_VERSION
    )]
    Version(u16),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Codec(String),
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    #[error("connecting: {0}")]
    Connect(#[from] quinn::ConnectError),
    #[error("reading from the peer: {0}")]
    Read(#[from] quinn::ReadError),
    #[error("writing to the peer: {0}")]
    Write(#[from] quinn::WriteError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
