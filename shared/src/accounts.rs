//! The accounts service: registration, email verification, sign-in, sessions, passwords,
//! API keys, approval by admins, and the audit trail of all of it.
//!
//! Decisions a reader may question:
//! - Every credential (session, API key, one-time token) is 256 random bits handed to its
//!   owner and stored only as its SHA-256: a stolen table opens nothing.
//! - Verification and reset links carry a single-use random token rather than a signature:
//!   single use and revocation then come from the store (a conditional delete), with no key
//!   to manage.
//! - Sign-in answers the same, in the same time, for an unknown email and a wrong password
//!   (the password is checked against a dummy hash), and throttles by email (known or not)
//!   and by client.

use std::sync::OnceLock;

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jiff::{SignedDuration, Timestamp};
use sha2::{Digest, Sha256};

use crate::app::App;
use crate::domain::accounts::{Account, AccountId, AccountStatus, Role};
use crate::domain::email::EmailAddress;
use crate::domain::tracking::Visitor;
use crate::ports::{Email, MailError, TableError};
use crate::secret::Secret;
use crate::store::{ApiKeyRecord, Attempt, AuditEvent, SessionRecord, TokenPurpose};

/// A session ends after this long without use…
pub const SESSION_IDLE: SignedDuration = SignedDuration::from_mins(30);
/// …and this long after sign-in, used or not.
pub const SESSION_ABSOLUTE: SignedDuration = SignedDuration::from_hours(12);
/// A session's idle expiry is written back at most this often.
const SESSION_REFRESH: SignedDuration = SignedDuration::from_mins(1);
pub const VERIFY_EMAIL_TTL: SignedDuration = SignedDuration::from_hours(48);
pub const RESET_PASSWORD_TTL: SignedDuration = SignedDuration::from_hours(1);
/// Failed sign-ins for one email before it is locked…
pub const EMAIL_FAILURE_LIMIT: i64 = 5;
/// …or from one client before it is.
pub const CLIENT_FAILURE_LIMIT: i64 = 20;
/// Failures count within this window of the last one; a lock lasts as long.
pub const FAILURE_WINDOW: SignedDuration = SignedDuration::from_mins(15);

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("is already registered")]
    EmailTaken,
    #[error("you must be 18 or older to register")]
    Underage,
    #[error("the email or password is wrong")]
    BadCredentials,
    #[error("too many failed sign-ins; try again after {0}")]
    Locked(Timestamp),
    #[error("this account is suspended")]
    Suspended,
    #[error("the link or code is invalid, used or expired")]
    InvalidToken,
    #[error("is wrong")]
    WrongPassword,
    #[error("no such account")]
    UnknownAccount,
    #[error("password hashing failed")]
    Hash,
    #[error("storage failed")]
    Storage(#[from] TableError),
    #[error("mail failed")]
    Mail(#[from] MailError),
}

/// The caller's pseudonymised network identity, for throttling and the audit log.
#[derive(Clone, Debug)]
pub struct Client(pub Visitor);

/// A new session: the cookie's value (shown once) and its CSRF token.
pub struct NewSession {
    pub token: Secret<String>,
    pub csrf_token: String,
    pub max_age: SignedDuration,
}

/// 256 random bits, URL-safe.
pub fn random_token() -> Secret<String> {
    Secret::new(B64.encode(rand::random::<[u8; 32]>()))
}

/// How a credential is stored and looked up.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// argon2id at OWASP's minimum: m = 19,456 KiB, t = 2, p = 1.
fn argon2() -> Argon2<'static> {
    Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(19_456, 2, 1, None).expect("valid argon2 parameters"),
    )
}

pub async fn hash_password(password: &Secret<String>) -> Result<String, AccountError> {
    let password = password.clone();
    tokio::task::spawn_blocking(move || {
        argon2()
            .hash_password(password.expose().as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|_| AccountError::Hash)
    })
    .await
    .map_err(|_| AccountError::Hash)?
}

/// Checks a password against a PHC hash, or against a dummy hash when there is no account,
/// so that both take the same time.
pub(crate) async fn verify_password(password: &Secret<String>, hash: Option<&str>) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let real = hash.is_some();
    let hash = match hash {
        Some(hash) => hash.to_string(),
        None => DUMMY
            .get_or_init(|| {
                argon2()
                    .hash_password(random_token().expose().as_bytes())
                    .expect("hashing works")
                    .to_string()
            })
            .clone(),
    };
    let password = password.clone();
    let matches = tokio::task::spawn_blocking(move || {
        argon2()
            .verify_password(password.expose().as_bytes(), hash.as_str())
            .is_ok()
    })
    .await
    .unwrap_or(false);
    real && matches
}

/// How a registrant shows they are an adult.
pub enum Adulthood {
    DateOfBirth(jiff::civil::Date),
    Attested,
}

pub struct Registration {
    pub email: EmailAddress,
    pub name: String,
    pub password: Secret<String>,
    pub role: Role,
    pub adulthood: Adulthood,
}

pub async fn audit(
    app: &App,
    actor: Option<AccountId>,
    action: &str,
    target: Option<String>,
    client: Option<&Client>,
    detail: Option<String>,
) -> Result<(), TableError> {
    let event = AuditEvent {
        id: app.clock.new_id().to_string(),
        at: app.clock.now(),
        actor,
        action: action.to_string(),
        target,
        client_prefix: client.map(|c| c.0.ip_prefix.clone()),
        client_hash: client.map(|c| c.0.ip_hash.clone()),
        detail,
    };
    app.store.append_audit(&event).await
}

/// Registers an advertiser or affiliate, pending an admin's approval, and mails the
/// verification link. Nothing is stored for a minor.
///
/// An address that has an account already is answered the same way (an account pending
/// approval, under an id that names nothing, after the same password hashing), so that
/// registration cannot tell anyone which addresses have accounts; the owner is told by mail
/// instead, at most once a day.
pub async fn register(
    app: &App,
    registration: Registration,
    client: &Client,
) -> Result<Account, AccountError> {
    let now = app.clock.now();
    if let Adulthood::DateOfBirth(birth) = registration.adulthood {
        let today = jiff::tz::Offset::UTC.to_datetime(now).date();
        if !crate::domain::accounts::is_adult(birth, today) {
            return Err(AccountError::Underage);
        }
    }
    let email = registration.email.clone();
    let created = create_account(
        app,
        registration.role,
        registration.email,
        registration.name.clone(),
        &registration.password,
        AccountStatus::PendingApproval,
    )
    .await;
    let account = match created {
        Ok(account) => account,
        Err(AccountError::EmailTaken) => {
            tell_owner_of_registration(app, &email, client).await?;
            return Ok(Account {
                id: AccountId(app.clock.new_id()),
                role: registration.role,
                email,
                name: registration.name,
                password_hash: Secret::new(String::new()),
                status: AccountStatus::PendingApproval,
                email_verified: false,
                adult_confirmed_at: now,
                created_at: now,
            });
        }
        Err(other) => return Err(other),
    };
    audit(
        app,
        Some(account.id),
        "account.registered",
        Some(account.id.to_string()),
        Some(client),
        Some(account.role.as_str().into()),
    )
    .await?;
    send_verification(app, &account).await?;
    Ok(account)
}

/// Someone registered with an address that has an account: its owner is told (at most once a
/// day, so that nobody can flood their inbox this way) and the attempt is audited.
async fn tell_owner_of_registration(
    app: &App,
    email: &EmailAddress,
    client: &Client,
) -> Result<(), AccountError> {
    let Some(owner) = app.store.account_by_email(email).await? else {
        return Ok(());
    };
    audit(
        app,
        None,
        "account.registration_with_existing_email",
        Some(owner.id.to_string()),
        Some(client),
        None,
    )
    .await?;
    let now = app.clock.now();
    let day = jiff::tz::Offset::UTC.to_datetime(now).date();
    let tomorrow = (now + SignedDuration::from_hours(24)).as_second();
    if !app
        .store
        .take_marker(
            &format!("registration-attempt:{}:{day}", owner.id),
            tomorrow,
        )
        .await?
    {
        return Ok(());
    }
    app.mailer
        .send(&Email {
            to: owner.email.clone(),
            subject: "Someone tried to register with your LeadsRefer address".into(),
            text: format!(
                "Hello {},\n\nSomeone tried to open a new LeadsRefer account with this address, \
                 which has an account already. Nothing was changed.\n\nIf it was you, sign in \
                 instead: {}/app/sign-in (or reset a forgotten password from there).\n\
                 If it was not, you need not do anything.\n",
                owner.name, app.public_url
            ),
        })
        .await?;
    Ok(())
}

async fn send_verification(app: &App, account: &Account) -> Result<(), AccountError> {
    let token = random_token();
    let expires = (app.clock.now() + VERIFY_EMAIL_TTL).as_second();
    app.store
        .create_token(
            &token_hash(token.expose()),
            TokenPurpose::VerifyEmail,
            account.id,
            expires,
        )
        .await?;
    let link = format!(
        "{}/app/verify-email?token={}",
        app.public_url,
        token.expose()
    );
    app.mailer
        .send(&Email {
            to: account.email.clone(),
            subject: "Confirm your LeadsRefer email address".into(),
            text: format!(
                "Hello {},\n\nConfirm this address by opening the link below within 48 hours:\n\n{link}\n\n\
                 If you did not register with LeadsRefer, ignore this message.\n",
                account.name
            ),
        })
        .await?;
    Ok(())
}

pub async fn verify_email(app: &App, token: &str) -> Result<Account, AccountError> {
    let id = app
        .store
        .consume_token(&token_hash(token), TokenPurpose::VerifyEmail)
        .await?
        .ok_or(AccountError::InvalidToken)?;
    let mut account = app
        .store
        .account(id)
        .await?
        .ok_or(AccountError::InvalidToken)?;
    account.email_verified = true;
    app.store.save_account(&account).await?;
    audit(
        app,
        Some(id),
        "account.email_verified",
        Some(id.to_string()),
        None,
        None,
    )
    .await?;
    Ok(account)
}

/// Signs in with email and password: a new session, or why not.
pub async fn sign_in(
    app: &App,
    email: &EmailAddress,
    password: &Secret<String>,
    client: &Client,
) -> Result<(Account, NewSession), AccountError> {
    let now = app.clock.now().as_second();
    let window = FAILURE_WINDOW.as_secs();
    let email_hash = token_hash(email.as_str());
    // Each attempt is counted before its password is checked, atomically and only below the
    // limit: guesses sent in parallel each take a place, and those past the limit are refused
    // unchecked (counted after the check, 40 parallel guesses were all checked).
    let mut taken = Vec::with_capacity(2);
    for (scope, hash, limit) in [
        ("client", &client.0.ip_hash, CLIENT_FAILURE_LIMIT),
        ("email", &email_hash, EMAIL_FAILURE_LIMIT),
    ] {
        match app
            .store
            .take_attempt(scope, hash, limit, now, window)
            .await?
        {
            Attempt::Counted { last } => taken.push((scope, hash, last)),
            Attempt::Locked { until } => {
                for (scope, hash, _) in taken {
                    app.store.return_attempt(scope, hash).await?;
                }
                return Err(AccountError::Locked(
                    Timestamp::from_second(until).unwrap_or_default(),
                ));
            }
        }
    }
    let account = app.store.account_by_email(email).await?;
    if !verify_password(
        password,
        account.as_ref().map(|a| a.password_hash.expose().as_str()),
    )
    .await
    {
        // The attempt stays counted: the last one a limit allows locks sign-in until the
        // window it restarted ends.
        let locked = taken
            .iter()
            .any(|(_, _, last)| *last)
            .then_some(now + window);
        let actor = account.as_ref().map(|a| a.id);
        audit(
            app,
            actor,
            "sign_in.failed",
            actor.map(|id| id.to_string()),
            Some(client),
            locked.map(|_| "locked".into()),
        )
        .await?;
        return Err(match locked {
            Some(until) => AccountError::Locked(Timestamp::from_second(until).unwrap_or_default()),
            None => AccountError::BadCredentials,
        });
    }
    let account = account.expect("a password only verifies against a real account");
    // A right password is no failure: the email's count starts again, the client's is given
    // its place back.
    app.store.clear_throttle("email", &email_hash).await?;
    app.store
        .return_attempt("client", &client.0.ip_hash)
        .await?;
    if matches!(
        account.status,
        AccountStatus::Suspended | AccountStatus::Closed
    ) {
        audit(
            app,
            Some(account.id),
            "sign_in.refused_suspended",
            Some(account.id.to_string()),
            Some(client),
            None,
        )
        .await?;
        return Err(AccountError::Suspended);
    }
    let session = open_session(app, account.id).await?;
    audit(
        app,
        Some(account.id),
        "sign_in.succeeded",
        Some(account.id.to_string()),
        Some(client),
        None,
    )
    .await?;
    Ok((account, session))
}

async fn open_session(app: &App, account_id: AccountId) -> Result<NewSession, AccountError> {
    let now = app.clock.now();
    let token = random_token();
    let csrf_token = random_token().expose().clone();
    let absolute = (now + SESSION_ABSOLUTE).as_second();
    let record = SessionRecord {
        account_id,
        csrf_token: csrf_token.clone(),
        created_at: now,
        refreshed_at: now,
        absolute_expires_at: absolute,
        expires_at: (now + SESSION_IDLE).as_second().min(absolute),
    };
    app.store
        .create_session(&token_hash(token.expose()), &record)
        .await?;
    Ok(NewSession {
        token,
        csrf_token,
        max_age: SESSION_ABSOLUTE,
    })
}

/// The account and session behind a session cookie, sliding its idle expiry.
pub async fn session(
    app: &App,
    token: &str,
) -> Result<Option<(Account, SessionRecord, String)>, AccountError> {
    let hash = token_hash(token);
    let Some(mut session) = app.store.session(&hash).await? else {
        return Ok(None);
    };
    let now = app.clock.now();
    if now.duration_since(session.refreshed_at) >= SESSION_REFRESH {
        session.expires_at = (now + SESSION_IDLE)
            .as_second()
            .min(session.absolute_expires_at);
        match app
            .store
            .refresh_session(&hash, now, session.expires_at)
            .await
        {
            Err(TableError::Conflict { .. }) => return Ok(None),
            other => other?,
        }
    }
    let Some(account) = app.store.account(session.account_id).await? else {
        return Ok(None);
    };
    Ok(Some((account, session, hash)))
}

pub async fn sign_out(
    app: &App,
    session_hash: &str,
    account: AccountId,
    client: &Client,
) -> Result<(), AccountError> {
    app.store.delete_session(session_hash).await?;
    audit(
        app,
        Some(account),
        "sign_out",
        Some(account.to_string()),
        Some(client),
        None,
    )
    .await?;
    Ok(())
}

/// Changes a password given the current one; every session is revoked and a new one opened.
pub async fn change_password(
    app: &App,
    account: &Account,
    current: &Secret<String>,
    new: &Secret<String>,
    client: &Client,
) -> Result<NewSession, AccountError> {
    if !verify_password(current, Some(account.password_hash.expose())).await {
        audit(
            app,
            Some(account.id),
            "password.change_failed",
            Some(account.id.to_string()),
            Some(client),
            None,
        )
        .await?;
        return Err(AccountError::WrongPassword);
    }
    set_password(app, account.id, new, "password.changed", Some(client)).await?;
    open_session(app, account.id).await
}

async fn set_password(
    app: &App,
    id: AccountId,
    password: &Secret<String>,
    action: &str,
    client: Option<&Client>,
) -> Result<(), AccountError> {
    let mut account = app
        .store
        .account(id)
        .await?
        .ok_or(AccountError::UnknownAccount)?;
    account.password_hash = Secret::new(hash_password(password).await?);
    app.store.save_account(&account).await?;
    let revoked = app.store.delete_sessions_of(id).await?;
    audit(
        app,
        Some(id),
        action,
        Some(id.to_string()),
        client,
        Some(format!("{revoked} sessions revoked")),
    )
    .await?;
    Ok(())
}

/// Mails a reset code if the email has an account; answers the same either way.
pub async fn request_password_reset(
    app: &App,
    email: &EmailAddress,
    client: &Client,
) -> Result<(), AccountError> {
    let Some(account) = app.store.account_by_email(email).await? else {
        return Ok(());
    };
    let token = random_token();
    let expires = (app.clock.now() + RESET_PASSWORD_TTL).as_second();
    app.store
        .create_token(
            &token_hash(token.expose()),
            TokenPurpose::ResetPassword,
            account.id,
            expires,
        )
        .await?;
    app.mailer
        .send(&Email {
            to: account.email.clone(),
            subject: "Reset your LeadsRefer password".into(),
            text: format!(
                "Hello {},\n\nSomeone asked to reset your password. Within one hour, set a new one with this code \
                 (it works once):\n\n{}\n\nEnter it at {}/app/password-reset/confirm with your new password \
                 (programs: POST it to /api/auth/password-reset/confirm).\n\n\
                 If it was not you, ignore this message: your password has not changed.\n",
                account.name,
                token.expose(),
                app.public_url
            ),
        })
        .await?;
    audit(
        app,
        Some(account.id),
        "password.reset_requested",
        Some(account.id.to_string()),
        Some(client),
        None,
    )
    .await?;
    Ok(())
}

pub async fn reset_password(
    app: &App,
    token: &str,
    password: &Secret<String>,
    client: &Client,
) -> Result<(), AccountError> {
    let id = app
        .store
        .consume_token(&token_hash(token), TokenPurpose::ResetPassword)
        .await?
        .ok_or(AccountError::InvalidToken)?;
    set_password(app, id, password, "password.reset", Some(client)).await
}

/// A new API key for the account: the key itself is answered once and never again.
pub async fn create_api_key(
    app: &App,
    account: &Account,
    name: String,
    client: &Client,
) -> Result<(ApiKeyRecord, Secret<String>), AccountError> {
    let key = Secret::new(format!("lr_{}", random_token().expose()));
    let record = ApiKeyRecord {
        id: app.clock.new_id().to_string(),
        account_id: account.id,
        name,
        last4: key.expose()[key.expose().len() - 4..].to_string(),
        created_at: app.clock.now(),
    };
    app.store
        .create_api_key(&token_hash(key.expose()), &record)
        .await?;
    audit(
        app,
        Some(account.id),
        "api_key.created",
        Some(record.id.clone()),
        Some(client),
        Some(record.name.clone()),
    )
    .await?;
    Ok((record, key))
}

pub async fn api_key_account(app: &App, key: &str) -> Result<Option<Account>, AccountError> {
    let Some(record) = app.store.api_key(&token_hash(key)).await? else {
        return Ok(None);
    };
    Ok(app.store.account(record.account_id).await?)
}

/// Stores a new account with a hashed password; an email already registered (in any case) is
/// refused. Accounts made by an admin or operator count as verified; self-registered ones verify
/// their address by mail.
pub async fn create_account(
    app: &App,
    role: Role,
    email: EmailAddress,
    name: String,
    password: &Secret<String>,
    status: AccountStatus,
) -> Result<Account, AccountError> {
    let now = app.clock.now();
    let account = Account {
        id: AccountId(app.clock.new_id()),
        role,
        email,
        name,
        password_hash: Secret::new(hash_password(password).await?),
        status,
        email_verified: status == AccountStatus::Active,
        adult_confirmed_at: now,
        created_at: now,
    };
    match app.store.create_account(&account).await {
        Err(TableError::Conflict { .. }) => Err(AccountError::EmailTaken),
        other => other.map(|()| account).map_err(AccountError::from),
    }
}

/// Creates an admin: the operator's command, never self-registration.
pub async fn create_admin(
    app: &App,
    email: EmailAddress,
    name: String,
    password: &Secret<String>,
) -> Result<Account, AccountError> {
    let account = create_account(
        app,
        Role::Admin,
        email,
        name,
        password,
        AccountStatus::Active,
    )
    .await?;
    audit(
        app,
        None,
        "account.admin_created",
        Some(account.id.to_string()),
        None,
        None,
    )
    .await?;
    Ok(account)
}

/// An admin approves, suspends or reinstates an account; suspension ends its sessions.
pub async fn set_status(
    app: &App,
    admin: &Account,
    id: AccountId,
    status: AccountStatus,
    client: &Client,
) -> Result<Account, AccountError> {
    let mut account = app
        .store
        .account(id)
        .await?
        .ok_or(AccountError::UnknownAccount)?;
    let before = account.status;
    account.status = status;
    app.store.save_account(&account).await?;
    if status == AccountStatus::Suspended {
        app.store.delete_sessions_of(id).await?;
    }
    audit(
        app,
        Some(admin.id),
        "account.status_changed",
        Some(id.to_string()),
        Some(client),
        Some(format!("{before:?} -> {status:?}")),
    )
    .await?;
    Ok(account)
}

/// When an email's sign-in is locked, if it is.
pub async fn locked_until(
    app: &App,
    email: &EmailAddress,
) -> Result<Option<Timestamp>, AccountError> {
    let now = app.clock.now().as_second();
    let throttle = app
        .store
        .throttle("email", &token_hash(email.as_str()))
        .await?;
    Ok(throttle
        .expires_at
        .filter(|until| throttle.failures >= EMAIL_FAILURE_LIMIT && *until > now)
        .and_then(|until| Timestamp::from_second(until).ok()))
}
