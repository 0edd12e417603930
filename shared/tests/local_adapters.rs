//! The port contract suites against the embedded adapters.

use std::sync::Arc;

use jiff::Timestamp;
use shared::adapters::{
    fs::FolderBlobs, local_key::LocalKeys, outbox::OutboxMailer, sqlite::SqliteTable,
};
use shared::contract;
use shared::domain::email::EmailAddress;
use shared::ports::{Clock, Mailer, ManualClock, Table};

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::at(
        Timestamp::from_second(1_767_225_600).unwrap(),
    ))
}

#[tokio::test]
async fn sqlite_table_meets_the_table_contract() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let table: Arc<dyn Table> =
        Arc::new(SqliteTable::open(&dir.path().join("t.sqlite3"), clock.clone()).unwrap());
    contract::table::run_all(table, clock).await;
}

#[tokio::test]
async fn sqlite_table_keeps_data_across_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.sqlite3");
    let clock = clock();
    {
        let table = SqliteTable::open(&path, clock.clone()).unwrap();
        let mut item = shared::ports::Item::new();
        item.insert("pk".into(), "p".into());
        item.insert("sk".into(), "s".into());
        table
            .put(item.clone(), shared::ports::Cond::Always)
            .await
            .unwrap();
        item.insert("sk".into(), "expired".into());
        item.insert("expires_at".into(), (clock.now().as_second() - 1).into());
        table.put(item, shared::ports::Cond::Always).await.unwrap();
    }
    let table = SqliteTable::open(&path, clock).unwrap();
    assert!(
        table
            .get(&shared::ports::Key::new("p", "s"))
            .await
            .unwrap()
            .is_some()
    );
    let expired = shared::ports::Key::new("p", "expired");
    assert_eq!(table.get(&expired).await.unwrap(), None);
}

/// Dropping the table closes the database before the drop returns (SQLite then removes the
/// WAL file), even while the group committer is busy with a commit: it is stopped and joined,
/// so it cannot be left holding the last handle.
#[tokio::test]
async fn dropping_a_sqlite_table_closes_its_database_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.sqlite3");
    let wal = dir.path().join("t.sqlite3-wal");
    const ROUNDS: usize = 200;
    for round in 0..ROUNDS {
        let table = SqliteTable::open(&path, clock()).unwrap();
        let mut item = shared::ports::Item::new();
        item.insert("pk".into(), "p".into());
        item.insert("sk".into(), round.to_string().into());
        table
            .transact_deferred(vec![shared::ports::Write::Put {
                item,
                cond: shared::ports::Cond::Always,
            }])
            .await
            .unwrap();
        // Dropped at a different moment of the committer's cycle each round: often during
        // its commit of the put.
        let cycle = shared::adapters::sqlite::FLUSH_EVERY.as_micros() as u64;
        std::thread::sleep(std::time::Duration::from_micros(
            round as u64 * 997 % (2 * cycle),
        ));
        drop(table);
        assert!(!wal.exists(), "round {round}: the database is still open");
    }
    let on_disk = rusqlite::Connection::open(&path).unwrap();
    let count: i64 = on_disk
        .query_row("SELECT count(*) FROM items WHERE pk = 'p'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(count, ROUNDS as i64);
}

/// New databases get 16 KiB pages (fewer WAL frames per group commit); a database made
/// with another page size keeps it and works as before.
#[tokio::test]
async fn sqlite_new_databases_get_16_kib_pages_and_old_ones_keep_theirs() {
    let page_size = |path: &std::path::Path| -> i64 {
        rusqlite::Connection::open(path)
            .unwrap()
            .query_row("PRAGMA page_size", [], |row| row.get(0))
            .unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let new = dir.path().join("new.sqlite3");
    drop(SqliteTable::open(&new, clock()).unwrap());
    assert_eq!(page_size(&new), 16384);

    let old = dir.path().join("old.sqlite3");
    rusqlite::Connection::open(&old)
        .unwrap()
        .execute_batch("PRAGMA page_size = 4096; PRAGMA journal_mode = WAL; CREATE TABLE t (x);")
        .unwrap();
    let table = SqliteTable::open(&old, clock()).unwrap();
    let key = shared::ports::Key::new("p", "s");
    table
        .update(
            &key,
            shared::ports::Update::default().set("v", 1),
            shared::ports::Cond::Always,
        )
        .await
        .unwrap();
    assert!(table.get(&key).await.unwrap().is_some());
    drop(table);
    assert_eq!(page_size(&old), 4096);
}

/// The expiry purge deletes every expired row, committed or still in the batch, and keeps
/// what lives, renewed ones included.
#[tokio::test]
async fn sqlite_purge_deletes_what_expired_and_keeps_the_rest() {
    use shared::ports::{Cond, Key, Update, Write};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.sqlite3");
    let clock = clock();
    let table = SqliteTable::open(&path, clock.clone()).unwrap();
    let now = clock.now().as_second();
    let expiring = |at: i64| Update::default().set("expires_at", at);
    for n in 0..5 {
        table
            .update(
                &Key::new("old", n.to_string()),
                expiring(now + 10),
                Cond::Always,
            )
            .await
            .unwrap();
    }
    table
        .update(&Key::new("new", "kept"), expiring(now + 1000), Cond::Always)
        .await
        .unwrap();
    table
        .update(
            &Key::new("new", "forever"),
            Update::default().set("v", 1),
            Cond::Always,
        )
        .await
        .unwrap();
    // One still deferred when the purge runs, and one renewed before it.
    table
        .transact_deferred(vec![Write::Update {
            key: Key::new("deferred", "x"),
            update: expiring(now + 10),
            cond: Cond::Always,
        }])
        .await
        .unwrap();
    table
        .update(&Key::new("old", "0"), expiring(now + 1000), Cond::Always)
        .await
        .unwrap();
    clock.advance(jiff::SignedDuration::from_secs(20));
    assert_eq!(
        table.purge_expired().await.unwrap(),
        5,
        "4 old and the deferred one"
    );
    let rows: Vec<(String, String)> = rusqlite::Connection::open(&path)
        .unwrap()
        .prepare("SELECT pk, sk FROM items ORDER BY pk, sk")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let rows: Vec<(&str, &str)> = rows.iter().map(|(p, s)| (p.as_str(), s.as_str())).collect();
    assert_eq!(rows, [("new", "forever"), ("new", "kept"), ("old", "0")]);
    assert_eq!(
        table.purge_expired().await.unwrap(),
        0,
        "a second purge finds nothing"
    );
}

#[tokio::test]
async fn folder_blobs_meet_the_blobs_contract() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = FolderBlobs::open(dir.path()).unwrap();
    contract::blobs::run_all(&blobs, "contract").await;
}

#[tokio::test]
async fn local_keys_meet_the_keys_contract() {
    let dir = tempfile::tempdir().unwrap();
    let keys = LocalKeys::open(&dir.path().join("master.key")).unwrap();
    contract::keys::run_all(&keys).await;
}

#[tokio::test]
async fn local_keys_reopen_with_the_same_master_key_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let context = shared::ports::EncryptionContext::new(&[("account", "A")]);
    let sealed = shared::ports::keys::seal(&LocalKeys::open(&path).unwrap(), b"secret", &context)
        .await
        .unwrap();
    let reopened = LocalKeys::open(&path).unwrap();
    assert_eq!(
        shared::ports::keys::open(&reopened, &sealed, &context)
            .await
            .unwrap()
            .expose(),
        b"secret"
    );
    let other = LocalKeys::open(&dir.path().join("other.key")).unwrap();
    assert!(
        shared::ports::keys::open(&other, &sealed, &context)
            .await
            .is_err()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}

#[tokio::test]
async fn outbox_mailer_meets_the_mailer_contract() {
    let dir = tempfile::tempdir().unwrap();
    let from = EmailAddress::parse("no-reply@leadsrefer.local").unwrap();
    let mailer = OutboxMailer::open(dir.path(), from, clock()).unwrap();
    contract::mailer::run_all(&mailer, || async { mailer.messages().unwrap() }).await;
}

/// A link long enough for quoted-printable to split it, with an `=` it would write `=3D`:
/// the `.txt` beside the `.eml` has it whole, to copy.
#[tokio::test]
async fn each_outbox_mail_has_a_readable_copy_with_its_links_whole() {
    let dir = tempfile::tempdir().unwrap();
    let from = EmailAddress::parse("no-reply@leadsrefer.local").unwrap();
    let mailer = OutboxMailer::open(dir.path(), from, clock()).unwrap();
    let link = format!(
        "http://127.0.0.1:3000/app/verify-email?token={}",
        "A1b2C3d4".repeat(12)
    );
    let email = shared::ports::mailer::Email {
        to: EmailAddress::parse("ana@example.com").unwrap(),
        subject: "Verify your email".into(),
        text: format!("Welcome.\n\nVerify your address: {link}\n"),
    };
    mailer.send(&email).await.unwrap();
    let eml = &mailer.messages().unwrap()[0];
    assert!(!eml.contains(&link), "the .eml's body is encoded: {eml}");
    let txt: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "txt"))
        .collect();
    assert_eq!(txt.len(), 1, "{txt:?}");
    let readable = std::fs::read_to_string(&txt[0]).unwrap();
    assert_eq!(
        readable,
        format!(
            "To: ana@example.com\nSubject: Verify your email\n\nWelcome.\n\nVerify your address: {link}\n"
        )
    );
}

#[tokio::test]
async fn deferred_writes_reach_the_disk_within_milliseconds_and_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.sqlite3");
    let clock = clock();
    let item = |sk: &str| {
        let mut item = shared::ports::Item::new();
        item.insert("pk".into(), "p".into());
        item.insert("sk".into(), sk.into());
        item
    };
    let table = SqliteTable::open(&path, clock.clone()).unwrap();
    table
        .transact_deferred(vec![shared::ports::Write::Put {
            item: item("batched"),
            cond: shared::ports::Cond::Always,
        }])
        .await
        .unwrap();
    // The group committer commits it within a few milliseconds, with no flush asked for.
    tokio::time::sleep(shared::adapters::sqlite::FLUSH_EVERY * 20).await;
    let on_disk = rusqlite::Connection::open(&path).unwrap();
    let count = |sk: &str| {
        on_disk
            .query_row("SELECT count(*) FROM items WHERE sk = ?1", [sk], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap()
    };
    assert_eq!(count("batched"), 1);
    table
        .transact_deferred(vec![shared::ports::Write::Put {
            item: item("at-shutdown"),
            cond: shared::ports::Cond::Always,
        }])
        .await
        .unwrap();
    drop(table);
    assert_eq!(
        count("at-shutdown"),
        1,
        "the last handle going away commits the batch"
    );
}

/// Whether `visitor`'s click on `link` at `at` is their first in a day's window.
async fn first_on_link(
    visits: &shared::adapters::memory_visits::MemoryVisits,
    link: &str,
    visitor: &str,
    at: Timestamp,
) -> bool {
    use shared::ports::Visits;
    let window = jiff::SignedDuration::from_hours(24);
    visits
        .record(link, visitor, at, window)
        .await
        .unwrap()
        .first_on_link
}

#[tokio::test]
async fn memory_visits_meet_the_visits_contract_and_survive_a_clean_restart() {
    use shared::adapters::memory_visits::MemoryVisits;
    use shared::ports::Visits;
    contract::visits::run_all(&MemoryVisits::new(), &clock()).await;

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("visits.json");
    let now = Timestamp::from_second(1_767_225_600).unwrap();
    let window = jiff::SignedDuration::from_hours(24);
    let visits = MemoryVisits::open(&file, now, 1000).unwrap();
    assert!(first_on_link(&visits, "L", "v", now).await);
    visits.save().await.unwrap();
    let reopened = MemoryVisits::open(&file, now, 1000).unwrap();
    assert!(
        !first_on_link(&reopened, "L", "v", now).await,
        "a clean restart remembers the visitor"
    );
    let much_later = now + jiff::SignedDuration::from_hours(25);
    let expired = MemoryVisits::open(&file, much_later, 1000).unwrap();
    assert!(first_on_link(&expired, "L", "v", much_later).await);

    // The file keeps the form the first version wrote, which an upgrade reads: per shard,
    // `link␟visitor` → when the window ends, and visitor → [minute, clicks in it].
    let minute = now.as_second().div_euclid(60);
    let ends = now.as_second() + 3600;
    std::fs::write(
        &file,
        format!(
            r#"[{{"windows":{{"L\u001fv":{ends},"M\u001fw":{ends}}},"minutes":{{"v":[{minute},3]}}}}]"#
        ),
    )
    .unwrap();
    let upgraded = MemoryVisits::open(&file, now, 1000).unwrap();
    let visit = upgraded.record("L", "v", now, window).await.unwrap();
    assert!(!visit.first_on_link, "the saved window is open");
    assert_eq!(
        visit.clicks_this_minute, 4,
        "the saved minute's clicks count on"
    );
    assert!(!first_on_link(&upgraded, "M", "w", now).await);
    assert!(first_on_link(&upgraded, "M", "v", now).await);
    upgraded.save().await.unwrap();
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let shard = saved
        .as_array()
        .unwrap()
        .iter()
        .find(|shard| shard["minutes"].get("v").is_some())
        .unwrap();
    assert_eq!(shard["minutes"]["v"], serde_json::json!([minute, 5]));
    assert_eq!(shard["windows"]["L\u{1f}v"], serde_json::json!(ends));
}

#[tokio::test]
async fn table_visits_on_sqlite_meet_the_visits_contract() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let table: Arc<dyn Table> =
        Arc::new(SqliteTable::open(&dir.path().join("t.sqlite3"), clock.clone()).unwrap());
    contract::visits::run_all(&shared::store::TableVisits::new(table), &clock).await;
}

/// Past its cap, memory holds no more visitors exactly: new ones are remembered
/// approximately, in fixed memory, erring towards "seen before" and "more clicks": a repeat is
/// never unique, and a flood is never missed. Once their windows end, room comes back.
#[tokio::test]
async fn memory_visits_past_their_cap_never_count_a_repeat_as_unique() {
    use shared::adapters::memory_visits::{MemoryVisits, SHARDS};
    use shared::ports::Visits;
    let cap = 2 * SHARDS;
    let visits = MemoryVisits::holding(cap);
    let now = Timestamp::from_second(1_767_225_600).unwrap();
    let mut unique = 0;
    for n in 0..20_000 {
        let visitor = format!("visitor-{n}");
        unique += usize::from(first_on_link(&visits, "L", &visitor, now).await);
        assert!(
            !first_on_link(
                &visits,
                "L",
                &visitor,
                now + jiff::SignedDuration::from_secs(1)
            )
            .await,
            "a repeat of {visitor} is never unique"
        );
    }
    assert!(
        visits.visitors_held() <= cap,
        "held {}",
        visits.visitors_held()
    );
    assert!(
        unique >= 19_990,
        "new visitors are unique but for rare false positives: {unique}"
    );
    // A flooding visitor past the cap: every click counted, at least.
    let window = jiff::SignedDuration::from_hours(24);
    for click in 1..=12 {
        let visit = visits.record("L", "flooder", now, window).await.unwrap();
        assert!(visit.clicks_this_minute >= click);
    }
    // Two days on, the windows have ended: room again, and a returning visitor is unique.
    let later = now + jiff::SignedDuration::from_hours(49);
    assert!(first_on_link(&visits, "L", "visitor-7", later).await);
    assert!(!first_on_link(&visits, "L", "visitor-7", later).await);
}
