//! Markers that make a mail go out once: claimed before it is sent, marked sent after.
//!
//! | record | pk | sk |
//! | --- | --- | --- |
//! | notice marker | `NOTICE#{key}` | `NOTICE` |

use serde_json::Value;

use super::Store;
use crate::ports::table::{Cond, Key, TableError, Update, to_item};

fn notice_key(key: &str) -> Key {
    Key::new(format!("NOTICE#{key}"), "NOTICE")
}

/// What became of a claim on a notice.
#[derive(Debug, PartialEq, Eq)]
pub enum NoticeClaim {
    /// The caller sends it now.
    Claimed,
    /// It went out before.
    Sent,
    /// Another run is sending it at this moment.
    Busy,
}

impl Store {
    /// Claims the notice `key` for sending at `now` (epoch seconds). A claim older than
    /// `stale_after` seconds that was never marked sent (its sender crashed) may be taken over.
    pub async fn claim_notice(
        &self,
        key: &str,
        now: i64,
        stale_after: i64,
    ) -> Result<NoticeClaim, TableError> {
        let record_key = notice_key(key);
        let item = to_item(
            &serde_json::json!({ "state": "sending", "claimed_at": now }),
            &record_key,
        )?;
        let existing = match self.table.put(item, Cond::NotExists).await {
            Ok(()) => return Ok(NoticeClaim::Claimed),
            Err(TableError::Conflict { existing, .. }) => existing,
            Err(e) => return Err(e),
        };
        let Some(existing) = existing else {
            return Ok(NoticeClaim::Busy);
        };
        if existing.get("state").and_then(Value::as_str) == Some("sent") {
            return Ok(NoticeClaim::Sent);
        }
        let claimed_at = existing
            .get("claimed_at")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if claimed_at > now - stale_after {
            return Ok(NoticeClaim::Busy);
        }
        match self
            .table
            .update(
                &record_key,
                Update::default().set("claimed_at", now),
                Cond::Equals("claimed_at".into(), Value::from(claimed_at)),
            )
            .await
        {
            Ok(_) => Ok(NoticeClaim::Claimed),
            Err(TableError::Conflict { .. }) => Ok(NoticeClaim::Busy),
            Err(e) => Err(e),
        }
    }

    /// Takes the marker `key` until `expires_at` (epoch seconds), if nobody holds it: for a
    /// mail sent at most once in a period, which a failed send does not retry.
    pub async fn take_marker(&self, key: &str, expires_at: i64) -> Result<bool, TableError> {
        let item = to_item(
            &serde_json::json!({ "state": "sent", "expires_at": expires_at }),
            &notice_key(key),
        )?;
        match self.table.put(item, Cond::NotExists).await {
            Ok(()) => Ok(true),
            Err(TableError::Conflict { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub async fn mark_notice_sent(&self, key: &str) -> Result<(), TableError> {
        self.table
            .update(
                &notice_key(key),
                Update::default().set("state", "sent"),
                Cond::Exists,
            )
            .await
            .map(|_| ())
    }

    /// Gives back the claim made at `claimed_at` after the mail failed, so that the next run
    /// sends it (a claim another run took over since is left to it).
    pub async fn release_notice(&self, key: &str, claimed_at: i64) -> Result<(), TableError> {
        self.table
            .delete(
                &notice_key(key),
                Cond::Equals("claimed_at".into(), Value::from(claimed_at)),
            )
            .await
            .map(|_| ())
            .or_else(|e| if e.is_conflict() { Ok(()) } else { Err(e) })
    }
}
