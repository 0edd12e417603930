//! What the route-level integration tests share: requests as API Gateway delivers them to the
//! handlers, the demo accounts' sign-ins, and JSON answers.
#![allow(dead_code)] // each test binary uses its own part

pub mod twilio;

use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt};
use serde_json::{Value, json};
use shared::App;
use shared::domain::email::EmailAddress;
use shared::http::Response;
use shared::ports::ManualClock;
use shared::routes;
use shared::seed::{Demo, seed_demo};

/// A fresh embedded platform in a temporary folder, on a manual clock, with the demo seeded.
pub struct Platform {
    pub app: App,
    pub clock: std::sync::Arc<ManualClock>,
    pub demo: Demo,
    pub data: tempfile::TempDir,
}

/// The platform, its clock set to `at` (epoch seconds).
pub async fn platform(at: i64) -> Platform {
    let data = tempfile::tempdir().unwrap();
    let clock = std::sync::Arc::new(ManualClock::at(jiff::Timestamp::from_second(at).unwrap()));
    let sender = EmailAddress::parse("no-reply@leadsrefer.local").unwrap();
    let app = App::embedded(data.path(), clock.clone(), sender).unwrap();
    let (demo, _) = seed_demo(&app).await.unwrap();
    Platform {
        app,
        clock,
        demo,
        data,
    }
}

/// The platform on the AWS adapters, on fresh resources of the emulator `infra/test` starts
/// (named after `name`), its clock set to `at` (epoch seconds), with the demo seeded.
pub async fn aws_platform(name: &str, at: i64) -> Platform {
    shared::contract::emulator::endpoint();
    let config = shared::adapters::aws::sdk_config().await;
    let sender = "no-reply@leadsrefer.test";
    let settings = shared::contract::emulator::provision(&config, name, sender).await;
    let clock = std::sync::Arc::new(ManualClock::at(jiff::Timestamp::from_second(at).unwrap()));
    let app = App::aws(
        &settings,
        clock.clone(),
        EmailAddress::parse(sender).unwrap(),
    )
    .await
    .unwrap();
    let (demo, _) = seed_demo(&app).await.unwrap();
    Platform {
        app,
        clock,
        demo,
        data: tempfile::tempdir().unwrap(),
    }
}

pub const BROWSER: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";

/// A request from `ip` through the route table, with a browser's user-agent unless `headers`
/// give one, and a JSON body if any.
pub async fn send(
    app: &App,
    method: &str,
    uri: &str,
    ip: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Response {
    let body = body.map(|json| ("application/json", Body::Text(json.to_string())));
    send_body(app, method, uri, ip, headers, body).await
}

/// As [`send`], with a body of any type.
pub async fn send_body(
    app: &App,
    method: &str,
    uri: &str,
    ip: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, Body)>,
) -> Response {
    let mut builder = lambda_http::http::Request::builder()
        .method(method)
        .uri(uri);
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("user-agent"))
    {
        builder = builder.header("user-agent", BROWSER);
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.http.source_ip = Some(ip.into());
    let body = match body {
        Some((content_type, body)) => {
            builder = builder.header("content-type", content_type);
            body
        }
        None => Body::Empty,
    };
    let request = builder
        .body(body)
        .unwrap()
        .with_request_context(RequestContext::ApiGatewayV2(context));
    routes::respond(app.clone(), request, None).await
}

/// The session cookie and CSRF token of the demo account of `role`.
pub async fn sign_in(app: &App, demo: &Demo, role: &str) -> (String, String) {
    let (_, email, password) = demo
        .credentials
        .iter()
        .find(|(r, _, _)| serde_json::to_value(r).unwrap() == role)
        .unwrap();
    let response = send(
        app,
        "POST",
        "/api/auth/sign-in",
        "192.0.2.1",
        &[],
        Some(json!({"email": email.as_str(), "password": password.expose()})),
    )
    .await;
    assert_eq!(response.status(), 200, "{:?}", response.body());
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    (
        cookie,
        body(&response)["csrf_token"].as_str().unwrap().to_string(),
    )
}

/// A JSON answer.
pub fn body(response: &Response) -> Value {
    match response.body() {
        Body::Text(text) => serde_json::from_str(text).unwrap(),
        other => panic!("not text: {other:?}"),
    }
}

/// The demo affiliate's SSN in the tax tests.
pub const SSN: &str = "123-45-6789";

/// The demo affiliate's bank account number in the tax and privacy tests.
pub const ACCOUNT_NUMBER: &str = "000123456789";

/// The demo affiliate certifies a W-9 (Pat Publisher, SSN [`SSN`]).
pub async fn certify_w9(app: &App, demo: &Demo) {
    certify_w9_as(
        app,
        demo,
        shared::domain::tax::TaxClassification::Individual,
    )
    .await;
}

/// The demo affiliate's W-9, with the given federal tax classification.
pub async fn certify_w9_as(
    app: &App,
    demo: &Demo,
    classification: shared::domain::tax::TaxClassification,
) {
    use shared::domain::tax::{TinType, UsAddress};
    shared::tax::set_profile(
        app,
        demo.affiliate_id,
        shared::tax::ProfileInput::W9 {
            legal_name: "Pat Publisher".into(),
            business_name: Some("Pat's Deals".into()),
            classification,
            address: UsAddress {
                line1: "1 Main St".into(),
                line2: Some("Suite 5".into()),
                city: "Springfield".into(),
                state: "IL".into(),
                zip: "62701".into(),
            },
            tin_type: TinType::Ssn,
            tin: shared::secret::Secret::new(SSN.into()),
            signed_name: "Pat Publisher".into(),
            certify: true,
        },
    )
    .await
    .unwrap();
}

/// The demo affiliate is paid by ACH (account [`ACCOUNT_NUMBER`]).
pub async fn bank_account(app: &App, demo: &Demo) {
    use shared::domain::payout::{AccountHolder, AccountType};
    let account = app
        .store
        .account(shared::domain::accounts::AccountId(demo.affiliate_id.0))
        .await
        .unwrap()
        .unwrap();
    shared::payouts::set_method(
        app,
        demo.affiliate_id,
        &account.email,
        shared::payouts::MethodInput::Ach {
            routing_number: "021000021".into(),
            account_number: shared::secret::Secret::new(ACCOUNT_NUMBER.into()),
            account_type: AccountType::Checking,
            account_holder: AccountHolder::Individual,
            name_on_account: "Pat Publisher".into(),
        },
    )
    .await
    .unwrap();
}

/// A person's click on the demo link and the advertiser's postback for it: the new conversion.
pub async fn conversion(app: &App, demo: &Demo, txn: &str) -> shared::domain::tracking::Conversion {
    use shared::tracking::{ClickRequest, Postback, PostbackAuth};
    let click = shared::tracking::record_click(
        app,
        &demo.link,
        ClickRequest {
            subs: Default::default(),
            ip: "198.51.100.20".parse().unwrap(),
            country: Some("US".into()),
            region: None,
            user_agent: Some(BROWSER),
            head: false,
        },
    )
    .await
    .unwrap();
    let recorded = shared::tracking::record_conversion(
        app,
        Postback {
            click_id: click.click.id,
            txn_id: Some(txn.to_string()),
            event: shared::domain::tracking::EventName::default_event(),
            amount: None,
            currency: None,
            auth: PostbackAuth::Token(demo.postback_token.expose().clone()),
            client_prefix: None,
        },
    )
    .await
    .unwrap();
    let shared::store::Recorded::New(conversion) = recorded else {
        panic!("a new conversion")
    };
    conversion
}

/// One approved conversion of the demo offer earning the demo affiliate `cents` (the offer
/// holds nothing, so it is payable at once).
pub async fn earn(app: &App, demo: &Demo, cents: i64) {
    use shared::domain::offer::Commission;
    use shared::lifecycle::{Decider, Decision};
    let mut offer = app.store.offer(demo.offer_id).await.unwrap().unwrap();
    offer.payout = Commission::Fixed(cents);
    offer.revenue = Commission::Fixed(cents + 1_000);
    app.store.save_offer(&offer).await.unwrap();
    let id = app.clock.new_id();
    let conversion = conversion(app, demo, &format!("T-{id}")).await;
    shared::lifecycle::decide(app, conversion.id, Decision::Approve, None, Decider::Admin)
        .await
        .unwrap();
}

/// Today's payout run.
pub async fn pay(app: &App) -> shared::store::PayoutRun {
    let period = shared::payouts::period_of(app.clock.now());
    shared::payouts::run(app, &period).await.unwrap()
}

/// Every mail in the outbox of a data folder, as its `.eml` (not the readable `.txt` copy).
pub fn mail(data: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(data.join("outbox"))
        .map(|entries| {
            entries
                .map(|e| e.unwrap().path())
                .filter(|path| path.extension().is_some_and(|ext| ext == "eml"))
                .map(|path| std::fs::read_to_string(path).unwrap())
                .collect()
        })
        .unwrap_or_default()
}

/// Every file under `dir`.
pub fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
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

/// Epoch seconds of a UTC date-time such as `2026-06-02T12:00:00Z`.
pub fn at(text: &str) -> i64 {
    text.parse::<jiff::Timestamp>().unwrap().as_second()
}

/// The field an error answer names.
pub fn field(response: &Response) -> String {
    body(response)["error"]["field"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The click id in a tracking redirect's `clickid=` parameter.
pub fn click_id(location: &str) -> String {
    location
        .split("clickid=")
        .nth(1)
        .and_then(|rest| rest.split('&').next())
        .unwrap_or_else(|| panic!("no clickid in {location}"))
        .to_string()
}

/// An account's balance in US dollars, asserted equal to the sum of its entries.
pub async fn checked_balance(app: &App, account: &shared::domain::ledger::Account) -> i64 {
    let usd = shared::domain::money::Currency::parse("USD").unwrap();
    let balance = app.store.balance(account, usd).await.unwrap();
    assert_eq!(
        balance,
        app.store.balance_from_entries(account, usd).await.unwrap(),
        "{account:?}: the balance is not the sum of its entries"
    );
    balance
}
