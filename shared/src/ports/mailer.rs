//! `Mailer`: transactional mail. Messages are plain text; the adapter adds the sender.

use async_trait::async_trait;

use crate::domain::email::EmailAddress;

/// One message to one recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email {
    pub to: EmailAddress,
    pub subject: String,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("the mail could not be built: {0}")]
    Invalid(String),
    #[error("mail backend failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl MailError {
    pub fn backend(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Backend(Box::new(error))
    }
}

#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends the message and returns the backend's id for it.
    async fn send(&self, email: &Email) -> Result<String, MailError>;

    /// Deletes every copy this adapter keeps of mail sent to `to` (for erasure); answers how
    /// many messages went. A backend that keeps none (SES) has nothing to delete.
    async fn forget(&self, to: &EmailAddress) -> Result<usize, MailError>;
}

/// Renders a message as RFC 5322 text, the one format every adapter hands on
/// (the outbox writes it to a file, SES takes it as a raw message).
pub fn render(email: &Email, from: &EmailAddress, message_id: &str, date_epoch: i64) -> Vec<u8> {
    mail_builder::MessageBuilder::new()
        .from(from.as_str())
        .to(email.to.as_str())
        .subject(email.subject.as_str())
        .message_id(message_id)
        .date(mail_builder::headers::date::Date::new(date_epoch))
        .text_body(email.text.as_str())
        .write_to_vec()
        .expect("writing to a Vec cannot fail")
}
