//! The privacy policy's promises, each proved: an export holds all of a user's data and none of
//! anyone else's; erasure leaves no personal field behind except the records the law keeps,
//! and those pseudonymised; retention deletes exactly what is due; a policy notice reaches
//! each active user once, however its job is interrupted.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use jiff::SignedDuration;
use serde_json::{Value, json};
use shared::App;
use shared::domain::ledger::Account;
use shared::domain::money::Currency;
use shared::ports::{Email, MailError, Mailer};
use support::{ACCOUNT_NUMBER, SSN, body};

mod support;

const IP: &str = "203.0.113.9";

async fn job(app: &App, name: &str) -> String {
    (shared::jobs::find(name).unwrap().run)(app.clone())
        .await
        .unwrap()
}

fn text(response: &shared::http::Response) -> String {
    String::from_utf8_lossy(response.body().as_ref()).into_owned()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// A world where the demo affiliate has a W-9, a bank account, conversions and a payout.
async fn busy_world(at: &str) -> support::Platform {
    let platform = support::platform(support::at(at)).await;
    let (app, demo) = (&platform.app, &platform.demo);
    support::certify_w9(app, demo).await;
    support::bank_account(app, demo).await;
    support::earn(app, demo, 250_000).await;
    support::earn(app, demo, 1_800).await;
    let run = support::pay(app).await;
    assert!(run.finished_at.is_some(), "{:?}", run.report);
    platform
}

#[tokio::test]
async fn an_export_holds_all_of_a_users_data_and_none_of_anyone_elses() {
    let platform = busy_world("2026-06-02T12:00:00Z").await;
    let (app, demo) = (&platform.app, &platform.demo);
    let affiliate = support::sign_in(app, demo, "affiliate").await;
    let headers = [
        ("cookie", affiliate.0.as_str()),
        ("x-csrf-token", affiliate.1.as_str()),
    ];
    let asked = support::send(app, "POST", "/api/privacy/exports", IP, &headers, None).await;
    assert_eq!(asked.status(), 202, "{}", text(&asked));
    let id = body(&asked)["id"].as_str().unwrap().to_string();
    let again = support::send(app, "POST", "/api/privacy/exports", IP, &headers, None).await;
    assert_eq!(
        body(&again)["id"],
        id.as_str(),
        "one waiting request at a time"
    );
    let path = format!("/api/privacy/exports/{id}");
    let early = support::send(app, "GET", &path, IP, &headers, None).await;
    assert_eq!(early.status(), 409, "not ready before the job ran");
    assert!(text(&early).contains("not ready yet"), "{}", text(&early));

    assert_eq!(job(app, "data-exports").await, "1 exports written");
    assert_eq!(job(app, "data-exports").await, "0 exports written");
    let mail = support::mail(platform.data.path());
    let link = mail
        .iter()
        .find(|m| m.contains("data export is ready"))
        .expect("the link is mailed");
    assert!(
        link.contains(&format!("/app/account/export/{id}")),
        "the mail links the dashboard's download: {link}"
    );

    let file = support::send(app, "GET", &path, IP, &headers, None).await;
    assert_eq!(file.status(), 200);
    let raw = text(&file);
    let export: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        export["account"]["email"],
        "affiliate@demo.leadsrefer.local"
    );
    assert_eq!(export["account"]["name"], "Demo Publisher");
    assert_eq!(export["tax_profile"]["legal_name"], "Pat Publisher");
    assert_eq!(export["tax_profile"]["tin_last4"], "6789");
    assert!(
        export["payout_method"]["method"]
            .as_str()
            .unwrap()
            .ends_with("ending 6789")
    );
    assert_eq!(export["links"][0]["code"], demo.link.as_str());
    assert_eq!(export["conversions"].as_array().unwrap().len(), 2);
    assert_eq!(export["clicks"].as_array().unwrap().len(), 2);
    assert_eq!(export["payouts"][0]["amount"]["minor"], 251_800);
    assert!(!export["audit"].as_array().unwrap().is_empty());
    assert_eq!(export["privacy_requests"][0]["id"], id.as_str());
    // Secrets masked; other people's data absent.
    for secret in [SSN, "123456789", ACCOUNT_NUMBER, "password_hash"] {
        assert!(!raw.contains(secret), "the export shows {secret}");
    }
    for other in [
        "advertiser@demo.leadsrefer.local",
        "admin@demo.leadsrefer.local",
        "Demo Shop\"",
        "\"revenue\"",
        "ip_hash",
        "postback_secret",
    ] {
        assert!(!raw.contains(other), "the export shows {other}");
    }

    // Only its owner can fetch it, and only for seven days; then the file goes.
    let advertiser = support::sign_in(app, demo, "advertiser").await;
    let foreign = support::send(app, "GET", &path, IP, &[("cookie", &advertiser.0)], None).await;
    assert_eq!(foreign.status(), 404);
    platform
        .clock
        .advance(SignedDuration::from_hours(7 * 24 + 1));
    let affiliate = support::sign_in(app, demo, "affiliate").await;
    let late = support::send(app, "GET", &path, IP, &[("cookie", &affiliate.0)], None).await;
    assert_eq!(late.status(), 404);
    assert!(text(&late).contains("link expired at"), "{}", text(&late));
    assert!(
        job(app, "retention")
            .await
            .contains("1 expired export files deleted")
    );
    let key =
        shared::ports::BlobKey::parse(format!("exports/{}/{id}.json", demo.affiliate_id)).unwrap();
    assert!(app.blobs.get(&key).await.unwrap().is_none());
}

#[tokio::test]
async fn erasure_leaves_no_personal_field_but_the_kept_records_pseudonymised() {
    let platform = busy_world("2026-06-02T12:00:00Z").await;
    let (app, demo) = (&platform.app, &platform.demo);
    let affiliate = support::sign_in(app, demo, "affiliate").await;
    let headers = [
        ("cookie", affiliate.0.as_str()),
        ("x-csrf-token", affiliate.1.as_str()),
    ];
    let key = support::send(
        app,
        "POST",
        "/api/auth/api-keys",
        IP,
        &headers,
        Some(json!({"name": "tracker"})),
    )
    .await;
    let api_key = body(&key)["secret"].as_str().unwrap().to_string();
    let export = support::send(app, "POST", "/api/privacy/exports", IP, &headers, None).await;
    assert_eq!(export.status(), 202);
    job(app, "data-exports").await;
    let exports = platform.data.path().join("blobs/exports");
    assert_eq!(support::walk(&exports).len(), 1);
    // A reset code in flight: a token item, and a mail in the outbox with it.
    let reset = support::send(
        app,
        "POST",
        "/api/auth/password-reset",
        IP,
        &[],
        Some(json!({"email": "affiliate@demo.leadsrefer.local"})),
    )
    .await;
    assert_eq!(reset.status(), 202, "{}", text(&reset));
    let outbox = platform.data.path().join("outbox");
    let mail_to_the_affiliate = || {
        support::walk(&outbox)
            .into_iter()
            .filter(|path| {
                contains(
                    &std::fs::read(path).unwrap(),
                    "affiliate@demo.leadsrefer.local",
                )
            })
            .count()
    };
    assert!(
        mail_to_the_affiliate() >= 2,
        "the reset and the export's mail"
    );
    let wrong = support::send(
        app,
        "POST",
        "/api/privacy/erasure",
        IP,
        &headers,
        Some(json!({"password": "not it at all"})),
    )
    .await;
    assert_eq!(wrong.status(), 400);
    let erased = support::send(
        app,
        "POST",
        "/api/privacy/erasure",
        IP,
        &headers,
        Some(json!({"password": demo.credentials[2].2.expose()})),
    )
    .await;
    assert_eq!(erased.status(), 200, "{}", text(&erased));
    assert!(
        erased.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );

    // Nothing in flight acts for it, and no mail to its address is kept here.
    app.table.flush().await.unwrap();
    let db = rusqlite::Connection::open(platform.data.path().join("leadsrefer.sqlite3")).unwrap();
    let tokens: i64 = db
        .query_row(
            "SELECT count(*) FROM items WHERE pk LIKE 'TOKEN#%' AND attrs LIKE ?1",
            [format!("%{}%", demo.affiliate_id)],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(tokens, 0, "the reset code's token is gone");
    assert_eq!(
        mail_to_the_affiliate(),
        0,
        "the outbox keeps no mail to the address"
    );
    assert!(
        support::mail(platform.data.path())
            .iter()
            .any(|m| m.contains("admin@demo.leadsrefer.local")),
        "others' mail stays"
    );

    // Its links no longer answer: a closed account earns nothing more.
    let click = support::send(app, "GET", &format!("/c/{}", demo.link), IP, &[], None).await;
    assert_eq!(click.status(), 404);

    // Nothing can act for the account any more.
    let me = support::send(
        app,
        "GET",
        "/api/auth/me",
        IP,
        &[("cookie", &affiliate.0)],
        None,
    )
    .await;
    assert_eq!(me.status(), 401);
    let bearer = format!("Bearer {api_key}");
    let by_key = support::send(
        app,
        "GET",
        "/api/auth/me",
        IP,
        &[("authorization", &bearer)],
        None,
    )
    .await;
    assert_eq!(by_key.status(), 401);
    // (From another network: a failed sign-in is audited with its network, as any other.)
    let sign_in = support::send(
        app,
        "POST",
        "/api/auth/sign-in",
        "198.51.100.99",
        &[],
        Some(json!({"email": "affiliate@demo.leadsrefer.local", "password": demo.credentials[2].2.expose()})),
    )
    .await;
    assert_eq!(sign_in.status(), 401);

    // No personal field anywhere in the database: not the email, names, address, TIN,
    // account number, nor the network the account signed in from.
    app.table.flush().await.unwrap();
    let db = rusqlite_dump(&platform);
    for personal in [
        "affiliate@demo.leadsrefer.local",
        "Demo Publisher",
        "Pat Publisher",
        "Pat's Deals",
        "1 Main St",
        "Springfield",
        "62701",
        SSN,
        "123456789",
        ACCOUNT_NUMBER,
        "203.0.113.0/24",
    ] {
        assert!(!db.contains(personal), "the table still holds {personal}");
    }
    // The records the law keeps are there, naming the account by its id only.
    let payouts = app
        .store
        .payouts_of_affiliate(demo.affiliate_id)
        .await
        .unwrap();
    assert_eq!(payouts.len(), 1);
    let shared::domain::payout::PayoutMethod::Ach {
        account_sealed,
        account_last4,
        ..
    } = &payouts[0].method
    else {
        panic!("an ACH payout")
    };
    assert_eq!(
        (account_sealed.as_str(), account_last4.as_str()),
        ("[erased]", "6789")
    );
    assert!(support::walk(&exports).is_empty(), "the export is gone");
    let usd = Currency::parse("USD").unwrap();
    assert_eq!(
        app.store
            .balance_from_entries(&Account::platform_cash(), usd)
            .await
            .unwrap(),
        -251_800
    );
    // …and the 1099 is still filed, from the sealed W-9.
    let filing = shared::tax_forms::file_year(app, 2026).await.unwrap();
    assert_eq!(filing.forms[0].box1, 251_800);
    let csv = app
        .blobs
        .get(&shared::tax_forms::csv_key(2026).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(contains(&csv, "Pat Publisher") && contains(&csv, SSN));

    // The email can register anew; admins see the request.
    let admin = support::sign_in(app, demo, "admin").await;
    let requests = support::send(
        app,
        "GET",
        "/api/admin/privacy/requests",
        IP,
        &[("cookie", &admin.0)],
        None,
    )
    .await;
    let requests = body(&requests);
    let erasure = requests["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "erasure")
        .expect("the erasure is listed");
    assert_eq!(erasure["overdue"], false);
    assert!(erasure["due_at"].is_string());
    let export = requests["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "export")
        .unwrap();
    assert!(export["records_deleted_at"].is_string(), "{export}");
}

/// Every row of the database as text (attributes are JSON), but the demo's sign-in card: the
/// local runner's seed keeps the demo accounts' sign-ins to print them, and those accounts are
/// made up.
fn rusqlite_dump(platform: &support::Platform) -> String {
    let db = rusqlite::Connection::open(platform.data.path().join("leadsrefer.sqlite3")).unwrap();
    let mut statement = db
        .prepare("SELECT pk || ' ' || sk || ' ' || attrs FROM items WHERE pk != 'META#demo'")
        .unwrap();
    statement
        .query_map([], |row| row.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn retention_deletes_tracking_at_three_years_and_erased_financial_records_at_seven() {
    let platform = busy_world("2026-06-02T12:00:00Z").await;
    let (app, demo, clock) = (&platform.app, &platform.demo, &platform.clock);
    let conversions = |app: App| async move {
        let (page, _) = app
            .store
            .conversions_of_affiliate(demo.affiliate_id, None, 100)
            .await
            .unwrap();
        page
    };
    let conversion = conversions(app.clone()).await[0].clone();
    let raw_rows = |pattern: &'static str| {
        let db =
            rusqlite::Connection::open(platform.data.path().join("leadsrefer.sqlite3")).unwrap();
        db.query_row(
            "SELECT count(*) FROM items WHERE pk LIKE ?1",
            [pattern],
            |row| row.get::<_, i64>(0),
        )
        .unwrap()
    };
    // January: 2026's 1099s are filed (the affiliate was paid over the threshold).
    clock.set("2027-01-15T12:00:00Z".parse().unwrap());
    let filed = job(app, "tax-forms").await;
    assert!(filed.starts_with("2026: 1 form"), "{filed}");
    let tax_files = || async {
        let mut keys: Vec<String> = app
            .blobs
            .list("tax/2026/")
            .await
            .unwrap()
            .iter()
            .map(|key| key.as_str().to_string())
            .collect();
        keys.sort();
        keys
    };
    assert_eq!(
        tax_files().await,
        [
            "tax/2026/1099-nec.csv".to_string(),
            format!("tax/2026/statements/{}.html", demo.affiliate_id)
        ]
    );
    // The advertiser erases nothing; the affiliate erases their account a year later, with
    // $42.00 earned and not yet paid.
    clock.set("2027-06-02T12:00:00Z".parse().unwrap());
    support::earn(app, demo, 4_200).await;
    let account = app
        .store
        .account(shared::domain::accounts::AccountId(demo.affiliate_id.0))
        .await
        .unwrap()
        .unwrap();
    shared::privacy::erase(app, &account, &demo.credentials[2].2)
        .await
        .unwrap();

    // A day before three years: everything stays.
    clock.set(conversion.at + SignedDuration::from_hours(3 * 365 * 24));
    let report = job(app, "retention").await;
    assert!(report.starts_with("0 expired records purged"), "{report}");
    assert!(app.store.conversion(conversion.id).await.unwrap().is_some());
    let counters = raw_rows("STATS#%");
    // Three years and a day: clicks, conversions and their keys go, from the file too.
    clock.set(conversion.at + SignedDuration::from_hours((3 * 365 + 2) * 24));
    let report = job(app, "retention").await;
    assert!(!report.starts_with("0 expired"), "{report}");
    app.table.flush().await.unwrap();
    // The first two conversions' records are gone; the one earned a year later is not due.
    assert_eq!(raw_rows("CLICK#%"), 1);
    assert_eq!(raw_rows("CONV#%"), 1);
    assert_eq!(raw_rows("CONVKEY#%"), 1);
    assert_eq!(raw_rows(format!("CONV#{}", conversion.id).leak()), 0);
    assert!(
        (1..counters).contains(&raw_rows("STATS#%")),
        "the old hours' counters are tracking records too"
    );
    // Financial records stay: the payout, the ledger, the tax profile.
    assert_eq!(raw_rows("RUN#%#PAYOUTS"), 1);
    assert!(raw_rows("LACCT#affiliate:%") > 0);
    assert_eq!(raw_rows("TAX#%"), 1);
    assert!(report.contains("1 still within seven years"), "{report}");

    // 2026's tax files are kept seven years from when the forms were due, 31 January 2027.
    assert_eq!(tax_files().await.len(), 2);
    clock.set("2034-01-30T23:59:59Z".parse().unwrap());
    let report = job(app, "retention").await;
    assert!(
        report.contains("0 tax files kept seven years deleted"),
        "{report}"
    );
    assert_eq!(tax_files().await.len(), 2);
    clock.set("2034-01-31T00:00:00Z".parse().unwrap());
    let report = job(app, "retention").await;
    assert!(
        report.contains("2 tax files kept seven years deleted"),
        "{report}"
    );
    assert!(tax_files().await.is_empty());

    // Seven years after the last financial activity (the erasure, a year after the payout),
    // less a day: still kept. After: deleted, and only the erased account's.
    let erased_at = app.store.privacy_requests().await.unwrap()[0]
        .completed_at
        .unwrap();
    assert_eq!(erased_at.as_second(), support::at("2027-06-02T12:00:00Z"));
    let seven: jiff::Timestamp = "2034-06-02T12:00:00Z".parse().unwrap();
    clock.set(seven - SignedDuration::from_hours(24));
    job(app, "retention").await;
    assert_eq!(raw_rows("RUN#%#PAYOUTS"), 1);
    clock.set(seven + SignedDuration::from_hours(1));
    let report = job(app, "retention").await;
    assert!(
        report.contains("1 erased accounts' financial records deleted"),
        "{report}"
    );
    assert_eq!(raw_rows("RUN#%#PAYOUTS"), 0);
    assert_eq!(raw_rows("LACCT#affiliate:%"), 0);
    assert_eq!(raw_rows("LBAL#affiliate:%"), 0);
    assert_eq!(raw_rows("TAX#%"), 0);
    assert!(
        app.store
            .account(shared::domain::accounts::AccountId(demo.affiliate_id.0))
            .await
            .unwrap()
            .is_none()
    );
    // What the erased account still held went to `platform:unclaimed`: the books balance.
    let usd = Currency::parse("USD").unwrap();
    assert_eq!(
        app.store
            .balance(&Account::platform_unclaimed(), usd)
            .await
            .unwrap(),
        -4_200
    );
    let mut books = 0;
    for account in [
        Account::advertiser_receivable(demo.advertiser_id),
        Account::platform_margin(),
        Account::platform_cash(),
        Account::payouts_clearing(),
        Account::tax_withheld(),
        Account::platform_unclaimed(),
    ] {
        books += support::checked_balance(app, &account).await;
    }
    assert_eq!(books, 0, "every balance left sums to zero");
    // The open accounts keep theirs, however old.
    assert!(raw_rows("LACCT#advertiser:%") > 0);
    assert!(raw_rows("LACCT#platform:%") > 0);
    assert!(
        app.store
            .account(shared::domain::accounts::AccountId(demo.advertiser_id.0))
            .await
            .unwrap()
            .is_some()
    );
    let again = job(app, "retention").await;
    assert!(
        again.contains("0 erased accounts' financial records deleted"),
        "{again}"
    );
}

/// An admin publishes a policy version.
async fn publish(
    app: &App,
    admin: &(String, String),
    version: &str,
    summary: &str,
) -> shared::http::Response {
    support::send(
        app,
        "POST",
        "/api/admin/policy-versions",
        IP,
        &[("cookie", &admin.0), ("x-csrf-token", &admin.1)],
        Some(json!({"version": version, "summary": summary})),
    )
    .await
}

/// The app's mailer, failing each send that `fails` picks, as a full mailbox or a mail
/// service gone away does.
struct Failing<F> {
    inner: Arc<dyn Mailer>,
    fails: F,
}

#[async_trait::async_trait]
impl<F: Fn(&Email) -> bool + Send + Sync> Mailer for Failing<F> {
    async fn send(&self, email: &Email) -> Result<String, MailError> {
        if (self.fails)(email) {
            return Err(MailError::Invalid("the mail service refused it".into()));
        }
        self.inner.send(email).await
    }

    async fn forget(&self, to: &shared::domain::email::EmailAddress) -> Result<usize, MailError> {
        self.inner.forget(to).await
    }
}

/// The app with its mailer failing the sends `fails` picks.
fn failing_mail(app: &App, fails: impl Fn(&Email) -> bool + Send + Sync + 'static) -> App {
    let mut failing = app.clone();
    failing.mailer = Arc::new(Failing {
        inner: app.mailer.clone(),
        fails,
    });
    failing
}

#[tokio::test]
async fn one_address_that_always_fails_holds_up_no_other_notice() {
    let platform = support::platform(support::at("2026-06-02T12:00:00Z")).await;
    let (app, demo) = (&platform.app, &platform.demo);
    let admin = support::sign_in(app, demo, "admin").await;
    let published = publish(app, &admin, "2026-07", "Shorter retention.").await;
    assert_eq!(published.status(), 201, "{}", text(&published));
    // One address refused every time, as a full mailbox is.
    let full = demo.credentials[0].1.as_str().to_string();
    let refusing = failing_mail(app, move |email| email.to.as_str() == full);
    for _ in 0..2 {
        let report = job(&refusing, "policy-notices").await;
        assert!(report.contains("1 failed"), "{report}");
    }
    let told = |platform: &support::Platform| {
        support::mail(platform.data.path())
            .iter()
            .filter(|m| m.contains("privacy policy changes"))
            .count()
    };
    assert_eq!(
        told(&platform),
        2,
        "the other two users are told at once, and once"
    );
    let report = job(app, "policy-notices").await;
    assert!(report.contains("3 notified in all"), "{report}");
    assert_eq!(
        told(&platform),
        3,
        "and the refused one once it can be reached"
    );
}

#[tokio::test]
async fn a_policy_notice_reaches_each_active_user_exactly_once_despite_interruptions() {
    let platform = support::platform(support::at("2026-06-02T12:00:00Z")).await;
    let (app, demo) = (&platform.app, &platform.demo);
    // More users than one batch, and some who must not be told.
    for n in 0..120 {
        let status = if n % 10 == 0 {
            shared::domain::accounts::AccountStatus::Suspended
        } else {
            shared::domain::accounts::AccountStatus::Active
        };
        shared::accounts::create_account(
            app,
            shared::domain::accounts::Role::Affiliate,
            shared::domain::email::EmailAddress::parse(&format!("user{n}@example.test")).unwrap(),
            format!("User {n}"),
            &shared::secret::Secret::new("a long enough password".into()),
            status,
        )
        .await
        .unwrap();
    }
    let admin = support::sign_in(app, demo, "admin").await;
    let published = publish(
        app,
        &admin,
        "2026-06",
        "Call recordings are kept three years.",
    )
    .await;
    assert_eq!(published.status(), 201, "{}", text(&published));
    let twice = publish(app, &admin, "2026-06", "again").await;
    assert_eq!(twice.status(), 400);

    // The mail service fails after 40 sends, then after 50 more; each run resumes.
    let mut runs = 0;
    for ok in [40, 50, 1_000] {
        // Every send after the first `ok` fails.
        let left = AtomicUsize::new(ok);
        let interrupted = failing_mail(app, move |_| {
            left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_err()
        });
        runs += 1;
        let report = job(&interrupted, "policy-notices").await;
        if ok < 1_000 {
            assert!(
                report.contains("failed (retried next run)"),
                "run {runs} was interrupted: {report}"
            );
        } else {
            assert!(report.contains("111 notified in all"), "{report}");
        }
    }
    assert_eq!(job(app, "policy-notices").await, "no policy notice to send");
    let mail = support::mail(platform.data.path());
    let notices: Vec<&String> = mail
        .iter()
        .filter(|m| m.contains("privacy policy changes"))
        .collect();
    // 108 active new users and the 3 demo accounts, once each.
    assert_eq!(notices.len(), 111);
    let mut recipients: Vec<&str> = notices
        .iter()
        .map(|m| m.lines().find_map(|l| l.strip_prefix("To: ")).unwrap())
        .collect();
    recipients.sort_unstable();
    recipients.dedup();
    assert_eq!(recipients.len(), 111, "nobody twice");
    assert!(
        !recipients.iter().any(|r| r.contains("user0@")),
        "not the suspended"
    );
    let listed = support::send(
        app,
        "GET",
        "/api/admin/policy-versions",
        IP,
        &[("cookie", &admin.0)],
        None,
    )
    .await;
    assert_eq!(body(&listed)["policies"][0]["notified"], 111);
}

#[tokio::test]
async fn a_user_corrects_their_profile() {
    let platform = support::platform(support::at("2026-06-02T12:00:00Z")).await;
    let (app, demo) = (&platform.app, &platform.demo);
    let affiliate = support::sign_in(app, demo, "affiliate").await;
    let corrected = support::send(
        app,
        "PATCH",
        "/api/auth/me",
        IP,
        &[("cookie", &affiliate.0), ("x-csrf-token", &affiliate.1)],
        Some(json!({"name": "Pat Publisher"})),
    )
    .await;
    assert_eq!(corrected.status(), 200, "{}", text(&corrected));
    assert_eq!(body(&corrected)["account"]["name"], "Pat Publisher");
}

#[tokio::test]
async fn a_notice_a_dead_run_claimed_is_sent_once_its_claim_is_stale() {
    let platform = support::platform(support::at("2026-06-02T12:00:00Z")).await;
    let (app, demo) = (&platform.app, &platform.demo);
    shared::privacy::publish_policy(app, "v2", "Shorter retention.")
        .await
        .unwrap();
    // A run claimed the affiliate's notice and died before sending it.
    let key = format!("policy#v2#{}", demo.affiliate_id);
    let now = app.clock.now().as_second();
    assert_eq!(
        app.store.claim_notice(&key, now, 900).await.unwrap(),
        shared::store::NoticeClaim::Claimed
    );
    let report = job(app, "policy-notices").await;
    assert!(report.contains("1 being sent by another run"), "{report}");
    let told = |platform: &support::Platform| {
        support::mail(platform.data.path())
            .iter()
            .filter(|m| m.contains("privacy policy changes") && m.contains("affiliate@demo"))
            .count()
    };
    assert_eq!(told(&platform), 0);
    platform.clock.advance(SignedDuration::from_mins(16));
    let report = job(app, "policy-notices").await;
    assert!(
        report.contains("3 notified in all (2 before this run)"),
        "{report}"
    );
    assert_eq!(told(&platform), 1);
    assert_eq!(job(app, "policy-notices").await, "no policy notice to send");
}

#[tokio::test]
async fn the_current_policy_is_shown_until_its_reader_acknowledges_it() {
    let platform = support::platform(support::at("2026-06-02T12:00:00Z")).await;
    let app = &platform.app;
    let admin = support::sign_in(app, &platform.demo, "admin").await;
    let (cookie, csrf) = support::sign_in(app, &platform.demo, "affiliate").await;
    let headers = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    let me = || support::send(app, "GET", "/api/auth/me", IP, &headers, None);
    assert!(
        support::body(&me().await).get("policy").is_none(),
        "nothing published yet"
    );

    assert_eq!(
        publish(app, &admin, "2026-06", "First.").await.status(),
        201
    );
    platform.clock.advance(jiff::SignedDuration::from_secs(60));
    assert_eq!(
        publish(app, &admin, "2026-07", "Recordings kept 90 days.")
            .await
            .status(),
        201
    );
    let shown = support::body(&me().await);
    assert_eq!(shown["policy"]["version"], "2026-07", "the newest: {shown}");
    assert_eq!(shown["policy"]["summary"], "Recordings kept 90 days.");

    let acknowledge = |version: &str| {
        support::send(
            app,
            "POST",
            "/api/privacy/policy-acknowledgement",
            IP,
            &headers,
            Some(json!({ "version": version })),
        )
    };
    let old = acknowledge("2026-06").await;
    assert_eq!(
        (old.status().as_u16(), support::field(&old).as_str()),
        (400, "version"),
        "only the current version"
    );
    assert!(support::body(&me().await).get("policy").is_some());
    assert_eq!(acknowledge("2026-07").await.status(), 204);
    assert_eq!(
        acknowledge("2026-07").await.status(),
        204,
        "again changes nothing"
    );
    assert!(support::body(&me().await).get("policy").is_none());
}

/// The demo is stored without its passwords and postback token (they live only as password
/// hashes and in the offer), and a demo stored by the first version, which kept them in clear,
/// is scrubbed when it is next read; a later start knows the demo but not its passwords.
#[tokio::test]
async fn the_demo_keeps_no_password_or_token_in_clear() {
    let platform = support::platform(1_767_225_600).await;
    let (app, demo) = (&platform.app, &platform.demo);
    let secrets: Vec<String> = demo
        .credentials
        .iter()
        .map(|(_, _, password)| password.expose().clone())
        .chain([demo.postback_token.expose().clone()])
        .collect();
    assert_eq!(
        secrets.len(),
        4,
        "three sign-ins and a token, shown as seeded"
    );
    let stored = || async {
        app.store
            .setting::<Value>("demo")
            .await
            .unwrap()
            .unwrap()
            .to_string()
    };
    let clear = |text: &str| secrets.iter().any(|secret| text.contains(secret.as_str()));
    assert!(!clear(&stored().await), "{}", stored().await);

    // As the first version stored it.
    let mut first_version: Value = serde_json::from_str(&stored().await).unwrap();
    first_version["postback_token"] = json!(secrets[3]);
    first_version["credentials"] = json!(
        demo.credentials
            .iter()
            .map(|(role, email, password)| json!([role, email, password.expose()]))
            .collect::<Vec<_>>()
    );
    app.store
        .replace_setting("demo", &first_version)
        .await
        .unwrap();
    assert!(clear(&stored().await));
    let (again, seeded) = shared::seed::seed_demo(app).await.unwrap();
    assert!(!seeded);
    assert_eq!(again.link, demo.link);
    assert_eq!(again.postback_token.expose(), demo.postback_token.expose());
    assert!(
        again.credentials.is_empty(),
        "a later start has no passwords to show"
    );
    assert!(!clear(&stored().await), "scrubbed: {}", stored().await);
}

/// The data folder's contents are their owner's alone: a folder made here is closed, and what
/// an earlier version left readable to others is closed when the data is opened; an existing
/// data folder (perhaps the operator's own) keeps its permissions.
#[tokio::test]
async fn the_data_folder_is_closed_to_other_users() {
    use std::os::unix::fs::PermissionsExt;
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let open = |data: &std::path::Path| {
        App::embedded(
            data,
            Arc::new(shared::ports::SystemClock),
            shared::domain::email::EmailAddress::parse("no-reply@leadsrefer.local").unwrap(),
        )
        .unwrap()
    };
    let parent = tempfile::tempdir().unwrap();
    let made = parent.path().join("data");
    drop(open(&made));
    assert_eq!(mode(&made), 0o700, "a data folder made here");

    // As an earlier version left it: readable to everyone.
    let existing = tempfile::tempdir().unwrap();
    let data = existing.path();
    std::fs::set_permissions(data, std::fs::Permissions::from_mode(0o755)).unwrap();
    drop(open(data));
    for folder in ["outbox", "blobs", "keys"] {
        std::fs::set_permissions(data.join(folder), std::fs::Permissions::from_mode(0o755))
            .unwrap();
    }
    std::fs::set_permissions(
        data.join("leadsrefer.sqlite3"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    drop(open(data));
    for inside in ["outbox", "blobs", "keys"] {
        assert_eq!(mode(&data.join(inside)), 0o700, "{inside}");
    }
    assert_eq!(mode(&data.join("leadsrefer.sqlite3")), 0o600);
    assert_eq!(
        mode(data),
        0o755,
        "an existing data folder is the operator's to set"
    );
}
