//! Field-level encryption at rest (cargo feature `encryption`).
//!
//! Named fields are encrypted with XChaCha20-Poly1305 (the `chacha20poly1305` crate)
//! before a document is stored and decrypted when a cursor returns it. The rest of the
//! document, its `_id` and the presence of each encrypted field stay in the clear.
//!
//! # Stored form
//!
//! An encrypted value is stored as a plain JSON string
//! `"enc:v1:<base64url(version | mode | key id | nonce | ciphertext and tag)>"`:
//!
//! | bytes | content |
//! | --- | --- |
//! | 1 | format version (1) |
//! | 1 | mode: 0 random nonce, 1 deterministic |
//! | 4 | key id (big-endian), a fingerprint of the key that encrypted the value |
//! | 24 | nonce |
//! | n + 16 | ciphertext of the value's JSON text, with the Poly1305 tag |
//!
//! The first six bytes and the field's dotted path are authenticated as associated data,
//! so a ciphertext moved to another field, or edited, fails to decrypt. A string was
//! chosen over an object marker (`{"$enc": …}`) because it needs no change to the
//! document validator or the query parser, and SQLite indexes and compares it like any
//! string (which deterministic equality queries need). Any JSON value can be encrypted
//! (strings, numbers, objects, arrays, `null`); its type comes back on decryption.
//!
//! # Keys
//!
//! A key is 32 bytes, given raw ([`EncryptionKey::from_bytes`]) or derived from a
//! passphrase with Argon2id ([`EncryptionKey::from_passphrase`]) under a random salt
//! kept in the database's meta table, so the same passphrase reopens the database. The
//! cipher key, the deterministic-nonce key and the key id are derived from it with
//! HMAC-SHA-256 under distinct labels. A wrong key never yields garbage: the value's key
//! id does not match, or its tag does not verify, and the read fails with
//! [`Error::Decryption`].
//!
//! # Queries
//!
//! Random-nonce fields (the default) cannot be queried except with `$exists`. Fields
//! declared *deterministic* derive the nonce from the value (HMAC-SHA-256 of the path and
//! the plaintext, a synthetic-IV construction), so equal values have equal ciphertexts:
//! [`before_read`](Plugin::before_read) rewrites `{field: v}`, `$eq`, `$ne`, `$in` and
//! `$nin` on them into ciphertexts, and an index on the field serves such queries. **A
//! deterministic field leaks which documents hold equal values** (and how often each
//! value occurs); use it only where that is acceptable. Range operators, `$regex` and
//! the other operators on encrypted fields are rejected with [`Error::InvalidFilter`],
//! as are queries on paths inside an encrypted value. `{field: null}` matches documents
//! where the field is missing or holds an encrypted `null`. JSON filters and the fluent
//! `query()` builder and live queries pass through the plugin; aggregation `$match`
//! stages do not, so they cannot query encrypted fields.
//!
//! # Writes
//!
//! Plain values written to an encrypted field (insert, replace, `$set`) are encrypted.
//! Values already encrypted under a configured key (a document read back from storage
//! and updated) are kept, or re-encrypted when under an older key or in the other mode.
//! Operators that compute from the stored value (`$inc`, `$push`, …) see the plaintext
//! of a field reached through documents ([`Plugin::reveal_for_update`]) and their result
//! is encrypted again; on a field reached through an array they see the ciphertext
//! string and fail with a typed error (write such fields whole). Reads through
//! cursors (`find`, `find_one`, `near`), `distinct`, find-and-modify, live queries and
//! change streams' `full_document` decrypt; aggregation, `db.sql` and `after_write`
//! hooks see the stored ciphertexts.
//!
//! # Key rotation
//!
//! [`Encryption::rotate_key`] makes the new key current (new writes use it at once),
//! keeps the old one for reading, and re-encrypts the collection in batches of
//! [`ROTATION_BATCH`] documents, one transaction each. Every value records the id of its
//! key, so after a crash mid-way every document is readable by a plugin configured with
//! the new key and the old one as a [previous key](Encryption::previous_key); running
//! `rotate_key` again with the same new key finishes the job.
//!
//! ```
//! use pocketdb::plugin::{Encryption, EncryptionKey};
//! use pocketdb::{Database, Error};
//! use serde_json::{json, Value};
//!
//! let db = Database::memory()?;
//! let key = EncryptionKey::from_bytes([7; 32]);
//! let enc = Encryption::new(&key)?.field("ssn")?.deterministic_field("email")?;
//! db.register_collection_plugin("users", enc.clone())?;
//! let users = db.collection::<Value>("users");
//! users.insert_one(json!({"_id": 1, "email": "ada@example.com", "ssn": "123-45-6789"}))?;
//!
//! // Reads decrypt; equality on the deterministic field works.
//! let ada = users.find_one(json!({"email": "ada@example.com"}))?.expect("found");
//! assert_eq!(ada["ssn"], "123-45-6789");
//! // The random-nonce field cannot be queried.
//! assert!(matches!(users.find(json!({"ssn": "123-45-6789"})), Err(Error::InvalidFilter { .. })));
//! // On disk, the values are ciphertexts.
//! let raw = db.sql("SELECT json_extract(doc, '$.ssn') AS ssn FROM c_users", &[])?;
//! assert!(raw[0]["ssn"].as_str().is_some_and(|s| s.starts_with("enc:v1:")));
//! # Ok::<(), pocketdb::Error>(())
//! ```

use super::{Plugin, WriteContext};
use crate::collection::{Collection, Document};
use crate::database::Database;
use crate::error::{Error, Result};
use crate::value::FieldPath;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde_json::{Map, Value};
use sha2::Sha256;
use std::sync::{Arc, PoisonError, RwLock};
use zeroize::Zeroizing;

/// Prefix of every encrypted value.
pub const PREFIX: &str = "enc:v1:";
/// Documents re-encrypted per transaction by [`Encryption::rotate_key`].
pub const ROTATION_BATCH: usize = 1000;
/// Meta-table key of the database's passphrase salt.
const SALT_KEY: &str = "encryption_salt";

const VERSION: u8 = 1;
const MODE_RANDOM: u8 = 0;
const MODE_DETERMINISTIC: u8 = 1;
const HEADER: usize = 6;
const NONCE: usize = 24;
const TAG: usize = 16;

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA-256 of the concatenated `parts` under `key`.
fn prf(key: &[u8], parts: &[&[u8]]) -> Result<Zeroizing<[u8; 32]>> {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key)
        .map_err(|e| Error::InvalidArgument(format!("HMAC key: {e}")))?;
    for p in parts {
        mac.update(p);
    }
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&mac.finalize().into_bytes());
    Ok(out)
}

/// A 256-bit encryption key. Its bytes are wiped from memory when it is dropped;
/// `Debug` shows only its [id](EncryptionKey::id).
#[derive(Clone)]
pub struct EncryptionKey {
    bytes: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.id() {
            Ok(id) => write!(f, "EncryptionKey {{ id: {id:08x} }}"),
            Err(_) => f.write_str("EncryptionKey { .. }"),
        }
    }
}

impl EncryptionKey {
    /// A key given as 32 raw bytes (from a key store, an environment secret, …).
    pub fn from_bytes(bytes: [u8; 32]) -> EncryptionKey {
        EncryptionKey {
            bytes: Zeroizing::new(bytes),
        }
    }

    /// A key given as a byte slice; [`Error::InvalidArgument`] unless it is 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<EncryptionKey> {
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| {
            Error::InvalidArgument(format!(
                "an encryption key is 32 bytes, got {}",
                bytes.len()
            ))
        })?;
        Ok(EncryptionKey::from_bytes(bytes))
    }

    /// A fresh random key (from the operating system's generator, through `rand`).
    pub fn generate() -> EncryptionKey {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rng().fill_bytes(bytes.as_mut());
        EncryptionKey { bytes }
    }

    /// A key derived from `passphrase` with Argon2id (the `argon2` crate's default
    /// parameters: 19 MiB, 2 passes, 1 lane) under `db`'s salt: 16 random bytes created
    /// on first use and kept in the database's meta table, so the same passphrase gives
    /// the same key whenever the database is reopened. Takes tens of milliseconds by
    /// design (more in unoptimised builds).
    pub fn from_passphrase(db: &Database, passphrase: &str) -> Result<EncryptionKey> {
        let salt = database_salt(db)?;
        EncryptionKey::derive(passphrase.as_bytes(), &salt)
    }

    /// A key derived from `passphrase` and `salt` (at least 8 bytes) with Argon2id and
    /// the `argon2` crate's default parameters.
    pub fn derive(passphrase: &[u8], salt: &[u8]) -> Result<EncryptionKey> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        argon2::Argon2::default()
            .hash_password_into(passphrase, salt, bytes.as_mut())
            .map_err(|e| Error::InvalidArgument(format!("key derivation: {e}")))?;
        Ok(EncryptionKey { bytes })
    }

    /// The key's id: a 32-bit fingerprint (HMAC of a fixed label under the key) stored
    /// with every value it encrypts. It reveals nothing usable about the key.
    pub fn id(&self) -> Result<u32> {
        let h = prf(self.bytes.as_ref(), &[b"pocketdb/encryption/v1/key-id"])?;
        Ok(u32::from_be_bytes([h[0], h[1], h[2], h[3]]))
    }
}

/// The database's passphrase salt, created on first use.
fn database_salt(db: &Database) -> Result<Vec<u8>> {
    let mut fresh = [0u8; 16];
    rand::rng().fill_bytes(&mut fresh);
    let fresh = URL_SAFE_NO_PAD.encode(fresh);
    let stored: String = db.write(|conn| {
        conn.execute(
            "INSERT OR IGNORE INTO _pocketdb_meta(key, value) VALUES (?1, ?2)",
            rusqlite::params![SALT_KEY, fresh],
        )?;
        Ok(conn.query_row(
            "SELECT value FROM _pocketdb_meta WHERE key = ?1",
            [SALT_KEY],
            |r| r.get(0),
        )?)
    })?;
    URL_SAFE_NO_PAD
        .decode(stored.as_bytes())
        .map_err(|e| Error::Incompatible(format!("the stored encryption salt is malformed: {e}")))
}

/// A key ready for use: the cipher, the deterministic-nonce key and the id.
struct KeyMaterial {
    id: u32,
    cipher: XChaCha20Poly1305,
    siv: Zeroizing<[u8; 32]>,
}

impl KeyMaterial {
    fn new(key: &EncryptionKey) -> Result<KeyMaterial> {
        let k = key.bytes.as_ref();
        let cipher_key = prf(k, &[b"pocketdb/encryption/v1/cipher"])?;
        let cipher = XChaCha20Poly1305::new_from_slice(cipher_key.as_ref())
            .map_err(|e| Error::InvalidArgument(format!("cipher key: {e}")))?;
        Ok(KeyMaterial {
            id: key.id()?,
            cipher,
            siv: prf(k, &[b"pocketdb/encryption/v1/siv"])?,
        })
    }

    fn seal(&self, path: &str, value: &Value, deterministic: bool) -> Result<String> {
        let plaintext = Zeroizing::new(serde_json::to_vec(value)?);
        let mode = if deterministic {
            MODE_DETERMINISTIC
        } else {
            MODE_RANDOM
        };
        let mut out = Vec::with_capacity(HEADER + NONCE + plaintext.len() + TAG);
        out.push(VERSION);
        out.push(mode);
        out.extend_from_slice(&self.id.to_be_bytes());
        let nonce = if deterministic {
            self.synthetic_nonce(path, &plaintext)?
        } else {
            let mut n = [0u8; NONCE];
            rand::rng().fill_bytes(&mut n);
            n
        };
        let aad = associated_data(&out[..HEADER], path);
        let ciphertext = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| Error::InvalidArgument(format!("cannot encrypt field '{path}'")))?;
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(out)))
    }

    fn synthetic_nonce(&self, path: &str, plaintext: &[u8]) -> Result<[u8; NONCE]> {
        let len = (path.len() as u64).to_be_bytes();
        let h = prf(self.siv.as_ref(), &[&len, path.as_bytes(), plaintext])?;
        let mut n = [0u8; NONCE];
        n.copy_from_slice(&h[..NONCE]);
        Ok(n)
    }

    fn open(&self, path: &str, sealed: &Sealed) -> Result<Value> {
        let aad = associated_data(&sealed.header, path);
        let plaintext = self
            .cipher
            .decrypt(
                XNonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.body,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| {
                Error::Decryption(format!(
                    "field '{path}': authentication failed (wrong key, or the value was altered or moved from another field)"
                ))
            })?;
        if sealed.mode() == MODE_DETERMINISTIC
            && self.synthetic_nonce(path, &plaintext)? != sealed.nonce
        {
            return Err(Error::Decryption(format!(
                "field '{path}': the deterministic nonce does not match the value"
            )));
        }
        serde_json::from_slice(&plaintext).map_err(|e| {
            Error::Decryption(format!("field '{path}': decrypted value is not JSON: {e}"))
        })
    }
}

fn associated_data(header: &[u8], path: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + path.len());
    aad.extend_from_slice(header);
    aad.extend_from_slice(path.as_bytes());
    aad
}

/// An encrypted value taken apart.
struct Sealed {
    header: [u8; HEADER],
    nonce: [u8; NONCE],
    body: Vec<u8>,
}

impl Sealed {
    /// `None` when `s` is not in the encrypted format (no prefix, bad base64, too short,
    /// unknown version or mode).
    fn parse(s: &str) -> Option<Sealed> {
        let raw = URL_SAFE_NO_PAD.decode(s.strip_prefix(PREFIX)?).ok()?;
        if raw.len() < HEADER + NONCE + TAG
            || raw[0] != VERSION
            || !matches!(raw[1], MODE_RANDOM | MODE_DETERMINISTIC)
        {
            return None;
        }
        let mut header = [0u8; HEADER];
        header.copy_from_slice(&raw[..HEADER]);
        let mut nonce = [0u8; NONCE];
        nonce.copy_from_slice(&raw[HEADER..HEADER + NONCE]);
        Some(Sealed {
            header,
            nonce,
            body: raw[HEADER + NONCE..].to_vec(),
        })
    }

    fn mode(&self) -> u8 {
        self.header[1]
    }

    fn key_id(&self) -> u32 {
        u32::from_be_bytes([
            self.header[2],
            self.header[3],
            self.header[4],
            self.header[5],
        ])
    }
}

/// One encrypted field.
#[derive(Debug, Clone)]
struct Field {
    path: String,
    segments: Vec<String>,
    deterministic: bool,
}

struct Keys {
    current: Arc<KeyMaterial>,
    previous: Vec<Arc<KeyMaterial>>,
}

impl Keys {
    fn find(&self, id: u32) -> Option<&Arc<KeyMaterial>> {
        std::iter::once(&self.current)
            .chain(self.previous.iter())
            .find(|k| k.id == id)
    }

    fn ids(&self) -> String {
        std::iter::once(&self.current)
            .chain(self.previous.iter())
            .map(|k| format!("{:08x}", k.id))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

struct Inner {
    fields: Vec<Field>,
    keys: RwLock<Keys>,
}

/// The field-level encryption plugin; see the [module documentation](self). A cheap
/// handle: register one clone (for one collection with
/// [`Database::register_collection_plugin`], or for all with
/// [`Database::register_plugin`]) and keep another for [`rotate_key`](Self::rotate_key).
#[derive(Clone)]
pub struct Encryption {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = self.keys().ids();
        f.debug_struct("Encryption")
            .field("fields", &self.inner.fields)
            .field("keys", &keys)
            .finish()
    }
}

/// What [`Encryption::rotate_key`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RotationReport {
    /// Documents read.
    pub scanned: u64,
    /// Documents re-encrypted (the others were already under the new key).
    pub rewritten: u64,
    /// Transactions committed.
    pub batches: u64,
}

impl Encryption {
    /// A plugin encrypting no field yet, with `key` as its current key.
    pub fn new(key: &EncryptionKey) -> Result<Encryption> {
        let current = Arc::new(KeyMaterial::new(key)?);
        Ok(Encryption {
            inner: Arc::new(Inner {
                fields: Vec::new(),
                keys: RwLock::new(Keys {
                    current,
                    previous: Vec::new(),
                }),
            }),
        })
    }

    fn rebuild(self, f: impl FnOnce(&mut Vec<Field>, &mut Vec<Arc<KeyMaterial>>)) -> Encryption {
        let (mut fields, current, mut previous) = {
            let keys = self.keys();
            (
                self.inner.fields.clone(),
                Arc::clone(&keys.current),
                keys.previous.clone(),
            )
        };
        f(&mut fields, &mut previous);
        Encryption {
            inner: Arc::new(Inner {
                fields,
                keys: RwLock::new(Keys { current, previous }),
            }),
        }
    }

    fn add_field(self, path: &str, deterministic: bool) -> Result<Encryption> {
        let parsed = FieldPath::parse(path)?;
        let segments = parsed.segments().to_vec();
        if segments.first().map(String::as_str) == Some("_id") {
            return Err(Error::InvalidArgument(
                "_id cannot be encrypted".to_string(),
            ));
        }
        let overlaps = |other: &Field| {
            let (a, b) = (&other.segments, &segments);
            let n = a.len().min(b.len());
            a[..n] == b[..n]
        };
        if let Some(other) = self.inner.fields.iter().find(|f| overlaps(f)) {
            return Err(Error::InvalidArgument(format!(
                "encrypted field '{path}' overlaps encrypted field '{}'",
                other.path
            )));
        }
        let field = Field {
            path: parsed.to_string(),
            segments,
            deterministic,
        };
        Ok(self.rebuild(|fields, _| fields.push(field)))
    }

    /// Encrypts the field at `path` (dotted; through arrays of documents, every element's
    /// field) with a random nonce: the strongest mode, not queryable except `$exists`.
    /// Paths may not overlap, and `_id` cannot be encrypted.
    pub fn field(self, path: &str) -> Result<Encryption> {
        self.add_field(path, false)
    }

    /// Encrypts the field at `path` deterministically: equal values give equal
    /// ciphertexts, so equality queries (`{path: v}`, `$eq`, `$ne`, `$in`, `$nin`) work
    /// and an index on the field serves them. **Leaks equality** between documents.
    pub fn deterministic_field(self, path: &str) -> Result<Encryption> {
        self.add_field(path, true)
    }

    /// Adds an older key used only to decrypt (after a rotation, or to read values
    /// written before one was interrupted).
    pub fn previous_key(self, key: &EncryptionKey) -> Result<Encryption> {
        let material = Arc::new(KeyMaterial::new(key)?);
        Ok(self.rebuild(|_, previous| previous.push(material)))
    }

    /// The id of the current key.
    pub fn current_key_id(&self) -> u32 {
        self.keys().current.id
    }

    fn keys(&self) -> std::sync::RwLockReadGuard<'_, Keys> {
        self.inner
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes `new_key` the current key (the previous current key is kept for reading),
    /// then re-encrypts every document of `collection` holding a value under another key,
    /// in another mode than declared, or not yet encrypted (a document written before
    /// the plugin was registered), [`ROTATION_BATCH`] documents per transaction. Safe to
    /// interrupt and to run again with the same key (it then only finishes the job).
    /// Writes made meanwhile use the new key. Each rewritten document is logged in the
    /// change log as a replacement.
    pub fn rotate_key<T: Document>(
        &self,
        collection: &Collection<T>,
        new_key: &EncryptionKey,
    ) -> Result<RotationReport> {
        let material = Arc::new(KeyMaterial::new(new_key)?);
        {
            let mut keys = self
                .inner
                .keys
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if keys.current.id != material.id {
                keys.previous.retain(|k| k.id != material.id);
                let old = std::mem::replace(&mut keys.current, material);
                keys.previous.insert(0, old);
            }
        }
        let mut report = RotationReport::default();
        let mut after = 0;
        loop {
            let mut scanned = 0;
            let (rewritten, last) = collection.rewrite_page(after, ROTATION_BATCH, |doc| {
                scanned += 1;
                self.needs_rewrite(doc)
            })?;
            report.scanned += scanned;
            report.rewritten += rewritten as u64;
            if scanned > 0 {
                report.batches += 1;
            }
            match last {
                Some(l) => after = l,
                None => return Ok(report),
            }
        }
    }

    /// Whether a stored document holds a value not under the current key and mode.
    fn needs_rewrite(&self, doc: &Value) -> Result<bool> {
        let current = self.current_key_id();
        let mut stale = false;
        for field in &self.inner.fields {
            visit(doc, &field.segments, &mut |v| {
                stale |= match classify(v) {
                    None => true,
                    Some(s) => {
                        s.key_id() != current
                            || (s.mode() == MODE_DETERMINISTIC) != field.deterministic
                    }
                };
            });
        }
        Ok(stale)
    }

    fn open(&self, field: &Field, sealed: &Sealed) -> Result<Value> {
        let keys = self.keys();
        let key = keys.find(sealed.key_id()).ok_or_else(|| {
            Error::Decryption(format!(
                "field '{}' was encrypted with key {:08x}, which is not configured (configured: {})",
                field.path,
                sealed.key_id(),
                keys.ids()
            ))
        })?;
        key.open(&field.path, sealed)
    }

    fn seal(&self, field: &Field, value: &Value) -> Result<Value> {
        let keys = self.keys();
        Ok(Value::String(keys.current.seal(
            &field.path,
            value,
            field.deterministic,
        )?))
    }

    /// The value a filter compares a deterministic field against.
    fn seal_operand(&self, field: &Field, value: &Value) -> Result<Value> {
        self.seal(field, value)
    }

    fn rewrite_filter(&self, filter: &mut Value) -> Result<()> {
        let Value::Object(map) = filter else {
            return Ok(());
        };
        for (key, cond) in map.iter_mut() {
            match key.as_str() {
                "$and" | "$or" | "$nor" => {
                    if let Value::Array(items) = cond {
                        for item in items {
                            self.rewrite_filter(item)?;
                        }
                    }
                }
                k if k.starts_with('$') => {}
                k => self.rewrite_condition(k, cond)?,
            }
        }
        Ok(())
    }

    fn rewrite_condition(&self, key: &str, cond: &mut Value) -> Result<()> {
        for field in &self.inner.fields {
            if key == field.path {
                return self.rewrite_encrypted(field, cond);
            }
            if key.starts_with(&format!("{}.", field.path)) {
                return Err(Error::filter(
                    key,
                    format!(
                        "'{key}' is inside encrypted field '{}' and cannot be queried",
                        field.path
                    ),
                ));
            }
            if field.path.starts_with(&format!("{key}.")) && compares_documents(cond) {
                return Err(Error::filter(
                    key,
                    format!(
                        "'{key}' holds encrypted field '{}': compare that field, not the document holding it",
                        field.path
                    ),
                ));
            }
        }
        Ok(())
    }

    fn rewrite_encrypted(&self, field: &Field, cond: &mut Value) -> Result<()> {
        let refuse = |what: &str| {
            let hint = if field.deterministic {
                "only equality ($eq, $ne, $in, $nin) and $exists"
            } else {
                "only $exists (declare it deterministic for equality queries)"
            };
            Err(Error::filter(
                field.path.clone(),
                format!(
                    "field '{}' is encrypted: {what} cannot be evaluated on it; {hint} can",
                    field.path
                ),
            ))
        };
        let is_operators =
            matches!(cond, Value::Object(m) if m.keys().next().is_some_and(|k| k.starts_with('$')));
        if !is_operators {
            if !field.deterministic {
                return refuse("equality");
            }
            *cond = if cond.is_null() {
                serde_json::json!({"$in": [self.seal_operand(field, &Value::Null)?, null]})
            } else {
                self.seal_operand(field, cond)?
            };
            return Ok(());
        }
        let Value::Object(ops) = cond else {
            return Ok(());
        };
        let mut out = Map::new();
        for (op, operand) in std::mem::take(ops) {
            let (op, operand) = match op.as_str() {
                "$exists" => (op, operand),
                "$eq" | "$ne" | "$in" | "$nin" if !field.deterministic => {
                    return refuse(&op);
                }
                "$eq" | "$ne" if operand.is_null() => {
                    let list = serde_json::json!([self.seal_operand(field, &Value::Null)?, null]);
                    let op = if op == "$eq" { "$in" } else { "$nin" };
                    (op.to_string(), list)
                }
                "$eq" | "$ne" => {
                    let sealed = self.seal_operand(field, &operand)?;
                    (op, sealed)
                }
                "$in" | "$nin" => {
                    let Value::Array(items) = operand else {
                        return Err(Error::filter(
                            field.path.clone(),
                            format!("{op} needs an array"),
                        ));
                    };
                    let mut sealed = Vec::with_capacity(items.len() + 1);
                    for item in &items {
                        if item.is_null() {
                            sealed.push(Value::Null);
                        }
                        sealed.push(self.seal_operand(field, item)?);
                    }
                    (op, Value::Array(sealed))
                }
                other => return refuse(other),
            };
            if out.contains_key(&op) {
                return Err(Error::filter(
                    field.path.clone(),
                    format!(
                        "combine the conditions on encrypted field '{}' with $and",
                        field.path
                    ),
                ));
            }
            out.insert(op, operand);
        }
        *ops = out;
        Ok(())
    }
}

/// Whether a condition on a document holding an encrypted field compares documents or
/// arrays (which would silently compare ciphertexts).
fn compares_documents(cond: &Value) -> bool {
    match cond {
        Value::Object(m) if m.keys().next().is_some_and(|k| k.starts_with('$')) => {
            m.iter().any(|(op, operand)| match op.as_str() {
                "$elemMatch" | "$all" => true,
                "$eq" | "$ne" => operand.is_object() || operand.is_array(),
                "$in" | "$nin" => operand
                    .as_array()
                    .is_some_and(|a| a.iter().any(|v| v.is_object() || v.is_array())),
                "$not" => compares_documents(operand),
                _ => false,
            })
        }
        Value::Object(_) | Value::Array(_) => true,
        _ => false,
    }
}

/// The value taken apart when it is in the encrypted format, `None` when it is plain.
fn classify(v: &Value) -> Option<Sealed> {
    match v {
        Value::String(s) => Sealed::parse(s),
        _ => None,
    }
}

/// Calls `f` on every value at `segments` (through arrays of documents).
fn visit(value: &Value, segments: &[String], f: &mut dyn FnMut(&Value)) {
    let Some((head, rest)) = segments.split_first() else {
        f(value);
        return;
    };
    match value {
        Value::Object(m) => {
            if let Some(v) = m.get(head) {
                visit(v, rest, f);
            }
        }
        Value::Array(items) => {
            for item in items.iter().filter(|v| v.is_object()) {
                visit(item, segments, f);
            }
        }
        _ => {}
    }
}

/// [`visit`] with mutable access; stops at the first error.
fn visit_mut(
    value: &mut Value,
    segments: &[String],
    f: &mut dyn FnMut(&mut Value) -> Result<()>,
) -> Result<()> {
    let Some((head, rest)) = segments.split_first() else {
        return f(value);
    };
    match value {
        Value::Object(m) => match m.get_mut(head) {
            Some(v) => visit_mut(v, rest, f),
            None => Ok(()),
        },
        Value::Array(items) => items
            .iter_mut()
            .filter(|v| v.is_object())
            .try_for_each(|v| visit_mut(v, segments, f)),
        _ => Ok(()),
    }
}

impl Encryption {
    /// An update that leaves a field's plaintext as it was keeps the stored ciphertext
    /// (a random nonce would otherwise make every rewrite a change). Only for a path
    /// through documents alone, where the old and new values are the same slot.
    fn keep_unchanged(&self, field: &Field, previous: &Value, doc: &mut Value) -> Result<()> {
        let (Some(old), Some(new)) = (
            slot(previous, &field.segments),
            slot_mut(doc, &field.segments),
        ) else {
            return Ok(());
        };
        if classify(new).is_some() {
            return Ok(());
        }
        let Some(sealed) = classify(old) else {
            return Ok(());
        };
        let fresh = sealed.key_id() == self.current_key_id()
            && (sealed.mode() == MODE_DETERMINISTIC) == field.deterministic;
        if fresh && crate::update::identical(&self.open(field, &sealed)?, new) {
            *new = old.clone();
        }
        Ok(())
    }
}

/// The value at `segments` when every step is a field of a document.
fn slot<'a>(value: &'a Value, segments: &[String]) -> Option<&'a Value> {
    segments
        .iter()
        .try_fold(value, |v, key| v.as_object().and_then(|m| m.get(key)))
}

/// [`slot`], mutable.
fn slot_mut<'a>(value: &'a mut Value, segments: &[String]) -> Option<&'a mut Value> {
    segments.iter().try_fold(value, |v, key| {
        v.as_object_mut().and_then(|m| m.get_mut(key))
    })
}

impl Plugin for Encryption {
    fn name(&self) -> &str {
        "encryption"
    }

    fn before_write(&self, ctx: &WriteContext<'_>, doc: &mut Value) -> Result<()> {
        for field in &self.inner.fields {
            if let Some(previous) = ctx.previous {
                self.keep_unchanged(field, previous, doc)?;
            }
            visit_mut(doc, &field.segments, &mut |v| {
                let keep = match classify(v) {
                    None => None,
                    Some(sealed) => {
                        // Already encrypted (a stored document being updated, an upsert
                        // seeded from a rewritten filter): it must decrypt under one of
                        // our keys, or the write is refused rather than double-encrypted.
                        let plain = self.open(field, &sealed)?;
                        let fresh = sealed.key_id() == self.current_key_id()
                            && (sealed.mode() == MODE_DETERMINISTIC) == field.deterministic;
                        if fresh {
                            return Ok(());
                        }
                        Some(plain)
                    }
                };
                *v = match keep {
                    Some(plain) => self.seal(field, &plain)?,
                    None => self.seal(field, v)?,
                };
                Ok(())
            })?;
        }
        Ok(())
    }

    fn before_read(&self, _collection: &str, filter: &mut Value) -> Result<()> {
        self.rewrite_filter(filter)
    }

    /// Decrypts the fields reached through documents only, the ones whose ciphertext
    /// `before_write` keeps when their plaintext comes back unchanged: `$inc`, `$push`
    /// and the other operators computing from a value see the plaintext. A field reached
    /// through an array stays sealed (an operator on it sees the ciphertext).
    fn reveal_for_update(&self, _collection: &str, doc: &mut Value) -> Result<()> {
        for field in &self.inner.fields {
            let Some(v) = slot_mut(doc, &field.segments) else {
                continue;
            };
            if let Some(sealed) = classify(v) {
                *v = self.open(field, &sealed)?;
            }
        }
        Ok(())
    }

    fn after_read(&self, _collection: &str, doc: &mut Value) -> Result<()> {
        for field in &self.inner.fields {
            visit_mut(doc, &field.segments, &mut |v| {
                let Value::String(s) = v else {
                    return Ok(());
                };
                if !s.starts_with(PREFIX) {
                    // Stored before the field was encrypted: `rotate_key` encrypts it.
                    return Ok(());
                }
                let sealed = Sealed::parse(s).ok_or_else(|| {
                    Error::Decryption(format!(
                        "field '{}' holds a malformed encrypted value",
                        field.path
                    ))
                })?;
                *v = self.open(field, &sealed)?;
                Ok(())
            })?;
        }
        Ok(())
    }
}
