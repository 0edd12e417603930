//! Accounts, sessions, one-time tokens, API keys, sign-in throttles and the audit log.
//! Credentials are stored only as SHA-256 hashes of their random values; the values themselves
//! exist only in the caller's hands.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Store, with_index};
use crate::domain::accounts::{Account, AccountId, AccountStatus};
use crate::domain::email::EmailAddress;
use crate::ports::table::{
    Cond, Cursor, EXPIRES_AT, Item, Key, Query, TableError, Update, Write, from_item, to_item,
};

pub(super) fn account_key(id: AccountId) -> Key {
    Key::new(format!("ACCT#{id}"), "ACCT")
}
pub(super) fn email_key(email: &EmailAddress) -> Key {
    Key::new(format!("EMAIL#{}", email.as_str()), "EMAIL")
}
fn session_key(hash: &str) -> Key {
    Key::new(format!("SESSION#{hash}"), "SESSION")
}
fn token_key(hash: &str) -> Key {
    Key::new(format!("TOKEN#{hash}"), "TOKEN")
}
fn api_key_key(hash: &str) -> Key {
    Key::new(format!("APIKEY#{hash}"), "APIKEY")
}
fn throttle_key(scope: &str, hash: &str) -> Key {
    Key::new(format!("THROTTLE#{scope}#{hash}"), "THROTTLE")
}

/// A signed-in session. `expires_at` (the TTL) is the sooner of the idle and absolute expiry.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionRecord {
    pub account_id: AccountId,
    /// The synchronizer token every state-changing request of this session must echo.
    pub csrf_token: String,
    pub created_at: Timestamp,
    pub refreshed_at: Timestamp,
    pub absolute_expires_at: i64,
    pub expires_at: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenPurpose {
    VerifyEmail,
    ResetPassword,
}

#[derive(Serialize, Deserialize)]
struct TokenRecord {
    purpose: TokenPurpose,
    account_id: AccountId,
    expires_at: i64,
}

/// An API key as stored: never the key itself.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiKeyRecord {
    pub id: String,
    #[schema(value_type = String)]
    pub account_id: AccountId,
    pub name: String,
    /// The key's last four characters, to tell keys apart.
    pub last4: String,
    #[schema(value_type = String)]
    pub created_at: Timestamp,
}

/// Sign-in attempts counted in the current window (those that failed, and those whose password
/// is being checked), and when the window ends: at its limit, sign-in is locked until then.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Throttle {
    #[serde(default)]
    pub failures: i64,
    /// Epoch seconds: the window ends (the item expires).
    #[serde(default)]
    pub expires_at: Option<i64>,
}

/// A sign-in attempt, as [`Store::take_attempt`] counted it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// Counted; whether it was the last the limit allows.
    Counted { last: bool },
    /// Not counted: the limit is reached, and sign-in is locked until then (epoch seconds).
    Locked { until: i64 },
}

/// One audited event: who did what, when, from where (pseudonymised).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEvent {
    pub id: String,
    #[schema(value_type = String)]
    pub at: Timestamp,
    #[schema(value_type = Option<String>)]
    pub actor: Option<AccountId>,
    /// What happened, such as `sign_in.failed` or `offer.payout_changed`.
    pub action: String,
    /// What it happened to, such as an account or offer id.
    pub target: Option<String>,
    /// The caller's network prefix (/24 or /48), never the address.
    pub client_prefix: Option<String>,
    /// A keyed hash of the caller's address.
    pub client_hash: Option<String>,
    /// Non-secret details.
    #[serde(default)]
    pub detail: Option<String>,
}

impl Store {
    /// Creates an account unless its email is taken: one account per mailbox, atomically.
    /// A taken email is `Conflict { write: 0 }`.
    pub async fn create_account(&self, account: &Account) -> Result<(), TableError> {
        let mut claim = Item::new();
        claim.insert("account_id".into(), Value::String(account.id.to_string()));
        let record = with_index(
            to_item(account, &account_key(account.id))?,
            "ACCTS".into(),
            account.id.to_string(),
        );
        self.table
            .transact(vec![
                Write::Put {
                    item: to_item(&claim, &email_key(&account.email))?,
                    cond: Cond::NotExists,
                },
                Write::Put {
                    item: record,
                    cond: Cond::NotExists,
                },
            ])
            .await
    }

    /// Writes back a changed account (never its email: that is the key of its claim).
    pub async fn save_account(&self, account: &Account) -> Result<(), TableError> {
        let record = with_index(
            to_item(account, &account_key(account.id))?,
            "ACCTS".into(),
            account.id.to_string(),
        );
        self.table.put(record, Cond::Exists).await
    }

    /// Changes an account's name only, if its status is still `status` (a suspension or an
    /// erasure in between wins): `Ok(None)` if it changed.
    pub async fn rename_account(
        &self,
        id: AccountId,
        name: &str,
        status: AccountStatus,
    ) -> Result<Option<Account>, TableError> {
        let status =
            serde_json::to_value(status).map_err(|e| TableError::Invalid(e.to_string()))?;
        match self
            .table
            .update(
                &account_key(id),
                Update::default().set("name", name),
                Cond::Equals("status".into(), status),
            )
            .await
        {
            Ok(item) => Ok(Some(from_item(item)?)),
            Err(TableError::Conflict { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes an account's record (the retention job, after an erasure and seven years).
    pub async fn delete_account(&self, id: AccountId) -> Result<(), TableError> {
        self.table
            .delete(&account_key(id), Cond::Always)
            .await
            .map(|_| ())
    }

    pub async fn account(&self, id: AccountId) -> Result<Option<Account>, TableError> {
        self.get(&account_key(id)).await
    }

    pub async fn account_by_email(
        &self,
        email: &EmailAddress,
    ) -> Result<Option<Account>, TableError> {
        let Some(claim) = self.table.get(&email_key(email)).await? else {
            return Ok(None);
        };
        match claim
            .get("account_id")
            .and_then(Value::as_str)
            .and_then(AccountId::parse)
        {
            Some(id) => self.account(id).await,
            None => Err(TableError::Invalid("email claim without account".into())),
        }
    }

    /// Every account, oldest first (for jobs that go through them all).
    pub async fn all_accounts(&self) -> Result<Vec<Account>, TableError> {
        self.query_all(Query::gsi1("ACCTS")).await
    }

    /// Every account, oldest first, one page at a time.
    pub async fn accounts(
        &self,
        after: Option<Cursor>,
        limit: usize,
    ) -> Result<(Vec<Account>, Option<Cursor>), TableError> {
        self.page(Query::gsi1("ACCTS").limit(limit).after(after))
            .await
    }

    pub async fn create_session(
        &self,
        hash: &str,
        session: &SessionRecord,
    ) -> Result<(), TableError> {
        let item = with_index(
            to_item(session, &session_key(hash))?,
            format!("ACCT#{}#SESSIONS", session.account_id),
            hash.to_string(),
        );
        self.create(item).await
    }

    pub async fn session(&self, hash: &str) -> Result<Option<SessionRecord>, TableError> {
        self.get(&session_key(hash)).await
    }

    /// Slides a session's idle expiry; fails if it has been revoked meanwhile.
    pub async fn refresh_session(
        &self,
        hash: &str,
        now: Timestamp,
        expires_at: i64,
    ) -> Result<(), TableError> {
        let update = Update::default()
            .set(
                "refreshed_at",
                serde_json::to_value(now).map_err(|e| TableError::Invalid(e.to_string()))?,
            )
            .set(EXPIRES_AT, expires_at);
        self.table
            .update(&session_key(hash), update, Cond::Exists)
            .await
            .map(drop)
    }

    pub async fn delete_session(&self, hash: &str) -> Result<(), TableError> {
        self.table
            .delete(&session_key(hash), Cond::Always)
            .await
            .map(drop)
    }

    /// Revokes every session of an account; returns how many.
    pub async fn delete_sessions_of(&self, account: AccountId) -> Result<usize, TableError> {
        self.delete_indexed(format!("ACCT#{account}#SESSIONS"))
            .await
    }

    /// Deletes the account's one-time tokens (verification, password reset): erasure leaves
    /// none behind to expire.
    pub async fn delete_tokens_of(&self, account: AccountId) -> Result<usize, TableError> {
        self.delete_indexed(format!("ACCT#{account}#TOKENS")).await
    }

    /// Deletes every item under one secondary-index partition; answers how many.
    async fn delete_indexed(&self, gsi1pk: String) -> Result<usize, TableError> {
        let items: Vec<Item> = self.query_all(Query::gsi1(gsi1pk)).await?;
        for item in &items {
            self.table.delete(&Key::of(item)?, Cond::Always).await?;
        }
        Ok(items.len())
    }

    pub async fn create_token(
        &self,
        hash: &str,
        purpose: TokenPurpose,
        account_id: AccountId,
        expires_at: i64,
    ) -> Result<(), TableError> {
        let item = with_index(
            to_item(
                &TokenRecord {
                    purpose,
                    account_id,
                    expires_at,
                },
                &token_key(hash),
            )?,
            format!("ACCT#{account_id}#TOKENS"),
            hash.to_string(),
        );
        self.create(item).await
    }

    /// Uses up a one-time token: the delete is the single use, so two racing requests cannot
    /// both succeed. Answers its account if it was live and for `purpose`.
    pub async fn consume_token(
        &self,
        hash: &str,
        purpose: TokenPurpose,
    ) -> Result<Option<AccountId>, TableError> {
        match self.table.delete(&token_key(hash), Cond::Exists).await {
            Ok(Some(item)) => {
                let token: TokenRecord = from_item(item)?;
                Ok((token.purpose == purpose).then_some(token.account_id))
            }
            Ok(None) | Err(TableError::Conflict { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn create_api_key(&self, hash: &str, key: &ApiKeyRecord) -> Result<(), TableError> {
        let item = with_index(
            to_item(key, &api_key_key(hash))?,
            format!("ACCT#{}#APIKEYS", key.account_id),
            key.id.clone(),
        );
        self.create(item).await
    }

    pub async fn api_key(&self, hash: &str) -> Result<Option<ApiKeyRecord>, TableError> {
        self.get(&api_key_key(hash)).await
    }

    pub async fn api_keys_of(&self, account: AccountId) -> Result<Vec<ApiKeyRecord>, TableError> {
        self.query_all(Query::gsi1(format!("ACCT#{account}#APIKEYS")))
            .await
    }

    /// Revokes one of an account's API keys; false if it has no such key.
    pub async fn delete_api_key(&self, account: AccountId, id: &str) -> Result<bool, TableError> {
        let items: Vec<Item> = self
            .query_all(Query::gsi1(format!("ACCT#{account}#APIKEYS")))
            .await?;
        match items
            .iter()
            .find(|item| item.get("id").and_then(Value::as_str) == Some(id))
        {
            Some(item) => self
                .table
                .delete(&Key::of(item)?, Cond::Always)
                .await
                .map(|_| true),
            None => Ok(false),
        }
    }

    pub async fn throttle(&self, scope: &str, hash: &str) -> Result<Throttle, TableError> {
        Ok(self
            .get(&throttle_key(scope, hash))
            .await?
            .unwrap_or_default())
    }

    /// Counts one sign-in attempt atomically, before its password is checked, if fewer than
    /// `limit` are counted. The window restarts `window` seconds after each attempt counted.
    pub async fn take_attempt(
        &self,
        scope: &str,
        hash: &str,
        limit: i64,
        now: i64,
        window: i64,
    ) -> Result<Attempt, TableError> {
        let update = Update::default()
            .add("failures", 1)
            .set(EXPIRES_AT, now + window);
        let key = throttle_key(scope, hash);
        match self
            .table
            .update(&key, update, Cond::Below("failures".into(), limit))
            .await
        {
            Ok(item) => Ok(Attempt::Counted {
                last: from_item::<Throttle>(item)?.failures >= limit,
            }),
            Err(TableError::Conflict { existing, .. }) => Ok(Attempt::Locked {
                until: existing
                    .and_then(|item| item.get(EXPIRES_AT).and_then(Value::as_i64))
                    .unwrap_or(now + window),
            }),
            Err(other) => Err(other),
        }
    }

    /// Uncounts an attempt [taken](Store::take_attempt) that did not fail: a sign-in that
    /// succeeded, or one refused before its password was checked. Nothing if the count is gone.
    pub async fn return_attempt(&self, scope: &str, hash: &str) -> Result<(), TableError> {
        let update = Update::default().add("failures", -1);
        match self
            .table
            .update(&throttle_key(scope, hash), update, Cond::Exists)
            .await
        {
            Ok(_) | Err(TableError::Conflict { .. }) => Ok(()),
            Err(other) => Err(other),
        }
    }

    pub async fn clear_throttle(&self, scope: &str, hash: &str) -> Result<(), TableError> {
        self.table
            .delete(&throttle_key(scope, hash), Cond::Always)
            .await
            .map(drop)
    }

    pub async fn append_audit(&self, event: &AuditEvent) -> Result<(), TableError> {
        let mut item = to_item(event, &Key::new("AUDIT", event.id.clone()))?;
        if let Some(actor) = event.actor {
            item = with_index(item, format!("ACCT#{actor}#AUDIT"), event.id.clone());
        }
        self.create(item).await
    }

    /// Every audit entry an account made, oldest first.
    pub async fn audit_of(&self, actor: AccountId) -> Result<Vec<AuditEvent>, TableError> {
        self.query_all(Query::gsi1(format!("ACCT#{actor}#AUDIT")))
            .await
    }

    /// Removes the network prefix and address hash from every entry an account made: what it
    /// did stays on the record, where it did it from goes.
    pub async fn forget_audit_clients(&self, actor: AccountId) -> Result<(), TableError> {
        for mut event in self.audit_of(actor).await? {
            if event.client_prefix.is_none() && event.client_hash.is_none() {
                continue;
            }
            event.client_prefix = None;
            event.client_hash = None;
            let item = with_index(
                to_item(&event, &Key::new("AUDIT", event.id.clone()))?,
                format!("ACCT#{actor}#AUDIT"),
                event.id.clone(),
            );
            self.table.put(item, Cond::Exists).await?;
        }
        Ok(())
    }

    /// The audit log, newest first, one page at a time.
    pub async fn audit(
        &self,
        after: Option<Cursor>,
        limit: usize,
    ) -> Result<(Vec<AuditEvent>, Option<Cursor>), TableError> {
        self.page(
            Query::partition("AUDIT")
                .descending()
                .limit(limit)
                .after(after),
        )
        .await
    }
}
