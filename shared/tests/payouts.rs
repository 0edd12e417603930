//! Payout methods and payout runs against the real store, the ledger, a fake PayPal server on
//! loopback that behaves like PayPal's REST API (OAuth, batches idempotent by
//! `PayPal-Request-Id`, item statuses, failures) and an independent NACHA reader (achkit, from
//! the virtual environment `infra/test` installs).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use jiff::SignedDuration;
use serde_json::{Value, json};
use shared::App;
use shared::adapters::paypal::{Paypal, PaypalSettings};
use shared::domain::ledger::Account;
use shared::domain::money::Currency;
use shared::domain::payout::PayoutStatus;
use shared::http::Response;
use shared::ports::{BlobKey, ManualClock};
use shared::secret::Secret;
use shared::seed::Demo;
use support::body;

mod support;

/// An item of a batch: (sender_item_id, receiver, amount value).
type FakeItem = (String, String, String);

/// PayPal's REST API as the payout run uses it, remembering what it was asked.
#[derive(Clone, Default)]
struct FakePaypal {
    /// `PayPal-Request-Id` → the batch it created (a repeat answers the same).
    requests: Arc<Mutex<HashMap<String, String>>>,
    /// batch id → its items.
    batches: Arc<Mutex<HashMap<String, Vec<FakeItem>>>>,
    /// How many create calls to hold past the client's timeout (PayPal still creates the
    /// batch: only the answer is lost).
    slow_creates: Arc<Mutex<u32>>,
    create_calls: Arc<Mutex<u32>>,
    /// How many batch reads to hold for 2 s (a run stopped while it waits for the status).
    slow_reads: Arc<Mutex<u32>>,
    /// Items PayPal reversed after paying them (by `sender_item_id`).
    reversed: Arc<Mutex<Vec<String>>>,
}

impl FakePaypal {
    async fn start(slow_creates: u32) -> (Self, String) {
        let fake = Self::default();
        *fake.slow_creates.lock().unwrap() = slow_creates;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = fake.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let server = server.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let server = server.clone();
                        async move { Ok::<_, Infallible>(server.answer(request).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (fake, base)
    }

    async fn answer(
        &self,
        request: hyper::Request<hyper::body::Incoming>,
    ) -> hyper::Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        let reply = |status: u16, json: Value| {
            hyper::Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(json.to_string())))
                .unwrap()
        };
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let path = parts.uri.path().to_string();
        if path == "/v1/oauth2/token" {
            // Basic base64("client:secret").
            if header("authorization") != "Basic Y2xpZW50OnNlY3JldA=="
                || body.as_ref() != b"grant_type=client_credentials"
            {
                return reply(401, json!({"error": "invalid_client"}));
            }
            return reply(
                200,
                json!({"access_token": "T0KEN", "token_type": "Bearer", "expires_in": 32400}),
            );
        }
        if header("authorization") != "Bearer T0KEN" {
            return reply(401, json!({"name": "AUTHENTICATION_FAILURE"}));
        }
        if path == "/v1/payments/payouts" && parts.method == hyper::Method::POST {
            *self.create_calls.lock().unwrap() += 1;
            let request_id = header("paypal-request-id");
            let payload: Value = serde_json::from_slice(&body).unwrap();
            let sender_batch_id = payload["sender_batch_header"]["sender_batch_id"]
                .as_str()
                .unwrap()
                .to_string();
            // PayPal's documented limits: refused as a whole, naming the field.
            let too_long = payload["items"]
                .as_array()
                .unwrap()
                .iter()
                .position(|item| item["sender_item_id"].as_str().unwrap().chars().count() > 63);
            if let Some(index) = too_long {
                return reply(
                    400,
                    json!({"name": "VALIDATION_ERROR", "details": [{"field": format!("items[{index}].sender_item_id"), "issue": "Length should be 63 or less."}]}),
                );
            }
            if sender_batch_id.chars().count() > 256 {
                return reply(
                    400,
                    json!({"name": "VALIDATION_ERROR", "details": [{"field": "sender_batch_header.sender_batch_id"}]}),
                );
            }
            let existing = self.requests.lock().unwrap().get(&request_id).cloned();
            let batch_id = match existing {
                Some(batch) => batch,
                None => {
                    let used = self.batches.lock().unwrap().contains_key(&sender_batch_id);
                    if used {
                        return reply(400, json!({"name": "SENDER_BATCH_ID_ALREADY_USED"}));
                    }
                    let items = payload["items"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|item| {
                            (
                                item["sender_item_id"].as_str().unwrap().to_string(),
                                item["receiver"].as_str().unwrap().to_string(),
                                item["amount"]["value"].as_str().unwrap().to_string(),
                            )
                        })
                        .collect();
                    self.batches
                        .lock()
                        .unwrap()
                        .insert(sender_batch_id.clone(), items);
                    self.requests
                        .lock()
                        .unwrap()
                        .insert(request_id.clone(), sender_batch_id.clone());
                    sender_batch_id
                }
            };
            let slow = {
                let mut slow = self.slow_creates.lock().unwrap();
                let was = *slow;
                *slow = was.saturating_sub(1);
                was > 0
            };
            if slow {
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            return reply(
                201,
                json!({"batch_header": {"payout_batch_id": batch_id, "batch_status": "PENDING"}}),
            );
        }
        if let Some(batch_id) = path.strip_prefix("/v1/payments/payouts/") {
            let slow = {
                let mut slow = self.slow_reads.lock().unwrap();
                let was = *slow;
                *slow = was.saturating_sub(1);
                was > 0
            };
            if slow {
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            let batches = self.batches.lock().unwrap();
            let Some(items) = batches.get(batch_id) else {
                return reply(404, json!({"name": "RESOURCE_NOT_FOUND"}));
            };
            let items: Vec<Value> = items
                .iter()
                .enumerate()
                .map(|(n, (id, receiver, _))| {
                    let failed = receiver.starts_with("fail");
                    let reversed = self.reversed.lock().unwrap().contains(id);
                    json!({
                        "payout_item_id": format!("ITEM{n}"),
                        "transaction_status": if failed { "FAILED" } else if reversed { "REVERSED" } else { "SUCCESS" },
                        "payout_item": {"sender_item_id": id, "receiver": receiver},
                        "errors": if failed { json!({"name": "RECEIVER_UNREGISTERED"}) } else { json!(null) },
                    })
                })
                .collect();
            return reply(
                200,
                json!({"batch_header": {"payout_batch_id": batch_id, "batch_status": "SUCCESS"}, "items": items}),
            );
        }
        reply(404, json!({"name": "RESOURCE_NOT_FOUND"}))
    }
}

struct World {
    app: App,
    clock: Arc<ManualClock>,
    demo: Demo,
    data: tempfile::TempDir,
}

const ACCOUNT_NUMBER: &str = "000123456789";

impl World {
    async fn new(paypal: Option<(String, Duration)>) -> Self {
        Self::on(support::platform(1_795_935_600).await, paypal)
    }

    /// The platform on the AWS adapters, on the emulator `infra/test` starts.
    async fn on_aws(name: &str) -> Self {
        Self::on(support::aws_platform(name, 1_795_935_600).await, None)
    }

    fn on(platform: support::Platform, paypal: Option<(String, Duration)>) -> Self {
        let support::Platform {
            mut app,
            clock,
            demo,
            data,
        } = platform;
        if let Some((base_url, timeout)) = paypal {
            let mut settings = shared::payouts::PayoutSettings::from_env().unwrap();
            settings.paypal = Some(Arc::new(Paypal::with_timeout(
                PaypalSettings {
                    base_url,
                    client_id: "client".into(),
                    secret: Secret::new("secret".into()),
                },
                timeout,
            )));
            app.payouts = Arc::new(settings);
        }
        Self {
            app,
            clock,
            demo,
            data,
        }
    }

    async fn send(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Response {
        support::send(&self.app, method, uri, "203.0.113.9", headers, body).await
    }

    async fn sign_in(&self, role: &str) -> (String, String) {
        support::sign_in(&self.app, &self.demo, role).await
    }

    async fn set_method(&self, who: &(String, String), method: Value) -> Response {
        self.send(
            "PUT",
            "/api/payouts/method",
            &[("cookie", &who.0), ("x-csrf-token", &who.1)],
            Some(method),
        )
        .await
    }

    /// A world paying through the fake PayPal at `base`, whose demo affiliate is paid by PayPal
    /// and has earned $54.00 (three conversions).
    async fn owed_by_paypal(base: String, timeout: Duration) -> Self {
        let w = Self::new(Some((base, timeout))).await;
        let affiliate = w.sign_in("affiliate").await;
        let set = w
            .set_method(
                &affiliate,
                json!({"type": "paypal", "email": "pat@publisher.example"}),
            )
            .await;
        assert_eq!(set.status(), 200);
        w.earn(3).await;
        w
    }

    /// `n` approved conversions of $18.00 payout each (the offer holds nothing).
    async fn earn(&self, n: usize) {
        let advertiser = self.sign_in("advertiser").await;
        for _ in 0..n {
            let click = self
                .send("GET", &format!("/c/{}", self.demo.link), &[], None)
                .await;
            let click_id = support::click_id(click.headers()["location"].to_str().unwrap());
            let txn = self.app.clock.new_id();
            let posted = self
                .send(
                    "GET",
                    &format!(
                        "/postback?click_id={click_id}&txn_id={txn}&token={}",
                        self.demo.postback_token.expose()
                    ),
                    &[],
                    None,
                )
                .await;
            let id = body(&posted)["conversion"]["id"]
                .as_str()
                .unwrap()
                .to_string();
            let approved = self
                .send(
                    "PUT",
                    &format!("/api/conversions/{id}/status"),
                    &[("cookie", &advertiser.0), ("x-csrf-token", &advertiser.1)],
                    Some(json!({"status": "approved"})),
                )
                .await;
            assert_eq!(approved.status(), 200);
        }
    }

    /// The demo affiliate paid $54.00 by ACH in the run of 2026-11-30: their and an admin's
    /// sign-ins, the payout (sent, with its trace) and the run's ACH file.
    async fn paid_by_ach(
        &self,
    ) -> (
        (String, String),
        (String, String),
        shared::domain::payout::Payout,
        String,
    ) {
        let affiliate = self.sign_in("affiliate").await;
        let admin = self.sign_in("admin").await;
        assert_eq!(self.set_method(&affiliate, ach()).await.status(), 200);
        self.earn(3).await;
        shared::payouts::run(&self.app, "2026-11-30").await.unwrap();
        let payout = self.app.store.payouts_of_run("2026-11-30").await.unwrap()[0].clone();
        assert!(payout.reference.is_some(), "an ACH payout has its trace");
        (affiliate, admin, payout, self.ach_file("2026-11-30").await)
    }

    /// What `who` reads at `path`.
    async fn read(&self, who: &(String, String), path: &str) -> Value {
        body(&self.send("GET", path, &[("cookie", &who.0)], None).await)
    }

    /// A run's ACH file, as the bank gets it.
    async fn ach_file(&self, run: &str) -> String {
        let key = BlobKey::parse(format!("payouts/{run}/ach.txt")).unwrap();
        let file = self.app.blobs.get(&key).await.unwrap();
        String::from_utf8(file.expect("the run wrote its ACH file")).unwrap()
    }

    async fn payout_status(&self, id: &str) -> PayoutStatus {
        self.app.store.payout(id).await.unwrap().unwrap().status
    }

    async fn balance(&self, account: Account) -> i64 {
        support::checked_balance(&self.app, &account).await
    }

    fn mail(&self) -> Vec<String> {
        support::mail(self.data.path())
    }
}

fn ach() -> Value {
    json!({"type": "ach", "routing_number": "021000021", "account_number": ACCOUNT_NUMBER, "account_type": "checking", "name_on_account": "Pat Publisher"})
}

#[tokio::test]
async fn a_run_pays_each_eligible_affiliate_once_by_an_ach_file_a_bank_reads() {
    let w = World::new(None).await;
    let affiliate = w.sign_in("affiliate").await;
    let set = w.set_method(&affiliate, ach()).await;
    assert_eq!(set.status(), 200, "{:?}", set.body());
    let shown = String::from_utf8_lossy(set.body().as_ref()).into_owned();
    assert!(
        !shown.contains(ACCOUNT_NUMBER) && shown.contains("\"6789\""),
        "{shown}"
    );

    // $36.00 is below the $50.00 minimum: carried over.
    w.earn(2).await;
    let first = shared::payouts::run(&w.app, "2026-11-29").await.unwrap();
    assert_reported(&first, "36.00 is below the minimum");
    assert!(
        w.app
            .store
            .payouts_of_run("2026-11-29")
            .await
            .unwrap()
            .is_empty()
    );

    // The next day $54.00 is owed: one payout, whatever races or repeats.
    w.earn(1).await;
    let (a, b) = tokio::join!(
        shared::payouts::run(&w.app, "2026-11-30"),
        shared::payouts::run(&w.app, "2026-11-30"),
    );
    a.unwrap();
    b.unwrap();
    let again = shared::payouts::run(&w.app, "2026-11-30").await.unwrap();
    assert!(again.finished_at.is_some());
    let payouts = w.app.store.payouts_of_run("2026-11-30").await.unwrap();
    assert_eq!(payouts.len(), 1);
    assert_eq!(
        (payouts[0].amount.minor, payouts[0].status),
        (5_400, PayoutStatus::Sent)
    );
    assert_eq!(
        w.balance(Account::affiliate_payable(w.demo.affiliate_id))
            .await,
        0
    );
    assert_eq!(w.balance(Account::payouts_clearing()).await, 0);
    assert_eq!(w.balance(Account::platform_cash()).await, -5_400);

    // The ACH file, read back by an independent NACHA reader with every control total checked.
    let file = w
        .app
        .blobs
        .get(&BlobKey::parse("payouts/2026-11-30/ach.txt").unwrap())
        .await
        .unwrap()
        .expect("the run wrote its ACH file");
    let text = String::from_utf8(file).unwrap();
    let verdict = achkit(&text);
    assert_eq!(verdict["ok"], true, "{verdict}");
    assert_eq!(verdict["entries"][0][0], "021000021");
    assert_eq!(verdict["entries"][0][1], 5_400);
    assert_eq!(verdict["entries"][0][2], 22);

    // Mail: the affiliate's confirmation and the admins' summary.
    let mail = w.mail();
    assert!(
        mail.iter()
            .any(|m| m.contains("payout of 54.00 USD is on its way"))
    );
    assert!(
        mail.iter()
            .any(|m| m.contains("Subject: Payout run 2026-11-30"))
    );
    assert!(
        mail.iter().all(|m| !m.contains(ACCOUNT_NUMBER)),
        "no account number in mail"
    );

    // The affiliate sees the payout and a zero balance; a later run pays nothing.
    let history = w.read(&affiliate, "/api/payouts").await;
    let paid_for = w
        .read(
            &affiliate,
            &format!("/api/payouts/{}/conversions", urlencode(&payouts[0].id)),
        )
        .await;
    assert_eq!(
        paid_for["conversions"].as_array().unwrap().len(),
        3,
        "{paid_for}"
    );

    assert_eq!(history["payouts"][0]["amount"], "54.00");
    assert_eq!(
        history["payouts"][0]["destination"],
        "bank account (checking) ending 6789"
    );
    let balance = w.read(&affiliate, "/api/payouts/balance").await;
    assert_eq!(balance["balances"][0]["payable"], "0.00");
    let next = shared::payouts::run(&w.app, "2026-12-01").await.unwrap();
    assert!(
        w.app
            .store
            .payouts_of_run(&next.id)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn paypal_batches_survive_a_lost_answer_and_failed_items_are_owed_again() {
    let (fake, base) = FakePaypal::start(1).await;
    // The client gives up on a call after 500 ms; the fake holds the first answer for 2 s.
    let w = World::owed_by_paypal(base, Duration::from_millis(500)).await;
    let run = shared::payouts::run(&w.app, "2026-11-30").await.unwrap();
    assert!(run.paypal_batch_id.is_some(), "{:?}", run.report);
    assert_eq!(
        fake.batches.lock().unwrap().len(),
        1,
        "one batch, though the first answer was lost"
    );
    assert!(
        *fake.create_calls.lock().unwrap() >= 2,
        "the create call was retried"
    );
    let payouts = w.app.store.payouts_of_run("2026-11-30").await.unwrap();
    assert_eq!(payouts[0].status, PayoutStatus::Paid, "PayPal said SUCCESS");
    assert_eq!(w.balance(Account::platform_cash()).await, -5_400);

    // A receiver PayPal cannot pay: the item fails and the affiliate is owed the money again.
    let (fake, base) = FakePaypal::start(0).await;
    let w = World::new(Some((base, Duration::from_secs(5)))).await;
    let affiliate = w.sign_in("affiliate").await;
    w.set_method(
        &affiliate,
        json!({"type": "paypal", "email": "fail@publisher.example"}),
    )
    .await;
    w.earn(3).await;
    shared::payouts::run(&w.app, "2026-11-30").await.unwrap();
    let payouts = w.app.store.payouts_of_run("2026-11-30").await.unwrap();
    assert_eq!(payouts[0].status, PayoutStatus::Failed);
    assert_eq!(payouts[0].failure.as_deref(), Some("RECEIVER_UNREGISTERED"));
    assert_eq!(
        w.balance(Account::affiliate_payable(w.demo.affiliate_id))
            .await,
        -5_400
    );
    assert_eq!(w.balance(Account::platform_cash()).await, 0);
    assert_eq!(fake.batches.lock().unwrap().len(), 1);

    // The affiliate fixes the address; after the cooling-off an admin retries the payout.
    w.set_method(
        &affiliate,
        json!({"type": "paypal", "email": "pat@publisher.example"}),
    )
    .await;
    w.clock.advance(SignedDuration::from_hours(73));
    let admin = w.sign_in("admin").await;
    let failed = urlencode(&payouts[0].id);
    let retry = |admin: (String, String)| {
        let w = &w;
        let failed = failed.clone();
        async move {
            w.send(
                "POST",
                &format!("/api/admin/payouts/{failed}/retry"),
                &[("cookie", &admin.0), ("x-csrf-token", &admin.1)],
                None,
            )
            .await
        }
    };
    let retried = retry(admin.clone()).await;
    assert_eq!(retried.status(), 200, "{:?}", retried.body());
    let run = body(&retried)["id"].as_str().unwrap().to_string();
    let again = retry(admin).await;
    assert_eq!(body(&again)["id"], run.as_str(), "one retry run a day");
    let paid = w.app.store.payouts_of_run(&run).await.unwrap();
    assert_eq!((paid.len(), paid[0].status), (1, PayoutStatus::Paid));
    assert_eq!(
        w.balance(Account::affiliate_payable(w.demo.affiliate_id))
            .await,
        0
    );
    assert_eq!(fake.batches.lock().unwrap().len(), 2);
}

/// What achkit, an independent NACHA reader, makes of a file: its verdict with every control
/// total checked, and the entries it read.
fn achkit(text: &str) -> Value {
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(
        python.exists(),
        "run the tests through infra/test, which installs achkit"
    );
    let program = "import sys, json, achkit; t = sys.stdin.read(); v = achkit.validate(t); f = achkit.parse(t); print(json.dumps({'ok': v['ok'], 'errors': v['errors'], 'secs': [b['sec'] for b in f['batches']], 'entries': [(e['routing'], e['amount_cents'], e['txn_code']) for b in f['batches'] for e in b['entries']]}))";
    let checked = std::process::Command::new(python)
        .args(["-c", program])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(text.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    serde_json::from_slice(&checked.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&checked.stderr)))
}

#[test]
fn a_file_with_people_and_companies_reads_back_as_a_ppd_and_a_ccd_batch() {
    use shared::domain::nacha::{Credit, Originator, credits_file};
    use shared::domain::payout::{AccountHolder, AccountType, RoutingNumber};
    let credit = |routing: &str, amount, holder| Credit {
        routing: RoutingNumber::parse(routing).unwrap(),
        account_number: "000123456789".into(),
        account_type: AccountType::Savings,
        holder,
        amount,
        individual_id: "01KB4ZJ6Y0E5V2M".into(),
        name: "Publisher LLC".into(),
    };
    let originator = Originator {
        destination_routing: RoutingNumber::parse("021000021").unwrap(),
        destination_name: "DEMO BANK".into(),
        company_id: "1000000000".into(),
        company_name: "LEADSREFER".into(),
        origin_routing: RoutingNumber::parse("111000025").unwrap(),
    };
    let (file, _) = credits_file(
        &originator,
        &[
            credit("021000021", 12_345, AccountHolder::Company),
            credit("111000025", 5_000, AccountHolder::Individual),
            credit("021000021", 1, AccountHolder::Individual),
        ],
        jiff::civil::date(2026, 11, 30).at(6, 0, 0, 0),
        jiff::civil::date(2026, 12, 1),
        'B',
        1,
    );
    let verdict = achkit(&file);
    assert_eq!(verdict["ok"], true, "{verdict}");
    assert_eq!(verdict["secs"], json!(["PPD", "CCD"]));
    assert_eq!(
        verdict["entries"],
        json!([
            ["111000025", 5000, 32],
            ["021000021", 1, 32],
            ["021000021", 12345, 32]
        ])
    );
}

fn urlencode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test]
async fn bad_payout_details_are_refused_and_a_changed_method_holds_the_next_payout() {
    let w = World::new(None).await;
    let affiliate = w.sign_in("affiliate").await;
    for (method, field) in [
        (
            json!({"type": "ach", "routing_number": "123456789", "account_number": "12345", "account_type": "checking", "name_on_account": "Pat"}),
            "routing_number",
        ),
        (
            json!({"type": "ach", "routing_number": "021000021", "account_number": "12ab5", "account_type": "checking", "name_on_account": "Pat"}),
            "account_number",
        ),
        (
            json!({"type": "ach", "routing_number": "021000021", "account_number": 123456789, "account_type": "checking", "name_on_account": "Pat"}),
            "account_number",
        ),
        (
            json!({"type": "ach", "routing_number": "021000021", "account_number": "123456", "account_type": "brokerage", "name_on_account": "Pat"}),
            "account_type",
        ),
        (json!({"type": "paypal", "email": "not an email"}), "email"),
        (json!({"type": "venmo"}), "type"),
    ] {
        let response = w.set_method(&affiliate, method.clone()).await;
        assert_eq!(response.status(), 400, "{method}");
        assert_eq!(body(&response)["error"]["field"], field, "{method}");
        let shown = String::from_utf8_lossy(response.body().as_ref()).into_owned();
        assert!(
            !shown.contains("123456789") || field == "routing_number",
            "{shown}"
        );
    }

    assert_eq!(
        w.set_method(
            &affiliate,
            json!({"type": "paypal", "email": "pat@publisher.example"})
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        w.set_method(&affiliate, ach()).await.status(),
        200,
        "a change"
    );
    assert!(
        w.mail()
            .iter()
            .any(|m| m.contains("Your LeadsRefer payout method was changed"))
    );
    let notices = || {
        w.mail()
            .iter()
            .filter(|m| m.contains("Your LeadsRefer payout method was changed"))
            .count()
    };
    assert_eq!(notices(), 1);
    let hold =
        w.read(&affiliate, "/api/payouts/method").await["method"]["payouts_held_until"].clone();
    w.clock.advance(SignedDuration::from_hours(1));
    let affiliate = w.sign_in("affiliate").await;
    assert_eq!(
        w.set_method(&affiliate, ach()).await.status(),
        200,
        "the same again"
    );
    assert_eq!(notices(), 1, "sending the same method again is no change");
    let again = w.read(&affiliate, "/api/payouts/method").await;
    assert_eq!(
        again["method"]["payouts_held_until"], hold,
        "and no new hold"
    );

    w.earn(3).await;
    let held = shared::payouts::run(&w.app, "2026-11-30").await.unwrap();
    assert_reported(&held, "waits: payout method changed");
    assert!(
        w.app
            .store
            .payouts_of_run("2026-11-30")
            .await
            .unwrap()
            .is_empty()
    );
    w.clock.advance(SignedDuration::from_hours(73));
    shared::payouts::run(&w.app, "2026-12-03").await.unwrap();
    assert_eq!(
        w.app
            .store
            .payouts_of_run("2026-12-03")
            .await
            .unwrap()
            .len(),
        1,
        "paid after the cooling-off"
    );
}

#[tokio::test]
async fn ach_pays_dollars_only_and_the_run_says_so() {
    let w = World::new(None).await;
    let mut offer = w.app.store.offer(w.demo.offer_id).await.unwrap().unwrap();
    offer.currency = Currency::parse("EUR").unwrap();
    w.app.store.save_offer(&offer).await.unwrap();
    let affiliate = w.sign_in("affiliate").await;
    assert_eq!(w.set_method(&affiliate, ach()).await.status(), 200);
    w.earn(3).await;
    let run = shared::payouts::run(&w.app, "2026-11-30").await.unwrap();
    assert!(
        run.report.iter().any(|l| l
            .ends_with("EUR: 54.00 waits: ACH pays US dollars only; a PayPal method can take it")),
        "{:?}",
        run.report
    );
    assert!(
        run.finished_at.is_some(),
        "nothing is left waiting for a rail"
    );
    assert!(
        w.app
            .store
            .payouts_of_run("2026-11-30")
            .await
            .unwrap()
            .is_empty()
    );
}

/// A run left unfinished (a crash, or rails that took long) is resumed by the next job,
/// however many runs came after it.
#[tokio::test]
async fn the_job_resumes_an_unfinished_run_behind_many_finished_ones() {
    let w = World::new(None).await;
    let at = shared::ports::Clock::now(&*w.clock);
    let stuck = w.app.store.claim_run("2025-01-01", None, at).await.unwrap();
    assert_eq!(stuck.finished_at, None);
    let mut day = jiff::civil::date(2025, 1, 2);
    for _ in 0..40 {
        let id = day.to_string();
        let mut run = w.app.store.claim_run(&id, None, at).await.unwrap();
        run.finished_at = Some(at);
        w.app.store.save_run(&run).await.unwrap();
        day = day.tomorrow().unwrap();
    }
    let report = shared::payouts::job(w.app.clone()).await.unwrap();
    assert!(report.starts_with("payout run 2026-11-29"), "{report}");
    let runs = w.app.store.runs(100).await.unwrap();
    assert_eq!(runs.len(), 42, "today's run, 40 finished and the stuck one");
    let resumed = runs.iter().find(|run| run.id == "2025-01-01").unwrap();
    assert!(
        resumed.finished_at.is_some(),
        "the run behind 40 others was resumed and finished: {resumed:?}"
    );
    assert!(w.app.store.unfinished_runs().await.unwrap().is_empty());
}

/// An ACH file made on a Friday settles on the Monday (the next banking day), and one made on
/// the eve of a Fed holiday settles after it: never on a weekend or a holiday.
#[tokio::test]
async fn an_ach_file_settles_on_the_next_banking_day() {
    for (made, period, effective) in [
        ("2026-12-04T06:00:00Z", "2026-12-04", "261207"),
        ("2026-12-31T06:00:00Z", "2026-12-31", "270104"),
    ] {
        let w = World::new(None).await;
        w.clock.set(made.parse().unwrap());
        let affiliate = w.sign_in("affiliate").await;
        assert_eq!(w.set_method(&affiliate, ach()).await.status(), 200);
        w.earn(3).await;
        shared::payouts::run(&w.app, period).await.unwrap();
        let file = w
            .app
            .blobs
            .get(&BlobKey::parse(format!("payouts/{period}/ach.txt")).unwrap())
            .await
            .unwrap()
            .expect("the run wrote its ACH file");
        let text = String::from_utf8(file).unwrap();
        let batch = text.lines().find(|r| r.starts_with('5')).unwrap();
        assert_eq!(&batch[69..75], effective, "made {made}: {batch}");
        assert_eq!(achkit(&text)["ok"], true);
    }
}

/// A run stopped while it waits for PayPal's batch status (a crash, a Lambda timeout) has kept
/// the batch's id, and the next run reads the items; a run of an earlier version that lost the
/// id finds its batch again by the same request, and nobody is paid twice.
#[tokio::test]
async fn a_paypal_batch_id_is_kept_at_once_and_a_lost_one_is_found_again() {
    let (fake, base) = FakePaypal::start(0).await;
    let w = World::owed_by_paypal(base, Duration::from_secs(5)).await;
    let stored_run = || async {
        w.app
            .store
            .runs(10)
            .await
            .unwrap()
            .into_iter()
            .find(|run| run.id == "2026-11-30")
            .unwrap()
    };

    *fake.slow_reads.lock().unwrap() = 1;
    let stopped = tokio::time::timeout(
        Duration::from_millis(800),
        shared::payouts::run(&w.app, "2026-11-30"),
    )
    .await;
    assert!(stopped.is_err(), "the run stopped while reading the batch");
    let kept = stored_run().await;
    assert!(
        kept.paypal_batch_id.is_some(),
        "kept before the status was read"
    );
    assert!(kept.finished_at.is_none());

    // As an earlier version left it: the payouts sent, the batch's id lost.
    let mut lost = kept;
    lost.paypal_batch_id = None;
    w.app.store.save_run(&lost).await.unwrap();
    let resumed = shared::payouts::run(&w.app, "2026-11-30").await.unwrap();
    assert!(resumed.paypal_batch_id.is_some(), "{:?}", resumed.report);
    assert!(resumed.finished_at.is_some(), "{:?}", resumed.report);
    let payouts = w.app.store.payouts_of_run("2026-11-30").await.unwrap();
    assert_eq!((payouts.len(), payouts[0].status), (1, PayoutStatus::Paid));
    assert_eq!(
        fake.batches.lock().unwrap().len(),
        1,
        "one batch, paid once"
    );
    assert_eq!(w.balance(Account::platform_cash()).await, -5_400);
}

/// Two installations paying from one PayPal account each get their own batch, and both
/// affiliates are paid; a restored copy that took another installation's name is answered that
/// installation's batch, recognises it is not its own, and applies nothing.
#[tokio::test]
async fn installations_sharing_a_paypal_account_never_get_each_others_batch() {
    let (fake, base) = FakePaypal::start(0).await;
    let mut worlds = Vec::new();
    for _ in 0..3 {
        worlds.push(World::owed_by_paypal(base.clone(), Duration::from_secs(5)).await);
    }
    for w in &worlds[..2] {
        shared::payouts::run(&w.app, "2026-11-30").await.unwrap();
        let payouts = w.app.store.payouts_of_run("2026-11-30").await.unwrap();
        assert_eq!(payouts[0].status, PayoutStatus::Paid);
    }
    assert_eq!(fake.batches.lock().unwrap().len(), 2, "a batch each");

    // The third is a restored copy of the first: it has the first's name.
    let name: Value = worlds[0]
        .app
        .store
        .setting("installation")
        .await
        .unwrap()
        .unwrap();
    let copy = &worlds[2];
    assert!(
        copy.app
            .store
            .create_setting("installation", &name)
            .await
            .unwrap()
    );
    let run = shared::payouts::run(&copy.app, "2026-11-30").await.unwrap();
    assert_reported(&run, "that this run did not send");
    let payouts = copy.app.store.payouts_of_run("2026-11-30").await.unwrap();
    assert_eq!(
        payouts[0].status,
        PayoutStatus::Sent,
        "not marked paid by another installation's batch"
    );
    assert!(
        run.finished_at.is_none(),
        "left open for an operator to look at"
    );
}

/// A PayPal payment reversed after it succeeded: the next days' payout job reads the recent
/// batches again, marks the payout failed and owes the affiliate the money again, once.
#[tokio::test]
async fn a_paypal_reversal_after_success_is_taken_back_into_the_ledger() {
    let (fake, base) = FakePaypal::start(0).await;
    let w = World::owed_by_paypal(base, Duration::from_secs(5)).await;
    let period = shared::payouts::period_of(w.app.clock.now());
    shared::payouts::run(&w.app, &period).await.unwrap();
    let paid = w.app.store.payouts_of_run(&period).await.unwrap();
    assert_eq!(paid[0].status, PayoutStatus::Paid);
    assert_eq!(w.balance(Account::platform_cash()).await, -5_400);

    fake.reversed
        .lock()
        .unwrap()
        .push(shared::adapters::paypal::sender_item_id(&paid[0].id));
    w.clock.advance(SignedDuration::from_hours(24 * 3));
    let job = shared::jobs::find("payout-run").unwrap();
    let report = (job.run)(w.app.clone()).await.unwrap();
    assert!(report.contains("PayPal says REVERSED"), "{report}");
    let after = w.app.store.payouts_of_run(&period).await.unwrap();
    assert_eq!(after[0].status, PayoutStatus::Failed);
    assert_eq!(after[0].failure.as_deref(), Some("REVERSED"));
    assert_eq!(
        w.balance(Account::platform_cash()).await,
        0,
        "the money came back"
    );
    assert_eq!(
        w.balance(Account::affiliate_payable(w.demo.affiliate_id))
            .await,
        -5_400,
        "owed to the affiliate again"
    );
    // The next run the same day pays it again (to the method on file) and takes nothing back
    // a second time.
    let again = (job.run)(w.app.clone()).await.unwrap();
    assert!(!again.contains("REVERSED"), "taken back once: {again}");
    let repaid = format!("{}-2", shared::payouts::period_of(w.app.clock.now()));
    assert!(
        again.starts_with(&format!("payout run {repaid}")),
        "{again}"
    );
    assert_eq!(w.balance(Account::platform_cash()).await, -5_400);
    assert_eq!(
        w.balance(Account::affiliate_payable(w.demo.affiliate_id))
            .await,
        0
    );
    let once_more = (job.run)(w.app.clone()).await.unwrap();
    assert!(
        once_more.starts_with(&format!("payout run {repaid}")),
        "{once_more}"
    );
    assert_eq!(w.balance(Account::platform_cash()).await, -5_400);
}

/// A run that found nobody to pay no longer blocks the day: a later run the same day pays
/// those who became payable since, under an id of its own (`{day}-2`, with its own ACH file),
/// and a run with nothing new to pay answers the last one instead of making another.
#[tokio::test]
async fn a_later_run_the_same_day_pays_who_became_payable_since_and_nobody_twice() {
    let w = World::new(None).await;
    let affiliate = w.sign_in("affiliate").await;
    assert_eq!(w.set_method(&affiliate, ach()).await.status(), 200);
    let today = shared::payouts::period_of(w.app.clock.now());
    let first = shared::payouts::run(&w.app, &today).await.unwrap();
    assert_eq!(first.id, today);
    assert!(first.finished_at.is_some());
    assert!(w.app.store.payouts_of_run(&today).await.unwrap().is_empty());
    // Nothing changed: the same run answers.
    assert_eq!(
        shared::payouts::run(&w.app, &today).await.unwrap().id,
        today
    );

    w.earn(3).await;
    let second = shared::payouts::run(&w.app, &today).await.unwrap();
    let follow_up = format!("{today}-2");
    assert_eq!(second.id, follow_up, "{second:?}");
    let paid = w.app.store.payouts_of_run(&follow_up).await.unwrap();
    assert_eq!(paid.len(), 1);
    assert_eq!(paid[0].amount.to_decimal(), "54.00");
    let file = w
        .app
        .blobs
        .get(&BlobKey::parse(format!("payouts/{follow_up}/ach.txt")).unwrap())
        .await
        .unwrap();
    assert!(
        file.is_some(),
        "the follow-up run has an ACH file of its own"
    );

    // Again, and through the job: nothing new, nobody paid twice.
    assert_eq!(
        shared::payouts::run(&w.app, &today).await.unwrap().id,
        follow_up
    );
    w.clock.advance(SignedDuration::from_mins(1));
    let report = shared::payouts::job(w.app.clone()).await.unwrap();
    assert_eq!(
        report,
        format!("payout run {follow_up}: already ran, and nothing new is owed: paid nobody now"),
        "a repeat does not print the earlier run's payments as its own"
    );
    let runs = w.app.store.runs(10).await.unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(
        w.balance(Account::affiliate_payable(w.demo.affiliate_id))
            .await,
        0
    );
}

/// Asserts that a run's report has a line saying `text`.
fn assert_reported(run: &shared::store::PayoutRun, text: &str) {
    assert!(
        run.report.iter().any(|line| line.contains(text)),
        "{text:?} is not in {:?}",
        run.report
    );
}

/// The bank's side of ACH returns: the return file an ODFI passes back for entries of a payout
/// file, built as the NACHA rules say (Appendix Four): each returned entry keeps the original's
/// account, amount, individual id and name; its transaction code becomes the return's (22 →
/// 21, 32 → 31), its receiving bank the originator's own (with its check digit), and its trace
/// the returning bank's; a `99` addenda carries the reason and the original trace. `returns`
/// are (original trace, reason or change code); a change code makes a notification of change
/// (`98` addenda, zero amount, corrected data).
fn bank_returns(payout_file: &str, returns: &[(&str, &str)]) -> String {
    let pad = |record: String| format!("{record:<94}");
    let check_digit = |routing8: &str| {
        let sum: u32 = routing8
            .chars()
            .zip([3, 7, 1, 3, 7, 1, 3, 7])
            .map(|(d, w)| d.to_digit(10).unwrap() * w)
            .sum();
        (10 - sum % 10) % 10
    };
    let records: Vec<&str> = payout_file.lines().collect();
    let mut out = vec![pad(format!("101 {}", &records[0][13..23]))];
    let mut batch_header = "";
    let mut sequence = 0;
    let mut batch = Vec::new();
    let mut total = 0u64;
    for record in &records {
        match &record[..1] {
            "5" => batch_header = record,
            "6" => {
                let trace = &record[79..94];
                let Some((_, code)) = returns.iter().find(|(t, _)| *t == trace) else {
                    continue;
                };
                sequence += 1;
                let odfi = &batch_header[79..87];
                let rdfi = &record[3..11];
                let return_trace = format!("{rdfi}{sequence:07}");
                let transaction = match &record[1..3] {
                    "22" => "21",
                    "32" => "31",
                    other => panic!("not a credit: {other}"),
                };
                let change = code.starts_with('C');
                let amount = if change {
                    "0000000000"
                } else {
                    &record[29..39]
                };
                total += amount.parse::<u64>().unwrap();
                batch.push(format!(
                    "6{transaction}{odfi}{}{}{amount}{}  1{return_trace}",
                    check_digit(odfi),
                    &record[12..29],
                    &record[39..76],
                ));
                batch.push(pad(format!(
                    "7{}{code}{trace}      {rdfi}{:<44}",
                    if change { "98" } else { "99" },
                    if change { "987654321" } else { "" },
                )));
                let last = batch.len() - 1;
                batch[last].replace_range(79..94, &return_trace);
            }
            _ => {}
        }
    }
    out.push(batch_header.to_string());
    let count = batch.len();
    out.extend(batch);
    out.push(pad(format!("8220{count:06}{:010}{:012}{total:012}", 0, 0)));
    out.push(pad(format!("9000001{:06}{:08}", 1, count)));
    while out.len() % 10 != 0 {
        out.push("9".repeat(94));
    }
    // Banks send CRLF line ends as often as not.
    out.join("\r\n") + "\r\n"
}

/// Sends a return file to the admin route, as the bank sent it.
async fn upload_returns(w: &World, who: &(String, String), file: &str) -> Response {
    support::send_body(
        &w.app,
        "POST",
        "/api/admin/ach-returns",
        "203.0.113.9",
        &[("cookie", &who.0), ("x-csrf-token", &who.1)],
        Some((
            "text/plain",
            lambda_http::Body::Binary(file.as_bytes().to_vec()),
        )),
    )
    .await
}

/// An ACH payout the bank returns as `R03` (no account): the payout fails, its amount is owed
/// again, the affiliate's method stops until they give another, they are mailed once; the same
/// file again changes nothing; a file that is not a return file, or from a non-admin, is
/// refused and changes nothing. The next file's traces follow on from the first's, so a return
/// names one payout whatever run it came from.
#[tokio::test]
async fn a_bank_return_fails_the_payout_and_stops_an_account_that_cannot_take_payments() {
    bank_return_story(World::new(None).await).await;
}

#[tokio::test]
async fn bank_returns_are_recorded_on_the_aws_adapters() {
    bank_return_story(World::on_aws("ach-returns").await).await;
}

async fn bank_return_story(w: World) {
    let (affiliate, admin, payout, payout_file) = w.paid_by_ach().await;
    let trace = payout.reference.clone().unwrap();
    let payable = Account::affiliate_payable(w.demo.affiliate_id);
    assert_eq!(w.balance(payable.clone()).await, 0);

    // Refused, changing nothing: the payout file itself, another content type, an affiliate.
    let refused = upload_returns(&w, &admin, &payout_file).await;
    assert_eq!(refused.status(), 400);
    let error = body(&refused)["error"].clone();
    assert_eq!(error["field"], "file");
    assert!(
        error["message"].as_str().unwrap().contains("payout file"),
        "{error}"
    );
    let returns = bank_returns(&payout_file, &[(&trace, "R03")]);
    let as_json = w
        .send(
            "POST",
            "/api/admin/ach-returns",
            &[("cookie", &admin.0), ("x-csrf-token", &admin.1)],
            Some(json!({"file": returns})),
        )
        .await;
    assert_eq!(as_json.status(), 400);
    assert_eq!(body(&as_json)["error"]["field"], "content-type");
    assert_eq!(upload_returns(&w, &affiliate, &returns).await.status(), 403);
    assert_eq!(w.payout_status(&payout.id).await, PayoutStatus::Sent);
    assert_eq!(w.balance(payable.clone()).await, 0);

    // The return: recorded once, however often the file comes.
    let recorded = body(&upload_returns(&w, &admin, &returns).await);
    assert_eq!(recorded["recorded"], 1, "{recorded}");
    let entry = &recorded["entries"][0];
    assert_eq!(entry["outcome"], "recorded", "{recorded}");
    assert_eq!(entry["payout_id"], payout.id.as_str());
    assert_eq!(entry["amount"], "54.00");
    assert_eq!(entry["method_stopped"], true);
    let again = body(&upload_returns(&w, &admin, &returns).await);
    assert_eq!(
        again["entries"][0]["outcome"], "already_recorded",
        "{again}"
    );
    assert_eq!(again["recorded"], 0);
    let failed = w.app.store.payout(&payout.id).await.unwrap().unwrap();
    assert_eq!(failed.status, PayoutStatus::Failed);
    assert_eq!(
        failed.failure.as_deref(),
        Some("ACH return R03: no account, or unable to locate the account")
    );
    assert_eq!(w.balance(payable.clone()).await, -5_400, "owed again");
    assert_eq!(w.balance(Account::platform_cash()).await, 0);
    // Mail is read from the local outbox (SES keeps it on AWS).
    if w.app.backend == shared::app::Backend::Embedded {
        let notices: Vec<String> = w
            .mail()
            .into_iter()
            .filter(|m| m.contains("returned by your bank"))
            .collect();
        assert_eq!(notices.len(), 1, "one notice per returned payout");
        assert!(notices[0].contains("R03") && notices[0].contains("another payout method"));
        assert!(!notices[0].contains(ACCOUNT_NUMBER));
    }

    // Stopped: the next run waits, and the affiliate sees why; sending the same account again
    // does not restart it.
    let waiting = shared::payouts::run(&w.app, "2026-12-01").await.unwrap();
    assert_reported(&waiting, "54.00 waits: the bank returned payout");
    assert_eq!(w.set_method(&affiliate, ach()).await.status(), 200);
    let method = w.read(&affiliate, "/api/payouts/method").await;
    assert_eq!(method["method"]["stopped"]["code"], "R03", "{method}");
    assert_eq!(method["method"]["stopped"]["payout_id"], payout.id.as_str());

    // Another account pays again after the cooling-off period, under the next trace.
    let mut other = ach();
    other["account_number"] = json!("000987654321");
    assert_eq!(w.set_method(&affiliate, other).await.status(), 200);
    w.clock.advance(SignedDuration::from_hours(73));
    let period = shared::payouts::period_of(w.app.clock.now());
    let run = shared::payouts::run(&w.app, &period).await.unwrap();
    let repaid = w.app.store.payouts_of_run(&run.id).await.unwrap();
    assert_eq!(repaid.len(), 1, "{repaid:?}");
    assert_eq!(repaid[0].amount.to_decimal(), "54.00");
    let next_trace = repaid[0].reference.clone().unwrap();
    assert_eq!(
        next_trace[8..].parse::<u64>().unwrap(),
        trace[8..].parse::<u64>().unwrap() + 1,
        "each file takes its own traces"
    );
    assert_eq!(w.balance(payable).await, 0);
}

/// Returns that leave the account usable (R06) make the amount payable again through the same
/// method; a notification of change leaves the payout paid and asks the affiliate to check
/// their details; entries that match no payout (another amount, an unknown trace) change
/// nothing.
#[tokio::test]
async fn other_returns_pay_again_and_notifications_of_change_ask_for_details() {
    let w = World::new(None).await;
    let (_, admin, payout, payout_file) = w.paid_by_ach().await;
    let trace = payout.reference.clone().unwrap();

    let change =
        body(&upload_returns(&w, &admin, &bank_returns(&payout_file, &[(&trace, "C01")])).await);
    assert_eq!(change["entries"][0]["outcome"], "correction", "{change}");
    assert_eq!(w.payout_status(&payout.id).await, PayoutStatus::Sent);
    assert!(
        w.mail()
            .iter()
            .any(|m| m.contains("asks us to correct your details") && !m.contains("987654321")),
        "the affiliate is asked, without the corrected data"
    );

    // Another amount, or a trace no payout had: nothing applied.
    let returns = bank_returns(&payout_file, &[(&trace, "R06")]);
    let other_amount = returns.replace("0000005400", "0000005399");
    let unknown_trace = returns.replace(&trace, &format!("{}9999999", &trace[..8]));
    for file in [other_amount, unknown_trace] {
        let answer = body(&upload_returns(&w, &admin, &file).await);
        assert_eq!(answer["entries"][0]["outcome"], "unmatched", "{answer}");
    }
    assert_eq!(w.payout_status(&payout.id).await, PayoutStatus::Sent);

    let recorded = body(&upload_returns(&w, &admin, &returns).await);
    assert_eq!(recorded["entries"][0]["outcome"], "recorded", "{recorded}");
    assert_eq!(recorded["entries"][0]["method_stopped"], false);
    w.clock.advance(SignedDuration::from_hours(24));
    let period = shared::payouts::period_of(w.app.clock.now());
    let run = shared::payouts::run(&w.app, &period).await.unwrap();
    let repaid = w.app.store.payouts_of_run(&run.id).await.unwrap();
    assert_eq!(repaid.len(), 1, "the same method pays again");
    assert_eq!(
        w.balance(Account::affiliate_payable(w.demo.affiliate_id))
            .await,
        0
    );
}
