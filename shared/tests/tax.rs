//! Tax profiles: a W-9's TIN is checked, sealed at once, and never seen again in the clear, in
//! storage or in any answer; another account's context cannot open it.

use serde_json::{Value, json};
use shared::App;
use shared::seed::Demo;
use support::body;

mod support;

use support::SSN;

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
    for file in support::walk(data.path()) {
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

// --- Payouts and tax status, and the 1099-NEC filing. ---

use shared::domain::ledger::Account;
use shared::domain::money::Currency;
use shared::tax_forms::{self, Filing};

/// What the ledger says the demo affiliate was paid in the year: payable debited by payouts
/// made, credited back by payouts that failed or came back.
async fn paid_per_ledger(app: &App, demo: &Demo, year: i16) -> i64 {
    let usd = Currency::parse("USD").unwrap();
    app.store
        .ledger_entries(&Account::affiliate_payable(demo.affiliate_id), usd)
        .await
        .unwrap()
        .into_iter()
        .filter(|(txn, _, at)| txn.starts_with("payout:") && shared::tax::tax_year(*at) == year)
        .map(|(_, amount, _)| amount)
        .sum()
}

async fn file(app: &App, year: i16) -> Filing {
    tax_forms::file_year(app, year).await.unwrap()
}

async fn blob(app: &App, key: &str) -> Option<String> {
    app.blobs
        .get(&shared::ports::BlobKey::parse(key).unwrap())
        .await
        .unwrap()
        .map(|bytes| String::from_utf8(bytes).unwrap())
}

#[tokio::test]
async fn a_1099_is_filed_at_the_threshold_of_each_year_not_a_cent_under() {
    for (year, when, threshold) in [
        (2025, "2025-06-02T12:00:00Z", 60_000),
        (2026, "2026-06-02T12:00:00Z", 200_000),
    ] {
        for delta in [-1, 0, 1] {
            let platform = support::platform(support::at(when)).await;
            let (app, demo) = (&platform.app, &platform.demo);
            support::certify_w9(app, demo).await;
            support::bank_account(app, demo).await;
            support::earn(app, demo, threshold + delta).await;
            let run = support::pay(app).await;
            assert!(run.finished_at.is_some(), "{:?}", run.report);
            let filing = file(app, year).await;
            let context = format!("{year}, threshold {threshold} {delta:+} cents");
            assert_eq!(filing.forms.len(), usize::from(delta >= 0), "{context}");
            // Totals reconcile with the ledger to the cent (over the threshold, every cent paid
            // is on the form; under it, the ledger shows what was paid without a form).
            let per_ledger = paid_per_ledger(app, demo, year).await;
            assert_eq!(per_ledger, threshold + delta, "{context}");
            if let Some(form) = filing.forms.first() {
                assert_eq!((form.box1, form.box4), (per_ledger, 0), "{context}");
            }
            // Nothing of another year.
            assert!(file(app, year - 1).await.forms.is_empty(), "{context}");
        }
    }
}

#[tokio::test]
async fn the_filing_csv_holds_the_tin_and_the_statement_its_last_four_only() {
    let platform = support::platform(support::at("2026-03-02T12:00:00Z")).await;
    let (app, demo) = (&platform.app, &platform.demo);
    support::certify_w9(app, demo).await;
    support::bank_account(app, demo).await;
    support::earn(app, demo, 150_000).await;
    support::pay(app).await;
    platform
        .clock
        .advance(jiff::SignedDuration::from_hours(24 * 30));
    support::earn(app, demo, 75_001).await;
    support::pay(app).await;
    let filing = file(app, 2026).await;
    assert_eq!(filing.forms.len(), 1);
    assert_eq!(filing.forms[0].box1, 225_001);
    assert_eq!(paid_per_ledger(app, demo, 2026).await, 225_001);

    // The CSV a filing provider imports, read back by an independent RFC 4180 reader.
    let csv = blob(app, "tax/2026/1099-nec.csv").await.unwrap();
    let rows = read_csv(&csv);
    assert_eq!(rows[0], tax_forms::COLUMNS.to_vec());
    assert_eq!(rows.len(), 2, "{csv}");
    let row: std::collections::HashMap<&str, &str> = tax_forms::COLUMNS
        .iter()
        .copied()
        .zip(rows[1].iter().map(String::as_str))
        .collect();
    assert_eq!(row["recipient_tin"], SSN);
    assert_eq!(row["recipient_tin_type"], "SSN");
    assert_eq!(row["recipient_name"], "Pat Publisher");
    assert_eq!(row["recipient_business_name"], "Pat's Deals");
    assert_eq!(row["recipient_address_2"], "Suite 5");
    assert_eq!(row["box1_nonemployee_compensation"], "2250.01");
    assert_eq!(row["box4_federal_income_tax_withheld"], "0.00");
    assert_eq!(row["payer_tin"], "12-3456789");
    assert_eq!(row["tax_year"], "2026");

    // The recipient's statement, through the API, to the affiliate only.
    let statement = blob(
        app,
        &format!("tax/2026/statements/{}.html", demo.affiliate_id),
    )
    .await
    .unwrap();
    assert!(statement.contains("***-**-6789") && statement.contains("$2250.01"));
    assert!(!statement.contains(SSN) && !statement.contains("123456789"));
    let affiliate = support::sign_in(app, demo, "affiliate").await;
    let shown = support::send(
        app,
        "GET",
        "/api/tax/forms/2026",
        "203.0.113.9",
        &[("cookie", &affiliate.0)],
        None,
    )
    .await;
    assert_eq!(shown.status(), 200);
    assert_eq!(shown.headers()["content-type"], "text/html; charset=utf-8");
    assert!(
        shown.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("default-src 'none'")
    );
    let missing = support::send(
        app,
        "GET",
        "/api/tax/forms/2025",
        "203.0.113.9",
        &[("cookie", &affiliate.0)],
        None,
    )
    .await;
    assert_eq!(missing.status(), 404);

    // Nobody is told of a draft; once the year is over, the recipient is told once, however
    // often the year is filed.
    assert!(statement.contains("DRAFT"));
    let told = |platform: &support::Platform| {
        support::mail(platform.data.path())
            .iter()
            .filter(|m| m.contains("Form 1099-NEC from LeadsRefer is ready"))
            .count()
    };
    assert_eq!(told(&platform), 0);
    platform.clock.set("2027-01-02T08:00:00Z".parse().unwrap());
    file(app, 2026).await;
    file(app, 2026).await;
    assert_eq!(told(&platform), 1);
    let statement = blob(
        app,
        &format!("tax/2026/statements/{}.html", demo.affiliate_id),
    )
    .await
    .unwrap();
    assert!(!statement.contains("DRAFT"));
}

/// RFC 4180 fields, quotes and all.
fn read_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut field, mut quoted, mut chars) =
        (Vec::new(), String::new(), false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    rows
}

#[tokio::test]
async fn without_a_w9_payouts_wait_at_the_threshold_and_the_payee_is_told_once() {
    let platform = support::platform(support::at("2026-06-02T12:00:00Z")).await;
    let (app, demo, clock) = (&platform.app, &platform.demo, &platform.clock);
    support::bank_account(app, demo).await;
    support::earn(app, demo, 199_999).await;
    let first = support::pay(app).await;
    assert!(
        first.report.iter().any(|l| l.contains("pays 1999.99")),
        "a cent under the threshold pays: {:?}",
        first.report
    );
    support::earn(app, demo, 10_000).await;
    for _ in 0..2 {
        clock.advance(jiff::SignedDuration::from_hours(24));
        let held = support::pay(app).await;
        assert!(
            held.report.iter().any(|l| l.ends_with(
                "100.00 waits: a W-9 is needed (paid 1999.99 in 2026; the 1099 threshold is 2000.00)"
            )),
            "{:?}",
            held.report
        );
    }
    let notices = support::mail(platform.data.path())
        .iter()
        .filter(|m| m.contains("payouts need a W-9"))
        .count();
    assert_eq!(notices, 1, "told once, not once per run");
    support::certify_w9(app, demo).await;
    clock.advance(jiff::SignedDuration::from_hours(24));
    let paid = support::pay(app).await;
    assert!(
        paid.report.iter().any(|l| l.contains("pays 100.00")),
        "{:?}",
        paid.report
    );
    let filing = file(app, 2026).await;
    assert_eq!(filing.forms[0].box1, 209_999);
}

#[tokio::test]
async fn backup_withholding_keeps_24_percent_in_the_ledger_and_box_4() {
    let mut platform = support::platform(support::at("2026-06-02T12:00:00Z")).await;
    let mut settings = shared::payouts::PayoutSettings::from_env().unwrap();
    settings.tax.backup_withholding = true;
    platform.app.payouts = std::sync::Arc::new(settings);
    let (app, demo) = (&platform.app, &platform.demo);
    support::bank_account(app, demo).await;
    support::earn(app, demo, 250_001).await;
    let run = support::pay(app).await;
    let payouts = app.store.payouts_of_run(&run.id).await.unwrap();
    // 24% of 2500.01 is 600.0024: 600.00 kept, 1900.01 sent.
    assert_eq!(
        (payouts[0].amount.minor, payouts[0].withheld),
        (190_001, 60_000)
    );
    for (account, balance) in [
        (Account::tax_withheld(), -60_000),
        (Account::affiliate_payable(demo.affiliate_id), 0),
        (Account::platform_cash(), -190_001),
    ] {
        assert_eq!(support::checked_balance(app, &account).await, balance);
    }
    let filing = file(app, 2026).await;
    assert_eq!(
        (filing.forms[0].box1, filing.forms[0].box4),
        (250_001, 60_000)
    );
    assert!(
        filing
            .notes
            .iter()
            .any(|n| n.contains("filed without a TIN")),
        "{:?}",
        filing.notes
    );
    let mail = support::mail(platform.data.path());
    assert_eq!(
        mail.iter()
            .filter(|m| m.contains("payouts need a W-9") && m.contains("24%"))
            .count(),
        1
    );
}

/// Corporations (C or S, and LLCs taxed as either) are exempt payees: no 1099-NEC however much
/// they were paid; individuals, partnerships, trusts, LLCs taxed as partnerships and others are
/// reported.
#[tokio::test]
async fn corporations_are_exempt_payees_and_everyone_else_is_reported() {
    use shared::domain::tax::TaxClassification::*;
    for (classification, reported) in [
        (Individual, true),
        (CCorporation, false),
        (SCorporation, false),
        (Partnership, true),
        (TrustEstate, true),
        (LlcC, false),
        (LlcS, false),
        (LlcP, true),
        (Other, true),
    ] {
        let platform = support::platform(support::at("2026-06-02T12:00:00Z")).await;
        let (app, demo) = (&platform.app, &platform.demo);
        support::certify_w9_as(app, demo, classification).await;
        support::bank_account(app, demo).await;
        support::earn(app, demo, 500_000).await;
        let run = support::pay(app).await;
        assert!(run.finished_at.is_some(), "{:?}", run.report);
        let filing = file(app, 2026).await;
        assert_eq!(
            filing.forms.len(),
            usize::from(reported),
            "{classification:?}"
        );
        if !reported {
            assert!(
                filing.notes.iter().any(|n| n.contains("exempt, no 1099")),
                "{classification:?}: {:?}",
                filing.notes
            );
        }
    }
}

#[tokio::test]
async fn foreign_payees_are_never_on_a_1099() {
    let platform = support::platform(support::at("2026-06-02T12:00:00Z")).await;
    let (app, demo) = (&platform.app, &platform.demo);
    shared::tax::set_profile(
        app,
        demo.affiliate_id,
        shared::tax::ProfileInput::Foreign {
            country: "DE".into(),
            signed_name: "Pat".into(),
            certify: true,
        },
    )
    .await
    .unwrap();
    support::bank_account(app, demo).await;
    support::earn(app, demo, 500_000).await;
    let run = support::pay(app).await;
    assert!(run.report.iter().any(|l| l.contains("pays 5000.00")));
    let filing = file(app, 2026).await;
    assert!(filing.forms.is_empty());
    assert!(filing.notes[0].contains("foreign (W-8BEN): no 1099"));
}

#[tokio::test]
async fn the_job_files_last_year_once_in_january_and_any_year_an_admin_asks_for() {
    let platform = support::platform(support::at("2026-06-02T12:00:00Z")).await;
    let (app, demo, clock) = (&platform.app, &platform.demo, &platform.clock);
    support::certify_w9(app, demo).await;
    support::bank_account(app, demo).await;
    support::earn(app, demo, 300_000).await;
    support::pay(app).await;
    let job = || async {
        (shared::jobs::find("tax-forms").unwrap().run)(app.clone())
            .await
            .unwrap()
    };
    assert_eq!(job().await, "no tax year to file", "not before January");
    // A draft of the year in progress, on request, does not stand in for January's filing.
    let admin = support::sign_in(app, demo, "admin").await;
    let draft = support::send(
        app,
        "POST",
        "/api/admin/tax-forms",
        "203.0.113.9",
        &[("cookie", &admin.0), ("x-csrf-token", &admin.1)],
        Some(json!({"year": 2026})),
    )
    .await;
    assert_eq!(draft.status(), 202, "{:?}", draft.body());
    assert!(
        job()
            .await
            .starts_with("2026: 1 form (drafts: the year is not over)")
    );
    clock.set("2027-01-04T08:00:00Z".parse().unwrap());
    assert!(job().await.starts_with("2026: 1 form, box 1 $3000.00"));
    assert_eq!(job().await, "no tax year to file", "once");
    let admin = support::sign_in(app, demo, "admin").await;
    let asked = support::send(
        app,
        "POST",
        "/api/admin/tax-forms",
        "203.0.113.9",
        &[("cookie", &admin.0), ("x-csrf-token", &admin.1)],
        Some(json!({"year": 2026})),
    )
    .await;
    assert_eq!(asked.status(), 202, "{:?}", asked.body());
    assert!(job().await.starts_with("2026: 1 form"), "on request");
    assert_eq!(job().await, "no tax year to file");
    let listed = support::send(
        app,
        "GET",
        "/api/admin/tax-forms",
        "203.0.113.9",
        &[("cookie", &admin.0)],
        None,
    )
    .await;
    assert_eq!(body(&listed)["years"][0]["year"], 2026);
}

#[tokio::test]
async fn a_foreign_payee_uploads_a_signed_w8ben_kept_byte_for_byte() {
    let (app, demo, _data) = world().await;
    let affiliate = support::sign_in(&app, &demo, "affiliate").await;
    let headers = [
        ("cookie", affiliate.0.as_str()),
        ("x-csrf-token", affiliate.1.as_str()),
    ];
    // A 300 KB form: more than a JSON body may be, less than the upload limit.
    let mut pdf = b"%PDF-1.7\n".to_vec();
    pdf.extend((0..300_000u32).map(|i| (i % 251) as u8));
    let upload = |body: Vec<u8>, content_type: &'static str| {
        let app = app.clone();
        async move {
            support::send_body(
                &app,
                "PUT",
                "/api/tax/profile/w8ben",
                "203.0.113.9",
                &headers,
                Some((content_type, lambda_http::Body::Binary(body))),
            )
            .await
        }
    };
    let early = upload(pdf.clone(), "application/pdf").await;
    assert_eq!(
        (early.status().as_u16(), support::field(&early)),
        (400, "status".into()),
        "not before the payee says they are foreign"
    );
    let foreign = put(
        &app,
        &affiliate,
        json!({"status": "foreign", "country": "DE", "signed_name": "Pat", "certify": true}),
    )
    .await;
    assert_eq!(foreign.status(), 200);
    let wrong_type = upload(pdf.clone(), "image/png").await;
    assert_eq!(support::field(&wrong_type), "content-type");
    let not_pdf = upload(b"<html>".to_vec(), "application/pdf").await;
    assert_eq!(support::field(&not_pdf), "body");
    let saved = upload(pdf.clone(), "application/pdf").await;
    assert_eq!(saved.status(), 200, "{:?}", saved.body());
    let document = &body(&saved)["profile"]["w8ben"];
    assert_eq!(document["bytes"], pdf.len());
    let key = shared::ports::BlobKey::parse(document["key"].as_str().unwrap()).unwrap();
    assert_eq!(app.blobs.get(&key).await.unwrap().unwrap(), pdf);
    // A renewed statement keeps the form on file.
    let renewed = put(
        &app,
        &affiliate,
        json!({"status": "foreign", "country": "FR", "signed_name": "Pat", "certify": true}),
    )
    .await;
    assert_eq!(
        body(&renewed)["profile"]["w8ben"]["sha256"],
        document["sha256"]
    );
}
