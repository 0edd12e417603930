//! The `Table` contract. Every case works in partitions of its own (a fresh ULID in each key),
//! so suites may share one backend.

use std::sync::Arc;

use jiff::SignedDuration;
use serde_json::{Value, json};

use crate::ports::clock::{Clock, ManualClock};
use crate::ports::table::{
    Cond, EXPIRES_AT, Item, Key, Query, Rendered, Table, TableError, Update, Write,
};

fn item(pk: &str, sk: &str, extra: Value) -> Item {
    let mut item = match extra {
        Value::Object(map) => map,
        _ => Item::new(),
    };
    item.insert("pk".into(), pk.into());
    item.insert("sk".into(), sk.into());
    item
}

fn fresh(name: &str) -> String {
    format!("{name}#{}", ulid::Ulid::generate())
}

/// Every case. `clock` must be the clock the adapter reads.
pub async fn run_all(table: Arc<dyn Table>, clock: Arc<ManualClock>) {
    put_get_round_trips(&*table).await;
    create_once_refuses_an_existing_item(&*table).await;
    conditions_guard_updates_and_deletes(&*table).await;
    updates_set_and_add_atomically(&*table).await;
    concurrent_adds_lose_no_increment(table.clone()).await;
    transaction_applies_all_writes(&*table).await;
    transaction_with_one_failing_condition_writes_nothing(&*table).await;
    transaction_refuses_two_writes_on_one_item(&*table).await;
    expired_items_are_never_returned(&*table, &clock).await;
    queries_read_ranges_in_order(&*table).await;
    queries_refuse_empty_key_conditions(&*table).await;
    queries_page_through_everything_once(&*table).await;
    secondary_index_queries(&*table).await;
    floats_are_refused(&*table).await;
    capped_counters_never_pass_their_cap(table.clone(), &clock).await;
    deferred_writes_are_seen_at_once_and_kept(&*table).await;
    a_shared_init_fills_whatever_the_item_lacks(&*table).await;
    rendered_puts_store_the_record_as_an_item(&*table, &clock).await;
}

pub async fn put_get_round_trips(table: &dyn Table) {
    let pk = fresh("rt");
    let stored = item(
        &pk,
        "a",
        json!({"n": 9_007_199_254_740_993_i64, "s": "é\"'\\", "b": true,
        "l": [1, "x", null], "m": {"k": {"deep": -1}}, "z": null}),
    );
    table.put(stored.clone(), Cond::Always).await.unwrap();
    assert_eq!(
        table.get(&Key::new(&pk, "a")).await.unwrap(),
        Some(stored),
        "an item reads back as written"
    );
    assert_eq!(table.get(&Key::new(&pk, "b")).await.unwrap(), None);
}

pub async fn create_once_refuses_an_existing_item(table: &dyn Table) {
    let pk = fresh("once");
    let original = item(&pk, "x", json!({"v": 1}));
    table.put(original.clone(), Cond::NotExists).await.unwrap();
    let repeat = table
        .put(item(&pk, "x", json!({"v": 2})), Cond::NotExists)
        .await;
    match repeat {
        Err(TableError::Conflict {
            write: 0,
            existing: Some(existing),
        }) => {
            assert_eq!(
                *existing, original,
                "the conflict carries the item as it stood"
            );
        }
        other => panic!("expected a conflict with the existing item, got {other:?}"),
    }
    assert_eq!(
        table.get(&Key::new(&pk, "x")).await.unwrap(),
        Some(original),
        "nothing changed"
    );
}

pub async fn conditions_guard_updates_and_deletes(table: &dyn Table) {
    let pk = fresh("cond");
    let key = Key::new(&pk, "c");
    let set_status = |s: &str| Update::default().set("status", s);

    let missing = table
        .update(&key, set_status("approved"), Cond::Exists)
        .await;
    assert!(
        matches!(missing, Err(TableError::Conflict { existing: None, .. })),
        "Exists fails on no item"
    );
    assert_eq!(
        table.get(&key).await.unwrap(),
        None,
        "a failed update creates nothing"
    );

    table
        .put(item(&pk, "c", json!({"status": "pending"})), Cond::Always)
        .await
        .unwrap();
    let wrong = table
        .update(
            &key,
            set_status("rejected"),
            Cond::Equals("status".into(), "approved".into()),
        )
        .await;
    assert!(wrong.unwrap_err().is_conflict());
    let moved = table
        .update(
            &key,
            set_status("approved"),
            Cond::Equals("status".into(), "pending".into()),
        )
        .await
        .unwrap();
    assert_eq!(
        moved["status"], "approved",
        "update returns the item as it now is"
    );

    let refused = table
        .delete(&key, Cond::Equals("status".into(), "pending".into()))
        .await;
    assert!(refused.unwrap_err().is_conflict());
    let removed = table.delete(&key, Cond::Exists).await.unwrap();
    assert_eq!(
        removed.map(|i| i["status"].clone()),
        Some(json!("approved"))
    );
    assert_eq!(
        table.delete(&key, Cond::Always).await.unwrap(),
        None,
        "deleting nothing succeeds"
    );
    assert!(
        table
            .put(item(&pk, "c", json!({})), Cond::Exists)
            .await
            .unwrap_err()
            .is_conflict()
    );
}

pub async fn updates_set_and_add_atomically(table: &dyn Table) {
    let key = Key::new(fresh("upd"), "u");
    let first = table
        .update(
            &key,
            Update::default().add("clicks", 5).set("name", "n"),
            Cond::Always,
        )
        .await
        .unwrap();
    assert_eq!(
        (first["clicks"].as_i64(), first["name"].as_str()),
        (Some(5), Some("n")),
        "a missing counter starts at 0"
    );
    let second = table
        .update(&key, Update::default().add("clicks", -7), Cond::Always)
        .await
        .unwrap();
    assert_eq!(second["clicks"], -2);
    assert_eq!(
        second["name"], "n",
        "an update keeps attributes it does not name"
    );
    let init = |name: &str| {
        Update::default()
            .add("clicks", 1)
            .init("name", name)
            .init("kind", "k")
    };
    let third = table
        .update(&key, init("other"), Cond::Always)
        .await
        .unwrap();
    assert_eq!(
        (
            third["clicks"].as_i64(),
            third["name"].as_str(),
            third["kind"].as_str()
        ),
        (Some(-1), Some("n"), Some("k")),
        "`init` sets an attribute only where the item has none"
    );
    let fresh_key = Key::new(fresh("upd"), "init");
    let created = table
        .update(&fresh_key, init("first"), Cond::Always)
        .await
        .unwrap();
    assert_eq!(
        created["name"], "first",
        "`init` sets a new item's attribute"
    );
    let twice = table
        .update(
            &key,
            Update::default().set("name", "a").init("name", "b"),
            Cond::Always,
        )
        .await;
    assert!(
        matches!(twice, Err(TableError::Invalid(_))),
        "one attribute set and initialised is refused"
    );
    let bad = table
        .update(&key, Update::default().add("name", 1), Cond::Always)
        .await;
    assert!(
        matches!(bad, Err(TableError::Invalid(_))),
        "adding to a string is refused"
    );
    let key_change = table
        .update(&key, Update::default().set("sk", "other"), Cond::Always)
        .await;
    assert!(
        matches!(key_change, Err(TableError::Invalid(_))),
        "the key cannot change"
    );
}

pub async fn concurrent_adds_lose_no_increment(table: Arc<dyn Table>) {
    let key = Key::new(fresh("race"), "counter");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (table, key) = (table.clone(), key.clone());
        tasks.spawn(async move {
            for _ in 0..10 {
                table
                    .update(&key, Update::default().add("n", 1), Cond::Always)
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let counter = table.get(&key).await.unwrap().unwrap();
    assert_eq!(counter["n"], 160, "160 concurrent increments, none lost");
}

pub async fn transaction_applies_all_writes(table: &dyn Table) {
    let pk = fresh("tx-ok");
    table
        .put(item(&pk, "old", json!({})), Cond::Always)
        .await
        .unwrap();
    table
        .put(item(&pk, "check", json!({"state": "open"})), Cond::Always)
        .await
        .unwrap();
    table
        .transact(vec![
            Write::Put {
                item: item(&pk, "new", json!({"v": 1})),
                cond: Cond::NotExists,
            },
            Write::Update {
                key: Key::new(&pk, "count"),
                update: Update::default().add("n", 2),
                cond: Cond::Always,
            },
            Write::Delete {
                key: Key::new(&pk, "old"),
                cond: Cond::Exists,
            },
            Write::Check {
                key: Key::new(&pk, "check"),
                cond: Cond::Equals("state".into(), "open".into()),
            },
        ])
        .await
        .unwrap();
    assert!(table.get(&Key::new(&pk, "new")).await.unwrap().is_some());
    assert_eq!(
        table.get(&Key::new(&pk, "count")).await.unwrap().unwrap()["n"],
        2
    );
    assert_eq!(table.get(&Key::new(&pk, "old")).await.unwrap(), None);
}

pub async fn transaction_with_one_failing_condition_writes_nothing(table: &dyn Table) {
    let pk = fresh("tx-fail");
    let taken = item(&pk, "taken", json!({"v": "original"}));
    table.put(taken.clone(), Cond::Always).await.unwrap();
    table
        .put(item(&pk, "doomed", json!({})), Cond::Always)
        .await
        .unwrap();
    let result = table
        .transact(vec![
            Write::Put {
                item: item(&pk, "a", json!({})),
                cond: Cond::NotExists,
            },
            Write::Update {
                key: Key::new(&pk, "count"),
                update: Update::default().add("n", 1),
                cond: Cond::Always,
            },
            Write::Delete {
                key: Key::new(&pk, "doomed"),
                cond: Cond::Always,
            },
            Write::Put {
                item: item(&pk, "taken", json!({"v": "new"})),
                cond: Cond::NotExists,
            },
        ])
        .await;
    match result {
        Err(TableError::Conflict {
            write: 3,
            existing: Some(existing),
        }) => assert_eq!(*existing, taken),
        other => panic!("expected write 3 to conflict with the taken item, got {other:?}"),
    }
    assert_eq!(
        table.get(&Key::new(&pk, "a")).await.unwrap(),
        None,
        "no put happened"
    );
    assert_eq!(
        table.get(&Key::new(&pk, "count")).await.unwrap(),
        None,
        "no update happened"
    );
    assert!(
        table.get(&Key::new(&pk, "doomed")).await.unwrap().is_some(),
        "no delete happened"
    );
    assert_eq!(
        table.get(&Key::new(&pk, "taken")).await.unwrap(),
        Some(taken)
    );
}

pub async fn transaction_refuses_two_writes_on_one_item(table: &dyn Table) {
    let pk = fresh("tx-dup");
    let result = table
        .transact(vec![
            Write::Put {
                item: item(&pk, "x", json!({})),
                cond: Cond::Always,
            },
            Write::Update {
                key: Key::new(&pk, "x"),
                update: Update::default().add("n", 1),
                cond: Cond::Always,
            },
        ])
        .await;
    assert!(matches!(result, Err(TableError::Invalid(_))));
    assert_eq!(table.get(&Key::new(&pk, "x")).await.unwrap(), None);
    assert!(matches!(
        table.transact(vec![]).await,
        Err(TableError::Invalid(_))
    ));
}

pub async fn expired_items_are_never_returned(table: &dyn Table, clock: &ManualClock) {
    let pk = fresh("ttl");
    let now = clock.now().as_second();
    table
        .put(
            item(&pk, "a", json!({EXPIRES_AT: now + 60, "v": "old"})),
            Cond::Always,
        )
        .await
        .unwrap();
    table
        .put(
            item(&pk, "b", json!({EXPIRES_AT: now + 3600})),
            Cond::Always,
        )
        .await
        .unwrap();
    table
        .put(item(&pk, "c", json!({})), Cond::Always)
        .await
        .unwrap();
    let stale = json!({EXPIRES_AT: now + 60, "stale": true, "n": 40});
    table
        .put(item(&pk, "d", stale), Cond::Always)
        .await
        .unwrap();
    assert!(
        table.get(&Key::new(&pk, "a")).await.unwrap().is_some(),
        "alive before its time"
    );

    clock.advance(SignedDuration::from_secs(60));
    assert_eq!(
        table.get(&Key::new(&pk, "a")).await.unwrap(),
        None,
        "gone at expires_at"
    );
    let page = table.query(Query::partition(&pk)).await.unwrap();
    let sks: Vec<_> = page
        .items
        .iter()
        .map(|i| i["sk"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(sks, ["b", "c"], "queries skip expired items");
    assert!(
        table
            .update(
                &Key::new(&pk, "a"),
                Update::default().set("v", "x"),
                Cond::Exists
            )
            .await
            .unwrap_err()
            .is_conflict(),
        "an expired item does not exist for conditions"
    );
    assert_eq!(
        table
            .delete(&Key::new(&pk, "a"), Cond::Always)
            .await
            .unwrap(),
        None,
        "delete returns no expired item"
    );
    let restarted = table
        .update(
            &Key::new(&pk, "d"),
            Update::default().add("n", 2),
            Cond::Always,
        )
        .await
        .unwrap();
    assert_eq!(
        restarted.get("stale"),
        None,
        "an update does not build on an expired item"
    );
    assert_eq!(restarted["n"], 2);
    table
        .put(item(&pk, "a", json!({"v": "new"})), Cond::NotExists)
        .await
        .expect("create-once over an expired item succeeds");
    assert_eq!(
        table.get(&Key::new(&pk, "a")).await.unwrap().unwrap()["v"],
        "new"
    );
    clock.advance(SignedDuration::from_secs(-60));
}

async fn sort_keys(table: &dyn Table, query: Query) -> Vec<String> {
    let page = table.query(query).await.unwrap();
    page.items
        .iter()
        .map(|i| i["sk"].as_str().unwrap().to_string())
        .collect()
}

pub async fn queries_read_ranges_in_order(table: &dyn Table) {
    let pk = fresh("range");
    for sk in ["b#2", "a#1", "b#1", "c", "b#10", "ba"] {
        table
            .put(item(&pk, sk, json!({})), Cond::Always)
            .await
            .unwrap();
    }
    assert_eq!(
        sort_keys(table, Query::partition(&pk)).await,
        ["a#1", "b#1", "b#10", "b#2", "ba", "c"]
    );
    assert_eq!(
        sort_keys(table, Query::partition(&pk).prefix("b#")).await,
        ["b#1", "b#10", "b#2"]
    );
    assert_eq!(
        sort_keys(table, Query::partition(&pk).between("b#10", "ba")).await,
        ["b#10", "b#2", "ba"]
    );
    assert_eq!(
        sort_keys(table, Query::partition(&pk).prefix("b#").descending()).await,
        ["b#2", "b#10", "b#1"]
    );
    assert!(
        sort_keys(table, Query::partition(fresh("empty")))
            .await
            .is_empty()
    );
}

/// DynamoDB refuses an empty string in a key condition (`between("", …)` made the maturation
/// job fail on every run on AWS while SQLite answered it); every adapter refuses it alike.
pub async fn queries_refuse_empty_key_conditions(table: &dyn Table) {
    let pk = fresh("bounds");
    for sk in ["000000000001#a", "000000000002#b", "000000000003#c"] {
        table
            .put(item(&pk, sk, json!({})), Cond::Always)
            .await
            .unwrap();
    }
    for query in [
        Query::partition(&pk).between("", "000000000002#~"),
        Query::partition(&pk).between("0", ""),
        Query::partition(&pk).prefix(""),
        Query::gsi1(&pk).between("", "z"),
    ] {
        let refused = table.query(query.clone()).await;
        assert!(
            matches!(refused, Err(TableError::Invalid(_))),
            "{query:?}: {refused:?}"
        );
    }
    // The shape the maturation job reads with: a time-keyed range from "0", in pages.
    let due = Query::partition(&pk)
        .between("0", "000000000002#~")
        .limit(1);
    let first = table.query(due.clone()).await.unwrap();
    let second = table.query(due.after(first.next.clone())).await.unwrap();
    let keys: Vec<_> = first
        .items
        .iter()
        .chain(&second.items)
        .map(|i| i["sk"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys, ["000000000001#a", "000000000002#b"]);
    assert_eq!(
        sort_keys(
            table,
            Query::partition(&pk)
                .between("0", "000000000003#~")
                .descending()
        )
        .await,
        ["000000000003#c", "000000000002#b", "000000000001#a"]
    );
}

pub async fn queries_page_through_everything_once(table: &dyn Table) {
    let pk = fresh("pages");
    let expected: Vec<String> = (0..23).map(|i| format!("{i:03}")).collect();
    for sk in &expected {
        table
            .put(item(&pk, sk, json!({})), Cond::Always)
            .await
            .unwrap();
    }
    // Whole, and within bounds (the cursor and the bounds both limit where a page starts).
    let ranges: [(Query, std::ops::Range<usize>); 3] = [
        (Query::partition(&pk), 0..23),
        (Query::partition(&pk).between("005", "017"), 5..18),
        (Query::partition(&pk).prefix("01"), 10..20),
    ];
    for (range, indices) in ranges {
        for descending in [false, true] {
            let mut query = range.clone().limit(5);
            query.descending = descending;
            let seen = every_page(table, query, "sk").await;
            let mut want = expected[indices.clone()].to_vec();
            if descending {
                want.reverse();
            }
            assert_eq!(
                seen, want,
                "pages of {range:?} (descending: {descending}) hold every item once, in order"
            );
        }
    }
    // In the index, items that share a sort key are told apart by their primary keys.
    let index = fresh("tied");
    for n in 0..7 {
        table
            .put(
                item(
                    &format!("{pk}-tied-{n}"),
                    "item",
                    json!({"gsi1pk": index, "gsi1sk": "same"}),
                ),
                Cond::Always,
            )
            .await
            .unwrap();
    }
    let mut seen = every_page(table, Query::gsi1(&index).prefix("sa").limit(2), "pk").await;
    let pages = seen.len();
    seen.sort();
    seen.dedup();
    assert_eq!((pages, seen.len()), (7, 7), "every tied item once");
}

/// `attribute` of every item `query` finds, page after page (each within the query's limit).
async fn every_page(table: &dyn Table, query: Query, attribute: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = table.query(query.clone().after(after)).await.unwrap();
        assert!(page.items.len() <= query.limit);
        seen.extend(
            page.items
                .iter()
                .map(|i| i[attribute].as_str().unwrap().to_string()),
        );
        match page.next {
            Some(next) => after = Some(next),
            None => return seen,
        }
    }
}

pub async fn secondary_index_queries(table: &dyn Table) {
    let pk = fresh("gsi");
    let index = fresh("idx");
    for (sk, gsi1sk) in [
        ("1", Some("2024-02")),
        ("2", Some("2024-01")),
        ("3", None),
        ("4", Some("2024-03")),
    ] {
        let mut extra = json!({"gsi1pk": index});
        if let Some(gsi1sk) = gsi1sk {
            extra["gsi1sk"] = gsi1sk.into();
        }
        table
            .put(item(&format!("{pk}-{sk}"), "item", extra), Cond::Always)
            .await
            .unwrap();
    }
    let page = table.query(Query::gsi1(&index)).await.unwrap();
    let order: Vec<_> = page
        .items
        .iter()
        .map(|i| i["gsi1sk"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        order,
        ["2024-01", "2024-02", "2024-03"],
        "ordered by gsi1sk; items without it are not indexed"
    );
    let page = table
        .query(Query::gsi1(&index).prefix("2024-0").limit(2))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 2);
    let rest = table
        .query(
            Query::gsi1(&index)
                .prefix("2024-0")
                .limit(2)
                .after(page.next),
        )
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.items[0]["gsi1sk"], "2024-03");
}

pub async fn floats_are_refused(table: &dyn Table) {
    let pk = fresh("float");
    let result = table
        .put(item(&pk, "f", json!({"amount": 12.34})), Cond::Always)
        .await;
    assert!(
        matches!(result, Err(TableError::Invalid(_))),
        "money never travels as a float"
    );
}

pub async fn capped_counters_never_pass_their_cap(table: Arc<dyn Table>, clock: &ManualClock) {
    let key = Key::new(fresh("cap"), "count");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let (table, key) = (table.clone(), key.clone());
        tasks.spawn(async move {
            table
                .update(
                    &key,
                    Update::default().add("n", 1),
                    Cond::Below("n".into(), 5),
                )
                .await
        });
    }
    let results = tasks.join_all().await;
    let granted = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(granted, 5, "exactly the cap is granted, however many race");
    for refused in results.iter().filter_map(|r| r.as_ref().err()) {
        match refused {
            TableError::Conflict {
                existing: Some(item),
                ..
            } => assert_eq!(item["n"], 5),
            other => panic!("a refusal is a conflict with the counter at its cap, not {other:?}"),
        }
    }
    assert_eq!(table.get(&key).await.unwrap().unwrap()["n"], 5);

    // In a transaction, the cap refuses the whole transaction.
    let pk = fresh("cap-tx");
    let counter = Key::new(&pk, "count");
    table
        .put(item(&pk, "count", json!({"n": 2})), Cond::Always)
        .await
        .unwrap();
    let capped = table
        .transact(vec![
            Write::Put {
                item: item(&pk, "record", json!({})),
                cond: Cond::NotExists,
            },
            Write::Update {
                key: counter.clone(),
                update: Update::default().add("n", 1),
                cond: Cond::Below("n".into(), 2),
            },
        ])
        .await;
    assert!(
        matches!(capped, Err(TableError::Conflict { write: 1, .. })),
        "{capped:?}"
    );
    assert_eq!(table.get(&Key::new(&pk, "record")).await.unwrap(), None);

    // An expired counter counts as absent: it starts again from nothing.
    let pk = fresh("cap-ttl");
    let now = clock.now().as_second();
    table
        .put(
            item(&pk, "count", json!({"n": 9, EXPIRES_AT: now + 10})),
            Cond::Always,
        )
        .await
        .unwrap();
    clock.advance(SignedDuration::from_secs(10));
    let restarted = table
        .update(
            &Key::new(&pk, "count"),
            Update::default().add("n", 1),
            Cond::Below("n".into(), 3),
        )
        .await
        .unwrap();
    assert_eq!(restarted["n"], 1);
    clock.advance(SignedDuration::from_secs(-10));
}

pub async fn deferred_writes_are_seen_at_once_and_kept(table: &dyn Table) {
    let pk = fresh("deferred");
    table
        .transact_deferred(vec![Write::Put {
            item: item(&pk, "a", json!({"v": 1})),
            cond: Cond::NotExists,
        }])
        .await
        .unwrap();
    assert_eq!(
        table.get(&Key::new(&pk, "a")).await.unwrap().unwrap()["v"],
        1,
        "seen at once"
    );
    let again = table
        .transact_deferred(vec![Write::Put {
            item: item(&pk, "a", json!({"v": 2})),
            cond: Cond::NotExists,
        }])
        .await;
    assert!(
        again.unwrap_err().is_conflict(),
        "conditions see it at once"
    );
    let updated = table
        .update(
            &Key::new(&pk, "a"),
            Update::default().add("n", 1),
            Cond::Exists,
        )
        .await
        .unwrap();
    assert_eq!(
        (updated["v"].as_i64(), updated["n"].as_i64()),
        (Some(1), Some(1)),
        "writes build on it"
    );
    table
        .transact_deferred(vec![Write::Put {
            item: item(&pk, "b", json!({})),
            cond: Cond::Always,
        }])
        .await
        .unwrap();
    let counted = table
        .update_deferred(
            &Key::new(&pk, "c"),
            Update::default().add("n", 2).init("label", "first"),
            Cond::Always,
        )
        .await
        .unwrap();
    assert_eq!(
        counted["n"], 2,
        "a deferred update answers the item as it now is"
    );
    let counted = table
        .update_deferred(
            &Key::new(&pk, "c"),
            Update::default().add("n", 3).init("label", "second"),
            Cond::Below("n".into(), 10),
        )
        .await
        .unwrap();
    assert_eq!(counted["n"], 5, "and builds on the deferred version");
    assert_eq!(counted["label"], "first", "which `init` leaves as it is");
    let refused = table
        .transact_deferred(vec![
            Write::Put {
                item: item(&pk, "d", json!({})),
                cond: Cond::Always,
            },
            Write::Update {
                key: Key::new(&pk, "c"),
                update: Update::default().add("n", 1),
                cond: Cond::Below("n".into(), 5),
            },
        ])
        .await;
    assert!(matches!(
        refused,
        Err(TableError::Conflict { write: 1, .. })
    ));
    assert!(
        table.get(&Key::new(&pk, "d")).await.unwrap().is_none(),
        "a refused deferred group writes nothing"
    );
    // What a commit could not store is refused at once, not left to fail the group commit.
    for (key, update) in [
        (Key::new("", "x"), Update::default().add("n", 1)),
        (Key::new(&pk, "e"), Update::default().add("gsi1pk", 1)),
    ] {
        let refused = table
            .update_deferred(&key, update, Cond::Always)
            .await
            .unwrap_err();
        assert!(matches!(refused, TableError::Invalid(_)), "{refused:?}");
    }
    table.flush().await.unwrap();
    let page = table.query(Query::partition(&pk)).await.unwrap();
    assert_eq!(page.items.len(), 3, "queries see it after a flush");
    assert_eq!(page.items[2]["n"], 5);
}

/// Deferred counter updates sharing one `init` (as every click on a report counter does) set
/// its attributes wherever the item lacks them, however often the same `init` came before:
/// after a put that replaced the item too.
pub async fn a_shared_init_fills_whatever_the_item_lacks(table: &dyn Table) {
    let key = Key::new(fresh("shared-init"), "c");
    let init: Arc<Item> = Arc::new(
        json!({"label": "first", "kind": "k"})
            .as_object()
            .unwrap()
            .clone(),
    );
    let count = || Update::default().init_all(init.clone()).add("n", 1);
    for _ in 0..2 {
        table
            .update_deferred(&key, count(), Cond::Always)
            .await
            .unwrap();
    }
    table
        .transact_deferred(vec![Write::Put {
            item: item(&key.pk, &key.sk, json!({"n": 10})),
            cond: Cond::Always,
        }])
        .await
        .unwrap();
    let counted = table
        .update_deferred(&key, count(), Cond::Always)
        .await
        .unwrap();
    assert_eq!(
        (
            counted["n"].as_i64(),
            counted["label"].as_str(),
            counted["kind"].as_str()
        ),
        (Some(11), Some("first"), Some("k")),
        "the same `init` fills an item a put replaced"
    );
    table.flush().await.unwrap();
    let stored = table.get(&key).await.unwrap().unwrap();
    assert_eq!(
        (stored["n"].as_i64(), stored["label"].as_str()),
        (Some(11), Some("first"))
    );
}

/// A rendered record is the item a plain put of it would store: read back at once (deferred)
/// and after a commit, in a transaction with other writes, built on by updates, and gone once
/// its `expires_at` passes.
pub async fn rendered_puts_store_the_record_as_an_item(table: &dyn Table, clock: &ManualClock) {
    #[derive(serde::Serialize)]
    struct Record {
        name: &'static str,
        count: i64,
        tags: [Option<&'static str>; 2],
        expires_at: i64,
    }
    let pk = fresh("rendered");
    let expires_at = clock.now().as_second() + 3600;
    let record = Record {
        name: "é\"'\\",
        count: 9_007_199_254_740_993,
        tags: [Some("x"), None],
        expires_at,
    };
    let expected = |sk: &str| {
        item(
            &pk,
            sk,
            json!({"name": "é\"'\\", "count": 9_007_199_254_740_993_i64, "tags": ["x", null],
            "expires_at": expires_at}),
        )
    };
    let rendered = |sk: &str| Rendered::of(&record, Key::new(&pk, sk), Some(expires_at)).unwrap();

    table
        .transact_deferred(vec![
            Write::PutRendered { row: rendered("a") },
            Write::Update {
                key: Key::new(&pk, "counter"),
                update: Update::default().add("n", 1),
                cond: Cond::Always,
            },
        ])
        .await
        .unwrap();
    assert_eq!(
        table.get(&Key::new(&pk, "a")).await.unwrap(),
        Some(expected("a")),
        "a deferred rendered put reads back at once as the record's item"
    );
    let updated = table
        .update_deferred(
            &Key::new(&pk, "a"),
            Update::default().add("count", -3),
            Cond::Exists,
        )
        .await
        .unwrap();
    assert_eq!(updated["count"], 9_007_199_254_740_990_i64);
    assert_eq!(updated["name"], "é\"'\\", "an update builds on it");

    table
        .transact(vec![
            Write::PutRendered { row: rendered("b") },
            Write::Put {
                item: item(&pk, "c", json!({})),
                cond: Cond::NotExists,
            },
        ])
        .await
        .unwrap();
    table.flush().await.unwrap();
    assert_eq!(
        table.get(&Key::new(&pk, "b")).await.unwrap(),
        Some(expected("b")),
        "a rendered put in a direct transaction stores the same item"
    );
    let refused = table
        .transact(vec![
            Write::PutRendered { row: rendered("d") },
            Write::Put {
                item: item(&pk, "c", json!({})),
                cond: Cond::NotExists,
            },
        ])
        .await;
    assert!(matches!(
        refused,
        Err(TableError::Conflict { write: 1, .. })
    ));
    assert_eq!(
        table.get(&Key::new(&pk, "d")).await.unwrap(),
        None,
        "a rendered put is undone with its refused transaction"
    );
    let page = table.query(Query::partition(&pk)).await.unwrap();
    let sort_keys: Vec<&str> = page
        .items
        .iter()
        .map(|i| i["sk"].as_str().unwrap())
        .collect();
    assert_eq!(
        sort_keys,
        ["a", "b", "c", "counter"],
        "queries see rendered records"
    );
    assert_eq!(page.items[1], expected("b"));

    table
        .transact_deferred(vec![Write::PutRendered { row: rendered("e") }])
        .await
        .unwrap();
    clock.advance(SignedDuration::from_secs(3600));
    for sk in ["a", "b", "e"] {
        assert_eq!(
            table.get(&Key::new(&pk, sk)).await.unwrap(),
            None,
            "a rendered record expires at its `expires_at` ({sk})"
        );
    }
    table.flush().await.unwrap();
    let page = table.query(Query::partition(&pk)).await.unwrap();
    assert_eq!(page.items.len(), 2, "only the plain items are left");
}
