//! `events/<function>.json` — the samples for `cargo lambda invoke` and `sam local invoke` —
//! go through lambda_http's own event parser and their route's handler, so the samples, the
//! route table and the handlers cannot drift apart.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use shared::App;
use shared::accounts::token_hash;
use shared::domain::accounts::{Account, AccountId, AccountStatus, Role};
use shared::domain::email::EmailAddress;
use shared::domain::ids::{AdvertiserId, AffiliateId, ClickId, LinkCode, OfferId};
use shared::domain::money::Currency;
use shared::domain::offer::{Commission, Destination, Offer, OfferStatus};
use shared::domain::tracking::{Click, Link, Subs, tracking_expiry};
use shared::ports::{Clock, ManualClock};
use shared::routes::{ROUTES, respond};
use shared::secret::Secret;
use shared::store::ApiKeyRecord;

/// The records the sample events refer to.
async fn fixtures(app: &App, clock: &ManualClock) {
    let offer = Offer {
        // Fixed: the pixel's sample event carries this offer's cookie.
        id: OfferId::parse("01KB4ZH8QW6B7XG9Y3T5R2M1N0").unwrap(),
        advertiser_id: AdvertiserId(clock.new_id()),
        name: "Sample".into(),
        destination: Destination::parse("https://shop.example.com/?c={click_id}").unwrap(),
        currency: Currency::parse("USD").unwrap(),
        revenue: Commission::Fixed(2500),
        payout: Commission::Fixed(1800),
        attribution_window: SignedDuration::from_hours(24),
        postback_secret: Secret::new("event-sample-postback-secret".into()),
        status: OfferStatus::Active,
        created_at: clock.now(),
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
    app.store.create_offer(&offer).await.unwrap();
    let link = Link {
        code: LinkCode::parse("EventLnk01").unwrap(),
        offer_id: offer.id,
        affiliate_id: AffiliateId(clock.new_id()),
        advertiser_id: offer.advertiser_id,
        created_at: clock.now(),
        subs: Subs::default(),
    };
    app.store.create_link(&link).await.unwrap();
    // One account per role, each with the API key its sample events send.
    for role in [Role::Admin, Role::Advertiser, Role::Affiliate] {
        let account = Account {
            id: AccountId(clock.new_id()),
            role,
            email: EmailAddress::parse(&format!("{}@events.test", role.as_str())).unwrap(),
            name: role.as_str().into(),
            password_hash: shared::secret::Secret::new(
                "not-a-hash: these accounts sign in with API keys only".into(),
            ),
            status: AccountStatus::Active,
            email_verified: true,
            adult_confirmed_at: clock.now(),
            created_at: clock.now(),
        };
        app.store.create_account(&account).await.unwrap();
        let key = format!("lr_event-sample-{}-key", role.as_str());
        let record = ApiKeyRecord {
            id: clock.new_id().to_string(),
            account_id: account.id,
            name: "sample events".into(),
            last4: key[key.len() - 4..].into(),
            created_at: clock.now(),
        };
        app.store
            .create_api_key(&token_hash(&key), &record)
            .await
            .unwrap();
    }
    let click = Click {
        id: ClickId::parse("01KB4ZJ6Y0E5V2M3N4P5Q6R7S8").unwrap(),
        link: link.code.clone(),
        offer_id: offer.id,
        affiliate_id: link.affiliate_id,
        advertiser_id: offer.advertiser_id,
        at: clock.now(),
        subs: Subs::default(),
        visitor: app
            .pseudonymizer
            .visitor("203.0.113.77".parse().unwrap(), None),
        region: None,
        device: None,
        os: None,
        browser: None,
        flags: vec![],
        unique: true,
        expires_at: tracking_expiry(clock.now()),
    };
    app.store
        .create_click(&click, offer.currency, !click.flags.is_empty())
        .await
        .unwrap();
}

fn expected_status(function: &str) -> u16 {
    match function {
        "click" => 302,
        "postback" => 201,
        "pixel" => 200,
        "auth" | "offers" | "links" | "conversions" | "reports" | "payouts" | "privacy"
        | "calls" | "admin" | "openapi" => 200,
        other => panic!("no expectation for the sample event of {other}: add one here"),
    }
}

#[tokio::test]
async fn every_route_has_a_sample_event_that_its_handler_answers() {
    let data = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at(
        Timestamp::from_second(1_795_935_600).unwrap(),
    ));
    let sender = EmailAddress::parse("no-reply@leadsrefer.local").unwrap();
    let app = App::embedded(data.path(), clock.clone(), sender).unwrap();
    fixtures(&app, &clock).await;
    let events = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
    let mut functions: Vec<&str> = ROUTES.iter().map(|r| r.function).collect();
    functions.dedup();
    for function in functions {
        let path = events.join(format!("{function}.json"));
        let json =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let request = lambda_http::request::from_str(&json)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let response = respond(app.clone(), request, Some(function)).await;
        assert_eq!(
            response.status(),
            expected_status(function),
            "{}: {:?}",
            path.display(),
            response.body()
        );
        if function == "pixel" {
            assert_eq!(
                response.headers()["x-leadsrefer-result"],
                "recorded",
                "the sample pixel records its conversion"
            );
        }
    }
}

/// The `web` function's sample: a dashboard page through lambda_http's parser and the
/// dashboard's dispatcher, as the function serves it.
#[tokio::test]
async fn the_web_functions_sample_event_opens_a_dashboard_page() {
    let data = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at(
        Timestamp::from_second(1_795_935_600).unwrap(),
    ));
    let sender = EmailAddress::parse("no-reply@leadsrefer.local").unwrap();
    let app = App::embedded(data.path(), clock.clone(), sender).unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/web.json");
    let request = lambda_http::request::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let response = shared::web::respond(app, request).await;
    assert_eq!(response.status(), 200, "{:?}", response.body());
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    assert!(
        response.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
}
