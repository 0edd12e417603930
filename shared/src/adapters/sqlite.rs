//! `Table` on an embedded SQLite database (rusqlite, bundled; WAL).
//!
//! One table holds every item: its key and index attributes as columns (so that SQLite's
//! indexes answer queries in sort-key order) and all of its attributes as JSON. One connection,
//! behind a mutex, serialises every statement; a transaction is `BEGIN IMMEDIATE … COMMIT`
//! on it, so all-or-nothing holds without retries. Blocking calls run on tokio's blocking pool.
//!
//! `synchronous = FULL`: a write is on disk before it is acknowledged, because a conversion's
//! postback answer promises the conversion is recorded. Deferred writes (clicks) are the one
//! exception: a group committer commits them together every [`FLUSH_EVERY`], one fsync for the
//! batch, so a crash of the process loses at most the last few milliseconds of clicks and a clean
//! shutdown (which flushes) none. Reads and conditions see the batch at once.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use crate::ports::Clock;
use crate::ports::table::{
    Cond, Cursor, EXPIRES_AT, GSI1PK, GSI1SK, Index, Item, Key, Page, Query, SortKey, Table,
    TableError, Update, Write, cond_holds, is_expired, validate_transaction,
};

/// How often deferred writes are committed: the most a crash of the process can lose of them.
pub const FLUSH_EVERY: Duration = Duration::from_millis(5);

pub struct SqliteTable {
    inner: Arc<Mutex<Inner>>,
    clock: Arc<dyn Clock>,
}

/// The connection, and the deferred writes not yet committed (the group commit's batch).
struct Inner {
    conn: Connection,
    pending: HashMap<Key, Item>,
}

impl Inner {
    /// Commits every deferred write in one transaction: one fsync for the whole batch.
    fn flush(&mut self) -> Result<(), TableError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(TableError::backend)?;
        for item in self.pending.values() {
            store(&tx, item)?;
        }
        tx.commit().map_err(TableError::backend)?;
        self.pending.clear();
        Ok(())
    }

    /// The live item with this key, deferred or committed.
    fn live(&self, key: &Key, now: i64) -> Result<Option<Item>, TableError> {
        match self.pending.get(key) {
            Some(item) => Ok((!is_expired(item, now)).then(|| item.clone())),
            None => live(&self.conn, key, now),
        }
    }
}

impl Drop for SqliteTable {
    /// The last handle going away (a clean shutdown) commits what is deferred.
    fn drop(&mut self) {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Err(error) = inner.flush() {
            tracing::error!(%error, "deferred writes could not be committed at shutdown");
        }
    }
}

impl SqliteTable {
    /// Opens (creating if needed) the database file.
    pub fn open(path: &Path, clock: Arc<dyn Clock>) -> Result<Self, TableError> {
        let conn = Connection::open(path).map_err(TableError::backend)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA busy_timeout = 5000;
             CREATE TABLE IF NOT EXISTS items (
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
        let inner = Arc::new(Mutex::new(Inner {
            conn,
            pending: HashMap::new(),
        }));
        // The group committer: a thread that commits the batch every few milliseconds, and ends
        // when the table does.
        let batch = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("sqlite-group-commit".into())
            .spawn(move || {
                while let Some(inner) = batch.upgrade() {
                    {
                        let mut inner = inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                        if let Err(error) = inner.flush() {
                            tracing::error!(%error, "deferred writes could not be committed; retrying");
                        }
                    }
                    drop(inner);
                    std::thread::sleep(FLUSH_EVERY);
                }
            })
            .map_err(TableError::backend)?;
        Ok(Self { inner, clock })
    }

    /// Runs `work` with the connection and the batch, on the blocking pool.
    async fn with_inner<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Inner, i64) -> Result<T, TableError> + Send + 'static,
    ) -> Result<T, TableError> {
        let inner = self.inner.clone();
        let now = self.clock.now().as_second();
        tokio::task::spawn_blocking(move || {
            let mut inner = inner
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            work(&mut inner, now)
        })
        .await
        .map_err(TableError::backend)?
    }

    /// Runs a write on the connection, committing the batch first if the write touches an item
    /// in it (so that its condition and result see the deferred item).
    async fn with_conn<T: Send + 'static>(
        &self,
        keys: Vec<Key>,
        work: impl FnOnce(&mut Connection, i64) -> Result<T, TableError> + Send + 'static,
    ) -> Result<T, TableError> {
        self.with_inner(move |inner, now| {
            if keys.iter().any(|key| inner.pending.contains_key(key)) {
                inner.flush()?;
            }
            work(&mut inner.conn, now)
        })
        .await
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
    let item = parse_attrs(&attrs)?;
    Ok((!is_expired(&item, now)).then_some(item))
}

fn parse_attrs(attrs: &str) -> Result<Item, TableError> {
    serde_json::from_str(attrs).map_err(TableError::backend)
}

fn optional_text(item: &Item, name: &str) -> Result<Option<String>, TableError> {
    match item.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(TableError::Invalid(format!("`{name}` must be a string"))),
    }
}

fn store(conn: &Connection, item: &Item) -> Result<(), TableError> {
    let key = Key::of(item)?;
    if item.values().any(has_float) {
        return Err(TableError::Invalid("numbers must be integers".into()));
    }
    let expires_at = match item.get(EXPIRES_AT) {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .ok_or_else(|| TableError::Invalid("`expires_at` must be epoch seconds".into()))?,
        ),
    };
    let attrs = serde_json::to_string(item).map_err(TableError::backend)?;
    conn.execute(
        "INSERT OR REPLACE INTO items (pk, sk, gsi1pk, gsi1sk, expires_at, attrs)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            key.pk,
            key.sk,
            optional_text(item, GSI1PK)?,
            optional_text(item, GSI1SK)?,
            expires_at,
            attrs
        ],
    )
    .map_err(TableError::backend)?;
    Ok(())
}

fn has_float(value: &Value) -> bool {
    match value {
        Value::Number(n) => !n.is_i64() && !n.is_u64(),
        Value::Array(values) => values.iter().any(has_float),
        Value::Object(map) => map.values().any(has_float),
        _ => false,
    }
}

/// Applies one write whose condition is already known to hold over `existing`.
fn apply(
    conn: &Connection,
    write: &Write,
    existing: Option<Item>,
) -> Result<Option<Item>, TableError> {
    match write {
        Write::Put { item, .. } => {
            store(conn, item)?;
            Ok(Some(item.clone()))
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
    async fn get(&self, key: &Key) -> Result<Option<Item>, TableError> {
        let key = key.clone();
        self.with_inner(move |inner, now| inner.live(&key, now))
            .await
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
        self.with_inner(move |inner, now| {
            inner.flush()?;
            run_query(&inner.conn, &query, now)
        })
        .await
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

    /// Checked now against the database and the batch, committed with the batch.
    async fn put_deferred(&self, item: Item, cond: Cond) -> Result<(), TableError> {
        let key = Key::of(&item)?;
        if item.values().any(has_float) {
            return Err(TableError::Invalid("numbers must be integers".into()));
        }
        self.with_inner(move |inner, now| {
            let existing = inner.live(&key, now)?;
            if !cond_holds(&cond, existing.as_ref()) {
                return Err(TableError::Conflict {
                    write: 0,
                    existing: existing.map(Box::new),
                });
            }
            inner.pending.insert(key, item);
            Ok(())
        })
        .await
    }

    async fn flush(&self) -> Result<(), TableError> {
        self.with_inner(|inner, _| inner.flush()).await
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
        "SELECT attrs, {} FROM items WHERE {partition_col} = ? \
         AND (expires_at IS NULL OR expires_at > ?)",
        order.join(", ")
    );
    if query.index == Index::Gsi1 {
        // As in DynamoDB, an item is in the index only when it has both index attributes.
        sql.push_str(" AND gsi1sk IS NOT NULL");
    }
    let mut args: Vec<rusqlite::types::Value> = vec![query.partition.clone().into(), now.into()];
    match &query.sort {
        SortKey::Any => {}
        SortKey::Prefix(prefix) => {
            // Every string starting with `prefix` sorts in [prefix, prefix + U+10FFFF).
            sql.push_str(&format!(" AND {sort_col} >= ? AND {sort_col} < ?"));
            args.push(prefix.clone().into());
            args.push(format!("{prefix}\u{10FFFF}").into());
        }
        SortKey::Between(from, to) => {
            sql.push_str(&format!(" AND {sort_col} BETWEEN ? AND ?"));
            args.push(from.clone().into());
            args.push(to.clone().into());
        }
    }
    let direction = if query.descending { "DESC" } else { "ASC" };
    if let Some(cursor) = &query.after {
        let values = decode_cursor(cursor, order.len())?;
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
            let attrs: String = row.get(0)?;
            let position: Vec<String> = (1..=order.len())
                .map(|i| row.get(i))
                .collect::<Result<_, _>>()?;
            Ok((attrs, position))
        })
        .map_err(TableError::backend)?;
    let mut items = Vec::new();
    let mut positions = Vec::new();
    for row in rows {
        let (attrs, position) = row.map_err(TableError::backend)?;
        items.push(parse_attrs(&attrs)?);
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
