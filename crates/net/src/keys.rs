//! This machine's key, fingerprints, and the keys a peer may present.
//!
//! The key is made on first use and kept as PKCS#8 PEM (mode 0600) in
//! `$XDG_CONFIG_HOME/streamlib/net-key.pem` (`~/.config/...` without XDG_CONFIG_HOME). Each
//! run wraps it in a fresh self-signed certificate: only the key matters, because a peer is
//! identified by the SHA-256 of its public key (its SubjectPublicKeyInfo), printed as
//! `SHA256:` and unpadded base64, as ssh prints host keys. A certificate can therefore be
//! renewed, or made anew each run, without anyone re-pinning.
//!
//! Allowed keys are `--peer FINGERPRINT` flags and the lines of `allowed_keys` next to the key
//! (`FINGERPRINT [comment]`, `#` starts a comment), one file for both directions, like ssh's
//! `authorized_keys` and `known_hosts` together.

use std::collections::BTreeSet;
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::NetError;

/// The SHA-256 of a public key (its DER SubjectPublicKeyInfo).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    pub fn of_spki(spki_der: &[u8]) -> Fingerprint {
        let d = ring::digest::digest(&ring::digest::SHA256, spki_der);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        Fingerprint(out)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SHA256:{}", STANDARD_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Fingerprint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let b64 = s.trim().strip_prefix("SHA256:").unwrap_or(s.trim());
        let bytes = STANDARD_NO_PAD
            .decode(b64.trim_end_matches('='))
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or_else(|| {
                format!(
                    "`{s}` is not a key fingerprint: expected `SHA256:` and 43 base64 characters, \
                     as `sl-net key` prints them"
                )
            })?;
        let mut out = [0u8; 32];
        out.copy_from_slice(&bytes);
        Ok(Fingerprint(out))
    }
}

/// Where streamlib keeps its configuration: `$XDG_CONFIG_HOME/streamlib`, else
/// `$HOME/.config/streamlib`.
pub fn config_dir() -> Result<PathBuf, NetError> {
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|x| !x.is_empty()) {
        return Ok(PathBuf::from(x).join("streamlib"));
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".config").join("streamlib")),
        None => Err(NetError::Key(
            "neither XDG_CONFIG_HOME nor HOME is set: cannot find where to keep this machine's key"
                .into(),
        )),
    }
}

/// The default key file.
pub fn default_key_path() -> Result<PathBuf, NetError> {
    Ok(config_dir()?.join("net-key.pem"))
}

/// The default allowed-keys file.
pub fn default_allowed_path() -> Result<PathBuf, NetError> {
    Ok(config_dir()?.join("allowed_keys"))
}

/// This machine's key pair and a certificate made from it for this run.
pub struct Identity {
    pub fingerprint: Fingerprint,
    pub cert: CertificateDer<'static>,
    key_der: Vec<u8>,
    pub path: PathBuf,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({}, {})", self.fingerprint, self.path.display())
    }
}

impl Identity {
    /// Load the key at `path`, making it first if there is none (mode 0600, its directory
    /// 0700). Returns the identity and whether the key was just made.
    pub fn load_or_create(path: &Path) -> Result<(Identity, bool), NetError> {
        let (pem, created) = match fs::read_to_string(path) {
            Ok(pem) => (pem, false),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (create_key(path)?, true),
            Err(e) => {
                return Err(NetError::Key(format!(
                    "cannot read this machine's key {}: {e}",
                    path.display()
                )));
            }
        };
        warn_if_readable_by_others(path);
        let kp = rcgen::KeyPair::from_pem(&pem).map_err(|e| {
            NetError::Key(format!(
                "{} is not a private key this program can use ({e}); move it away and a new \
                 key is made on the next run (peers must then pin the new fingerprint)",
                path.display()
            ))
        })?;
        let fingerprint = Fingerprint::of_spki(&rcgen::PublicKeyData::subject_public_key_info(&kp));
        let params = rcgen::CertificateParams::new(vec!["streamlib".to_string()])
            .map_err(|e| NetError::Key(format!("certificate parameters: {e}")))?;
        let cert = params
            .self_signed(&kp)
            .map_err(|e| NetError::Key(format!("making a certificate for the key: {e}")))?;
        Ok((
            Identity {
                fingerprint,
                cert: cert.der().clone(),
                key_der: kp.serialize_der(),
                path: path.to_path_buf(),
            },
            created,
        ))
    }

    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

fn create_key(path: &Path) -> Result<String, NetError> {
    let err = |what: &str, e: std::io::Error| {
        NetError::Key(format!("cannot {what} {}: {e}", path.display()))
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| err("create the directory for", e))?;
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    }
    // Ed25519: small keys, fast signatures, supported by rustls's ring provider.
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
        .map_err(|e| NetError::Key(format!("generating a key: {e}")))?;
    let pem = pkcs8_v1_pem(&kp.serialize_der())?;
    let mut f = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(f) => f,
        // another process made it at the same moment: use theirs
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return fs::read_to_string(path).map_err(|e| err("read", e));
        }
        Err(e) => return Err(err("create", e)),
    };
    f.write_all(pem.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| err("write", e))?;
    Ok(pem)
}

/// The start of an Ed25519 key in PKCS#8 v1 (RFC 8410): version 0, the Ed25519 algorithm,
/// and the 32-byte private key in an OCTET STRING inside an OCTET STRING. The key follows.
const ED25519_PKCS8_V1: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// An Ed25519 key, as ring makes it (PKCS#8 v2: the same, version 1, with the public key
/// after), as PEM of PKCS#8 v1: what `openssl pkey` reads (OpenSSL 3.0 refuses the v2 form),
/// so a user can check the fingerprint with it. ring and rustls read both.
fn pkcs8_v1_pem(v2: &[u8]) -> Result<String, NetError> {
    let mut head = ED25519_PKCS8_V1;
    head[1] = 0x51; // v2's outer length
    head[4] = 0x01; // v2's version
    if v2.len() < 48 || v2[..16] != head {
        return Err(NetError::Key(
            "the key generator made a key of an unexpected form".to_string(),
        ));
    }
    let mut v1 = ED25519_PKCS8_V1.to_vec();
    v1.extend_from_slice(&v2[16..48]);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&v1);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    Ok(pem)
}

/// The keys a peer may present.
#[derive(Clone, Debug, Default)]
pub struct Pins {
    keys: BTreeSet<Fingerprint>,
    /// Skip the check (the loud, explicitly named bypass).
    pub accept_any: bool,
    /// Where the file-listed keys came from, for messages.
    pub file: Option<PathBuf>,
}

impl Pins {
    pub fn new(flags: &[Fingerprint], file: Option<&Path>) -> Result<Pins, NetError> {
        let mut keys: BTreeSet<Fingerprint> = flags.iter().copied().collect();
        if let Some(file) = file {
            match fs::read_to_string(file) {
                Ok(text) => keys.extend(parse_allowed(&text, file)?),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(NetError::Key(format!(
                        "cannot read the allowed keys in {}: {e}",
                        file.display()
                    )));
                }
            }
        }
        Ok(Pins {
            keys,
            accept_any: false,
            file: file.map(Path::to_path_buf),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn allows(&self, fp: &Fingerprint) -> bool {
        self.accept_any || self.keys.contains(fp)
    }

    /// How the user pins `fp` on this side.
    pub fn how_to_pin(&self, fp: &Fingerprint) -> String {
        format!("pass `--peer {fp}`, or run `sl-net allow {fp}` to add it to the allowed keys")
    }
}

/// A private key others can read is a key others can use: say so (ssh refuses such a key;
/// here the run goes on, since the key may live on a file system without modes).
fn warn_if_readable_by_others(path: &Path) {
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        log::warn!(
            "{} can be read by other users (mode {:o}): run `chmod 600 {}`",
            path.display(),
            meta.permissions().mode() & 0o777,
            path.display()
        );
    }
}

/// Parse an allowed-keys file: `FINGERPRINT [comment]` per line, `#` comments, blank lines.
pub fn parse_allowed(text: &str, file: &Path) -> Result<Vec<Fingerprint>, NetError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(word) = line.split_whitespace().next() else {
            continue;
        };
        let fp = word.parse().map_err(|e: String| {
            NetError::Key(format!("{} line {}: {e}", file.display(), i + 1))
        })?;
        out.push(fp);
    }
    Ok(out)
}

/// Add `fp` (with an optional comment) to the allowed-keys file, unless it is there already.
/// Returns false when it was already allowed.
pub fn allow(file: &Path, fp: &Fingerprint, comment: &str) -> Result<bool, NetError> {
    // one line per key: a newline in the comment would start a line of its own, and could pin
    // a key nobody asked for
    if comment.chars().any(char::is_control) {
        return Err(NetError::Key(
            "a comment cannot hold a newline or other control character".into(),
        ));
    }
    let existing = match fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(NetError::Key(format!(
                "cannot read {}: {e}",
                file.display()
            )));
        }
    };
    if parse_allowed(&existing, file)?.contains(fp) {
        return Ok(false);
    }
    if let Some(dir) = file.parent() {
        fs::create_dir_all(dir)
            .map_err(|e| NetError::Key(format!("cannot create {}: {e}", dir.display())))?;
    }
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(file)
        .map_err(|e| NetError::Key(format!("cannot open {}: {e}", file.display())))?;
    let sep = if existing.is_empty() || existing.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    let line = if comment.is_empty() {
        format!("{sep}{fp}\n")
    } else {
        format!("{sep}{fp} {comment}\n")
    };
    f.write_all(line.as_bytes())
        .map_err(|e| NetError::Key(format!("cannot write {}: {e}", file.display())))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sl-net-keys-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn fingerprint_round_trips_and_rejects_junk() {
        let fp = Fingerprint::of_spki(b"hello");
        let s = fp.to_string();
        assert!(s.starts_with("SHA256:") && s.len() == 7 + 43, "{s}");
        assert_eq!(s.parse::<Fingerprint>().unwrap(), fp);
        assert_eq!(s[7..].parse::<Fingerprint>().unwrap(), fp);
        for bad in ["", "SHA256:", "SHA256:abc", "nonsense!", &s[..40]] {
            assert!(bad.parse::<Fingerprint>().is_err(), "{bad}");
        }
    }

    #[test]
    fn key_is_made_once_private_and_stable() {
        let d = tmp("made");
        let path = d.join("streamlib").join("net-key.pem");
        let (a, created) = Identity::load_or_create(&path).unwrap();
        assert!(created);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (b, created) = Identity::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(a.fingerprint, b.fingerprint);
        // the certificate's SPKI hashes to the fingerprint
        let parsed = rustls::server::ParsedCertificate::try_from(&b.cert).unwrap();
        assert_eq!(
            Fingerprint::of_spki(parsed.subject_public_key_info().as_ref()),
            a.fingerprint
        );
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_new_key_is_written_as_pkcs8_v1_with_the_same_public_key() {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let pem = pkcs8_v1_pem(&kp.serialize_der()).unwrap();
        let back = rcgen::KeyPair::from_pem(&pem).unwrap();
        assert_eq!(back.public_key_raw(), kp.public_key_raw());
        let der = back.serialize_der();
        assert_eq!(der.len(), 48);
        assert_eq!(der[..16], ED25519_PKCS8_V1);
        // what the generator makes is checked, not assumed
        assert!(pkcs8_v1_pem(&der).is_err());
    }

    #[test]
    fn a_damaged_key_file_is_an_error_naming_it() {
        let d = tmp("bad");
        fs::create_dir_all(&d).unwrap();
        let path = d.join("net-key.pem");
        fs::write(&path, "not a key").unwrap();
        let e = Identity::load_or_create(&path).unwrap_err().to_string();
        assert!(
            e.contains("net-key.pem") && e.contains("move it away"),
            "{e}"
        );
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn allowed_keys_file() {
        let d = tmp("allowed");
        let file = d.join("allowed_keys");
        let a = Fingerprint::of_spki(b"a");
        let b = Fingerprint::of_spki(b"b");
        assert!(allow(&file, &a, "studio").unwrap());
        assert!(!allow(&file, &a, "again").unwrap());
        fs::write(
            &file,
            format!(
                "{}# comment\n\n  {b} # edge box\n",
                fs::read_to_string(&file).unwrap()
            ),
        )
        .unwrap();
        let pins = Pins::new(&[], Some(&file)).unwrap();
        assert!(pins.allows(&a) && pins.allows(&b));
        assert!(!pins.allows(&Fingerprint::of_spki(b"c")));
        fs::write(&file, "SHA256:broken\n").unwrap();
        let e = Pins::new(&[], Some(&file)).unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_comment_cannot_smuggle_in_a_second_key() {
        let d = tmp("smuggle");
        let file = d.join("allowed_keys");
        let a = Fingerprint::of_spki(b"a");
        let evil = Fingerprint::of_spki(b"evil");
        let e = allow(&file, &a, &format!("bob\n{evil} evil"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("newline"), "{e}");
        assert!(!file.exists(), "nothing written");
        assert!(allow(&file, &a, "bob").unwrap());
        let pins = Pins::new(&[], Some(&file)).unwrap();
        assert!(pins.allows(&a) && !pins.allows(&evil));
        let _ = fs::remove_dir_all(&d);
    }
}
