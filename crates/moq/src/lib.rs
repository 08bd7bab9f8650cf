//! sl-net's Media over QUIC side: publish a streamlib stream to a `moq-relay` and subscribe
//! to it, so one publisher reaches any number of subscribers through relays (and clusters of
//! relays) that we do not have to write.
//!
//! The MoQ model is broadcast, track, group, frame. A streamlib stream maps onto it so:
//!
//! - the broadcast is the URL's path (`moq://relay:4443/studio` is broadcast `studio`);
//! - each stream of the streamlib stream (its index in the message prefix) is one track,
//!   named `video.0`, `audio.1`, `data.2`...;
//! - compressed video (PACKET messages) goes one group per keyframe run, so a subscriber that
//!   joins late, or skips, always starts a group at a keyframe; raw video, audio and data go
//!   one message per group;
//! - every MoQ frame is one streamlib message exactly as it is on the wire (prefix, header,
//!   payload), so frame metadata (detections, PTP time, capture time, source) travels with
//!   its frame, and each group starts with the stream's current STREAM_INFO, so a group is
//!   enough to start decoding;
//! - a `catalog.json` track (hang's catalog) lists the tracks: H.264 as hang's `avc3`, raw
//!   video and audio with codec strings of their own, all with the container kind
//!   `streamlib` (hang consumers ignore containers they do not know), and a `streamlib`
//!   section naming each track's stream index and kind, the publisher's id and its end.
//!
//! The stream's END is in-band too: the last group of every track holds the END message, so
//! a subscriber tells a finished stream (exit 0) from a publisher that died (exit 1).
//!
//! Delivery: `--policy latest` is MoQ's own model, a subscriber skips groups that a newer
//! one superseded; `block` asks the relay for every group it still holds, from the start.
//! Neither ever slows the publisher or another subscriber: the relay fans out.
//!
//! Trust: the relay's certificate is pinned by its SHA-256 fingerprint (`tls`), given or
//! fetched from the relay's `GET /certificate.sha256`. Tokens are moq-token JWTs ([`auth`]),
//! carried in the session's request path (`?jwt=`), which the relay checks with an auth
//! server (`sl-net moq-auth` is one).
//!
//! Network input is hostile: every MoQ frame is bounded before it is read and decoded by
//! `sl_wire` with its limits; the catalog is bounded and parsed, never trusted for sizes.

pub mod auth;
mod catalog;
mod connect;
pub mod publish;
pub mod subscribe;
pub mod tls;

pub use connect::MoqUrl;
pub use publish::{PublishOptions, publish};
pub use subscribe::{SubscribeOptions, subscribe};
pub use tls::CertFingerprint;

/// The largest MoQ frame a subscriber accepts: a streamlib message of a 8192x8192 RGBA frame
/// with room for its header. Checked against the frame's declared size before it is read.
pub const MAX_FRAME: u64 = 300 << 20;
/// The largest catalog a subscriber accepts.
pub const MAX_CATALOG: u64 = 1 << 20;
/// The largest number of tracks (streams) a subscriber follows.
pub const MAX_TRACKS: usize = 64;

/// What can go wrong in sl-net's MoQ library.
#[derive(Debug, thiserror::Error)]
pub enum MoqError {
    #[error("{0}")]
    Url(String),
    #[error("TLS set-up: {0}")]
    Tls(String),
    #[error("connecting to the relay at {addr}: {why}")]
    Connect { addr: String, why: String },
    #[error("MoQ: {0}")]
    Moq(#[from] moq_net::Error),
    #[error("protocol error from the relay or publisher: {0}")]
    Protocol(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
