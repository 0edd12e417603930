//! The demo a fresh local installation starts with: one advertiser, one affiliate, one offer
//! and one tracking link, so that a newcomer can click and post back at once.

use jiff::SignedDuration;
use serde::{Deserialize, Serialize};

use crate::accounts::{create_account, random_token};
use crate::app::App;
use crate::domain::accounts::{AccountStatus, Role};
use crate::domain::email::EmailAddress;
use crate::domain::ids::{AdvertiserId, AffiliateId, LinkCode, OfferId};
use crate::domain::money::Currency;
use crate::domain::offer::{Commission, Destination, Offer, OfferStatus};
use crate::domain::tracking::Link;
use crate::ports::TableError;
use crate::secret::Secret;
use crate::store::{Application, ApplicationStatus};

/// What a newcomer needs to try the demo. It lives in the local data folder, beside the data
/// it opens; the demo passwords are random per installation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Demo {
    pub advertiser_id: AdvertiserId,
    pub affiliate_id: AffiliateId,
    pub offer_id: OfferId,
    pub link: LinkCode,
    pub postback_token: Secret<String>,
    /// (role, email, password) of the demo admin, advertiser and affiliate.
    #[serde(default)]
    pub credentials: Vec<(Role, EmailAddress, Secret<String>)>,
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

/// The sign-in lines to print.
impl Demo {
    pub fn credential_lines(&self) -> Vec<String> {
        self.credentials
            .iter()
            .map(|(role, email, password)| {
                format!(
                    "{:<10} {} / {}",
                    role.as_str(),
                    email.as_str(),
                    password.expose()
                )
            })
            .collect()
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
    let mut credentials = Vec::new();
    let mut account_of = |role: Role, email: &str, name: &str| {
        let password = Secret::new(format!("demo-{}", &random_token().expose()[..16]));
        let email = EmailAddress::parse(email).expect("demo addresses are valid");
        credentials.push((role, email.clone(), password.clone()));
        (role, email, name.to_string(), password)
    };
    let people = [
        account_of(Role::Admin, "admin@demo.leadsrefer.local", "Demo Admin"),
        account_of(
            Role::Advertiser,
            "advertiser@demo.leadsrefer.local",
            "Demo Shop",
        ),
        account_of(
            Role::Affiliate,
            "affiliate@demo.leadsrefer.local",
            "Demo Publisher",
        ),
    ];
    let mut ids = Vec::new();
    for (role, email, name, password) in people {
        let account = create_account(app, role, email, name, &password, AccountStatus::Active)
            .await
            .map_err(|e| TableError::Invalid(format!("cannot create a demo account: {e}")))?;
        ids.push(account.id);
    }
    let advertiser_id = AdvertiserId(ids[1].0);
    let affiliate_id = AffiliateId(ids[2].0);
    let offer = Offer {
        id: OfferId(app.clock.new_id()),
        advertiser_id,
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
    let link = Link {
        code: LinkCode::random(),
        offer_id: offer.id,
        affiliate_id,
        advertiser_id,
        created_at: now,
        subs: Default::default(),
    };
    app.store.create_offer(&offer).await?;
    app.store
        .create_application(&Application {
            offer_id: offer.id,
            affiliate_id,
            advertiser_id,
            status: ApplicationStatus::Approved,
            postback_url: None,
            created_at: now,
            decided_at: Some(now),
        })
        .await?;
    app.store.create_link(&link).await?;
    let demo = Demo {
        advertiser_id,
        affiliate_id,
        offer_id: offer.id,
        link: link.code,
        postback_token: offer.postback_secret,
        credentials,
    };
    app.store.create_setting("demo", &demo).await?;
    Ok((demo, true))
}
