//! ACH returns: the bank's return file, read and applied to the payouts it names.
//!
//! Each return names the trace number its entry had in a payout file. The payout is found by
//! that trace (unique per installation: each run's file takes its own range), and must agree
//! with the return on the payee and the amount, else nothing is applied. A found payout is
//! marked failed and its amount goes back to the affiliate's payable balance in one write
//! conditioned on the payout still being sent, so a file uploaded twice changes nothing the
//! second time. A return saying the account cannot take payments (closed, not found…) stops
//! the affiliate's payout method until they give another; the affiliate is mailed once per
//! returned payout either way.
//!
//! Disputes between the banks (dishonored and contested returns, R61–R77) and notifications of
//! change are reported for the operator, not applied: the first are settled with the bank, and
//! a corrected account number must come from the affiliate, who is asked for it.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::App;
use crate::domain::ids::AffiliateId;
use crate::domain::ledger::Transaction;
use crate::domain::money::{Currency, Money};
use crate::domain::nacha_returns::{self, ReturnEntry};
use crate::domain::payout::{MethodStopped, Payout, PayoutStatus, Rail};
use crate::payouts::PayoutError;

/// The largest return file taken: 1 MiB is over 5,000 returns.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

/// What became of one entry of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The payout is now failed and its amount payable again.
    Recorded,
    /// An earlier upload recorded it.
    AlreadyRecorded,
    /// No payout sent by ACH has that trace number, payee and amount.
    Unmatched,
    /// More than one payout fits (files written before trace numbers were unique): say which
    /// to the bank, or retry the right one by hand.
    Ambiguous,
    /// A dishonored or contested return: settle it with the bank.
    Dispute,
    /// A notification of change: the affiliate is asked to check their bank details.
    Correction,
}

impl Outcome {
    /// The outcome in words, with what to do about it.
    pub fn words(self) -> &'static str {
        match self {
            Self::Recorded => "recorded",
            Self::AlreadyRecorded => "already recorded",
            Self::Unmatched => "no payout matches",
            Self::Ambiguous => "more than one payout matches: settle it by hand",
            Self::Dispute => "a dispute between the banks: settle it with the bank",
            Self::Correction => {
                "notification of change: the affiliate is asked to check their details"
            }
        }
    }
}

/// One entry of the file and what became of it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ReturnLine {
    /// The entry's record number in the file.
    pub record: usize,
    /// The return reason (`R03`) or change code (`C01`).
    pub code: String,
    /// What the code means.
    pub reason: String,
    pub original_trace: String,
    /// The returned amount in US dollars (`50.00`; `0.00` for a notification of change).
    pub amount: String,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payout_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub affiliate_id: Option<String>,
    /// The affiliate's payout method is stopped until they give another.
    pub method_stopped: bool,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ReturnsRecorded {
    pub entries: Vec<ReturnLine>,
    /// How many payouts this upload marked failed.
    pub recorded: usize,
}

/// Reads `file` (refused whole if it is not a well-formed return file) and applies each entry.
pub async fn record(app: &App, file: &[u8]) -> Result<ReturnsRecorded, PayoutError> {
    let invalid = |problem: String| PayoutError::Invalid {
        field: "file",
        problem,
    };
    if file.len() > MAX_FILE_BYTES {
        return Err(invalid(format!(
            "is over {} KiB: split it",
            MAX_FILE_BYTES / 1024
        )));
    }
    let text = std::str::from_utf8(file)
        .map_err(|_| invalid("is not text: send the bank's NACHA return file".into()))?;
    let entries = nacha_returns::read_returns(text).map_err(|e| invalid(e.to_string()))?;
    let affiliates: Vec<AffiliateId> = app
        .store
        .all_accounts()
        .await?
        .iter()
        .filter_map(|account| account.affiliate_id())
        .collect();
    let mut lines = Vec::with_capacity(entries.len());
    for entry in &entries {
        lines.push(apply(app, &affiliates, entry).await?);
    }
    let recorded = lines
        .iter()
        .filter(|line| line.outcome == Outcome::Recorded)
        .count();
    Ok(ReturnsRecorded {
        entries: lines,
        recorded,
    })
}

fn usd(minor: i64) -> Money {
    Money::new(minor, Currency::parse("USD").expect("USD exists"))
}

async fn apply(
    app: &App,
    affiliates: &[AffiliateId],
    entry: &ReturnEntry,
) -> Result<ReturnLine, PayoutError> {
    let mut line = ReturnLine {
        record: entry.record,
        code: entry.code.clone(),
        reason: if entry.is_correction() {
            nacha_returns::change(&entry.code).to_string()
        } else {
            nacha_returns::reason(&entry.code).to_string()
        },
        original_trace: entry.original_trace.clone(),
        amount: usd(entry.amount).to_decimal(),
        outcome: Outcome::Unmatched,
        payout_id: None,
        affiliate_id: None,
        method_stopped: false,
    };
    // The entry's individual id is the first 15 characters of the affiliate's id.
    let payee = affiliates
        .iter()
        .copied()
        .filter(|affiliate| {
            !entry.individual_id.is_empty()
                && affiliate.to_string().starts_with(&entry.individual_id)
        })
        .collect::<Vec<_>>();
    let mut candidates = Vec::new();
    for affiliate in payee {
        candidates.extend(
            app.store
                .payouts_of_affiliate(affiliate)
                .await?
                .into_iter()
                .filter(|payout| {
                    payout.method.rail() == Rail::Ach
                        && payout.reference.as_deref() == Some(entry.original_trace.as_str())
                        // A notification of change has no amount; a return has the original's.
                        && (entry.is_correction() || payout.amount.minor == entry.amount)
                }),
        );
    }
    // A payout recorded before is the one a repeated upload means.
    let open: Vec<&Payout> = candidates
        .iter()
        .filter(|p| p.status == PayoutStatus::Sent)
        .collect();
    let payout = match (open.as_slice(), candidates.as_slice()) {
        ([one], _) => (*one).clone(),
        ([], [one]) => one.clone(),
        ([], []) => return Ok(line),
        _ => {
            line.outcome = Outcome::Ambiguous;
            return Ok(line);
        }
    };
    line.payout_id = Some(payout.id.clone());
    line.affiliate_id = Some(payout.affiliate_id.to_string());
    if entry.is_correction() {
        line.outcome = Outcome::Correction;
        ask_for_new_details(app, &payout, entry).await;
        return Ok(line);
    }
    if nacha_returns::is_dispute(&entry.code) {
        line.outcome = Outcome::Dispute;
        return Ok(line);
    }
    line.outcome = if payout.status == PayoutStatus::Sent {
        let mut failed = payout.clone();
        failed.status = PayoutStatus::Failed;
        failed.failure = Some(format!(
            "ACH return {}: {}",
            entry.code,
            nacha_returns::reason(&entry.code)
        ));
        let ledger = Transaction::payout_returned(&failed, app.clock.now())?;
        if app
            .store
            .change_payout(&payout, &failed, Some(&ledger))
            .await?
        {
            Outcome::Recorded
        } else {
            Outcome::AlreadyRecorded
        }
    } else if payout.status == PayoutStatus::Failed {
        Outcome::AlreadyRecorded
    } else {
        // Created (never in a file) or paid: not what a bank returns.
        Outcome::Unmatched
    };
    if line.outcome == Outcome::Unmatched {
        return Ok(line);
    }
    let stop = nacha_returns::account_unusable(&entry.code);
    if stop {
        line.method_stopped = stop_method(app, &payout, &entry.code).await?;
    }
    tell_affiliate(app, &payout, entry, line.method_stopped).await;
    Ok(line)
}

/// Stops the affiliate's payout method if it is still the one the payout went to (a method
/// changed since is another account, and pays). Answers whether the method is stopped now.
async fn stop_method(app: &App, payout: &Payout, code: &str) -> Result<bool, PayoutError> {
    let Some(account) = app.store.payout_account(payout.affiliate_id).await? else {
        return Ok(false);
    };
    if account.method != payout.method {
        return Ok(false);
    }
    if account.stopped.is_some() {
        return Ok(true);
    }
    let mut stopped = account.clone();
    stopped.stopped = Some(MethodStopped {
        code: code.to_string(),
        payout: payout.id.clone(),
        at: app.clock.now(),
    });
    // Conditioned on the method not having changed since it was read.
    Ok(app.store.replace_payout_account(&account, &stopped).await?)
}

/// Mails the affiliate that a payout came back, once per payout (an upload repeated after a
/// failed mail sends it then).
async fn tell_affiliate(app: &App, payout: &Payout, entry: &ReturnEntry, stopped: bool) {
    let next = if stopped {
        "Your bank says this account cannot take payments, so payouts wait until you sign in and give another payout method."
    } else {
        "The amount is back in your payable balance and goes out with the next payout run."
    };
    let text = format!(
        "Your payout {} of {} USD to your {} was returned by your bank ({}: {}).\n\n{next}\n\n{}/app/payouts\n",
        payout.id,
        payout.amount.to_decimal(),
        crate::payouts::describe(&payout.method),
        entry.code,
        nacha_returns::reason(&entry.code),
        app.public_url,
    );
    crate::notices::tell_affiliate_once(
        app,
        payout.affiliate_id,
        &format!("ach-return#{}", payout.id),
        "Your LeadsRefer payout was returned by your bank",
        text,
        "an ACH return notice",
    )
    .await;
}

/// Asks the affiliate to check their bank details after a notification of change (never
/// quoting the corrected data: it may be an account number).
async fn ask_for_new_details(app: &App, payout: &Payout, entry: &ReturnEntry) {
    let text = format!(
        "Your bank delivered payout {} to your {}, and asks us to correct your details ({}: {}).\n\nPlease sign in and enter your bank details again as your bank has them, so that later payouts go through.\n\n{}/app/payouts\n",
        payout.id,
        crate::payouts::describe(&payout.method),
        entry.code,
        nacha_returns::change(&entry.code),
        app.public_url,
    );
    crate::notices::tell_affiliate_once(
        app,
        payout.affiliate_id,
        &format!("ach-change#{}#{}", payout.id, entry.code),
        "Please check your LeadsRefer bank details",
        text,
        "a notification-of-change notice",
    )
    .await;
}
