//! moq-token JWTs, and a small auth server for `moq-relay --auth-url`.
//!
//! moq-relay 0.17 no longer reads keys itself: for every session it POSTs a JSON request
//! (the dialed path, the `jwt` query) to the server named by `--auth-url` and admits the
//! session with the grant that comes back (200), or refuses it (401/403). [`serve`] is that
//! server for moq-token's symmetric keys: it checks an HS256 JWT against a JWK file in
//! moq-token's format (`{"kty":"oct","alg":"HS256","k":...}`) and grants what its claims
//! say (`root`, `put`/`get` prefixes, `exp`). The `moq-token` crate itself is not used: it
//! pulls aws-lc-rs, a long C build, for the same HMAC that `ring` (already ours) does.
//!
//! Everything read from the network is bounded: 16 KiB of headers, 64 KiB of body, 8 KiB
//! tokens.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The longest token accepted.
pub const MAX_TOKEN: usize = 8 << 10;

/// Read a token file (`--token FILE`): one JWT, surrounding white space ignored.
pub fn read_token(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read(path)
        .with_context(|| format!("reading the token file {}", path.display()))?;
    if text.len() > MAX_TOKEN {
        anyhow::bail!(
            "{} is {} bytes: a token is at most {MAX_TOKEN}",
            path.display(),
            text.len()
        );
    }
    let token = String::from_utf8(text)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| is_jwt_shaped(t))
        .with_context(|| {
            format!(
                "{} does not hold a JWT (three base64url parts joined by dots): make one with \
                 `sl-moq-auth sign`",
                path.display()
            )
        })?;
    Ok(token)
}

fn is_jwt_shaped(t: &str) -> bool {
    t.split('.').count() == 3
        && t.split('.').all(|p| !p.is_empty())
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// A symmetric key in moq-token's JWK form.
#[derive(Clone, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    pub alg: String,
    /// The secret, base64url without padding.
    pub k: String,
    #[serde(default)]
    pub key_ops: Vec<String>,
}

impl std::fmt::Debug for Jwk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Jwk({} {}, secret hidden)", self.kty, self.alg)
    }
}

impl Jwk {
    /// A new random HS256 key.
    pub fn generate() -> anyhow::Result<Jwk> {
        let mut secret = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
            .map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
        Ok(Jwk {
            kty: "oct".into(),
            alg: "HS256".into(),
            k: URL_SAFE_NO_PAD.encode(secret),
            key_ops: vec!["sign".into(), "verify".into()],
        })
    }

    pub fn load(path: &Path) -> anyhow::Result<Jwk> {
        let text =
            std::fs::read(path).with_context(|| format!("reading the key {}", path.display()))?;
        let jwk: Jwk = serde_json::from_slice(&text)
            .with_context(|| format!("{} is not a JWK key file", path.display()))?;
        if jwk.kty != "oct" || jwk.alg != "HS256" {
            anyhow::bail!(
                "{}: only symmetric HS256 keys are supported (this one is {} {})",
                path.display(),
                jwk.kty,
                jwk.alg
            );
        }
        jwk.key()?;
        Ok(jwk)
    }

    fn key(&self) -> anyhow::Result<hmac::Key> {
        let secret = URL_SAFE_NO_PAD
            .decode(self.k.trim_end_matches('='))
            .context("the key's `k` is not base64url")?;
        if secret.len() < 16 {
            anyhow::bail!("the key is {} bytes: use at least 16", secret.len());
        }
        Ok(hmac::Key::new(hmac::HMAC_SHA256, &secret))
    }
}

/// What a token grants (moq-token's claims): prefixes relative to `root`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub root: String,
    /// Prefixes the holder may publish under (`""` is everything under the root).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub put: Vec<String>,
    /// Prefixes the holder may subscribe to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub get: Vec<String>,
    /// Expiry, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Sign `claims` with `key` (HS256).
pub fn sign(key: &Jwk, claims: &Claims) -> anyhow::Result<String> {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let mut claims = claims.clone();
    claims.iat.get_or_insert_with(now_secs);
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims)?);
    let signing_input = format!("{header}.{body}");
    let tag = hmac::sign(&key.key()?, signing_input.as_bytes());
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(tag.as_ref())
    ))
}

/// Check a token's signature and dates; its claims if it holds.
pub fn verify(key: &Jwk, token: &str) -> Result<Claims, String> {
    if token.len() > MAX_TOKEN || !is_jwt_shaped(token) {
        return Err("not a JWT".into());
    }
    let mut parts = token.split('.');
    let (h, b, s) = match (parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(b), Some(s)) => (h, b, s),
        _ => return Err("not a JWT".into()),
    };
    let header: serde_json::Value = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|v| serde_json::from_slice(&v).ok())
        .ok_or("its header is not JSON")?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
        return Err("it is not signed with HS256".into());
    }
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| "its signature is not base64url")?;
    let k = key.key().map_err(|e| e.to_string())?;
    hmac::verify(&k, format!("{h}.{b}").as_bytes(), &sig)
        .map_err(|_| "its signature does not match the key")?;
    let claims: Claims = URL_SAFE_NO_PAD
        .decode(b)
        .ok()
        .and_then(|v| serde_json::from_slice(&v).ok())
        .ok_or("its claims are not moq-token claims")?;
    if claims.exp.is_some_and(|exp| exp <= now_secs()) {
        return Err("it has expired".into());
    }
    Ok(claims)
}

fn normalize(p: &str) -> String {
    p.split('/')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

/// `path` under `base` (segment-wise): the rest, if it is.
fn under<'a>(path: &'a str, base: &str) -> Option<&'a str> {
    if base.is_empty() {
        return Some(path);
    }
    if path == base {
        return Some("");
    }
    path.strip_prefix(base).and_then(|r| r.strip_prefix('/'))
}

/// The patterns (relative to the dialed path) that `prefixes` (relative to `root`) grant.
fn patterns(root: &str, dialed: &str, prefixes: &[String]) -> Vec<String> {
    let root = normalize(root);
    let mut out = Vec::new();
    for p in prefixes {
        let full = normalize(&format!("{root}/{p}"));
        if let Some(rest) = under(&full, dialed) {
            // the grant sits at or below the dialed path
            out.push(if rest.is_empty() {
                "**".to_string()
            } else {
                format!("{rest}/**")
            });
        } else if under(dialed, &full).is_some() {
            // the dialed path sits inside the grant
            out.push("**".to_string());
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The grant for a session dialed at `path` presenting `token`, or why it is refused.
pub fn decide(key: &Jwk, path: &str, token: Option<&str>) -> Result<serde_json::Value, String> {
    let token = token.ok_or("no token")?;
    let claims = verify(key, token)?;
    let dialed = normalize(path);
    let root = normalize(&claims.root);
    if under(&dialed, &root).is_none() && under(&root, &dialed).is_none() {
        return Err(format!(
            "the token's root `{root}` does not cover `{dialed}`"
        ));
    }
    let publish = patterns(&root, &dialed, &claims.put);
    let subscribe = patterns(&root, &dialed, &claims.get);
    if publish.is_empty() && subscribe.is_empty() {
        return Err(format!("the token grants nothing at `{dialed}`"));
    }
    let mut grant = serde_json::json!({ "publish": publish, "subscribe": subscribe });
    if let Some(exp) = claims.exp {
        grant["expires"] = exp.into();
    }
    Ok(grant)
}

/// The JWT a relay's request presents: its `jwt` query parameter or its SETUP token.
fn token_of(request: &serde_json::Value) -> Option<String> {
    if let Some(q) = request.get("query").and_then(|q| q.as_str()) {
        for pair in q.split('&') {
            if let Some(t) = pair.strip_prefix("jwt=") {
                return Some(t.to_string());
            }
        }
    }
    let t = request.get("token")?;
    if t.get("kind").and_then(|k| k.as_u64()) != Some(0) {
        return None;
    }
    let v = URL_SAFE_NO_PAD
        .decode(t.get("value")?.as_str()?.trim_end_matches('='))
        .ok()?;
    String::from_utf8(v).ok()
}

const MAX_HEAD: usize = 16 << 10;
const MAX_BODY: usize = 64 << 10;

/// Serve moq-relay's `--auth-url` contract on `listener` with `key`, forever.
pub async fn serve(listener: tokio::net::TcpListener, key: Jwk) -> anyhow::Result<()> {
    let key = std::sync::Arc::new(key);
    loop {
        let (conn, peer) = listener.accept().await?;
        let key = key.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_conn(conn, &key).await {
                log::debug!("auth request from {peer}: {e}");
            }
        });
    }
}

async fn serve_conn(mut conn: tokio::net::TcpStream, key: &Jwk) -> anyhow::Result<()> {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        // Headers.
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > MAX_HEAD {
                anyhow::bail!("headers longer than {MAX_HEAD} bytes");
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(30), conn.read(&mut chunk)).await??;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let len = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        if len > MAX_BODY {
            anyhow::bail!("a body of {len} bytes");
        }
        while buf.len() < head_end + len {
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(30), conn.read(&mut chunk)).await??;
            if n == 0 {
                anyhow::bail!("the request stopped inside its body");
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let body: Vec<u8> = buf[head_end..head_end + len].to_vec();
        buf.drain(..head_end + len);
        let (status, answer) = match serde_json::from_slice::<serde_json::Value>(&body) {
            Err(e) => (
                "400 Bad Request",
                serde_json::json!({ "error": e.to_string() }),
            ),
            Ok(req) => match req.get("event").and_then(|e| e.as_str()) {
                Some("end") => ("200 OK", serde_json::json!({})),
                _ => {
                    let path = req.get("path").and_then(|p| p.as_str()).unwrap_or("");
                    let token = token_of(&req);
                    match decide(key, path, token.as_deref()) {
                        Ok(grant) => {
                            log::info!("admitted a session at /{}", normalize(path));
                            ("200 OK", grant)
                        }
                        Err(why) => {
                            log::warn!("refused a session at /{}: {why}", normalize(path));
                            let status = if token.is_none() {
                                "401 Unauthorized"
                            } else {
                                "403 Forbidden"
                            };
                            (status, serde_json::json!({ "error": why }))
                        }
                    }
                }
            },
        };
        let body = answer.to_string();
        let reply = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        conn.write_all(reply.as_bytes()).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_sign_verify_and_grant_only_what_they_say() {
        let key = Jwk::generate().unwrap();
        let claims = Claims {
            root: "studio".into(),
            put: vec!["".into()],
            get: vec![],
            exp: Some(now_secs() + 60),
            iat: None,
        };
        let t = sign(&key, &claims).unwrap();
        assert!(is_jwt_shaped(&t));
        assert_eq!(verify(&key, &t).unwrap().put, vec![String::new()]);
        let g = decide(&key, "/studio", Some(&t)).unwrap();
        assert_eq!(g["publish"], serde_json::json!(["**"]));
        assert_eq!(g["subscribe"], serde_json::json!([]));
        assert!(decide(&key, "/other", Some(&t)).is_err());
        assert!(decide(&key, "/studio", None).is_err());
        // another key, a flipped byte, an expired token: refused
        let other = Jwk::generate().unwrap();
        assert!(verify(&other, &t).is_err());
        let mut bad = t.clone().into_bytes();
        let i = bad.len() - 3;
        bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
        assert!(verify(&key, std::str::from_utf8(&bad).unwrap()).is_err());
        let old = sign(
            &key,
            &Claims {
                exp: Some(now_secs() - 1),
                ..claims.clone()
            },
        )
        .unwrap();
        assert!(verify(&key, &old).unwrap_err().contains("expired"));
        // hostile text never panics
        for junk in ["", "a.b", "a.b.c", "....", &"x".repeat(20000)] {
            assert!(verify(&key, junk).is_err());
        }
    }

    #[test]
    fn grants_are_relative_to_the_dialed_path() {
        assert_eq!(patterns("", "studio", &["".into()]), vec!["**"]);
        assert_eq!(patterns("", "", &["studio".into()]), vec!["studio/**"]);
        assert_eq!(patterns("a", "a/b", &["b".into()]), vec!["**"]);
        assert!(patterns("a", "a/b", &["c".into()]).is_empty());
    }
}
