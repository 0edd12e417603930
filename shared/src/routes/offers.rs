//! `/api/offers/…`: advertisers publish and edit offers; affiliates browse them, apply, and set
//! their postback URL; advertisers (and admins) decide applications (the `offers` function).
//!
//! Money travels as decimal strings in the offer's currency (`"25.00"`), rates as basis points.
//! Another advertiser's offer answers 404, as if it did not exist.

use std::collections::BTreeMap;

use jiff::SignedDuration;
use lambda_http::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Route, schema};
use crate::app::App;
use crate::caller::{ADVERTISER_OR_ADMIN, AFFILIATE, ANY_ROLE, Caller, caller};
use crate::domain::accounts::{AccountId, AccountStatus, Role};
use crate::domain::ids::{AdvertiserId, AffiliateId, OfferId};
use crate::domain::money::{Bps, Currency, Money};
use crate::domain::offer::{
    ApprovalMode, Caps, Commission, Destination, DeviceType, EventCommission, Offer, OfferStatus,
};
use crate::domain::tracking::EventName;
use crate::http::{ApiError, Request, Response, json, json_body, path_param};
use crate::seed::new_postback_secret;
use crate::store::{Application, ApplicationStatus};

pub const CREATE: Route = Route::new(
    "offers",
    &["POST"],
    "/api/offers",
    ADVERTISER_OR_ADMIN,
    "Publish an offer (an approved advertiser, or an admin naming the advertiser)",
    |app, request| Box::pin(create(app, request)),
)
.takes(schema::<OfferInput>)
.answers(schema::<OfferView>);

pub const LIST: Route = Route::new("offers", &["GET"], "/api/offers", ANY_ROLE,
    "Offers: an advertiser's own, every active one for an affiliate (with their application), all for an admin",
    |app, request| Box::pin(list(app, request)))
.answers(schema::<OfferList>);

pub const GET: Route = Route::new(
    "offers",
    &["GET"],
    "/api/offers/{offer_id}",
    ANY_ROLE,
    "One offer, as the caller may see it",
    |app, request| Box::pin(get(app, request)),
)
.answers(schema::<OfferItem>);

pub const UPDATE: Route = Route::new(
    "offers",
    &["PATCH"],
    "/api/offers/{offer_id}",
    ADVERTISER_OR_ADMIN,
    "Edit an offer: any field of its input, and `status` (active, paused, archived)",
    |app, request| Box::pin(update(app, request)),
)
.takes(schema::<OfferPatch>)
.answers(schema::<OfferView>);

pub const ROTATE_SECRET: Route = Route::new(
    "offers",
    &["POST"],
    "/api/offers/{offer_id}/postback-secret",
    ADVERTISER_OR_ADMIN,
    "Replace the offer's postback secret; postbacks with the old one are refused from now on",
    |app, request| Box::pin(rotate_secret(app, request)),
)
.succeeds_with(&[200])
.answers(schema::<OfferView>);

pub const TEST_CONVERSION: Route = Route::new(
    "offers",
    &["POST"],
    "/api/offers/{offer_id}/test-conversions",
    ADVERTISER_OR_ADMIN,
    "Send a test conversion: a test click on an approved affiliate's link (`affiliate_id`, or \
     the first that has one), then the postback your server would send, with the offer's \
     token; both are kept marked test and counted nowhere (no money, reports, caps or affiliate \
     postback). A postback you send yourself for the answer's `click_id` is a test too",
    |app, request| Box::pin(test_conversion(app, request)),
)
.takes(schema::<TestConversionInput>)
.answers(schema::<super::conversions::ConversionView>);

pub const APPLY: Route = Route::new(
    "offers",
    &["POST"],
    "/api/offers/{offer_id}/applications",
    AFFILIATE,
    "Apply to promote an offer (an approved affiliate)",
    |app, request| Box::pin(apply(app, request)),
)
.answers(schema::<ApplicationView>);

pub const LIST_APPLICATIONS: Route = Route::new(
    "offers",
    &["GET"],
    "/api/offers/{offer_id}/applications",
    ADVERTISER_OR_ADMIN,
    "The applications to an offer",
    |app, request| Box::pin(list_applications(app, request)),
)
.answers(schema::<ApplicationList>);

pub const DECIDE_APPLICATION: Route = Route::new(
    "offers",
    &["PUT"],
    "/api/offers/{offer_id}/applications/{affiliate_id}",
    ADVERTISER_OR_ADMIN,
    "Approve or reject an application",
    |app, request| Box::pin(decide(app, request)),
)
.takes(schema::<Decision>)
.answers(schema::<ApplicationView>);

pub const SET_POSTBACK_URL: Route = Route::new("offers", &["PUT"], "/api/offers/{offer_id}/postback-url", AFFILIATE,
    "Set the URL called when a conversion of yours on this offer is recorded or changes status (macros: {click_id}, {conversion_id}, {status}, {payout}, {currency}, {sub1}…{sub5})",
    |app, request| Box::pin(set_postback_url(app, request)))
.takes(schema::<PostbackUrlInput>)
.answers(schema::<ApplicationView>);

/// A commission: a fixed amount (`{"fixed": "25.00"}`) or a share of the sale
/// (`{"share_bps": 1500}` = 15%).
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum CommissionInput {
    Fixed(String),
    ShareBps(u32),
}

/// What an event besides `conversion` is worth.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventInput {
    pub revenue: CommissionInput,
    pub payout: CommissionInput,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CapsInput {
    pub daily: Option<u32>,
    pub monthly: Option<u32>,
    /// Total revenue, as a decimal in the offer's currency.
    pub budget: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OfferInput {
    /// Admins only: whose offer it is.
    #[serde(default)]
    pub advertiser_id: Option<String>,
    pub name: String,
    /// http(s), with macros {click_id}, {affiliate_id}, {offer_id}, {sub1}…{sub5} after the host.
    pub destination: String,
    /// ISO 4217.
    pub currency: String,
    /// What the advertiser pays per conversion.
    pub revenue: CommissionInput,
    /// What affiliates earn per conversion.
    pub payout: CommissionInput,
    /// Affiliate id → what that affiliate earns instead.
    #[serde(default)]
    pub payout_overrides: BTreeMap<String, CommissionInput>,
    #[serde(default)]
    pub caps: CapsInput,
    /// ISO 3166 alpha-2; empty for every country.
    #[serde(default)]
    pub allowed_countries: Vec<String>,
    /// Empty for every device type.
    #[serde(default)]
    pub allowed_devices: Vec<DeviceType>,
    /// 1 to 365; default 30.
    #[serde(default)]
    pub attribution_window_days: Option<u32>,
    /// 0 to 365; default 0.
    #[serde(default)]
    pub hold_days: Option<u32>,
    /// With automatic approval, days a conversion stays pending for review; 0 to 365,
    /// default 0.
    #[serde(default)]
    pub review_days: Option<u32>,
    #[serde(default)]
    pub approval: Option<ApprovalMode>,
    /// Events besides the default `conversion` (such as `lead`), each with its commissions;
    /// postbacks name them with `event=`.
    #[serde(default)]
    pub events: BTreeMap<String, EventInput>,
    /// Where visitors from excluded countries or devices go (macros allowed); without one
    /// they see a neutral page.
    #[serde(default)]
    pub fallback_url: Option<String>,
    /// 1 to 720; default 24: a visitor's repeat clicks on a link within it are not unique.
    #[serde(default)]
    pub unique_window_hours: Option<u32>,
    /// Conversions sooner than this after their click are flagged for review; default 0.
    #[serde(default)]
    pub min_conversion_seconds: Option<u32>,
}

/// Every field optional: those given replace the offer's.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OfferPatch {
    pub name: Option<String>,
    pub destination: Option<String>,
    pub revenue: Option<CommissionInput>,
    pub payout: Option<CommissionInput>,
    pub payout_overrides: Option<BTreeMap<String, CommissionInput>>,
    pub caps: Option<CapsInput>,
    pub allowed_countries: Option<Vec<String>>,
    pub allowed_devices: Option<Vec<DeviceType>>,
    pub attribution_window_days: Option<u32>,
    pub hold_days: Option<u32>,
    pub review_days: Option<u32>,
    pub approval: Option<ApprovalMode>,
    pub events: Option<BTreeMap<String, EventInput>>,
    /// `null` keeps it; `""` removes it.
    pub fallback_url: Option<String>,
    pub unique_window_hours: Option<u32>,
    pub min_conversion_seconds: Option<u32>,
    pub status: Option<OfferStatus>,
}

/// An offer as its advertiser (or an admin) sees it, postback secret included.
#[derive(Serialize, ToSchema)]
pub struct OfferView {
    pub id: String,
    pub advertiser_id: String,
    pub name: String,
    pub destination: String,
    pub currency: String,
    pub revenue: CommissionInput,
    pub payout: CommissionInput,
    pub payout_overrides: BTreeMap<String, CommissionInput>,
    pub caps: CapsInput,
    pub allowed_countries: Vec<String>,
    pub allowed_devices: Vec<DeviceType>,
    pub attribution_window_days: i64,
    pub hold_days: u32,
    pub review_days: u32,
    pub approval: ApprovalMode,
    pub events: BTreeMap<String, EventInput>,
    pub fallback_url: Option<String>,
    pub unique_window_hours: u32,
    pub min_conversion_seconds: u32,
    pub status: OfferStatus,
    /// Send as `token` with postbacks, or sign them with it.
    pub postback_secret: String,
    pub created_at: String,
}

/// An offer as an affiliate sees it: what they earn, never what the advertiser pays.
#[derive(Serialize, ToSchema)]
pub struct AffiliateOfferView {
    pub id: String,
    pub name: String,
    pub destination: String,
    pub currency: String,
    pub payout: CommissionInput,
    pub caps: CapsInput,
    pub allowed_countries: Vec<String>,
    pub allowed_devices: Vec<DeviceType>,
    pub attribution_window_days: i64,
    /// What each other event (`lead`…) earns.
    pub event_payouts: BTreeMap<String, CommissionInput>,
    pub status: OfferStatus,
    /// The caller's application, if they applied.
    pub application: Option<ApplicationStatus>,
    /// The caller's own postback URL for this offer, if they set one.
    pub postback_url: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum OfferItem {
    Full(OfferView),
    Affiliate(AffiliateOfferView),
}

#[derive(Serialize, ToSchema)]
pub struct OfferList {
    pub offers: Vec<OfferItem>,
}

#[derive(Serialize, ToSchema)]
pub struct ApplicationView {
    pub offer_id: String,
    pub affiliate_id: String,
    pub status: ApplicationStatus,
    pub postback_url: Option<String>,
    pub created_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct ApplicationList {
    pub applications: Vec<ApplicationView>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// `approved` or `rejected`.
    pub status: ApplicationStatus,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostbackUrlInput {
    /// http(s); `null` removes it.
    pub url: Option<String>,
}

fn money_text(minor: i64, currency: Currency) -> String {
    Money::new(minor, currency).to_decimal()
}

fn commission_view(commission: Commission, currency: Currency) -> CommissionInput {
    match commission {
        Commission::Fixed(minor) => CommissionInput::Fixed(money_text(minor, currency)),
        Commission::Share(bps) => CommissionInput::ShareBps(bps.get()),
    }
}

fn caps_view(caps: &Caps, currency: Currency) -> CapsInput {
    CapsInput {
        daily: caps.daily,
        monthly: caps.monthly,
        budget: caps.budget.map(|b| money_text(b, currency)),
    }
}

impl OfferView {
    pub fn of(offer: &Offer) -> Self {
        let currency = offer.currency;
        Self {
            id: offer.id.to_string(),
            advertiser_id: offer.advertiser_id.to_string(),
            name: offer.name.clone(),
            destination: offer.destination.as_str().to_string(),
            currency: currency.code().to_string(),
            revenue: commission_view(offer.revenue, currency),
            payout: commission_view(offer.payout, currency),
            payout_overrides: offer
                .payout_overrides
                .iter()
                .map(|(affiliate, commission)| {
                    (
                        affiliate.to_string(),
                        commission_view(*commission, currency),
                    )
                })
                .collect(),
            caps: caps_view(&offer.caps, currency),
            allowed_countries: offer.allowed_countries.clone(),
            allowed_devices: offer.allowed_devices.clone(),
            attribution_window_days: offer.attribution_window.as_hours() / 24,
            hold_days: offer.hold_days,
            review_days: offer.review_days,
            approval: offer.approval,
            events: offer
                .events
                .iter()
                .map(|(name, e)| {
                    let view = EventInput {
                        revenue: commission_view(e.revenue, currency),
                        payout: commission_view(e.payout, currency),
                    };
                    (name.as_str().to_string(), view)
                })
                .collect(),
            fallback_url: offer.fallback_url.as_ref().map(|d| d.as_str().to_string()),
            unique_window_hours: offer.unique_window_hours,
            min_conversion_seconds: offer.min_conversion_seconds,
            status: offer.status,
            postback_secret: offer.postback_secret.expose().clone(),
            created_at: offer.created_at.to_string(),
        }
    }
}

impl AffiliateOfferView {
    fn of(offer: &Offer, affiliate: AffiliateId, application: Option<&Application>) -> Self {
        let payout = offer
            .payout_overrides
            .get(&affiliate)
            .copied()
            .unwrap_or(offer.payout);
        Self {
            id: offer.id.to_string(),
            name: offer.name.clone(),
            destination: offer.destination.as_str().to_string(),
            currency: offer.currency.code().to_string(),
            payout: commission_view(payout, offer.currency),
            caps: caps_view(&offer.caps, offer.currency),
            allowed_countries: offer.allowed_countries.clone(),
            allowed_devices: offer.allowed_devices.clone(),
            attribution_window_days: offer.attribution_window.as_hours() / 24,
            event_payouts: offer
                .events
                .iter()
                .map(|(name, e)| {
                    (
                        name.as_str().to_string(),
                        commission_view(e.payout, offer.currency),
                    )
                })
                .collect(),
            status: offer.status,
            application: application.map(|a| a.status),
            postback_url: application.and_then(|a| a.postback_url.clone()),
        }
    }
}

impl ApplicationView {
    fn of(application: &Application) -> Self {
        Self {
            offer_id: application.offer_id.to_string(),
            affiliate_id: application.affiliate_id.to_string(),
            status: application.status,
            postback_url: application.postback_url.clone(),
            created_at: application.created_at.to_string(),
        }
    }
}

fn commission(
    field: &str,
    input: &CommissionInput,
    currency: Currency,
) -> Result<Commission, ApiError> {
    match input {
        CommissionInput::Fixed(amount) => Money::parse_decimal(amount, currency)
            .map(|m| Commission::Fixed(m.minor))
            .map_err(|problem| ApiError::invalid_at(format!("{field}.fixed"), problem)),
        CommissionInput::ShareBps(bps) => Bps::new(*bps)
            .map(Commission::Share)
            .map_err(|problem| ApiError::invalid_at(format!("{field}.share_bps"), problem)),
    }
}

fn overrides(
    input: &BTreeMap<String, CommissionInput>,
    currency: Currency,
) -> Result<BTreeMap<AffiliateId, Commission>, ApiError> {
    input
        .iter()
        .map(|(affiliate, value)| {
            let id = AffiliateId::parse(affiliate).ok_or_else(|| {
                ApiError::invalid_at(
                    format!("payout_overrides.{affiliate}"),
                    "is not an affiliate id",
                )
            })?;
            Ok((
                id,
                commission(&format!("payout_overrides.{affiliate}"), value, currency)?,
            ))
        })
        .collect()
}

fn events(
    input: &BTreeMap<String, EventInput>,
    currency: Currency,
) -> Result<BTreeMap<EventName, EventCommission>, ApiError> {
    input
        .iter()
        .map(|(name, event)| {
            let parsed = EventName::parse(name)
                .map_err(|problem| ApiError::invalid_at(format!("events.{name}"), problem))?;
            if parsed.is_default() {
                return Err(ApiError::invalid_at(
                    format!("events.{name}"),
                    "is the default event: set revenue and payout instead",
                ));
            }
            let revenue = commission(&format!("events.{name}.revenue"), &event.revenue, currency)?;
            let payout = commission(&format!("events.{name}.payout"), &event.payout, currency)?;
            Ok((parsed, EventCommission { revenue, payout }))
        })
        .collect()
}

fn caps(input: &CapsInput, currency: Currency) -> Result<Caps, ApiError> {
    let budget = input
        .budget
        .as_deref()
        .map(|b| Money::parse_decimal(b, currency).map(|m| m.minor))
        .transpose()
        .map_err(|problem| ApiError::invalid_at("caps.budget".into(), problem))?;
    Ok(Caps {
        daily: input.daily,
        monthly: input.monthly,
        budget,
    })
}

fn countries(input: &[String]) -> Result<Vec<String>, ApiError> {
    input
        .iter()
        .map(|code| {
            (code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()))
                .then(|| code.clone())
                .ok_or_else(|| {
                    ApiError::invalid(
                        "allowed_countries",
                        format!("{code:?} is not an ISO 3166 alpha-2 code such as US"),
                    )
                })
        })
        .collect()
}

fn window(days: u32) -> Result<SignedDuration, ApiError> {
    if !(1..=365).contains(&days) {
        return Err(ApiError::invalid(
            "attribution_window_days",
            "must be 1 to 365",
        ));
    }
    Ok(SignedDuration::from_hours(24 * i64::from(days)))
}

fn hold(days: u32) -> Result<u32, ApiError> {
    days_field("hold_days", days)
}

fn days_field(field: &'static str, days: u32) -> Result<u32, ApiError> {
    if days > 365 {
        return Err(ApiError::invalid(field, "must be 0 to 365"));
    }
    Ok(days)
}

fn fallback(text: &str) -> Result<Destination, ApiError> {
    Destination::parse(text).map_err(|problem| ApiError::invalid("fallback_url", problem))
}

fn unique_window(hours: u32) -> Result<u32, ApiError> {
    if !(1..=720).contains(&hours) {
        return Err(ApiError::invalid("unique_window_hours", "must be 1 to 720"));
    }
    Ok(hours)
}

fn name(text: &str) -> Result<String, ApiError> {
    crate::domain::accounts::check_name(text).map_err(|problem| ApiError::invalid("name", problem))
}

fn destination(text: &str) -> Result<Destination, ApiError> {
    Destination::parse(text).map_err(|problem| ApiError::invalid("destination", problem))
}

/// The offer named in the path, if the caller may manage it (else 404: no leak of existence).
async fn managed_offer(app: &App, request: &Request, caller: &Caller) -> Result<Offer, ApiError> {
    managed(app, caller, path_param(request, "offer_id").as_deref()).await
}

/// The offer with this id, if the caller may manage it: its advertiser or an admin (else 404,
/// naming `offer_id`).
pub(crate) async fn managed(
    app: &App,
    caller: &Caller,
    offer_id: Option<&str>,
) -> Result<Offer, ApiError> {
    let offer = offer_id
        .and_then(OfferId::parse)
        .ok_or_else(|| ApiError::not_found("offer_id", "no such offer"))?;
    let offer = app.store.offer(offer).await.map_err(ApiError::internal)?;
    match offer {
        Some(offer)
            if caller.is_admin() || caller.account.advertiser_id() == Some(offer.advertiser_id) =>
        {
            Ok(offer)
        }
        _ => Err(ApiError::not_found("offer_id", "no such offer")),
    }
}

async fn create(app: App, request: Request) -> Result<Response, ApiError> {
    let input: OfferInput = json_body(&request)?;
    let caller = caller(&request);
    let advertiser_id = if caller.is_admin() {
        let id = input.advertiser_id.as_deref().ok_or_else(|| {
            ApiError::invalid(
                "advertiser_id",
                "is required when an admin creates an offer",
            )
        })?;
        let id = AccountId::parse(id)
            .ok_or_else(|| ApiError::invalid("advertiser_id", "is not an account id"))?;
        match app.store.account(id).await.map_err(ApiError::internal)? {
            Some(account)
                if account.role == Role::Advertiser && account.status == AccountStatus::Active =>
            {
                AdvertiserId(id.0)
            }
            _ => {
                return Err(ApiError::unprocessable(
                    "advertiser_id",
                    "is not an approved advertiser",
                ));
            }
        }
    } else {
        caller.require_active()?;
        if input.advertiser_id.is_some() {
            return Err(ApiError::invalid(
                "advertiser_id",
                "is set by the platform for advertisers",
            ));
        }
        caller
            .account
            .advertiser_id()
            .expect("the route admits advertisers and admins")
    };
    let currency = Currency::parse(&input.currency)
        .map_err(|_| ApiError::invalid("currency", "is not an ISO 4217 currency code"))?;
    let offer = Offer {
        id: OfferId(app.clock.new_id()),
        advertiser_id,
        name: name(&input.name)?,
        destination: destination(&input.destination)?,
        currency,
        revenue: commission("revenue", &input.revenue, currency)?,
        payout: commission("payout", &input.payout, currency)?,
        attribution_window: window(input.attribution_window_days.unwrap_or(30))?,
        postback_secret: new_postback_secret(),
        status: OfferStatus::Active,
        created_at: app.clock.now(),
        payout_overrides: overrides(&input.payout_overrides, currency)?,
        caps: caps(&input.caps, currency)?,
        allowed_countries: countries(&input.allowed_countries)?,
        allowed_devices: input.allowed_devices,
        hold_days: hold(input.hold_days.unwrap_or(0))?,
        review_days: days_field("review_days", input.review_days.unwrap_or(0))?,
        approval: input.approval.unwrap_or_default(),
        events: events(&input.events, currency)?,
        fallback_url: input.fallback_url.as_deref().map(fallback).transpose()?,
        unique_window_hours: unique_window(
            input
                .unique_window_hours
                .unwrap_or(Offer::DEFAULT_UNIQUE_WINDOW_HOURS),
        )?,
        min_conversion_seconds: input.min_conversion_seconds.unwrap_or(0),
    };
    app.store
        .create_offer(&offer)
        .await
        .map_err(ApiError::internal)?;
    caller
        .audit(&app, "offer.created", Some(offer.id.to_string()))
        .await?;
    Ok(json(StatusCode::CREATED, &OfferView::of(&offer)))
}

async fn list(app: App, request: Request) -> Result<Response, ApiError> {
    let caller = caller(&request);
    let offers = match caller.account.role {
        Role::Admin => app
            .store
            .all_offers()
            .await
            .map_err(ApiError::internal)?
            .iter()
            .map(|o| OfferItem::Full(OfferView::of(o)))
            .collect(),
        Role::Advertiser => {
            let advertiser = caller.account.advertiser_id().expect("an advertiser");
            let offers = app
                .store
                .offers_of_advertiser(advertiser)
                .await
                .map_err(ApiError::internal)?;
            offers
                .iter()
                .map(|o| OfferItem::Full(OfferView::of(o)))
                .collect()
        }
        Role::Affiliate => {
            let affiliate = caller.account.affiliate_id().expect("an affiliate");
            let applications: BTreeMap<OfferId, Application> = app
                .store
                .applications_of_affiliate(affiliate)
                .await
                .map_err(ApiError::internal)?
                .into_iter()
                .map(|a| (a.offer_id, a))
                .collect();
            let offers = app.store.all_offers().await.map_err(ApiError::internal)?;
            offers
                .iter()
                .filter(|o| o.status == OfferStatus::Active || applications.contains_key(&o.id))
                .map(|o| {
                    OfferItem::Affiliate(AffiliateOfferView::of(
                        o,
                        affiliate,
                        applications.get(&o.id),
                    ))
                })
                .collect()
        }
    };
    Ok(json(StatusCode::OK, &OfferList { offers }))
}

async fn get(app: App, request: Request) -> Result<Response, ApiError> {
    let caller = caller(&request);
    if let Some(affiliate) = caller.account.affiliate_id() {
        let not_found = || ApiError::not_found("offer_id", "no such offer");
        let id = path_param(&request, "offer_id")
            .as_deref()
            .and_then(OfferId::parse)
            .ok_or_else(not_found)?;
        let offer = app
            .store
            .offer(id)
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(not_found)?;
        let application = app
            .store
            .application(id, affiliate)
            .await
            .map_err(ApiError::internal)?;
        if offer.status != OfferStatus::Active && application.is_none() {
            return Err(not_found());
        }
        return Ok(json(
            StatusCode::OK,
            &OfferItem::Affiliate(AffiliateOfferView::of(
                &offer,
                affiliate,
                application.as_ref(),
            )),
        ));
    }
    let offer = managed_offer(&app, &request, caller).await?;
    Ok(json(
        StatusCode::OK,
        &OfferItem::Full(OfferView::of(&offer)),
    ))
}

async fn update(app: App, request: Request) -> Result<Response, ApiError> {
    let patch: OfferPatch = json_body(&request)?;
    let caller = caller(&request);
    if !caller.is_admin() {
        caller.require_active()?;
    }
    let mut offer = managed_offer(&app, &request, caller).await?;
    let before = (
        offer.revenue,
        offer.payout,
        offer.payout_overrides.clone(),
        offer.events.clone(),
    );
    let currency = offer.currency;
    if let Some(text) = &patch.name {
        offer.name = name(text)?;
    }
    if let Some(text) = &patch.destination {
        offer.destination = destination(text)?;
    }
    if let Some(input) = &patch.revenue {
        offer.revenue = commission("revenue", input, currency)?;
    }
    if let Some(input) = &patch.payout {
        offer.payout = commission("payout", input, currency)?;
    }
    if let Some(input) = &patch.payout_overrides {
        offer.payout_overrides = overrides(input, currency)?;
    }
    if let Some(input) = &patch.caps {
        offer.caps = caps(input, currency)?;
    }
    if let Some(input) = &patch.allowed_countries {
        offer.allowed_countries = countries(input)?;
    }
    if let Some(input) = patch.allowed_devices {
        offer.allowed_devices = input;
    }
    if let Some(days) = patch.attribution_window_days {
        offer.attribution_window = window(days)?;
    }
    if let Some(days) = patch.review_days {
        offer.review_days = days_field("review_days", days)?;
    }
    if let Some(days) = patch.hold_days {
        offer.hold_days = hold(days)?;
    }
    if let Some(approval) = patch.approval {
        offer.approval = approval;
    }
    if let Some(input) = &patch.events {
        offer.events = events(input, currency)?;
    }
    if let Some(url) = &patch.fallback_url {
        offer.fallback_url = if url.is_empty() {
            None
        } else {
            Some(fallback(url)?)
        };
    }
    if let Some(hours) = patch.unique_window_hours {
        offer.unique_window_hours = unique_window(hours)?;
    }
    if let Some(seconds) = patch.min_conversion_seconds {
        offer.min_conversion_seconds = seconds;
    }
    if let Some(status) = patch.status {
        if offer.status == OfferStatus::Archived && status != OfferStatus::Archived {
            return Err(ApiError::unprocessable(
                "status",
                "an archived offer stays archived",
            ));
        }
        offer.status = status;
    }
    app.store
        .save_offer(&offer)
        .await
        .map_err(ApiError::internal)?;
    let payout_changed = before
        != (
            offer.revenue,
            offer.payout,
            offer.payout_overrides.clone(),
            offer.events.clone(),
        );
    let action = if payout_changed {
        "offer.payout_changed"
    } else {
        "offer.updated"
    };
    caller
        .audit(&app, action, Some(offer.id.to_string()))
        .await?;
    Ok(json(StatusCode::OK, &OfferView::of(&offer)))
}

async fn rotate_secret(app: App, request: Request) -> Result<Response, ApiError> {
    let caller = caller(&request);
    let mut offer = managed_offer(&app, &request, caller).await?;
    offer.postback_secret = new_postback_secret();
    app.store
        .save_offer(&offer)
        .await
        .map_err(ApiError::internal)?;
    caller
        .audit(&app, "offer.secret_rotated", Some(offer.id.to_string()))
        .await?;
    Ok(json(StatusCode::OK, &OfferView::of(&offer)))
}

/// What a test conversion may say; every field is optional (an empty body is fine).
#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestConversionInput {
    /// The affiliate whose link the test click is on; default: the first approved affiliate
    /// with a link for the offer.
    pub affiliate_id: Option<String>,
    /// The event, as a postback's `event` (default `conversion`).
    pub event: Option<String>,
    /// The sale amount, as a postback's `amount` (required for a revenue share).
    pub amount: Option<String>,
}

async fn test_conversion(app: App, request: Request) -> Result<Response, ApiError> {
    let caller = caller(&request);
    if !caller.is_admin() {
        caller.require_active()?;
    }
    let offer = managed_offer(&app, &request, caller).await?;
    let input: TestConversionInput = if request.body().is_empty() {
        TestConversionInput::default()
    } else {
        json_body(&request)?
    };
    let affiliate = input
        .affiliate_id
        .as_deref()
        .map(|id| {
            AffiliateId::parse(id)
                .ok_or_else(|| ApiError::invalid("affiliate_id", "is not an affiliate id"))
        })
        .transpose()?;
    let event = EventName::parse_or_default(input.event.as_deref())
        .map_err(|problem| ApiError::invalid("event", problem))?;
    let conversion = crate::tracking::test_conversion(&app, &offer, affiliate, event, input.amount)
        .await
        .map_err(super::postback::to_api_error)?
        .into_inner();
    caller
        .audit(
            &app,
            "offer.test_conversion",
            Some(conversion.id.to_string()),
        )
        .await?;
    Ok(json(
        StatusCode::CREATED,
        &super::conversions::view(&conversion, true, caller.is_admin()),
    ))
}

async fn apply(app: App, request: Request) -> Result<Response, ApiError> {
    let caller = caller(&request);
    caller.require_active()?;
    let affiliate = caller
        .account
        .affiliate_id()
        .expect("the route admits affiliates");
    let not_found = || ApiError::not_found("offer_id", "no such offer");
    let id = path_param(&request, "offer_id")
        .as_deref()
        .and_then(OfferId::parse)
        .ok_or_else(not_found)?;
    let offer = app
        .store
        .offer(id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(not_found)?;
    if offer.status != OfferStatus::Active {
        return Err(not_found());
    }
    let application = Application {
        offer_id: offer.id,
        affiliate_id: affiliate,
        advertiser_id: offer.advertiser_id,
        status: ApplicationStatus::Pending,
        postback_url: None,
        created_at: app.clock.now(),
        decided_at: None,
    };
    match app.store.create_application(&application).await {
        Err(crate::ports::TableError::Conflict { .. }) => {
            return Err(ApiError::conflict("offer_id", "you have applied already"));
        }
        other => other.map_err(ApiError::internal)?,
    }
    caller
        .audit(&app, "application.created", Some(offer.id.to_string()))
        .await?;
    Ok(json(
        StatusCode::CREATED,
        &ApplicationView::of(&application),
    ))
}

async fn list_applications(app: App, request: Request) -> Result<Response, ApiError> {
    let caller = caller(&request);
    let offer = managed_offer(&app, &request, caller).await?;
    let applications = app
        .store
        .applications_of_offer(offer.id)
        .await
        .map_err(ApiError::internal)?;
    Ok(json(
        StatusCode::OK,
        &ApplicationList {
            applications: applications.iter().map(ApplicationView::of).collect(),
        },
    ))
}

async fn decide(app: App, request: Request) -> Result<Response, ApiError> {
    let decision: Decision = json_body(&request)?;
    let caller = caller(&request);
    if !caller.is_admin() {
        caller.require_active()?;
    }
    let offer = managed_offer(&app, &request, caller).await?;
    let affiliate = path_param(&request, "affiliate_id")
        .as_deref()
        .and_then(AffiliateId::parse)
        .ok_or_else(|| ApiError::not_found("affiliate_id", "no such application"))?;
    let mut application = app
        .store
        .application(offer.id, affiliate)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("affiliate_id", "no such application"))?;
    if decision.status == ApplicationStatus::Pending {
        return Err(ApiError::invalid("status", "must be approved or rejected"));
    }
    application.status = decision.status;
    application.decided_at = Some(app.clock.now());
    app.store
        .save_application(&application)
        .await
        .map_err(ApiError::internal)?;
    let action = format!(
        "application.{}",
        if decision.status == ApplicationStatus::Approved {
            "approved"
        } else {
            "rejected"
        }
    );
    caller
        .audit(&app, &action, Some(format!("{}/{}", offer.id, affiliate)))
        .await?;
    Ok(json(StatusCode::OK, &ApplicationView::of(&application)))
}

async fn set_postback_url(app: App, request: Request) -> Result<Response, ApiError> {
    let input: PostbackUrlInput = json_body(&request)?;
    let caller = caller(&request);
    let affiliate = caller
        .account
        .affiliate_id()
        .expect("the route admits affiliates");
    let offer = path_param(&request, "offer_id")
        .as_deref()
        .and_then(OfferId::parse);
    let application = match offer {
        Some(offer) => app
            .store
            .application(offer, affiliate)
            .await
            .map_err(ApiError::internal)?,
        None => None,
    };
    let mut application = application
        .ok_or_else(|| ApiError::not_found("offer_id", "you have not applied to this offer"))?;
    if application.status != ApplicationStatus::Approved {
        return Err(ApiError::forbidden(
            "offer_id",
            "your application is not approved",
        ));
    }
    application.postback_url = input
        .url
        .as_deref()
        .map(|url| {
            let destination =
                Destination::parse(url).map_err(|problem| ApiError::invalid("url", problem))?;
            app.outbound
                .check_destination(destination.as_str())
                .map_err(|refused| {
                    ApiError::invalid(
                        "url",
                        format!(
                            "{refused}: postbacks go to the internet (an operator allows private addresses with LEADSREFER_OUTBOUND_ALLOW_PRIVATE=true)"
                        ),
                    )
                })?;
            Ok(destination.as_str().to_string())
        })
        .transpose()?;
    app.store
        .save_application(&application)
        .await
        .map_err(ApiError::internal)?;
    Ok(json(StatusCode::OK, &ApplicationView::of(&application)))
}
