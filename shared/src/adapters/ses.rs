//! `Mailer` on SES (aws-sdk-sesv2), sending the same RFC 5322 message the outbox writes, as a
//! raw message. The sender must be a verified identity (and, in the SES sandbox, so must every
//! recipient: 200 messages a day, 1 a second).

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{Destination, EmailContent, RawMessage};

use crate::domain::email::EmailAddress;
use crate::ports::Clock;
use crate::ports::mailer::{Email, MailError, Mailer, render};

pub struct SesMailer {
    client: Client,
    from: EmailAddress,
    clock: Arc<dyn Clock>,
}

impl SesMailer {
    pub fn new(client: Client, from: EmailAddress, clock: Arc<dyn Clock>) -> Self {
        Self {
            client,
            from,
            clock,
        }
    }
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send(&self, email: &Email) -> Result<String, MailError> {
        let domain = self
            .from
            .as_str()
            .rsplit('@')
            .next()
            .unwrap_or("leadsrefer.local");
        let message_id = format!("{}@{domain}", self.clock.new_id());
        let raw = render(email, &self.from, &message_id, self.clock.now().as_second());
        let raw = RawMessage::builder()
            .data(Blob::new(raw))
            .build()
            .map_err(|e| MailError::Invalid(e.to_string()))?;
        let output = self
            .client
            .send_email()
            .from_email_address(self.from.as_str())
            .destination(
                Destination::builder()
                    .to_addresses(email.to.as_str())
                    .build(),
            )
            .content(EmailContent::builder().raw(raw).build())
            .send()
            .await
            .map_err(MailError::backend)?;
        Ok(output.message_id.unwrap_or(message_id))
    }

    /// SES keeps no copy of what it sent that this account could delete (what reached the
    /// recipient is theirs).
    async fn forget(&self, _to: &EmailAddress) -> Result<usize, MailError> {
        Ok(0)
    }
}
