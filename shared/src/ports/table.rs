//! `Table`: the DynamoDB-shaped item store every repository is written on.
//!
//! An item is a map of attribute names to JSON values. Five attribute names are reserved and
//! give the item its place: `pk` and `sk` (the primary key, both strings), `gsi1pk` and
//! `gsi1sk` (the one secondary index, optional strings) and `expires_at` (epoch seconds, the
//! DynamoDB TTL attribute). Integers are exact up to `i64`; floats are refused because money
//! never travels as one.
//!
//! Semantics every adapter keeps, pinned by [`crate::contract::table`]:
//! - An item whose `expires_at` is at or before the adapter's clock is gone: reads never return
//!   it and conditions treat it as absent, even while the backend still holds it (DynamoDB
//!   deletes expired items lazily).
//! - A failed condition is [`TableError::Conflict`] carrying the item as it stood, which is how an
//!   idempotent repeat answers the original.
//! - [`Table::transact`] is all or nothing; two writes on one key in a transaction are refused.

use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Map, Value};

/// The attributes of one item.
pub type Item = Map<String, Value>;

/// Reserved attribute names.
pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const GSI1PK: &str = "gsi1pk";
pub const GSI1SK: &str = "gsi1sk";
pub const EXPIRES_AT: &str = "expires_at";

/// DynamoDB's limit on the writes of one transaction.
pub const MAX_TRANSACTION_WRITES: usize = 100;

/// The primary key of an item.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Self {
            pk: pk.into(),
            sk: sk.into(),
        }
    }

    /// The key of an item, which must carry string `pk` and `sk` attributes.
    pub fn of(item: &Item) -> Result<Self, TableError> {
        let (pk, sk) = Self::parts_of(item)?;
        Ok(Self::new(pk, sk))
    }

    /// Its parts, which no adapter stores empty.
    pub fn parts(&self) -> Result<(&str, &str), TableError> {
        for (name, part) in [(PK, &self.pk), (SK, &self.sk)] {
            if part.is_empty() {
                return Err(TableError::Invalid(format!("`{name}` may not be empty")));
            }
        }
        Ok((&self.pk, &self.sk))
    }

    /// [`Key::of`], borrowed.
    pub fn parts_of(item: &Item) -> Result<(&str, &str), TableError> {
        let text = |name: &str| match item.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.as_str()),
            _ => Err(TableError::Invalid(format!(
                "item needs a non-empty string `{name}`"
            ))),
        };
        Ok((text(PK)?, text(SK)?))
    }
}

/// The condition a write is made under.
#[derive(Clone, Debug, PartialEq)]
pub enum Cond {
    /// Unconditional.
    Always,
    /// No live item has this key (`attribute_not_exists(pk)`): the create-once guard.
    NotExists,
    /// A live item has this key.
    Exists,
    /// A live item has this key and its attribute equals the value.
    Equals(String, Value),
    /// No live item, or one without this attribute, or one whose integer attribute is below
    /// the limit: the guard of a counter that must never pass its cap.
    Below(String, i64),
}

/// An update of one item, applied atomically; a missing item is created (like `UpdateItem`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Update {
    /// Attributes set to a value.
    pub set: Vec<(String, Value)>,
    /// Attributes set only where the item does not have them yet (`if_not_exists`): what a
    /// counter's first write fixes, which every later one would only rewrite. Shared, since
    /// every count of one counter initialises the same.
    pub init: Option<Arc<Item>>,
    /// Integer attributes increased by a delta, a missing one counting as 0 (`ADD`). Names
    /// are usually literals, borrowed: a click's counter updates allocated one for each.
    pub add: Vec<(Cow<'static, str>, i64)>,
}

impl Update {
    pub fn set(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.set.push((name.into(), value.into()));
        self
    }

    pub fn init(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        Arc::make_mut(self.init.get_or_insert_default()).insert(name.into(), value.into());
        self
    }

    /// [`Update::init`] of each of `attributes`, shared rather than copied.
    pub fn init_all(mut self, attributes: Arc<Item>) -> Self {
        match &mut self.init {
            None => self.init = Some(attributes),
            Some(init) => Arc::make_mut(init).extend(
                attributes
                    .iter()
                    .map(|(name, value)| (name.clone(), value.clone())),
            ),
        }
        self
    }

    /// The attributes it initialises.
    pub fn inits(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.init.iter().flat_map(|init| init.iter())
    }

    pub fn add(mut self, name: impl Into<Cow<'static, str>>, delta: i64) -> Self {
        self.add.push((name.into(), delta));
        self
    }

    /// The attributes it sets or adds to: the initialised ones are a map's keys, so distinct.
    fn set_or_added(&self) -> impl Iterator<Item = &str> {
        self.set
            .iter()
            .map(|(name, _)| name.as_str())
            .chain(self.add.iter().map(|(name, _)| name.as_ref()))
    }

    /// What any adapter refuses whatever the item: a key attribute, an attribute named twice,
    /// a value no item can hold. Found without the item, so without waiting on it.
    pub fn validate(&self) -> Result<(), TableError> {
        self.validate_named()?;
        self.validate_init()
    }

    /// [`Update::validate`] of what the update sets and adds to, and of their names against
    /// those `init` sets: all but what `init`'s attributes are, which only they decide.
    pub fn validate_named(&self) -> Result<(), TableError> {
        // Compared pairwise, without collecting: an update sets or adds a handful of
        // attributes, and a counter's is validated on every click.
        for (index, name) in self.set_or_added().enumerate() {
            let twice = self.set_or_added().take(index).any(|other| other == name)
                || self
                    .init
                    .as_ref()
                    .is_some_and(|init| init.contains_key(name));
            if twice {
                return Err(TableError::Invalid(format!("`{name}` is updated twice")));
            }
        }
        for name in self.set_or_added() {
            refuse_key_attribute(name)?;
        }
        for (name, value) in &self.set {
            check_attribute(name, value)?;
        }
        // A counter is a number: it may not be an index attribute, which must be a string.
        for (name, delta) in &self.add {
            check_attribute(name, &Value::from(*delta))?;
        }
        Ok(())
    }

    /// [`Update::validate`] of `init`'s attributes alone. An adapter that knows this very
    /// `init` passed it before (an `Arc` cannot change while another shares it) may skip it:
    /// a counter's `init` is a dozen attributes, shared by every click.
    pub fn validate_init(&self) -> Result<(), TableError> {
        let Some(init) = &self.init else {
            return Ok(());
        };
        for (name, value) in init.iter() {
            refuse_key_attribute(name)?;
            check_attribute(name, value)?;
        }
        Ok(())
    }

    /// Whether a [valid](Update::validate) update can apply to `item` (or to a new item):
    /// its counters are integers that do not overflow.
    pub fn check(&self, item: Option<&Item>) -> Result<(), TableError> {
        for (name, delta) in &self.add {
            counter(name, item.and_then(|item| item.get(name.as_ref())))?
                .checked_add(*delta)
                .ok_or_else(|| TableError::Invalid(format!("`{name}` would overflow")))?;
        }
        Ok(())
    }

    /// Applies the update to an item's attributes, as every adapter that computes it must.
    pub fn apply(&self, item: &mut Item) -> Result<(), TableError> {
        self.validate()?;
        self.check(Some(item))?;
        self.apply_checked(item)
    }

    /// [`Update::apply`] for an update already [validated](Update::validate) and
    /// [checked](Update::check) against this item.
    pub fn apply_checked(&self, item: &mut Item) -> Result<(), TableError> {
        for (name, value) in &self.set {
            item.insert(name.clone(), value.clone());
        }
        for (name, value) in self.inits() {
            if !item.contains_key(name) {
                item.insert(name.clone(), value.clone());
            }
        }
        self.apply_added(item)
    }

    /// [`Update::apply_checked`] for an item known to hold every attribute `init` sets (one
    /// this update's `init` was applied to before): its sets and counters alone.
    pub fn apply_checked_to_initialised(&self, item: &mut Item) -> Result<(), TableError> {
        for (name, value) in &self.set {
            item.insert(name.clone(), value.clone());
        }
        self.apply_added(item)
    }

    fn apply_added(&self, item: &mut Item) -> Result<(), TableError> {
        for (name, delta) in &self.add {
            match item.get_mut(name.as_ref()) {
                Some(value) => *value = Value::from(counter(name, Some(value))? + delta),
                None => {
                    drop(item.insert(name.to_string(), Value::from(counter(name, None)? + delta)))
                }
            }
        }
        Ok(())
    }
}

/// A counter's value: absent or null is 0; anything but an integer is refused.
fn counter(name: &str, value: Option<&Value>) -> Result<i64, TableError> {
    match value {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| TableError::Invalid(format!("`{name}` is not an integer counter"))),
        Some(_) => Err(TableError::Invalid(format!("`{name}` is not a number"))),
    }
}

fn refuse_key_attribute(name: &str) -> Result<(), TableError> {
    if name == PK || name == SK {
        return Err(TableError::Invalid(format!(
            "`{name}` is part of the key and cannot change"
        )));
    }
    Ok(())
}

/// One write of a transaction.
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    Put {
        item: Item,
        cond: Cond,
    },
    Update {
        key: Key,
        update: Update,
        cond: Cond,
    },
    Delete {
        key: Key,
        cond: Cond,
    },
    /// Writes nothing; only its condition must hold (`ConditionCheck`).
    Check {
        key: Key,
        cond: Cond,
    },
    /// An unconditional put of a record [rendered](Rendered) once: the click path's form.
    PutRendered {
        row: Rendered,
    },
}

/// A record rendered into the form the embedded store keeps: its key, and its other
/// attributes as a JSON object's text. A click stored as an [`Item`] was built into a map,
/// serialised from it and freed again, a fifth of the click path's CPU; rendered, it is
/// serialised once and kept as it is. Adapters that store maps take [`Rendered::to_item`].
///
/// Only for fresh records (a put without a condition) with no index attributes.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendered {
    key: Key,
    attributes: String,
    expires_at: Option<i64>,
}

impl Rendered {
    /// Renders `record`, whose `expires_at` attribute (if any) is `expires_at`.
    ///
    /// The record is one of our own types, so what [`Write::Put`] checks of every item holds
    /// by construction; debug builds, which every test runs, check it all the same.
    pub fn of<T: Serialize>(
        record: &T,
        key: Key,
        expires_at: Option<i64>,
    ) -> Result<Self, TableError> {
        // Room for a click's record at once: grown from empty, the text was copied six times.
        let mut text = Vec::with_capacity(512);
        serde_json::to_writer(&mut text, record)
            .map_err(|e| TableError::Invalid(format!("record does not serialise: {e}")))?;
        let attributes = String::from_utf8(text).expect("serde_json writes UTF-8");
        let rendered = Self {
            key,
            attributes,
            expires_at,
        };
        if cfg!(debug_assertions) {
            let item = rendered.to_item()?;
            check_item(&item)?;
            let named = |name| item.get(name).is_some_and(|v| !v.is_null());
            assert!(
                !named(GSI1PK) && !named(GSI1SK),
                "a rendered record has no index attributes"
            );
            assert_eq!(
                item.get(EXPIRES_AT).and_then(Value::as_i64),
                expires_at,
                "a rendered record's expiry is its `expires_at`"
            );
        }
        Ok(rendered)
    }

    pub fn key(&self) -> &Key {
        &self.key
    }

    /// The attributes but the key, as a JSON object.
    pub fn attributes(&self) -> &str {
        &self.attributes
    }

    pub fn expires_at(&self) -> Option<i64> {
        self.expires_at
    }

    pub fn is_expired(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// The item it renders.
    pub fn to_item(&self) -> Result<Item, TableError> {
        let mut item: Item = serde_json::from_str(&self.attributes)
            .map_err(|e| TableError::Invalid(format!("a record must serialise to a map: {e}")))?;
        if item.contains_key(PK) || item.contains_key(SK) {
            return Err(TableError::Invalid(
                "a rendered record holds its key apart".into(),
            ));
        }
        item.insert(PK.into(), Value::String(self.key.pk.clone()));
        item.insert(SK.into(), Value::String(self.key.sk.clone()));
        Ok(item)
    }
}

impl Write {
    pub fn key(&self) -> Result<Key, TableError> {
        let (pk, sk) = self.key_parts()?;
        Ok(Key::new(pk, sk))
    }

    /// [`Write::key`], borrowed.
    pub fn key_parts(&self) -> Result<(&str, &str), TableError> {
        match self {
            Write::Put { item, .. } => Key::parts_of(item),
            Write::Update { key, .. } | Write::Delete { key, .. } | Write::Check { key, .. } => {
                key.parts()
            }
            Write::PutRendered { row } => row.key.parts(),
        }
    }

    pub fn cond(&self) -> &Cond {
        match self {
            Write::Put { cond, .. }
            | Write::Update { cond, .. }
            | Write::Delete { cond, .. }
            | Write::Check { cond, .. } => cond,
            Write::PutRendered { .. } => &Cond::Always,
        }
    }
}

/// Which ordering a query reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Index {
    /// By `pk`, ordered by `sk`.
    Primary,
    /// By `gsi1pk`, ordered by `gsi1sk`.
    Gsi1,
}

/// The sort-key range a query reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SortKey {
    Any,
    Prefix(String),
    /// Inclusive at both ends.
    Between(String, String),
}

/// A query of one partition.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    pub index: Index,
    pub partition: String,
    pub sort: SortKey,
    pub descending: bool,
    /// At most this many items in a page (1..=1000).
    pub limit: usize,
    /// Where the previous page ended.
    pub after: Option<Cursor>,
}

impl Query {
    pub fn partition(partition: impl Into<String>) -> Self {
        Self {
            index: Index::Primary,
            partition: partition.into(),
            sort: SortKey::Any,
            descending: false,
            limit: 100,
            after: None,
        }
    }

    pub fn gsi1(partition: impl Into<String>) -> Self {
        Self {
            index: Index::Gsi1,
            ..Self::partition(partition)
        }
    }

    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.sort = SortKey::Prefix(prefix.into());
        self
    }

    pub fn between(mut self, from: impl Into<String>, to: impl Into<String>) -> Self {
        self.sort = SortKey::Between(from.into(), to.into());
        self
    }

    pub fn descending(mut self) -> Self {
        self.descending = true;
        self
    }

    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    pub fn after(mut self, cursor: Option<Cursor>) -> Self {
        self.after = cursor;
        self
    }

    pub fn validate(&self) -> Result<(), TableError> {
        if !(1..=1000).contains(&self.limit) {
            return Err(TableError::Invalid("query limit must be 1..=1000".into()));
        }
        if self.partition.is_empty() {
            return Err(TableError::Invalid(
                "query partition must not be empty".into(),
            ));
        }
        // DynamoDB refuses an empty string in any key condition; SQLite would take one and
        // read everything. Refused on every adapter, so the embedded tests catch such a query.
        let empty_bound = match &self.sort {
            SortKey::Any => false,
            SortKey::Prefix(prefix) => prefix.is_empty(),
            SortKey::Between(from, to) => from.is_empty() || to.is_empty(),
        };
        if empty_bound {
            return Err(TableError::Invalid(
                "a query's sort-key condition must not hold an empty string".into(),
            ));
        }
        Ok(())
    }
}

/// An opaque position in a query, handed back to read the next page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor(pub String);

/// One page of a query. `next` is `None` when the partition has no more items; it may be
/// `Some` on the last page too (DynamoDB cannot always tell), in which case the next page is empty.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page {
    pub items: Vec<Item>,
    pub next: Option<Cursor>,
}

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// A condition did not hold. `write` is the index of the failing write (0 for a single
    /// write); `existing` is the live item as it stood, if there was one.
    #[error("condition failed on write {write}")]
    Conflict {
        write: usize,
        existing: Option<Box<Item>>,
    },
    /// The request itself is wrong (a programming error, never the user's).
    #[error("invalid table request: {0}")]
    Invalid(String),
    /// The backend failed; the write may or may not have happened.
    #[error("table backend failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl TableError {
    pub fn backend(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Backend(Box::new(error))
    }

    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }
}

#[async_trait]
pub trait Table: Send + Sync {
    /// The live item with this key.
    async fn get(&self, key: &Key) -> Result<Option<Item>, TableError>;

    /// Writes a whole item, replacing any item with its key, if `cond` holds.
    async fn put(&self, item: Item, cond: Cond) -> Result<(), TableError>;

    /// Updates (or creates) an item if `cond` holds, and returns it as it now is.
    async fn update(&self, key: &Key, update: Update, cond: Cond) -> Result<Item, TableError>;

    /// Deletes an item if `cond` holds, and returns the live item it removed.
    async fn delete(&self, key: &Key, cond: Cond) -> Result<Option<Item>, TableError>;

    /// One page of a partition's live items in sort-key order.
    async fn query(&self, query: Query) -> Result<Page, TableError>;

    /// Applies every write or none: up to [`MAX_TRANSACTION_WRITES`], one per key.
    async fn transact(&self, writes: Vec<Write>) -> Result<(), TableError>;

    /// Applies every write or none (puts and updates only), made durable soon rather than
    /// before answering: an adapter may batch such writes (the embedded store commits them
    /// together within a few milliseconds). Conditions are checked now, and `get` and later
    /// conditions see the writes at once; `query` after the next [`Table::flush`]. For what may
    /// be lost in a crash (clicks and their counters), never for money. A key written this way
    /// takes only deferred writes: a direct write to it commits the batch first, but deferred
    /// and direct writes racing on one key are not ordered.
    async fn transact_deferred(&self, writes: Vec<Write>) -> Result<(), TableError> {
        match <[Write; 1]>::try_from(writes) {
            Ok([Write::Put { item, cond }]) => self.put(item, cond).await,
            Ok([Write::Update { key, update, cond }]) => {
                self.update(&key, update, cond).await.map(drop)
            }
            Ok([write]) => self.transact(vec![write]).await,
            Err(writes) => self.transact(writes).await,
        }
    }

    /// Updates (or creates) an item if `cond` holds and returns it as it now is, made durable
    /// soon, as [`Table::transact_deferred`].
    async fn update_deferred(
        &self,
        key: &Key,
        update: Update,
        cond: Cond,
    ) -> Result<Item, TableError> {
        self.update(key, update, cond).await
    }

    /// Makes every deferred write durable now (a clean shutdown calls it).
    async fn flush(&self) -> Result<(), TableError> {
        Ok(())
    }

    /// Deletes every item whose `expires_at` has passed; answers how many. A backend that
    /// deletes them itself (DynamoDB's TTL, within about two days) has nothing to do here:
    /// reads filter expired items either way.
    async fn purge_expired(&self) -> Result<u64, TableError> {
        Ok(0)
    }
}

/// Checks a transaction's shape the way DynamoDB does, before any adapter runs it.
pub fn validate_transaction(writes: &[Write]) -> Result<(), TableError> {
    if writes.is_empty() || writes.len() > MAX_TRANSACTION_WRITES {
        return Err(TableError::Invalid(format!(
            "a transaction takes 1..={MAX_TRANSACTION_WRITES} writes, not {}",
            writes.len()
        )));
    }
    let mut keys = writes
        .iter()
        .map(Write::key_parts)
        .collect::<Result<Vec<_>, _>>()?;
    keys.sort_unstable();
    if keys.windows(2).any(|pair| pair[0] == pair[1]) {
        return Err(TableError::Invalid(
            "two writes of a transaction touch one item".into(),
        ));
    }
    Ok(())
}

/// Refuses an item no adapter can hold, before anything is written: a missing or empty key
/// part, or an attribute [`check_attribute`] refuses.
pub fn check_item(item: &Item) -> Result<(), TableError> {
    Key::parts_of(item)?;
    for (name, value) in item {
        check_attribute(name, value)?;
    }
    Ok(())
}

/// Refuses a value no item can hold under this name: a float anywhere (money never travels as
/// one), or a reserved attribute of the wrong type (every adapter indexes them).
pub fn check_attribute(name: &str, value: &Value) -> Result<(), TableError> {
    let fits = match name {
        GSI1PK | GSI1SK => value.is_string() || value.is_null(),
        EXPIRES_AT => value.is_i64() || value.is_null(),
        _ => true,
    };
    if !fits {
        return Err(TableError::Invalid(format!(
            "`{name}` cannot take that type of value"
        )));
    }
    if has_float(value) {
        return Err(TableError::Invalid("numbers must be integers".into()));
    }
    Ok(())
}

/// Whether a value is or holds a float.
fn has_float(value: &Value) -> bool {
    match value {
        Value::Number(n) => !n.is_i64() && !n.is_u64(),
        Value::Array(values) => values.iter().any(has_float),
        Value::Object(map) => map.values().any(has_float),
        _ => false,
    }
}

/// Whether an item has expired at `now` (epoch seconds).
pub fn is_expired(item: &Item, now: i64) -> bool {
    item.get(EXPIRES_AT)
        .and_then(Value::as_i64)
        .is_some_and(|at| at <= now)
}

/// Whether `cond` holds over the live item (`None` when absent or expired).
pub fn cond_holds(cond: &Cond, live: Option<&Item>) -> bool {
    match (cond, live) {
        (Cond::Always, _) => true,
        (Cond::NotExists, live) => live.is_none(),
        (Cond::Exists, live) => live.is_some(),
        (Cond::Equals(name, value), Some(item)) => item.get(name) == Some(value),
        (Cond::Equals(..), None) => false,
        (Cond::Below(name, limit), Some(item)) => item
            .get(name)
            .and_then(Value::as_i64)
            .is_none_or(|v| v < *limit),
        (Cond::Below(..), None) => true,
    }
}

/// Serialises a record into an item with its place in the table.
pub fn to_item<T: Serialize>(record: &T, key: &Key) -> Result<Item, TableError> {
    let Value::Object(mut item) = serde_json::to_value(record)
        .map_err(|e| TableError::Invalid(format!("record does not serialise: {e}")))?
    else {
        return Err(TableError::Invalid(
            "a record must serialise to a map".into(),
        ));
    };
    item.insert(PK.into(), Value::String(key.pk.clone()));
    item.insert(SK.into(), Value::String(key.sk.clone()));
    Ok(item)
}

/// Reads a record back from an item; the reserved attributes are ignored.
pub fn from_item<T: DeserializeOwned>(item: Item) -> Result<T, TableError> {
    serde_json::from_value(Value::Object(item))
        .map_err(|e| TableError::Backend(format!("stored item does not parse: {e}").into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Priced {
        price: f64,
    }

    #[derive(Serialize)]
    struct Keyed {
        pk: &'static str,
    }

    // Rendering checks in debug builds only (see `Rendered::of`).
    #[cfg(debug_assertions)]
    #[test]
    fn rendering_refuses_what_no_item_may_hold() {
        let key = Key::new("P", "S");
        assert!(matches!(
            Rendered::of(&Priced { price: 1.5 }, key.clone(), None),
            Err(TableError::Invalid(_))
        ));
        assert!(matches!(
            Rendered::of(&Keyed { pk: "other" }, key.clone(), None),
            Err(TableError::Invalid(_))
        ));
        assert!(matches!(
            Rendered::of(&[1, 2], key, None),
            Err(TableError::Invalid(_))
        ));
    }

    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "expiry")]
    fn rendering_checks_the_expiry_it_is_given() {
        #[derive(Serialize)]
        struct Expiring {
            expires_at: i64,
        }
        let _ = Rendered::of(&Expiring { expires_at: 10 }, Key::new("P", "S"), Some(11));
    }

    #[test]
    fn init_fills_only_what_the_item_lacks() {
        let mut item: Item =
            serde_json::from_value(serde_json::json!({"b": 1, "d": 2, "n": 3})).unwrap();
        let init: Item =
            serde_json::from_value(serde_json::json!({"a": 0, "b": 0, "c": 0, "d": 0, "z": 0}))
                .unwrap();
        let update = Update::default()
            .init_all(Arc::new(init))
            .add("n", 1)
            .add("y", 5);
        update.apply(&mut item).unwrap();
        assert_eq!(
            Value::Object(item),
            serde_json::json!({"a": 0, "b": 1, "c": 0, "d": 2, "n": 4, "y": 5, "z": 0})
        );
    }
}
