//! `Blobs`: whole objects by key — call recordings, payout files, tax files, exports.
//!
//! Keys are validated once, by [`BlobKey::parse`], so that no adapter can be walked out of its
//! folder or bucket prefix by a key made of user input.

use async_trait::async_trait;

/// A key: `/`-separated segments of ASCII letters, digits, `.`, `_` and `-`, none empty and
/// none starting with a dot, at most 1,024 bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobKey(String);

impl BlobKey {
    pub fn parse(key: impl Into<String>) -> Result<Self, BlobError> {
        let key = key.into();
        let segment_ok = |s: &str| {
            !s.is_empty()
                && !s.starts_with('.')
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        };
        if key.len() > 1024 || !key.split('/').all(segment_ok) {
            return Err(BlobError::InvalidKey(key));
        }
        Ok(Self(key))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for BlobKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("invalid blob key {0:?}")]
    InvalidKey(String),
    #[error("blob backend failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl BlobError {
    pub fn backend(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Backend(Box::new(error))
    }
}

#[async_trait]
pub trait Blobs: Send + Sync {
    /// Stores the object whole, replacing any object with that key.
    async fn put(&self, key: &BlobKey, body: Vec<u8>, content_type: &str) -> Result<(), BlobError>;

    /// The object's bytes, if it exists.
    async fn get(&self, key: &BlobKey) -> Result<Option<Vec<u8>>, BlobError>;

    /// Removes the object; removing a missing object succeeds.
    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError>;

    /// Every key that starts with `prefix`, in byte order.
    async fn list(&self, prefix: &str) -> Result<Vec<BlobKey>, BlobError>;

    /// A URL that fetches the object, good for `valid_for`, where the backend can sign one
    /// (an S3 presigned GET): large objects then never pass through a function. `None` where it
    /// cannot, and the caller serves the bytes itself.
    async fn link(
        &self,
        _key: &BlobKey,
        _valid_for: std::time::Duration,
    ) -> Result<Option<String>, BlobError> {
        Ok(None)
    }
}
