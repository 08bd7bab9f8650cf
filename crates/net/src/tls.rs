//! TLS 1.3 with pinned keys on both sides, and QUIC transport settings.
//!
//! Both ends present a certificate and both check the other's: sl-tls's verifier accepts a
//! certificate only if the SHA-256 of its SubjectPublicKeyInfo is pinned ([`PinCheck`]), and
//! the TLS 1.3 CertificateVerify signature proves the peer holds that key. Names, issuers and dates are
//! not looked at: the key is the identity, as with ssh.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::CertificateDer;

use crate::NetError;
use crate::keys::{Fingerprint, Identity, Pins};

/// The application protocol both ends must speak; a peer of another sl-net protocol version
/// fails the TLS handshake with "no application protocol".
pub const ALPN: &[u8] = b"sl-net/3";

/// What the verifier saw of the peer: its key, and whether it was refused.
#[derive(Debug, Default, Clone)]
pub struct PeerSeen {
    pub fingerprint: Option<Fingerprint>,
    pub refused: bool,
}

/// Checks a peer's key against the pins. Records the last key it saw, so the roles can say
/// which key to pin after a refusal.
#[derive(Debug)]
pub struct PinCheck {
    pins: Pins,
    pub seen: Mutex<PeerSeen>,
}

/// The verifier both ends use: [`PinCheck`] under sl-tls's TLS 1.3-only pinning verifier
/// (derefs to the `PinCheck`).
pub type Verifier = sl_tls::Pinned<PinCheck>;

impl PinCheck {
    pub fn new(pins: Pins) -> Arc<Verifier> {
        sl_tls::Pinned::new(PinCheck {
            pins,
            seen: Mutex::new(PeerSeen::default()),
        })
    }

    pub fn pins(&self) -> &Pins {
        &self.pins
    }

    pub fn last_seen(&self) -> PeerSeen {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl sl_tls::Pin for PinCheck {
    fn check(&self, cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let parsed = rustls::server::ParsedCertificate::try_from(cert)?;
        let fp = Fingerprint::of_spki(parsed.subject_public_key_info().as_ref());
        let ok = self.pins.allows(&fp);
        if let Ok(mut s) = self.seen.lock() {
            *s = PeerSeen {
                fingerprint: Some(fp),
                refused: !ok,
            };
        }
        if ok { Ok(()) } else { Err(sl_tls::refused()) }
    }
}

fn tls_err(e: impl std::fmt::Display) -> NetError {
    NetError::Tls(e.to_string())
}

/// QUIC settings for both ends; `live` for a link that sends with `latest`, `loopback` when
/// the peer is this machine (a loopback address).
///
/// - Flow-control windows hold a few raw 1080p frames (8 MiB each), so one frame never waits
///   for a window update per round trip.
/// - On loopback, path MTU discovery climbs to [`MAX_UDP_PAYLOAD`] (loopback's MTU is 65536),
///   which cuts the packets, and with them the per-packet encryption and system-call work, by
///   ~40x against 1452-byte packets (raw 1080p: see docs/sl-net.md, Measured). Segmentation
///   offload (GSO) is off there: quinn batches up to ten datagrams of the path MTU into one
///   send, the kernel refuses a batch over 64 KiB, and quinn-udp drops it silently as if it
///   were an MTU probe (with GSO on, discovery never left 1200 bytes). Other paths keep
///   quinn's defaults: GSO on, discovery up to 1452 bytes.
/// - Keep-alives every second and a 5 s idle timeout notice a vanished peer quickly.
fn transport(live: bool, loopback: bool) -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.stream_receive_window(quinn::VarInt::from_u32(32 << 20));
    t.receive_window(quinn::VarInt::from_u32(96 << 20));
    t.send_window(96 << 20);
    t.max_concurrent_uni_streams(quinn::VarInt::from_u32(64));
    t.max_concurrent_bidi_streams(quinn::VarInt::from_u32(4));
    t.keep_alive_interval(Some(Duration::from_secs(1)));
    t.initial_rtt(INITIAL_RTT);
    t.max_idle_timeout(Some(
        quinn::IdleTimeout::try_from(Duration::from_secs(5)).expect("5 s fits"),
    ));
    // Congestion control by what the link is for. A `latest` link (live, drops rather than
    // lags) uses BBR: Cubic reads random loss as congestion and backs off. Measured with
    // scripts/bench-net.sh (5% loss each way, 40 ms, 30 fps of 160x120 gray8, `latest`):
    // Cubic delivered 158 of 300 frames at p99 475 ms, BBR 239-264 at p99 51-64 ms (ssh over
    // the same path: 300 at p99 165-246 ms). A lossless link keeps quinn's default Cubic: on
    // loopback at 720p30 raw it kept p99 at 44-58 ms where BBR's pacing let it reach 191-865 ms.
    // SL_NET_CONGESTION=cubic or bbr overrides (quinn marks its BBR experimental).
    let bbr = match std::env::var("SL_NET_CONGESTION").as_deref() {
        Ok("bbr") => true,
        Ok("cubic") => false,
        _ => live,
    };
    // On loopback, the initial congestion window holds ten of the largest datagrams. With
    // quinn's default (14720 bytes, ten 1472-byte datagrams), one path MTU probe of up to 65000
    // bytes in flight filled it, and a connection closed at that moment could not send its
    // CONNECTION_CLOSE ("blocked by congestion control" in quinn's trace) before it was
    // drained: the peer never learnt how the link ended and timed out 5 s later instead
    // (a_coded_frame_that_does_not_decode_is_a_clear_error_on_both_sides failed 2 in 12).
    let initial_window = loopback.then_some(10 * u64::from(MAX_UDP_PAYLOAD));
    if bbr {
        let mut c = quinn::congestion::BbrConfig::default();
        if let Some(w) = initial_window {
            c.initial_window(w);
        }
        t.congestion_controller_factory(Arc::new(c));
    } else {
        let mut c = quinn::congestion::CubicConfig::default();
        if let Some(w) = initial_window {
            c.initial_window(w);
        }
        t.congestion_controller_factory(Arc::new(c));
    }
    if loopback {
        let mut mtu = quinn::MtuDiscoveryConfig::default();
        mtu.upper_bound(MAX_UDP_PAYLOAD);
        t.mtu_discovery_config(Some(mtu));
        t.enable_segmentation_offload(false);
        // ask the peer to acknowledge every eleventh packet instead of every second (QUIC's ACK
        // frequency extension, which quinn speaks on both ends; a gap still gets an ACK at
        // once): a 720p RGBA frame is 57 datagrams, and every ACK is a system call and a
        // wake-up on each side
        let mut ack = quinn::AckFrequencyConfig::default();
        ack.ack_eliciting_threshold(quinn::VarInt::from_u32(ACK_THRESHOLD_LOOPBACK));
        t.ack_frequency_config(Some(ack));
    }
    Arc::new(t)
}

/// The round trip assumed before one is measured: it sets how soon a lost handshake packet is
/// sent again (3x this, then doubling). QUIC's default, 333 ms, made one lost packet of the
/// handshake cost a second and two cost three: under 5% loss each way (the tests' lossy
/// path), one connection in ten started a second late, and a `serve` holding a live source
/// for its first receiver sent it three seconds of stale frames (the CI failure of
/// an_h264_link_under_latest_decodes_right_across_loss_and_delay). 100 ms is Chromium's
/// choice for QUIC; on a path slower than that the cost is a spare copy of a first packet.
const INITIAL_RTT: Duration = Duration::from_millis(100);

/// On loopback, how many packets the peer may take in without acknowledging them: 10, an ACK
/// for every eleventh (quinn's default is 1, an ACK for every second). Measured at
/// 720p30 RGBA over loopback, six alternating runs each (2026-11-30): `listen` sent 1897
/// datagrams for 300 frames instead of 7637, `send` made 3649 receive calls instead of 12523,
/// and the two ends' CPU per frame had a median of 5.8 ms instead of 6.15 ms (p50 latency
/// 4.3 against 4.55 ms). Other paths keep quinn's default: not measured there, and under
/// loss fewer ACKs would mean slower recovery.
const ACK_THRESHOLD_LOOPBACK: u32 = 10;

/// The largest UDP payload this end accepts, and the most path MTU discovery tries on
/// loopback: an IPv4 or IPv6 datagram of this size fits loopback's 65536-byte MTU.
pub const MAX_UDP_PAYLOAD: u16 = 65_000;

/// Endpoint settings: accept datagrams up to [`MAX_UDP_PAYLOAD`]. quinn's default (1472) is
/// also what it announces to the peer, whose path MTU discovery then never goes past it.
pub fn endpoint_config() -> quinn::EndpointConfig {
    let mut c = quinn::EndpointConfig::default();
    c.max_udp_payload_size(MAX_UDP_PAYLOAD)
        .expect("within quinn's bounds");
    c
}

/// The crypto provider for links: sl-tls's (aws-lc's AEAD, ring for the rest), with
/// AES-128-GCM first (rustls puts AES-256-GCM first). Every byte of a link is sealed and
/// opened once, so the cipher is a fixed share of the link's CPU time: 11-13% of each end's
/// cycles on a raw 720p or 1080p link (`perf`), and AES-128 does 10 rounds per block where
/// AES-256 does 14. AES-128-GCM is TLS 1.3's
/// mandatory suite and the one QUIC itself protects its first packets with.
fn link_provider() -> Arc<rustls::crypto::CryptoProvider> {
    let mut p = (*sl_tls::provider()).clone();
    p.cipher_suites
        .sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    Arc::new(p)
}

/// Server side: present `id`, require and check the client's key.
pub fn server_config(
    id: &Identity,
    check: Arc<Verifier>,
    live: bool,
    loopback: bool,
) -> Result<quinn::ServerConfig, NetError> {
    let mut tls = rustls::ServerConfig::builder_with_provider(link_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?
        .with_client_cert_verifier(check)
        .with_single_cert(vec![id.cert.clone()], id.private_key())
        .map_err(tls_err)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.max_early_data_size = 0;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(tls_err)?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    cfg.transport_config(transport(live, loopback));
    Ok(cfg)
}

/// Client side: present `id`, check the server's key.
pub fn client_config(
    id: &Identity,
    check: Arc<Verifier>,
    live: bool,
    loopback: bool,
) -> Result<quinn::ClientConfig, NetError> {
    let mut tls = rustls::ClientConfig::builder_with_provider(link_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?
        .dangerous()
        .with_custom_certificate_verifier(check)
        .with_client_auth_cert(vec![id.cert.clone()], id.private_key())
        .map_err(tls_err)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(tls_err)?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
    cfg.transport_config(transport(live, loopback));
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    #[test]
    fn links_prefer_aes_128_gcm_and_keep_the_others() {
        let p = super::link_provider();
        let suites: Vec<_> = p.cipher_suites.iter().map(|s| s.suite()).collect();
        assert_eq!(suites[0], rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
        assert_eq!(suites.len(), sl_tls::provider().cipher_suites.len());
    }

    #[test]
    fn alpn_names_the_protocol_version() {
        assert_eq!(
            super::ALPN,
            format!("sl-net/{}", crate::proto::PROTOCOL_VERSION).as_bytes()
        );
    }
}
