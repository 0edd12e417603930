//! The `Keys` contract: sealing round-trips, and only the same context opens.

use crate::ports::keys::{EncryptionContext, KeyError, Keys, open, seal};

pub async fn run_all(keys: &dyn Keys) {
    let tin = b"123-45-6789";
    let mine = EncryptionContext::new(&[("account", "A1")]);
    let sealed = seal(keys, tin, &mine).await.unwrap();
    assert!(
        !sealed.contains("6789"),
        "the sealed text does not show the plaintext"
    );
    assert_eq!(open(keys, &sealed, &mine).await.unwrap().expose(), tin);

    let again = seal(keys, tin, &mine).await.unwrap();
    assert_ne!(sealed, again, "every seal uses a fresh data key and nonce");

    for wrong in [
        EncryptionContext::new(&[("account", "A2")]),
        EncryptionContext::new(&[("account", "A1"), ("extra", "x")]),
        EncryptionContext::default(),
    ] {
        assert!(
            matches!(open(keys, &sealed, &wrong).await, Err(KeyError::Denied)),
            "{wrong:?} cannot open"
        );
    }

    let mut tampered = sealed.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert!(
        open(keys, &tampered, &mine).await.is_err(),
        "a tampered value does not open"
    );
    assert!(matches!(
        open(keys, "garbage", &mine).await,
        Err(KeyError::Malformed)
    ));
}
