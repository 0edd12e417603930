//! Data-subject rights and policy notices: the privacy policy's promises, kept by code.
//!
//! - **Export**: a user asks; the `data-exports` job writes everything the platform holds about
//!   them (secrets masked) as one JSON file to `Blobs`, mails a link, and serves it to them
//!   alone for seven days.
//! - **Erasure**: at once, the account is closed, its sessions and API keys revoked, its
//!   payout method and exports deleted, and every personal field erased or pseudonymised.
//!   Records the law requires (payouts, ledger, tax) stay, naming the account by its id only:
//!   a W-9's names and address are sealed like its TIN (for the 1099 only), payouts keep the
//!   bank and the last four digits of where they went and nothing else. The `retention` job
//!   deletes them seven years after the last financial activity.
//! - **Policy notices**: a published policy version is mailed to every active user once, by
//!   the `policy-notices` job, in batches, resumable.

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use crate::accounts::{audit, verify_password};
use crate::app::App;
use crate::domain::accounts::{Account, AccountId, AccountStatus, Role};
use crate::domain::email::EmailAddress;
use crate::domain::payout::PayoutMethod;
use crate::domain::tax::{ERASED, TaxProfile};
use crate::jobs::JobError;
use crate::ports::{BlobError, BlobKey, Email, KeyError, TableError};
use crate::secret::Secret;
use crate::store::{PolicyVersion, PrivacyRequest, RequestKind, RequestStatus};

/// The month a data-subject request must be answered in (GDPR art. 12(3)).
pub const ANSWER_WITHIN: SignedDuration = SignedDuration::from_hours(30 * 24);

/// How long an export's download link works.
pub const DOWNLOAD_FOR: SignedDuration = SignedDuration::from_hours(7 * 24);

/// How many accounts one batch of policy notices covers.
pub const NOTICE_BATCH: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    #[error("{field}: {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
    #[error("storage failed")]
    Storage(#[from] TableError),
    #[error("a sealed value could not be handled")]
    Keys(#[from] KeyError),
    #[error("the export file could not be written")]
    Blobs(#[from] BlobError),
    #[error("the mail kept for the address could not be deleted")]
    Mail(#[from] crate::ports::MailError),
}

fn invalid(field: &'static str, problem: impl Into<String>) -> PrivacyError {
    PrivacyError::Invalid {
        field,
        problem: problem.into(),
    }
}

fn new_request(app: &App, account: &Account, kind: RequestKind) -> PrivacyRequest {
    let now = app.clock.now();
    PrivacyRequest {
        id: app.clock.new_id().to_string(),
        account_id: account.id,
        kind,
        status: RequestStatus::Pending,
        requested_at: now,
        due_at: now + ANSWER_WITHIN,
        completed_at: None,
        download_until: None,
        records_deleted_at: None,
    }
}

/// Asks for an export; a request still waiting is answered instead of a second one.
pub async fn request_export(app: &App, account: &Account) -> Result<PrivacyRequest, PrivacyError> {
    if let Some(waiting) = app
        .store
        .privacy_requests_of(account.id)
        .await?
        .into_iter()
        .find(|r| r.kind == RequestKind::Export && r.status == RequestStatus::Pending)
    {
        return Ok(waiting);
    }
    let request = new_request(app, account, RequestKind::Export);
    app.store.save_privacy_request(&request).await?;
    Ok(request)
}

pub fn export_key(request: &PrivacyRequest) -> Result<BlobKey, BlobError> {
    BlobKey::parse(format!(
        "exports/{}/{}.json",
        request.account_id, request.id
    ))
}

/// Everything held about `account`: its own records whole, secrets masked (a payout account
/// and a TIN by their last four digits), and nothing of anyone else (advertisers' revenue is
/// left out of an affiliate's conversions, affiliates' payouts out of an advertiser's, and
/// visitors' pseudonyms out of both).
pub async fn export_of(app: &App, account: &Account) -> Result<Value, PrivacyError> {
    let store = &app.store;
    let mut out = json!({
        "generated_at": app.clock.now().to_string(),
        "account": {
            "id": account.id.to_string(),
            "role": account.role.as_str(),
            "email": account.email.as_str(),
            "name": account.name,
            "status": account.status,
            "email_verified": account.email_verified,
            "adult_confirmed_at": account.adult_confirmed_at.to_string(),
            "created_at": account.created_at.to_string(),
        },
        "api_keys": serde_json::to_value(store.api_keys_of(account.id).await?).unwrap_or_default(),
        "privacy_requests": serde_json::to_value(store.privacy_requests_of(account.id).await?).unwrap_or_default(),
        "audit": serde_json::to_value(store.audit_of(account.id).await?).unwrap_or_default(),
    });
    if let Some(affiliate) = account.affiliate_id() {
        let method = store.payout_account(affiliate).await?.map(|a| {
            json!({ "method": crate::payouts::describe(&a.method), "changed_at": a.changed_at.to_string() })
        });
        let tax = store
            .tax_profile(affiliate)
            .await?
            .map(|p| serde_json::to_value(crate::routes::tax::view(&p)).unwrap_or_default());
        let mut conversions = Vec::new();
        let mut clicks = Vec::new();
        let mut cursor = None;
        loop {
            let (page, next) = store
                .conversions_of_affiliate(affiliate, cursor, 500)
                .await?;
            for conversion in page {
                if let Some(click) = store.click(conversion.click_id).await? {
                    clicks.push(without(
                        serde_json::to_value(&click).unwrap_or_default(),
                        &["visitor"],
                    ));
                }
                conversions.push(without(
                    serde_json::to_value(&conversion).unwrap_or_default(),
                    &["revenue", "visitor"],
                ));
            }
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let payouts: Vec<Value> = store
            .payouts_of_affiliate(affiliate)
            .await?
            .iter()
            .map(|p| {
                let mut v = serde_json::to_value(p).unwrap_or_default();
                v["method"] = Value::from(crate::payouts::describe(&p.method));
                v
            })
            .collect();
        out["payout_method"] = method.unwrap_or(Value::Null);
        out["tax_profile"] = tax.unwrap_or(Value::Null);
        out["links"] =
            serde_json::to_value(store.links_of_affiliate(affiliate).await?).unwrap_or_default();
        out["applications"] =
            serde_json::to_value(store.applications_of_affiliate(affiliate).await?)
                .unwrap_or_default();
        out["conversions"] = Value::Array(conversions);
        out["clicks"] = Value::Array(clicks);
        out["payouts"] = Value::Array(payouts);
    }
    if let Some(advertiser) = account.advertiser_id() {
        let offers: Vec<Value> = store
            .offers_of_advertiser(advertiser)
            .await?
            .iter()
            .map(|o| {
                without(
                    serde_json::to_value(o).unwrap_or_default(),
                    &["postback_secret"],
                )
            })
            .collect();
        let mut conversions = Vec::new();
        let mut cursor = None;
        loop {
            let (page, next) = store
                .conversions_of_advertiser(advertiser, cursor, 500)
                .await?;
            conversions.extend(page.iter().map(|c| {
                without(
                    serde_json::to_value(c).unwrap_or_default(),
                    &["payout", "visitor"],
                )
            }));
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        out["offers"] = Value::Array(offers);
        out["conversions"] = Value::Array(conversions);
    }
    Ok(out)
}

fn without(mut value: Value, fields: &[&str]) -> Value {
    if let Value::Object(map) = &mut value {
        for field in fields {
            map.remove(*field);
        }
    }
    value
}

/// The `data-exports` job: every waiting export written, linked and mailed.
pub async fn exports_job(app: App) -> Result<String, JobError> {
    let failed = |e: PrivacyError| JobError(e.into());
    let waiting: Vec<PrivacyRequest> = app
        .store
        .privacy_requests()
        .await
        .map_err(|e| failed(e.into()))?
        .into_iter()
        .filter(|r| r.kind == RequestKind::Export && r.status == RequestStatus::Pending)
        .collect();
    let mut done = 0;
    for mut request in waiting {
        let Some(account) = app
            .store
            .account(request.account_id)
            .await
            .map_err(|e| failed(e.into()))?
        else {
            continue;
        };
        let export = export_of(&app, &account).await.map_err(failed)?;
        let bytes = serde_json::to_vec_pretty(&export).expect("JSON serialises");
        app.blobs
            .put(
                &export_key(&request).map_err(|e| failed(e.into()))?,
                bytes,
                "application/json",
            )
            .await
            .map_err(|e| failed(e.into()))?;
        let now = app.clock.now();
        let until = now + DOWNLOAD_FOR;
        let mail = Email {
            to: account.email.clone(),
            subject: "Your LeadsRefer data export is ready".into(),
            text: format!(
                "The export of your data you asked for is ready. Sign in and download it before {} UTC:\n\n{}/app/account/export/{}\n",
                until.strftime("%Y-%m-%d %H:%M"),
                app.public_url,
                request.id
            ),
        };
        // A mail that fails (or that another run is sending) leaves the request waiting for
        // the next run, and the requests after it go on.
        let told = crate::notices::send_once(&app, &format!("export#{}", request.id), &mail)
            .await
            .map_err(|e| failed(e.into()))?;
        match told {
            Ok(crate::notices::Sent::Now | crate::notices::Sent::Before) => {}
            Ok(crate::notices::Sent::Elsewhere) => continue,
            Err(error) => {
                tracing::error!(%error, request = %request.id, "the export link could not be mailed");
                continue;
            }
        }
        request.status = RequestStatus::Done;
        request.completed_at = Some(now);
        request.download_until = Some(until);
        app.store
            .save_privacy_request(&request)
            .await
            .map_err(|e| failed(e.into()))?;
        done += 1;
    }
    Ok(format!("{done} exports written"))
}

/// Erases `account` at its holder's request (the current password confirms it).
pub async fn erase(
    app: &App,
    account: &Account,
    password: &Secret<String>,
) -> Result<PrivacyRequest, PrivacyError> {
    if !verify_password(password, Some(account.password_hash.expose())).await {
        return Err(invalid("password", "is not the account's password"));
    }
    if account.role == Role::Admin {
        return Err(invalid(
            "account",
            "an admin account is closed by another admin, not erased by itself",
        ));
    }
    let now = app.clock.now();
    let store = &app.store;
    // Sessions and keys first: nothing can act for the account while it is being erased.
    store.delete_sessions_of(account.id).await?;
    for key in store.api_keys_of(account.id).await? {
        store.delete_api_key(account.id, &key.id).await?;
    }
    // A verification link or reset code still in flight would act for no one.
    store.delete_tokens_of(account.id).await?;
    // Copies of mail kept here (the local outbox; SES keeps none) go with the address.
    app.mailer.forget(&account.email).await?;
    if let Some(affiliate) = account.affiliate_id() {
        // A closed account earns nothing more: its links stop answering, and the postbacks of
        // conversions still coming in on its earlier clicks no longer go to its URL.
        for link in store.links_of_affiliate(affiliate).await? {
            store.delete_link(&link.code).await?;
        }
        for mut application in store.applications_of_affiliate(affiliate).await? {
            if application.postback_url.take().is_some() {
                store.save_application(&application).await?;
            }
        }
        store.delete_payout_account(affiliate).await?;
        match store.tax_profile(affiliate).await? {
            Some(TaxProfile::Us { affiliate_id, w9 }) => {
                let w9 = crate::tax::pseudonymise(app, affiliate, &w9).await?;
                store
                    .save_tax_profile(affiliate, &TaxProfile::Us { affiliate_id, w9 })
                    .await?;
            }
            Some(TaxProfile::Foreign {
                affiliate_id,
                country,
                certified_at,
                document,
                ..
            }) => {
                store
                    .save_tax_profile(
                        affiliate,
                        &TaxProfile::Foreign {
                            affiliate_id,
                            country,
                            signed_name: ERASED.into(),
                            certified_at,
                            document,
                        },
                    )
                    .await?
            }
            None => {}
        }
        // Payouts are kept for the law; who exactly received them is not needed for it (the
        // bank and the last four digits stay, to match statements). A payout still waiting to
        // go out keeps where it goes: the money is the affiliate's.
        for payout in store.payouts_of_affiliate(affiliate).await? {
            if payout.status == crate::domain::payout::PayoutStatus::Created {
                continue;
            }
            let mut kept = payout.clone();
            match &mut kept.method {
                PayoutMethod::Paypal { email } => *email = erased_email(account),
                PayoutMethod::Ach {
                    name_on_account,
                    account_sealed,
                    ..
                } => {
                    *name_on_account = ERASED.into();
                    *account_sealed = ERASED.into();
                }
            }
            if kept != payout {
                store.change_payout(&payout, &kept, None).await?;
            }
        }
    }
    if let Some(advertiser) = account.advertiser_id() {
        for mut offer in store.offers_of_advertiser(advertiser).await? {
            if offer.status != crate::domain::offer::OfferStatus::Paused {
                offer.status = crate::domain::offer::OfferStatus::Paused;
                store.save_offer(&offer).await?;
            }
        }
    }
    store.forget_audit_clients(account.id).await?;
    // Exports hold everything: made ones are deleted, waiting ones never made.
    for mut request in store.privacy_requests_of(account.id).await? {
        if request.kind != RequestKind::Export || request.records_deleted_at.is_some() {
            continue;
        }
        if request.status == RequestStatus::Pending {
            request.status = RequestStatus::Cancelled;
        } else {
            app.blobs.delete(&export_key(&request)?).await?;
        }
        request.records_deleted_at = Some(now);
        request.download_until = None;
        store.save_privacy_request(&request).await?;
    }
    let erased = Account {
        email: erased_email(account),
        name: ERASED.into(),
        password_hash: Secret::new(String::new()),
        status: AccountStatus::Closed,
        email_verified: false,
        ..account.clone()
    };
    let mut request = new_request(app, account, RequestKind::Erasure);
    request.status = RequestStatus::Done;
    request.completed_at = Some(now);
    store.erase_account(account, &erased, &request).await?;
    audit(
        app,
        Some(account.id),
        "account.erased",
        Some(account.id.to_string()),
        // Not where it came from: the account's entries keep no network after erasure.
        None,
        Some("personal fields erased; financial records kept for their retention".into()),
    )
    .await?;
    Ok(request)
}

/// The address an erased account's records carry: it names no one and reaches no one (the
/// `.invalid` top-level domain never resolves, RFC 2606).
fn erased_email(account: &Account) -> EmailAddress {
    EmailAddress::parse(&format!("erased-{}@erased.invalid", account.id))
        .expect("a ULID makes a valid local part")
}

/// Publishes a policy version; its notice goes out with the next `policy-notices` run.
pub async fn publish_policy(
    app: &App,
    version: &str,
    summary: &str,
) -> Result<PolicyVersion, PrivacyError> {
    let version = version.trim();
    if version.is_empty()
        || version.len() > 32
        || !version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
    {
        return Err(invalid(
            "version",
            "must be 1 to 32 letters, digits, dots, dashes or underscores",
        ));
    }
    let summary = summary.trim();
    if summary.is_empty() || summary.chars().count() > 2_000 {
        return Err(invalid("summary", "must be 1 to 2,000 characters"));
    }
    let policy = PolicyVersion {
        version: version.to_string(),
        summary: summary.to_string(),
        published_at: app.clock.now(),
        notified_at: None,
        notified: 0,
    };
    if !app.store.publish_policy(&policy).await? {
        return Err(invalid(
            "version",
            "was published before; give a new version",
        ));
    }
    Ok(policy)
}

/// The newest published policy version, unless the account acknowledged it: the platform
/// shows it as a notice until then.
pub async fn policy_to_acknowledge(
    app: &App,
    account: AccountId,
) -> Result<Option<PolicyVersion>, TableError> {
    let Some(latest) = app
        .store
        .policies()
        .await?
        .into_iter()
        .max_by_key(|p| p.published_at)
    else {
        return Ok(None);
    };
    let acknowledged = app.store.acknowledged_policy(account).await?;
    Ok((acknowledged.as_deref() != Some(latest.version.as_str())).then_some(latest))
}

/// Records that the account read the current policy version; acknowledging again changes
/// nothing, and only the current version can be acknowledged.
pub async fn acknowledge_policy(
    app: &App,
    account: AccountId,
    version: &str,
) -> Result<(), PrivacyError> {
    let current = app
        .store
        .policies()
        .await?
        .into_iter()
        .max_by_key(|p| p.published_at);
    match current {
        Some(current) if current.version == version => {
            app.store
                .acknowledge_policy(account, version, app.clock.now())
                .await?;
            Ok(())
        }
        _ => Err(invalid("version", "is not the current policy version")),
    }
}

/// The `policy-notices` job: each published version's notice to every active user, once, a
/// batch of accounts at a time; an interrupted run is resumed by the next.
pub async fn notices_job(app: App) -> Result<String, JobError> {
    let failed = |e: TableError| JobError(e.into());
    let mut lines = Vec::new();
    for mut policy in app.store.policies().await.map_err(failed)? {
        if policy.notified_at.is_some() {
            continue;
        }
        let mut cursor = None;
        // Users who have the notice, counted afresh by each run: sent now or by an earlier one.
        let (mut sent, mut before, mut elsewhere, mut unsent) = (0u64, 0u64, 0u64, 0u64);
        loop {
            let (accounts, next) = app
                .store
                .accounts(cursor, NOTICE_BATCH)
                .await
                .map_err(failed)?;
            for account in accounts
                .iter()
                .filter(|a| a.status == AccountStatus::Active)
            {
                let mail = Email {
                    to: account.email.clone(),
                    subject: format!("Our privacy policy changes (version {})", policy.version),
                    text: format!(
                        "Hello {},\n\nWe have updated the LeadsRefer privacy policy (version {}).\n\n{}\n\nQuestions: admin@leadsrefer.com\n",
                        account.name, policy.version, policy.summary
                    ),
                };
                let key = format!("policy#{}#{}", policy.version, account.id);
                // A storage failure stops the run: it would fail every address after it alike.
                match crate::notices::send_once(&app, &key, &mail)
                    .await
                    .map_err(failed)?
                {
                    Ok(crate::notices::Sent::Now) => sent += 1,
                    Ok(crate::notices::Sent::Before) => before += 1,
                    Ok(crate::notices::Sent::Elsewhere) => elsewhere += 1,
                    // One address that fails must not hold up everyone after it: its claim is
                    // given back, and the next run tries it again.
                    Err(error) => {
                        tracing::warn!(%error, account = %account.id, "a policy notice could not be sent; the next run retries it");
                        unsent += 1;
                    }
                }
            }
            policy.notified = sent + before;
            // Progress after each batch: the admin sees how far it went.
            app.store.save_policy(&policy).await.map_err(failed)?;
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        // Finished only when every notice is out: one another run still holds waits for the
        // next run.
        if elsewhere + unsent > 0 {
            lines.push(format!(
                "policy {}: {} notified, {elsewhere} being sent by another run, {unsent} failed (retried next run)",
                policy.version, policy.notified
            ));
            continue;
        }
        policy.notified_at = Some(app.clock.now());
        app.store.save_policy(&policy).await.map_err(failed)?;
        lines.push(format!(
            "policy {}: {} notified in all ({before} before this run)",
            policy.version, policy.notified
        ));
    }
    Ok(if lines.is_empty() {
        "no policy notice to send".into()
    } else {
        lines.join("; ")
    })
}

/// Whether an export's file may still be downloaded at `now`.
pub fn downloadable(request: &PrivacyRequest, now: Timestamp) -> bool {
    request.kind == RequestKind::Export
        && request.status == RequestStatus::Done
        && request.download_until.is_some_and(|until| now < until)
}
