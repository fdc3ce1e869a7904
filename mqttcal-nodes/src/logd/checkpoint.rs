//! Signed checkpoints: every so many entries, the entry's hash signed (HMAC-SHA-256) with a
//! key kept outside the database. A chain rewritten end to end, or cut below a checkpoint,
//! no longer matches what was signed.

use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use mqttcal_store::Checkpoint;

type HmacSha256 = Hmac<Sha256>;

/// Why a checkpoint key cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Too short to be a key worth the name.
    #[error("a checkpoint key needs at least 32 bytes, this one has {0}")]
    TooShort(usize),
    /// Its file could not be read.
    #[error("cannot read the checkpoint key {}", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Its file holds a key that cannot be used.
    #[error("the checkpoint key in {} cannot be used", path.display())]
    Unusable {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: Box<KeyError>,
    },
}

/// The key that signs checkpoints (at least 32 bytes; keep it outside the database).
#[derive(Clone)]
pub struct CheckpointKey {
    key: Vec<u8>,
    id: String,
}

impl std::fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CheckpointKey({})", self.id)
    }
}

impl CheckpointKey {
    /// A key from its bytes.
    pub fn new(key: Vec<u8>) -> Result<Self, KeyError> {
        if key.len() < 32 {
            return Err(KeyError::TooShort(key.len()));
        }
        let id = mqttcal_messages::sha256_hex(&key)[..16].to_owned();
        Ok(Self { key, id })
    }

    /// A key read from a file (its bytes, surrounding whitespace removed).
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let bytes = std::fs::read(path).map_err(|source| KeyError::Read {
            path: path.to_owned(),
            source,
        })?;
        let text = bytes.trim_ascii().to_vec();
        Self::new(text).map_err(|e| KeyError::Unusable {
            path: path.to_owned(),
            source: Box::new(e),
        })
    }

    /// The key in `path`, made there first if the file does not exist: 32 random bytes
    /// as 64 hex digits, the file readable by its owner only. The key stays outside the
    /// database; back it up apart from it.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("logbook.key");
    /// let made = mqttcal_nodes::logd::CheckpointKey::load_or_create(&path).unwrap();
    /// let again = mqttcal_nodes::logd::CheckpointKey::load_or_create(&path).unwrap();
    /// assert_eq!(made.id(), again.id());
    /// ```
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        if !path.exists() {
            let mut key = [0u8; 32];
            getrandom::fill(&mut key).map_err(|e| KeyError::Read {
                path: path.to_owned(),
                source: std::io::Error::other(e.to_string()),
            })?;
            write_private(path, mqttcal_messages::hex(&key).as_bytes()).map_err(|source| {
                KeyError::Read {
                    path: path.to_owned(),
                    source,
                }
            })?;
        }
        Self::from_file(path)
    }

    /// Which key this is: the first 16 hex digits of its SHA-256.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn mac(&self, seq: i64, hash: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(format!("mqttcal logbook checkpoint\n{seq}\n{hash}").as_bytes());
        mac
    }

    /// Signs the entry `seq` whose hash is `hash`.
    pub fn sign(&self, seq: i64, hash: &str, at: f64) -> Checkpoint {
        Checkpoint {
            seq,
            hash: hash.to_owned(),
            key_id: self.id.clone(),
            signature: mqttcal_messages::hex(&self.mac(seq, hash).finalize().into_bytes()),
            at,
        }
    }

    /// True if this key signed `cp`.
    pub fn verifies(&self, cp: &Checkpoint) -> bool {
        let Some(sig) = unhex(&cp.signature) else {
            return false;
        };
        cp.key_id == self.id && self.mac(cp.seq, &cp.hash).verify_slice(&sig).is_ok()
    }
}

/// Creates `path` with `bytes`, readable and writable by its owner only; fails if it
/// exists.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_verifies_with_its_key_only() {
        let k = CheckpointKey::new(vec![7; 32]).unwrap();
        let cp = k.sign(100, "ab", 1.0);
        assert!(k.verifies(&cp));
        let mut forged = cp.clone();
        forged.hash = "ac".into();
        assert!(!k.verifies(&forged));
        let other = CheckpointKey::new(vec![8; 32]).unwrap();
        assert!(!other.verifies(&cp));
        assert!(matches!(
            CheckpointKey::new(vec![1; 31]),
            Err(KeyError::TooShort(31))
        ));
    }
}
