//! `Blobs` on a folder. Writes go to a temporary file that is renamed into place, so a reader
//! never sees half an object. Content types are not kept: a folder has nowhere to put them,
//! and every key this product writes ends in an extension that names its type.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use crate::ports::blobs::{BlobError, BlobKey, Blobs};

pub struct FolderBlobs {
    root: PathBuf,
}

impl FolderBlobs {
    pub fn open(root: &Path) -> Result<Self, BlobError> {
        std::fs::create_dir_all(root).map_err(BlobError::backend)?;
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    fn path(&self, key: &BlobKey) -> PathBuf {
        // Safe: a BlobKey has no empty, `.` or `..` segment and no separator but `/`.
        self.root.join(key.as_str())
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, BlobError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(BlobError::backend)?
        .map_err(BlobError::backend)
}

#[async_trait]
impl Blobs for FolderBlobs {
    async fn put(
        &self,
        key: &BlobKey,
        body: Vec<u8>,
        _content_type: &str,
    ) -> Result<(), BlobError> {
        let path = self.path(key);
        blocking(move || {
            let dir = path.parent().expect("a blob path has a parent");
            std::fs::create_dir_all(dir)?;
            // Temporary names start with a dot, which no key segment may, so `list` skips them.
            let tmp = dir.join(format!(".tmp-{}", ulid::Ulid::generate()));
            std::fs::write(&tmp, body)?;
            std::fs::rename(&tmp, &path)
        })
        .await
    }

    async fn get(&self, key: &BlobKey) -> Result<Option<Vec<u8>>, BlobError> {
        let path = self.path(key);
        blocking(move || match std::fs::read(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        })
        .await
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        let path = self.path(key);
        blocking(move || match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<BlobKey>, BlobError> {
        let root = self.root.clone();
        let prefix = prefix.to_string();
        let mut keys = blocking(move || {
            let mut found = Vec::new();
            walk(&root, String::new(), &mut found)?;
            Ok(found)
        })
        .await?
        .into_iter()
        .filter(|key| key.starts_with(&prefix))
        .map(BlobKey::parse)
        .collect::<Result<Vec<_>, _>>()?;
        keys.sort();
        Ok(keys)
    }
}

fn walk(dir: &Path, relative: String, found: &mut Vec<String>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        other => other?,
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let key = if relative.is_empty() {
            name
        } else {
            format!("{relative}/{name}")
        };
        if entry.file_type()?.is_dir() {
            walk(&entry.path(), key, found)?;
        } else {
            found.push(key);
        }
    }
    Ok(())
}
