//! Who is calling. `routes::respond` establishes the caller of every route that is not public,
//! before its handler runs, from one of two credentials:
//! - the `__Host-session` cookie (a browser): then every state-changing request must also carry
//!   the session's CSRF token in `X-CSRF-Token` (a synchronizer token; SameSite=Lax is only
//!   defence in depth);
//! - `Authorization: Bearer <API key>` (a program): no ambient credential, so no CSRF token.

use lambda_http::http::{Method, header};
use subtle::ConstantTimeEq;

use crate::accounts::{self, Client, NewSession};
use crate::app::App;
use crate::domain::accounts::{Account, AccountStatus, Party, Role};
use crate::domain::ids::{AdvertiserId, AffiliateId};
use crate::http::{ApiError, Request, client_ip};

pub const SESSION_COOKIE: &str = "__Host-session";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone; the handler authenticates what it needs (a postback token, a password).
    Public,
    /// A signed-in account in one of these roles.
    Roles(&'static [Role]),
}

pub const ANY_ROLE: Access = Access::Roles(&[Role::Admin, Role::Advertiser, Role::Affiliate]);
pub const ADMIN: Access = Access::Roles(&[Role::Admin]);
pub const ADVERTISER_OR_ADMIN: Access = Access::Roles(&[Role::Admin, Role::Advertiser]);
pub const AFFILIATE: Access = Access::Roles(&[Role::Affiliate]);

#[derive(Clone, Debug)]
pub enum Credential {
    Session { hash: String, csrf_token: String },
    ApiKey,
}

#[derive(Clone, Debug)]
pub struct Caller {
    pub account: Account,
    pub credential: Credential,
    pub client: Client,
}

impl Caller {
    /// Publishing offers, applying and making links wait for an admin's approval.
    pub fn require_active(&self) -> Result<(), ApiError> {
        match self.account.status {
            AccountStatus::Active => Ok(()),
            _ => Err(ApiError::forbidden(
                "account",
                "is waiting for an admin's approval",
            )),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.account.role == Role::Admin
    }

    /// Records in the audit log that this caller did `action` to `target`.
    pub async fn audit(
        &self,
        app: &App,
        action: &str,
        target: Option<String>,
    ) -> Result<(), ApiError> {
        accounts::audit(
            app,
            Some(self.account.id),
            action,
            target,
            Some(&self.client),
            None,
        )
        .await
        .map_err(ApiError::internal)
    }
}

/// The caller's pseudonymised network identity.
pub fn client(app: &App, request: &Request) -> Client {
    let ip = client_ip(request).unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
    Client(app.pseudonymizer.visitor(ip, None))
}

/// The value of the named cookie.
pub fn cookie<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(name)?.strip_prefix('='))
}

/// The caller of a route with `Access::Roles(roles)`, or the 401/403 that refuses them.
pub async fn require(app: &App, request: &Request, roles: &[Role]) -> Result<Caller, ApiError> {
    let client = client(app, request);
    let caller = if let Some(authorization) = request.headers().get(header::AUTHORIZATION) {
        let key = authorization
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| ApiError::unauthorized("authorization", "must be `Bearer <API key>`"))?;
        let account = accounts::api_key_account(app, key.trim())
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::unauthorized("authorization", "unknown or revoked API key"))?;
        Caller {
            account,
            credential: Credential::ApiKey,
            client,
        }
    } else {
        let token = cookie(request, SESSION_COOKIE).ok_or_else(|| {
            ApiError::unauthorized(
                "session",
                "sign in first, or send Authorization: Bearer <API key>",
            )
        })?;
        let (account, session, hash) = accounts::session(app, token)
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(|| {
                ApiError::unauthorized("session", "has expired or was revoked; sign in again")
            })?;
        let unsafe_method = !matches!(
            *request.method(),
            Method::GET | Method::HEAD | Method::OPTIONS
        );
        if unsafe_method {
            let sent = request
                .headers()
                .get(CSRF_HEADER)
                .map(|v| v.as_bytes())
                .unwrap_or_default();
            if !bool::from(sent.ct_eq(session.csrf_token.as_bytes())) {
                return Err(ApiError::forbidden(
                    "x-csrf-token",
                    "is missing or wrong; send the token sign-in gave you",
                ));
            }
        }
        Caller {
            account,
            credential: Credential::Session {
                hash,
                csrf_token: session.csrf_token,
            },
            client,
        }
    };
    if matches!(
        caller.account.status,
        AccountStatus::Suspended | AccountStatus::Closed
    ) {
        return Err(ApiError::forbidden(
            "account",
            if caller.account.status == AccountStatus::Closed {
                "is closed"
            } else {
                "is suspended"
            },
        ));
    }
    if !roles.contains(&caller.account.role) {
        return Err(ApiError::forbidden(
            "role",
            format!("{} accounts cannot do this", caller.account.role.as_str()),
        ));
    }
    Ok(caller)
}

/// The caller `respond` established for this request.
pub fn caller(request: &Request) -> &Caller {
    request
        .extensions()
        .get::<Caller>()
        .expect("routes::respond establishes the caller of every non-public route")
}

/// `Set-Cookie` for a new session: `__Host-` (so Secure, Path=/ and no Domain), HttpOnly, Lax.
pub fn session_cookie(session: &NewSession) -> String {
    format!(
        "{SESSION_COOKIE}={}; Max-Age={}; Path=/; Secure; HttpOnly; SameSite=Lax",
        session.token.expose(),
        session.max_age.as_secs()
    )
}

/// `Set-Cookie` that removes the session cookie.
pub fn cleared_session_cookie() -> String {
    format!("{SESSION_COOKIE}=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Lax")
}

/// Whose records the caller reads: an advertiser's or affiliate's own; an admin names exactly
/// one advertiser (`advertiser_id`) or affiliate (`affiliate_id`).
pub fn party(caller: &Caller, params: &crate::http::Params) -> Result<Party, ApiError> {
    if let Some(advertiser) = caller.account.advertiser_id() {
        return Ok(Party::Advertiser(advertiser));
    }
    if let Some(affiliate) = caller.account.affiliate_id() {
        return Ok(Party::Affiliate(affiliate));
    }
    let advertiser = params.text("advertiser_id", 26)?.map(AdvertiserId::parse);
    let affiliate = params.text("affiliate_id", 26)?.map(AffiliateId::parse);
    match (advertiser, affiliate) {
        (Some(Some(id)), None) => Ok(Party::Advertiser(id)),
        (None, Some(Some(id))) => Ok(Party::Affiliate(id)),
        _ => Err(ApiError::invalid(
            "advertiser_id",
            "admins give exactly one valid advertiser_id or affiliate_id",
        )),
    }
}

/// The calling affiliate, if active: for routes that act on the caller's own affiliate data.
pub fn active_affiliate(request: &Request) -> Result<AffiliateId, ApiError> {
    let caller = caller(request);
    caller.require_active()?;
    caller
        .account
        .affiliate_id()
        .ok_or_else(|| ApiError::forbidden("role", "affiliates only"))
}
