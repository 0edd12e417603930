//! `events/<function>.json` — the samples for `cargo lambda invoke` and `sam local invoke` —
//! go through lambda_http's own event parser and their route's handler, so the samples, the
//! route table and the handlers cannot drift apart.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use shared::App;
use shared::domain::email::EmailAddress;
use shared::domain::ids::{AdvertiserId, AffiliateId, ClickId, LinkCode, OfferId};
use shared::domain::money::Currency;
use shared::domain::offer::{Commission, Destination, Offer, OfferStatus};
use shared::domain::tracking::{Click, Link, Subs, tracking_expiry};
use shared::ports::{Clock, ManualClock};
use shared::routes::{ROUTES, dispatch};
use shared::secret::Secret;

/// The records the sample events refer to.
async fn fixtures(app: &App, clock: &ManualClock) {
    let offer = Offer {
        id: OfferId(clock.new_id()),
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
    };
    app.store.create_offer(&offer).await.unwrap();
    let link = Link {
        code: LinkCode::parse("EventLnk01").unwrap(),
        offer_id: offer.id,
        affiliate_id: AffiliateId(clock.new_id()),
        advertiser_id: offer.advertiser_id,
        created_at: clock.now(),
    };
    app.store.create_link(&link).await.unwrap();
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
        expires_at: tracking_expiry(clock.now()),
    };
    app.store.create_click(&click).await.unwrap();
}

fn expected_status(function: &str) -> u16 {
    match function {
        "click" => 302,
        "postback" => 201,
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
    for route in ROUTES {
        let path = events.join(format!("{}.json", route.function));
        let json =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let request = lambda_http::request::from_str(&json)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            route.match_path(request.uri().path()).is_some(),
            "{} is a request for {}",
            path.display(),
            route.path
        );
        let response = dispatch(route, app.clone(), request).await;
        assert_eq!(
            response.status(),
            expected_status(route.function),
            "{}: {:?}",
            path.display(),
            response.body()
        );
    }
}
