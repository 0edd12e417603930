//! Tax profiles: a W-9's TIN is checked, sealed at once, and never seen again in the clear, in
//! storage or in any answer; another account's context cannot open it.

use serde_json::{Value, json};
use shared::App;
use shared::seed::Demo;
use support::body;

mod support;

const SSN: &str = "123-45-6789";

fn w9(tin: &str) -> Value {
    json!({
        "status": "us", "legal_name": "Pat Publisher", "business_name": "Pat's Deals",
        "classification": "individual", "tin_type": "ssn", "tin": tin,
        "address": {"line1": "1 Main St", "city": "Springfield", "state": "il", "zip": "62701"},
        "signed_name": "Pat Publisher", "certify": true
    })
}

async fn world() -> (App, Demo, tempfile::TempDir) {
    let platform = support::platform(1_795_935_600).await;
    (platform.app, platform.demo, platform.data)
}

async fn put(app: &App, who: &(String, String), profile: Value) -> shared::http::Response {
    support::send(
        app,
        "PUT",
        "/api/tax/profile",
        "203.0.113.9",
        &[("cookie", &who.0), ("x-csrf-token", &who.1)],
        Some(profile),
    )
    .await
}

#[tokio::test]
async fn a_w9_tin_is_sealed_and_shown_by_its_last_four_digits_only() {
    let (app, demo, data) = world().await;
    let affiliate = support::sign_in(&app, &demo, "affiliate").await;
    let saved = put(&app, &affiliate, w9(SSN)).await;
    assert_eq!(saved.status(), 200, "{:?}", saved.body());
    let shown = String::from_utf8_lossy(saved.body().as_ref()).into_owned();
    assert!(
        !shown.contains("123456789") && !shown.contains(SSN),
        "{shown}"
    );
    assert_eq!(body(&saved)["profile"]["tin_last4"], "6789");
    assert_eq!(body(&saved)["profile"]["address"]["state"], "IL");
    let read = support::send(
        &app,
        "GET",
        "/api/tax/profile",
        "203.0.113.9",
        &[("cookie", &affiliate.0)],
        None,
    )
    .await;
    assert_eq!(body(&read)["profile"]["tin_last4"], "6789");

    // Not in the clear anywhere in the data folder (the database file, its WAL, the outbox).
    app.table.flush().await.unwrap();
    for file in walk(data.path()) {
        let bytes = std::fs::read(&file).unwrap();
        for needle in ["123456789", SSN] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{} holds the TIN",
                file.display()
            );
        }
    }

    // The sealed TIN opens with its own context only.
    let Some(shared::domain::tax::TaxProfile::Us { w9, .. }) =
        app.store.tax_profile(demo.affiliate_id).await.unwrap()
    else {
        panic!("a W-9")
    };
    let own = shared::ports::keys::open(
        app.keys.as_ref(),
        &w9.tin_sealed,
        &shared::tax::tin_context(demo.affiliate_id),
    )
    .await
    .unwrap();
    assert_eq!(own.expose().as_slice(), b"123456789");
    let other = shared::domain::ids::AffiliateId(app.clock.new_id());
    assert!(
        shared::ports::keys::open(
            app.keys.as_ref(),
            &w9.tin_sealed,
            &shared::tax::tin_context(other)
        )
        .await
        .is_err(),
        "another account's context fails"
    );
}

#[tokio::test]
async fn bad_tax_profiles_are_refused_naming_the_field_without_echoing_the_tin() {
    let (app, demo, _data) = world().await;
    let affiliate = support::sign_in(&app, &demo, "affiliate").await;
    let with = |change: Value| {
        let mut profile = w9(SSN);
        for (key, value) in change.as_object().unwrap() {
            profile[key] = value.clone();
        }
        profile
    };
    for (profile, field) in [
        (w9("000-45-6789"), "tin"),
        (w9("666-45-6789"), "tin"),
        (w9("923-45-6789"), "tin"),
        (w9("123-00-6789"), "tin"),
        (w9("123-45-0000"), "tin"),
        (w9("12345678"), "tin"),
        (with(json!({"tin": 123456789})), "tin"),
        (
            with(json!({"tin_type": "ein", "tin": "123-45-6789"})),
            "tin",
        ),
        (with(json!({"certify": false})), "certify"),
        (with(json!({"classification": "pirate"})), "classification"),
        (
            with(
                json!({"address": {"line1": "1 Main St", "city": "X", "state": "Illinois", "zip": "62701"}}),
            ),
            "address.state",
        ),
        (
            with(
                json!({"address": {"line1": "1 Main St", "city": "X", "state": "IL", "zip": "627"}}),
            ),
            "address.zip",
        ),
        (with(json!({"legal_name": ""})), "legal_name"),
        (
            json!({"status": "foreign", "country": "US", "signed_name": "Pat", "certify": true}),
            "country",
        ),
        (
            json!({"status": "martian", "signed_name": "Pat", "certify": true}),
            "status",
        ),
    ] {
        let response = put(&app, &affiliate, profile.clone()).await;
        assert_eq!(response.status(), 400, "{profile}");
        assert_eq!(body(&response)["error"]["field"], field, "{profile}");
        let shown = String::from_utf8_lossy(response.body().as_ref()).into_owned();
        assert!(
            !shown.contains("123-45-") && !shown.contains("1234567"),
            "{shown}"
        );
    }
    let foreign = put(
        &app,
        &affiliate,
        json!({"status": "foreign", "country": "de", "signed_name": "Pat", "certify": true}),
    )
    .await;
    assert_eq!(foreign.status(), 200);
    assert_eq!(body(&foreign)["profile"]["country"], "DE");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
