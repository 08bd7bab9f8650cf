//! Relay addresses (`moq://HOST:PORT/BROADCAST`) and MoQ sessions over raw QUIC (quinn).
//!
//! moq-net speaks over any WebTransport-shaped session; `web_transport_quinn::Session::raw`
//! wraps a plain QUIC connection that negotiated a MoQ ALPN. moq-net starts no tasks of its
//! own: the session's driver is spawned here on the caller's tokio runtime.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use crate::MoqError;
use crate::tls::{CertFingerprint, client_config, fetch_fingerprint};

/// Where a broadcast lives: a relay's address and the broadcast's path on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MoqUrl {
    /// The host as written (a name or an address), for SNI and HTTP.
    pub host: String,
    pub port: u16,
    /// The broadcast path, without leading or trailing `/` (`studio/cam1`).
    pub broadcast: String,
}

/// The longest broadcast path accepted (moq paths are bounded too).
const MAX_PATH: usize = 1024;

impl FromStr for MoqUrl {
    type Err = MoqError;
    fn from_str(s: &str) -> Result<Self, MoqError> {
        let bad = |why: &str| {
            MoqError::Url(format!(
                "`{}` {why}: give moq://HOST:PORT/BROADCAST, e.g. moq://relay.example:4443/studio",
                s.chars().take(200).collect::<String>()
            ))
        };
        let rest = s
            .strip_prefix("moq://")
            .ok_or_else(|| bad("is not a moq:// address"))?;
        let (authority, path) = rest
            .split_once('/')
            .ok_or_else(|| bad("names no broadcast"))?;
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, p) = v6.split_once("]:").ok_or_else(|| bad("has no port"))?;
            (h.to_string(), p)
        } else {
            let (h, p) = authority
                .rsplit_once(':')
                .ok_or_else(|| bad("has no port"))?;
            (h.to_string(), p)
        };
        if host.is_empty() {
            return Err(bad("has no host"));
        }
        let port: u16 = port
            .parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad("has no valid port"))?;
        let broadcast = path.trim_matches('/').to_string();
        if broadcast.is_empty() {
            return Err(bad("names no broadcast"));
        }
        if broadcast.len() > MAX_PATH
            || broadcast.contains(['?', '#', '*', ' '])
            || broadcast
                .split('/')
                .any(|seg| seg.is_empty() || seg.starts_with('.'))
        {
            return Err(bad(
                "has a broadcast path moq cannot carry (use letters, digits, - _ and / between \
                 non-empty parts, none starting with `.`)",
            ));
        }
        Ok(MoqUrl {
            host,
            port,
            broadcast,
        })
    }
}

impl std::fmt::Display for MoqUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "moq://[{}]:{}/{}", self.host, self.port, self.broadcast)
        } else {
            write!(f, "moq://{}:{}/{}", self.host, self.port, self.broadcast)
        }
    }
}

impl MoqUrl {
    pub(crate) async fn resolve(&self) -> Result<SocketAddr, MoqError> {
        let fail = |why: String| MoqError::Connect {
            addr: self.to_string(),
            why,
        };
        tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| fail(format!("cannot resolve {}: {e}", self.host)))?
            .next()
            .ok_or_else(|| fail(format!("{} has no address", self.host)))
    }
}

/// How to reach and authenticate to a relay.
#[derive(Clone, Debug, Default)]
pub(crate) struct Dial {
    /// The relay's certificate fingerprint; fetched from the relay on each connection when
    /// not given (a relay that generates its certificate makes a new one when it restarts).
    pub fingerprint: Option<CertFingerprint>,
    /// A moq-token JWT, sent in the session's request path.
    pub token: Option<String>,
}

/// A MoQ session with its connection, ended when dropped.
pub(crate) struct Connected {
    pub session: moq_net::Session,
    pub _endpoint: quinn::Endpoint,
}

/// Connect to the relay, publishing `publish` and/or subscribing into `subscribe`.
pub(crate) async fn connect(
    url: &MoqUrl,
    dial: &Dial,
    publish: Option<&moq_net::origin::Producer>,
    subscribe: Option<moq_net::origin::Producer>,
) -> Result<Connected, MoqError> {
    let fail = |why: String| MoqError::Connect {
        addr: url.to_string(),
        why,
    };
    let addr = url.resolve().await?;
    let pin = match dial.fingerprint {
        Some(pin) => pin,
        None => {
            let host = url.host.clone();
            tokio::task::spawn_blocking(move || fetch_fingerprint(addr, &host))
                .await
                .map_err(|e| fail(e.to_string()))??
        }
    };
    let bind: SocketAddr = if addr.is_ipv6() {
        "[::]:0".parse().expect("literal")
    } else {
        "0.0.0.0:0".parse().expect("literal")
    };
    let mut endpoint = quinn::Endpoint::client(bind).map_err(|e| fail(e.to_string()))?;
    endpoint.set_default_client_config(client_config(pin)?);
    let server_name = if url.host.parse::<std::net::IpAddr>().is_ok() {
        "localhost".to_string()
    } else {
        url.host.clone()
    };
    let conn = tokio::time::timeout(
        Duration::from_secs(5),
        endpoint
            .connect(addr, &server_name)
            .map_err(|e| fail(e.to_string()))?,
    )
    .await
    .map_err(|_| fail("no answer within 5 s (is moq-relay running there?)".into()))?
    .map_err(|e| match e {
        quinn::ConnectionError::TransportError(t)
            if t.to_string().contains("certificate") || t.to_string().contains("Certificate") =>
        {
            fail(format!(
                "the relay's certificate is not the pinned one ({t}): check --fingerprint \
                 against http://{}:{}/certificate.sha256",
                url.host, url.port
            ))
        }
        e => fail(e.to_string()),
    })?;
    let session = web_transport_quinn::Session::raw(conn);

    let mut path = format!("/{}", url.broadcast);
    if let Some(token) = &dial.token {
        path.push_str("?jwt=");
        path.push_str(token);
    }
    let mut client = moq_net::Client::new()
        .with_path(path)
        .with_authority(format!("{}:{}", url.host, url.port));
    if let Some(p) = publish {
        client = client.with_publisher(p);
    }
    if let Some(s) = subscribe {
        client = client.with_subscriber(s);
    }
    let (session, driver) = tokio::time::timeout(
        Duration::from_secs(5),
        client.connect(tokio::time::Instant::now().into_std(), session),
    )
    .await
    .map_err(|_| fail("the MoQ handshake did not finish within 5 s".into()))?
    .map_err(|e| match e {
        moq_net::Error::Unauthorized => fail(
            "the relay refused this session: unauthorized (check --token, or the relay's \
             --auth-* settings)"
                .into(),
        ),
        e => fail(format!("MoQ handshake: {e}")),
    })?;
    tokio::spawn(moq_net::time::run(driver));
    Ok(Connected {
        session,
        _endpoint: endpoint,
    })
}

/// Whether a session error is the relay refusing the session (a missing, forged or
/// insufficient token): retrying cannot help.
pub(crate) fn is_refusal(e: &dyn std::fmt::Display) -> bool {
    let s = e.to_string();
    s.contains("unauthorized") || s.contains("refused this session")
}

/// The message for a refused session.
pub(crate) fn refusal(url: &MoqUrl, e: &dyn std::fmt::Display) -> String {
    format!(
        "the relay at {url} refused this session ({e}): check --token (sl-moq-auth sign) and \
         the relay's --auth-* settings"
    )
}

/// An origin (the local table of broadcasts) whose driver runs on the current runtime.
pub(crate) fn origin() -> moq_net::origin::Producer {
    let (producer, driver) = moq_net::origin::Producer::new(moq_net::origin::Config::default());
    tokio::spawn(moq_net::time::run(driver));
    producer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_or_say_what_to_write() {
        let u: MoqUrl = "moq://127.0.0.1:4443/studio".parse().unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.broadcast.as_str()),
            ("127.0.0.1", 4443, "studio")
        );
        let u: MoqUrl = "moq://[::1]:4443/a/b/".parse().unwrap();
        assert_eq!((u.host.as_str(), u.broadcast.as_str()), ("::1", "a/b"));
        assert_eq!(u.to_string(), "moq://[::1]:4443/a/b");
        for bad in [
            "quic://h:1/x",
            "moq://h:1",
            "moq://h:1/",
            "moq://h/x",
            "moq://:1/x",
            "moq://h:0/x",
            "moq://h:99999/x",
            "moq://h:1/a//b",
            "moq://h:1/.hidden",
            "moq://h:1/x?jwt=1",
        ] {
            let e = bad.parse::<MoqUrl>().unwrap_err().to_string();
            assert!(e.contains("moq://HOST:PORT/BROADCAST"), "{bad}: {e}");
        }
    }
}
