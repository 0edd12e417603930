//! A conversion's life after it is recorded: pending → approved or rejected (by its advertiser
//! or an admin, with a reason), approved → reversed (a chargeback or refund), and the hold:
//! approved earnings are held for the offer's hold days, then the `maturation` job makes them
//! payable. Each step is one all-or-nothing write of the conversion, its ledger transaction,
//! its report counters and the affiliate's postback, conditioned on the state it starts from:
//! racing or repeated decisions apply once.

use jiff::{SignedDuration, Timestamp};

use crate::app::App;
use crate::dispatch;
use crate::domain::ids::{AdvertiserId, ConversionId};
use crate::domain::ledger::{Earnings, LedgerError, Transaction};
use crate::domain::tracking::{Conversion, ConversionStatus};
use crate::ports::{TableError, Write};
use crate::store::stats;

/// What an advertiser or admin decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
    Reverse,
}

impl Decision {
    pub fn status(self) -> ConversionStatus {
        match self {
            Self::Approve => ConversionStatus::Approved,
            Self::Reject => ConversionStatus::Rejected,
            Self::Reverse => ConversionStatus::Reversed,
        }
    }
}

/// Who decides: an advertiser decides only its own offers' conversions.
#[derive(Clone, Copy, Debug)]
pub enum Decider {
    Advertiser(AdvertiserId),
    Admin,
}

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("no such conversion")]
    NotFound,
    #[error("a {from} conversion cannot be {to}")]
    NotAllowed {
        from: &'static str,
        to: &'static str,
    },
    #[error("the conversion changed meanwhile; read it again")]
    Changed,
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("storage failed")]
    Storage(#[from] TableError),
}

/// The longest reason kept with a decision.
pub const MAX_REASON: usize = 500;

/// Applies a decision; deciding what is already so answers the conversion unchanged.
pub async fn decide(
    app: &App,
    id: ConversionId,
    decision: Decision,
    reason: Option<String>,
    decider: Decider,
) -> Result<Conversion, LifecycleError> {
    let before = app
        .store
        .conversion(id)
        .await?
        .ok_or(LifecycleError::NotFound)?;
    if let Decider::Advertiser(advertiser) = decider
        && before.advertiser_id != advertiser
    {
        return Err(LifecycleError::NotFound);
    }
    if before.status == decision.status() {
        return Ok(before);
    }
    let now = app.clock.now();
    let mut after = before.clone();
    after.status = decision.status();
    after.reason = reason;
    after.decided_at = Some(now);
    after.due_at = None;
    let ledger = match (before.status, decision) {
        (ConversionStatus::Pending, Decision::Approve) => {
            let offer = app.store.offer(before.offer_id).await?;
            let hold = offer.map_or(0, |offer| offer.hold_days);
            after.payable_at = Some(now + SignedDuration::from_hours(24 * i64::from(hold)));
            // No hold: payable at once.
            after.matured = hold == 0;
            after.due_at = (!after.matured).then_some(after.payable_at).flatten();
            let into = if after.matured {
                Earnings::Payable
            } else {
                Earnings::Held
            };
            vec![Transaction::conversion_approved(&after, into, now)?]
        }
        (ConversionStatus::Pending, Decision::Reject) => {
            vec![Transaction::conversion_rejected(&after, now)?]
        }
        (ConversionStatus::Approved, Decision::Reverse) => {
            let from = if before.matured {
                Earnings::Payable
            } else {
                Earnings::Held
            };
            vec![Transaction::conversion_reversed(&after, from, now)?]
        }
        _ => {
            return Err(LifecycleError::NotAllowed {
                from: before.state(),
                to: decision.status().as_str(),
            });
        }
    };
    apply(app, &before, &after, &ledger).await?;
    Ok(after)
}

/// Takes a conversion's automatic step if it is due: approval once the review window of an
/// automatically approved offer is over, or payable earnings once the hold is. Answers whether
/// it took one.
pub async fn advance(app: &App, id: ConversionId, now: Timestamp) -> Result<bool, LifecycleError> {
    let Some(before) = app.store.conversion(id).await? else {
        return Ok(false);
    };
    if before.due_at.is_none_or(|at| at > now) {
        return Ok(false);
    }
    if before.state() == "pending" {
        let reason = Some("approved automatically after the review window".to_string());
        return match decide(app, id, Decision::Approve, reason, Decider::Admin).await {
            Ok(_) => Ok(true),
            Err(LifecycleError::Changed | LifecycleError::NotAllowed { .. }) => Ok(false),
            Err(e) => Err(e),
        };
    }
    if before.state() != "held" {
        return Ok(false);
    }
    let mut after = before.clone();
    after.matured = true;
    after.due_at = None;
    let ledger = [Transaction::conversion_matured(&after, now)?];
    match apply(app, &before, &after, &ledger).await {
        Ok(()) => Ok(true),
        Err(LifecycleError::Changed) => Ok(false),
        Err(e) => Err(e),
    }
}

/// One write: the conversion, its ledger, its report counters and (for a new status) the
/// affiliate's postback.
async fn apply(
    app: &App,
    before: &Conversion,
    after: &Conversion,
    ledger: &[Transaction],
) -> Result<(), LifecycleError> {
    let click = app
        .store
        .click(after.click_id)
        .await?
        .ok_or_else(|| TableError::Invalid(format!("conversion {} has no click", after.id)))?;
    let mut also: Vec<Write> = stats::recount_conversion(before, after, &click)?;
    if before.status != after.status
        && let Some(template) = app
            .store
            .application(after.offer_id, after.affiliate_id)
            .await?
            .and_then(|application| application.postback_url)
    {
        also.push(dispatch::enqueue(&dispatch::delivery(
            app, &template, after, &click,
        ))?);
    }
    if app
        .store
        .change_conversion(before, after, ledger, also)
        .await?
    {
        Ok(())
    } else {
        Err(LifecycleError::Changed)
    }
}

/// How many conversions one maturation run takes at most; the next run takes the rest.
const MATURATION_BATCH: usize = 500;

/// The `maturation` job: every conversion whose review window or hold is over takes its
/// step, once.
pub async fn maturation_job(app: App) -> Result<String, crate::jobs::JobError> {
    let now = app.clock.now();
    let due = app
        .store
        .conversions_due(now, MATURATION_BATCH)
        .await
        .map_err(|e| crate::jobs::JobError(e.into()))?;
    let mut advanced = 0;
    for id in &due {
        if advance(&app, *id, now)
            .await
            .map_err(|e| crate::jobs::JobError(e.into()))?
        {
            advanced += 1;
        }
    }
    Ok(format!(
        "{advanced} conversions approved or made payable ({} were due)",
        due.len()
    ))
}
