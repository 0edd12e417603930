//! The click and postback routes, driven through `routes::dispatch` exactly as Lambda and the
//! local runner drive them, on embedded adapters in a temporary folder with a manual clock.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt};
use serde_json::Value;
use shared::App;
use shared::domain::email::EmailAddress;
use shared::domain::ids::{AdvertiserId, ClickId, LinkCode, OfferId};
use shared::domain::ledger::Account;
use shared::domain::money::{Bps, Currency};
use shared::domain::offer::{Commission, Destination, Offer};
use shared::domain::tracking::Link;
use shared::http::Response;
use shared::ports::table::{Item, Key, Page, Query, Table, Update, Write};
use shared::ports::{Clock, Cond, ManualClock, TableError};
use shared::routes;
use shared::seed::{Demo, new_postback_secret, seed_demo};

const VISITOR_IP: &str = "203.0.113.77";

struct TestApp {
    app: App,
    clock: Arc<ManualClock>,
    demo: Demo,
    data: tempfile::TempDir,
}

impl TestApp {
    async fn new() -> Self {
        let data = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::at(
            Timestamp::from_second(1_780_000_000).unwrap(),
        ));
        let sender = EmailAddress::parse("no-reply@leadsrefer.local").unwrap();
        let app = App::embedded(data.path(), clock.clone(), sender).unwrap();
        let (demo, _) = seed_demo(&app).await.unwrap();
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
        body: Body,
    ) -> Response {
        let mut builder = lambda_http::http::Request::builder()
            .method(method)
            .uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let mut context = ApiGatewayV2httpRequestContext::default();
        context.http.source_ip = Some(VISITOR_IP.into());
        let request = builder
            .body(body)
            .unwrap()
            .with_request_context(RequestContext::ApiGatewayV2(context));
        routes::respond(self.app.clone(), request, None).await
    }

    async fn get(&self, uri: &str) -> Response {
        self.send("GET", uri, &[], Body::Empty).await
    }

    /// Follows the demo link; answers the click id from the redirect.
    async fn click(&self) -> ClickId {
        let response = self.get(&format!("/c/{}?sub1=demo", self.demo.link)).await;
        assert_eq!(response.status(), 302);
        click_id_of(&response)
    }

    fn token(&self) -> &str {
        self.demo.postback_token.expose()
    }

    async fn conversions(&self) -> usize {
        self.app
            .store
            .conversions_of_offer(self.demo.advertiser_id, self.demo.offer_id)
            .await
            .unwrap()
            .len()
    }

    /// Every balance the demo's conversions touch, each checked against its entries.
    async fn balances(&self) -> [i64; 3] {
        let usd = Currency::parse("USD").unwrap();
        let accounts = [
            Account::advertiser_receivable(self.demo.advertiser_id),
            Account::affiliate_pending(self.demo.affiliate_id),
            Account::platform_margin(),
        ];
        let mut balances = [0; 3];
        for (balance, account) in balances.iter_mut().zip(&accounts) {
            *balance = self.app.store.balance(account, usd).await.unwrap();
            let from_entries = self
                .app
                .store
                .balance_from_entries(account, usd)
                .await
                .unwrap();
            assert_eq!(
                *balance, from_entries,
                "{account:?}: the running balance equals its entries"
            );
        }
        balances
    }
}

fn body_json(response: &Response) -> Value {
    serde_json::from_slice(response.body().as_ref()).unwrap()
}

/// The click id in a redirect to the demo offer (`…clickid={click_id}…`).
fn click_id_of(redirect: &Response) -> ClickId {
    let location = redirect.headers()["location"].to_str().unwrap();
    let id = location
        .split("clickid=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    ClickId::parse(id).unwrap()
}

fn assert_error(response: &Response, status: u16, field: &str) {
    assert_eq!(response.status(), status, "{:?}", response.body());
    let body = body_json(response);
    assert_eq!(body["error"]["field"], field, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{field}: ")),
        "{body}"
    );
}

#[tokio::test]
async fn a_click_redirects_to_the_filled_destination_and_sets_the_cookie() {
    let t = TestApp::new().await;
    let response = t
        .get(&format!("/c/{}?sub1=spring%20sale&sub2=x%26y", t.demo.link))
        .await;
    assert_eq!(response.status(), 302);
    let location = response.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with("https://shop.example.com/welcome?clickid="),
        "{location}"
    );
    assert!(
        location.ends_with(&format!("&aff={}&s1=spring%20sale", t.demo.affiliate_id)),
        "{location}"
    );
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.starts_with(&format!("lr_{}=", t.demo.offer_id)),
        "{cookie}"
    );
    for attribute in [
        "Max-Age=2592000",
        "Path=/",
        "Secure",
        "HttpOnly",
        "SameSite=None",
    ] {
        assert!(cookie.contains(attribute), "{cookie} has {attribute}");
    }

    let click = t
        .app
        .store
        .click(click_id_of(&response))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(click.subs.get(1), Some("x&y"));
    assert_eq!(click.visitor.ip_prefix, "203.0.113.0/24");
    assert_eq!(click.visitor.ip_hash.len(), 32);
    assert_eq!(
        click.expires_at,
        (click.at + SignedDuration::from_hours(24 * 1096)).as_second()
    );
}

#[tokio::test]
async fn no_raw_ip_is_stored_anywhere() {
    let t = TestApp::new().await;
    t.click().await;
    drop(t.app);
    // The database's last connection may close on the group committer's thread just after
    // the drop, removing its WAL files mid-walk (their content then is in the database
    // file): a walk that meets a file gone is made again.
    let files = (0..10)
        .find_map(|_| {
            walk(t.data.path())
                .into_iter()
                .map(|entry| std::fs::read(&entry).map(|bytes| (entry, bytes)))
                .collect::<Result<Vec<_>, _>>()
                .inspect_err(|e| assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}"))
                .ok()
        })
        .expect("the data folder stops changing");
    for (entry, bytes) in files {
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(VISITOR_IP),
            "{} holds the raw IP",
            entry.display()
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path))
        } else {
            files.push(path)
        }
    }
    files
}

/// A shopper's browser follows a tracking link: an unknown or paused link is a small page,
/// never JSON; odd sub-ids (repeated, overlong, badly encoded, with control characters, in an
/// overlong query) are taken leniently, as ad platforms and mail clients produce them, and the
/// click is recorded.
#[tokio::test]
async fn shoppers_get_a_page_for_dead_links_and_odd_sub_ids_are_taken_leniently() {
    let t = TestApp::new().await;
    for dead in ["/c/ZZZZZZZZZZ", "/c/short", "/c/..%2F..%2Fx"] {
        let answer = t.get(dead).await;
        assert_eq!(answer.status(), 404, "{dead}");
        assert_eq!(answer.headers()["content-type"], "text/html; charset=utf-8");
        assert!(answer.headers().get("location").is_none());
    }
    let sub = |query: &str| {
        let t = &t;
        let query = query.to_string();
        async move {
            let answer = t.get(&format!("/c/{}?{query}", t.demo.link)).await;
            assert_eq!(answer.status(), 302, "{query}: {:?}", answer.body());
            t.app.table.flush().await.unwrap();
            let click = t
                .app
                .store
                .click(click_id_of(&answer))
                .await
                .unwrap()
                .expect("the click is recorded");
            (
                click.subs.get(0).map(str::to_string),
                click.subs.get(2).map(str::to_string),
            )
        }
    };
    assert_eq!(
        sub("sub1=a&sub1=b").await.0.as_deref(),
        Some("a"),
        "the first of a repeat"
    );
    assert_eq!(
        sub(&format!("sub1={}", "x".repeat(300)))
            .await
            .0
            .unwrap()
            .len(),
        255
    );
    assert_eq!(
        sub("sub3=%FF%FEok").await.1.as_deref(),
        Some("\u{FFFD}\u{FFFD}ok")
    );
    assert_eq!(sub("sub1=a%0D%0Ab").await.0.as_deref(), Some("ab"));
    // 60 KB: http::Uri holds at most 64 KB; over HTTP, 100 KB is refused earlier (e2e test).
    let huge = "x".repeat(60 * 1024);
    assert_eq!(
        sub(&format!("sub1=kept&sub2={huge}")).await.0.as_deref(),
        Some("kept")
    );
    assert_eq!(
        t.send("POST", &format!("/c/{}", t.demo.link), &[], Body::Empty)
            .await
            .status(),
        405
    );

    // A paused offer's link: the same page.
    let mut offer = t.app.store.offer(t.demo.offer_id).await.unwrap().unwrap();
    offer.status = shared::domain::offer::OfferStatus::Paused;
    t.app.store.save_offer(&offer).await.unwrap();
    let paused = t.get(&format!("/c/{}", t.demo.link)).await;
    assert_eq!(paused.status(), 404);
    assert!(String::from_utf8_lossy(paused.body().as_ref()).contains("not active"));
}

#[tokio::test]
async fn a_postback_records_one_conversion_and_a_balanced_commission() {
    let t = TestApp::new().await;
    let click = t.click().await;
    let uri = format!(
        "/postback?click_id={click}&txn_id=ORDER-1&amount=49.99&currency=USD&token={}",
        t.token()
    );
    let first = t.get(&uri).await;
    assert_eq!(first.status(), 201);
    let first = body_json(&first);
    assert_eq!(first["duplicate"], false);
    assert_eq!(first["conversion"]["sale"]["amount"], "49.99");
    assert_eq!(first["conversion"]["revenue"]["amount"], "25.00");
    assert_eq!(first["conversion"]["status"], "pending");
    assert!(
        first["conversion"].get("payout").is_none(),
        "advertisers do not see affiliate payouts"
    );

    let repeat = t.get(&uri).await;
    assert_eq!(repeat.status(), 200);
    let repeat = body_json(&repeat);
    assert_eq!(repeat["duplicate"], true);
    assert_eq!(
        repeat["conversion"], first["conversion"],
        "a repeat answers the original"
    );

    assert_eq!(t.conversions().await, 1);
    assert_eq!(t.balances().await, [2500, -1800, -700]);
}

#[tokio::test]
async fn concurrent_repeats_record_exactly_one_conversion() {
    let t = Arc::new(TestApp::new().await);
    let click = t.click().await;
    let uri = format!("/postback?click_id={click}&txn_id=RACE&token={}", t.token());
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (t, uri) = (t.clone(), uri.clone());
        tasks.spawn(async move { body_json(&t.get(&uri).await) });
    }
    let answers: Vec<Value> = tasks.join_all().await;
    assert_eq!(
        answers.iter().filter(|a| a["duplicate"] == false).count(),
        1
    );
    assert!(
        answers
            .iter()
            .all(|a| a["conversion"]["id"] == answers[0]["conversion"]["id"])
    );
    assert_eq!(t.conversions().await, 1);
    assert_eq!(t.balances().await, [2500, -1800, -700]);
}

#[tokio::test]
async fn without_txn_id_one_conversion_per_click_and_event() {
    let t = TestApp::new().await;
    let mut offer = t.app.store.offer(t.demo.offer_id).await.unwrap().unwrap();
    let lead = shared::domain::offer::EventCommission {
        revenue: Commission::Fixed(300),
        payout: Commission::Fixed(200),
    };
    offer.events.insert(
        shared::domain::tracking::EventName::parse("lead").unwrap(),
        lead,
    );
    t.app.store.save_offer(&offer).await.unwrap();
    let click = t.click().await;
    let base = format!("/postback?click_id={click}&token={}", t.token());
    assert_eq!(t.get(&base).await.status(), 201);
    assert_eq!(t.get(&base).await.status(), 200);
    assert_eq!(t.get(&format!("{base}&event=lead")).await.status(), 201);
    assert_eq!(t.get(&format!("{base}&txn_id=A")).await.status(), 201);
    assert_eq!(t.conversions().await, 3);
}

#[tokio::test]
async fn bad_postbacks_answer_4xx_naming_the_field_and_change_nothing() {
    let t = TestApp::new().await;
    let click = t.click().await;
    let token = t.token().to_string();
    let unknown_click = ClickId(t.clock.new_id());
    let huge = "9".repeat(60 * 1024);
    let cases: Vec<(String, u16, &str)> = vec![
        (format!("/postback?token={token}"), 400, "click_id"),
        (
            format!("/postback?click_id=&token={token}"),
            400,
            "click_id",
        ),
        (
            format!("/postback?click_id=not-a-click&token={token}"),
            400,
            "click_id",
        ),
        (
            format!(
                "/postback?click_id={}&token={token}",
                click.to_string().to_lowercase()
            ),
            400,
            "click_id",
        ),
        (
            format!("/postback?click_id={unknown_click}&token={token}"),
            404,
            "click_id",
        ),
        (format!("/postback?click_id={click}"), 401, "token"),
        (
            format!("/postback?click_id={click}&token=wrong"),
            401,
            "token",
        ),
        (
            format!("/postback?click_id={click}&token={token}x"),
            401,
            "token",
        ),
        (
            format!("/postback?click_id={click}&token={token}&amount=-5"),
            400,
            "amount",
        ),
        (
            format!("/postback?click_id={click}&token={token}&amount=abc"),
            400,
            "amount",
        ),
        (
            format!("/postback?click_id={click}&token={token}&amount=1e9"),
            400,
            "amount",
        ),
        (
            format!("/postback?click_id={click}&token={token}&amount=12.345"),
            400,
            "amount",
        ),
        (
            format!("/postback?click_id={click}&token={token}&amount=99999999999999999999.99"),
            400,
            "amount",
        ),
        (
            format!("/postback?click_id={click}&token={token}&amount=NaN"),
            400,
            "amount",
        ),
        (
            format!("/postback?click_id={click}&token={token}&amount=1&currency=XXX"),
            400,
            "currency",
        ),
        (
            format!("/postback?click_id={click}&token={token}&amount=1&currency=usd"),
            400,
            "currency",
        ),
        (
            format!("/postback?click_id={click}&token={token}&amount=1&currency=EUR"),
            422,
            "currency",
        ),
        (
            format!("/postback?click_id={click}&token={token}&event=Bad%20Event"),
            400,
            "event",
        ),
        (
            format!(
                "/postback?click_id={click}&token={token}&txn_id={}",
                "t".repeat(256)
            ),
            400,
            "txn_id",
        ),
        (
            format!("/postback?click_id={click}&token={token}&txn_id=%FF"),
            400,
            "txn_id",
        ),
        (
            format!("/postback?click_id={click}&token={token}&txn_id=a&txn_id=b"),
            400,
            "txn_id",
        ),
        (
            format!("/postback?click_id={click}&token={token}&amount={huge}"),
            414,
            "query",
        ),
        (
            format!("/postback?click_id={click}&token={token}&junk={huge}"),
            414,
            "query",
        ),
    ];
    for (uri, status, field) in cases {
        let response = t.get(&uri).await;
        assert_eq!(
            response.status(),
            status,
            "{}: {:?}",
            &uri[..uri.len().min(120)],
            response.body()
        );
        assert_error(&response, status, field);
    }

    let oversized = format!(
        "click_id={click}&token={token}&txn_id={}",
        "x".repeat(70 * 1024)
    );
    let response = t
        .send(
            "POST",
            "/postback",
            &[("content-type", "application/x-www-form-urlencoded")],
            Body::Text(oversized),
        )
        .await;
    assert_error(&response, 413, "body");
    let response = t
        .send(
            "POST",
            "/postback",
            &[("content-type", "application/json")],
            Body::Text("[1]".into()),
        )
        .await;
    assert_error(&response, 400, "body");
    let invalid_utf8 = Body::Binary(b"click_id=\xff\xfe".to_vec());
    let response = t
        .send(
            "POST",
            "/postback",
            &[("content-type", "application/x-www-form-urlencoded")],
            invalid_utf8,
        )
        .await;
    assert_eq!(response.status(), 400);

    assert_eq!(
        t.conversions().await,
        0,
        "no bad postback recorded anything"
    );
    assert_eq!(t.balances().await, [0, 0, 0]);
}

#[tokio::test]
async fn a_click_of_another_advertisers_offer_is_refused_with_this_token() {
    let t = TestApp::new().await;
    let demo_offer = t.app.store.offer(t.demo.offer_id).await.unwrap().unwrap();
    let other = Offer {
        id: OfferId(t.clock.new_id()),
        advertiser_id: AdvertiserId(t.clock.new_id()),
        name: "Other".into(),
        destination: Destination::parse("https://other.example/").unwrap(),
        postback_secret: new_postback_secret(),
        ..demo_offer
    };
    t.app.store.create_offer(&other).await.unwrap();
    let link = Link {
        code: LinkCode::random(),
        offer_id: other.id,
        affiliate_id: t.demo.affiliate_id,
        advertiser_id: other.advertiser_id,
        created_at: t.clock.now(),
        subs: Default::default(),
    };
    t.app.store.create_link(&link).await.unwrap();
    let response = t.get(&format!("/c/{}", link.code)).await;
    let location = response.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(location, "https://other.example/");
    let clicks_cookie = response.headers()["set-cookie"].to_str().unwrap();
    let foreign = clicks_cookie.split(['=', ';']).nth(1).unwrap();

    let response = t
        .get(&format!("/postback?click_id={foreign}&token={}", t.token()))
        .await;
    assert_error(&response, 401, "token");
    assert!(
        t.app
            .store
            .conversions_of_offer(other.advertiser_id, other.id)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn conversions_count_only_inside_the_attribution_window() {
    let t = TestApp::new().await;
    let click = t.click().await;
    t.clock
        .advance(SignedDuration::from_hours(30 * 24) - SignedDuration::from_secs(1));
    let inside = t
        .get(&format!(
            "/postback?click_id={click}&txn_id=in&token={}",
            t.token()
        ))
        .await;
    assert_eq!(inside.status(), 201);
    t.clock.advance(SignedDuration::from_secs(1));
    let outside = t
        .get(&format!(
            "/postback?click_id={click}&txn_id=out&token={}",
            t.token()
        ))
        .await;
    assert_error(&outside, 422, "click_id");
    assert_eq!(t.conversions().await, 1);
}

#[tokio::test]
async fn revenue_share_offers_need_the_sale_amount_and_round_half_even() {
    let t = TestApp::new().await;
    let mut offer = t.app.store.offer(t.demo.offer_id).await.unwrap().unwrap();
    offer.id = OfferId(t.clock.new_id());
    offer.revenue = Commission::Share(Bps::new(1000).unwrap());
    offer.payout = Commission::Share(Bps::new(500).unwrap());
    t.app.store.create_offer(&offer).await.unwrap();
    let link = Link {
        code: LinkCode::random(),
        offer_id: offer.id,
        ..t.app.store.link(&t.demo.link).await.unwrap().unwrap()
    };
    t.app.store.create_link(&link).await.unwrap();
    let response = t.get(&format!("/c/{}", link.code)).await;
    let click = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(['=', ';'])
        .nth(1)
        .unwrap()
        .to_string();
    let token = offer.postback_secret.expose();

    let missing = t
        .get(&format!("/postback?click_id={click}&token={token}"))
        .await;
    assert_error(&missing, 422, "amount");
    // 10% of 0.25 is 0.025: half-even rounds to 0.02.
    let response = t
        .get(&format!(
            "/postback?click_id={click}&token={token}&amount=0.25&txn_id=r"
        ))
        .await;
    assert_eq!(
        body_json(&response)["conversion"]["revenue"]["amount"],
        "0.02"
    );
}

#[tokio::test]
async fn signed_postbacks_are_verified_instead_of_a_token() {
    let t = TestApp::new().await;
    let click = t.click().await;
    let now = t.clock.now().as_second();
    let sign = |at: i64, payload: &str| {
        let mac = shared::tracking::sign(t.token().as_bytes(), at, payload.as_bytes());
        format!("t={at},v1={}", hex::encode(mac))
    };

    let query = format!("click_id={click}&txn_id=S1");
    let header = sign(now, &query);
    let ok = t
        .send(
            "GET",
            &format!("/postback?{query}"),
            &[("LeadsRefer-Signature", &header)],
            Body::Empty,
        )
        .await;
    assert_eq!(ok.status(), 201);

    let body = format!(r#"{{"click_id":"{click}","txn_id":"S2","amount":"10.00"}}"#);
    let header = sign(now, &body);
    let headers = [
        ("LeadsRefer-Signature", header.as_str()),
        ("content-type", "application/json"),
    ];
    let ok = t
        .send("POST", "/postback", &headers, Body::Text(body.clone()))
        .await;
    assert_eq!(ok.status(), 201);

    let tampered = body.replace("10.00", "99.00");
    assert_error(
        &t.send("POST", "/postback", &headers, Body::Text(tampered))
            .await,
        401,
        "signature",
    );
    // Built from its parts: a replace on the whole query could also hit the (random) click id.
    let stale_params = format!("click_id={click}&txn_id=S3");
    let stale = sign(now - 301, &stale_params);
    let stale_query = format!("/postback?{stale_params}");
    assert_error(
        &t.send(
            "GET",
            &stale_query,
            &[("LeadsRefer-Signature", &stale)],
            Body::Empty,
        )
        .await,
        401,
        "signature",
    );
    let garbage = [("LeadsRefer-Signature", "t=x,v1=zz")];
    assert_error(
        &t.send("GET", &stale_query, &garbage, Body::Empty).await,
        401,
        "signature",
    );
    assert_eq!(t.conversions().await, 2);
}

/// An offer of the demo advertiser with these caps, a link to it, and a click on it: answers
/// the click id and the offer's token.
async fn capped_offer(t: &TestApp, caps: shared::domain::offer::Caps) -> (String, String) {
    let mut offer = t.app.store.offer(t.demo.offer_id).await.unwrap().unwrap();
    offer.id = OfferId(t.clock.new_id());
    offer.caps = caps;
    t.app.store.create_offer(&offer).await.unwrap();
    let link = Link {
        code: LinkCode::random(),
        offer_id: offer.id,
        ..t.app.store.link(&t.demo.link).await.unwrap().unwrap()
    };
    t.app.store.create_link(&link).await.unwrap();
    let response = t.get(&format!("/c/{}", link.code)).await;
    let click = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(['=', ';'])
        .nth(1)
        .unwrap()
        .to_string();
    (click, offer.postback_secret.expose().clone())
}

/// Sends `n` postbacks at once, each with its own txn_id; answers their conversions.
async fn race(t: &Arc<TestApp>, click: &str, token: &str, n: usize) -> Vec<Value> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (t, uri) = (
            t.clone(),
            format!("/postback?click_id={click}&txn_id=race-{i}&token={token}"),
        );
        tasks.spawn(async move {
            let response = t.get(&uri).await;
            assert_eq!(response.status(), 201);
            body_json(&response)["conversion"].clone()
        });
    }
    tasks.join_all().await
}

#[tokio::test]
async fn a_daily_cap_is_never_passed_however_many_postbacks_race() {
    let t = Arc::new(TestApp::new().await);
    let caps = shared::domain::offer::Caps {
        daily: Some(3),
        monthly: None,
        budget: None,
    };
    let (click, token) = capped_offer(&t, caps).await;
    let conversions = race(&t, &click, &token, 20).await;
    let accepted = conversions
        .iter()
        .filter(|c| c["status"] == "pending")
        .count();
    let capped = conversions
        .iter()
        .filter(|c| c["status"] == "rejected" && c["reason"] == "cap")
        .count();
    assert_eq!((accepted, capped), (3, 17));
    // Only the accepted ones earn: 3 × 25.00 owed by the advertiser.
    assert_eq!(t.balances().await[0], 3 * 2500);

    // The next day the cap starts again.
    t.clock.advance(SignedDuration::from_hours(24));
    let next_day = t
        .get(&format!(
            "/postback?click_id={click}&txn_id=tomorrow&token={token}"
        ))
        .await;
    assert_eq!(body_json(&next_day)["conversion"]["status"], "pending");
}

#[tokio::test]
async fn a_budget_cap_never_overshoots() {
    let t = Arc::new(TestApp::new().await);
    // 60.00 of budget at 25.00 a conversion: two fit, a third would overshoot.
    let caps = shared::domain::offer::Caps {
        daily: None,
        monthly: Some(100),
        budget: Some(6000),
    };
    let (click, token) = capped_offer(&t, caps).await;
    let conversions = race(&t, &click, &token, 10).await;
    assert_eq!(
        conversions
            .iter()
            .filter(|c| c["status"] == "pending")
            .count(),
        2
    );
    assert_eq!(
        t.balances().await[0],
        5000,
        "spent 50.00 of 60.00, never more"
    );
    let repeat = t
        .get(&format!(
            "/postback?click_id={click}&txn_id=race-0&token={token}"
        ))
        .await;
    assert_eq!(
        repeat.status(),
        200,
        "a capped conversion is still idempotent"
    );
}

/// The pixel for the demo offer, with these cookies and query.
async fn pixel(t: &TestApp, cookie: Option<&str>, query: &str) -> (Response, String) {
    let headers: Vec<(&str, &str)> = cookie.map(|c| ("cookie", c)).into_iter().collect();
    let response = t
        .send(
            "GET",
            &format!("/px/{}?{query}", t.demo.offer_id),
            &headers,
            Body::Empty,
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/gif");
    assert_eq!(
        response.body().as_ref(),
        shared::routes::pixel::GIF,
        "always the 1×1 GIF"
    );
    let result = response.headers()["x-leadsrefer-result"]
        .to_str()
        .unwrap()
        .to_string();
    (response, result)
}

#[tokio::test]
async fn the_pixel_attributes_through_the_click_cookie_once() {
    let t = TestApp::new().await;
    let click = t.click().await;
    let cookie = format!("lr_{}={click}", t.demo.offer_id);
    assert_eq!(
        pixel(&t, Some(&cookie), "txn_id=P1&amount=10.00&currency=USD")
            .await
            .1,
        "recorded"
    );
    assert_eq!(
        pixel(&t, Some(&cookie), "txn_id=P1&amount=10.00&currency=USD")
            .await
            .1,
        "duplicate"
    );
    assert_eq!(t.conversions().await, 1);
    assert_eq!(t.balances().await, [2500, -1800, -700]);
}

#[tokio::test]
async fn the_pixel_without_a_usable_cookie_or_with_bad_input_records_nothing() {
    let t = TestApp::new().await;
    let click = t.click().await;
    let other_offer_cookie = format!("lr_{}={click}", OfferId(t.clock.new_id()));
    let cookie = format!("lr_{}={click}", t.demo.offer_id);
    // No cookie of this offer: a conversion without a click, kept for review.
    for (cookie, query) in [
        (None, "txn_id=P2"),
        (Some(other_offer_cookie.as_str()), "txn_id=P2"),
        (Some("lr_nonsense=1"), "txn_id=P2"),
    ] {
        assert_eq!(
            pixel(&t, cookie, query).await.1,
            "unattributed",
            "{cookie:?} {query}"
        );
    }
    // Bad input with a good cookie: nothing.
    for (cookie, query) in [
        (Some(cookie.as_str()), "txn_id=P2&amount=-1"),
        (Some(cookie.as_str()), "txn_id=P2&currency=XYZ"),
        (Some(cookie.as_str()), "txn_id=%FF"),
    ] {
        assert_eq!(
            pixel(&t, cookie, query).await.1,
            "ignored",
            "{cookie:?} {query}"
        );
    }
    assert_eq!(t.conversions().await, 0);
    let today = t.clock.now().strftime("%Y-%m-%d").to_string();
    let (flagged, _) = t.app.store.flagged(&today, None, 1000).await.unwrap();
    let no_click: Vec<_> = flagged.iter().filter(|f| f.flags == ["no_click"]).collect();
    assert_eq!(no_click.len(), 3, "{flagged:?}");
    assert!(
        no_click
            .iter()
            .all(|f| f.offer_id == t.demo.offer_id.to_string())
    );

    // A paused offer's pixel is not one to review.
    let mut offer = t.app.store.offer(t.demo.offer_id).await.unwrap().unwrap();
    offer.status = shared::domain::offer::OfferStatus::Paused;
    t.app.store.save_offer(&offer).await.unwrap();
    assert_eq!(pixel(&t, None, "txn_id=P3").await.1, "ignored");
}

#[tokio::test]
async fn each_event_of_an_offer_pays_its_own_commission_and_unknown_events_are_refused() {
    let t = TestApp::new().await;
    let mut offer = t.app.store.offer(t.demo.offer_id).await.unwrap().unwrap();
    let lead = shared::domain::tracking::EventName::parse("lead").unwrap();
    let commission = shared::domain::offer::EventCommission {
        revenue: Commission::Fixed(300),
        payout: Commission::Fixed(200),
    };
    offer.events.insert(lead, commission);
    t.app.store.save_offer(&offer).await.unwrap();
    let click = t.click().await;
    let token = t.token().to_string();
    let lead = t
        .get(&format!(
            "/postback?click_id={click}&event=lead&token={token}"
        ))
        .await;
    assert_eq!(body_json(&lead)["conversion"]["revenue"]["amount"], "3.00");
    let sale = t
        .get(&format!(
            "/postback?click_id={click}&txn_id=S&token={token}"
        ))
        .await;
    assert_eq!(body_json(&sale)["conversion"]["revenue"]["amount"], "25.00");
    assert_eq!(t.balances().await, [2800, -2000, -800]);
    let typo = t
        .get(&format!(
            "/postback?click_id={click}&event=laed&token={token}"
        ))
        .await;
    assert_error(&typo, 422, "event");
    assert_eq!(t.conversions().await, 2);
}

const PHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
const DESKTOP: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";

/// A click with these headers; answers the response and the click it recorded (the newest).
async fn click_with(
    t: &TestApp,
    method: &str,
    headers: &[(&str, &str)],
) -> (Response, shared::domain::tracking::Click) {
    let response = t
        .send(method, &format!("/c/{}", t.demo.link), headers, Body::Empty)
        .await;
    let id = response.headers().get("set-cookie").map(|c| {
        c.to_str()
            .unwrap()
            .split(['=', ';'])
            .nth(1)
            .unwrap()
            .to_string()
    });
    let click = match id {
        Some(id) => t
            .app
            .store
            .click(ClickId::parse(&id).unwrap())
            .await
            .unwrap()
            .unwrap(),
        None => panic!("no click cookie: {:?}", response.body()),
    };
    (response, click)
}

#[tokio::test]
async fn robots_and_head_requests_are_answered_and_kept_but_not_counted() {
    let t = TestApp::new().await;
    let (response, person) = click_with(&t, "GET", &[("user-agent", PHONE)]).await;
    assert_eq!(response.status(), 302);
    assert!(person.counts() && person.flags.is_empty());
    assert_eq!(
        person.device,
        Some(shared::domain::offer::DeviceType::Mobile)
    );
    assert_eq!(person.os.as_deref(), Some("iPhone"));
    for (method, agent, flag) in [
        (
            "GET",
            Some("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)"),
            "link_preview",
        ),
        (
            "GET",
            Some("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"),
            "bot",
        ),
        ("GET", None, "no_user_agent"),
        ("HEAD", Some(DESKTOP), "head_request"),
    ] {
        let headers: Vec<(&str, &str)> = agent.map(|a| ("user-agent", a)).into_iter().collect();
        let (response, click) = click_with(&t, method, &headers).await;
        assert_eq!(response.status(), 302, "{flag}: still answered");
        assert!(
            click.flags.contains(&flag.to_string()),
            "{flag}: {:?}",
            click.flags
        );
        assert!(!click.counts(), "{flag}: not counted");
    }
}

#[tokio::test]
async fn a_visitors_repeat_clicks_within_the_window_are_not_unique() {
    let t = TestApp::new().await;
    let (_, first) = click_with(&t, "GET", &[("user-agent", PHONE)]).await;
    let (_, again) = click_with(&t, "GET", &[("user-agent", PHONE)]).await;
    assert!(first.unique && !again.unique);
    t.clock.advance(SignedDuration::from_hours(24));
    let (_, next_day) = click_with(&t, "GET", &[("user-agent", PHONE)]).await;
    assert!(next_day.unique, "the window is over");
}

#[tokio::test]
async fn excluded_countries_and_devices_go_to_the_fallback_or_a_neutral_page() {
    let t = TestApp::new().await;
    let mut offer = t.app.store.offer(t.demo.offer_id).await.unwrap().unwrap();
    offer.allowed_countries = vec!["US".into()];
    offer.allowed_devices = vec![shared::domain::offer::DeviceType::Mobile];
    t.app.store.save_offer(&offer).await.unwrap();

    let (allowed, click) = click_with(
        &t,
        "GET",
        &[("user-agent", PHONE), ("cloudfront-viewer-country", "US")],
    )
    .await;
    assert!(
        allowed.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("https://shop.example.com/")
    );
    assert!(click.flags.is_empty());

    let response = t
        .send(
            "GET",
            &format!("/c/{}", t.demo.link),
            &[("user-agent", PHONE), ("cloudfront-viewer-country", "FR")],
            Body::Empty,
        )
        .await;
    assert_eq!(response.status(), 200, "a neutral page, no redirect");
    assert!(response.headers().get("location").is_none());
    assert!(String::from_utf8_lossy(response.body().as_ref()).contains("not available"));

    offer.fallback_url =
        Some(Destination::parse("https://fallback.example.com/?c={click_id}").unwrap());
    t.app.store.save_offer(&offer).await.unwrap();
    let (fallback, desktop) = click_with(
        &t,
        "GET",
        &[("user-agent", DESKTOP), ("cloudfront-viewer-country", "US")],
    )
    .await;
    assert!(
        fallback.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with(&format!("https://fallback.example.com/?c={}", desktop.id))
    );
    assert_eq!(desktop.flags, vec!["device_excluded".to_string()]);
}

#[tokio::test]
async fn suspect_conversions_are_flagged() {
    let t = TestApp::new().await;
    let mut offer = t.app.store.offer(t.demo.offer_id).await.unwrap().unwrap();
    offer.min_conversion_seconds = 30;
    t.app.store.save_offer(&offer).await.unwrap();
    let (_, robot) = click_with(&t, "GET", &[("user-agent", "curl/8.5.0")]).await;
    let fast = t
        .get(&format!(
            "/postback?click_id={}&txn_id=F&token={}",
            robot.id,
            t.token()
        ))
        .await;
    let flags = body_json(&fast)["conversion"]["flags"].clone();
    assert_eq!(flags, serde_json::json!(["robot_click", "too_fast"]));

    let (_, person) = click_with(&t, "GET", &[("user-agent", PHONE)]).await;
    t.clock.advance(SignedDuration::from_secs(31));
    let fine = t
        .get(&format!(
            "/postback?click_id={}&txn_id=G&token={}",
            person.id,
            t.token()
        ))
        .await;
    assert_eq!(
        body_json(&fine)["conversion"]["flags"],
        serde_json::json!([])
    );

    // Both suspects are in the day's review index, with their reasons; the others are not.
    let day = jiff::tz::Offset::UTC
        .to_datetime(t.clock.now())
        .date()
        .to_string();
    let (flagged, _) = t.app.store.flagged(&day, None, 1000).await.unwrap();
    let kinds: Vec<(String, Vec<String>)> = flagged
        .iter()
        .map(|f| (f.kind.clone(), f.flags.clone()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("click".to_string(), vec!["bot".to_string()]),
            (
                "conversion".to_string(),
                vec!["robot_click".to_string(), "too_fast".to_string()]
            ),
        ]
    );
}

fn fixture_geo() -> shared::geo::Geo {
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/geo");
    shared::geo::Geo::open_folder(&folder).unwrap()
}

async fn click_from(
    t: &TestApp,
    ip: &str,
    country: Option<&str>,
) -> shared::domain::tracking::Click {
    let request = shared::tracking::ClickRequest {
        subs: Default::default(),
        ip: ip.parse().unwrap(),
        country: country.map(str::to_string),
        region: country.map(|_| "BY".to_string()),
        user_agent: Some(DESKTOP),
        head: false,
    };
    shared::tracking::record_click(&t.app, &t.demo.link, request)
        .await
        .unwrap()
        .click
}

#[tokio::test]
async fn the_country_comes_from_cloudfront_else_the_ip_database_and_datacenters_are_flagged() {
    let mut t = TestApp::new().await;
    t.app = t.app.clone().with_geo(fixture_geo());
    let from_isp = click_from(&t, "203.0.113.5", None).await;
    assert_eq!(
        from_isp.visitor.country.as_deref(),
        Some("US"),
        "from the database"
    );
    assert!(from_isp.flags.is_empty() && from_isp.counts());
    let edge = click_from(&t, "203.0.113.6", Some("DE")).await;
    assert_eq!(
        edge.visitor.country.as_deref(),
        Some("DE"),
        "CloudFront's header wins"
    );
    assert_eq!(edge.region.as_deref(), Some("BY"));
    let cloud = click_from(&t, "198.51.100.7", None).await;
    assert_eq!(cloud.visitor.country.as_deref(), Some("DE"));
    assert_eq!(cloud.flags, vec!["datacenter".to_string()]);
    assert!(
        cloud.counts(),
        "flagged, still a click: VPN users are people"
    );
    let nowhere = click_from(&t, "192.0.2.9", None).await;
    assert_eq!(nowhere.visitor.country, None, "unknown, not guessed");

    // A conversion of a datacenter click is held for review with the reason.
    let response = t
        .get(&format!(
            "/postback?click_id={}&txn_id=DC1&token={}",
            cloud.id,
            t.token()
        ))
        .await;
    assert_eq!(response.status(), 201);
    let conversion = &body_json(&response);
    assert_eq!(conversion["conversion"]["status"], "pending");
    let flagged = t
        .app
        .store
        .flagged(
            &t.app.clock.now().strftime("%Y-%m-%d").to_string(),
            None,
            1000,
        )
        .await
        .unwrap()
        .0;
    assert!(
        flagged
            .iter()
            .any(|f| f.kind == "conversion" && f.flags == vec!["datacenter_click".to_string()]),
        "{flagged:?}"
    );
}

#[tokio::test]
async fn a_click_flood_from_one_visitor_is_kept_flagged_and_not_counted() {
    // (On the review list once a minute: the click that began it.)
    let t = TestApp::new().await;
    let limit = shared::tracking::FLOOD_CLICKS_PER_MINUTE as usize;
    let mut clicks = Vec::new();
    for _ in 0..limit + 5 {
        clicks.push(click_from(&t, "203.0.113.50", None).await);
    }
    assert!(
        clicks[..limit].iter().all(|c| c.counts()),
        "up to the limit: clicks"
    );
    assert!(
        clicks[limit..]
            .iter()
            .all(|c| !c.counts() && c.flags.contains(&"click_flood".to_string())),
        "past it: a flood"
    );
    let other = click_from(&t, "203.0.113.51", None).await;
    assert!(other.counts(), "another visitor is not part of it");
    let listed = |t: &TestApp| {
        let day = t.app.clock.now().strftime("%Y-%m-%d").to_string();
        let store = t.app.store.clone();
        async move {
            let (flagged, _) = store.flagged(&day, None, 1000).await.unwrap();
            flagged
                .into_iter()
                .filter(|f| f.flags.contains(&"click_flood".to_string()))
                .map(|f| f.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        listed(&t).await,
        vec![clicks[limit].id.to_string()],
        "the flood is listed once, with the click that began it"
    );
    t.clock.advance(SignedDuration::from_secs(60));
    let later = click_from(&t, "203.0.113.50", None).await;
    assert!(later.counts(), "a minute later the visitor clicks again");
    let mut again = Vec::new();
    for _ in 0..limit + 3 {
        again.push(click_from(&t, "203.0.113.50", None).await);
    }
    let listed = listed(&t).await;
    assert_eq!(
        listed.len(),
        2,
        "a flood in another minute is listed again: {listed:?}"
    );
    assert!(
        listed.contains(&again[limit - 1].id.to_string()),
        "{listed:?}"
    );
}

/// Storage that reads, but refuses every write deferred to it (a click's).
struct ClicksRefused(Arc<dyn Table>);

#[async_trait::async_trait]
impl Table for ClicksRefused {
    async fn get(&self, key: &Key) -> Result<Option<Item>, TableError> {
        self.0.get(key).await
    }
    async fn put(&self, item: Item, cond: Cond) -> Result<(), TableError> {
        self.0.put(item, cond).await
    }
    async fn update(&self, key: &Key, update: Update, cond: Cond) -> Result<Item, TableError> {
        self.0.update(key, update, cond).await
    }
    async fn delete(&self, key: &Key, cond: Cond) -> Result<Option<Item>, TableError> {
        self.0.delete(key, cond).await
    }
    async fn query(&self, query: Query) -> Result<Page, TableError> {
        self.0.query(query).await
    }
    async fn transact(&self, writes: Vec<Write>) -> Result<(), TableError> {
        self.0.transact(writes).await
    }
    async fn transact_deferred(&self, _writes: Vec<Write>) -> Result<(), TableError> {
        Err(TableError::backend(std::io::Error::other(
            "the disk is full",
        )))
    }
}

/// Storage failing under a click: the shopper gets a page that tries the link again by
/// itself, not a 5xx or JSON (DESIGN.md); once storage is back, the same link redirects.
#[tokio::test]
async fn a_click_storage_refuses_is_a_page_that_tries_again() {
    let mut t = TestApp::new().await;
    let working = t.app.store.clone();
    t.app.store = shared::store::Store::new(Arc::new(ClicksRefused(t.app.table.clone())));
    let answer = t.get(&format!("/c/{}", t.demo.link)).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-type"], "text/html; charset=utf-8");
    assert!(answer.headers().get("location").is_none());
    let page = String::from_utf8_lossy(answer.body().as_ref()).into_owned();
    assert!(page.contains("http-equiv=\"refresh\""), "{page}");
    t.app.store = working;
    assert_eq!(t.get(&format!("/c/{}", t.demo.link)).await.status(), 302);
}
