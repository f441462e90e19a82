//! Encryption at rest and keyed lookup hashes for customers' identifiers.
//!
//! A [`Keyring`] holds data keys by id (32-byte AES-256 keys) with one *active* key, and a
//! separate lookup secret. [`Keyring::seal`] encrypts with AES-256-GCM under the active key
//! and a random 96-bit nonce into self-describing text, `v1:<key id>:<base64url of nonce ||
//! ciphertext || tag>`, so a value sealed under an older key still opens while that key is
//! in the ring, and `concierge keys rotate` can find and re-seal it ([`Keyring::reseal`]).
//! [`Keyring::lookup_hash`] is HMAC-SHA256 with the lookup secret: a phone number can be
//! found by equality without being stored, and unlike a bare SHA-256 the hash cannot be
//! reversed by trying every number without the secret.
//!
//! Keys come from the `[security]` settings (secrets); the embedded SQLite default gets a
//! keyring file generated once ([`KeyFile::load_or_create`]). The keyring belongs to the
//! database it protects: start-up [`attach`]es it to the pool, and the code that reads or
//! writes sealed values finds it with [`of_pool`]. A pool opened without a keyring (a
//! library user, a tool) gets a throwaway one for the life of the process, with a warning:
//! values are never written in clear for want of a key.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// The prefix of every sealed value (the format's version).
pub const PREFIX: &str = "v1:";
/// Longest key id.
const MAX_KEY_ID: usize = 32;
/// Bytes of a GCM nonce.
const NONCE_BYTES: usize = 12;

/// What can go wrong with keys and sealed values.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// A key id that is empty, too long or has characters other than `a-z 0-9 _ -`.
    #[error("key id {0:?} must be 1-32 characters of a-z, 0-9, _ or -")]
    BadKeyId(String),
    /// A data key that is not base64 of exactly 32 bytes.
    #[error("data key {0:?} must be base64 of exactly 32 bytes")]
    BadKey(String),
    /// The lookup secret is missing or shorter than 32 bytes.
    #[error("the lookup secret must be base64 of at least 32 bytes")]
    BadLookupSecret,
    /// The active key id names no key of the ring.
    #[error("the active key {0:?} is not among the data keys")]
    NoActiveKey(String),
    /// The value was sealed under a key that is not in the ring (rotated away).
    #[error("no data key {0:?} in the keyring")]
    UnknownKey(String),
    /// The text is not a sealed value.
    #[error("not a sealed value")]
    Malformed,
    /// The ciphertext does not authenticate under its key (tampered or the wrong key).
    #[error("a sealed value does not decrypt under key {0:?}")]
    Decrypt(String),
    /// The keyring file cannot be read, parsed or written.
    #[error("keyring file {path}: {why}")]
    File { path: String, why: String },
}

/// Data keys by id, the active one, and the lookup secret.
pub struct Keyring {
    ciphers: BTreeMap<String, Aes256Gcm>,
    active: String,
    lookup: Vec<u8>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("keys", &self.ciphers.keys().collect::<Vec<_>>())
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// A ring from raw keys; the active id must name one of them.
    pub fn new(
        keys: BTreeMap<String, [u8; 32]>,
        active: &str,
        lookup_secret: &[u8],
    ) -> Result<Keyring, VaultError> {
        if lookup_secret.len() < 32 {
            return Err(VaultError::BadLookupSecret);
        }
        let mut ciphers = BTreeMap::new();
        for (id, key) in keys {
            check_id(&id)?;
            ciphers.insert(id, Aes256Gcm::new(&key.into()));
        }
        if !ciphers.contains_key(active) {
            return Err(VaultError::NoActiveKey(active.to_string()));
        }
        Ok(Keyring {
            ciphers,
            active: active.to_string(),
            lookup: lookup_secret.to_vec(),
        })
    }

    /// A ring from settings: keys and the lookup secret as standard base64.
    pub fn from_encoded(
        keys: &BTreeMap<String, SecretString>,
        active: &str,
        lookup_secret: &SecretString,
    ) -> Result<Keyring, VaultError> {
        let mut raw = BTreeMap::new();
        for (id, key) in keys {
            let bytes = STANDARD
                .decode(key.expose_secret().trim())
                .map_err(|_| VaultError::BadKey(id.clone()))?;
            let key: [u8; 32] = bytes
                .try_into()
                .map_err(|_| VaultError::BadKey(id.clone()))?;
            raw.insert(id.clone(), key);
        }
        let lookup = STANDARD
            .decode(lookup_secret.expose_secret().trim())
            .map_err(|_| VaultError::BadLookupSecret)?;
        Keyring::new(raw, active, &lookup)
    }

    /// A ring of fresh random keys (one data key, `active`), kept nowhere.
    pub fn ephemeral(active: &str) -> Keyring {
        let file = KeyFile::generate(active);
        file.keyring().expect("a generated keyring is valid")
    }

    /// The id of the key new values are sealed under.
    pub fn active_key(&self) -> &str {
        &self.active
    }

    /// The ids of every key of the ring.
    pub fn key_ids(&self) -> Vec<&str> {
        self.ciphers.keys().map(String::as_str).collect()
    }

    /// `plain` encrypted under the active key: `v1:<key id>:<base64url>`.
    pub fn seal(&self, plain: &str) -> String {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::thread_rng().fill_bytes(&mut nonce);
        let cipher = &self.ciphers[&self.active];
        // Encryption fails only for plaintexts over 64 GiB.
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce), plain.as_bytes())
            .unwrap_or_default();
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{PREFIX}{}:{}", self.active, URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The plain text of a sealed value.
    pub fn open(&self, sealed: &str) -> Result<String, VaultError> {
        let (id, body) = split(sealed).ok_or(VaultError::Malformed)?;
        let cipher = self
            .ciphers
            .get(id)
            .ok_or_else(|| VaultError::UnknownKey(id.to_string()))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| VaultError::Malformed)?;
        if bytes.len() < NONCE_BYTES + 16 {
            return Err(VaultError::Malformed);
        }
        let (nonce, data) = bytes.split_at(NONCE_BYTES);
        let plain = cipher
            .decrypt(Nonce::from_slice(nonce), data)
            .map_err(|_| VaultError::Decrypt(id.to_string()))?;
        String::from_utf8(plain).map_err(|_| VaultError::Malformed)
    }

    /// The value sealed again under the active key, or `None` when it already is.
    pub fn reseal(&self, sealed: &str) -> Result<Option<String>, VaultError> {
        match key_id(sealed) {
            Some(id) if id == self.active => Ok(None),
            Some(_) => Ok(Some(self.seal(&self.open(sealed)?))),
            None => Err(VaultError::Malformed),
        }
    }

    /// The lookup hash of `value`: hex HMAC-SHA256 keyed with the lookup secret.
    pub fn lookup_hash(&self, value: &str) -> String {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.lookup).expect("HMAC takes any key");
        mac.update(value.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// Whether `text` has the shape of a sealed value.
pub fn is_sealed(text: &str) -> bool {
    split(text).is_some()
}

/// The key id a sealed value names.
pub fn key_id(sealed: &str) -> Option<&str> {
    split(sealed).map(|(id, _)| id)
}

fn split(text: &str) -> Option<(&str, &str)> {
    let rest = text.strip_prefix(PREFIX)?;
    let (id, body) = rest.split_once(':')?;
    (check_id(id).is_ok() && !body.is_empty()).then_some((id, body))
}

fn check_id(id: &str) -> Result<(), VaultError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_KEY_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(VaultError::BadKeyId(id.to_string()))
    }
}

/// The keyring file the embedded default generates (TOML, mode 0600): the same fields as
/// the `[security]` settings.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct KeyFile {
    pub active_key: String,
    pub lookup_secret: String,
    pub data_keys: BTreeMap<String, String>,
}

impl KeyFile {
    /// Fresh random keys: one data key named `active`, and a lookup secret.
    pub fn generate(active: &str) -> KeyFile {
        let mut rng = rand::thread_rng();
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        let mut lookup = [0u8; 32];
        rng.fill_bytes(&mut lookup);
        KeyFile {
            active_key: active.to_string(),
            lookup_secret: STANDARD.encode(lookup),
            data_keys: BTreeMap::from([(active.to_string(), STANDARD.encode(key))]),
        }
    }

    /// The keyring these keys make.
    pub fn keyring(&self) -> Result<Keyring, VaultError> {
        let keys = self
            .data_keys
            .iter()
            .map(|(k, v)| (k.clone(), SecretString::from(v.clone())))
            .collect();
        Keyring::from_encoded(
            &keys,
            &self.active_key,
            &SecretString::from(self.lookup_secret.clone()),
        )
    }

    /// Reads the file at `path`, or creates it (owner-only) with fresh keys; `true` when
    /// it was created now.
    pub fn load_or_create(path: &Path) -> Result<(Keyring, bool), VaultError> {
        let fail = |why: String| VaultError::File {
            path: path.display().to_string(),
            why,
        };
        if !path.exists() {
            let file = KeyFile::generate(&format!("k{}", chrono::Utc::now().format("%Y%m%d")));
            let text = toml_text(&file);
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
            }
            match write_new_private(path, &text) {
                Ok(()) => return Ok((file.keyring()?, true)),
                // Another process created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(fail(e.to_string())),
            }
        }
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        let file = parse_toml(&text).map_err(fail)?;
        Ok((file.keyring()?, false))
    }
}

/// The file's text: three keys and a table, written by hand (values are base64 and ids
/// are checked, so nothing needs quoting beyond the quotes).
fn toml_text(file: &KeyFile) -> String {
    let mut text = String::from(
        "# Concierge data keys (generated once; keep this file secret and backed up: sealed\n\
         # data cannot be read without it). Rotate with `concierge keys rotate`.\n",
    );
    text.push_str(&format!("active_key = \"{}\"\n", file.active_key));
    text.push_str(&format!(
        "lookup_secret = \"{}\"\n\n[data_keys]\n",
        file.lookup_secret
    ));
    for (id, key) in &file.data_keys {
        text.push_str(&format!("{id} = \"{key}\"\n"));
    }
    text
}

/// Reads a key file written by [`toml_text`] (or by an operator in the same shape).
fn parse_toml(text: &str) -> Result<KeyFile, String> {
    let mut active = None;
    let mut lookup = None;
    let mut keys = BTreeMap::new();
    let mut in_keys = false;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') {
            in_keys = line == "[data_keys]";
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(format!("line {}: expected `name = \"value\"`", n + 1));
        };
        let (k, v) = (k.trim(), v.trim().trim_matches('"').to_string());
        match (in_keys, k) {
            (true, id) => {
                keys.insert(id.to_string(), v);
            }
            (false, "active_key") => active = Some(v),
            (false, "lookup_secret") => lookup = Some(v),
            (false, other) => return Err(format!("line {}: unknown key `{other}`", n + 1)),
        }
    }
    Ok(KeyFile {
        active_key: active.ok_or("no active_key")?,
        lookup_secret: lookup.ok_or("no lookup_secret")?,
        data_keys: keys,
    })
}

#[cfg(unix)]
fn write_new_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_new_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// Calls `f` on every sealed string inside `value` (objects and arrays, any depth) and
/// puts back what it returns; the number of strings changed.
pub fn map_sealed(
    value: &mut serde_json::Value,
    f: &mut dyn FnMut(&str) -> Result<Option<String>, VaultError>,
) -> Result<usize, VaultError> {
    use serde_json::Value;
    Ok(match value {
        Value::String(s) if is_sealed(s) => match f(s)? {
            Some(new) => {
                *s = new;
                1
            }
            None => 0,
        },
        Value::Array(items) => {
            let mut n = 0;
            for item in items {
                n += map_sealed(item, f)?;
            }
            n
        }
        Value::Object(map) => {
            let mut n = 0;
            for item in map.values_mut() {
                n += map_sealed(item, f)?;
            }
            n
        }
        _ => 0,
    })
}

type Registry = Mutex<BTreeMap<String, Arc<Keyring>>>;

fn registry() -> &'static Registry {
    static RINGS: OnceLock<Registry> = OnceLock::new();
    RINGS.get_or_init(Default::default)
}

/// The registry's name for a pool: its database URL.
fn pool_name(pool: &sqlx::AnyPool) -> String {
    pool.connect_options().database_url.to_string()
}

/// Makes `ring` the keyring of the database behind `pool` (replacing an earlier one).
pub fn attach(pool: &sqlx::AnyPool, ring: Arc<Keyring>) {
    let mut rings = registry().lock().unwrap_or_else(|e| e.into_inner());
    rings.insert(pool_name(pool), ring);
}

/// The keyring of the database behind `pool`; a throwaway one (logged) when none was
/// attached, so nothing is ever stored in clear for want of a key.
pub fn of_pool(pool: &sqlx::AnyPool) -> Arc<Keyring> {
    let name = pool_name(pool);
    let mut rings = registry().lock().unwrap_or_else(|e| e.into_inner());
    rings
        .entry(name)
        .or_insert_with(|| {
            tracing::warn!(
                "no keyring attached to this database: sealing under a throwaway key that \
                 lives as long as this process"
            );
            Arc::new(Keyring::ephemeral("ephemeral"))
        })
        .clone()
}

/// Fixed keys for tests (never for production): key `test`, active.
pub fn test_keyring_parts() -> (BTreeMap<String, SecretString>, String, SecretString) {
    (
        BTreeMap::from([(
            "test".to_string(),
            SecretString::from(STANDARD.encode([7u8; 32])),
        )]),
        "test".to_string(),
        SecretString::from(STANDARD.encode([9u8; 32])),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(ids: &[(&str, u8)], active: &str) -> Keyring {
        let keys = ids
            .iter()
            .map(|(id, b)| (id.to_string(), [*b; 32]))
            .collect();
        Keyring::new(keys, active, &[1u8; 32]).unwrap()
    }

    #[test]
    fn sealed_values_open_and_say_their_key() {
        let r = ring(&[("k1", 1)], "k1");
        let s = r.seal("13812345678");
        assert!(s.starts_with("v1:k1:"), "{s}");
        assert!(!s.contains("13812345678"));
        assert_eq!(r.open(&s).unwrap(), "13812345678");
        assert_ne!(r.seal("13812345678"), s, "a fresh nonce each time");
        assert!(is_sealed(&s) && !is_sealed("13812345678"));
    }

    #[test]
    fn tampering_and_unknown_keys_are_errors() {
        let r = ring(&[("k1", 1)], "k1");
        let s = r.seal("x");
        let mut t = s.clone().into_bytes();
        let last = t.len() - 2;
        t[last] = if t[last] == b'A' { b'B' } else { b'A' };
        let t = String::from_utf8(t).unwrap();
        assert!(matches!(r.open(&t), Err(VaultError::Decrypt(_))));
        let other = ring(&[("k2", 2)], "k2");
        assert!(matches!(other.open(&s), Err(VaultError::UnknownKey(_))));
        assert!(matches!(r.open("v1:k1:"), Err(VaultError::Malformed)));
        assert!(matches!(r.open("hello"), Err(VaultError::Malformed)));
    }

    #[test]
    fn reseal_moves_values_to_the_active_key_once() {
        let old = ring(&[("k1", 1)], "k1");
        let both = ring(&[("k1", 1), ("k2", 2)], "k2");
        let s = old.seal("6222021001123456780");
        let moved = both.reseal(&s).unwrap().unwrap();
        assert_eq!(key_id(&moved), Some("k2"));
        assert_eq!(both.reseal(&moved).unwrap(), None, "idempotent");
        let new_only = ring(&[("k2", 2)], "k2");
        assert_eq!(new_only.open(&moved).unwrap(), "6222021001123456780");
    }

    #[test]
    fn lookup_hashes_are_keyed_not_bare_sha256() {
        use sha2::Digest;
        let r = ring(&[("k1", 1)], "k1");
        let h = r.lookup_hash("13812345678");
        assert_eq!(h, r.lookup_hash("13812345678"));
        assert_eq!(h.len(), 64);
        assert_ne!(h, hex::encode(Sha256::digest(b"13812345678")));
        let other =
            Keyring::new(BTreeMap::from([("k1".into(), [1u8; 32])]), "k1", &[2u8; 32]).unwrap();
        assert_ne!(h, other.lookup_hash("13812345678"), "another secret");
    }

    #[test]
    fn bad_settings_are_named() {
        let (keys, _, lookup) = test_keyring_parts();
        assert!(matches!(
            Keyring::from_encoded(&keys, "nope", &lookup),
            Err(VaultError::NoActiveKey(_))
        ));
        let bad = BTreeMap::from([("k1".to_string(), SecretString::from("c2hvcnQ="))]);
        assert!(matches!(
            Keyring::from_encoded(&bad, "k1", &lookup),
            Err(VaultError::BadKey(_))
        ));
        let upper = BTreeMap::from([("K1".to_string(), keys["test"].clone())]);
        assert!(matches!(
            Keyring::from_encoded(&upper, "K1", &lookup),
            Err(VaultError::BadKeyId(_))
        ));
        assert!(matches!(
            Keyring::from_encoded(&keys, "test", &SecretString::from("")),
            Err(VaultError::BadLookupSecret)
        ));
    }

    #[test]
    fn the_key_file_is_created_once_owner_only_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/keys.toml");
        let (first, created) = KeyFile::load_or_create(&path).unwrap();
        assert!(created);
        let sealed = first.seal("11010519491231002X");
        let (second, created) = KeyFile::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(second.open(&sealed).unwrap(), "11010519491231002X");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
