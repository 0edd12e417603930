//! Tracking numbers, offers' call settings, number leases and calls.
//!
//! | record | pk | sk | gsi1pk / gsi1sk |
//! | --- | --- | --- | --- |
//! | tracking number | `NUMBER#{e164}` | `NUMBER` | `ADV#{advertiser}#NUMBERS` / `{e164}` |
//! | an offer's pool | `POOL#{offer}` | `POOL` (the numbers, one item: one read per click) | |
//! | an offer's call settings | `CALLOFFER#{offer}` | `CALLS` | |
//! | a pool number lent to a click | `LEASE#{e164}` | `LEASE` (expires with the lease) | |
//! | the number a visitor holds | `VLEASE#{offer}#{visitor}` | `VLEASE` (expires with it) | |
//! | call | `CALL#{sid}` | `CALL` | `ADV#{advertiser}#CALLS` / `{started}#{sid}` |
//! | the affiliate's copy | `AFF#{affiliate}#CALLS` | `{started}#{sid}` | |
//! | a caller's last qualified call | `CALLER#{offer}#{hash}` | `CALLER` (expires with the window) | |
//!
//! Calls are tracking records: they expire with clicks and conversions.

use serde_json::Value;

use super::{Store, stats, with_index};
use crate::domain::calls::{Assignment, Call, CallSettings, E164, TrackingNumber};
use crate::domain::ids::{AdvertiserId, AffiliateId, ClickId, OfferId};
use crate::domain::money::Currency;
use crate::domain::tracking::Click;
use crate::ports::table::{Cond, EXPIRES_AT, Key, Query, TableError, Write, from_item, to_item};

fn number_key(number: &E164) -> Key {
    Key::new(format!("NUMBER#{}", number.as_str()), "NUMBER")
}

fn settings_key(offer: OfferId) -> Key {
    Key::new(format!("CALLOFFER#{offer}"), "CALLS")
}

fn lease_key(number: &E164) -> Key {
    Key::new(format!("LEASE#{}", number.as_str()), "LEASE")
}

fn visitor_lease_key(offer: OfferId, visitor: &str) -> Key {
    Key::new(format!("VLEASE#{offer}#{visitor}"), "VLEASE")
}

fn call_key(sid: &str) -> Key {
    Key::new(format!("CALL#{sid}"), "CALL")
}

fn call_sort(call: &Call) -> String {
    format!("{:012}#{}", call.started_at.as_second(), call.sid)
}

fn caller_key(offer: OfferId, hash: &str) -> Key {
    Key::new(format!("CALLER#{offer}#{hash}"), "CALLER")
}

/// How many times a change of a call is tried against racing changes.
const RETRIES: usize = 8;

impl Store {
    /// Registers a number once: `Ok(false)` if it is registered already.
    pub async fn create_number(&self, number: &TrackingNumber) -> Result<bool, TableError> {
        let mut writes = vec![Write::Put {
            item: with_index(
                to_item(number, &number_key(&number.number))?,
                format!("ADV#{}#NUMBERS", number.advertiser_id),
                number.number.as_str().to_string(),
            ),
            cond: Cond::NotExists,
        }];
        if let Assignment::Static { affiliate_id, .. } = &number.assignment {
            // The affiliate's copy: they must know the number they promote.
            writes.push(Write::Put {
                item: to_item(
                    number,
                    &Key::new(
                        format!("AFF#{affiliate_id}#NUMBERS"),
                        number.number.as_str(),
                    ),
                )?,
                cond: Cond::Always,
            });
        }
        let created = match self.table.transact(writes).await {
            Ok(()) => true,
            Err(TableError::Conflict { write: 0, .. }) => false,
            Err(e) => return Err(e),
        };
        // After the number's record, so that a pool never lends an unregistered number; a
        // repeated registration completes one a crash interrupted. Only a number stored as
        // this offer's pool number joins the pool: a refused repeat of another affiliate's
        // static number must change nothing.
        if number.assignment == Assignment::Pool
            && self.number(&number.number).await?.is_some_and(|stored| {
                stored.offer_id == number.offer_id && stored.assignment == Assignment::Pool
            })
        {
            self.add_to_pool(number.offer_id, &number.number).await?;
        }
        Ok(created)
    }

    async fn add_to_pool(&self, offer: OfferId, number: &E164) -> Result<(), TableError> {
        let key = Key::new(format!("POOL#{offer}"), "POOL");
        for _ in 0..RETRIES {
            let item = self.table.get(&key).await?;
            let mut numbers: Vec<E164> = item
                .as_ref()
                .and_then(|i| serde_json::from_value(i.get("numbers")?.clone()).ok())
                .unwrap_or_default();
            if numbers.contains(number) {
                return Ok(());
            }
            let cond = match &item {
                None => Cond::NotExists,
                Some(_) => Cond::Equals("size".into(), Value::from(numbers.len())),
            };
            numbers.push(number.clone());
            let record = to_item(
                &serde_json::json!({ "numbers": numbers, "size": numbers.len() }),
                &key,
            )?;
            match self.table.put(record, cond).await {
                Ok(()) => return Ok(()),
                Err(TableError::Conflict { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(TableError::Invalid(format!(
            "the pool of offer {offer} kept changing"
        )))
    }

    pub async fn number(&self, number: &E164) -> Result<Option<TrackingNumber>, TableError> {
        self.get(&number_key(number)).await
    }

    pub async fn numbers_of_advertiser(
        &self,
        advertiser: AdvertiserId,
    ) -> Result<Vec<TrackingNumber>, TableError> {
        self.query_all(Query::gsi1(format!("ADV#{advertiser}#NUMBERS")))
            .await
    }

    /// The static numbers of an affiliate.
    pub async fn numbers_of_affiliate(
        &self,
        affiliate: AffiliateId,
    ) -> Result<Vec<TrackingNumber>, TableError> {
        self.query_all(Query::partition(format!("AFF#{affiliate}#NUMBERS")))
            .await
    }

    /// An offer's pool numbers.
    pub async fn pool(&self, offer: OfferId) -> Result<Vec<E164>, TableError> {
        Ok(self
            .table
            .get(&Key::new(format!("POOL#{offer}"), "POOL"))
            .await?
            .and_then(|i| serde_json::from_value(i.get("numbers")?.clone()).ok())
            .unwrap_or_default())
    }

    pub async fn call_settings(&self, offer: OfferId) -> Result<Option<CallSettings>, TableError> {
        self.get(&settings_key(offer)).await
    }

    pub async fn save_call_settings(
        &self,
        offer: OfferId,
        settings: &CallSettings,
    ) -> Result<(), TableError> {
        self.table
            .put(to_item(settings, &settings_key(offer))?, Cond::Always)
            .await
    }

    /// Lends a pool number to a click until `until` (epoch seconds), if no live lease holds it.
    pub async fn lease_number(
        &self,
        number: &E164,
        click: ClickId,
        until: i64,
    ) -> Result<bool, TableError> {
        let mut item = to_item(
            &serde_json::json!({ "click_id": click }),
            &lease_key(number),
        )?;
        item.insert(EXPIRES_AT.into(), Value::from(until));
        match self.table.put(item, Cond::NotExists).await {
            Ok(()) => Ok(true),
            Err(TableError::Conflict { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Lends a number again, to the same visitor's new click.
    pub async fn renew_lease(
        &self,
        number: &E164,
        click: ClickId,
        until: i64,
    ) -> Result<(), TableError> {
        let mut item = to_item(
            &serde_json::json!({ "click_id": click }),
            &lease_key(number),
        )?;
        item.insert(EXPIRES_AT.into(), Value::from(until));
        self.table.put(item, Cond::Always).await
    }

    /// The pool number a visitor holds now, if any.
    pub async fn visitor_lease(
        &self,
        offer: OfferId,
        visitor: &str,
    ) -> Result<Option<E164>, TableError> {
        Ok(self
            .table
            .get(&visitor_lease_key(offer, visitor))
            .await?
            .and_then(|i| E164::parse(i.get("number")?.as_str()?).ok()))
    }

    pub async fn note_visitor_lease(
        &self,
        offer: OfferId,
        visitor: &str,
        number: &E164,
        until: i64,
    ) -> Result<(), TableError> {
        let mut item = to_item(
            &serde_json::json!({ "number": number }),
            &visitor_lease_key(offer, visitor),
        )?;
        item.insert(EXPIRES_AT.into(), Value::from(until));
        self.table.put(item, Cond::Always).await
    }

    /// The click a pool number is lent to now, if any.
    pub async fn leased_to(&self, number: &E164) -> Result<Option<ClickId>, TableError> {
        Ok(self
            .table
            .get(&lease_key(number))
            .await?
            .and_then(|i| ClickId::parse(i.get("click_id")?.as_str()?)))
    }

    pub async fn call(&self, sid: &str) -> Result<Option<Call>, TableError> {
        self.get(&call_key(sid)).await
    }

    fn call_writes(call: &Call, cond: Cond) -> Result<Vec<Write>, TableError> {
        let mut writes = vec![Write::Put {
            item: with_index(
                to_item(call, &call_key(&call.sid))?,
                format!("ADV#{}#CALLS", call.advertiser_id),
                call_sort(call),
            ),
            cond,
        }];
        if let Some(affiliate) = call.affiliate_id {
            writes.push(Write::Put {
                item: to_item(
                    call,
                    &Key::new(format!("AFF#{affiliate}#CALLS"), call_sort(call)),
                )?,
                cond: Cond::Always,
            });
        }
        Ok(writes)
    }

    /// Records a new call once, counted in the reports; a repeat of the webhook answers the
    /// call as first recorded.
    pub async fn create_call(
        &self,
        call: &Call,
        click: Option<&Click>,
        currency: Currency,
    ) -> Result<Call, TableError> {
        let mut writes = Self::call_writes(call, Cond::NotExists)?;
        writes.extend(stats::count_call(call, click, currency)?);
        match self.table.transact(writes).await {
            Ok(()) => Ok(call.clone()),
            Err(TableError::Conflict {
                write: 0,
                existing: Some(existing),
            }) => from_item(*existing),
            Err(e) => Err(e),
        }
    }

    /// Changes a call by `change` (which answers whether it changed anything), retried
    /// against racing changes so that none is lost. Answers the call as it now is.
    pub async fn change_call(
        &self,
        sid: &str,
        mut change: impl FnMut(&mut Call) -> bool,
    ) -> Result<Option<Call>, TableError> {
        for _ in 0..RETRIES {
            let Some(mut call) = self.call(sid).await? else {
                return Ok(None);
            };
            if !change(&mut call) {
                return Ok(Some(call));
            }
            let version = call.version;
            call.version += 1;
            let cond = Cond::Equals("version".into(), Value::from(version));
            match self.table.transact(Self::call_writes(&call, cond)?).await {
                Ok(()) => return Ok(Some(call)),
                Err(TableError::Conflict { write: 0, .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(TableError::Invalid(format!(
            "call {sid} kept changing under {RETRIES} attempts"
        )))
    }

    /// An advertiser's calls, newest first.
    pub async fn calls_of_advertiser(
        &self,
        advertiser: AdvertiserId,
        limit: usize,
    ) -> Result<Vec<Call>, TableError> {
        Ok(self
            .page(
                Query::gsi1(format!("ADV#{advertiser}#CALLS"))
                    .descending()
                    .limit(limit),
            )
            .await?
            .0)
    }

    /// An affiliate's calls, newest first.
    pub async fn calls_of_affiliate(
        &self,
        affiliate: AffiliateId,
        limit: usize,
    ) -> Result<Vec<Call>, TableError> {
        Ok(self
            .page(
                Query::partition(format!("AFF#{affiliate}#CALLS"))
                    .descending()
                    .limit(limit),
            )
            .await?
            .0)
    }

    /// Notes a caller's qualified call `sid` for the repeat window; answers whether another
    /// call of theirs was noted within it (the same call again is no repeat).
    pub async fn note_caller(
        &self,
        offer: OfferId,
        caller_hash: &str,
        sid: &str,
        until: i64,
    ) -> Result<bool, TableError> {
        let mut item = to_item(
            &serde_json::json!({ "call_sid": sid }),
            &caller_key(offer, caller_hash),
        )?;
        item.insert(EXPIRES_AT.into(), Value::from(until));
        match self.table.put(item, Cond::NotExists).await {
            Ok(()) => Ok(false),
            Err(TableError::Conflict { existing, .. }) => Ok(existing
                .and_then(|e| {
                    e.get("call_sid")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .is_none_or(|noted| noted != sid)),
            Err(e) => Err(e),
        }
    }
}
