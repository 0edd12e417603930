//! Bad input on every write route: a 4xx naming the offending field, and nothing written
//! (the whole database is compared before and after).

use serde_json::{Value, json};
use shared::caller::Access;
use shared::domain::accounts::Role;
use shared::routes::{ROUTES, Route};

use super::matrix::request;
use super::{Who, World, body, field};

/// Every stored item, in order: what "nothing written" is checked against.
/// Every item on disk, once the deferred batch (clicks and their counters) is committed.
async fn snapshot(world: &World) -> Vec<(String, String, String)> {
    world.app.table.flush().await.unwrap();
    let db = rusqlite::Connection::open(world.data.path().join("leadsrefer.sqlite3")).unwrap();
    let mut statement = db
        .prepare("SELECT pk, sk, attrs FROM items ORDER BY pk, sk")
        .unwrap();
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Who may make a route's request.
fn author(route: &Route) -> Who {
    match route.access {
        Access::Public => Who::Anonymous,
        Access::Roles(roles) if roles.contains(&Role::Advertiser) => Who::Advertiser,
        Access::Roles(roles) if roles.contains(&Role::Affiliate) => Who::Affiliate,
        Access::Roles(_) => Who::Admin,
    }
}

/// Bad versions of a valid body, each with the field its refusal must name.
fn generic_cases(valid: &Value) -> Vec<(String, String)> {
    let mut cases = vec![
        ("[1]".to_string(), "body".to_string()),
        ("{not json".to_string(), "body".to_string()),
        (json!({ "surprise": 1 }).to_string(), String::new()),
    ];
    if let Some(object) = valid.as_object() {
        for name in object.keys() {
            let mut missing = object.clone();
            missing.remove(name);
            let optional = [
                "date_of_birth",
                "adult",
                "sub1",
                "caps",
                "allowed_countries",
                "allowed_devices",
                "attribution_window_days",
                "hold_days",
                "approval",
                "advertiser_id",
                "payout_overrides",
                "events",
                "reason",
            ];
            if !optional.contains(&name.as_str()) && object.len() > 1 {
                cases.push((Value::Object(missing).to_string(), name.clone()));
            }
            let mut wrong = object.clone();
            wrong.insert(name.clone(), json!([{ "wrong": "type" }]));
            cases.push((Value::Object(wrong).to_string(), name.clone()));
        }
        let mut unknown = object.clone();
        unknown.insert("is_admin".into(), json!(true));
        cases.push((Value::Object(unknown).to_string(), "is_admin".into()));
    }
    cases.push((
        format!("{{\"name\": \"{}\"}}", "x".repeat(70 * 1024)),
        "body".into(),
    ));
    cases
}

/// Refusals of values that parse but are wrong, per route.
fn semantic_cases(route: &Route, valid: &Value) -> Vec<(Value, &'static str)> {
    let with = |changes: Value| {
        let mut body = valid.clone();
        body.as_object_mut()
            .unwrap()
            .extend(changes.as_object().unwrap().clone());
        body
    };
    match route.path {
        "/api/auth/register" => vec![
            (with(json!({ "email": "not-an-email" })), "email"),
            (with(json!({ "password": "short" })), "password"),
            (with(json!({ "name": "   " })), "name"),
            (with(json!({ "role": "admin" })), "role"),
            (
                with(json!({ "date_of_birth": "31/12/1990" })),
                "date_of_birth",
            ),
        ],
        "/api/auth/password" => vec![(with(json!({ "new_password": "short" })), "new_password")],
        "/api/auth/password-reset/confirm" => {
            vec![(with(json!({ "new_password": "short" })), "new_password")]
        }
        "/api/offers" => vec![
            (
                with(json!({ "destination": "javascript:alert(1)" })),
                "destination",
            ),
            (
                with(json!({ "destination": "https://{sub1}/" })),
                "destination",
            ),
            (
                with(json!({ "destination": "https://shop.test/\r\nSet-Cookie: x=1" })),
                "destination",
            ),
            (
                with(json!({ "fallback_url": "https://shop.test/a b" })),
                "fallback_url",
            ),
            (with(json!({ "currency": "XXX" })), "currency"),
            (
                with(json!({ "revenue": { "fixed": "-5.00" } })),
                "revenue.fixed",
            ),
            (
                with(json!({ "revenue": { "fixed": "5.001" } })),
                "revenue.fixed",
            ),
            (
                with(json!({ "payout": { "share_bps": 10001 } })),
                "payout.share_bps",
            ),
            (with(json!({ "caps": { "budget": "lots" } })), "caps.budget"),
            (
                with(json!({ "allowed_countries": ["usa"] })),
                "allowed_countries",
            ),
            (
                with(json!({ "allowed_devices": ["toaster"] })),
                "allowed_devices[0]",
            ),
            (
                with(json!({ "attribution_window_days": 0 })),
                "attribution_window_days",
            ),
            (
                with(json!({ "payout_overrides": { "not-an-id": { "fixed": "1.00" } } })),
                "payout_overrides.not-an-id",
            ),
            (
                with(
                    json!({ "events": { "conversion": { "revenue": { "fixed": "1.00" }, "payout": { "fixed": "1.00" } } } }),
                ),
                "events.conversion",
            ),
            (
                with(
                    json!({ "events": { "Big Sale": { "revenue": { "fixed": "1.00" }, "payout": { "fixed": "1.00" } } } }),
                ),
                "events.Big Sale",
            ),
            (
                with(
                    json!({ "events": { "lead": { "revenue": { "fixed": "-1.00" }, "payout": { "fixed": "1.00" } } } }),
                ),
                "events.lead.revenue.fixed",
            ),
            (
                with(json!({ "events": { "lead": { "revenue": { "fixed": "1.00" } } } })),
                "events.lead.payout",
            ),
        ],
        "/api/offers/{offer_id}" => vec![
            (json!({ "destination": "ftp://files.test/" }), "destination"),
            (
                json!({ "destination": "https://shop.test/\nx" }),
                "destination",
            ),
            (json!({ "payout": { "fixed": "-1" } }), "payout.fixed"),
            (json!({ "status": "deleted" }), "status"),
        ],
        "/api/offers/{offer_id}/postback-url" => vec![
            (json!({ "url": "javascript:alert(1)" }), "url"),
            // Private and loopback addresses, however written (SSRF): refused as saved.
            (
                json!({ "url": "http://127.0.0.1:3000/api/admin/accounts" }),
                "url",
            ),
            (json!({ "url": "http://0x7f.0.0.1/pb?c={click_id}" }), "url"),
            (json!({ "url": "http://2130706433/pb" }), "url"),
            (json!({ "url": "http://[::1]/pb" }), "url"),
            (json!({ "url": "http://[::ffff:10.0.0.1]/pb" }), "url"),
            (json!({ "url": "http://LocalHost./pb" }), "url"),
            (json!({ "url": "http://metadata.localhost/pb" }), "url"),
            (
                json!({ "url": "http://169.254.169.254/latest/meta-data" }),
                "url",
            ),
            (json!({ "url": "http://192.168.1.10/pb" }), "url"),
        ],
        "/api/offers/{offer_id}/applications/{affiliate_id}" => {
            vec![(json!({ "status": "pending" }), "status")]
        }
        "/api/links" => vec![
            (with(json!({ "offer_id": "nope" })), "offer_id"),
            (with(json!({ "sub1": "x".repeat(256) })), "sub1"),
        ],
        "/api/admin/accounts/{account_id}/status" => vec![(json!({ "status": "god" }), "status")],
        "/api/conversions/{id}/status" => vec![
            (json!({ "status": "pending" }), "status"),
            (with(json!({ "reason": "x".repeat(501) })), "reason"),
            (with(json!({ "reason": "a\u{0}b" })), "reason"),
        ],
        "/api/tax/profile" => vec![
            (with(json!({ "tin": "000-12-3456" })), "tin"),
            (with(json!({ "certify": false })), "certify"),
            (with(json!({ "tin_type": "vat" })), "tin_type"),
        ],
        "/api/payouts/method" => vec![
            (
                with(json!({ "routing_number": "123456789" })),
                "routing_number",
            ),
            (with(json!({ "account_number": "12ab" })), "account_number"),
            (with(json!({ "account_type": "brokerage" })), "account_type"),
            (with(json!({ "name_on_account": "" })), "name_on_account"),
            (json!({ "type": "paypal", "email": "nope" }), "email"),
        ],
        "/api/auth/me" => vec![(json!({ "name": "   " }), "name")],
        "/api/offers/{offer_id}/test-conversions" => vec![
            (with(json!({ "affiliate_id": "nope" })), "affiliate_id"),
            (with(json!({ "event": "Not An Event" })), "event"),
            (with(json!({ "event": "refund" })), "event"),
            (with(json!({ "amount": "-1" })), "amount"),
        ],
        "/api/numbers" => vec![
            (with(json!({ "number": "4155550100" })), "number"),
            (with(json!({ "affiliate_id": "nope" })), "affiliate_id"),
            (with(json!({ "offer_id": "nope" })), "offer_id"),
        ],
        "/api/offers/{offer_id}/calls" => vec![
            (json!({ "destination": "555-0100" }), "destination"),
            (
                with(json!({ "min_duration_secs": -1 })),
                "min_duration_secs",
            ),
            (with(json!({ "notice": "x".repeat(501) })), "notice"),
            (
                with(json!({ "delete_from_twilio": "yes" })),
                "delete_from_twilio",
            ),
        ],
        "/api/privacy/erasure" => vec![(json!({ "password": "not the password" }), "password")],
        "/api/admin/policy-versions" => vec![
            (with(json!({ "version": "v 2!" })), "version"),
            (with(json!({ "summary": " " })), "summary"),
        ],
        "/api/admin/tax-forms" => vec![
            (json!({ "year": 1999 }), "year"),
            (json!({ "year": 3000 }), "year"),
        ],
        "/api/conversions/status" => vec![
            (with(json!({ "ids": [] })), "ids"),
            (with(json!({ "ids": ["not-an-id"] })), "ids"),
            (with(json!({ "status": "pending" })), "status"),
        ],
        _ => vec![],
    }
}

#[tokio::test]
async fn bad_input_on_every_write_route_is_refused_naming_the_field_and_changes_nothing() {
    let mut checked = 0;
    for route in ROUTES.iter().filter(|r| r.request.is_some()) {
        for method in route.methods {
            let world = World::new().await;
            let who = author(route);
            let (path, valid) = request(&world, route, method, who).await;
            let valid = valid.unwrap_or_else(|| {
                panic!(
                    "{method} {} takes a body: give the matrix a valid one",
                    route.path
                )
            });
            let key = world
                .key(who)
                .map(|k| ("authorization".to_string(), format!("Bearer {k}")));
            let headers: Vec<(String, String)> = key.into_iter().collect();
            let before = snapshot(&world).await;
            let mut cases: Vec<(String, String)> = generic_cases(&valid);
            cases.extend(
                semantic_cases(route, &valid)
                    .into_iter()
                    .map(|(b, f)| (b.to_string(), f.to_string())),
            );
            for (bad, expected_field) in cases {
                let response = world.raw(method, &path, &headers, Some(bad.clone())).await;
                let status = response.status().as_u16();
                let shown = &bad[..bad.len().min(300)];
                assert!(
                    (400..500).contains(&status),
                    "{method} {path} with {shown}: {status} {}",
                    body(&response)
                );
                let named = field(&response);
                assert!(
                    !named.is_empty(),
                    "{method} {path} with {shown}: names no field: {}",
                    body(&response)
                );
                if !expected_field.is_empty() {
                    // The field itself, or a path inside it (`allowed_countries[0]`, `revenue.fixed`).
                    let within = named == expected_field
                        || named.starts_with(&format!("{expected_field}["))
                        || named.starts_with(&format!("{expected_field}."));
                    assert!(
                        within,
                        "{method} {path} with {shown}: expected {expected_field}, got {}",
                        body(&response)
                    );
                }
                let message = body(&response)["error"]["message"]
                    .as_str()
                    .unwrap()
                    .to_string();
                assert!(message.starts_with(&format!("{named}: ")), "{message}");
                assert_eq!(
                    snapshot(&world).await,
                    before,
                    "{method} {path} with {shown} wrote something"
                );
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 130,
        "{checked} bad requests checked: a route lost its cases"
    );
}
