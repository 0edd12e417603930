//! `/api/admin/…`: accounts (approval, suspension, sign-in locks) and the audit log
//! (the `admin` function). Admins see everything else through the other routes.

use lambda_http::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::AccountView;
use super::{Route, schema};
use crate::accounts::{self, AccountError};
use crate::app::App;
use crate::caller::{ADMIN, caller};
use crate::dispatch;
use crate::domain::accounts::{AccountId, AccountStatus};
use crate::http::{ApiError, Params, Request, Response, json, json_body, path_param};
use crate::ports::table::Cursor;
use crate::store::{AuditEvent, Flagged};

pub const LIST_ACCOUNTS: Route = Route::new(
    "admin",
    &["GET"],
    "/api/admin/accounts",
    ADMIN,
    "Every account with its status and any sign-in lock (`?cursor=`)",
    |app, request| Box::pin(list_accounts(app, request)),
)
.answers(schema::<AccountList>);

pub const SET_STATUS: Route = Route::new(
    "admin",
    &["PUT"],
    "/api/admin/accounts/{account_id}/status",
    ADMIN,
    "Approve (active), suspend or reinstate an account",
    |app, request| Box::pin(set_status(app, request)),
)
.takes(schema::<StatusInput>)
.answers(schema::<AccountView>);

pub const AUDIT: Route = Route::new(
    "admin",
    &["GET"],
    "/api/admin/audit",
    ADMIN,
    "The audit log, newest first (`?cursor=`)",
    |app, request| Box::pin(audit(app, request)),
)
.answers(schema::<AuditList>);

pub const DEAD_LETTERS: Route = Route::new(
    "admin",
    &["GET"],
    "/api/admin/postbacks/dead-letters",
    ADMIN,
    "Affiliate postbacks given up after failing too long, with their last error",
    |app, request| Box::pin(dead_letters(app, request)),
)
.answers(schema::<DeadLetterList>);

pub const REPLAY: Route = Route::new(
    "admin",
    &["POST"],
    "/api/admin/postbacks/dead-letters/{delivery_id}/replay",
    ADMIN,
    "Queue a dead-lettered postback again (the next dispatch run sends it)",
    |app, request| Box::pin(replay(app, request)),
)
.succeeds_with(&[202]);

pub const FLAGGED: Route = Route::new(
    "admin",
    &["GET"],
    "/api/admin/flagged",
    ADMIN,
    "Clicks and conversions flagged as suspect on one UTC day (`?day=YYYY-MM-DD`, default today), with their reasons, 200 a page (`?cursor=` from `next_cursor`); a flooding visitor is listed once a minute, with the click that began the flood",
    |app, request| Box::pin(flagged(app, request)),
)
.answers(schema::<FlaggedList>);

#[derive(Serialize, ToSchema)]
pub struct FlaggedList {
    pub day: String,
    pub flagged: Vec<Flagged>,
    pub next_cursor: Option<String>,
}

async fn flagged(app: App, request: Request) -> Result<Response, ApiError> {
    let params = Params::from_query(&request)?;
    let day = match params.text("day", 10)? {
        Some(text) => text
            .parse::<jiff::civil::Date>()
            .map_err(|_| ApiError::invalid("day", "must be a date such as 2026-11-29"))?,
        None => jiff::tz::Offset::UTC.to_datetime(app.clock.now()).date(),
    };
    let (flagged, next) = app
        .store
        .flagged(&day.to_string(), cursor(&request)?, 200)
        .await
        .map_err(storage)?;
    Ok(json(
        StatusCode::OK,
        &FlaggedList {
            day: day.to_string(),
            flagged,
            next_cursor: next.map(|c| c.0),
        },
    ))
}

#[derive(Serialize, ToSchema)]
pub struct DeadLetterView {
    pub id: String,
    pub affiliate_id: String,
    /// The conversion a postback reports; none for a call recording to archive.
    pub conversion_id: Option<String>,
    /// `postback`, `recording` or `call_conversion`.
    pub kind: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub created_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct DeadLetterList {
    pub dead_letters: Vec<DeadLetterView>,
}

async fn dead_letters(app: App, _request: Request) -> Result<Response, ApiError> {
    let letters = dispatch::dead_letters(&app)
        .await
        .map_err(ApiError::internal)?;
    let dead_letters = letters
        .into_iter()
        .map(|d| DeadLetterView {
            id: d.id,
            affiliate_id: d.affiliate_id.to_string(),
            conversion_id: d.conversion_id.map(|id| id.to_string()),
            kind: match d.job {
                None => "postback",
                Some(dispatch::CallJob::Recording { .. }) => "recording",
                Some(dispatch::CallJob::Conversion { .. }) => "call_conversion",
            }
            .into(),
            attempts: d.attempts,
            last_error: d.last_error,
            created_at: d.created_at.to_string(),
        })
        .collect();
    Ok(json(StatusCode::OK, &DeadLetterList { dead_letters }))
}

async fn replay(app: App, request: Request) -> Result<Response, ApiError> {
    let id = path_param(&request, "delivery_id").unwrap_or_default();
    if !dispatch::replay(&app, &id)
        .await
        .map_err(ApiError::internal)?
    {
        return Err(ApiError::not_found("delivery_id", "no such dead letter"));
    }
    let caller = caller(&request);
    caller.audit(&app, "postback.replayed", Some(id)).await?;
    Ok(json(
        StatusCode::ACCEPTED,
        &serde_json::json!({ "message": "queued; the next dispatch run sends it" }),
    ))
}

#[derive(Serialize, ToSchema)]
pub struct AdminAccountView {
    #[serde(flatten)]
    pub account: AccountView,
    /// Sign-in is refused until then after too many failures.
    pub locked_until: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AccountList {
    pub accounts: Vec<AdminAccountView>,
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusInput {
    pub status: AccountStatus,
}

#[derive(Serialize, ToSchema)]
pub struct AuditList {
    pub events: Vec<AuditEvent>,
    pub next_cursor: Option<String>,
}

fn cursor(request: &Request) -> Result<Option<Cursor>, ApiError> {
    Ok(Params::from_query(request)?
        .text("cursor", 1024)?
        .map(|c| Cursor(c.to_string())))
}

fn storage(error: crate::ports::TableError) -> ApiError {
    match error {
        crate::ports::TableError::Invalid(_) => {
            ApiError::invalid("cursor", "is not a cursor this API gave")
        }
        other => ApiError::internal(other),
    }
}

async fn list_accounts(app: App, request: Request) -> Result<Response, ApiError> {
    let (accounts, next) = app
        .store
        .accounts(cursor(&request)?, 100)
        .await
        .map_err(storage)?;
    let mut views = Vec::with_capacity(accounts.len());
    for account in &accounts {
        let locked_until = accounts::locked_until(&app, &account.email)
            .await
            .map_err(ApiError::internal)?;
        views.push(AdminAccountView {
            account: AccountView::of(account),
            locked_until: locked_until.map(|t| t.to_string()),
        });
    }
    Ok(json(
        StatusCode::OK,
        &AccountList {
            accounts: views,
            next_cursor: next.map(|c| c.0),
        },
    ))
}

async fn set_status(app: App, request: Request) -> Result<Response, ApiError> {
    let input: StatusInput = json_body(&request)?;
    let caller = caller(&request);
    let id = path_param(&request, "account_id")
        .as_deref()
        .and_then(AccountId::parse)
        .ok_or_else(|| ApiError::not_found("account_id", "no such account"))?;
    if id == caller.account.id {
        return Err(ApiError::unprocessable(
            "account_id",
            "admins cannot change their own status",
        ));
    }
    let account = accounts::set_status(&app, &caller.account, id, input.status, &caller.client)
        .await
        .map_err(|e| match e {
            AccountError::UnknownAccount => ApiError::not_found("account_id", "no such account"),
            other => ApiError::internal(other),
        })?;
    Ok(json(StatusCode::OK, &AccountView::of(&account)))
}

async fn audit(app: App, request: Request) -> Result<Response, ApiError> {
    let (events, next) = app
        .store
        .audit(cursor(&request)?, 100)
        .await
        .map_err(storage)?;
    Ok(json(
        StatusCode::OK,
        &AuditList {
            events,
            next_cursor: next.map(|c| c.0),
        },
    ))
}
