//! Mail that must reach each recipient once per occasion (a policy version, a tax year's form),
//! however often the job that sends it is interrupted and run again.
//!
//! Each message has a key. It is claimed before sending and marked sent after; a failed send
//! gives the claim back, so the next run tries again; a run that died between sending and
//! marking leaves a claim that is taken over after `STALE_AFTER`, and only that one message can
//! then go out twice (no mail service offers an idempotency key to close that gap).

use crate::app::App;
use crate::ports::{Email, MailError, TableError};
use crate::store::NoticeClaim;

/// How long a claim may stand unmarked before its sender is presumed dead.
pub const STALE_AFTER: i64 = 15 * 60;

/// What became of one notice.
#[derive(Debug, PartialEq, Eq)]
pub enum Sent {
    /// Sent now.
    Now,
    /// Sent by an earlier run.
    Before,
    /// Another run is sending it.
    Elsewhere,
}

/// Sends `email` unless the notice `key` went out before. Storage failing is the outer error:
/// it would fail every notice after this one alike, so callers stop. The mail failing is the
/// inner one, for the caller to weigh: its claim is given back, and the next call tries again.
pub async fn send_once(
    app: &App,
    key: &str,
    email: &Email,
) -> Result<Result<Sent, MailError>, TableError> {
    let now = app.clock.now().as_second();
    match app.store.claim_notice(key, now, STALE_AFTER).await? {
        NoticeClaim::Sent => return Ok(Ok(Sent::Before)),
        NoticeClaim::Busy => return Ok(Ok(Sent::Elsewhere)),
        NoticeClaim::Claimed => {}
    }
    if let Err(error) = app.mailer.send(email).await {
        app.store.release_notice(key, now).await?;
        return Ok(Err(error));
    }
    app.store.mark_notice_sent(key).await?;
    Ok(Ok(Sent::Now))
}

/// Mails an affiliate once per `key`, best effort: nothing is sent to an account that is gone,
/// and a failure is logged (`what` mail, never to whom) for the next attempt to send it then.
pub async fn tell_affiliate_once(
    app: &App,
    affiliate: crate::domain::ids::AffiliateId,
    key: &str,
    subject: &str,
    text: String,
    what: &str,
) {
    let account_id = crate::domain::accounts::AccountId(affiliate.0);
    let Ok(Some(account)) = app.store.account(account_id).await else {
        return;
    };
    let mail = Email {
        to: account.email,
        subject: subject.into(),
        text,
    };
    match send_once(app, key, &mail).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => tracing::error!(%error, "{what} could not be sent"),
        Err(error) => tracing::error!(%error, "{what} could not be sent"),
    }
}
