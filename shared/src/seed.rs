//! The demo a fresh local installation starts with: one advertiser, one affiliate, one offer
//! and one tracking link, so that a newcomer can click and post back at once.

use jiff::SignedDuration;
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::domain::email::EmailAddress;
use crate::domain::ids::{AdvertiserId, AffiliateId, LinkCode, OfferId};
use crate::domain::money::Currency;
use crate::domain::offer::{Commission, Destination, Offer, OfferStatus};
use crate::domain::tracking::{Advertiser, Affiliate, Link};
use crate::ports::TableError;
use crate::secret::Secret;

/// What a newcomer needs to try the demo.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Demo {
    pub advertiser_id: AdvertiserId,
    pub affiliate_id: AffiliateId,
    pub offer_id: OfferId,
    pub link: LinkCode,
    pub postback_token: Secret<String>,
}

impl Demo {
    pub fn tracking_url(&self, base: &str) -> String {
        format!("{base}/c/{}?sub1=demo", self.link)
    }

    pub fn postback_url(&self, base: &str) -> String {
        format!(
            "{base}/postback?click_id={{click_id}}&txn_id=DEMO-ORDER-1&amount=49.99&currency=USD&token={}",
            self.postback_token.expose()
        )
    }
}

/// A random secret for an offer's postbacks: 256 bits in hex.
pub fn new_postback_secret() -> Secret<String> {
    Secret::new(hex::encode(rand::random::<[u8; 32]>()))
}

/// Seeds the demo unless it exists; returns it and whether it was made now.
pub async fn seed_demo(app: &App) -> Result<(Demo, bool), TableError> {
    if let Some(demo) = app.store.setting::<Demo>("demo").await? {
        return Ok((demo, false));
    }
    let now = app.clock.now();
    let email = |text| EmailAddress::parse(text).expect("demo addresses are valid");
    let advertiser = Advertiser {
        id: AdvertiserId(app.clock.new_id()),
        name: "Demo Shop".into(),
        email: email("advertiser@demo.leadsrefer.local"),
        created_at: now,
    };
    let affiliate = Affiliate {
        id: AffiliateId(app.clock.new_id()),
        name: "Demo Publisher".into(),
        email: email("affiliate@demo.leadsrefer.local"),
        created_at: now,
    };
    let offer = Offer {
        id: OfferId(app.clock.new_id()),
        advertiser_id: advertiser.id,
        name: "Demo Shop — first order".into(),
        destination: Destination::parse(
            "https://shop.example.com/welcome?clickid={click_id}&aff={affiliate_id}&s1={sub1}",
        )
        .expect("the demo destination is valid"),
        currency: Currency::parse("USD").expect("USD is a currency"),
        revenue: Commission::Fixed(2_500),
        payout: Commission::Fixed(1_800),
        attribution_window: SignedDuration::from_hours(30 * 24),
        postback_secret: new_postback_secret(),
        status: OfferStatus::Active,
        created_at: now,
    };
    let link = Link {
        code: LinkCode::random(),
        offer_id: offer.id,
        affiliate_id: affiliate.id,
        advertiser_id: advertiser.id,
        created_at: now,
    };
    app.store.create_advertiser(&advertiser).await?;
    app.store.create_affiliate(&affiliate).await?;
    app.store.create_offer(&offer).await?;
    app.store.create_link(&link).await?;
    let demo = Demo {
        advertiser_id: advertiser.id,
        affiliate_id: affiliate.id,
        offer_id: offer.id,
        link: link.code,
        postback_token: offer.postback_secret,
    };
    app.store.create_setting("demo", &demo).await?;
    Ok((demo, true))
}
