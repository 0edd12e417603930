//! The dashboard API, driven through `routes::respond` as Lambda and the local runner drive it.
//! One test binary: the authorization matrix, sessions and sign-in security, and bad input.

mod matrix;
mod security;
mod validation;

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt};
use serde_json::{Value, json};
use shared::App;
use shared::accounts::token_hash;
use shared::domain::accounts::{Account, AccountId, AccountStatus, Role};
use shared::domain::email::EmailAddress;
use shared::domain::ids::{AdvertiserId, AffiliateId, ClickId, LinkCode, OfferId};
use shared::domain::money::Currency;
use shared::domain::offer::{Commission, Destination, Offer, OfferStatus};
use shared::domain::tracking::{Click, Link, Subs, tracking_expiry};
use shared::http::Response;
use shared::ports::{Clock, ManualClock};
use shared::routes::respond;
use shared::seed::new_postback_secret;
use shared::store::{ApiKeyRecord, Application, ApplicationStatus};

/// Who calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    Anonymous,
    Admin,
    /// Advertiser X, who owns the world's offers.
    Advertiser,
    /// Advertiser Y, another tenant.
    OtherAdvertiser,
    /// Affiliate P, approved for X's offer, with a link and a conversion.
    Affiliate,
    /// Affiliate Q, another tenant.
    OtherAffiliate,
}

pub const EVERYONE: [Who; 6] = [
    Who::Anonymous,
    Who::Admin,
    Who::Advertiser,
    Who::OtherAdvertiser,
    Who::Affiliate,
    Who::OtherAffiliate,
];

/// A platform with two advertisers, two affiliates, an admin, offers, an approved application,
/// a link, a click and a conversion; every account holds an API key.
pub struct World {
    pub app: App,
    pub clock: Arc<ManualClock>,
    pub accounts: Vec<(Who, Account, String)>,
    /// X's offer P is approved for.
    pub offer: OfferId,
    /// X's second offer, nobody applied yet.
    pub fresh_offer: OfferId,
    /// Y's offer.
    pub other_offer: OfferId,
    pub link: LinkCode,
    pub conversion: String,
    /// A postback to P that was given up on.
    pub dead_letter: String,
    pub data: tempfile::TempDir,
}

pub fn email(text: &str) -> EmailAddress {
    EmailAddress::parse(text).unwrap()
}

impl World {
    pub async fn new() -> Self {
        let data = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::at(
            Timestamp::from_second(1_790_000_000).unwrap(),
        ));
        let app = App::embedded(
            data.path(),
            clock.clone(),
            email("no-reply@leadsrefer.test"),
        )
        .unwrap();
        let mut accounts = Vec::new();
        for (who, role) in [
            (Who::Admin, Role::Admin),
            (Who::Advertiser, Role::Advertiser),
            (Who::OtherAdvertiser, Role::Advertiser),
            (Who::Affiliate, Role::Affiliate),
            (Who::OtherAffiliate, Role::Affiliate),
        ] {
            let account = Account {
                id: AccountId(clock.new_id()),
                role,
                email: email(&format!("{who:?}@world.test").to_lowercase()),
                name: format!("{who:?}"),
                password_hash: shared::secret::Secret::new(password_hash().await),
                status: AccountStatus::Active,
                email_verified: true,
                adult_confirmed_at: clock.now(),
                created_at: clock.now(),
            };
            app.store.create_account(&account).await.unwrap();
            let key = format!("lr_world-{who:?}-key");
            let record = ApiKeyRecord {
                id: clock.new_id().to_string(),
                account_id: account.id,
                name: "world".into(),
                last4: key[key.len() - 4..].into(),
                created_at: clock.now(),
            };
            app.store
                .create_api_key(&token_hash(&key), &record)
                .await
                .unwrap();
            accounts.push((who, account, key));
        }
        let mut world = Self {
            app,
            clock,
            accounts,
            offer: OfferId(ulid::Ulid::nil()),
            fresh_offer: OfferId(ulid::Ulid::nil()),
            other_offer: OfferId(ulid::Ulid::nil()),
            link: LinkCode::random(),
            conversion: String::new(),
            dead_letter: String::new(),
            data,
        };
        let x = world.advertiser_id(Who::Advertiser);
        let y = world.advertiser_id(Who::OtherAdvertiser);
        world.offer = world.make_offer(x).await;
        world.fresh_offer = world.make_offer(x).await;
        world.other_offer = world.make_offer(y).await;
        let p = world.affiliate_id(Who::Affiliate);
        let q = world.affiliate_id(Who::OtherAffiliate);
        world.approve(world.offer, x, p).await;
        world.approve(world.other_offer, y, q).await;
        let now = world.clock.now();
        let link = Link {
            code: world.link.clone(),
            offer_id: world.offer,
            affiliate_id: p,
            advertiser_id: x,
            created_at: now,
            subs: Subs::default(),
        };
        world.app.store.create_link(&link).await.unwrap();
        let click = Click {
            id: ClickId(world.clock.new_id()),
            link: link.code.clone(),
            offer_id: world.offer,
            affiliate_id: p,
            advertiser_id: x,
            at: now,
            subs: Subs::default(),
            visitor: world
                .app
                .pseudonymizer
                .visitor("203.0.113.9".parse().unwrap(), None),
            region: None,
            device: None,
            os: None,
            browser: None,
            flags: vec![],
            unique: true,
            expires_at: tracking_expiry(now),
        };
        let offer = world.app.store.offer(world.offer).await.unwrap().unwrap();
        world
            .app
            .store
            .create_click(&click, offer.currency, !click.flags.is_empty())
            .await
            .unwrap();
        let answer = world
            .send(
                Who::Anonymous,
                "GET",
                &format!(
                    "/postback?click_id={}&txn_id=W1&token={}",
                    click.id,
                    offer.postback_secret.expose()
                ),
                None,
            )
            .await;
        assert_eq!(answer.status(), 201);
        world.conversion = body(&answer)["conversion"]["id"]
            .as_str()
            .unwrap()
            .to_string();
        world.dead_letter = format!("{}:pending", world.conversion);
        let letter = shared::dispatch::Delivery {
            id: world.dead_letter.clone(),
            affiliate_id: p,
            conversion_id: shared::domain::ids::ConversionId::parse(&world.conversion),
            url: "https://publisher.world.test/pb".into(),
            job: None,
            attempts: shared::dispatch::MAX_ATTEMPTS,
            created_at: now,
            due_at: now,
            last_error: Some("answered HTTP 500".into()),
            lease_until: None,
        };
        let key = shared::ports::Key::new("DEADLETTER", world.dead_letter.clone());
        let item = shared::ports::table::to_item(&letter, &key).unwrap();
        world
            .app
            .table
            .put(item, shared::ports::Cond::NotExists)
            .await
            .unwrap();
        world
    }

    async fn make_offer(&self, advertiser: AdvertiserId) -> OfferId {
        let offer = Offer {
            id: OfferId(self.clock.new_id()),
            advertiser_id: advertiser,
            name: "World offer".into(),
            destination: Destination::parse("https://shop.world.test/?c={click_id}").unwrap(),
            currency: Currency::parse("USD").unwrap(),
            revenue: Commission::Fixed(1000),
            payout: Commission::Fixed(600),
            attribution_window: SignedDuration::from_hours(24 * 30),
            postback_secret: new_postback_secret(),
            status: OfferStatus::Active,
            created_at: self.clock.now(),
            payout_overrides: Default::default(),
            caps: Default::default(),
            allowed_countries: vec![],
            allowed_devices: vec![],
            hold_days: 0,
            review_days: 0,
            approval: Default::default(),
            events: Default::default(),
            fallback_url: None,
            unique_window_hours: Offer::DEFAULT_UNIQUE_WINDOW_HOURS,
            min_conversion_seconds: 0,
        };
        self.app.store.create_offer(&offer).await.unwrap();
        offer.id
    }

    async fn approve(&self, offer: OfferId, advertiser: AdvertiserId, affiliate: AffiliateId) {
        let application = Application {
            offer_id: offer,
            affiliate_id: affiliate,
            advertiser_id: advertiser,
            status: ApplicationStatus::Approved,
            postback_url: None,
            created_at: self.clock.now(),
            decided_at: Some(self.clock.now()),
        };
        self.app
            .store
            .create_application(&application)
            .await
            .unwrap();
    }

    /// Every mail sent so far, oldest first, as the outbox's readable copy shows it (headers
    /// `To` and `Subject`, then the text, links whole).
    pub fn mail(&self) -> Vec<String> {
        let outbox = self.data.path().join("outbox");
        let mut files: Vec<_> = std::fs::read_dir(outbox)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.retain(|p| p.extension().is_some_and(|e| e == "txt"));
        files.sort();
        files
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    }

    pub fn account(&self, who: Who) -> &Account {
        &self.accounts.iter().find(|(w, ..)| *w == who).unwrap().1
    }

    pub fn key(&self, who: Who) -> Option<&str> {
        self.accounts
            .iter()
            .find(|(w, ..)| *w == who)
            .map(|(.., key)| key.as_str())
    }

    pub fn advertiser_id(&self, who: Who) -> AdvertiserId {
        self.account(who).advertiser_id().unwrap()
    }

    pub fn affiliate_id(&self, who: Who) -> AffiliateId {
        self.account(who).affiliate_id().unwrap()
    }

    /// A request as `who`, authenticated by their API key.
    pub async fn send(&self, who: Who, method: &str, uri: &str, json: Option<Value>) -> Response {
        let mut headers = Vec::new();
        if let Some(key) = self.key(who) {
            headers.push(("authorization".to_string(), format!("Bearer {key}")));
        }
        self.raw(method, uri, &headers, json.map(|j| j.to_string()))
            .await
    }

    pub async fn raw(
        &self,
        method: &str,
        uri: &str,
        headers: &[(String, String)],
        body: Option<String>,
    ) -> Response {
        let mut builder = lambda_http::http::Request::builder()
            .method(method)
            .uri(uri);
        for (name, value) in headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if body.is_some()
            && !headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        {
            builder = builder.header("content-type", "application/json");
        }
        let mut context = ApiGatewayV2httpRequestContext::default();
        context.http.source_ip = Some("198.51.100.23".into());
        let request = builder
            .body(body.map_or(Body::Empty, Body::Text))
            .unwrap()
            .with_request_context(RequestContext::ApiGatewayV2(context));
        respond(self.app.clone(), request, None).await
    }
}

pub const PASSWORD: &str = "correct horse battery staple";

/// argon2id of [`PASSWORD`], computed once for every world (it costs tens of milliseconds).
async fn password_hash() -> String {
    static HASH: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    HASH.get_or_init(|| async {
        shared::accounts::hash_password(&shared::secret::Secret::new(PASSWORD.into()))
            .await
            .unwrap()
    })
    .await
    .clone()
}

pub fn body(response: &Response) -> Value {
    serde_json::from_slice(response.body().as_ref()).unwrap_or(Value::Null)
}

/// The `field` of an error answer.
pub fn field(response: &Response) -> String {
    body(response)["error"]["field"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

pub fn offer_body(currency: &str) -> Value {
    json!({
        "name": "Spring sale",
        "destination": "https://shop.example.com/spring?c={click_id}&s={sub1}",
        "currency": currency,
        "revenue": { "fixed": "30.00" },
        "payout": { "share_bps": 1000 },
        "caps": { "daily": 50, "budget": "10000.00" },
        "allowed_countries": ["US", "CA"],
        "allowed_devices": ["mobile"],
        "attribution_window_days": 14,
        "hold_days": 7,
        "approval": "manual",
        "events": { "lead": { "revenue": { "fixed": "2.00" }, "payout": { "fixed": "1.50" } } }
    })
}

/// The review list goes a page at a time: a day with more than a page of flagged items is read
/// whole by following `next_cursor`, every item once.
#[tokio::test]
async fn the_review_list_goes_a_page_at_a_time() {
    let world = World::new().await;
    let now = world.clock.now();
    for n in 0..250 {
        let flagged = shared::store::Flagged {
            kind: "click".into(),
            id: format!("{n:04}"),
            at: now,
            offer_id: "offer".into(),
            affiliate_id: "affiliate".into(),
            flags: vec!["robot".into()],
        };
        world
            .app
            .store
            .flag(&flagged, now.as_second() + 3600)
            .await
            .unwrap();
    }
    let day = now.strftime("%Y-%m-%d").to_string();
    let (mut seen, mut pages, mut cursor) = (Vec::new(), 0, None::<String>);
    loop {
        let uri = match &cursor {
            None => format!("/api/admin/flagged?day={day}"),
            Some(c) => format!("/api/admin/flagged?day={day}&cursor={c}"),
        };
        let answer = world.send(Who::Admin, "GET", &uri, None).await;
        assert_eq!(answer.status(), 200, "{:?}", body(&answer));
        let page = body(&answer);
        pages += 1;
        seen.extend(
            page["flagged"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["id"].clone()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 2);
    let expected: Vec<Value> = (0..250).map(|n| json!(format!("{n:04}"))).collect();
    assert_eq!(seen, expected);
}

/// An admin's report without a party is the whole network's: every advertiser's traffic,
/// by any dimension (the advertiser too), with the margin the network keeps and EPC on every
/// row; an advertiser sees what a visit cost them, and no margin.
#[tokio::test]
async fn an_admin_reports_on_the_whole_network() {
    let world = World::new().await;
    // Y's traffic beside X's: Q's link on Y's offer, a person's click, a sale.
    let y = world.advertiser_id(Who::OtherAdvertiser);
    let q = world.affiliate_id(Who::OtherAffiliate);
    let code = LinkCode::random();
    let link = Link {
        code: code.clone(),
        offer_id: world.other_offer,
        affiliate_id: q,
        advertiser_id: y,
        created_at: world.clock.now(),
        subs: Subs::default(),
    };
    world.app.store.create_link(&link).await.unwrap();
    let browser = [(
        "user-agent".to_string(),
        "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0".to_string(),
    )];
    let click = world
        .raw("GET", &format!("/c/{code}?sub2=ext-1"), &browser, None)
        .await;
    assert_eq!(click.status(), 302);
    let location = click.headers()["location"].to_str().unwrap().to_string();
    let click_id = location
        .split("c=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let offer = world
        .app
        .store
        .offer(world.other_offer)
        .await
        .unwrap()
        .unwrap();
    let postback = format!(
        "/postback?click_id={click_id}&txn_id=Y1&token={}",
        offer.postback_secret.expose()
    );
    assert_eq!(
        world
            .send(Who::Anonymous, "GET", &postback, None)
            .await
            .status(),
        201
    );
    world.app.table.flush().await.unwrap();

    let report = |who: Who, query: &'static str| {
        let world = &world;
        async move {
            let answer = world
                .send(who, "GET", &format!("/api/reports?{query}"), None)
                .await;
            assert_eq!(answer.status(), 200, "{query}: {:?}", answer.body());
            body(&answer)
        }
    };
    let network = report(Who::Admin, "group_by=advertiser").await;
    let rows = network["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{network}");
    for row in rows {
        // Each advertiser: one click, one sale of 10.00 revenue and 6.00 payout.
        assert_eq!(row["clicks"], 1, "{row}");
        assert_eq!(row["conversions"], 1, "{row}");
        assert_eq!(row["margin"], "4.00", "{row}");
        assert_eq!(row["epc"], "6.0000", "{row}");
    }
    let advertisers: Vec<&str> = rows
        .iter()
        .map(|r| r["advertiser_id"].as_str().unwrap())
        .collect();
    assert!(
        advertisers.contains(&y.to_string().as_str()),
        "{advertisers:?}"
    );
    let total = &network["totals"][0];
    assert_eq!(
        (
            &total["clicks"],
            &total["revenue"],
            &total["payout"],
            &total["margin"]
        ),
        (&json!(2), &json!("20.00"), &json!("12.00"), &json!("8.00"))
    );
    // Every dimension, sub-ids too, across advertisers.
    let by_sub = report(Who::Admin, "group_by=affiliate,sub2").await;
    assert!(
        by_sub["rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["sub2"] == "ext-1" && r["affiliate_id"] == q.to_string()),
        "{by_sub}"
    );
    // One party still narrows it.
    let y_only = report(Who::Admin, "group_by=offer&advertiser_id=").await;
    assert_eq!(
        y_only["totals"][0]["clicks"], 2,
        "an empty id names nobody: {y_only}"
    );
    let x = world.advertiser_id(Who::Advertiser);
    let x_only = world
        .send(
            Who::Admin,
            "GET",
            &format!("/api/reports?group_by=offer&advertiser_id={x}"),
            None,
        )
        .await;
    assert_eq!(body(&x_only)["totals"][0]["clicks"], 1);
    // The advertiser: revenue per visit as EPC, no payout, no margin.
    let mine = report(Who::OtherAdvertiser, "group_by=day").await;
    let total = &mine["totals"][0];
    assert_eq!(total["epc"], "10.0000", "{mine}");
    assert!(total.get("payout").is_none() && total.get("margin").is_none());
}

/// "Send a test conversion" walks a click and a postback with the offer's token, and keeps
/// both out of money and reports: the report, the affiliate's balance and the caps are as
/// before, and the conversion can never be approved. A postback the advertiser's own server
/// sends for the test click is a test too.
#[tokio::test]
async fn a_test_conversion_is_kept_out_of_money_and_reports() {
    let world = World::new().await;
    let path = format!("/api/offers/{}/test-conversions", world.offer);
    let report = "/api/reports?group_by=offer";
    let before = body(&world.send(Who::Advertiser, "GET", report, None).await);
    let balance = body(
        &world
            .send(Who::Affiliate, "GET", "/api/payouts/balance", None)
            .await,
    );

    let answer = world
        .send(Who::Advertiser, "POST", &path, Some(json!({})))
        .await;
    assert_eq!(answer.status(), 201, "{:?}", answer.body());
    let test = body(&answer);
    assert_eq!(test["status"], "test", "{test}");
    assert_eq!(test["revenue"], "10.00", "what it would have cost: {test}");
    assert!(
        test.get("payout").is_none(),
        "the advertiser's side only: {test}"
    );
    let click = test["click_id"].as_str().unwrap().to_string();
    // The advertiser's own server posts back for the test click: a test as well.
    let offer = world.app.store.offer(world.offer).await.unwrap().unwrap();
    let own = world
        .send(
            Who::Anonymous,
            "GET",
            &format!(
                "/postback?click_id={click}&txn_id=OWN-1&amount=5.00&token={}",
                offer.postback_secret.expose()
            ),
            None,
        )
        .await;
    assert_eq!(own.status(), 201);
    assert_eq!(body(&own)["conversion"]["status"], "test");
    world.app.table.flush().await.unwrap();

    let after = body(&world.send(Who::Advertiser, "GET", report, None).await);
    assert_eq!(after["totals"], before["totals"], "reports are as before");
    let balance_after = body(
        &world
            .send(Who::Affiliate, "GET", "/api/payouts/balance", None)
            .await,
    );
    assert_eq!(balance_after, balance, "no money moved");
    let listed = body(
        &world
            .send(Who::Advertiser, "GET", "/api/conversions", None)
            .await,
    );
    let statuses: Vec<&str> = listed["conversions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == "test").count(),
        2,
        "{statuses:?}"
    );
    // Never approved, by anyone.
    let decide = world
        .send(
            Who::Admin,
            "PUT",
            &format!("/api/conversions/{}/status", test["id"].as_str().unwrap()),
            Some(json!({"status": "approved"})),
        )
        .await;
    assert_eq!(decide.status(), 409, "{:?}", decide.body());

    // An affiliate named: their link; an offer nobody links to: refused, naming the field.
    let p = world.affiliate_id(Who::Affiliate);
    let named = world
        .send(
            Who::Admin,
            "POST",
            &path,
            Some(json!({"affiliate_id": p.to_string(), "event": "conversion", "amount": "20.00"})),
        )
        .await;
    assert_eq!(named.status(), 201);
    assert!(body(&named)["payout"].is_string(), "admins see both sides");
    let nobody = world
        .send(
            Who::Advertiser,
            "POST",
            &format!("/api/offers/{}/test-conversions", world.fresh_offer),
            None,
        )
        .await;
    assert_eq!(nobody.status(), 422);
    assert_eq!(field(&nobody), "affiliate_id");
    let unknown = world
        .send(
            Who::Advertiser,
            "POST",
            &path,
            Some(json!({"affiliate": "x"})),
        )
        .await;
    assert_eq!(unknown.status(), 400);
    // Another advertiser's offer is not there for them.
    let theirs = world.send(Who::OtherAdvertiser, "POST", &path, None).await;
    assert_eq!(theirs.status(), 404);
}
