//! Data-subject rights and policy versions (the `privacy` function): a user's export and
//! erasure, and admins' view of every request with its deadline and the policy notices.

use lambda_http::Body;
use lambda_http::http::{HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::{Route, schema};
use crate::app::App;
use crate::caller::{self, ADMIN, ANY_ROLE, caller};
use crate::http::{
    ApiError, Fields, Request, Response, json, json_body, no_content, path_param, uncached,
};
use crate::privacy::{self, PrivacyError};
use crate::secret::Secret;
use crate::store::{PolicyVersion, PrivacyRequest};

pub const REQUEST_EXPORT: Route = Route::new(
    "privacy",
    &["POST"],
    "/api/privacy/exports",
    ANY_ROLE,
    "Ask for an export of all your personal data: a JSON file, linked by mail when ready (minutes), downloadable for 7 days",
    |app, request| Box::pin(request_export(app, request)),
)
.succeeds_with(&[202])
.answers(schema::<PrivacyRequest>);

pub const DOWNLOAD_EXPORT: Route = Route::new(
    "privacy",
    &["GET"],
    "/api/privacy/exports/{request_id}",
    ANY_ROLE,
    "Download your export (JSON), until its link expires",
    |app, request| Box::pin(download(app, request)),
)
.succeeds_with(&[200]);

pub const MY_REQUESTS: Route = Route::new(
    "privacy",
    &["GET"],
    "/api/privacy/requests",
    ANY_ROLE,
    "Your data-subject requests and their state",
    |app, request| Box::pin(my_requests(app, request)),
)
.answers(schema::<Requests>);

pub const ERASE: Route = Route::new(
    "privacy",
    &["POST"],
    "/api/privacy/erasure",
    ANY_ROLE,
    "Erase your account (`{\"password\"}`): closed at once, personal data erased; payout, ledger and tax records kept, pseudonymised, for the seven years the law requires",
    |app, request| Box::pin(erase(app, request)),
)
.succeeds_with(&[200])
.takes(schema::<ErasureRequest>)
.answers(schema::<PrivacyRequest>);

pub const ALL_REQUESTS: Route = Route::new(
    "privacy",
    &["GET"],
    "/api/admin/privacy/requests",
    ADMIN,
    "Every data-subject request with its 30-day deadline, open ones first",
    |app, request| Box::pin(all_requests(app, request)),
)
.answers(schema::<Requests>);

pub const PUBLISH_POLICY: Route = Route::new(
    "privacy",
    &["POST"],
    "/api/admin/policy-versions",
    ADMIN,
    "Publish a privacy policy version (`{\"version\",\"summary\"}`); every active user is mailed the notice once",
    |app, request| Box::pin(publish_policy(app, request)),
)
.takes(schema::<PolicyInput>)
.answers(schema::<PolicyVersion>);

pub const ACKNOWLEDGE_POLICY: Route = Route::new(
    "privacy",
    &["POST"],
    "/api/privacy/policy-acknowledgement",
    ANY_ROLE,
    "Acknowledge the current privacy policy version (`{\"version\"}`, as `GET /api/auth/me` names it under `policy`); the platform stops showing its notice",
    |app, request| Box::pin(acknowledge_policy(app, request)),
)
.takes(schema::<Acknowledgement>);

pub const POLICIES: Route = Route::new(
    "privacy",
    &["GET"],
    "/api/admin/policy-versions",
    ADMIN,
    "Published policy versions and how far their notices went",
    |app, request| Box::pin(policies(app, request)),
)
.answers(schema::<Policies>);

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct ErasureRequest {
    /// The account's current password, confirming the erasure.
    password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyInput {
    /// Such as `2026-12`: letters, digits, dots, dashes, underscores.
    version: String,
    /// What changed, as the notice tells it.
    summary: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Acknowledgement {
    /// The version acknowledged: the current one.
    version: String,
}

#[derive(Serialize, ToSchema)]
pub struct RequestView {
    #[serde(flatten)]
    pub request: PrivacyRequest,
    /// Still open past its deadline.
    pub overdue: bool,
}

#[derive(Serialize, ToSchema)]
pub struct Requests {
    pub requests: Vec<RequestView>,
}

#[derive(Serialize, ToSchema)]
pub struct Policies {
    pub policies: Vec<PolicyVersion>,
}

fn to_api(error: PrivacyError) -> ApiError {
    match error {
        PrivacyError::Invalid { field, problem } => ApiError::invalid(field, problem),
        other => ApiError::internal(other),
    }
}

fn views(app: &App, requests: Vec<PrivacyRequest>) -> Requests {
    let now = app.clock.now();
    Requests {
        requests: requests
            .into_iter()
            .map(|request| RequestView {
                overdue: request.completed_at.is_none() && request.due_at < now,
                request,
            })
            .collect(),
    }
}

async fn request_export(app: App, request: Request) -> Result<Response, ApiError> {
    let caller = caller(&request);
    let export = privacy::request_export(&app, &caller.account)
        .await
        .map_err(to_api)?;
    caller
        .audit(&app, "privacy.export_requested", Some(export.id.clone()))
        .await?;
    Ok(json(StatusCode::ACCEPTED, &export))
}

async fn download(app: App, request: Request) -> Result<Response, ApiError> {
    let hidden = || ApiError::not_found("request_id", "no such export");
    let id = path_param(&request, "request_id").ok_or_else(hidden)?;
    let account = &caller(&request).account;
    let export = app
        .store
        .privacy_request(account.id, &id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(hidden)?;
    if !privacy::downloadable(&export, app.clock.now()) {
        return Err(match (export.status, export.download_until) {
            (crate::store::RequestStatus::Pending, _) => ApiError::conflict(
                "request_id",
                "this export is not ready yet: it is made within a few minutes and mailed to you; try again then",
            ),
            (_, Some(until)) => ApiError::not_found(
                "request_id",
                format!(
                    "this export's link expired at {} UTC: ask for a new one",
                    until.strftime("%Y-%m-%d %H:%M")
                ),
            ),
            _ => ApiError::not_found("request_id", "this export is gone: ask for a new one"),
        });
    }
    let key = privacy::export_key(&export).map_err(ApiError::internal)?;
    let bytes = app
        .blobs
        .get(&key)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(hidden)?;
    let mut response = uncached(StatusCode::OK, "application/json", Body::Binary(bytes));
    let disposition = format!(
        "attachment; filename=\"leadsrefer-export-{}.json\"",
        export.id
    );
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

async fn my_requests(app: App, request: Request) -> Result<Response, ApiError> {
    let account = &caller(&request).account;
    let requests = app
        .store
        .privacy_requests_of(account.id)
        .await
        .map_err(ApiError::internal)?;
    Ok(json(StatusCode::OK, &views(&app, requests)))
}

async fn erase(app: App, request: Request) -> Result<Response, ApiError> {
    let body: Value = json_body(&request)?;
    let fields = Fields::of(body, &["password"], "an erasure request")?;
    let password = Secret::new(fields.text("password")?);
    let caller = caller(&request);
    let erased = privacy::erase(&app, &caller.account, &password)
        .await
        .map_err(to_api)?;
    let mut response = json(StatusCode::OK, &erased);
    let cookie =
        HeaderValue::from_str(&caller::cleared_session_cookie()).map_err(ApiError::internal)?;
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(response)
}

async fn all_requests(app: App, _request: Request) -> Result<Response, ApiError> {
    let mut requests = app
        .store
        .privacy_requests()
        .await
        .map_err(ApiError::internal)?;
    // Open ones first, soonest deadline first.
    requests.sort_by_key(|r| (r.completed_at.is_some(), r.due_at));
    Ok(json(StatusCode::OK, &views(&app, requests)))
}

async fn publish_policy(app: App, request: Request) -> Result<Response, ApiError> {
    let input: PolicyInput = json_body(&request)?;
    let policy = privacy::publish_policy(&app, &input.version, &input.summary)
        .await
        .map_err(to_api)?;
    caller(&request)
        .audit(&app, "policy.published", Some(policy.version.clone()))
        .await?;
    Ok(json(StatusCode::CREATED, &policy))
}

async fn policies(app: App, _request: Request) -> Result<Response, ApiError> {
    let policies = app.store.policies().await.map_err(ApiError::internal)?;
    Ok(json(StatusCode::OK, &Policies { policies }))
}

async fn acknowledge_policy(app: App, request: Request) -> Result<Response, ApiError> {
    let input: Acknowledgement = json_body(&request)?;
    let caller = caller(&request);
    privacy::acknowledge_policy(&app, caller.account.id, &input.version)
        .await
        .map_err(to_api)?;
    Ok(no_content())
}
