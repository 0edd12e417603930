//! `Keys` with a local master key: 32 random bytes in a file made on first run (mode 0600),
//! kept apart from the database. Data keys are wrapped with AES-256-GCM under the master key,
//! with the encryption context as associated data — the same contract as KMS.

use std::io::Write as _;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;

use crate::ports::keys::{DataKey, EncryptionContext, KeyError, Keys};
use crate::secret::Secret;

pub struct LocalKeys {
    master: Aes256Gcm,
}

impl LocalKeys {
    /// Reads the key file, creating it with a new random key if it does not exist.
    pub fn open(path: &Path) -> Result<Self, KeyError> {
        let bytes = read_or_create_key_file(path).map_err(KeyError::backend)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| {
            KeyError::Backend(format!("{} must hold exactly 32 bytes", path.display()).into())
        })?;
        Ok(Self {
            master: Aes256Gcm::new(&key.into()),
        })
    }
}

/// Shared by every local key file (the master key here, the IP-hash key elsewhere).
pub fn read_or_create_key_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            let key: [u8; 32] = rand::random();
            file.write_all(&key)?;
            file.sync_all()?;
            Ok(key.to_vec())
        }
        // Another process (or an earlier run) made it first: use that one.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read(path),
        Err(e) => Err(e),
    }
}

#[async_trait]
impl Keys for LocalKeys {
    async fn generate_data_key(&self, context: &EncryptionContext) -> Result<DataKey, KeyError> {
        let plaintext: [u8; 32] = rand::random();
        let nonce: [u8; 12] = rand::random();
        let aad = context.canonical_bytes();
        let sealed = self
            .master
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| KeyError::Malformed)?;
        let mut wrapped = nonce.to_vec();
        wrapped.extend_from_slice(&sealed);
        Ok(DataKey {
            plaintext: Secret::new(plaintext),
            wrapped,
        })
    }

    async fn unwrap_data_key(
        &self,
        wrapped: &[u8],
        context: &EncryptionContext,
    ) -> Result<Secret<[u8; 32]>, KeyError> {
        if wrapped.len() < 12 {
            return Err(KeyError::Malformed);
        }
        let (nonce, sealed) = wrapped.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| KeyError::Malformed)?;
        let aad = context.canonical_bytes();
        let plaintext = self
            .master
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| KeyError::Denied)?;
        let key: [u8; 32] = plaintext.try_into().map_err(|_| KeyError::Malformed)?;
        Ok(Secret::new(key))
    }
}
