//! Trusting a relay: its certificate is pinned by the SHA-256 of the whole certificate (DER),
//! the form `moq-relay` prints and serves at `GET /certificate.sha256`.
//!
//! Given with `--fingerprint`, the pin comes from somewhere the user trusts (the relay's
//! operator, its log). Without it, the fingerprint is fetched over plain HTTP from the relay
//! itself: that is trust on first use over an unauthenticated channel, fine on loopback or a
//! network you control, not across the internet (docs/moq.md).

use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;

use crate::MoqError;

/// The SHA-256 of a certificate's DER bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CertFingerprint(pub [u8; 32]);

impl CertFingerprint {
    pub fn of(der: &[u8]) -> CertFingerprint {
        let d = ring::digest::digest(&ring::digest::SHA256, der);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        CertFingerprint(out)
    }
}

impl fmt::Display for CertFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for CertFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertFingerprint({self})")
    }
}

impl FromStr for CertFingerprint {
    type Err = String;
    /// 64 hex digits, colons and an `sha256:` prefix allowed (the forms tools print).
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let t = t
            .strip_prefix("sha256:")
            .or_else(|| t.strip_prefix("SHA256:"))
            .unwrap_or(t);
        let hex: String = t.chars().filter(|c| *c != ':').collect();
        if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "`{}` is not a SHA-256 certificate fingerprint: give 64 hex digits, as the \
                 relay serves at http://RELAY/certificate.sha256",
                s.chars().take(80).collect::<String>()
            ));
        }
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
        }
        Ok(CertFingerprint(out))
    }
}

/// Fetch the relay's fingerprint from `GET /certificate.sha256` on its HTTP port (the same
/// port number as its QUIC one, over TCP). The answer is bounded (4 KiB) and must be one
/// fingerprint.
pub fn fetch_fingerprint(addr: SocketAddr, host: &str) -> Result<CertFingerprint, MoqError> {
    let fail = |why: String| {
        MoqError::Tls(format!(
            "fetching the relay's certificate fingerprint from http://{addr}/certificate.sha256: \
         {why} (start the relay with --web-http-listen on that port, or pass --fingerprint)"
        ))
    };
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .map_err(|e| fail(e.to_string()))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| fail(e.to_string()))?;
    write!(
        s,
        "GET /certificate.sha256 HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| fail(e.to_string()))?;
    let mut body = Vec::new();
    s.take(4096)
        .read_to_end(&mut body)
        .map_err(|e| fail(e.to_string()))?;
    let text = String::from_utf8_lossy(&body);
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| fail("not an HTTP answer".into()))?;
    let status = head.lines().next().unwrap_or("");
    if !status.contains(" 200") {
        return Err(fail(format!("the relay answered `{status}`")));
    }
    // A chunked answer puts a length line first: take the line that parses.
    rest.lines()
        .find_map(|l| l.trim().parse::<CertFingerprint>().ok())
        .ok_or_else(|| fail("the answer holds no fingerprint".into()))
}

/// A relay certificate is trusted when it is exactly the pinned one (sl-tls checks the
/// handshake signature with it, TLS 1.3 only).
impl sl_tls::Pin for CertFingerprint {
    fn check(&self, end_entity: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        if CertFingerprint::of(end_entity) == *self {
            Ok(())
        } else {
            Err(sl_tls::refused())
        }
    }
}

/// A QUIC client configuration that trusts only `pin`, offering MoQ's ALPNs.
pub(crate) fn client_config(pin: CertFingerprint) -> Result<quinn::ClientConfig, MoqError> {
    let mut tls = rustls::ClientConfig::builder_with_provider(sl_tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| MoqError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(sl_tls::Pinned::new(pin))
        .with_no_client_auth();
    tls.alpn_protocols = moq_net::ALPNS
        .iter()
        .map(|a| a.as_bytes().to_vec())
        .collect();
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| MoqError::Tls(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    let mut t = quinn::TransportConfig::default();
    // A relay that vanishes (killed, restarted) is noticed within seconds, so both sides
    // reconnect promptly; keep-alives hold the path open when a track is idle.
    t.max_idle_timeout(Some(
        quinn::IdleTimeout::try_from(Duration::from_secs(4)).expect("4 s fits"),
    ));
    t.keep_alive_interval(Some(Duration::from_millis(800)));
    // Raw frames are megabytes each: windows of a few frames keep a loopback or LAN link
    // busy instead of waiting a round trip per 1.25 MB (quinn's default stream window).
    t.stream_receive_window(quinn::VarInt::from_u32(32 << 20));
    t.receive_window(quinn::VarInt::from_u32(128 << 20));
    t.send_window(128 << 20);
    config.transport_config(Arc::new(t));
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_in_the_forms_tools_print() {
        let hex = "ab".repeat(32);
        let f: CertFingerprint = hex.parse().unwrap();
        assert_eq!(f.to_string(), hex);
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(colons.parse::<CertFingerprint>().unwrap(), f);
        assert_eq!(
            format!("sha256:{hex}").parse::<CertFingerprint>().unwrap(),
            f
        );
        assert!("abc".parse::<CertFingerprint>().is_err());
        assert!("zz".repeat(32).parse::<CertFingerprint>().is_err());
        // never panics on hostile text
        assert!("é".repeat(64).parse::<CertFingerprint>().is_err());
    }
}
