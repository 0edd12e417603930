//! Report counters, kept as traffic is recorded: one item per UTC hour and combination of
//! report dimensions, written in the same all-or-nothing write as the click or conversion it
//! counts, so that reports always equal the records.
//!
//! | record | pk | sk |
//! | --- | --- | --- |
//! | advertiser's counters | `STATS#ADV#{advertiser}#{shard}` | `{YYYY-MM-DDTHH}#{c\|v\|k}#{dimensions digest}` |
//! | affiliate's counters | `STATS#AFF#{affiliate}#{shard}` | the same |
//! | advertiser's totals | `TOTALS#ADV#{advertiser}#{shard}` | the same, of offer, affiliate and currency alone |
//! | affiliate's totals | `TOTALS#AFF#{affiliate}#{shard}` | the same |
//! | affiliate's sub-id breakdowns | `BREAKDOWN#AFF#{affiliate}#{shard}` | `{sub1…sub5}#{YYYY-MM-DD}#{c\|v\|k}#{digest}` |
//! | when totals and breakdowns began | `META#report-totals` (see [`Store::setting`]) | `META` |
//!
//! Each party's counters are its own partitions, so a report reads only what its caller may
//! see. A busy advertiser's clicks would make one partition hot, so counters are spread over
//! [`SHARDS`] partitions (clicks by the thread that counts them, conversions and calls by
//! their id) and a report reads them all. Clicks (`c`, written deferred) and conversions
//! (`v`, written in the conversion's transaction) keep separate items, so deferred and direct
//! writes never meet on one key.
//!
//! Every count goes to three families.
//! - The detailed counters keep every dimension (country, device, sub-ids) by hour, so there
//!   are about as many of them as clicks when sub-ids vary. They answer any report.
//! - The totals keep offer, affiliate and currency by hour, with each count split by country
//!   and by device in the same item (`country=US:clicks`, `device=mobile:clicks`: a few
//!   hundred values at most). A few items an hour, they answer every report that groups by
//!   time, offer, affiliate and at most one of country and device (the overviews and most
//!   reports), in any time zone.
//! - The sub-id breakdowns keep one sub-id each with offer, affiliate and currency, by UTC
//!   day, for the affiliate (sub-ids are theirs alone): a source's sub-id is one item a day,
//!   not one an hour. With the totals, they answer the affiliate's report by one sub-id over
//!   whole UTC days.
//!
//! Where a report is by a dimension, the records without it are the totals less the counts
//! by its values, which are written together.
//!
//! Totals and breakdowns were added after the first release: a store records the hour from
//! which they are complete, and what came before it is read from the detail
//! ([`Store::report_counters`]).

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::Store;
use crate::domain::accounts::Party;
use crate::domain::ids::{AdvertiserId, AffiliateId, OfferId};
use crate::domain::money::Currency;
use crate::domain::offer::DeviceType;
use crate::domain::tracking::{Click, Conversion, ConversionStatus, Subs, tracking_expiry};
use crate::ports::table::{Cond, Item, Key, Query, TableError, Update, Write, from_item};

/// How many partitions one party's counters are spread over.
pub const SHARDS: u32 = 4;

/// The report names of the dimensions the totals are split by.
pub const SPLIT_COUNTRY: &str = "country";
pub const SPLIT_DEVICE: &str = "device";

/// Every count a counter keeps.
const COUNT_NAMES: [&str; 9] = [
    "clicks",
    "unique_clicks",
    "invalid_clicks",
    "calls",
    "static_calls",
    "conversions",
    "rejected_conversions",
    "revenue",
    "payout",
];

/// The totals' attribute that counts `count` for one value of a dimension they are split by:
/// `country=US:clicks`. A few hundred countries and devices make a few thousand names, kept
/// once for the process's life so that counting borrows them; a value unlike a country code or
/// a device's name (which no click should carry) gets a name of its own each time.
fn split_name(dimension: &str, value: &str, count: &str) -> Cow<'static, str> {
    static NAMES: std::sync::LazyLock<std::sync::Mutex<std::collections::HashSet<&'static str>>> =
        std::sync::LazyLock::new(Default::default);
    let name = format!("{dimension}={value}:{count}");
    let ordinary = value.len() <= 16
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !ordinary {
        return Cow::Owned(name);
    }
    let mut names = NAMES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    match names.get(name.as_str()) {
        Some(known) => Cow::Borrowed(known),
        None => {
            let known: &'static str = Box::leak(name.into_boxed_str());
            names.insert(known);
            Cow::Borrowed(known)
        }
    }
}

/// The value and count of a split attribute of `dimension`, if `name` is one.
fn parse_split<'a>(name: &'a str, dimension: &str) -> Option<(&'a str, &'a str)> {
    name.strip_prefix(dimension)?
        .strip_prefix('=')?
        .rsplit_once(':')
}

/// What a report can group by, for one counted click or conversion.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Dimensions {
    pub offer_id: OfferId,
    pub affiliate_id: AffiliateId,
    pub advertiser_id: AdvertiserId,
    pub country: Option<String>,
    pub device: Option<DeviceType>,
    pub subs: Subs,
    pub currency: Currency,
}

impl Dimensions {
    /// The dimensions the totals keep: offer, affiliate, advertiser and currency.
    fn totals(&self) -> Self {
        Self {
            country: None,
            device: None,
            subs: Subs::default(),
            ..self.clone()
        }
    }

    /// Each sub-id these have, by its name, with the totals' dimensions and it alone.
    fn sub_breakdowns(&self) -> Vec<(&'static str, Self)> {
        let totals = self.totals();
        let mut breakdowns = Vec::new();
        for (index, name) in Subs::NAMES.iter().enumerate() {
            if let Some(value) = self.subs.get(index) {
                let mut values: [Option<String>; 5] = Default::default();
                values[index] = Some(value.to_string());
                let subs = Subs::new(values);
                breakdowns.push((
                    *name,
                    Self {
                        subs,
                        ..totals.clone()
                    },
                ));
            }
        }
        breakdowns
    }

    /// The country's and the device's values, by their report names: the totals count by
    /// them too (see [`split_name`]).
    fn splits(&self) -> Vec<(&'static str, String)> {
        let mut splits = Vec::new();
        if let Some(country) = &self.country {
            splits.push((SPLIT_COUNTRY, country.clone()));
        }
        if let Some(device) = self.device
            && let Ok(Value::String(name)) = serde_json::to_value(device)
        {
            splits.push((SPLIT_DEVICE, name));
        }
        splits
    }

    pub fn of_click(click: &Click, currency: Currency) -> Self {
        Self {
            offer_id: click.offer_id,
            affiliate_id: click.affiliate_id,
            advertiser_id: click.advertiser_id,
            country: click.visitor.country.clone(),
            device: click.device,
            subs: click.subs.clone(),
            currency,
        }
    }
}

impl HourCounters {
    /// Sets the count named `name` (one of [`COUNT_NAMES`]).
    fn set(&mut self, name: &str, value: i64) {
        let count = match name {
            "clicks" => &mut self.clicks,
            "unique_clicks" => &mut self.unique_clicks,
            "invalid_clicks" => &mut self.invalid_clicks,
            "calls" => &mut self.calls,
            "static_calls" => &mut self.static_calls,
            "conversions" => &mut self.conversions,
            "rejected_conversions" => &mut self.rejected_conversions,
            "revenue" => &mut self.revenue,
            "payout" => &mut self.payout,
            _ => return,
        };
        *count = value;
    }

    /// The same counts, with the dimensions of the totals alone.
    fn without_breakdown(&self) -> Self {
        Self {
            dimensions: self.dimensions.totals(),
            ..self.clone()
        }
    }

    /// Every count multiplied by `factor`: -1 takes them away, 0 leaves none.
    fn times(self, factor: i64) -> Self {
        Self {
            clicks: self.clicks * factor,
            unique_clicks: self.unique_clicks * factor,
            invalid_clicks: self.invalid_clicks * factor,
            calls: self.calls * factor,
            static_calls: self.static_calls * factor,
            conversions: self.conversions * factor,
            rejected_conversions: self.rejected_conversions * factor,
            revenue: self.revenue * factor,
            payout: self.payout * factor,
            ..self
        }
    }
}

/// One hour's counters for one combination of dimensions.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct HourCounters {
    /// The start of the UTC hour.
    pub hour: Timestamp,
    #[serde(flatten)]
    pub dimensions: Dimensions,
    #[serde(default)]
    pub clicks: i64,
    #[serde(default)]
    pub unique_clicks: i64,
    /// Robots, link previews, HEAD requests: recorded, not counted as clicks.
    #[serde(default)]
    pub invalid_clicks: i64,
    /// Calls to tracking numbers.
    #[serde(default)]
    pub calls: i64,
    /// Calls to static numbers: visits of their own, with no click before them (a pool
    /// number's call comes from a visitor whose click is counted).
    #[serde(default)]
    pub static_calls: i64,
    /// Pending and approved conversions.
    #[serde(default)]
    pub conversions: i64,
    /// Rejected on arrival (a cap).
    #[serde(default)]
    pub rejected_conversions: i64,
    /// Minor units of `dimensions.currency`.
    #[serde(default)]
    pub revenue: i64,
    #[serde(default)]
    pub payout: i64,
}

/// The three families of counters: see the module's documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Every dimension.
    Detail,
    /// Offer, affiliate and currency, each count also split by country and by device.
    Totals,
    /// Offer, affiliate, currency and one sub-id, by UTC day: the affiliate's.
    Breakdown,
}

impl Family {
    fn prefix(self) -> &'static str {
        match self {
            Self::Detail => "STATS",
            Self::Totals => "TOTALS",
            Self::Breakdown => "BREAKDOWN",
        }
    }
}

/// A party's counter partition of one family and shard.
fn partition(family: Family, party: Party, shard: u32) -> String {
    let family = family.prefix();
    match party {
        Party::Advertiser(id) => format!("{family}#ADV#{id}#{shard}"),
        Party::Affiliate(id) => format!("{family}#AFF#{id}#{shard}"),
    }
}

/// `2026-11-29T09`: the UTC hour, as sort keys order it.
fn hour_label(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H").to_string()
}

/// `2026-11-29`: the UTC day.
fn day_label(at: Timestamp) -> String {
    at.strftime("%Y-%m-%d").to_string()
}

fn day_start(at: Timestamp) -> Timestamp {
    let second = at.as_second();
    Timestamp::from_second(second - second.rem_euclid(DAY)).expect("a day's start is in range")
}

/// The first UTC day starting at or after `at`.
fn day_ceil(at: Timestamp) -> Timestamp {
    let start = day_start(at);
    if start == at {
        start
    } else {
        start + jiff::SignedDuration::from_secs(DAY)
    }
}

const DAY: i64 = 24 * 3600;

fn hour_start(at: Timestamp) -> Timestamp {
    let second = at.as_second();
    Timestamp::from_second(second - second.rem_euclid(3600)).expect("an hour's start is in range")
}

/// The first hour starting at or after `at`.
fn hour_ceil(at: Timestamp) -> Timestamp {
    let start = hour_start(at);
    if start == at {
        start
    } else {
        start + jiff::SignedDuration::from_hours(1)
    }
}

/// The shard a record is counted in, from its id. Any spread would do, since a report sums
/// every shard; by id, a conversion's later moves between statuses land in the shard that
/// counted it first, so no shard's counts go below zero.
fn shard_of(id: &[u8]) -> usize {
    use std::hash::BuildHasher;
    let shard = foldhash::fast::FixedState::default().hash_one(id) % u64::from(SHARDS);
    shard as usize
}

/// The shard this thread counts clicks in. Clicks are only ever added, so any spread will
/// do: a shard per thread keeps each worker's clicks on counter items no other worker
/// touches. (By click id, both workers of the local runner updated the same items, which
/// then passed between their CPUs' caches on every click, under the batch's lock.) Threads
/// take the shards in turn from a random start, so that Lambda instances spread over them
/// at random.
fn thread_shard() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: std::sync::LazyLock<AtomicUsize> =
        std::sync::LazyLock::new(|| AtomicUsize::new(rand::random::<u32>() as usize));
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS as usize;
    }
    SHARD.with(|shard| *shard)
}

/// One counter of the parties in one family: its key in each party's shards, and the
/// attributes its first count writes.
struct FamilyCounter {
    /// The advertiser's key in each shard, then the affiliate's.
    keys: Vec<Key>,
    init: Arc<Item>,
    /// Whether the advertiser keeps it too: not a sub-id's breakdown, as sub-ids are the
    /// affiliate's alone (an operator's report of an advertiser by sub-id reads the detail).
    advertiser_sees: bool,
}

impl FamilyCounter {
    /// The counter of `dimensions` in the hour or day starting at `start`, sorted under
    /// `label`.
    fn new(
        family: Family,
        label: &str,
        kind: &str,
        start: Timestamp,
        dimensions: &Dimensions,
    ) -> Result<Self, TableError> {
        let Value::Object(mut init) = serde_json::to_value(dimensions)
            .map_err(|e| TableError::Invalid(format!("dimensions do not serialise: {e}")))?
        else {
            unreachable!("dimensions are a struct")
        };
        // The combination's name in the sort key: equal dimensions, equal digest (the map's
        // order is the keys' or the struct's, the same for every click, so its JSON is
        // canonical).
        let canonical = serde_json::to_vec(&init).expect("a JSON map serialises");
        let digest = hex::encode(&Sha256::digest(&canonical)[..12]);
        init.insert("hour".into(), start.to_string().into());
        init.insert("expires_at".into(), tracking_expiry(start).into());
        let sort_key = format!("{label}#{kind}#{digest}");
        let parties = [
            Party::Advertiser(dimensions.advertiser_id),
            Party::Affiliate(dimensions.affiliate_id),
        ];
        let keys = parties
            .into_iter()
            .flat_map(|party| (0..SHARDS).map(move |shard| partition(family, party, shard)))
            .map(|partition| Key::new(partition, sort_key.clone()))
            .collect();
        Ok(Self {
            keys,
            init: Arc::new(init),
            advertiser_sees: true,
        })
    }

    /// The writes that add `counts` to the parties' counters in `shard`.
    fn add(
        &self,
        shard: usize,
        counts: &[(&'static str, i64)],
        extra: impl Iterator<Item = (Cow<'static, str>, i64)>,
        writes: &mut Vec<Write>,
    ) {
        // What identifies the counter is written with its first count only (`init`): a busy
        // counter's later counts only add.
        let mut update = Update::default().init_all(self.init.clone());
        for (name, delta) in counts {
            update = update.add(*name, *delta);
        }
        for (name, delta) in extra {
            update = update.add(name, delta);
        }
        if self.advertiser_sees {
            writes.push(Write::Update {
                key: self.keys[shard].clone(),
                update: update.clone(),
                cond: Cond::Always,
            });
        }
        writes.push(Write::Update {
            key: self.keys[SHARDS as usize + shard].clone(),
            update,
            cond: Cond::Always,
        });
    }
}

/// One combination's counters in every family.
struct Counter {
    detail: FamilyCounter,
    totals: FamilyCounter,
    /// The totals' attributes that split each count by country and device: (count, name).
    splits: Vec<(&'static str, Cow<'static, str>)>,
    /// One for each sub-id the combination has: the affiliate's alone.
    sub_breakdowns: Vec<FamilyCounter>,
}

impl Counter {
    fn new(kind: &str, hour: Timestamp, dimensions: &Dimensions) -> Result<Self, TableError> {
        let label = hour_label(hour);
        let totals = dimensions.totals();
        let day = day_start(hour);
        let mut sub_breakdowns = Vec::new();
        for (name, alone) in dimensions.sub_breakdowns() {
            let label = format!("{name}#{}", day_label(day));
            let mut breakdown = FamilyCounter::new(Family::Breakdown, &label, kind, day, &alone)?;
            breakdown.advertiser_sees = false;
            sub_breakdowns.push(breakdown);
        }
        let splits = dimensions
            .splits()
            .into_iter()
            .flat_map(|(dimension, value)| {
                COUNT_NAMES
                    .iter()
                    .map(move |count| (*count, split_name(dimension, &value, count)))
            })
            .collect();
        Ok(Self {
            detail: FamilyCounter::new(Family::Detail, &label, kind, hour, dimensions)?,
            totals: FamilyCounter::new(Family::Totals, &label, kind, hour, &totals)?,
            splits,
            sub_breakdowns,
        })
    }
}

/// Counters worked out, by combination: a busy link's clicks share a few combinations, and
/// working one out (JSON, SHA-256) cost a click a tenth of its CPU.
#[derive(Default)]
struct Counters(HashMap<Dimensions, Known, foldhash::fast::RandomState>);

/// A combination's counters: by kind and hour.
type Known = Vec<(&'static str, Timestamp, Arc<Counter>)>;

impl Counters {
    fn find(&self, kind: &str, hour: Timestamp, dimensions: &Dimensions) -> Option<Arc<Counter>> {
        let known = self.0.get(dimensions)?;
        let (_, _, counter) = known.iter().find(|(k, h, _)| *k == kind && *h == hour)?;
        Some(counter.clone())
    }

    fn remember(
        &mut self,
        kind: &'static str,
        hour: Timestamp,
        dimensions: &Dimensions,
        counter: Arc<Counter>,
    ) {
        if self.0.len() >= REMEMBERED {
            self.0.clear();
        }
        let known = self.0.entry(dimensions.clone()).or_default();
        // A few hours and kinds per combination: the oldest goes first.
        if known.len() >= PER_COMBINATION {
            known.remove(0);
        }
        known.push((kind, hour, counter));
    }
}

thread_local! {
    /// Each thread's, looked up without a lock by every click.
    static COUNTERS: RefCell<Counters> = RefCell::default();
}

/// Every thread's, where a thread looks first for a counter it has not met: so that all
/// clicks on one counter carry the very same `init`, which the table then recognises as
/// already applied (a counter per thread made every other click apply it again).
static SHARED_COUNTERS: std::sync::LazyLock<std::sync::Mutex<Counters>> =
    std::sync::LazyLock::new(Default::default);

/// The most combinations remembered; past it, the cache starts afresh.
const REMEMBERED: usize = 4096;
/// The most counters remembered for one combination (its kinds, in the last few hours).
const PER_COMBINATION: usize = 8;

fn counter(
    kind: &'static str,
    hour: Timestamp,
    dimensions: &Dimensions,
) -> Result<Arc<Counter>, TableError> {
    COUNTERS.with_borrow_mut(|local| {
        if let Some(counter) = local.find(kind, hour, dimensions) {
            return Ok(counter);
        }
        let shared = || {
            SHARED_COUNTERS
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        };
        let found = shared().find(kind, hour, dimensions);
        let counter = match found {
            Some(counter) => counter,
            None => {
                // Worked out (JSON, SHA-256) without the lock; a thread that raced this one
                // to it keeps the first.
                let made = Arc::new(Counter::new(kind, hour, dimensions)?);
                let mut shared = shared();
                match shared.find(kind, hour, dimensions) {
                    Some(first) => first,
                    None => {
                        shared.remember(kind, hour, dimensions, made.clone());
                        made
                    }
                }
            }
        };
        local.remember(kind, hour, dimensions, counter.clone());
        Ok(counter)
    })
}

/// The writes that add `counts` to both parties' counters of every family for `dimensions`
/// at `at`, in `shard`.
fn count(
    kind: &'static str,
    shard: usize,
    at: Timestamp,
    dimensions: &Dimensions,
    counts: &[(&'static str, i64)],
) -> Result<Vec<Write>, TableError> {
    let counter = counter(kind, hour_start(at), dimensions)?;
    let mut writes = Vec::with_capacity(4 + counter.sub_breakdowns.len());
    counter
        .detail
        .add(shard, counts, std::iter::empty(), &mut writes);
    // The totals count by country and device too, in the same item: a report by either reads
    // the totals alone.
    let splits = counts.iter().flat_map(|(count, delta)| {
        counter
            .splits
            .iter()
            .filter(move |(split, _)| split == count)
            .map(move |(_, name)| (name.clone(), *delta))
    });
    counter.totals.add(shard, counts, splits, &mut writes);
    for breakdown in &counter.sub_breakdowns {
        breakdown.add(shard, counts, std::iter::empty(), &mut writes);
    }
    Ok(writes)
}

/// Counts a click: as a click (and a unique one) or, for robots, as invalid.
pub fn count_click(click: &Click, currency: Currency) -> Result<Vec<Write>, TableError> {
    let counts: &[(&str, i64)] = match (click.counts(), click.unique) {
        (true, true) => &[("clicks", 1), ("unique_clicks", 1)],
        (true, false) => &[("clicks", 1)],
        (false, _) => &[("invalid_clicks", 1)],
    };
    count(
        "c",
        thread_shard(),
        click.at,
        &Dimensions::of_click(click, currency),
        counts,
    )
}

/// Counts a call under its click's dimensions (a pool number's call under the visitor's
/// click: its country, device and sub-ids). An unattributed call is nobody's: no party's
/// report could show it.
pub fn count_call(
    call: &crate::domain::calls::Call,
    click: Option<&Click>,
    currency: Currency,
) -> Result<Vec<Write>, TableError> {
    let Some(click) = click else {
        return Ok(vec![]);
    };
    let counts: &[(&str, i64)] = if click.stands_for_a_call() {
        &[("calls", 1), ("static_calls", 1)]
    } else {
        &[("calls", 1)]
    };
    count(
        "k",
        shard_of(call.sid.as_bytes()),
        call.started_at,
        &Dimensions::of_click(click, currency),
        counts,
    )
}

/// What a conversion in its status adds to the counters.
fn conversion_counts(conversion: &Conversion) -> [(&'static str, i64); 4] {
    let counted = matches!(
        conversion.status,
        ConversionStatus::Pending | ConversionStatus::Approved
    );
    let (revenue, payout) = (conversion.revenue.minor, conversion.payout.minor);
    [
        ("conversions", i64::from(counted)),
        ("rejected_conversions", i64::from(!counted)),
        ("revenue", if counted { revenue } else { 0 }),
        ("payout", if counted { payout } else { 0 }),
    ]
}

fn count_conversion_change(
    conversion: &Conversion,
    click: &Click,
    counts: Vec<(&'static str, i64)>,
) -> Result<Vec<Write>, TableError> {
    let counts: Vec<(&'static str, i64)> = counts.into_iter().filter(|(_, n)| *n != 0).collect();
    if counts.is_empty() {
        return Ok(vec![]);
    }
    // Counted in the conversion's own hour, whenever its status changes: reports by day say
    // what the conversions of that day became.
    count(
        "v",
        shard_of(&conversion.id.0.to_bytes()),
        conversion.at,
        &Dimensions::of_click(click, conversion.revenue.currency),
        &counts,
    )
}

/// Counts a conversion as it is recorded, under its click's dimensions.
pub fn count_conversion(conversion: &Conversion, click: &Click) -> Result<Vec<Write>, TableError> {
    count_conversion_change(conversion, click, conversion_counts(conversion).to_vec())
}

/// Moves a conversion's counts from its old status to its new one.
pub fn recount_conversion(
    before: &Conversion,
    after: &Conversion,
    click: &Click,
) -> Result<Vec<Write>, TableError> {
    let counts = conversion_counts(after)
        .iter()
        .zip(conversion_counts(before))
        .map(|((name, new), (_, old))| (*name, new - old))
        .collect();
    count_conversion_change(after, click, counts)
}

/// Which counters a report needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// The totals: it groups by day, hour, offer or affiliate alone.
    Totals,
    /// The totals split by country or device ([`SPLIT_COUNTRY`], [`SPLIT_DEVICE`]): it groups
    /// by that and by time, offer or affiliate.
    Split(&'static str),
    /// The affiliate's breakdowns by this sub-id over whole UTC days: it groups by it and by
    /// offer, affiliate or UTC day.
    SubBreakdown(&'static str),
    /// The detail.
    Detail,
}

/// A totals item's counters, and its counts by each value of `dimension`.
fn split_totals(
    item: Item,
    dimension: &str,
) -> Result<(HourCounters, Vec<HourCounters>), TableError> {
    let mut by_value: BTreeMap<&str, HourCounters> = BTreeMap::new();
    let totals: HourCounters = from_item(item.clone())?;
    for (name, count) in &item {
        let Some((value, count_name)) = parse_split(name, dimension) else {
            continue;
        };
        let counted = by_value.entry(value).or_insert_with(|| {
            let mut dimensions = totals.dimensions.clone();
            if dimension == SPLIT_COUNTRY {
                dimensions.country = Some(value.to_string());
            } else {
                dimensions.device = serde_json::from_value(Value::String(value.to_string())).ok();
            }
            HourCounters {
                dimensions,
                ..totals.clone().times(0)
            }
        });
        counted.set(count_name, count.as_i64().unwrap_or_default());
    }
    Ok((totals, by_value.into_values().collect()))
}

/// The setting that holds the hour from which every count reached the totals and the
/// breakdowns.
const TOTALS_SINCE: &str = "report-totals";

impl Store {
    /// A party's counters for the UTC hours starting in `[from, to)`, read from the counters
    /// `need` names where they are complete, and from the detail otherwise.
    pub async fn report_counters(
        &self,
        party: Party,
        from: Timestamp,
        to: Timestamp,
        need: Need,
        now: Timestamp,
    ) -> Result<Vec<HourCounters>, TableError> {
        let since = match need {
            Need::Detail => return self.hour_counters(Family::Detail, party, from, to).await,
            _ => self.totals_since(now).await?,
        };
        // The part `need`'s counters answer: from `since` for the totals; whole UTC days from
        // `since` for the sub-ids' breakdowns.
        let (start, end) = match need {
            Need::SubBreakdown(_) => (day_ceil(from.max(since)), day_start(to)),
            _ => (from.max(since), to),
        };
        if start >= end {
            return self.hour_counters(Family::Detail, party, from, to).await;
        }
        let mut counters = Vec::new();
        if from < start {
            counters.extend(
                self.hour_counters(Family::Detail, party, from, start)
                    .await?,
            );
        }
        // Where a report is by a dimension, the records without it are the totals less the
        // counts by its values (written together): counted here as the totals, and each
        // value's counts taken away again without the value.
        let split = |counters: &mut Vec<HourCounters>, by_value: Vec<HourCounters>| {
            for counted in &by_value {
                counters.push(counted.without_breakdown().times(-1));
            }
            counters.extend(by_value);
        };
        match need {
            Need::Split(dimension) => {
                for item in self.totals_items(party, start, end).await? {
                    let (totals, by_value) = split_totals(item, dimension)?;
                    counters.push(totals);
                    split(&mut counters, by_value);
                }
            }
            Need::SubBreakdown(dimension) => {
                counters.extend(
                    self.hour_counters(Family::Totals, party, start, end)
                        .await?,
                );
                let breakdowns = self.breakdowns(party, dimension, start, end).await?;
                split(&mut counters, breakdowns);
            }
            Need::Totals | Need::Detail => {
                counters.extend(
                    self.hour_counters(Family::Totals, party, start, end)
                        .await?,
                );
            }
        }
        if end < to {
            counters.extend(self.hour_counters(Family::Detail, party, end, to).await?);
        }
        Ok(counters)
    }

    /// A party's totals for the UTC hours starting in `[from, to)`, as stored.
    async fn totals_items(
        &self,
        party: Party,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Item>, TableError> {
        let (first, end) = (hour_label(hour_ceil(from)), hour_label(hour_ceil(to)));
        self.in_every_shard(Family::Totals, party, &first, &end)
            .await
    }

    /// A party's breakdowns by `dimension` for the UTC days starting in `[from, to)`, as
    /// counters whose `hour` is the day's start.
    async fn breakdowns(
        &self,
        party: Party,
        dimension: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<HourCounters>, TableError> {
        let first = format!("{dimension}#{}", day_label(day_ceil(from)));
        let end = format!("{dimension}#{}", day_label(day_ceil(to)));
        self.in_every_shard(Family::Breakdown, party, &first, &end)
            .await
    }

    /// A party's counters of one family for the UTC hours starting in `[from, to)`.
    async fn hour_counters(
        &self,
        family: Family,
        party: Party,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<HourCounters>, TableError> {
        // Sort keys start with the hour, so hour labels bound them: `…T10#…` sorts after
        // `…T10` and before `…T11`, and `between` takes both ends.
        let (first, end) = (hour_label(hour_ceil(from)), hour_label(hour_ceil(to)));
        self.in_every_shard(family, party, &first, &end).await
    }

    /// A party's items of one family whose sort keys are in `[first, end]`, from every shard.
    async fn in_every_shard<T: serde::de::DeserializeOwned>(
        &self,
        family: Family,
        party: Party,
        first: &str,
        end: &str,
    ) -> Result<Vec<T>, TableError> {
        let mut items = Vec::new();
        for shard in 0..SHARDS {
            let query = Query::partition(partition(family, party, shard)).between(first, end);
            items.extend(self.query_all::<T>(query).await?);
        }
        Ok(items)
    }

    /// The hour from which the totals hold every count. A store made by this version holds
    /// them from the start (see [`Store::counts_totals_from_start`]); in a store made before
    /// totals existed, they hold from the hour after the next, when no process of an older
    /// version can still be counting (a deployment replaces every function within minutes).
    /// Decided once, by whichever process asks first, and kept.
    async fn totals_since(&self, now: Timestamp) -> Result<Timestamp, TableError> {
        if let Some(since) = self.counting.totals_since.get() {
            return Ok(*since);
        }
        let since = match self.setting::<Timestamp>(TOTALS_SINCE).await? {
            Some(since) => since,
            None => {
                let proposed = if self.counting.new_store.load(Ordering::Relaxed) {
                    Timestamp::UNIX_EPOCH
                } else {
                    hour_ceil(now) + jiff::SignedDuration::from_hours(1)
                };
                if self.create_setting(TOTALS_SINCE, &proposed).await? {
                    proposed
                } else {
                    // Another process decided first.
                    self.setting::<Timestamp>(TOTALS_SINCE)
                        .await?
                        .ok_or_else(|| TableError::Invalid("report-totals vanished".into()))?
                }
            }
        };
        Ok(*self.counting.totals_since.get_or_init(|| since))
    }

    /// Says that this store was created empty by this process: every count it holds reached
    /// the totals, so they are complete from the start.
    pub fn counts_totals_from_start(&self) {
        self.counting.new_store.store(true, Ordering::Relaxed);
    }
}

/// What this process knows of the store's counting.
#[derive(Default)]
pub(crate) struct Counting {
    /// The store was created empty by this process.
    new_store: AtomicBool,
    /// The hour from which the totals are complete, once known.
    totals_since: OnceLock<Timestamp>,
}
