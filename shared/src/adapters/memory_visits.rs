//! `Visits` in the memory of the one local process: a map of each visitor's first click per
//! link (until its window ends) and a per-minute click count, split by visitor into shards,
//! each behind a mutex held for a hash lookup. Expired entries are swept as a shard grows, so
//! a sweep holds up only the clicks of one shard, briefly.
//!
//! A clean shutdown saves the live entries to a file and the next start reads them back, so a
//! restart does not make a visitor's next click unique again; a crash loses them (the visitor's
//! next click inside the window then counts as unique: a report metric, never money).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::ports::TableError;
use crate::ports::visits::{Visit, Visits, minute_of};

pub struct MemoryVisits {
    shards: Vec<Mutex<State>>,
    /// Where a clean shutdown saves the live entries.
    file: Option<PathBuf>,
}

#[derive(Default, Serialize, Deserialize)]
struct State {
    /// `link␟visitor` → when the visitor's window on the link ends (epoch seconds).
    windows: HashMap<String, i64, foldhash::fast::RandomState>,
    /// visitor → (minute, clicks in it).
    minutes: HashMap<String, (i64, i64), foldhash::fast::RandomState>,
    /// Entry count at which the next sweep runs.
    #[serde(skip)]
    sweep_at: usize,
}

/// The fewest entries of a shard before its expired ones are swept; sweeps run each time the
/// live entries double, so their cost is constant per click.
const SWEEP_FLOOR: usize = 10_000;
const SHARDS: usize = 32;

impl State {
    fn sweep(&mut self, now: i64) {
        self.windows.retain(|_, ends| *ends > now);
        let minute = now.div_euclid(60);
        self.minutes.retain(|_, (m, _)| *m >= minute);
        self.sweep_at = ((self.windows.len() + self.minutes.len()) * 2).max(SWEEP_FLOOR);
    }
}

impl MemoryVisits {
    /// Empty, kept nowhere.
    pub fn new() -> Self {
        Self::from_states(Vec::new(), None)
    }

    fn from_states(saved: Vec<State>, file: Option<PathBuf>) -> Self {
        let mut shards: Vec<State> = (0..SHARDS).map(|_| State::default()).collect();
        // Entries go back to the shard their visitor hashes to (the shard count may change).
        for state in saved {
            for (key, ends) in state.windows {
                let visitor = key.split('\u{1f}').nth(1).unwrap_or_default().to_string();
                shards[shard_of(&visitor)].windows.insert(key, ends);
            }
            for (visitor, minute) in state.minutes {
                shards[shard_of(&visitor)].minutes.insert(visitor, minute);
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
        let mut saved: Vec<State> = match std::fs::read(file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(TableError::backend)?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(error) => return Err(TableError::backend(error)),
        };
        for state in &mut saved {
            state.sweep(now.as_second());
        }
        Ok(Self::from_states(saved, Some(file.to_path_buf())))
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
        let mut state = self.shards[shard_of(visitor)]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if state.windows.len() + state.minutes.len() >= state.sweep_at {
            state.sweep(second);
        }
        // Joined by hand: the formatting machinery showed in the click path's profile.
        let mut key = String::with_capacity(link.len() + 1 + visitor.len());
        key.push_str(link);
        key.push('\u{1f}');
        key.push_str(visitor);
        let first_on_link = match state.windows.get_mut(&key) {
            Some(ends) if *ends > second => false,
            Some(ends) => {
                *ends = second + window.as_secs();
                true
            }
            None => {
                state.windows.insert(key, second + window.as_secs());
                true
            }
        };
        let clicks_this_minute = match state.minutes.get_mut(visitor) {
            Some((m, count)) if *m == minute => {
                *count += 1;
                *count
            }
            Some(entry) => {
                *entry = (minute, 1);
                1
            }
            None => {
                state.minutes.insert(visitor.to_string(), (minute, 1));
                1
            }
        };
        Ok(Visit {
            first_on_link,
            clicks_this_minute,
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
            serde_json::to_writer(&mut bytes, &*state).map_err(TableError::backend)?;
        }
        bytes.push(b']');
        // Written aside and renamed: a crash mid-write leaves the previous file whole.
        let partial = file.with_extension("partial");
        std::fs::write(&partial, bytes).map_err(TableError::backend)?;
        std::fs::rename(&partial, file).map_err(TableError::backend)
    }
}
