//! The `Blobs` contract.

use crate::ports::blobs::{BlobError, BlobKey, Blobs};

fn key(text: &str) -> BlobKey {
    BlobKey::parse(text).expect("test keys are valid")
}

/// Every case; `prefix` keeps runs on a shared backend apart.
pub async fn run_all(blobs: &dyn Blobs, prefix: &str) {
    round_trips_bytes_exactly(blobs, prefix).await;
    links_fetch_the_same_bytes(blobs, prefix).await;
    replaces_deletes_and_lists_by_prefix(blobs, prefix).await;
    refuses_keys_that_escape(blobs).await;
}

pub async fn round_trips_bytes_exactly(blobs: &dyn Blobs, prefix: &str) {
    let k = key(&format!("{prefix}/bytes/all.bin"));
    let body: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    blobs
        .put(&k, body.clone(), "application/octet-stream")
        .await
        .unwrap();
    assert_eq!(
        blobs.get(&k).await.unwrap(),
        Some(body),
        "bytes come back unchanged"
    );
    assert_eq!(
        blobs
            .get(&key(&format!("{prefix}/bytes/none.bin")))
            .await
            .unwrap(),
        None
    );
}

/// A backend that signs links gives one that fetches the object's bytes exactly.
pub async fn links_fetch_the_same_bytes(blobs: &dyn Blobs, prefix: &str) {
    let k = key(&format!("{prefix}/links/audio.mp3"));
    let body: Vec<u8> = (0..=255u8).rev().cycle().take(30_000).collect();
    blobs.put(&k, body.clone(), "audio/mpeg").await.unwrap();
    let Some(url) = blobs
        .link(&k, std::time::Duration::from_secs(300))
        .await
        .unwrap()
    else {
        return;
    };
    crate::outbound::install_crypto_provider();
    let fetched = reqwest::get(&url).await.unwrap();
    assert!(fetched.status().is_success(), "{url}: {}", fetched.status());
    assert_eq!(fetched.bytes().await.unwrap().to_vec(), body);
}

pub async fn replaces_deletes_and_lists_by_prefix(blobs: &dyn Blobs, prefix: &str) {
    let a = key(&format!("{prefix}/list/a.txt"));
    let b = key(&format!("{prefix}/list/sub/b.txt"));
    let other = key(&format!("{prefix}/listed-not/c.txt"));
    blobs.put(&a, b"one".to_vec(), "text/plain").await.unwrap();
    blobs.put(&a, b"two".to_vec(), "text/plain").await.unwrap();
    blobs.put(&b, b"b".to_vec(), "text/plain").await.unwrap();
    blobs
        .put(&other, b"c".to_vec(), "text/plain")
        .await
        .unwrap();
    assert_eq!(
        blobs.get(&a).await.unwrap().as_deref(),
        Some(&b"two"[..]),
        "a put replaces"
    );
    assert_eq!(
        blobs.list(&format!("{prefix}/list/")).await.unwrap(),
        vec![a.clone(), b.clone()]
    );
    blobs.delete(&a).await.unwrap();
    blobs
        .delete(&a)
        .await
        .expect("deleting a missing blob succeeds");
    assert_eq!(blobs.get(&a).await.unwrap(), None);
    assert_eq!(
        blobs.list(&format!("{prefix}/list/")).await.unwrap(),
        vec![b]
    );
}

pub async fn refuses_keys_that_escape(_blobs: &dyn Blobs) {
    for bad in [
        "", "/abs", "a//b", "../x", "a/../b", "a/./b", ".hidden", "a/b/", "sp ace", "a\\b",
    ] {
        assert!(
            matches!(BlobKey::parse(bad), Err(BlobError::InvalidKey(_))),
            "{bad:?} is refused"
        );
    }
}
