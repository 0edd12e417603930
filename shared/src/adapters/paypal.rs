//! PayPal Payouts over its REST API: an OAuth client-credentials token, one batch per payout
//! run (`POST /v1/payments/payouts`) and the batch's item statuses
//! (`GET /v1/payments/payouts/{batch_id}`). The run's id is the batch's `sender_batch_id`
//! (PayPal refuses a repeat within 30 days) and its `PayPal-Request-Id`, so a retry after a
//! timeout gets the first attempt's answer instead of paying twice.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use crate::domain::money::Money;
use crate::secret::Secret;

#[derive(Clone)]
pub struct PaypalSettings {
    /// `https://api-m.paypal.com` (live) or `https://api-m.sandbox.paypal.com`.
    pub base_url: String,
    pub client_id: String,
    pub secret: Secret<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PaypalError {
    #[error("PayPal could not be reached: {0}")]
    Unreachable(String),
    #[error("PayPal answered HTTP {status}: {name}")]
    Refused { status: u16, name: String },
    #[error("PayPal's answer did not parse: {0}")]
    Malformed(String),
    /// A value over PayPal's documented limit, refused before anything is sent.
    #[error("{field} is longer than PayPal's {limit} characters")]
    TooLong { field: &'static str, limit: usize },
}

/// PayPal's documented limit on a `sender_item_id`.
pub const SENDER_ITEM_ID_MAX: usize = 63;
/// PayPal's documented limit on a `sender_batch_id`.
pub const SENDER_BATCH_ID_MAX: usize = 256;

/// The `sender_item_id` PayPal gets for our payout `id`: the id itself when it fits (a daily
/// run's `{date}:{affiliate}:{currency}`, 41 characters), else `h` and 40 hex digits of its
/// SHA-256 (a retry run's id is longer). Deterministic, so a batch's items map back to our
/// payouts.
pub fn sender_item_id(payout: &str) -> String {
    if payout.len() <= SENDER_ITEM_ID_MAX {
        return payout.to_string();
    }
    let digest = <sha2::Sha256 as sha2::Digest>::digest(payout.as_bytes());
    format!("h{}", &hex::encode(digest)[..40])
}

/// One payment in a batch.
pub struct Item<'a> {
    /// Our payout id (sent as [`sender_item_id`] of it).
    pub id: &'a str,
    pub receiver: &'a str,
    pub amount: Money,
}

/// An item's state as PayPal reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemStatus {
    pub sender_item_id: String,
    pub payout_item_id: String,
    /// SUCCESS, FAILED, PENDING, UNCLAIMED, RETURNED, ONHOLD, BLOCKED, REFUNDED, REVERSED.
    pub transaction_status: String,
    pub error: Option<String>,
}

pub struct Paypal {
    settings: PaypalSettings,
    client: reqwest::Client,
}

/// How long one PayPal call may take before it is retried.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// Calls per request, the first included.
const ATTEMPTS: u32 = 3;

#[derive(Deserialize)]
struct Token {
    access_token: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    name: String,
}

impl Paypal {
    pub fn new(settings: PaypalSettings) -> Self {
        Self::with_timeout(settings, CALL_TIMEOUT)
    }

    /// Like [`Paypal::new`], with another call timeout (tests of the retry use a short one).
    pub fn with_timeout(settings: PaypalSettings, timeout: Duration) -> Self {
        crate::outbound::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("LeadsRefer/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client builds");
        Self { settings, client }
    }

    async fn token(&self) -> Result<String, PaypalError> {
        let response = self
            .client
            .post(format!("{}/v1/oauth2/token", self.settings.base_url))
            .basic_auth(
                &self.settings.client_id,
                Some(self.settings.secret.expose()),
            )
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await
            .map_err(|e| PaypalError::Unreachable(without_url(e)))?;
        let token: Token = parse(response).await?;
        Ok(token.access_token)
    }

    /// Sends the batch `batch_id` (our run's id); answers PayPal's `payout_batch_id`. Timeouts
    /// and 5xx answers are retried with the same request id, which PayPal answers with the
    /// first attempt's result.
    pub async fn create_batch(
        &self,
        batch_id: &str,
        items: &[Item<'_>],
    ) -> Result<String, PaypalError> {
        if batch_id.len() > SENDER_BATCH_ID_MAX {
            return Err(PaypalError::TooLong {
                field: "sender_batch_id",
                limit: SENDER_BATCH_ID_MAX,
            });
        }
        let body = json!({
            "sender_batch_header": {
                "sender_batch_id": batch_id,
                "email_subject": "You have a payout from LeadsRefer",
                "email_message": "Your affiliate earnings are on their way.",
            },
            "items": items.iter().map(|item| json!({
                "recipient_type": "EMAIL",
                "receiver": item.receiver,
                "sender_item_id": sender_item_id(item.id),
                "amount": {
                    "value": item.amount.to_decimal(),
                    "currency": item.amount.currency.code(),
                },
            })).collect::<Vec<_>>(),
        });
        let mut last = PaypalError::Unreachable("not tried".into());
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
            let token = self.token().await?;
            let sent = self
                .client
                .post(format!("{}/v1/payments/payouts", self.settings.base_url))
                .bearer_auth(token)
                .header("PayPal-Request-Id", batch_id)
                .json(&body)
                .send()
                .await;
            match sent {
                Err(error) => last = PaypalError::Unreachable(without_url(error)),
                Ok(response) if response.status().is_server_error() => {
                    last = refused(response).await;
                }
                Ok(response) => {
                    let created: serde_json::Value = parse(response).await?;
                    return created["batch_header"]["payout_batch_id"]
                        .as_str()
                        .map(str::to_string)
                        .ok_or_else(|| PaypalError::Malformed("no payout_batch_id".into()));
                }
            }
        }
        Err(last)
    }

    /// The batch's items as they stand.
    pub async fn batch_items(&self, payout_batch_id: &str) -> Result<Vec<ItemStatus>, PaypalError> {
        let token = self.token().await?;
        let response = self
            .client
            .get(format!(
                "{}/v1/payments/payouts/{payout_batch_id}",
                self.settings.base_url
            ))
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| PaypalError::Unreachable(without_url(e)))?;
        let batch: serde_json::Value = parse(response).await?;
        let items = batch["items"]
            .as_array()
            .ok_or_else(|| PaypalError::Malformed("no items".into()))?;
        items
            .iter()
            .map(|item| {
                let text = |value: &serde_json::Value| value.as_str().map(str::to_string);
                Ok(ItemStatus {
                    sender_item_id: text(&item["payout_item"]["sender_item_id"])
                        .ok_or_else(|| PaypalError::Malformed("no sender_item_id".into()))?,
                    payout_item_id: text(&item["payout_item_id"]).unwrap_or_default(),
                    transaction_status: text(&item["transaction_status"])
                        .ok_or_else(|| PaypalError::Malformed("no transaction_status".into()))?,
                    error: text(&item["errors"]["name"]),
                })
            })
            .collect()
    }
}

/// A transport error without its URL (ours, but errors go to logs).
fn without_url(error: reqwest::Error) -> String {
    error.without_url().to_string()
}

async fn refused(response: reqwest::Response) -> PaypalError {
    let status = response.status().as_u16();
    let name = response
        .json::<ErrorBody>()
        .await
        .map(|body| body.name)
        .unwrap_or_default();
    PaypalError::Refused { status, name }
}

async fn parse<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
) -> Result<T, PaypalError> {
    if !response.status().is_success() {
        return Err(refused(response).await);
    }
    response
        .json()
        .await
        .map_err(|e| PaypalError::Malformed(without_url(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_item_ids_keep_to_paypals_limit() {
        let fits = "x".repeat(SENDER_ITEM_ID_MAX);
        assert_eq!(sender_item_id(&fits), fits, "63 characters go as they are");
        let retry = "2026-12-03-retry-01KB4ZH8QW6B7XG9Y3T5R2M1N0:01KB4ZH8QW6B7XG9Y3T5R2M1N0:USD";
        assert_eq!(retry.len(), 74);
        let sent = sender_item_id(retry);
        assert!(
            sent.len() <= SENDER_ITEM_ID_MAX && sent.starts_with('h'),
            "{sent}"
        );
        assert_eq!(sent, sender_item_id(retry), "the same id every time");
        assert_ne!(sent, sender_item_id(&format!("{retry}x")));
        let long = "y".repeat(SENDER_ITEM_ID_MAX + 1);
        assert_eq!(sender_item_id(&long).len(), 41);
    }
}
