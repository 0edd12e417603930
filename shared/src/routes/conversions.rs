//! `GET /api/conversions`: conversions, each party seeing its own — the advertiser what it
//! pays, the affiliate what it earns, an admin everything of the advertiser or affiliate it
//! names (the `conversions` function).

use lambda_http::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::{Route, schema};
use crate::app::App;
use crate::caller::{ANY_ROLE, caller};
use crate::domain::ids::{AdvertiserId, AffiliateId};
use crate::domain::money::Money;
use crate::domain::tracking::{Conversion, ConversionStatus};
use crate::http::{ApiError, Params, Request, Response, json};
use crate::ports::table::Cursor;

pub const LIST: Route = Route::new("conversions", &["GET"], "/api/conversions", ANY_ROLE,
    "Conversions, newest first (`?limit=`, `?cursor=`; admins add `?advertiser_id=` or `?affiliate_id=`)",
    |app, request| Box::pin(list(app, request)))
.answers(schema::<ConversionList>);

#[derive(Serialize, ToSchema)]
pub struct ConversionView {
    pub id: String,
    pub click_id: String,
    pub offer_id: String,
    pub affiliate_id: String,
    pub event: String,
    pub txn_id: Option<String>,
    /// The sale amount, as a decimal.
    pub sale: Option<String>,
    pub currency: String,
    /// What the advertiser pays (advertisers and admins only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revenue: Option<String>,
    /// What the affiliate earns (affiliates and admins only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payout: Option<String>,
    pub status: ConversionStatus,
    /// Why it was rejected (`cap`: the offer's cap was reached).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub created_at: String,
    /// The affiliate's sub-ids are theirs: advertisers see the link code only.
    pub link: String,
}

#[derive(Serialize, ToSchema)]
pub struct ConversionList {
    pub conversions: Vec<ConversionView>,
    /// Pass as `?cursor=` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

fn view(conversion: &Conversion, revenue: bool, payout: bool) -> ConversionView {
    ConversionView {
        id: conversion.id.to_string(),
        click_id: conversion.click_id.to_string(),
        offer_id: conversion.offer_id.to_string(),
        affiliate_id: conversion.affiliate_id.to_string(),
        event: conversion.event.as_str().to_string(),
        txn_id: conversion.txn_id.clone(),
        sale: conversion.sale.map(|s: Money| s.to_decimal()),
        currency: conversion.revenue.currency.code().to_string(),
        revenue: revenue.then(|| conversion.revenue.to_decimal()),
        payout: payout.then(|| conversion.payout.to_decimal()),
        status: conversion.status,
        reason: conversion.reason.clone(),
        created_at: conversion.at.to_string(),
        link: conversion.link.to_string(),
    }
}

async fn list(app: App, request: Request) -> Result<Response, ApiError> {
    let params = Params::from_query(&request)?;
    let limit = match params.text("limit", 4)? {
        Some(text) => text
            .parse()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or_else(|| ApiError::invalid("limit", "must be 1 to 500"))?,
        None => 100,
    };
    let cursor = params.text("cursor", 1024)?.map(|c| Cursor(c.to_string()));
    let caller = caller(&request);
    // Whose conversions, and which amounts the caller may see (revenue, payout).
    let (party, revenue, payout) = if let Some(advertiser) = caller.account.advertiser_id() {
        (Party::Advertiser(advertiser), true, false)
    } else if let Some(affiliate) = caller.account.affiliate_id() {
        (Party::Affiliate(affiliate), false, true)
    } else {
        let advertiser = params.text("advertiser_id", 26)?.map(AdvertiserId::parse);
        let affiliate = params.text("affiliate_id", 26)?.map(AffiliateId::parse);
        let party = match (advertiser, affiliate) {
            (Some(Some(id)), None) => Party::Advertiser(id),
            (None, Some(Some(id))) => Party::Affiliate(id),
            _ => {
                return Err(ApiError::invalid(
                    "advertiser_id",
                    "admins give exactly one valid advertiser_id or affiliate_id",
                ));
            }
        };
        (party, true, true)
    };
    let (conversions, next) = match party {
        Party::Advertiser(id) => app.store.conversions_of_advertiser(id, cursor, limit).await,
        Party::Affiliate(id) => app.store.conversions_of_affiliate(id, cursor, limit).await,
    }
    .map_err(storage)?;
    let conversions = conversions
        .iter()
        .map(|c| view(c, revenue, payout))
        .collect();
    Ok(json(
        StatusCode::OK,
        &ConversionList {
            conversions,
            next_cursor: next.map(|c| c.0),
        },
    ))
}

enum Party {
    Advertiser(AdvertiserId),
    Affiliate(AffiliateId),
}

/// A malformed cursor is the caller's; anything else is ours.
fn storage(error: crate::ports::TableError) -> ApiError {
    match error {
        crate::ports::TableError::Invalid(_) => {
            ApiError::invalid("cursor", "is not a cursor this API gave")
        }
        other => ApiError::internal(other),
    }
}
