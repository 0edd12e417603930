//! `Visits` on the `Table`, shared by every process (each Lambda instance): a create-once
//! marker per visitor and link that expires when the unique window ends, and a counter per
//! visitor and minute. Both are deferred writes: on DynamoDB they are written at once; the
//! two run concurrently.

use std::sync::Arc;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use crate::ports::table::{Cond, EXPIRES_AT, Item, Key, Table, TableError, Update, Write};
use crate::ports::visits::{Visit, Visits, minute_of};

pub struct TableVisits {
    table: Arc<dyn Table>,
}

impl TableVisits {
    pub fn new(table: Arc<dyn Table>) -> Self {
        Self { table }
    }

    /// Whether the marker was created now (so no live one existed).
    async fn first_on_link(
        &self,
        link: &str,
        visitor: &str,
        window_ends: i64,
    ) -> Result<bool, TableError> {
        let mut marker = Item::new();
        marker.insert("pk".into(), Value::from(format!("SEEN#{link}#{visitor}")));
        marker.insert("sk".into(), Value::from("SEEN"));
        marker.insert(EXPIRES_AT.into(), Value::from(window_ends));
        let create = Write::Put {
            item: marker,
            cond: Cond::NotExists,
        };
        match self.table.transact_deferred(vec![create]).await {
            Ok(()) => Ok(true),
            Err(TableError::Conflict { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn clicks_this_minute(&self, visitor: &str, minute: i64) -> Result<i64, TableError> {
        let counter = self
            .table
            .update_deferred(
                &Key::new(format!("FLOOD#{visitor}#{minute}"), "FLOOD"),
                Update::default()
                    .add("clicks", 1)
                    .set(EXPIRES_AT, (minute + 2) * 60),
                Cond::Always,
            )
            .await?;
        Ok(counter.get("clicks").and_then(Value::as_i64).unwrap_or(1))
    }
}

#[async_trait]
impl Visits for TableVisits {
    async fn record(
        &self,
        link: &str,
        visitor: &str,
        now: Timestamp,
        window: SignedDuration,
    ) -> Result<Visit, TableError> {
        let (first_on_link, clicks_this_minute) = tokio::try_join!(
            self.first_on_link(link, visitor, (now + window).as_second()),
            self.clicks_this_minute(visitor, minute_of(now)),
        )?;
        Ok(Visit {
            first_on_link,
            clicks_this_minute,
        })
    }
}
