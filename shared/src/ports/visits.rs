//! What the click path must know of a visitor's earlier clicks, and nothing more: whether this
//! is their first click on the link within the offer's unique-click window, and how many clicks
//! they made in the current minute (a flood). Visitors are pseudonyms, never addresses.
//!
//! Two adapters: one on the `Table` (create-once markers and per-minute counters, which every
//! Lambda instance shares) and one in the memory of the single local process, which needs no
//! storage round trip on the click path.

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};

use crate::ports::TableError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Visit {
    /// The visitor's first click on the link within the window.
    pub first_on_link: bool,
    /// The visitor's clicks in the current UTC minute on any link, this one included.
    pub clicks_this_minute: i64,
}

#[async_trait]
pub trait Visits: Send + Sync {
    /// Records a click of `visitor` on `link` at `now`; a click is first on the link when no
    /// other was recorded within `window` before it.
    async fn record(
        &self,
        link: &str,
        visitor: &str,
        now: Timestamp,
        window: SignedDuration,
    ) -> Result<Visit, TableError>;

    /// Keeps what must survive a clean restart (the local process's memory); a no-op where
    /// every record is already stored.
    async fn save(&self) -> Result<(), TableError> {
        Ok(())
    }
}

/// The UTC minute `now` falls in, as a number.
pub fn minute_of(now: Timestamp) -> i64 {
    now.as_second().div_euclid(60)
}
