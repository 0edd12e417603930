//! Repositories: where each record lives in the one table. The only module that knows item
//! keys; the domain sees records, never `pk`/`sk`.
//!
//! | record | pk | sk | gsi1pk / gsi1sk |
//! | --- | --- | --- | --- |
//! | account | `ACCT#{id}` | `ACCT` | `ACCTS` / `{id}` |
//! | account by email | `EMAIL#{email}` | `EMAIL` | |
//! | session | `SESSION#{sha256 of token}` | `SESSION` | `ACCT#{id}#SESSIONS` / `{created}` |
//! | one-time token | `TOKEN#{sha256 of token}` | `TOKEN` | |
//! | API key | `APIKEY#{sha256 of key}` | `APIKEY` | `ACCT#{id}#APIKEYS` / `{key id}` |
//! | sign-in throttle | `THROTTLE#{scope}#{hash}` | `THROTTLE` | |
//! | audit event | `AUDIT` | `{id}` | `ACCT#{actor}#AUDIT` / `{id}` |
//! | application | `APP#{offer}` | `{affiliate}` | `AFF#{affiliate}#APPS` / `{offer}` |
//! | offer | `OFFER#{id}` | `OFFER` | `OFFERS` / `{advertiser}#{id}` |
//! | link | `LINK#{code}` | `LINK` | `AFF#{affiliate}#LINKS` / `{code}` |
//! | click | `CLICK#{id}` | `CLICK` | |
//! | unique-click marker | `SEEN#{link}#{visitor}` | `SEEN` | |
//! | clicks of a visitor in a minute | `FLOOD#{visitor}#{minute}` | `FLOOD` | |
//! | flagged click or conversion | `FLAGGED#{day}` | `{kind}#{id}` | |
//! | report counters | see [`stats`] | | |
//! | conversion | `CONV#{id}` | `CONV` | `ADV#{advertiser}#CONVS` / `{id}` |
//! | conversion, affiliate's copy | `AFF#{affiliate}#CONVS` | `{id}` | |
//! | conversion due to mature | `DUE` | `{payable_at, epoch seconds}#{conversion}` | |
//! | conversion dedupe key | `CONVKEY#{offer}\|{event}\|…` | `CONVKEY` | |
//! | ledger transaction | `LTXN#{id}` | `LTXN` | |
//! | ledger entry | `LACCT#{account}#{currency}` | `{transaction id}` | |
//! | ledger balance | `LBAL#{account}#{currency}` | `LBAL` | |
//! | settings | `META#{name}` | `META` | |

use std::sync::Arc;

mod accounts;
mod calls;
mod notices;
mod offers;
mod payouts;
mod privacy;
pub mod stats;
mod visits;

pub use visits::TableVisits;

pub use accounts::{ApiKeyRecord, Attempt, AuditEvent, SessionRecord, Throttle, TokenPurpose};
pub use notices::NoticeClaim;
pub use offers::{Application, ApplicationStatus};
pub use payouts::{PayoutRun, TaxFormsYear};
pub use privacy::{PolicyVersion, PrivacyRequest, RequestKind, RequestStatus};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::domain::ids::{AdvertiserId, AffiliateId, ClickId, ConversionId, LinkCode, OfferId};
use crate::domain::ledger::{Account, Transaction};
use crate::domain::money::Currency;
use crate::domain::offer::Offer;
use crate::domain::tracking::{Click, Conversion, Link};
use crate::ports::table::{
    Cond, Cursor, EXPIRES_AT, GSI1PK, GSI1SK, Item, Key, Query, Rendered, Table, TableError,
    Update, Write, from_item, to_item,
};
use offers::offer_key;

/// A click or conversion held up for review, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Flagged {
    /// `click` or `conversion`.
    pub kind: String,
    pub id: String,
    #[schema(value_type = String)]
    pub at: jiff::Timestamp,
    pub offer_id: String,
    pub affiliate_id: String,
    pub flags: Vec<String>,
}

impl Flagged {
    /// The write that indexes it under its UTC day, kept as long as the record it names.
    /// Rendered, as a click is: every click of a flood is flagged, and building each as a map
    /// made a flooding visitor's clicks the slowest to store.
    pub fn write(&self, expires_at: i64) -> Result<Write, TableError> {
        /// The record as stored: with the expiry the table reads.
        #[derive(Serialize)]
        struct Stored<'a> {
            #[serde(flatten)]
            flagged: &'a Flagged,
            expires_at: i64,
        }
        let day = jiff::tz::Offset::UTC.to_datetime(self.at).date();
        let key = Key::new(
            format!("FLAGGED#{day}"),
            format!("{}#{}", self.kind, self.id),
        );
        Ok(Write::PutRendered {
            row: Rendered::of(
                &Stored {
                    flagged: self,
                    expires_at,
                },
                key,
                Some(expires_at),
            )?,
        })
    }
}

/// The outcome of recording something that may arrive twice.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded<T> {
    New(T),
    /// It had been recorded before: this is the original.
    Duplicate(T),
}

impl<T> Recorded<T> {
    /// What was recorded, new or not.
    pub fn into_inner(self) -> T {
        match self {
            Self::New(value) | Self::Duplicate(value) => value,
        }
    }
}

#[derive(Clone)]
pub struct Store {
    pub(crate) table: Arc<dyn Table>,
    /// Links with their offers, for the click path (see [`Store::link_with_offer`]).
    routes: Arc<RouteCache>,
    /// What this process knows of the report counters (see [`stats`]).
    counting: Arc<stats::Counting>,
}

/// How long a link's cached offer may be used: the longest another process (a Lambda instance)
/// keeps a paused or edited offer's old settings. This process forgets at once.
pub const ROUTE_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(5);
/// How many links the cache holds at most; past that it starts again empty.
const ROUTE_CACHE_SIZE: usize = 10_000;

/// A link with its offer: what a click needs.
pub type Route = Arc<(Link, Offer)>;

#[derive(Default)]
struct RouteCache(
    std::sync::Mutex<std::collections::HashMap<LinkCode, (std::time::Instant, Route)>>,
);

impl RouteCache {
    fn get(&self, code: &LinkCode) -> Option<Route> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(code)
            .filter(|(at, _)| at.elapsed() < ROUTE_CACHE_TTL)
            .map(|(_, route)| route.clone())
    }

    fn put(&self, route: Route) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= ROUTE_CACHE_SIZE {
            map.clear();
        }
        map.insert(route.0.code.clone(), (std::time::Instant::now(), route));
    }

    fn forget_link(&self, code: &LinkCode) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(code);
    }

    fn forget_offer(&self, offer: OfferId) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, (_, route)| route.1.id != offer);
    }
}

fn link_key(code: &LinkCode) -> Key {
    Key::new(format!("LINK#{code}"), "LINK")
}
/// A click's record. Unconditional: the id is a fresh ULID (80 random bits), so the click
/// path reads nothing. Rendered: see `Rendered`.
fn click_write(click: &Click) -> Result<Write, TableError> {
    Ok(Write::PutRendered {
        row: Rendered::of(click, click_key(click.id), Some(click.expires_at))?,
    })
}

fn click_key(id: ClickId) -> Key {
    // Every click makes one: built without the formatting machinery.
    let mut pk = String::with_capacity(6 + ulid::ULID_LEN);
    pk.push_str("CLICK#");
    id.push_to(&mut pk);
    Key::new(pk, "CLICK")
}
fn conversion_key(id: ConversionId) -> Key {
    Key::new(format!("CONV#{id}"), "CONV")
}
fn conversion_dedupe_key(dedupe: &str) -> Key {
    Key::new(format!("CONVKEY#{dedupe}"), "CONVKEY")
}
fn ledger_transaction_key(id: &str) -> Key {
    Key::new(format!("LTXN#{id}"), "LTXN")
}
fn ledger_entries_partition(account: &Account, currency: Currency) -> String {
    format!("LACCT#{}#{}", account.as_str(), currency.code())
}
fn ledger_balance_key(account: &Account, currency: Currency) -> Key {
    Key::new(
        format!("LBAL#{}#{}", account.as_str(), currency.code()),
        "LBAL",
    )
}
fn meta_key(name: &str) -> Key {
    Key::new(format!("META#{name}"), "META")
}

pub(crate) fn with_index(mut item: Item, gsi1pk: String, gsi1sk: String) -> Item {
    item.insert(GSI1PK.into(), Value::String(gsi1pk));
    item.insert(GSI1SK.into(), Value::String(gsi1sk));
    item
}

impl Store {
    pub fn new(table: Arc<dyn Table>) -> Self {
        Self {
            table,
            routes: Arc::default(),
            counting: Arc::default(),
        }
    }

    pub(crate) fn forget_offer(&self, offer: OfferId) {
        self.routes.forget_offer(offer);
    }

    /// A link and its offer, for the click path: from a short-lived in-process cache, which
    /// forgets an offer as soon as this process changes it.
    pub async fn link_with_offer(&self, code: &LinkCode) -> Result<Option<Route>, TableError> {
        if let Some(route) = self.routes.get(code) {
            return Ok(Some(route));
        }
        let Some(link) = self.link(code).await? else {
            return Ok(None);
        };
        let Some(offer) = self.offer(link.offer_id).await? else {
            return Ok(None);
        };
        let route = Arc::new((link, offer));
        self.routes.put(route.clone());
        Ok(Some(route))
    }

    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        key: &Key,
    ) -> Result<Option<T>, TableError> {
        self.table.get(key).await?.map(from_item).transpose()
    }

    pub(crate) async fn create(&self, item: Item) -> Result<(), TableError> {
        self.table.put(item, Cond::NotExists).await
    }

    pub async fn create_offer(&self, offer: &Offer) -> Result<(), TableError> {
        self.create(offers::offer_item(offer)?).await
    }

    pub async fn offer(&self, id: OfferId) -> Result<Option<Offer>, TableError> {
        self.get(&offer_key(id)).await
    }

    pub async fn create_link(&self, link: &Link) -> Result<(), TableError> {
        let item = to_item(link, &link_key(&link.code))?;
        let item = with_index(
            item,
            format!("AFF#{}#LINKS", link.affiliate_id),
            link.code.to_string(),
        );
        self.create(item).await
    }

    pub async fn link(&self, code: &LinkCode) -> Result<Option<Link>, TableError> {
        self.get(&link_key(code)).await
    }

    /// Deletes a link: its clicks are answered 404 from now on (by other processes, within
    /// [`ROUTE_CACHE_TTL`]).
    pub async fn delete_link(&self, code: &LinkCode) -> Result<(), TableError> {
        self.table.delete(&link_key(code), Cond::Always).await?;
        self.routes.forget_link(code);
        Ok(())
    }

    /// Records a click with its report counters (and, if `listed`, its entry on the review
    /// list, [`Flagged`]) as one deferred write: on the embedded store it is committed with the
    /// next group commit. A flagged click is listed unless its visitor is flooding.
    pub async fn create_click(
        &self,
        click: &Click,
        currency: Currency,
        listed: bool,
    ) -> Result<(), TableError> {
        let mut writes = vec![click_write(click)?];
        writes.extend(stats::count_click(click, currency)?);
        if listed {
            let flagged = Flagged {
                kind: "click".into(),
                id: click.id.to_string(),
                at: click.at,
                offer_id: click.offer_id.to_string(),
                affiliate_id: click.affiliate_id.to_string(),
                flags: click.flags.clone(),
            };
            writes.push(flagged.write(click.expires_at)?);
        }
        self.table.transact_deferred(writes).await
    }

    /// Records a click without counting it: the click a static number's call stands on (the
    /// call is counted as a call, and its click is no suspect for review), or a test click.
    pub async fn create_uncounted_click(&self, click: &Click) -> Result<(), TableError> {
        self.table
            .transact_deferred(vec![click_write(click)?])
            .await
    }

    /// Moves a conversion from `before` to `after` with its ledger transactions and `also`, all
    /// or nothing, if it is still in `before`'s state: `Ok(false)` when another change came
    /// first. Schedules (or clears) its maturation.
    pub async fn change_conversion(
        &self,
        before: &Conversion,
        after: &Conversion,
        ledger: &[Transaction],
        also: Vec<Write>,
    ) -> Result<bool, TableError> {
        let (record, copy) = conversion_items(after)?;
        let mut writes = vec![
            Write::Put {
                item: record,
                cond: Cond::Equals("state".into(), Value::from(before.state())),
            },
            Write::Put {
                item: copy,
                cond: Cond::Always,
            },
        ];
        for transaction in ledger {
            writes.extend(ledger_writes(transaction)?);
        }
        // Its next automatic step, if any, replaces the one it had.
        if before.due_at != after.due_at {
            if let Some(at) = before.due_at {
                writes.push(Write::Delete {
                    key: due_key(at, before.id),
                    cond: Cond::Always,
                });
            }
            if let Some(at) = after.due_at {
                writes.push(due_write(at, after.id)?);
            }
        }
        writes.extend(also);
        match self.table.transact(writes).await {
            Ok(()) => Ok(true),
            Err(TableError::Conflict { write: 0, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Conversions whose next automatic step is due at or before `now`, soonest first.
    pub async fn conversions_due(
        &self,
        now: jiff::Timestamp,
        limit: usize,
    ) -> Result<Vec<ConversionId>, TableError> {
        let page = self
            .table
            .query(
                Query::partition("DUE")
                    // Every key starts with a 12-digit time, so "0" is below them all (DynamoDB
                    // refuses an empty bound).
                    .between("0", format!("{:012}#~", now.as_second()))
                    .limit(limit),
            )
            .await?;
        Ok(page
            .items
            .iter()
            .filter_map(|item| item.get("conversion_id")?.as_str())
            .filter_map(ConversionId::parse)
            .collect())
    }

    /// Puts something suspect in the review index on its own.
    pub async fn flag(&self, flagged: &Flagged, expires_at: i64) -> Result<(), TableError> {
        self.table.transact(vec![flagged.write(expires_at)?]).await
    }

    /// Flagged clicks and conversions of one UTC day (`YYYY-MM-DD`), in order of kind and id
    /// (so of time within a kind): one page, and where the next starts.
    pub async fn flagged(
        &self,
        day: &str,
        after: Option<Cursor>,
        limit: usize,
    ) -> Result<(Vec<Flagged>, Option<Cursor>), TableError> {
        self.page(
            Query::partition(format!("FLAGGED#{day}"))
                .limit(limit)
                .after(after),
        )
        .await
    }

    pub async fn click(&self, id: ClickId) -> Result<Option<Click>, TableError> {
        self.get(&click_key(id)).await
    }

    pub async fn conversion(&self, id: ConversionId) -> Result<Option<Conversion>, TableError> {
        self.get(&conversion_key(id)).await
    }

    /// Records a conversion, its ledger transaction, its cap counters and `also` (its
    /// postback) in one all-or-nothing write; `None` when a cap counter refused it. Guarded by
    /// its dedupe key: however many times (and however concurrently) the same conversion
    /// arrives, one is recorded and every repeat gets that one back.
    pub async fn record_conversion(
        &self,
        conversion: &Conversion,
        ledger: Option<&Transaction>,
        caps: Vec<Write>,
        also: Vec<Write>,
    ) -> Result<Option<Recorded<Conversion>>, TableError> {
        let mut dedupe = Item::new();
        dedupe.insert(
            "conversion_id".into(),
            Value::String(conversion.id.to_string()),
        );
        dedupe.insert(EXPIRES_AT.into(), Value::from(conversion.expires_at));
        let dedupe = to_item(&dedupe, &conversion_dedupe_key(&conversion.dedupe_key()))?;
        let (record, copy) = conversion_items(conversion)?;
        let mut writes = vec![
            Write::Put {
                item: dedupe,
                cond: Cond::NotExists,
            },
            Write::Put {
                item: record,
                cond: Cond::NotExists,
            },
            Write::Put {
                item: copy,
                cond: Cond::NotExists,
            },
        ];
        if let Some(ledger) = ledger {
            writes.extend(ledger_writes(ledger)?);
        }
        let capped = writes.len()..writes.len() + caps.len();
        writes.extend(caps);
        writes.extend(also);
        match self.table.transact(writes).await {
            Ok(()) => Ok(Some(Recorded::New(conversion.clone()))),
            Err(TableError::Conflict { write, .. }) if capped.contains(&write) => Ok(None),
            Err(TableError::Conflict {
                write: 0,
                existing: Some(existing),
            }) => {
                let original = existing
                    .get("conversion_id")
                    .and_then(Value::as_str)
                    .and_then(ConversionId::parse)
                    .ok_or_else(|| TableError::Invalid("dedupe item without conversion".into()))?;
                let original = self.conversion(original).await?.ok_or_else(|| {
                    TableError::Invalid(format!("dedupe item names missing conversion {original}"))
                })?;
                Ok(Some(Recorded::Duplicate(original)))
            }
            Err(e) => Err(e),
        }
    }

    /// An advertiser's conversions, newest first: one page, and where the next starts.
    pub async fn conversions_of_advertiser(
        &self,
        advertiser: AdvertiserId,
        after: Option<Cursor>,
        limit: usize,
    ) -> Result<(Vec<Conversion>, Option<Cursor>), TableError> {
        self.page(
            Query::gsi1(format!("ADV#{advertiser}#CONVS"))
                .descending()
                .limit(limit)
                .after(after),
        )
        .await
    }

    /// An affiliate's conversions, newest first: one page, and where the next starts.
    pub async fn conversions_of_affiliate(
        &self,
        affiliate: AffiliateId,
        after: Option<Cursor>,
        limit: usize,
    ) -> Result<(Vec<Conversion>, Option<Cursor>), TableError> {
        self.page(
            Query::partition(format!("AFF#{affiliate}#CONVS"))
                .descending()
                .limit(limit)
                .after(after),
        )
        .await
    }

    /// Every conversion of an offer (of `advertiser`), oldest first.
    pub async fn conversions_of_offer(
        &self,
        advertiser: AdvertiserId,
        offer: OfferId,
    ) -> Result<Vec<Conversion>, TableError> {
        let all: Vec<Conversion> = self
            .query_all(Query::gsi1(format!("ADV#{advertiser}#CONVS")))
            .await?;
        Ok(all.into_iter().filter(|c| c.offer_id == offer).collect())
    }

    pub(crate) async fn page<T: DeserializeOwned>(
        &self,
        query: Query,
    ) -> Result<(Vec<T>, Option<Cursor>), TableError> {
        let page = self.table.query(query).await?;
        let items = page
            .items
            .into_iter()
            .map(from_item)
            .collect::<Result<Vec<T>, _>>()?;
        Ok((items, page.next))
    }

    /// An account's balance as maintained with every posting (debits positive).
    pub async fn balance(&self, account: &Account, currency: Currency) -> Result<i64, TableError> {
        let item = self
            .table
            .get(&ledger_balance_key(account, currency))
            .await?;
        Ok(item
            .and_then(|i| i.get("balance").and_then(Value::as_i64))
            .unwrap_or(0))
    }

    /// An account's balance recomputed from its entries, to check [`Store::balance`] against.
    pub async fn balance_from_entries(
        &self,
        account: &Account,
        currency: Currency,
    ) -> Result<i64, TableError> {
        Ok(self
            .ledger_entries(account, currency)
            .await?
            .iter()
            .map(|(_, amount, _)| amount)
            .sum())
    }

    /// An account's ledger entries in one currency: `(transaction id, amount, at)`.
    pub async fn ledger_entries(
        &self,
        account: &Account,
        currency: Currency,
    ) -> Result<Vec<(String, i64, jiff::Timestamp)>, TableError> {
        let entries: Vec<Item> = self
            .query_all(Query::partition(ledger_entries_partition(
                account, currency,
            )))
            .await?;
        Ok(entries
            .iter()
            .filter_map(|e| {
                Some((
                    e.get("transaction")?.as_str()?.to_string(),
                    e.get("amount")?.as_i64()?,
                    e.get("at")?.as_str()?.parse().ok()?,
                ))
            })
            .collect())
    }

    /// Posts a ledger transaction on its own, once: `Ok(false)` if it was posted before.
    pub async fn post(&self, ledger: &Transaction) -> Result<bool, TableError> {
        match self.table.transact(ledger_writes(ledger)?).await {
            Ok(()) => Ok(true),
            Err(TableError::Conflict { write: 0, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes an account's ledger entries and balance in one currency (the retention job, for
    /// records past their period); the transactions stay, naming only account ids.
    pub async fn delete_ledger_account(
        &self,
        account: &Account,
        currency: Currency,
    ) -> Result<usize, TableError> {
        let entries = self.ledger_entries(account, currency).await?;
        for (transaction, _, _) in &entries {
            self.table
                .delete(
                    &Key::new(
                        ledger_entries_partition(account, currency),
                        transaction.clone(),
                    ),
                    Cond::Always,
                )
                .await?;
        }
        self.table
            .delete(&ledger_balance_key(account, currency), Cond::Always)
            .await?;
        Ok(entries.len())
    }

    pub(crate) async fn query_all<T: DeserializeOwned>(
        &self,
        query: Query,
    ) -> Result<Vec<T>, TableError> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .table
                .query(query.clone().limit(500).after(after))
                .await?;
            out.extend(
                page.items
                    .into_iter()
                    .map(from_item)
                    .collect::<Result<Vec<T>, _>>()?,
            );
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(out),
            }
        }
    }

    pub async fn setting<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, TableError> {
        let item = self.table.get(&meta_key(name)).await?;
        item.and_then(|mut i| i.remove("value"))
            .map(|v| {
                serde_json::from_value(v)
                    .map_err(|e| TableError::Invalid(format!("setting {name} does not parse: {e}")))
            })
            .transpose()
    }

    /// Stores a setting, replacing what it was.
    pub async fn replace_setting<T: Serialize>(
        &self,
        name: &str,
        value: &T,
    ) -> Result<(), TableError> {
        self.table
            .put(setting_item(name, value)?, Cond::Always)
            .await
    }

    /// Stores a setting once; returns false if it was already set (and leaves it).
    pub async fn create_setting<T: Serialize>(
        &self,
        name: &str,
        value: &T,
    ) -> Result<bool, TableError> {
        match self.create(setting_item(name, value)?).await {
            Ok(()) => Ok(true),
            Err(TableError::Conflict { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// A setting's item: its value under `value`.
fn setting_item<T: Serialize>(name: &str, value: &T) -> Result<Item, TableError> {
    let mut item = Item::new();
    item.insert(
        "value".into(),
        serde_json::to_value(value).map_err(|e| TableError::Invalid(e.to_string()))?,
    );
    to_item(&item, &meta_key(name))
}

/// A conversion's record (with its lifecycle state, which changes are conditioned on) and
/// the affiliate's copy: their listing reads one partition, without a second index.
fn conversion_items(conversion: &Conversion) -> Result<(Item, Item), TableError> {
    let mut record = with_index(
        to_item(conversion, &conversion_key(conversion.id))?,
        format!("ADV#{}#CONVS", conversion.advertiser_id),
        conversion.id.to_string(),
    );
    record.insert("state".into(), Value::from(conversion.state()));
    let copy = to_item(
        conversion,
        &Key::new(
            format!("AFF#{}#CONVS", conversion.affiliate_id),
            conversion.id.to_string(),
        ),
    )?;
    Ok((record, copy))
}

/// The index entry that makes a conversion's next automatic step due at `at`.
pub(crate) fn due_write(
    at: jiff::Timestamp,
    conversion: ConversionId,
) -> Result<Write, TableError> {
    let mut due = Item::new();
    due.insert("conversion_id".into(), Value::from(conversion.to_string()));
    Ok(Write::Put {
        item: to_item(&due, &due_key(at, conversion))?,
        cond: Cond::Always,
    })
}

/// Sorted by the second it is due (zero-padded epoch seconds sort as numbers).
fn due_key(at: jiff::Timestamp, conversion: ConversionId) -> Key {
    Key::new("DUE", format!("{:012}#{conversion}", at.as_second()))
}

/// The writes that post a ledger transaction: the transaction (once only), one entry per
/// account, and each account's running balance.
fn ledger_writes(ledger: &Transaction) -> Result<Vec<Write>, TableError> {
    let mut writes = vec![Write::Put {
        item: to_item(ledger, &ledger_transaction_key(&ledger.id))?,
        cond: Cond::NotExists,
    }];
    for entry in &ledger.entries {
        let mut item = Item::new();
        item.insert("transaction".into(), Value::String(ledger.id.clone()));
        item.insert("amount".into(), Value::from(entry.amount.minor));
        item.insert(
            "at".into(),
            serde_json::to_value(ledger.at).map_err(|e| TableError::Invalid(e.to_string()))?,
        );
        let key = Key::new(
            ledger_entries_partition(&entry.account, entry.amount.currency),
            ledger.id.clone(),
        );
        writes.push(Write::Put {
            item: to_item(&item, &key)?,
            cond: Cond::NotExists,
        });
        writes.push(Write::Update {
            key: ledger_balance_key(&entry.account, entry.amount.currency),
            update: Update::default().add("balance", entry.amount.minor),
            cond: Cond::Always,
        });
    }
    Ok(writes)
}
