//! `GET /api/conversions`: conversions, each party seeing its own — the advertiser what it
//! pays, the affiliate what it earns, an admin everything of the advertiser or affiliate it
//! names (the `conversions` function).

use lambda_http::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Route, schema};
use crate::app::App;
use crate::caller::{ADVERTISER_OR_ADMIN, ANY_ROLE, Caller, caller};
use crate::domain::accounts::Party;
use crate::domain::ids::ConversionId;
use crate::domain::money::Money;
use crate::domain::tracking::{Conversion, ConversionStatus};
use crate::http::{ApiError, Params, Request, Response, json, json_body, path_param};
use crate::lifecycle::{self, Decider, Decision, LifecycleError, MAX_REASON};
use crate::ports::table::Cursor;

pub const LIST: Route = Route::new("conversions", &["GET"], "/api/conversions", ANY_ROLE,
    "Conversions, newest first (`?limit=`, `?cursor=`; admins add `?advertiser_id=` or `?affiliate_id=`)",
    |app, request| Box::pin(list(app, request)))
.answers(schema::<ConversionList>);

pub const DECIDE: Route = Route::new("conversions", &["PUT"], "/api/conversions/{id}/status", ADVERTISER_OR_ADMIN,
    "Approve or reject a pending conversion, or reverse an approved one (a chargeback, a refund), with a reason",
    |app, request| Box::pin(decide_one(app, request)))
.takes(schema::<DecisionInput>)
.answers(schema::<ConversionView>);

pub const DECIDE_MANY: Route = Route::new(
    "conversions",
    &["POST"],
    "/api/conversions/status",
    ADVERTISER_OR_ADMIN,
    "The same decision for up to 100 conversions; each answered on its own",
    |app, request| Box::pin(decide_many(app, request)),
)
.succeeds_with(&[200])
.takes(schema::<BulkDecisionInput>)
.answers(schema::<BulkDecisionResult>);

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionInput {
    pub status: DecidedStatus,
    /// Why; shown to the affiliate. At most 500 characters.
    #[serde(default)]
    pub reason: Option<String>,
}

/// What an advertiser or admin may decide: the statuses a decision sets (a conversion is
/// pending only until decided, and a test stays a test).
#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DecidedStatus {
    Approved,
    Rejected,
    Reversed,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkDecisionInput {
    /// 1 to 100 conversion ids.
    pub ids: Vec<String>,
    pub status: DecidedStatus,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct BulkOutcome {
    pub id: String,
    /// The conversion's status after the decision, when it applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ConversionStatus>,
    /// Why it did not apply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct BulkDecisionResult {
    pub results: Vec<BulkOutcome>,
}

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

pub(crate) fn view(conversion: &Conversion, revenue: bool, payout: bool) -> ConversionView {
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
    let party = crate::caller::party(caller, &params)?;
    // Each party sees its own side of the money; admins both.
    let (revenue, payout) = (
        caller.account.affiliate_id().is_none(),
        caller.account.advertiser_id().is_none(),
    );
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

/// A malformed cursor is the caller's; anything else is ours.
fn storage(error: crate::ports::TableError) -> ApiError {
    match error {
        crate::ports::TableError::Invalid(_) => {
            ApiError::invalid("cursor", "is not a cursor this API gave")
        }
        other => ApiError::internal(other),
    }
}

/// The decision a request asks for, with its reason checked.
fn decision_of(
    status: DecidedStatus,
    reason: Option<String>,
) -> Result<(Decision, Option<String>), ApiError> {
    let decision = match status {
        DecidedStatus::Approved => Decision::Approve,
        DecidedStatus::Rejected => Decision::Reject,
        DecidedStatus::Reversed => Decision::Reverse,
    };
    let reason = reason
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty());
    if let Some(reason) = &reason {
        if reason.chars().count() > MAX_REASON {
            return Err(ApiError::invalid(
                "reason",
                format!("longer than {MAX_REASON} characters"),
            ));
        }
        if reason.chars().any(char::is_control) {
            return Err(ApiError::invalid(
                "reason",
                "must not contain control characters",
            ));
        }
    }
    Ok((decision, reason))
}

fn decider(caller: &Caller) -> Result<Decider, ApiError> {
    match caller.account.advertiser_id() {
        Some(advertiser) => {
            caller.require_active()?;
            Ok(Decider::Advertiser(advertiser))
        }
        None => Ok(Decider::Admin),
    }
}

fn lifecycle_error(error: LifecycleError) -> ApiError {
    match error {
        LifecycleError::NotFound => ApiError::not_found("id", "no such conversion"),
        error @ (LifecycleError::NotAllowed { .. } | LifecycleError::Changed) => {
            ApiError::conflict("status", error)
        }
        other => ApiError::internal(other),
    }
}

async fn decide_one(app: App, request: Request) -> Result<Response, ApiError> {
    let input: DecisionInput = json_body(&request)?;
    let (decision, reason) = decision_of(input.status, input.reason)?;
    let caller = caller(&request);
    let decider = decider(caller)?;
    let id = path_param(&request, "id")
        .as_deref()
        .and_then(ConversionId::parse)
        .ok_or_else(|| ApiError::not_found("id", "no such conversion"))?;
    let conversion = lifecycle::decide(&app, id, decision, reason, decider)
        .await
        .map_err(lifecycle_error)?;
    caller
        .audit(
            &app,
            &format!("conversion.{}", decision.status().as_str()),
            Some(id.to_string()),
        )
        .await?;
    let admin = matches!(decider, Decider::Admin);
    Ok(json(StatusCode::OK, &view(&conversion, true, admin)))
}

async fn decide_many(app: App, request: Request) -> Result<Response, ApiError> {
    let input: BulkDecisionInput = json_body(&request)?;
    let (decision, reason) = decision_of(input.status, input.reason)?;
    if input.ids.is_empty() || input.ids.len() > 100 {
        return Err(ApiError::invalid("ids", "takes 1 to 100 conversion ids"));
    }
    let ids = input
        .ids
        .iter()
        .map(|id| ConversionId::parse(id))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| ApiError::invalid("ids", "holds something that is not a conversion id"))?;
    let caller = caller(&request);
    let decider = decider(caller)?;
    let mut results = Vec::with_capacity(ids.len());
    for id in ids {
        let outcome = match lifecycle::decide(&app, id, decision, reason.clone(), decider).await {
            Ok(conversion) => BulkOutcome {
                id: id.to_string(),
                status: Some(conversion.status),
                error: None,
            },
            Err(LifecycleError::Storage(error)) => return Err(ApiError::internal(error)),
            Err(error) => BulkOutcome {
                id: id.to_string(),
                status: None,
                error: Some(error.to_string()),
            },
        };
        results.push(outcome);
    }
    caller
        .audit(
            &app,
            &format!("conversions.{}", decision.status().as_str()),
            Some(format!("{} conversions", results.len())),
        )
        .await?;
    Ok(json(StatusCode::OK, &BulkDecisionResult { results }))
}
