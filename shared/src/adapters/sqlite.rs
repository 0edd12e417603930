//! `Table` on an embedded SQLite database (rusqlite, bundled; WAL).
//!
//! One table holds every item: its key and index attributes as columns (so that SQLite's
//! indexes answer queries in sort-key order) and its attributes but the key as JSON. One writer
//! connection, behind a mutex, serialises every write; a transaction is `BEGIN IMMEDIATE …
//! COMMIT` on it, so all-or-nothing holds without retries. Point reads use a pool of reader
//! connections, which WAL lets run beside the writer.
//!
//! `synchronous = FULL`: a write is on disk before it is acknowledged, because a conversion's
//! postback answer promises the conversion is recorded. Deferred writes (clicks and their
//! counters) are the one exception, and the click path's speed: they are checked and applied
//! to an in-memory batch on the caller's thread (no blocking-pool hop, no disk), and a group
//! committer thread commits the batch every [`FLUSH_EVERY`] on the writer connection, one fsync
//! for all of it. A clean shutdown (which flushes) loses none of it; a crash of the process
//! loses at most [`MAX_LOSS`] of it: when what waits to be committed is older than
//! [`ADMIT_WITHIN`], a deferred write waits for the committer to catch up before it returns
//! (and a click before it is answered), so that the batch never holds more than one commit
//! writes in time.
//! The write-ahead log is copied into the database by a checkpointer thread of its own, not
//! by the commit that fills it, so that commits stay short (see [`checkpoint`]).
//! Reads and conditions see the batch at once; an item leaves the batch only once it is
//! committed, so it is always in one place or the other.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use crate::ports::Clock;
use crate::ports::table::{
    Cond, Cursor, EXPIRES_AT, GSI1PK, GSI1SK, Index, Item, Key, PK, Page, Query, Rendered, SK,
    SortKey, Table, TableError, Update, Write, check_item, cond_holds, is_expired,
    validate_transaction,
};

/// How often deferred writes are committed.
pub const FLUSH_EVERY: Duration = Duration::from_millis(5);

/// The most a crash of the process can lose of deferred writes it has taken (and so of
/// answered clicks): those taken in this long before it. The README states it.
pub const MAX_LOSS: Duration = Duration::from_millis(50);

/// A deferred write returns at once while the oldest one not yet committed is younger than
/// this; past it, it waits for the committer to catch up. Below [`MAX_LOSS`] by a commit and
/// a pause: what waits when a write returns goes with the commit after the one in progress.
pub const ADMIT_WITHIN: Duration = Duration::from_millis(20);

/// How often the write-ahead log is copied into the database (a checkpoint), beside the
/// committer: SQLite's own checkpoint runs inside the commit that fills the log (every 16 MiB),
/// and the commits it held up made clicks wait.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// How many expired items one purge step deletes, holding the writer.
const PURGE_SLICE: usize = 5000;

pub struct SqliteTable {
    shared: Arc<Shared>,
    clock: Arc<dyn Clock>,
    /// The group committer and the checkpointer, each with what tells it to stop (dropped, it
    /// disconnects). The table's drop stops and joins them, so that the database is closed by
    /// the thread dropping the table, before the drop returns: they may hold the shared state.
    background: Vec<(std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>)>,
    /// Opening it created the database.
    created: bool,
}

struct Shared {
    path: PathBuf,
    /// Every write, and the group commit; held across a commit's fsync.
    writer: Mutex<Connection>,
    /// Idle reader connections; one is opened whenever all are busy.
    readers: Mutex<Vec<Connection>>,
    /// Deferred writes: never held across disk I/O, only across a point read.
    batch: Mutex<Batch>,
    /// Told after every commit: deferred writes waiting for the committer to catch up.
    committed: tokio::sync::Notify,
    /// How the committer kept up, told at a clean shutdown: the measure of the bound.
    pace: Pace,
}

/// How the group committer kept up since the table opened.
#[derive(Default)]
struct Pace {
    commits: AtomicU64,
    items: AtomicU64,
    longest_commit_micros: AtomicU64,
    /// Deferred writes held for the committer to catch up ([`SqliteTable::wait_if_behind`]).
    held: AtomicU64,
    longest_hold_micros: AtomicU64,
}

impl Pace {
    fn commit(&self, items: usize, took: Duration) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.items.fetch_add(items as u64, Ordering::Relaxed);
        self.longest_commit_micros
            .fetch_max(took.as_micros() as u64, Ordering::Relaxed);
    }

    fn hold(&self, took: Duration) {
        self.held.fetch_add(1, Ordering::Relaxed);
        self.longest_hold_micros
            .fetch_max(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// Logged at a clean stop: at `info` when a write had to wait for the committer (what a
    /// server under load wants to know), else at `debug` (a CLI command has nothing to say).
    fn report(&self) {
        let ms = |micros: &AtomicU64| micros.load(Ordering::Relaxed) as f64 / 1000.0;
        let held = self.held.load(Ordering::Relaxed);
        macro_rules! pace {
            ($level:ident) => {
                tracing::$level!(
                    commits = self.commits.load(Ordering::Relaxed),
                    writes_committed = self.items.load(Ordering::Relaxed),
                    longest_commit_ms = ms(&self.longest_commit_micros),
                    writes_held = held,
                    longest_hold_ms = ms(&self.longest_hold_micros),
                    "deferred writes: how the committer kept up"
                )
            };
        }
        if held > 0 {
            pace!(info);
        } else {
            pace!(debug);
        }
    }
}

/// The latest deferred version of every item written deferred and not yet committed. Items
/// are shared with a commit in progress, and copied only if changed meanwhile.
#[derive(Default)]
struct Batch {
    /// Every item here is one whose latest version is not yet committed: a commit removes
    /// those it committed unless they changed meanwhile. So a commit takes them all, and no
    /// set of dirty keys is kept: keeping one cost every click two copies of its key and a
    /// second hash insert, under the lock every click waits on.
    ///
    /// foldhash: every click hashes its keys here, and SipHash showed in the profile; the
    /// keys are our own (ids and hashes), not an attacker's choice.
    items: HashMap<Key, (Deferred, u64), foldhash::fast::RandomState>,
    versions: u64,
    /// When the oldest change not yet taken by a commit was deferred (`None`: none waits).
    pending_since: Option<Instant>,
    /// When the oldest change of the commit in progress was deferred.
    committing_since: Option<Instant>,
}

impl Batch {
    /// When the oldest change not yet on disk was deferred.
    fn oldest(&self) -> Option<Instant> {
        self.pending_since
            .into_iter()
            .chain(self.committing_since)
            .min()
    }

    /// How long the oldest change not yet on disk has waited: what a crash now would lose.
    fn backlog(&self) -> Duration {
        self.oldest()
            .map_or(Duration::ZERO, |since| since.elapsed())
    }
}

/// An item waiting in the batch: a map, or a record rendered as the row it will be.
#[derive(Clone)]
enum Deferred {
    Item {
        item: Arc<Item>,
        /// The `init` of an update applied to it, whose every attribute it is known to hold
        /// (no write takes an attribute away): a counter's next update with the same `init`
        /// need not look for them again.
        holds: Option<Arc<Item>>,
    },
    Rendered(Arc<Rendered>),
}

impl Deferred {
    fn is_expired(&self, now: i64) -> bool {
        match self {
            Deferred::Item { item, .. } => is_expired(item, now),
            Deferred::Rendered(row) => row.is_expired(now),
        }
    }

    /// As a map: a rendered record is parsed (only when read or updated within milliseconds
    /// of its put, which the click path never does).
    fn item(&self) -> Result<Arc<Item>, TableError> {
        match self {
            Deferred::Item { item, .. } => Ok(item.clone()),
            Deferred::Rendered(row) => Ok(Arc::new(row.to_item()?)),
        }
    }

    /// Whether it holds every attribute `init` sets, because this very `init` was applied to
    /// it (and so validated) before.
    fn holds(&self, init: Option<&Arc<Item>>) -> bool {
        match (self, init) {
            (
                Deferred::Item {
                    holds: Some(held), ..
                },
                Some(init),
            ) => Arc::ptr_eq(held, init),
            _ => false,
        }
    }

    /// Its key's parts, borrowed: a rendered record holds its key, an item its key
    /// attributes (every batched item has them: its write was checked).
    fn key_parts(&self) -> (&str, &str) {
        match self {
            Deferred::Rendered(row) => (&row.key().pk, &row.key().sk),
            Deferred::Item { item, .. } => Key::parts_of(item).unwrap_or_default(),
        }
    }

    /// Its key: the rendered record's own, or one made of the item's key attributes.
    fn key(&self) -> Cow<'_, Key> {
        match self {
            Deferred::Rendered(row) => Cow::Borrowed(row.key()),
            Deferred::Item { .. } => {
                let (pk, sk) = self.key_parts();
                Cow::Owned(Key::new(pk, sk))
            }
        }
    }

    /// The live item: none once expired.
    fn live(&self, now: i64) -> Result<Option<Arc<Item>>, TableError> {
        if self.is_expired(now) {
            return Ok(None);
        }
        self.item().map(Some)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves the data as consistent as SQLite does.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    /// Commits every item of the batch in one transaction, one fsync for all of it, on
    /// the writer the caller holds (so commits never overtake one another).
    fn commit_batch(&self, writer: &mut Connection) -> Result<(), TableError> {
        // Under the lock, only what shares the items: their keys are read off them after.
        let taken: Vec<(Deferred, u64)> = {
            let mut batch = lock(&self.batch);
            batch.committing_since = batch.pending_since.take();
            batch.items.values().cloned().collect()
        };
        if taken.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        // In key order, not the map's hash order: clicks' keys grow with time, so sorted
        // they are appended at the end of the table's B-tree instead of splitting its last
        // pages at random, which cost SQLite more work and left the pages part empty.
        let mut taken = taken;
        taken.sort_unstable_by(|(a, _), (b, _)| a.key_parts().cmp(&b.key_parts()));
        let committed = (|| {
            let tx = writer
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(TableError::backend)?;
            // Checked as they were deferred.
            for (deferred, _) in &taken {
                match deferred {
                    Deferred::Item { item, .. } => insert(&tx, item)?,
                    Deferred::Rendered(row) => insert_rendered(&tx, row)?,
                }
            }
            tx.commit().map_err(TableError::backend)
        })();
        // What failed stays in the batch, for the next commit.
        {
            let mut batch = lock(&self.batch);
            let since = batch.committing_since.take();
            if committed.is_ok() {
                for (deferred, version) in &taken {
                    let key = deferred.key();
                    if batch.items.get(&*key).is_some_and(|(_, v)| v == version) {
                        batch.items.remove(&*key);
                    }
                }
            } else {
                batch.pending_since = batch.pending_since.into_iter().chain(since).min();
            }
        }
        self.committed.notify_waiters();
        if committed.is_ok() {
            self.pace.commit(taken.len(), started.elapsed());
        }
        // `taken` shares every committed item, so they are freed here, not under the lock the
        // click path waits on: freeing a commit's items takes longer than all the lock guards.
        drop(taken);
        committed
    }

    /// Runs `work` on a reader connection.
    fn read<T>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, TableError>,
    ) -> Result<T, TableError> {
        let reader = lock(&self.readers).pop();
        let reader = match reader {
            Some(reader) => reader,
            None => open_connection(&self.path)?,
        };
        let result = work(&reader);
        lock(&self.readers).push(reader);
        result
    }

    /// The live item with this key (deferred, else committed), and whether it is a batched
    /// item known to hold `init` (see [`Deferred::holds`]): one lookup for both.
    fn live(
        &self,
        batch: &Batch,
        key: &Key,
        init: Option<&Arc<Item>>,
        now: i64,
    ) -> Result<(Option<Arc<Item>>, bool), TableError> {
        match batch.items.get(key) {
            Some((deferred, _)) => Ok((deferred.live(now)?, deferred.holds(init))),
            None => Ok((
                self.read(|reader| live(reader, key, now))?.map(Arc::new),
                false,
            )),
        }
    }
}

/// A thread named `name` that runs `work` on the shared state after `pause`, then again after
/// each pause `work` answers, until the sender it returns is dropped or the table is gone.
fn background(
    name: &str,
    shared: &Arc<Shared>,
    pause: Duration,
    mut work: impl FnMut(&Shared) -> Duration + Send + 'static,
) -> Result<(std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>), TableError> {
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let weak = Arc::downgrade(shared);
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let mut pause = pause;
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(pause) {
                let Some(shared) = weak.upgrade() else { break };
                pause = work(&shared);
            }
        })
        .map_err(TableError::backend)?;
    Ok((stop, thread))
}

/// Copies the write-ahead log into the database: the bulk beside the committer, then, holding
/// it, what it committed meanwhile (a few milliseconds' worth), with `TRUNCATE`, which empties
/// the log's file so that the next commit starts it over and no old page (with a row since
/// deleted, say) lingers in it. Without that last step the log under constant load was never
/// started over and grew without end (SQLite restarts it only when a write finds it copied
/// whole). A reader still on the log (a long report) makes the last step give up at once
/// instead of holding the committer (the connection has no busy timeout): the next turn tries
/// again.
fn checkpoint(shared: &Shared, log: &Connection) -> Result<(), TableError> {
    let run = |mode: &str| {
        log.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(()))
            .map_err(TableError::backend)
    };
    run("PASSIVE")?;
    let _writer = lock(&shared.writer);
    run("TRUNCATE")
}

fn open_connection(path: &Path) -> Result<Connection, TableError> {
    let conn = Connection::open(path).map_err(TableError::backend)?;
    // 16 KiB pages, set before WAL mode creates the file (an existing database keeps its own):
    // the group committer writes each page it changes to the WAL with two system calls, and
    // a batch of clicks then fills a quarter as many pages as with the 4 KiB default. This cut
    // the committer's CPU a click by a quarter (BENCHMARKS.md, 2026-11-30).
    // Memory-mapped reads: pages come from the OS cache without a system call each.
    // `secure_delete`: what is deleted or replaced is overwritten with zeros, so that an erased
    // account's email, name and password hash are not left as dead bytes in the file.
    conn.execute_batch(
        "PRAGMA page_size = 16384;
         PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA busy_timeout = 5000;
         PRAGMA mmap_size = 1073741824;
         PRAGMA secure_delete = ON;",
    )
    .map_err(TableError::backend)?;
    Ok(conn)
}

impl Drop for SqliteTable {
    /// The table going away (a clean shutdown) stops the committer and commits what is
    /// deferred.
    fn drop(&mut self) {
        for (stop, thread) in self.background.drain(..) {
            drop(stop);
            // A committer that panicked has nothing to hand back; the commit below retries.
            let _ = thread.join();
        }
        let mut writer = lock(&self.shared.writer);
        if let Err(error) = self.shared.commit_batch(&mut writer) {
            tracing::error!(%error, "deferred writes could not be committed at shutdown");
        }
        self.shared.pace.report();
    }
}

impl SqliteTable {
    /// Opens (creating if needed) the database file.
    pub fn open(path: &Path, clock: Arc<dyn Clock>) -> Result<Self, TableError> {
        let conn = open_connection(path)?;
        let created = conn
            .query_row(
                "SELECT count(*) = 0 FROM sqlite_schema WHERE type = 'table' AND name = 'items'",
                [],
                |row| row.get::<_, bool>(0),
            )
            .map_err(TableError::backend)?;
        // The writer keeps SQLite's default page cache (2 MiB): pages come from the memory
        // map, and every commit walks the whole cache (a 64 MiB one cost the click path 3% of
        // its CPU).
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS items (
                 pk TEXT NOT NULL,
                 sk TEXT NOT NULL,
                 gsi1pk TEXT,
                 gsi1sk TEXT,
                 expires_at INTEGER,
                 attrs TEXT NOT NULL,
                 PRIMARY KEY (pk, sk)
             ) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS items_gsi1 ON items (gsi1pk, gsi1sk, pk, sk)
                 WHERE gsi1pk IS NOT NULL;",
        )
        .map_err(TableError::backend)?;
        // Checkpoints are the checkpointer's (below), not the commits'.
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(TableError::backend)?;
        let shared = Arc::new(Shared {
            path: path.to_path_buf(),
            writer: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
            batch: Mutex::new(Batch::default()),
            committed: tokio::sync::Notify::new(),
            pace: Pace::default(),
        });
        // The group committer: commits start every FLUSH_EVERY, or at once after one that took
        // longer (a committer behind does not rest).
        let committer = background("sqlite-group-commit", &shared, FLUSH_EVERY, |shared| {
            let started = Instant::now();
            if let Err(error) = shared.commit_batch(&mut lock(&shared.writer)) {
                tracing::error!(%error, "deferred writes could not be committed; retrying");
            }
            FLUSH_EVERY.saturating_sub(started.elapsed())
        })?;
        // The checkpointer, on a connection of its own (the writer's never checkpoints).
        let log = open_connection(path)?;
        log.busy_timeout(Duration::ZERO)
            .map_err(TableError::backend)?;
        let checkpointer = background(
            "sqlite-checkpoint",
            &shared,
            CHECKPOINT_EVERY,
            move |shared| {
                if let Err(error) = checkpoint(shared, &log) {
                    tracing::error!(%error, "the write-ahead log could not be checkpointed; retrying");
                }
                CHECKPOINT_EVERY
            },
        )?;
        Ok(Self {
            shared,
            clock,
            background: vec![committer, checkpointer],
            created,
        })
    }

    /// Whether opening it created the database: it holds nothing written before.
    pub fn created(&self) -> bool {
        self.created
    }

    /// Runs a write on the writer connection, on the blocking pool, committing the batch first
    /// if the write touches an item in it (so that its condition and result see that item).
    async fn with_conn<T: Send + 'static>(
        &self,
        keys: Vec<Key>,
        work: impl FnOnce(&mut Connection, i64) -> Result<T, TableError> + Send + 'static,
    ) -> Result<T, TableError> {
        let shared = self.shared.clone();
        let now = self.clock.now().as_second();
        tokio::task::spawn_blocking(move || {
            let mut writer = lock(&shared.writer);
            let touches_batch = {
                let batch = lock(&shared.batch);
                keys.iter().any(|key| batch.items.contains_key(key))
            };
            if touches_batch {
                shared.commit_batch(&mut writer)?;
            }
            work(&mut writer, now)
        })
        .await
        .map_err(TableError::backend)?
    }

    /// Backpressure after a deferred write: if the oldest write not yet committed (`oldest`,
    /// as the write left the batch) is older than [`ADMIT_WITHIN`], waits until the committer
    /// has caught up, so that what a crash can lose of answered writes stays within
    /// [`MAX_LOSS`]. The clock is read here, not under the batch's lock every click waits on.
    async fn wait_if_behind(&self, oldest: Option<Instant>) {
        if oldest.is_none_or(|since| since.elapsed() <= ADMIT_WITHIN) {
            return;
        }
        let held = Instant::now();
        loop {
            let committed = self.shared.committed.notified();
            tokio::pin!(committed);
            // Registered before the check, so that a commit between the two is not missed.
            committed.as_mut().enable();
            if lock(&self.shared.batch).backlog() <= ADMIT_WITHIN {
                self.shared.pace.hold(held.elapsed());
                return;
            }
            // A commit wakes it; the timeout looks again should the committer have stopped.
            let _ = tokio::time::timeout(MAX_LOSS, committed).await;
        }
    }

    /// Checks and applies deferred writes to the batch, all or none, on the caller's thread:
    /// every condition and update is checked before anything changes. Answers the items the
    /// writes leave when `answer` is set, and when the oldest write not yet committed was
    /// deferred (for [`SqliteTable::wait_if_behind`]).
    fn defer(
        &self,
        writes: Vec<Write>,
        answer: bool,
    ) -> Result<(Vec<Arc<Item>>, Option<Instant>), TableError> {
        validate_transaction(&writes)?;
        // What needs no other item is checked before the lock, which every click waits on.
        // Keys are borrowed from the writes where they hold one: a click's two counter
        // updates copied theirs for nothing.
        let mut keys = Vec::with_capacity(writes.len());
        for write in &writes {
            match write {
                Write::Put { item, .. } => check_item(item)?,
                // Its `init` is validated below, unless the batch shows it was before.
                Write::Update { update, .. } => update.validate_named()?,
                // Checked as it was rendered.
                Write::PutRendered { .. } => {}
                Write::Delete { .. } | Write::Check { .. } => {
                    return Err(TableError::Invalid(
                        "deferred writes are puts and updates".into(),
                    ));
                }
            }
            keys.push(match write {
                Write::Update { key, .. } => Cow::Borrowed(key),
                Write::PutRendered { row } => Cow::Borrowed(row.key()),
                other => Cow::Owned(other.key()?),
            });
        }
        let now = self.clock.now().as_second();
        let mut batch = lock(&self.shared.batch);
        let mut existing = Vec::with_capacity(writes.len());
        for ((index, write), key) in writes.iter().enumerate().zip(keys) {
            // An unconditional put needs nothing of what is there: no read (a click's record
            // is one, and reading the database for it cost every click a read transaction).
            let (live, initialised) = match write {
                Write::Put {
                    cond: Cond::Always, ..
                }
                | Write::PutRendered { .. } => (None, false),
                Write::Update { update, .. } => {
                    self.shared.live(&batch, &key, update.init.as_ref(), now)?
                }
                _ => self.shared.live(&batch, &key, None, now)?,
            };
            if !cond_holds(write.cond(), live.as_deref()) {
                return Err(TableError::Conflict {
                    write: index,
                    existing: live.map(|item| Box::new((*item).clone())),
                });
            }
            if let Write::Update { update, .. } = write {
                if !initialised {
                    update.validate_init()?;
                }
                update.check(live.as_deref())?;
            }
            // A put's key was made above (the others borrow theirs): kept for the apply.
            let made_key = match key {
                Cow::Owned(key) => Some(key),
                Cow::Borrowed(_) => None,
            };
            existing.push((live, initialised, made_key));
        }
        // Everything holds: apply, changing a batched item in place unless a commit shares it.
        let batch = &mut *batch;
        let mut answers = Vec::new();
        for (write, (live, initialised, made_key)) in writes.into_iter().zip(existing) {
            batch.versions += 1;
            let version = batch.versions;
            // An update of an item already in the batch (a busy counter, every click) changes
            // it where it is: no second lookup, no copy of its key.
            if let Write::Update { key, update, .. } = &write
                && let Some((Deferred::Item { item, holds }, at)) = batch.items.get_mut(key)
                && live.as_ref().is_some_and(|live| Arc::ptr_eq(live, item))
            {
                drop(live);
                let current = Arc::make_mut(item);
                if initialised {
                    update.apply_checked_to_initialised(current)
                } else {
                    update.apply_checked(current)
                }
                .expect("validated, and checked in the first pass against this item");
                if update.init.is_some() {
                    holds.clone_from(&update.init);
                }
                *at = version;
                if answer {
                    answers.push(item.clone());
                }
                continue;
            }
            let (key, deferred) = match write {
                Write::Put { item, .. } => (
                    made_key.expect("a put's key is made in the first pass"),
                    Deferred::Item {
                        item: Arc::new(item),
                        holds: None,
                    },
                ),
                Write::PutRendered { row } => {
                    (row.key().clone(), Deferred::Rendered(Arc::new(row)))
                }
                Write::Update { key, update, .. } => {
                    let mut item = live.unwrap_or_else(|| Arc::new(new_item(&key)));
                    // The old version goes first, so that the live one is changed in place
                    // unless a commit shares it.
                    drop(batch.items.remove(&key));
                    update
                        .apply_checked(Arc::make_mut(&mut item))
                        .expect("validated, and checked in the first pass against this item");
                    let deferred = Deferred::Item {
                        item,
                        holds: update.init,
                    };
                    (key, deferred)
                }
                Write::Delete { .. } | Write::Check { .. } => unreachable!("refused above"),
            };
            if answer {
                // Answers are asked of updates, whose result is already a map: nothing is
                // parsed here, so nothing can fail halfway through applying.
                answers.push(
                    deferred
                        .item()
                        .expect("a map, or a record rendered from one of our types"),
                );
            }
            batch.items.insert(key, (deferred, version));
        }
        batch.pending_since.get_or_insert_with(Instant::now);
        Ok((answers, batch.oldest()))
    }
}

fn live(conn: &Connection, key: &Key, now: i64) -> Result<Option<Item>, TableError> {
    let attrs: Option<String> = conn
        .prepare_cached("SELECT attrs FROM items WHERE pk = ?1 AND sk = ?2")
        .and_then(|mut statement| {
            statement
                .query_row(params![key.pk, key.sk], |row| row.get(0))
                .optional()
        })
        .map_err(TableError::backend)?;
    let Some(attrs) = attrs else { return Ok(None) };
    let item = parse_attrs(&attrs, &key.pk, &key.sk)?;
    Ok((!is_expired(&item, now)).then_some(item))
}

/// An item from its row: the key columns and the other attributes' JSON.
fn parse_attrs(attrs: &str, pk: &str, sk: &str) -> Result<Item, TableError> {
    let mut item: Item = serde_json::from_str(attrs).map_err(TableError::backend)?;
    item.insert(PK.into(), Value::String(pk.into()));
    item.insert(SK.into(), Value::String(sk.into()));
    Ok(item)
}

/// The JSON of an item's attributes but its key, which has columns of its own: a click's
/// row is a sixth shorter for it.
struct Attrs<'a>(&'a Item);

impl serde::Serialize for Attrs<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(
            self.0
                .iter()
                .filter(|(name, _)| name.as_str() != PK && name.as_str() != SK),
        )
    }
}

/// The columns an item is stored under.
struct Columns<'a> {
    pk: &'a str,
    sk: &'a str,
    gsi1pk: Option<&'a str>,
    gsi1sk: Option<&'a str>,
    expires_at: Option<i64>,
}

fn columns(item: &Item) -> Result<Columns<'_>, TableError> {
    let (pk, sk) = Key::parts_of(item)?;
    // Their types were checked before the item was stored.
    let text = |name: &str| item.get(name).and_then(Value::as_str);
    Ok(Columns {
        pk,
        sk,
        gsi1pk: text(GSI1PK),
        gsi1sk: text(GSI1SK),
        expires_at: item.get(EXPIRES_AT).and_then(Value::as_i64),
    })
}

fn store(conn: &Connection, item: &Item) -> Result<(), TableError> {
    check_item(item)?;
    insert(conn, item)
}

/// Stores an item already [checked](check_item).
fn insert(conn: &Connection, item: &Item) -> Result<(), TableError> {
    let columns = columns(item)?;
    let attrs = serde_json::to_string(&Attrs(item)).map_err(TableError::backend)?;
    insert_row(conn, &columns, &attrs)
}

/// Stores a rendered record: its text is the row's as it is.
fn insert_rendered(conn: &Connection, row: &Rendered) -> Result<(), TableError> {
    let key = row.key();
    let columns = Columns {
        pk: &key.pk,
        sk: &key.sk,
        gsi1pk: None,
        gsi1sk: None,
        expires_at: row.expires_at(),
    };
    insert_row(conn, &columns, row.attributes())
}

fn insert_row(conn: &Connection, columns: &Columns, attrs: &str) -> Result<(), TableError> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO items (pk, sk, gsi1pk, gsi1sk, expires_at, attrs)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut statement| {
        statement.execute(params![
            columns.pk,
            columns.sk,
            columns.gsi1pk,
            columns.gsi1sk,
            columns.expires_at,
            attrs
        ])
    })
    .map_err(TableError::backend)?;
    Ok(())
}

/// Applies one write whose condition is already known to hold over `existing`. Answers the
/// item an update leaves and the item a delete removes; a put answers nothing (its caller
/// has the item).
fn apply(
    conn: &Connection,
    write: &Write,
    existing: Option<Item>,
) -> Result<Option<Item>, TableError> {
    match write {
        Write::Put { item, .. } => {
            store(conn, item)?;
            Ok(None)
        }
        Write::PutRendered { row } => {
            insert_rendered(conn, row)?;
            Ok(None)
        }
        Write::Update { key, update, .. } => {
            let mut item = existing.unwrap_or_else(|| new_item(key));
            update.apply(&mut item)?;
            store(conn, &item)?;
            Ok(Some(item))
        }
        Write::Delete { key, .. } => {
            conn.execute(
                "DELETE FROM items WHERE pk = ?1 AND sk = ?2",
                params![key.pk, key.sk],
            )
            .map_err(TableError::backend)?;
            Ok(existing)
        }
        Write::Check { .. } => Ok(existing),
    }
}

fn new_item(key: &Key) -> Item {
    let mut item = Item::new();
    item.insert("pk".into(), Value::String(key.pk.clone()));
    item.insert("sk".into(), Value::String(key.sk.clone()));
    item
}

/// One conditional write outside any explicit transaction (SQLite makes it atomic by itself
/// only per statement, so the read-check-write runs in one immediate transaction).
fn write_one(conn: &mut Connection, write: Write, now: i64) -> Result<Option<Item>, TableError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(TableError::backend)?;
    let existing = live(&tx, &write.key()?, now)?;
    if !cond_holds(write.cond(), existing.as_ref()) {
        return Err(TableError::Conflict {
            write: 0,
            existing: existing.map(Box::new),
        });
    }
    let result = apply(&tx, &write, existing)?;
    tx.commit().map_err(TableError::backend)?;
    Ok(result)
}

#[async_trait]
impl Table for SqliteTable {
    /// On the caller's thread: a point read on a reader connection takes microseconds.
    async fn get(&self, key: &Key) -> Result<Option<Item>, TableError> {
        let now = self.clock.now().as_second();
        let deferred = lock(&self.shared.batch).items.get(key).cloned();
        match deferred {
            Some((deferred, _)) => Ok(deferred.live(now)?.map(Arc::unwrap_or_clone)),
            None => self.shared.read(|reader| live(reader, key, now)),
        }
    }

    async fn put(&self, item: Item, cond: Cond) -> Result<(), TableError> {
        let key = Key::of(&item)?;
        self.with_conn(vec![key], move |conn, now| {
            write_one(conn, Write::Put { item, cond }, now).map(drop)
        })
        .await
    }

    async fn update(&self, key: &Key, update: Update, cond: Cond) -> Result<Item, TableError> {
        let key = key.clone();
        self.with_conn(vec![key.clone()], move |conn, now| {
            write_one(conn, Write::Update { key, update, cond }, now)
                .map(|item| item.expect("an update leaves an item"))
        })
        .await
    }

    async fn delete(&self, key: &Key, cond: Cond) -> Result<Option<Item>, TableError> {
        let key = key.clone();
        self.with_conn(vec![key.clone()], move |conn, now| {
            write_one(conn, Write::Delete { key, cond }, now)
        })
        .await
    }

    async fn query(&self, query: Query) -> Result<Page, TableError> {
        query.validate()?;
        // A query reads the database, so it first commits the batch it must see.
        let shared = self.shared.clone();
        let now = self.clock.now().as_second();
        tokio::task::spawn_blocking(move || {
            let mut writer = lock(&shared.writer);
            shared.commit_batch(&mut writer)?;
            drop(writer);
            shared.read(|reader| run_query(reader, &query, now))
        })
        .await
        .map_err(TableError::backend)?
    }

    async fn transact(&self, writes: Vec<Write>) -> Result<(), TableError> {
        validate_transaction(&writes)?;
        let keys = writes
            .iter()
            .map(Write::key)
            .collect::<Result<Vec<_>, _>>()?;
        self.with_conn(keys, move |conn, now| {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(TableError::backend)?;
            for (index, write) in writes.iter().enumerate() {
                let existing = live(&tx, &write.key()?, now)?;
                if !cond_holds(write.cond(), existing.as_ref()) {
                    // Dropping `tx` rolls back whatever the earlier writes did.
                    return Err(TableError::Conflict {
                        write: index,
                        existing: existing.map(Box::new),
                    });
                }
                apply(&tx, write, existing)?;
            }
            tx.commit().map_err(TableError::backend)
        })
        .await
    }

    async fn transact_deferred(&self, writes: Vec<Write>) -> Result<(), TableError> {
        let (_, oldest) = self.defer(writes, false)?;
        self.wait_if_behind(oldest).await;
        Ok(())
    }

    async fn update_deferred(
        &self,
        key: &Key,
        update: Update,
        cond: Cond,
    ) -> Result<Item, TableError> {
        let write = Write::Update {
            key: key.clone(),
            update,
            cond,
        };
        let (mut items, oldest) = self.defer(vec![write], true)?;
        self.wait_if_behind(oldest).await;
        Ok(Arc::unwrap_or_clone(items.remove(0)))
    }

    async fn flush(&self) -> Result<(), TableError> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            let mut writer = lock(&shared.writer);
            shared.commit_batch(&mut writer)
        })
        .await
        .map_err(TableError::backend)?
    }

    async fn purge_expired(&self) -> Result<u64, TableError> {
        let shared = self.shared.clone();
        let now = self.clock.now().as_second();
        let mut purged = 0u64;
        loop {
            // In slices. Expiry has no index (it would cost every click's insert), so a slice
            // is found by a scan on a reader, which WAL runs beside the writer; the writer is
            // held only to delete the slice's keys, so writes wait milliseconds, not the scan.
            let shared = shared.clone();
            let (found, deleted) = tokio::task::spawn_blocking(move || {
                // The batch first, so that the scan finds what expired in it too.
                shared.commit_batch(&mut lock(&shared.writer))?;
                let expired: Vec<(String, String)> = shared.read(|reader| {
                    reader
                        .prepare_cached(
                            "SELECT pk, sk FROM items
                             WHERE expires_at IS NOT NULL AND expires_at <= ?1 LIMIT ?2",
                        )
                        .and_then(|mut statement| {
                            statement
                                .query_map(params![now, PURGE_SLICE as i64], |row| {
                                    Ok((row.get(0)?, row.get(1)?))
                                })?
                                .collect()
                        })
                        .map_err(TableError::backend)
                })?;
                // Committed again: a deferred write since the scan may renew one of them.
                let mut writer = lock(&shared.writer);
                shared.commit_batch(&mut writer)?;
                let tx = writer.transaction().map_err(TableError::backend)?;
                let mut deleted = 0;
                for (pk, sk) in &expired {
                    // Still expired: a write since the scan may have renewed it.
                    deleted += tx
                        .prepare_cached(
                            "DELETE FROM items WHERE pk = ?1 AND sk = ?2
                             AND expires_at IS NOT NULL AND expires_at <= ?3",
                        )
                        .and_then(|mut statement| statement.execute(params![pk, sk, now]))
                        .map_err(TableError::backend)?;
                }
                tx.commit().map_err(TableError::backend)?;
                Ok::<_, TableError>((expired.len(), deleted))
            })
            .await
            .map_err(TableError::backend)??;
            purged += deleted as u64;
            if found < PURGE_SLICE {
                return Ok(purged);
            }
        }
    }
}

/// The columns a query orders by, in order; the cursor is their values on the last item.
fn order_columns(index: Index) -> &'static [&'static str] {
    match index {
        Index::Primary => &["sk"],
        Index::Gsi1 => &["gsi1sk", "pk", "sk"],
    }
}

fn run_query(conn: &Connection, query: &Query, now: i64) -> Result<Page, TableError> {
    let (partition_col, sort_col) = match query.index {
        Index::Primary => ("pk", "sk"),
        Index::Gsi1 => ("gsi1pk", "gsi1sk"),
    };
    let order = order_columns(query.index);
    let mut sql = format!(
        "SELECT attrs, pk, sk, {} FROM items WHERE {partition_col} = ? \
         AND (expires_at IS NULL OR expires_at > ?)",
        order.join(", ")
    );
    if query.index == Index::Gsi1 {
        // As in DynamoDB, an item is in the index only when it has both index attributes.
        sql.push_str(" AND gsi1sk IS NOT NULL");
    }
    let mut args: Vec<rusqlite::types::Value> = vec![query.partition.clone().into(), now.into()];
    // The sort column's bounds: the query's own, narrowed to the cursor's position. SQLite
    // starts an index range at one lower bound only; given both the range's start and the
    // cursor, it took the range's start, so every page scanned all the pages before it
    // (paging 100,000 counters took 2.3 s instead of 0.1 s).
    let (mut lower, mut upper) = match &query.sort {
        SortKey::Any => (None, None),
        // Every string starting with `prefix` sorts in [prefix, prefix + U+10FFFF).
        SortKey::Prefix(prefix) => (
            Some(Bound::inclusive(prefix.clone())),
            Some(Bound::exclusive(format!("{prefix}\u{10FFFF}"))),
        ),
        SortKey::Between(from, to) => (
            Some(Bound::inclusive(from.clone())),
            Some(Bound::inclusive(to.clone())),
        ),
    };
    let cursor = match &query.after {
        Some(cursor) => Some(decode_cursor(cursor, order.len())?),
        None => None,
    };
    if let Some(position) = &cursor {
        // The first ordering column is the sort column: its value at the cursor bounds what
        // is left (inclusively, as later columns may still tell equal values apart).
        let at = Bound::inclusive(position[0].clone());
        if query.descending {
            upper = Some(Bound::tighter_upper(upper, at));
        } else {
            lower = Some(Bound::tighter_lower(lower, at));
        }
    }
    if let Some(lower) = lower {
        let op = if lower.inclusive { ">=" } else { ">" };
        sql.push_str(&format!(" AND {sort_col} {op} ?"));
        args.push(lower.value.into());
    }
    if let Some(upper) = upper {
        let op = if upper.inclusive { "<=" } else { "<" };
        sql.push_str(&format!(" AND {sort_col} {op} ?"));
        args.push(upper.value.into());
    }
    let direction = if query.descending { "DESC" } else { "ASC" };
    if let Some(values) = cursor {
        let comparison = if query.descending { "<" } else { ">" };
        sql.push_str(&format!(
            " AND ({}) {comparison} ({})",
            order.join(", "),
            vec!["?"; order.len()].join(", ")
        ));
        args.extend(values.into_iter().map(Into::into));
    }
    let ordering: Vec<String> = order.iter().map(|c| format!("{c} {direction}")).collect();
    sql.push_str(&format!(" ORDER BY {} LIMIT ?", ordering.join(", ")));
    args.push((query.limit as i64 + 1).into());

    let mut statement = conn.prepare_cached(&sql).map_err(TableError::backend)?;
    let rows = statement
        .query_map(rusqlite::params_from_iter(args), |row| {
            let (attrs, pk, sk): (String, String, String) = (row.get(0)?, row.get(1)?, row.get(2)?);
            let position: Vec<String> = (3..3 + order.len())
                .map(|i| row.get(i))
                .collect::<Result<_, _>>()?;
            Ok((parse_attrs(&attrs, &pk, &sk), position))
        })
        .map_err(TableError::backend)?;
    let mut items = Vec::new();
    let mut positions = Vec::new();
    for row in rows {
        let (item, position) = row.map_err(TableError::backend)?;
        items.push(item?);
        positions.push(position);
    }
    let next = if items.len() > query.limit {
        items.truncate(query.limit);
        Some(encode_cursor(&positions[query.limit - 1]))
    } else {
        None
    };
    Ok(Page { items, next })
}

/// One end of a range of sort keys.
struct Bound {
    value: String,
    inclusive: bool,
}

impl Bound {
    fn inclusive(value: String) -> Self {
        Self {
            value,
            inclusive: true,
        }
    }

    fn exclusive(value: String) -> Self {
        Self {
            value,
            inclusive: false,
        }
    }

    /// The higher of two lower bounds.
    fn tighter_lower(bound: Option<Self>, other: Self) -> Self {
        match bound {
            Some(bound) if bound.value >= other.value => bound,
            _ => other,
        }
    }

    /// The lower of two upper bounds.
    fn tighter_upper(bound: Option<Self>, other: Self) -> Self {
        match bound {
            Some(bound) if bound.value <= other.value => bound,
            _ => other,
        }
    }
}

fn encode_cursor(position: &[String]) -> Cursor {
    Cursor(B64.encode(serde_json::to_vec(position).expect("strings serialise")))
}

fn decode_cursor(cursor: &Cursor, len: usize) -> Result<Vec<String>, TableError> {
    B64.decode(&cursor.0)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Vec<String>>(&bytes).ok())
        .filter(|values| values.len() == len)
        .ok_or_else(|| TableError::Invalid("malformed query cursor".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::SystemClock;

    fn put(n: usize) -> Write {
        let mut item = Item::new();
        item.insert(PK.into(), format!("P#{n}").into());
        item.insert(SK.into(), "S".into());
        Write::Put {
            item,
            cond: Cond::Always,
        }
    }

    /// The disk stalls (the writer is held for 300 ms, as a slow fsync holds it): deferred
    /// writes return at once until the oldest one waiting is [`ADMIT_WITHIN`] old; the next
    /// returns only once the committer has caught up, so that no write returns (and no click
    /// is answered) while what a crash would lose is past the limit.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_committer_behind_holds_deferred_writes_until_it_catches_up() {
        let dir = tempfile::tempdir().unwrap();
        let table = SqliteTable::open(&dir.path().join("t.db"), Arc::new(SystemClock)).unwrap();
        let (held, holding) = std::sync::mpsc::channel();
        let shared = table.shared.clone();
        let stall = std::thread::spawn(move || {
            let _writer = lock(&shared.writer);
            held.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(300));
        });
        holding.recv().unwrap();
        let started = Instant::now();
        let mut returned = Vec::new();
        for n in 0..40 {
            table.transact_deferred(vec![put(n)]).await.unwrap();
            returned.push(started.elapsed());
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        stall.join().unwrap();
        assert!(returned[0] < ADMIT_WITHIN, "{returned:?}");
        let stalled = Duration::from_millis(290);
        assert!(
            returned.iter().any(|at| *at >= stalled),
            "a write waited for the committer: {returned:?}"
        );
        assert!(
            !returned
                .iter()
                .any(|at| *at > ADMIT_WITHIN + Duration::from_millis(15) && *at < stalled),
            "no write returned while the committer was behind: {returned:?}"
        );
        table.flush().await.unwrap();
        for n in 0..40 {
            let key = Key::new(format!("P#{n}"), "S");
            assert!(table.get(&key).await.unwrap().is_some());
        }
    }

    /// Writes without pause for a second and a half, six checkpoints' worth: the log is
    /// copied into the database and started over while they go on, so it stays smaller than
    /// what was written (SQLite's own checkpoints are off; without the checkpointer it would
    /// hold all of it, and more).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_is_checkpointed_and_started_over_under_constant_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let table = SqliteTable::open(&path, Arc::new(SystemClock)).unwrap();
        let padding = "x".repeat(1000);
        let started = Instant::now();
        let mut n = 0;
        while started.elapsed() < CHECKPOINT_EVERY * 6 {
            let Write::Put { mut item, cond } = put(n) else {
                unreachable!()
            };
            item.insert("padding".into(), padding.clone().into());
            table
                .transact_deferred(vec![Write::Put { item, cond }])
                .await
                .unwrap();
            n += 1;
            if n % 100 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        table.flush().await.unwrap();
        let written = n * padding.len();
        let log = std::fs::metadata(dir.path().join("t.db-wal"))
            .unwrap()
            .len() as usize;
        assert!(
            written > 4 << 20,
            "enough written to need checkpoints: {written} bytes"
        );
        // Never started over, the log holds at least all that was written (98 MB for 52 MB).
        assert!(
            log < written,
            "a log of {log} bytes after {written} written"
        );
    }

    /// What is deleted is not left on disk: once the log is checkpointed, its bytes are in
    /// neither the database file (`secure_delete`) nor the log's (emptied).
    #[tokio::test]
    async fn a_deleted_item_leaves_no_bytes_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let secret = "erased-person@example.com";
        let table = SqliteTable::open(&dir.path().join("t.db"), Arc::new(SystemClock)).unwrap();
        for n in 0..20 {
            let Write::Put { mut item, cond } = put(n) else {
                unreachable!()
            };
            item.insert("email".into(), format!("<{n}>{secret}").into());
            table.put(item, cond).await.unwrap();
        }
        table
            .delete(&Key::new("P#7", "S"), Cond::Always)
            .await
            .unwrap();
        tokio::time::sleep(CHECKPOINT_EVERY * 3).await;
        let read = |name: &str| std::fs::read(dir.path().join(name)).unwrap_or_default();
        let (database, log) = (read("t.db"), read("t.db-wal"));
        let found = |bytes: &[u8], needle: String| {
            bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
        };
        assert!(
            found(&database, format!("<6>{secret}")),
            "the others are there"
        );
        assert!(
            !found(&database, format!("<7>{secret}")),
            "not in the database"
        );
        assert!(!found(&log, format!("<7>{secret}")), "not in the log");
    }
}
