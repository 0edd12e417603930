//! `Keys`: envelope encryption under a master key that never leaves its keeper (KMS in
//! production, a key file locally), always bound to an encryption context.
//!
//! Adapters only make and unwrap data keys (KMS `GenerateDataKey` / `Decrypt`); the sealing of
//! the data itself is written once, here, in [`seal`] and [`open`]. The context (for a TIN or an
//! account number: the account id) is bound twice: into the wrapped data key by the adapter, and
//! into the data as AES-GCM associated data, so that a sealed value copied onto another account
//! cannot be opened there.

use std::collections::BTreeMap;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

use crate::secret::Secret;

/// Name-value pairs a sealed value is bound to; the same pairs must be given to open it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EncryptionContext(pub BTreeMap<String, String>);

impl EncryptionContext {
    pub fn new(pairs: &[(&str, &str)]) -> Self {
        Self(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// A canonical byte form: sorted pairs, each length-prefixed, so no two contexts collide.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, value) in &self.0 {
            for part in [name, value] {
                out.extend_from_slice(&(part.len() as u32).to_be_bytes());
                out.extend_from_slice(part.as_bytes());
            }
        }
        out
    }
}

/// A fresh 256-bit data key, in clear (to use once, then drop) and wrapped (to store).
pub struct DataKey {
    pub plaintext: Secret<[u8; 32]>,
    pub wrapped: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The wrong context, a tampered value, or another master key.
    #[error("the value cannot be opened with this key and context")]
    Denied,
    #[error("the sealed value is malformed")]
    Malformed,
    #[error("key backend failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl KeyError {
    pub fn backend(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Backend(Box::new(error))
    }
}

#[async_trait]
pub trait Keys: Send + Sync {
    async fn generate_data_key(&self, context: &EncryptionContext) -> Result<DataKey, KeyError>;

    async fn unwrap_data_key(
        &self,
        wrapped: &[u8],
        context: &EncryptionContext,
    ) -> Result<Secret<[u8; 32]>, KeyError>;
}

const FORMAT: &str = "env1";

/// Encrypts `plaintext` under a fresh data key; the result is text, safe to store anywhere.
pub async fn seal(
    keys: &dyn Keys,
    plaintext: &[u8],
    context: &EncryptionContext,
) -> Result<String, KeyError> {
    let data_key = keys.generate_data_key(context).await?;
    let nonce_bytes: [u8; 12] = rand::random();
    let cipher = Aes256Gcm::new(data_key.plaintext.expose().into());
    let aad = context.canonical_bytes();
    let ciphertext = cipher
        .encrypt(
            &Nonce::from(nonce_bytes),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| KeyError::Malformed)?;
    Ok(format!(
        "{FORMAT}.{}.{}.{}",
        B64.encode(&data_key.wrapped),
        B64.encode(nonce_bytes),
        B64.encode(ciphertext)
    ))
}

/// Decrypts what [`seal`] made, given the same context.
pub async fn open(
    keys: &dyn Keys,
    sealed: &str,
    context: &EncryptionContext,
) -> Result<Secret<Vec<u8>>, KeyError> {
    let mut parts = sealed.split('.');
    let (Some(FORMAT), Some(wrapped), Some(nonce), Some(ciphertext), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(KeyError::Malformed);
    };
    let decode = |s: &str| B64.decode(s).map_err(|_| KeyError::Malformed);
    let nonce: [u8; 12] = decode(nonce)?.try_into().map_err(|_| KeyError::Malformed)?;
    let data_key = keys.unwrap_data_key(&decode(wrapped)?, context).await?;
    let cipher = Aes256Gcm::new(data_key.expose().into());
    let aad = context.canonical_bytes();
    cipher
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: &decode(ciphertext)?,
                aad: &aad,
            },
        )
        .map(Secret::new)
        .map_err(|_| KeyError::Denied)
}
