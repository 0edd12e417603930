//! `Visits` in the memory of the one local process: a map of visitors, each with the links
//! whose unique-click window they opened and their clicks in the current minute, split by
//! visitor into shards, each behind a mutex held for a hash lookup. Expired entries are swept
//! as a shard's visitors grow, so a sweep holds up only the clicks of one shard, briefly.
//!
//! A clean shutdown saves the live entries to a file and the next start reads them back, so a
//! restart does not make a visitor's next click unique again; a crash loses them (the visitor's
//! next click inside the window then counts as unique: a report metric, never money).
//!
//! Memory is bounded: at most [`DEFAULT_HELD`] visitors (or `LEADSREFER_VISITORS_HELD`) are
//! held exactly.
//! Past that, when a sweep frees no room, a new visitor is remembered approximately, in a
//! fixed 9 MiB: their (link, visitor) pairs in two Bloom filters of a day each (a pair in
//! either is not unique), their clicks per minute in a count-min sketch. Both err one way: a
//! visitor may be taken as seen before when they were not, and as clicking more than they did,
//! never the other way round; so a full memory undercounts unique clicks and flags floods a
//! little early, and never counts a repeat as unique.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::ports::TableError;
use crate::ports::visits::{Visit, Visits, minute_of};

pub struct MemoryVisits {
    shards: Vec<Mutex<State>>,
    /// The most visitors one shard holds exactly.
    per_shard: usize,
    /// Visitors past the cap, remembered approximately in fixed memory.
    overflow: Mutex<Overflow>,
    /// Whether any visitor went to `overflow`: until then a new visitor needs no look there.
    overflowed: std::sync::atomic::AtomicBool,
    /// Where a clean shutdown saves the live entries.
    file: Option<PathBuf>,
}

/// The visitors held exactly by default: about 100 MiB of them.
pub const DEFAULT_HELD: usize = 500_000;

/// The most visitors held exactly: `LEADSREFER_VISITORS_HELD`, or [`DEFAULT_HELD`]; the
/// value given when it is not a whole number of at least [`SHARDS`].
pub fn held_from_env() -> Result<usize, String> {
    match std::env::var("LEADSREFER_VISITORS_HELD") {
        Err(_) => Ok(DEFAULT_HELD),
        Ok(text) => text.parse().ok().filter(|held| *held >= SHARDS).ok_or(text),
    }
}

/// Bits of each Bloom filter (4 MiB): a day's million new pairs past the cap are wrongly
/// taken as seen about once in 6,000.
const BLOOM_BITS: usize = 1 << 25;
/// Bits set (and looked at) per pair.
const BLOOM_HASHES: u64 = 4;
/// How long a Bloom filter collects pairs before the older one is emptied for it: a pair is
/// remembered one to two of these.
const GENERATION_SECS: i64 = 24 * 3600;
/// The count-min sketch's rows, and counters in each (1 MiB in all).
const SKETCH_ROWS: usize = 4;
const SKETCH_WIDTH: usize = 1 << 16;

/// Visitors past the cap.
struct Overflow {
    /// The pairs of the current generation (`[generation % 2]`) and of the one before.
    seen: [Vec<u64>; 2],
    generation: i64,
    /// Clicks per visitor in `minute`.
    sketch: Vec<u32>,
    minute: i64,
}

impl Overflow {
    fn new() -> Self {
        Self {
            seen: [vec![0; BLOOM_BITS / 64], vec![0; BLOOM_BITS / 64]],
            generation: 0,
            sketch: vec![0; SKETCH_ROWS * SKETCH_WIDTH],
            minute: i64::MIN,
        }
    }

    /// The bits of a pair: double hashing of one 64-bit hash.
    fn bits(hash: u64) -> impl Iterator<Item = usize> {
        let (a, b) = (hash as u32 as u64, (hash >> 32) | 1);
        (0..BLOOM_HASHES)
            .map(move |i| (a.wrapping_add(i.wrapping_mul(b)) % BLOOM_BITS as u64) as usize)
    }

    /// Moves on to the generation of `second`: the older filter is emptied for it (both,
    /// after a pause of two generations). Answers the current filter's place.
    fn rotate(&mut self, second: i64) -> usize {
        let generation = second.div_euclid(GENERATION_SECS);
        if generation > self.generation {
            let stale = if generation == self.generation + 1 {
                1
            } else {
                2
            };
            for g in 0..stale {
                self.seen[((generation - g).rem_euclid(2)) as usize].fill(0);
            }
            self.generation = generation;
        }
        self.generation.rem_euclid(2) as usize
    }

    /// Whether the pair was seen in this generation or the last; it is seen from now on.
    fn seen_before(&mut self, pair: u64, second: i64) -> bool {
        let current = self.rotate(second);
        let mut seen = [true, true];
        for bit in Self::bits(pair) {
            let (word, mask) = (bit / 64, 1u64 << (bit % 64));
            for (filter, seen) in self.seen.iter().zip(&mut seen) {
                *seen &= filter[word] & mask != 0;
            }
            self.seen[current][word] |= mask;
        }
        seen[0] || seen[1]
    }

    /// Whether the pair was seen in this generation or the last (adding nothing).
    fn contains(&mut self, pair: u64, second: i64) -> bool {
        self.rotate(second);
        self.seen
            .iter()
            .any(|filter| Self::bits(pair).all(|bit| filter[bit / 64] & (1u64 << (bit % 64)) != 0))
    }

    /// Counts a click of the visitor in `minute`; answers their clicks in it (at least).
    fn count(&mut self, visitor: u64, minute: i64) -> i64 {
        if minute != self.minute {
            self.sketch.fill(0);
            self.minute = minute;
        }
        let mut least = u32::MAX;
        for row in 0..SKETCH_ROWS {
            let column = (visitor.rotate_left(16 * row as u32) as usize) % SKETCH_WIDTH;
            let counter = &mut self.sketch[row * SKETCH_WIDTH + column];
            *counter = counter.saturating_add(1);
            least = least.min(*counter);
        }
        i64::from(least)
    }
}

fn hash_of(parts: &[&str]) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(0x1ead_5e7e).hash_one(parts)
}

/// What one shard knows of its visitors: one map, so that a click looks its visitor up once.
/// (Two maps, of `link␟visitor` and of visitor, each keyed by a string of its own, cost the
/// click path two allocations and six cache misses: under load with many visitors they were
/// 6% of the runner's CPU.)
#[derive(Default)]
struct State {
    visitors: Visitors,
    /// The links of the shard's windows, each held once and shared by all its windows.
    links: HashSet<Arc<str>, foldhash::fast::RandomState>,
    /// Visitor count at which the next sweep runs.
    sweep_at: usize,
    /// When the shard was last swept at its cap.
    swept_full_at: Option<i64>,
}

type Visitors = HashMap<Box<str>, Recent, foldhash::fast::RandomState>;

/// A visitor's recent clicks.
struct Recent {
    /// The UTC minute of their latest click, and their clicks in it (none yet: 0).
    minute: i64,
    clicks: i64,
    /// The links whose unique-click window they opened, and when each ends (epoch seconds).
    /// Most visitors click one link, which is held in place. A click looks its link up by
    /// scanning: a visitor's list is as long as the links they clicked within the windows
    /// (one address behind which an office clicks many links makes a long one).
    windows: SmallVec<[(Arc<str>, i64); 1]>,
}

/// The saved file's form, as the first version wrote it: per shard, `link␟visitor` → when its
/// window ends, and visitor → (minute, clicks in it).
#[derive(Default, Serialize, Deserialize)]
struct Saved {
    windows: HashMap<String, i64>,
    minutes: HashMap<String, (i64, i64)>,
}

/// The fewest visitors of a shard before its expired entries are swept; sweeps run each time
/// the live visitors double, so their cost is constant per click.
const SWEEP_FLOOR: usize = 10_000;
pub const SHARDS: usize = 32;

/// Between a window's link and visitor in the saved file.
const SEPARATOR: char = '\u{1f}';

impl State {
    /// Drops what has expired. The next sweep runs when the live visitors double, or at the
    /// cap (see [`State::full`]).
    fn sweep(&mut self, now: i64, cap: usize) {
        let minute = now.div_euclid(60);
        self.visitors.retain(|_, recent| {
            recent.windows.retain(|(_, ends)| *ends > now);
            !recent.windows.is_empty() || recent.minute >= minute
        });
        // A link no window holds any more is held by the set alone.
        self.links.retain(|link| Arc::strong_count(link) > 1);
        self.sweep_at = (self.visitors.len() * 2).max(SWEEP_FLOOR).min(cap);
    }

    /// Whether a new visitor has no room: the shard is at its cap, and the sweep it gets
    /// there (one a minute at most: a sweep reads every visitor) freed none.
    fn full(&mut self, now: i64, cap: usize) -> bool {
        if self.visitors.len() < cap {
            return false;
        }
        if self.swept_full_at.is_none_or(|at| now - at >= 60) {
            self.sweep(now, cap);
            self.swept_full_at = Some(now);
        }
        self.visitors.len() >= cap
    }
}

impl Recent {
    /// A visitor not seen yet.
    fn new() -> Self {
        Self {
            minute: i64::MIN,
            clicks: 0,
            windows: SmallVec::new(),
        }
    }
}

/// The visitor's entry, made if new.
fn recent<'s>(visitors: &'s mut Visitors, visitor: &str) -> &'s mut Recent {
    // Looked up again after an insert, the visitor's bucket is in the cache: cheaper than
    // making its key before knowing whether it is new.
    if !visitors.contains_key(visitor) {
        visitors.insert(visitor.into(), Recent::new());
    }
    visitors.get_mut(visitor).expect("inserted if absent")
}

/// The shard's one copy of `link`.
fn held(links: &mut HashSet<Arc<str>, foldhash::fast::RandomState>, link: &str) -> Arc<str> {
    match links.get(link) {
        Some(held) => held.clone(),
        None => {
            let held: Arc<str> = link.into();
            links.insert(held.clone());
            held
        }
    }
}

impl MemoryVisits {
    /// Empty, kept nowhere, holding up to [`DEFAULT_HELD`] visitors exactly.
    pub fn new() -> Self {
        Self::from_saved(Vec::new(), None, DEFAULT_HELD)
    }

    /// Empty, kept nowhere, holding up to `held` visitors exactly.
    pub fn holding(held: usize) -> Self {
        Self::from_saved(Vec::new(), None, held)
    }

    fn from_saved(saved: Vec<Saved>, file: Option<PathBuf>, cap: usize) -> Self {
        let mut shards: Vec<State> = (0..SHARDS).map(|_| State::default()).collect();
        // Entries go back to the shard their visitor hashes to (the shard count may change).
        for shard in saved {
            for (key, ends) in shard.windows {
                let Some((link, visitor)) = key.split_once(SEPARATOR) else {
                    continue;
                };
                let state = &mut shards[shard_of(visitor)];
                let link = held(&mut state.links, link);
                recent(&mut state.visitors, visitor)
                    .windows
                    .push((link, ends));
            }
            for (visitor, (minute, clicks)) in shard.minutes {
                let recent = recent(&mut shards[shard_of(&visitor)].visitors, &visitor);
                (recent.minute, recent.clicks) = (minute, clicks);
            }
        }
        let per_shard = (cap / SHARDS).max(1);
        Self {
            shards: shards
                .into_iter()
                .map(|mut state| {
                    state.sweep_at = SWEEP_FLOOR.min(per_shard);
                    Mutex::new(state)
                })
                .collect(),
            per_shard,
            overflow: Mutex::new(Overflow::new()),
            overflowed: std::sync::atomic::AtomicBool::new(false),
            file,
        }
    }

    /// How many visitors are held exactly now.
    pub fn visitors_held(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                shard
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .visitors
                    .len()
            })
            .sum()
    }

    /// Reads what the last clean shutdown saved in `file` (if anything), and saves there;
    /// holds up to `held` visitors exactly.
    pub fn open(file: &Path, now: Timestamp, held: usize) -> Result<Self, TableError> {
        let saved: Vec<Saved> = match std::fs::read(file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(TableError::backend)?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(error) => return Err(TableError::backend(error)),
        };
        let visits = Self::from_saved(saved, Some(file.to_path_buf()), held);
        for shard in &visits.shards {
            let mut state = shard.lock().unwrap_or_else(|p| p.into_inner());
            state.sweep(now.as_second(), visits.per_shard);
        }
        Ok(visits)
    }
}

impl Default for MemoryVisits {
    fn default() -> Self {
        Self::new()
    }
}

fn shard_of(visitor: &str) -> usize {
    use std::hash::BuildHasher;
    // Visitors are keyed hashes already: a fast, fixed hash spreads them as well as any.
    foldhash::fast::FixedState::default().hash_one(visitor) as usize % SHARDS
}

#[async_trait]
impl Visits for MemoryVisits {
    async fn record(
        &self,
        link: &str,
        visitor: &str,
        now: Timestamp,
        window: SignedDuration,
    ) -> Result<Visit, TableError> {
        let (second, minute) = (now.as_second(), minute_of(now));
        let mut guard = self.shards[shard_of(visitor)]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let state = &mut *guard;
        // Below the cap, as the visitors double; at it, through `full`.
        let visitors = state.visitors.len();
        if visitors >= state.sweep_at && visitors < self.per_shard {
            state.sweep(second, self.per_shard);
        }
        // One lookup for a visitor held (then the entry itself), as before the cap; a new
        // one is looked for past the cap only once something went there.
        let mut seen_past_the_cap = false;
        if !state.visitors.contains_key(visitor) {
            if state.full(second, self.per_shard) {
                drop(guard);
                self.overflowed
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                let mut overflow = self.overflow.lock().unwrap_or_else(|p| p.into_inner());
                return Ok(Visit {
                    first_on_link: !overflow.seen_before(hash_of(&[link, visitor]), second),
                    clicks_this_minute: overflow.count(hash_of(&[visitor]), minute),
                });
            }
            // Remembered approximately while memory was full, maybe.
            seen_past_the_cap = self.overflowed.load(std::sync::atomic::Ordering::Relaxed)
                && self
                    .overflow
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .contains(hash_of(&[link, visitor]), second);
            state.visitors.insert(visitor.into(), Recent::new());
        }
        let recent = state
            .visitors
            .get_mut(visitor)
            .expect("held, or inserted above");
        let ends = second + window.as_secs();
        let first_on_link = match recent.windows.iter_mut().find(|(l, _)| **l == *link) {
            Some((_, open)) if *open > second => false,
            Some((_, expired)) => {
                *expired = ends;
                true
            }
            None => {
                recent.windows.push((held(&mut state.links, link), ends));
                !seen_past_the_cap
            }
        };
        if recent.minute != minute {
            (recent.minute, recent.clicks) = (minute, 0);
        }
        recent.clicks += 1;
        Ok(Visit {
            first_on_link,
            clicks_this_minute: recent.clicks,
        })
    }

    async fn save(&self) -> Result<(), TableError> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let mut bytes = b"[".to_vec();
        for (index, shard) in self.shards.iter().enumerate() {
            if index > 0 {
                bytes.push(b',');
            }
            let state = shard.lock().unwrap_or_else(|p| p.into_inner());
            let mut saved = Saved::default();
            for (visitor, recent) in &state.visitors {
                for (link, ends) in &recent.windows {
                    saved
                        .windows
                        .insert(format!("{link}{SEPARATOR}{visitor}"), *ends);
                }
                if recent.clicks > 0 {
                    saved
                        .minutes
                        .insert(visitor.to_string(), (recent.minute, recent.clicks));
                }
            }
            serde_json::to_writer(&mut bytes, &saved).map_err(TableError::backend)?;
        }
        bytes.push(b']');
        // Written aside and renamed: a crash mid-write leaves the previous file whole.
        let partial = file.with_extension("partial");
        std::fs::write(&partial, bytes).map_err(TableError::backend)?;
        std::fs::rename(&partial, file).map_err(TableError::backend)
    }
}
