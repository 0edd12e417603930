//! `GET|POST /postback`: the advertiser's server-to-server conversion.
//!
//! Parameters (query string, or a form or JSON body on POST): `click_id` (required), `txn_id`
//! (repeats are idempotent), `event` (default `conversion`), `amount` and `currency` (the sale),
//! and `token` (the offer's postback secret) unless a `LeadsRefer-Signature` header signs the
//! request instead. Answers `201` with the new conversion, or `200` with the original one marked
//! `"duplicate": true`.

use lambda_http::http::StatusCode;
use serde::Serialize;

use super::{Route, schema};
use crate::app::App;
use crate::caller::Access;
use crate::domain::ids::ClickId;
use crate::domain::money::{Currency, Money};
use crate::domain::offer::CommissionError;
use crate::domain::tracking::{Conversion, EventName};
use crate::http::{ApiError, Params, Request, Response, json};
use crate::store::Recorded;
use crate::tracking::{self, Postback, PostbackAuth, TrackingError};

pub const ROUTE: Route = Route::new(
    "postback",
    &["GET", "POST"],
    "/postback",
    Access::Public,
    "The advertiser's server-to-server conversion (authenticated by the offer's postback token or signature)",
    |app, request| Box::pin(handle(app, request)),
)
.succeeds_with(&[201, 200])
.answers(schema::<Answer>);

pub const SIGNATURE_HEADER: &str = "leadsrefer-signature";
pub const MAX_TXN_ID: usize = 255;

pub async fn handle(app: App, request: Request) -> Result<Response, ApiError> {
    let postback = parse(&request)?;
    let recorded = tracking::record_conversion(&app, postback)
        .await
        .map_err(to_api_error)?;
    let (status, duplicate, conversion) = match recorded {
        Recorded::New(conversion) => (StatusCode::CREATED, false, conversion),
        Recorded::Duplicate(conversion) => (StatusCode::OK, true, conversion),
    };
    Ok(json(
        status,
        &Answer {
            duplicate,
            conversion: AdvertiserView::of(&conversion),
        },
    ))
}

fn parse(request: &Request) -> Result<Postback, ApiError> {
    let params = Params::from_query_and_body(request)?;
    let click_id = params.required("click_id", 64)?;
    let click_id = ClickId::parse(click_id)
        .ok_or_else(|| ApiError::invalid("click_id", "is not a click id"))?;
    let event = EventName::parse_or_default(params.text("event", 64)?)
        .map_err(|problem| ApiError::invalid("event", problem))?;
    let currency = params
        .text("currency", 3)?
        .map(|code| {
            Currency::parse(code)
                .map_err(|_| ApiError::invalid("currency", "is not an ISO 4217 currency code"))
        })
        .transpose()?;
    let auth = match request.headers().get(SIGNATURE_HEADER) {
        Some(header) => PostbackAuth::Signature {
            header: header
                .to_str()
                .map_err(|_| ApiError::unauthorized("signature", "is malformed"))?
                .to_string(),
            payload: match request.method().as_str() {
                "POST" => request.body().to_vec(),
                _ => request.uri().query().unwrap_or("").as_bytes().to_vec(),
            },
        },
        None => PostbackAuth::Token(
            params
                .text("token", 256)?
                .ok_or_else(|| {
                    ApiError::unauthorized(
                        "token",
                        "is required (or sign the request with a LeadsRefer-Signature header)",
                    )
                })?
                .to_string(),
        ),
    };
    Ok(Postback {
        click_id,
        txn_id: params.text("txn_id", MAX_TXN_ID)?.map(str::to_string),
        event,
        amount: params.text("amount", 32)?.map(str::to_string),
        currency,
        auth,
        // A server-to-server call comes from the advertiser's network, not the shopper's.
        client_prefix: None,
    })
}

pub(crate) fn to_api_error(error: TrackingError) -> ApiError {
    match error {
        TrackingError::UnknownClick => ApiError::not_found("click_id", "no such click"),
        TrackingError::NoLink => ApiError::unprocessable(
            "affiliate_id",
            "has no link for this offer: approve an affiliate, who then makes one",
        ),
        TrackingError::WrongToken => {
            ApiError::unauthorized("token", "does not match this click's offer")
        }
        TrackingError::WrongSignature => {
            ApiError::unauthorized("signature", "does not match this click's offer")
        }
        TrackingError::StaleSignature => {
            ApiError::unauthorized("signature", "its timestamp is more than 5 minutes from now")
        }
        TrackingError::OutsideWindow => ApiError::unprocessable(
            "click_id",
            "the click is older than the offer's attribution window",
        ),
        TrackingError::Amount(problem) => ApiError::invalid("amount", problem),
        TrackingError::Commission(CommissionError::UnknownEvent) => {
            ApiError::unprocessable("event", "is not an event this offer pays for")
        }
        TrackingError::Commission(CommissionError::SaleRequired) => {
            ApiError::unprocessable("amount", "is required for this revenue-share offer")
        }
        TrackingError::Commission(CommissionError::CurrencyMismatch(currency)) => {
            ApiError::unprocessable(
                "currency",
                format!("must be {currency}, the offer's currency"),
            )
        }
        other @ (TrackingError::UnknownLink
        | TrackingError::OfferPaused
        | TrackingError::Ledger(_)
        | TrackingError::Storage(_)) => ApiError::internal(other),
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct Answer {
    duplicate: bool,
    conversion: AdvertiserView,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Amount {
    amount: String,
    currency: &'static str,
}

impl From<Money> for Amount {
    fn from(money: Money) -> Self {
        Self {
            amount: money.to_decimal(),
            currency: money.currency.code(),
        }
    }
}

/// A conversion as its advertiser sees it: what they pay, not what the affiliate earns.
#[derive(Serialize, utoipa::ToSchema)]
struct AdvertiserView {
    id: String,
    click_id: String,
    offer_id: String,
    affiliate_id: String,
    event: String,
    txn_id: Option<String>,
    sale: Option<Amount>,
    revenue: Amount,
    status: crate::domain::tracking::ConversionStatus,
    /// Why it was rejected (`cap`: the offer's cap was reached).
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// Why it is held for review, if it is (`robot_click`, `too_fast`, `ip_mismatch`).
    flags: Vec<String>,
    created_at: String,
}

impl AdvertiserView {
    fn of(conversion: &Conversion) -> Self {
        Self {
            id: conversion.id.to_string(),
            click_id: conversion.click_id.to_string(),
            offer_id: conversion.offer_id.to_string(),
            affiliate_id: conversion.affiliate_id.to_string(),
            event: conversion.event.as_str().to_string(),
            txn_id: conversion.txn_id.clone(),
            sale: conversion.sale.map(Amount::from),
            revenue: conversion.revenue.into(),
            status: conversion.status,
            reason: conversion.reason.clone(),
            flags: conversion.flags.clone(),
            created_at: conversion.at.to_string(),
        }
    }
}
