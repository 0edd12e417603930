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

/// What a newcomer needs to try the demo. The demo passwords are random per installation.
#[derive(Clone, Debug)]
pub struct Demo {
    pub advertiser_id: AdvertiserId,
    pub affiliate_id: AffiliateId,
    pub offer_id: OfferId,
    pub link: LinkCode,
    /// The demo offer's postback secret (read from the offer).
    pub postback_token: Secret<String>,
    /// (role, email, password) of the demo admin, advertiser and affiliate: only as the demo
    /// is seeded. They are stored nowhere but as the accounts' password hashes.
    pub credentials: Vec<(Role, EmailAddress, Secret<String>)>,
}

/// The demo as stored (`META#demo`): what it is, never a password or token. (Its first
/// version kept the passwords and the postback token in clear; reading one scrubs it.)
#[derive(Serialize, Deserialize)]
struct Seeded {
    advertiser_id: AdvertiserId,
    affiliate_id: AffiliateId,
    offer_id: OfferId,
    link: LinkCode,
}

/// What the first version of [`Seeded`] also kept, in clear.
const KEPT_IN_CLEAR: [&str; 2] = ["credentials", "postback_token"];

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
    /// The shell variables the README's walks start from (`B`, `DEMO_LINK`, `DEMO_TOKEN`,
    /// and `ADMIN_PASSWORD` while the demo's passwords are known), as one line to paste.
    pub fn walk_variables(&self, base: &str) -> String {
        let mut line = format!(
            "B={base} DEMO_LINK='{}' DEMO_TOKEN={}",
            self.tracking_url(base),
            self.postback_token.expose()
        );
        if let Some((.., password)) = self
            .credentials
            .iter()
            .find(|(role, ..)| *role == Role::Admin)
        {
            line.push_str(&format!(" ADMIN_PASSWORD='{}'", password.expose()));
        }
        line
    }

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

/// The demo, if it was seeded (its sign-ins are not kept: see [`Demo::credentials`]).
pub async fn demo(app: &App) -> Result<Option<Demo>, TableError> {
    let Some(stored) = app.store.setting::<serde_json::Value>("demo").await? else {
        return Ok(None);
    };
    let first_version = KEPT_IN_CLEAR.iter().any(|name| stored.get(name).is_some());
    let seeded: Seeded = serde_json::from_value(stored)
        .map_err(|e| TableError::Invalid(format!("setting demo does not parse: {e}")))?;
    if first_version {
        app.store.replace_setting("demo", &seeded).await?;
    }
    let offer = app
        .store
        .offer(seeded.offer_id)
        .await?
        .ok_or_else(|| TableError::Invalid("the demo's offer is missing".into()))?;
    Ok(Some(Demo {
        advertiser_id: seeded.advertiser_id,
        affiliate_id: seeded.affiliate_id,
        offer_id: seeded.offer_id,
        link: seeded.link,
        postback_token: offer.postback_secret,
        credentials: Vec::new(),
    }))
}

/// Seeds the demo unless it exists; returns it and whether it was made now.
pub async fn seed_demo(app: &App) -> Result<(Demo, bool), TableError> {
    if let Some(demo) = demo(app).await? {
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
    let seeded = Seeded {
        advertiser_id,
        affiliate_id,
        offer_id: offer.id,
        link: demo.link.clone(),
    };
    app.store.create_setting("demo", &seeded).await?;
    Ok((demo, true))
}

/// What [`seed_history`] made.
#[derive(Debug, Default)]
pub struct History {
    pub clicks: usize,
    pub conversions: usize,
    pub payouts: usize,
}

/// Days of history a new local installation gets.
pub const HISTORY_DAYS: i64 = 21;

/// Three weeks of traffic on the demo link, so that a new local installation's charts and lists
/// show something: clicks every day from several countries, devices and sub-ids; conversions
/// approved, rejected, reversed and still pending; and a payout run that paid the demo
/// affiliate by ACH. It runs the real services on a clock set in the past, so every record,
/// counter and ledger entry is what live traffic would have made.
pub async fn seed_history(
    app: &App,
    demo: &Demo,
) -> Result<History, Box<dyn std::error::Error + Send + Sync>> {
    use crate::domain::ids::ConversionId;
    use crate::domain::payout::{AccountHolder, AccountType};
    use crate::domain::tracking::EventName;
    use crate::lifecycle::{Decider, Decision};
    use crate::ports::ManualClock;
    use crate::tracking::{ClickRequest, Postback, PostbackAuth};
    use std::sync::Arc;

    const AGENTS: [&str; 3] = [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
    ];
    const COUNTRIES: [&str; 4] = ["US", "US", "CA", "GB"];
    const SOURCES: [&str; 3] = ["newsletter", "social", "search"];

    let now = app.clock.now();
    let start = now - SignedDuration::from_hours(24 * HISTORY_DAYS);
    let clock = Arc::new(ManualClock::at(start));
    let mut past = app.clone();
    past.clock = clock.clone();
    let mut history = History::default();

    let affiliate = app
        .store
        .account(crate::domain::accounts::AccountId(demo.affiliate_id.0))
        .await?
        .ok_or("the demo affiliate is missing")?;
    crate::payouts::set_method(
        &past,
        demo.affiliate_id,
        &affiliate.email,
        crate::payouts::MethodInput::Ach {
            routing_number: "021000021".into(),
            account_number: Secret::new("000123456789".into()),
            account_type: AccountType::Checking,
            account_holder: AccountHolder::Individual,
            name_on_account: "Demo Publisher".into(),
        },
    )
    .await?;

    let mut conversions: Vec<(i64, ConversionId)> = Vec::new();
    for day in 0..HISTORY_DAYS {
        clock.set(start + SignedDuration::from_hours(24 * day + 8));
        // A weekly rhythm and a slow rise, without randomness: the same history every time.
        let clicks = 18 + (day * 7) % 13 + day;
        for i in 0..clicks {
            clock.advance(SignedDuration::from_mins(23));
            let n = (day * 131 + i * 17) as usize;
            let outcome = crate::tracking::record_click(
                &past,
                &demo.link,
                ClickRequest {
                    subs: [
                        Some(SOURCES[[0, 1, 0, 2, 1, 0, 2][(n / 3) % 7]].to_string()),
                        None,
                        None,
                        None,
                        None,
                    ],
                    ip: std::net::Ipv4Addr::new(198, 51, (day % 200) as u8, (i % 250) as u8 + 1)
                        .into(),
                    country: Some(COUNTRIES[n % 4].to_string()),
                    region: None,
                    user_agent: Some(AGENTS[n % 3]),
                    head: false,
                },
            )
            .await?;
            history.clicks += 1;
            if !n.is_multiple_of(7) {
                continue;
            }
            clock.advance(SignedDuration::from_mins(4));
            let recorded = crate::tracking::record_conversion(
                &past,
                Postback {
                    click_id: outcome.click.id,
                    txn_id: Some(format!("HISTORY-{day:02}-{i:02}")),
                    event: EventName::default_event(),
                    amount: None,
                    currency: None,
                    auth: PostbackAuth::Token(demo.postback_token.expose().clone()),
                    client_prefix: None,
                },
            )
            .await?;
            if let crate::store::Recorded::New(conversion) = recorded {
                conversions.push((day, conversion.id));
                history.conversions += 1;
            }
        }
        // The advertiser reviews the conversions of a week ago: most approved, some rejected.
        clock.set(start + SignedDuration::from_hours(24 * day + 22));
        for (index, (_, id)) in conversions
            .iter()
            .enumerate()
            .filter(|(_, (d, _))| *d + 7 == day)
        {
            let (decision, reason) = if index % 5 == 4 {
                (Decision::Reject, Some("order cancelled".to_string()))
            } else {
                (Decision::Approve, None)
            };
            crate::lifecycle::decide(&past, *id, decision, reason, Decider::Admin).await?;
        }
        // Two weeks in, the daily payout run pays what was approved by then.
        if day == 14 {
            clock.set(start + SignedDuration::from_hours(24 * day + 23));
            let run =
                crate::payouts::run(&past, &crate::payouts::period_of(past.clock.now())).await?;
            history.payouts += usize::from(run.payouts_made);
        }
    }
    // One refund after payment: an approved conversion reversed.
    if let Some((_, id)) = conversions.first() {
        clock.set(now - SignedDuration::from_hours(2));
        crate::lifecycle::decide(
            &past,
            *id,
            Decision::Reverse,
            Some("refunded".into()),
            Decider::Admin,
        )
        .await?;
    }
    Ok(history)
}
