//! `/api/auth/…`: registration, email verification, sign-in and -out, "who am I", passwords
//! and API keys (the `auth` function).

use lambda_http::http::{HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Route, schema};
use crate::accounts::{self, AccountError, Adulthood, NewSession, Registration};
use crate::app::App;
use crate::caller::{self, ANY_ROLE, Access, Caller, Credential, caller, client};
use crate::domain::accounts::{Account, AccountStatus, Role, check_name, check_password};
use crate::domain::email::EmailAddress;
use crate::http::{ApiError, Params, Request, Response, json, json_body, no_content, path_param};
use crate::secret::Secret;
use crate::store::ApiKeyRecord;

pub const REGISTER: Route = Route::new("auth", &["POST"], "/api/auth/register", Access::Public,
    "Register as an advertiser or affiliate (18 or older); a verification link is mailed and an admin approves the account",
    |app, request| Box::pin(register(app, request)))
.takes(schema::<RegisterRequest>)
.answers(schema::<AccountView>);

pub const VERIFY_EMAIL: Route = Route::new(
    "auth",
    &["GET"],
    "/api/auth/verify-email",
    Access::Public,
    "Confirm an email address with the token from the verification link (`?token=`)",
    |app, request| Box::pin(verify_email(app, request)),
)
.answers(schema::<AccountView>);

pub const SIGN_IN: Route = Route::new("auth", &["POST"], "/api/auth/sign-in", Access::Public,
    "Sign in: sets the session cookie and answers the CSRF token that state-changing requests must send as X-CSRF-Token",
    |app, request| Box::pin(sign_in(app, request)))
.succeeds_with(&[200])
.takes(schema::<SignInRequest>)
.answers(schema::<SessionView>);

pub const SIGN_OUT: Route = Route::new(
    "auth",
    &["POST"],
    "/api/auth/sign-out",
    ANY_ROLE,
    "End this session",
    |app, request| Box::pin(sign_out(app, request)),
);

pub const ME: Route = Route::new(
    "auth",
    &["GET"],
    "/api/auth/me",
    ANY_ROLE,
    "Who am I: the caller's account (and, for a session, its CSRF token)",
    |app, request| Box::pin(me(app, request)),
)
.answers(schema::<SessionView>);

pub const CORRECT_ME: Route = Route::new(
    "auth",
    &["PATCH"],
    "/api/auth/me",
    ANY_ROLE,
    "Correct your profile (`{\"name\"}`)",
    |app, request| Box::pin(correct_me(app, request)),
)
.takes(schema::<ProfileCorrection>)
.answers(schema::<SessionView>);

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileCorrection {
    /// The name shown on the account, 1 to 100 characters.
    name: String,
}

pub const CHANGE_PASSWORD: Route = Route::new(
    "auth",
    &["POST"],
    "/api/auth/password",
    ANY_ROLE,
    "Change the password; every session ends and a new one starts",
    |app, request| Box::pin(change_password(app, request)),
)
.succeeds_with(&[200])
.takes(schema::<ChangePasswordRequest>)
.answers(schema::<SessionView>);

pub const REQUEST_RESET: Route = Route::new("auth", &["POST"], "/api/auth/password-reset", Access::Public,
    "Ask for a password-reset code by email (answers 202 whether or not the address has an account)",
    |app, request| Box::pin(request_reset(app, request)))
.succeeds_with(&[202])
.takes(schema::<ResetRequest>);

pub const CONFIRM_RESET: Route = Route::new(
    "auth",
    &["POST"],
    "/api/auth/password-reset/confirm",
    Access::Public,
    "Set a new password with the emailed code (single use, one hour); every session ends",
    |app, request| Box::pin(confirm_reset(app, request)),
)
.takes(schema::<ConfirmResetRequest>);

pub const CREATE_API_KEY: Route = Route::new(
    "auth",
    &["POST"],
    "/api/auth/api-keys",
    ANY_ROLE,
    "Create an API key for `Authorization: Bearer`; the key is shown in this answer only",
    |app, request| Box::pin(create_api_key(app, request)),
)
.takes(schema::<CreateApiKeyRequest>)
.answers(schema::<NewApiKeyView>);

pub const LIST_API_KEYS: Route = Route::new(
    "auth",
    &["GET"],
    "/api/auth/api-keys",
    ANY_ROLE,
    "The caller's API keys (never the keys themselves)",
    |app, request| Box::pin(list_api_keys(app, request)),
)
.answers(schema::<ApiKeyList>);

pub const REVOKE_API_KEY: Route = Route::new(
    "auth",
    &["DELETE"],
    "/api/auth/api-keys/{key_id}",
    ANY_ROLE,
    "Revoke one of the caller's API keys",
    |app, request| Box::pin(revoke_api_key(app, request)),
);

/// An account as its owner (or an admin) sees it.
#[derive(Serialize, ToSchema)]
pub struct AccountView {
    pub id: String,
    pub role: Role,
    pub email: String,
    pub name: String,
    pub status: AccountStatus,
    pub email_verified: bool,
    pub created_at: String,
}

impl AccountView {
    pub fn of(account: &Account) -> Self {
        Self {
            id: account.id.to_string(),
            role: account.role,
            email: account.email.as_str().to_string(),
            name: account.name.clone(),
            status: account.status,
            email_verified: account.email_verified,
            created_at: account.created_at.to_string(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SessionView {
    pub account: AccountView,
    /// Send as `X-CSRF-Token` with every POST, PUT, PATCH and DELETE of this session.
    pub csrf_token: Option<String>,
    /// The current privacy policy version, if the account has not acknowledged it yet (only
    /// `GET /api/auth/me` says; acknowledge it with `POST /api/privacy/policy-acknowledgement`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<crate::store::PolicyVersion>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RegisterRole {
    Advertiser,
    Affiliate,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub email: String,
    pub name: String,
    pub password: String,
    pub role: RegisterRole,
    /// `YYYY-MM-DD`; or instead set `adult: true`.
    #[serde(default)]
    pub date_of_birth: Option<String>,
    /// An explicit statement that the registrant is 18 or older.
    #[serde(default)]
    pub adult: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInRequest {
    pub email: String,
    pub password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    pub email: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmResetRequest {
    pub token: String,
    pub new_password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    pub name: String,
}

#[derive(Serialize, ToSchema)]
pub struct NewApiKeyView {
    pub key: ApiKeyRecord,
    /// The key: send it as `Authorization: Bearer <secret>`. It is not shown again.
    pub secret: String,
}

#[derive(Serialize, ToSchema)]
pub struct ApiKeyList {
    pub api_keys: Vec<ApiKeyRecord>,
}

fn email(field: &'static str, text: &str) -> Result<EmailAddress, ApiError> {
    EmailAddress::parse(text).map_err(|problem| ApiError::invalid(field, problem))
}

fn password(field: &'static str, text: String) -> Result<Secret<String>, ApiError> {
    check_password(&text).map_err(|problem| ApiError::invalid(field, problem))?;
    Ok(Secret::new(text))
}

/// The answer to anything that opens a session: the cookie and the CSRF token.
fn session_answer(
    status: StatusCode,
    account: &Account,
    session: &NewSession,
) -> Result<Response, ApiError> {
    let mut response = json(
        status,
        &SessionView {
            account: AccountView::of(account),
            csrf_token: Some(session.csrf_token.clone()),
            policy: None,
        },
    );
    let cookie =
        HeaderValue::from_str(&caller::session_cookie(session)).map_err(ApiError::internal)?;
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(response)
}

fn to_api_error(error: AccountError) -> ApiError {
    match error {
        AccountError::EmailTaken => ApiError::conflict("email", "is already registered"),
        AccountError::Underage => {
            ApiError::unprocessable("date_of_birth", "you must be 18 or older to register")
        }
        AccountError::BadCredentials => {
            ApiError::unauthorized("credentials", "the email or password is wrong")
        }
        AccountError::Locked(until) => ApiError::too_many(
            "email",
            format!("too many failed sign-ins; try again after {until}"),
        ),
        AccountError::Suspended => ApiError::forbidden("account", "is suspended"),
        AccountError::InvalidToken => ApiError::invalid("token", "is invalid, used or expired"),
        AccountError::WrongPassword => ApiError::invalid("current_password", "is wrong"),
        AccountError::UnknownAccount => ApiError::not_found("account", "no such account"),
        other => ApiError::internal(other),
    }
}

async fn register(app: App, request: Request) -> Result<Response, ApiError> {
    let body: RegisterRequest = json_body(&request)?;
    let adulthood = match (body.date_of_birth.as_deref(), body.adult) {
        (Some(date), _) => Adulthood::DateOfBirth(date.parse().map_err(|_| {
            ApiError::invalid("date_of_birth", "must be a date such as 1990-04-17")
        })?),
        (None, Some(true)) => Adulthood::Attested,
        _ => {
            return Err(ApiError::unprocessable(
                "adult",
                "confirm you are 18 or older (adult: true), or give date_of_birth",
            ));
        }
    };
    let registration = Registration {
        email: email("email", &body.email)?,
        name: check_name(&body.name).map_err(|problem| ApiError::invalid("name", problem))?,
        password: password("password", body.password)?,
        role: match body.role {
            RegisterRole::Advertiser => Role::Advertiser,
            RegisterRole::Affiliate => Role::Affiliate,
        },
        adulthood,
    };
    let account = accounts::register(&app, registration, &client(&app, &request))
        .await
        .map_err(to_api_error)?;
    Ok(json(StatusCode::CREATED, &AccountView::of(&account)))
}

async fn verify_email(app: App, request: Request) -> Result<Response, ApiError> {
    let params = Params::from_query(&request)?;
    let token = params.required("token", 128)?;
    let account = accounts::verify_email(&app, token)
        .await
        .map_err(to_api_error)?;
    Ok(json(StatusCode::OK, &AccountView::of(&account)))
}

async fn sign_in(app: App, request: Request) -> Result<Response, ApiError> {
    let body: SignInRequest = json_body(&request)?;
    let address = email("email", &body.email)?;
    let secret = Secret::new(body.password);
    let (account, session) = accounts::sign_in(&app, &address, &secret, &client(&app, &request))
        .await
        .map_err(to_api_error)?;
    session_answer(StatusCode::OK, &account, &session)
}

async fn sign_out(app: App, request: Request) -> Result<Response, ApiError> {
    let caller = caller(&request);
    let Credential::Session { hash, .. } = &caller.credential else {
        return Err(ApiError::invalid(
            "authorization",
            "API keys have no session; revoke the key instead",
        ));
    };
    accounts::sign_out(&app, hash, caller.account.id, &caller.client)
        .await
        .map_err(to_api_error)?;
    let mut response = no_content();
    let cookie =
        HeaderValue::from_str(&caller::cleared_session_cookie()).map_err(ApiError::internal)?;
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(response)
}

/// `account` as the caller sees it, with the session's CSRF token when it is a session.
fn session_view(caller: &Caller, account: &Account) -> SessionView {
    SessionView {
        account: AccountView::of(account),
        csrf_token: match &caller.credential {
            Credential::Session { csrf_token, .. } => Some(csrf_token.clone()),
            Credential::ApiKey => None,
        },
        policy: None,
    }
}

async fn me(app: App, request: Request) -> Result<Response, ApiError> {
    let caller = caller(&request);
    let mut view = session_view(caller, &caller.account);
    view.policy = crate::privacy::policy_to_acknowledge(&app, caller.account.id)
        .await
        .map_err(ApiError::internal)?;
    Ok(json(StatusCode::OK, &view))
}

async fn correct_me(app: App, request: Request) -> Result<Response, ApiError> {
    let body: ProfileCorrection = json_body(&request)?;
    let name = check_name(&body.name).map_err(|problem| ApiError::invalid("name", problem))?;
    let caller = caller(&request);
    let account = app
        .store
        .rename_account(caller.account.id, &name, caller.account.status)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::conflict("account", "changed meanwhile; try again"))?;
    caller
        .audit(&app, "account.corrected", Some(account.id.to_string()))
        .await?;
    Ok(json(StatusCode::OK, &session_view(caller, &account)))
}

async fn change_password(app: App, request: Request) -> Result<Response, ApiError> {
    let body: ChangePasswordRequest = json_body(&request)?;
    let current = Secret::new(body.current_password);
    let new = password("new_password", body.new_password)?;
    let caller = caller(&request);
    let session = accounts::change_password(&app, &caller.account, &current, &new, &caller.client)
        .await
        .map_err(to_api_error)?;
    session_answer(StatusCode::OK, &caller.account, &session)
}

async fn request_reset(app: App, request: Request) -> Result<Response, ApiError> {
    let body: ResetRequest = json_body(&request)?;
    let address = email("email", &body.email)?;
    accounts::request_password_reset(&app, &address, &client(&app, &request))
        .await
        .map_err(to_api_error)?;
    Ok(json(
        StatusCode::ACCEPTED,
        &serde_json::json!({ "message": "if the address has an account, a reset code is on its way" }),
    ))
}

async fn confirm_reset(app: App, request: Request) -> Result<Response, ApiError> {
    let body: ConfirmResetRequest = json_body(&request)?;
    let new = password("new_password", body.new_password)?;
    accounts::reset_password(&app, &body.token, &new, &client(&app, &request))
        .await
        .map_err(to_api_error)?;
    Ok(no_content())
}

async fn create_api_key(app: App, request: Request) -> Result<Response, ApiError> {
    let body: CreateApiKeyRequest = json_body(&request)?;
    let name = check_name(&body.name).map_err(|problem| ApiError::invalid("name", problem))?;
    let caller = caller(&request);
    let (key, secret) = accounts::create_api_key(&app, &caller.account, name, &caller.client)
        .await
        .map_err(to_api_error)?;
    Ok(json(
        StatusCode::CREATED,
        &NewApiKeyView {
            key,
            secret: secret.expose().clone(),
        },
    ))
}

async fn list_api_keys(app: App, request: Request) -> Result<Response, ApiError> {
    let api_keys = app
        .store
        .api_keys_of(caller(&request).account.id)
        .await
        .map_err(ApiError::internal)?;
    Ok(json(StatusCode::OK, &ApiKeyList { api_keys }))
}

async fn revoke_api_key(app: App, request: Request) -> Result<Response, ApiError> {
    let id = path_param(&request, "key_id").unwrap_or_default();
    let caller = caller(&request);
    if !app
        .store
        .delete_api_key(caller.account.id, &id)
        .await
        .map_err(ApiError::internal)?
    {
        return Err(ApiError::not_found("key_id", "no such API key"));
    }
    caller.audit(&app, "api_key.revoked", Some(id)).await?;
    Ok(no_content())
}
