//! The `Mailer` contract: what is sent can be read back, whole, by the backend's own means.

use crate::domain::email::EmailAddress;
use crate::ports::mailer::{Email, Mailer};

/// `sent` reads back every raw message the backend holds.
pub async fn run_all<F, Fut>(mailer: &dyn Mailer, sent: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
{
    let email = Email {
        to: EmailAddress::parse("ann@example.com").unwrap(),
        subject: "Your payout of $12.34 is on its way — ünïcödé".into(),
        text: "Hello Ann,\n\nA line of text.\n".into(),
    };
    let id = mailer.send(&email).await.unwrap();
    assert!(!id.is_empty());
    let messages = sent().await;
    let message = messages
        .iter()
        .find(|m| m.contains("ann@example.com"))
        .expect("the sent message can be read back");
    assert!(message.contains("Subject:"), "it has a subject header");
    assert!(message.contains("A line of text"), "it carries the text");
}
