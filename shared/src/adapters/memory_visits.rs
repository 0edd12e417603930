//! `Visits` in the memory of the one local process: a map of visitors, each with the links
//! whose unique-click window they opened and their clicks in the current minute, split by
//! visitor into shards, each behind a mutex held for a hash lookup. Expired entries are swept
//! as a shard's visitors grow, so a sweep holds up only the clicks of one shard, briefly.
//!
//! A clean shutdown saves the live entries to a file and the next start reads them back, so a
//! restart does not make a visitor's next click unique again; a crash loses them (the visitor's
//! next click inside the window then counts as unique: a report metric, never money).

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
    /// Where a clean shutdown saves the live entries.
    file: Option<PathBuf>,
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
const SHARDS: usize = 32;

/// Between a window's link and visitor in the saved file.
const SEPARATOR: char = '\u{1f}';

impl State {
    fn sweep(&mut self, now: i64) {
        let minute = now.div_euclid(60);
        self.visitors.retain(|_, recent| {
            recent.windows.retain(|(_, ends)| *ends > now);
            !recent.windows.is_empty() || recent.minute >= minute
        });
        // A link no window holds any more is held by the set alone.
        self.links.retain(|link| Arc::strong_count(link) > 1);
        self.sweep_at = (self.visitors.len() * 2).max(SWEEP_FLOOR);
    }
}

/// The visitor's entry, made if new.
fn recent<'s>(visitors: &'s mut Visitors, visitor: &str) -> &'s mut Recent {
    // Looked up again after an insert, the visitor's bucket is in the cache: cheaper than
    // making its key before knowing whether it is new.
    if !visitors.contains_key(visitor) {
        let new = Recent {
            minute: i64::MIN,
            clicks: 0,
            windows: SmallVec::new(),
        };
        visitors.insert(visitor.into(), new);
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
    /// Empty, kept nowhere.
    pub fn new() -> Self {
        Self::from_saved(Vec::new(), None)
    }

    fn from_saved(saved: Vec<Saved>, file: Option<PathBuf>) -> Self {
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
        Self {
            shards: shards
                .into_iter()
                .map(|mut state| {
                    state.sweep_at = SWEEP_FLOOR;
                    Mutex::new(state)
                })
                .collect(),
            file,
        }
    }

    /// Reads what the last clean shutdown saved in `file` (if anything), and saves there.
    pub fn open(file: &Path, now: Timestamp) -> Result<Self, TableError> {
        let saved: Vec<Saved> = match std::fs::read(file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(TableError::backend)?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(error) => return Err(TableError::backend(error)),
        };
        let visits = Self::from_saved(saved, Some(file.to_path_buf()));
        for shard in &visits.shards {
            let mut state = shard.lock().unwrap_or_else(|p| p.into_inner());
            state.sweep(now.as_second());
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
        if state.visitors.len() >= state.sweep_at {
            state.sweep(second);
        }
        let recent = recent(&mut state.visitors, visitor);
        let ends = second + window.as_secs();
        let first_on_link = match recent.windows.iter_mut().find(|(l, _)| **l == *link) {
            Some((_, open)) if *open > second => false,
            Some((_, expired)) => {
                *expired = ends;
                true
            }
            None => {
                recent.windows.push((held(&mut state.links, link), ends));
                true
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
