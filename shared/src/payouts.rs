//! Paying affiliates: their payout methods, and the payout run.
//!
//! A run is keyed by its period (the UTC date it was scheduled for) and is exactly-once in
//! effect (DOMAIN.md's recipe): the run record is claimed with a create-once write; every payout
//! has a deterministic id (`{run}:{affiliate}:{currency}`) and is written with its ledger
//! transaction in one conditional write that never lets a payable balance go into debit; each
//! step after that (the ACH file, the PayPal batch, statuses) is conditioned on the payout's
//! status and is safe to repeat; PayPal gets the run's id as its idempotency key. A crashed or
//! repeated run resumes where it stopped, and a run never pays anyone twice.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use crate::adapters::paypal::{self, Paypal, PaypalSettings};
use crate::app::App;
use crate::domain::accounts::Role;
use crate::domain::email::EmailAddress;
use crate::domain::ids::AffiliateId;
use crate::domain::ledger::{Account, Transaction};
use crate::domain::money::{Currency, Money};
use crate::domain::nacha::{self, Credit, Originator};
use crate::domain::payout::{
    AccountHolder, AccountType, Payout, PayoutAccount, PayoutMethod, PayoutStatus, Rail,
    RoutingNumber, check_account_number,
};
use crate::ports::keys::{self, EncryptionContext};
use crate::ports::{BlobKey, Email, TableError};
use crate::secret::Secret;
use crate::store::PayoutRun;
use crate::tax::{TaxCheck, TaxSettings};

/// How payouts are made: configuration, read once per cold start.
pub struct PayoutSettings {
    /// The least a payout may be, in minor units of its currency; smaller balances carry over.
    pub minimum: i64,
    /// How long payouts wait after a payout method changes.
    pub cooling_off: SignedDuration,
    /// Without it, PayPal payouts wait (and the run says so).
    pub paypal: Option<Arc<Paypal>>,
    pub ach: Originator,
    /// 1099 thresholds, backup withholding and the payer.
    pub tax: TaxSettings,
}

#[derive(Debug, thiserror::Error)]
pub enum PayoutError {
    #[error("{field}: {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
    #[error("the account number could not be sealed or opened")]
    Keys(#[from] crate::ports::KeyError),
    #[error("storage failed")]
    Storage(#[from] TableError),
    #[error(transparent)]
    Ledger(#[from] crate::domain::ledger::LedgerError),
    #[error("the ACH file could not be written")]
    Blobs(#[from] crate::ports::BlobError),
}

impl PayoutSettings {
    /// From `LEADSREFER_PAYOUT_MINIMUM` (a decimal, default 50.00),
    /// `LEADSREFER_PAYOUT_COOLING_OFF_HOURS` (default 72), `LEADSREFER_PAYPAL_BASE_URL` /
    /// `_CLIENT_ID` / `_SECRET` (PayPal is off without a client id), and `LEADSREFER_ACH_*`
    /// (the bank file's originator; a demo originator by default, for the local runner).
    pub fn from_env() -> Result<Self, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let minimum = match var("LEADSREFER_PAYOUT_MINIMUM") {
            None => 5_000,
            Some(text) => {
                Money::parse_decimal(&text, Currency::parse("USD").expect("USD exists"))
                    .map_err(|e| format!("LEADSREFER_PAYOUT_MINIMUM is {text:?}: {e}"))?
                    .minor
            }
        };
        let cooling_off = match var("LEADSREFER_PAYOUT_COOLING_OFF_HOURS") {
            None => SignedDuration::from_hours(72),
            Some(text) => SignedDuration::from_hours(text.parse().map_err(|_| {
                format!("LEADSREFER_PAYOUT_COOLING_OFF_HOURS is {text:?}: give whole hours")
            })?),
        };
        let paypal = var("LEADSREFER_PAYPAL_CLIENT_ID").map(|client_id| {
            Arc::new(Paypal::new(PaypalSettings {
                base_url: var("LEADSREFER_PAYPAL_BASE_URL")
                    .unwrap_or_else(|| "https://api-m.sandbox.paypal.com".into()),
                client_id,
                secret: Secret::new(var("LEADSREFER_PAYPAL_SECRET").unwrap_or_default()),
            }))
        });
        let routing = |name: &str, default: &str| {
            let text = var(name).unwrap_or_else(|| default.into());
            RoutingNumber::parse(&text).map_err(|e| format!("{name} is {text:?}: {e}"))
        };
        let ach = Originator {
            destination_routing: routing("LEADSREFER_ACH_DESTINATION_ROUTING", "021000021")?,
            destination_name: var("LEADSREFER_ACH_DESTINATION_NAME")
                .unwrap_or_else(|| "DEMO BANK".into()),
            company_id: var("LEADSREFER_ACH_COMPANY_ID").unwrap_or_else(|| "1000000000".into()),
            company_name: var("LEADSREFER_ACH_COMPANY_NAME").unwrap_or_else(|| "LEADSREFER".into()),
            origin_routing: routing("LEADSREFER_ACH_ORIGIN_ROUTING", "021000021")?,
        };
        Ok(Self {
            minimum,
            cooling_off,
            paypal,
            ach,
            tax: TaxSettings::from_env()?,
        })
    }
}

/// A payout method as the affiliate gives it.
pub enum MethodInput {
    Paypal {
        email: String,
    },
    Ach {
        routing_number: String,
        account_number: Secret<String>,
        account_type: AccountType,
        account_holder: AccountHolder,
        name_on_account: String,
    },
}

fn invalid(field: &'static str, problem: impl Into<String>) -> PayoutError {
    PayoutError::Invalid {
        field,
        problem: problem.into(),
    }
}

fn account_context(affiliate: AffiliateId) -> EncryptionContext {
    EncryptionContext::new(&[
        ("purpose", "ach-account-number"),
        ("affiliate", &affiliate.to_string()),
    ])
}

/// Sets an affiliate's payout method: checked, the account number sealed, and (for a change of
/// an existing method) payouts held for the cooling-off period and the affiliate told by mail.
pub async fn set_method(
    app: &App,
    affiliate: AffiliateId,
    email: &EmailAddress,
    input: MethodInput,
) -> Result<PayoutAccount, PayoutError> {
    let method = match input {
        MethodInput::Paypal { email } => PayoutMethod::Paypal {
            email: EmailAddress::parse(&email)
                .map_err(|_| invalid("email", "is not an email address PayPal can pay"))?,
        },
        MethodInput::Ach {
            routing_number,
            account_number,
            account_type,
            account_holder,
            name_on_account,
        } => {
            let routing_number = RoutingNumber::parse(&routing_number)
                .map_err(|problem| invalid("routing_number", problem))?;
            let number = account_number.expose();
            check_account_number(number).map_err(|problem| invalid("account_number", problem))?;
            let name =
                crate::domain::accounts::check_text(&name_on_account, 22).ok_or_else(|| {
                    invalid(
                        "name_on_account",
                        "must be 1 to 22 characters, as the bank has it",
                    )
                })?;
            PayoutMethod::Ach {
                routing_number,
                account_sealed: keys::seal(
                    app.keys.as_ref(),
                    number.as_bytes(),
                    &account_context(affiliate),
                )
                .await?,
                account_last4: number[number.len() - 4..].to_string(),
                account_type,
                account_holder,
                name_on_account: name,
            }
        }
    };
    let now = app.clock.now();
    let previous = app.store.payout_account(affiliate).await?;
    // Sending the same method again changes nothing: no new hold, no second notice, and a
    // method the bank stopped stays stopped (the same account would come back again).
    if let Some(previous) = previous.as_ref()
        && same_method(app, affiliate, &previous.method, &method).await?
    {
        return Ok(previous.clone());
    }
    let hold_until = if previous.is_some() {
        now + app.payouts.cooling_off
    } else {
        now
    };
    let account = PayoutAccount {
        affiliate_id: affiliate,
        method,
        changed_at: now,
        hold_until,
        stopped: None,
    };
    app.store.save_payout_account(&account).await?;
    if previous.is_some() {
        let notice = Email {
            to: email.clone(),
            subject: "Your LeadsRefer payout method was changed".into(),
            text: format!(
                "Your payout method is now {}.\n\nFor your safety, payouts wait until {} UTC. If you did not make this change, sign in, change your password and contact us at once.\n",
                describe(&account.method),
                hold_until.strftime("%Y-%m-%d %H:%M"),
            ),
        };
        mail_or_log(app, &notice, "the payout method change notice").await;
    }
    Ok(account)
}

/// Whether two methods pay the same place (account numbers compared once opened: each sealing
/// of one number differs).
async fn same_method(
    app: &App,
    affiliate: AffiliateId,
    old: &PayoutMethod,
    new: &PayoutMethod,
) -> Result<bool, PayoutError> {
    match (old, new) {
        (PayoutMethod::Paypal { email: a }, PayoutMethod::Paypal { email: b }) => Ok(a == b),
        (
            PayoutMethod::Ach {
                routing_number: routing_a,
                account_sealed: sealed_a,
                account_last4: last4_a,
                account_type: type_a,
                account_holder: holder_a,
                name_on_account: name_a,
            },
            PayoutMethod::Ach {
                routing_number: routing_b,
                account_sealed: sealed_b,
                account_last4: last4_b,
                account_type: type_b,
                account_holder: holder_b,
                name_on_account: name_b,
            },
        ) => {
            if (routing_a, last4_a, type_a, holder_a, name_a)
                != (routing_b, last4_b, type_b, holder_b, name_b)
            {
                return Ok(false);
            }
            let context = account_context(affiliate);
            let a = keys::open(app.keys.as_ref(), sealed_a, &context).await?;
            let b = keys::open(app.keys.as_ref(), sealed_b, &context).await?;
            Ok(a.expose() == b.expose())
        }
        _ => Ok(false),
    }
}

/// A method in words, as the affiliate may see it: never more than the last four digits.
pub fn describe(method: &PayoutMethod) -> String {
    match method {
        PayoutMethod::Paypal { email } => format!("PayPal ({})", email.as_str()),
        PayoutMethod::Ach {
            account_last4,
            account_type,
            ..
        } => format!(
            "bank account ({}) ending {account_last4}",
            match account_type {
                AccountType::Checking => "checking",
                AccountType::Savings => "savings",
            }
        ),
    }
}

/// The run of `period`, carried out or resumed; a finished run answers as it was.
pub async fn run(app: &App, period: &str) -> Result<PayoutRun, PayoutError> {
    // The day's first run is named after the day. Once it has finished, a later run the same
    // day is its next (`{period}-2`, `-3`…), made only when what is owed has changed since the
    // last one made its payouts: an early run that found nobody to pay no longer makes the
    // affiliates approved after it wait a day, and a repeat with nothing new answers the last
    // run. Nobody is paid twice either way: a payout empties the balance it pays.
    let id = |number: u32| match number {
        1 => period.to_string(),
        n => format!("{period}-{n}"),
    };
    // The day's last run so far.
    let mut number = 1;
    let mut last = None;
    while let Some(run) = app.store.payout_run(&id(number)).await? {
        last = Some(run);
        number += 1;
    }
    match last {
        None => run_for(app, &id(1), None).await,
        Some(last) if last.finished_at.is_none() => run_for(app, &last.id, None).await,
        Some(last) => {
            if last.left_owing.as_deref() == Some(owing_digest(app).await?.as_str()) {
                Ok(last)
            } else {
                run_for(app, &id(number), None).await
            }
        }
    }
}

/// A digest of what every affiliate is owed now, and of whether a run could pay it (a payout
/// method whose hold has passed): what a later run the same day compares.
async fn owing_digest(app: &App) -> Result<String, PayoutError> {
    use sha2::{Digest, Sha256};
    let now = app.clock.now();
    let currencies = app.store.offer_currencies().await?;
    let mut digest = Sha256::new();
    for account in app.store.all_accounts().await? {
        let Some(affiliate) = account.affiliate_id() else {
            continue;
        };
        let method = app.store.payout_account(affiliate).await?;
        let payable =
            method.is_some_and(|method| method.hold_until <= now && method.stopped.is_none());
        for currency in currencies.iter().copied() {
            let balance = app
                .store
                .balance(&Account::affiliate_payable(affiliate), currency)
                .await?;
            if balance != 0 {
                digest.update(format!(
                    "{affiliate}:{}:{balance}:{payable};",
                    currency.code()
                ));
            }
        }
    }
    Ok(hex::encode(digest.finalize()))
}

/// A run of its own for one affiliate whose payout failed (a bad PayPal address since fixed,
/// a returned transfer): it pays their payable balance now, which holds the failed amount
/// again. One such run per affiliate per day; a repeat answers it as it was.
pub async fn retry(app: &App, failed: &str) -> Result<PayoutRun, PayoutError> {
    let payout = app
        .store
        .payout(failed)
        .await?
        .ok_or_else(|| invalid("id", "no such payout"))?;
    if payout.status != PayoutStatus::Failed {
        return Err(invalid("id", "only a failed payout is retried"));
    }
    let id = format!(
        "{}-retry-{}",
        period_of(app.clock.now()),
        payout.affiliate_id
    );
    run_for(app, &id, Some(payout.affiliate_id)).await
}

async fn run_for(
    app: &App,
    period: &str,
    affiliate: Option<AffiliateId>,
) -> Result<PayoutRun, PayoutError> {
    // Named before any run is claimed: a run claimed from now on is sent under the name.
    installation(app).await?;
    let now = app.clock.now();
    let mut run = app.store.claim_run(period, affiliate, now).await?;
    if run.finished_at.is_some() {
        return Ok(run);
    }
    let mut report = Vec::new();
    if !run.payouts_made {
        report = make_payouts(app, &run).await?;
        run.payouts_made = true;
        run.left_owing = Some(owing_digest(app).await?);
        run.report.extend(std::mem::take(&mut report));
        app.store.save_run(&run).await?;
    }
    report.extend(send_ach(app, &mut run).await?);
    let (paypal_lines, batch) = send_paypal(app, &run).await?;
    report.extend(paypal_lines);
    if batch.is_some() {
        run.paypal_batch_id = batch;
    }
    // A run with payouts still to hand to their rail, or that PayPal has not settled, stays
    // open, and the next run resumes it.
    let waiting = app
        .store
        .payouts_of_run(&run.id)
        .await?
        .iter()
        .any(|payout| {
            payout.status == PayoutStatus::Created
                || (payout.status == PayoutStatus::Sent && payout.method.rail() == Rail::Paypal)
        });
    run.report.extend(report);
    if !waiting {
        run.finished_at = Some(app.clock.now());
        notify_admins(app, &run).await?;
    }
    app.store.save_run(&run).await?;
    Ok(run)
}

/// Step 1: a payout for each affiliate and currency whose payable balance reaches the minimum.
async fn make_payouts(app: &App, run: &PayoutRun) -> Result<Vec<String>, PayoutError> {
    let affiliates: Vec<AffiliateId> = match run.affiliate {
        Some(affiliate) => vec![affiliate],
        None => app
            .store
            .all_accounts()
            .await?
            .iter()
            .filter_map(|account| account.affiliate_id())
            .collect(),
    };
    let currencies = app.store.offer_currencies().await?;
    let mut report = Vec::new();
    for affiliate in affiliates {
        let method = app.store.payout_account(affiliate).await?;
        for currency in currencies.iter().copied() {
            let code = currency.code();
            let balance = app
                .store
                .balance(&Account::affiliate_payable(affiliate), currency)
                .await?;
            let owed = Money::new(-balance, currency);
            let line = |what: String| format!("affiliate {affiliate} {code}: {what}");
            if owed.minor < 0 {
                report.push(line(format!(
                    "owes {} (reversed after payment), recovered from later earnings",
                    Money::new(-owed.minor, currency).to_decimal()
                )));
                continue;
            }
            if owed.minor == 0 {
                continue;
            }
            if owed.minor < app.payouts.minimum {
                report.push(line(format!(
                    "{} is below the minimum, carried over",
                    owed.to_decimal()
                )));
                continue;
            }
            let Some(account) = &method else {
                report.push(line(format!(
                    "{} waits: no payout method",
                    owed.to_decimal()
                )));
                continue;
            };
            if account.hold_until > run.started_at {
                report.push(line(format!(
                    "{} waits: payout method changed, held until {}",
                    owed.to_decimal(),
                    account.hold_until.strftime("%Y-%m-%d %H:%M UTC")
                )));
                continue;
            }
            if let Some(stopped) = &account.stopped {
                report.push(line(format!(
                    "{} waits: the bank returned payout {} ({} {}); the affiliate must give another payout method",
                    owed.to_decimal(),
                    stopped.payout,
                    stopped.code,
                    crate::domain::nacha_returns::reason(&stopped.code)
                )));
                continue;
            }
            if account.method.rail() == Rail::Ach && currency.code() != "USD" {
                report.push(line(format!(
                    "{} waits: ACH pays US dollars only; a PayPal method can take it",
                    owed.to_decimal()
                )));
                continue;
            }
            let withheld =
                match crate::tax::payout_check(app, affiliate, owed, run.started_at).await? {
                    TaxCheck::Clear => 0,
                    TaxCheck::Withhold { year, withheld } => {
                        tax_notice(app, affiliate, year, true).await;
                        withheld
                    }
                    TaxCheck::Hold {
                        year,
                        paid,
                        threshold,
                    } => {
                        tax_notice(app, affiliate, year, false).await;
                        report.push(line(format!(
                        "{} waits: a W-9 is needed (paid {} in {year}; the 1099 threshold is {})",
                        owed.to_decimal(),
                        Money::new(paid, currency).to_decimal(),
                        Money::new(threshold, currency).to_decimal()
                    )));
                        continue;
                    }
                };
            let payout = Payout {
                id: Payout::id_for(&run.id, affiliate, owed),
                run: run.id.clone(),
                affiliate_id: affiliate,
                amount: Money::new(owed.minor - withheld, currency),
                withheld,
                method: account.method.clone(),
                status: PayoutStatus::Created,
                created_at: run.started_at,
                reference: None,
                failure: None,
            };
            let ledger = Transaction::payout_created(&payout, run.started_at)?;
            match app.store.create_payout(&payout, &ledger).await {
                Ok(true) => report.push(line(format!(
                    "pays {} by {}{}",
                    payout.amount.to_decimal(),
                    describe(&payout.method),
                    if withheld > 0 {
                        format!(
                            " ({} backup withholding kept)",
                            Money::new(withheld, currency).to_decimal()
                        )
                    } else {
                        String::new()
                    }
                ))),
                // Made by an earlier attempt of this run: its steps continue below.
                Ok(false) => {}
                // The balance changed since it was read (a reversal): the next run pays it.
                Err(TableError::Conflict { .. }) => report.push(line(
                    "balance changed while the run read it; the next run pays it".into(),
                )),
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(report)
}

/// Where a run's ACH file is kept.
fn ach_key(run: &str) -> Result<BlobKey, crate::ports::BlobError> {
    BlobKey::parse(format!("payouts/{run}/ach.txt"))
}

/// A run's NACHA file, for the operator to upload to the bank; `None` for a run that paid no
/// one by ACH (or no such run). It holds full account numbers: only admins reach it, audited.
pub async fn ach_file(app: &App, run: &str) -> Result<Option<Vec<u8>>, PayoutError> {
    let well_formed = !run.is_empty()
        && run.len() <= 80
        && run
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b':');
    if !well_formed {
        return Ok(None);
    }
    Ok(app.blobs.get(&ach_key(run)?).await?)
}

/// Step 2: the run's ACH payouts in one NACHA file in `Blobs` (`payouts/{run}/ach.txt`), for
/// the operator to upload to the bank; they are then sent.
async fn send_ach(app: &App, run: &mut PayoutRun) -> Result<Vec<String>, PayoutError> {
    let mut payouts: Vec<Payout> = app
        .store
        .payouts_of_run(&run.id)
        .await?
        .into_iter()
        .filter(|payout| payout.method.rail() == Rail::Ach)
        .collect();
    payouts.sort_by(|a, b| a.id.cmp(&b.id));
    if payouts
        .iter()
        .all(|payout| payout.status != PayoutStatus::Created)
    {
        return Ok(vec![]);
    }
    let mut credits = Vec::with_capacity(payouts.len());
    for payout in &payouts {
        let PayoutMethod::Ach {
            routing_number,
            account_sealed,
            account_type,
            account_holder,
            name_on_account,
            ..
        } = &payout.method
        else {
            continue;
        };
        let number = keys::open(
            app.keys.as_ref(),
            account_sealed,
            &account_context(payout.affiliate_id),
        )
        .await?;
        credits.push(Credit {
            routing: routing_number.clone(),
            account_number: String::from_utf8_lossy(number.expose()).into_owned(),
            account_type: *account_type,
            holder: *account_holder,
            amount: payout.amount.minor,
            individual_id: payout.affiliate_id.to_string()[..15].to_string(),
            name: name_on_account.clone(),
        });
    }
    // The same payouts and the run's own start time give the same file, byte for byte, however
    // often an interrupted run writes it.
    let created = run.started_at.to_zoned_datetime(jiff::tz::TimeZone::UTC);
    // Settled on the next banking day: never a weekend or a Federal Reserve holiday.
    let effective = crate::domain::banking_days::next_banking_day(created.date());
    // The file's trace numbers, kept on the run before the file is written.
    let first_trace = match run.ach_first_trace {
        Some(first) => first,
        None => {
            let first = app.store.take_ach_traces(credits.len() as u64).await?;
            run.ach_first_trace = Some(first);
            app.store.save_run(run).await?;
            first
        }
    };
    let (file, traces) = nacha::credits_file(
        &app.payouts.ach,
        &credits,
        created.datetime(),
        effective,
        'A',
        first_trace,
    );
    app.blobs
        .put(&ach_key(&run.id)?, file.into_bytes(), "text/plain")
        .await?;
    let mut report = Vec::new();
    for (payout, trace) in payouts.iter().zip(traces) {
        if payout.status != PayoutStatus::Created {
            continue;
        }
        mark_sent(app, payout, Some(trace), run.started_at).await?;
    }
    report.push(format!(
        "ACH file payouts/{}/ach.txt: {}, {} in all",
        run.id,
        crate::jobs::counted(payouts.len(), "credit", "credits"),
        Money::new(
            payouts.iter().map(|p| p.amount.minor).sum(),
            Currency::parse("USD").expect("USD exists")
        )
        .to_decimal()
    ));
    Ok(report)
}

/// Step 3: the run's PayPal payouts in one batch, then every open batch's item statuses.
async fn send_paypal(
    app: &App,
    run: &PayoutRun,
) -> Result<(Vec<String>, Option<String>), PayoutError> {
    let payouts: Vec<Payout> = app
        .store
        .payouts_of_run(&run.id)
        .await?
        .into_iter()
        .filter(|payout| payout.method.rail() == Rail::Paypal)
        .collect();
    let created: Vec<&Payout> = payouts
        .iter()
        .filter(|payout| payout.status == PayoutStatus::Created)
        .collect();
    let mut report = Vec::new();
    let Some(paypal) = &app.payouts.paypal else {
        if !created.is_empty() {
            report.push(format!(
                "{} PayPal payouts wait: PayPal is not configured (LEADSREFER_PAYPAL_CLIENT_ID)",
                created.len()
            ));
        }
        return Ok((report, None));
    };
    let mut batch = run.paypal_batch_id.clone();
    // What to hand PayPal: the payouts not yet sent; or, for a run that stopped after PayPal
    // took its batch but before the batch's id was kept (a run of an earlier version), the
    // payouts marked sent, whose same request (same `PayPal-Request-Id`) PayPal answers with
    // the batch it made then, so that the run can read its items at last.
    let lost: Vec<&Payout> = if batch.is_none() && created.is_empty() {
        payouts
            .iter()
            .filter(|payout| payout.status == PayoutStatus::Sent)
            .collect()
    } else {
        Vec::new()
    };
    let recovering = !lost.is_empty();
    let created = if recovering { lost } else { created };
    if !created.is_empty() {
        let items: Vec<paypal::Item> = created
            .iter()
            .filter_map(|payout| match &payout.method {
                PayoutMethod::Paypal { email } => Some(paypal::Item {
                    id: &payout.id,
                    receiver: email.as_str(),
                    amount: payout.amount,
                }),
                PayoutMethod::Ach { .. } => None,
            })
            .collect();
        match paypal
            .create_batch(&sender_batch_id(app, run).await?, &items)
            .await
        {
            Ok(batch_id) => {
                // Kept the moment PayPal answers: a run stopped at any later point (a crash, a
                // Lambda timeout while the batch's status is read) resumes with it.
                let mut kept = run.clone();
                kept.paypal_batch_id = Some(batch_id.clone());
                app.store.save_run(&kept).await?;
                for payout in created.iter().filter(|p| p.status == PayoutStatus::Created) {
                    mark_sent(app, payout, None, run.started_at).await?;
                }
                report.push(if recovering {
                    format!(
                        "PayPal batch {batch_id} found again for {} sent payouts",
                        created.len()
                    )
                } else {
                    format!("PayPal batch {batch_id}: {} payouts", created.len())
                });
                batch = Some(batch_id);
            }
            Err(error) => {
                tracing::error!(%error, run = %run.id, "the PayPal batch was not accepted");
                report.push(format!(
                    "{} PayPal payouts wait: {error}; the next run retries them",
                    created.len()
                ));
            }
        }
    }
    if let Some(batch_id) = &batch {
        report.extend(sync_paypal(app, paypal, batch_id, &run.id).await?);
    }
    Ok((report, batch))
}

/// This installation's name for itself: made once, at random, and kept in the table.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Installation {
    id: String,
    since: Timestamp,
}

async fn installation(app: &App) -> Result<Installation, TableError> {
    if let Some(installation) = app.store.setting::<Installation>("installation").await? {
        return Ok(installation);
    }
    let made = Installation {
        id: hex::encode(rand::random::<[u8; 8]>()),
        since: app.clock.now(),
    };
    app.store.create_setting("installation", &made).await?;
    // Whoever created it first wins; read what was kept.
    Ok(app
        .store
        .setting::<Installation>("installation")
        .await?
        .unwrap_or(made))
}

/// The run's `sender_batch_id` (and `PayPal-Request-Id`): unique per installation and run, so
/// that two installations paying from one PayPal account (or a restored copy of one) never get
/// each other's batches replayed. A run claimed before the installation had a name (by an
/// earlier version) keeps the name it may have been sent under, so that its resumption is the
/// same request and PayPal never makes it a second batch.
async fn sender_batch_id(app: &App, run: &PayoutRun) -> Result<String, TableError> {
    let installation = installation(app).await?;
    Ok(if run.started_at < installation.since {
        format!("leadsrefer-{}", run.id)
    } else {
        format!("leadsrefer-{}-{}", installation.id, run.id)
    })
}

/// Applies PayPal's item statuses: SUCCESS is paid; FAILED, RETURNED, BLOCKED, REFUNDED and
/// REVERSED put the amount back in the affiliate's payable balance; PENDING, ONHOLD and
/// UNCLAIMED wait (an unclaimed payment can still be claimed for 30 days, then PayPal
/// returns it).
async fn sync_paypal(
    app: &App,
    paypal: &Paypal,
    batch_id: &str,
    run: &str,
) -> Result<Vec<String>, PayoutError> {
    let items = match paypal.batch_items(batch_id).await {
        Ok(items) => items,
        Err(error) => return Ok(vec![format!("PayPal batch {batch_id} unread: {error}")]),
    };
    // As they stand now: the batch's payouts were just marked sent.
    let payouts = app.store.payouts_of_run(run).await?;
    // The run's PayPal payouts by the id PayPal knows them by, worked out once: a batch holds
    // up to 15,000 items.
    let by_item: std::collections::HashMap<String, &Payout> = payouts
        .iter()
        .filter(|p| p.method.rail() == Rail::Paypal)
        .map(|p| (paypal::sender_item_id(&p.id), p))
        .collect();
    // A batch that is not this run's own (another installation's, replayed) changes nothing.
    if let Some(stranger) = items
        .iter()
        .find(|item| !by_item.contains_key(&item.sender_item_id))
    {
        tracing::error!(
            batch = batch_id,
            run,
            "the PayPal batch holds an item this run did not send"
        );
        return Ok(vec![format!(
            "PayPal batch {batch_id} holds item {} that this run did not send: nothing applied; check the PayPal account",
            stranger.sender_item_id
        )]);
    }
    let mut report = Vec::new();
    for item in items {
        // A sent item settles; a paid one can still come back (reversed, refunded, returned).
        let Some(&payout) = by_item
            .get(&item.sender_item_id)
            .filter(|p| matches!(p.status, PayoutStatus::Sent | PayoutStatus::Paid))
        else {
            continue;
        };
        let mut after = payout.clone();
        after.reference = Some(item.payout_item_id.clone());
        let ledger = match item.transaction_status.as_str() {
            "SUCCESS" if payout.status == PayoutStatus::Sent => {
                after.status = PayoutStatus::Paid;
                None
            }
            "FAILED" | "RETURNED" | "BLOCKED" | "REFUNDED" | "REVERSED" => {
                after.status = PayoutStatus::Failed;
                after.failure = Some(
                    item.error
                        .clone()
                        .unwrap_or(item.transaction_status.clone()),
                );
                Some(Transaction::payout_returned(&after, app.clock.now())?)
            }
            _ => continue,
        };
        if app
            .store
            .change_payout(payout, &after, ledger.as_ref())
            .await?
        {
            report.push(format!(
                "payout {}: PayPal says {}",
                payout.id, item.transaction_status
            ));
        }
    }
    Ok(report)
}

/// Records that a payout's rail took it (clearing settles against cash), once, and tells the
/// affiliate.
async fn mark_sent(
    app: &App,
    payout: &Payout,
    reference: Option<String>,
    at: Timestamp,
) -> Result<(), PayoutError> {
    let mut sent = payout.clone();
    sent.status = PayoutStatus::Sent;
    sent.reference = reference;
    let ledger = Transaction::payout_sent(&sent, at)?;
    if app
        .store
        .change_payout(payout, &sent, Some(&ledger))
        .await?
    {
        confirm(app, &sent).await;
    }
    Ok(())
}

/// Tells the affiliate their payout is on its way. Sent after the payout is marked sent: a
/// crash in between loses the mail, never sends it twice.
async fn confirm(app: &App, payout: &Payout) {
    let account_id = crate::domain::accounts::AccountId(payout.affiliate_id.0);
    let Ok(Some(account)) = app.store.account(account_id).await else {
        return;
    };
    let mail = Email {
        to: account.email.clone(),
        subject: format!("Your LeadsRefer payout of {} is on its way", payout.amount),
        text: format!(
            "We sent {} {} to your {} (payout {}).\n",
            payout.amount.to_decimal(),
            payout.amount.currency.code(),
            describe(&payout.method),
            payout.id
        ),
    };
    mail_or_log(app, &mail, "a payout confirmation").await;
}

/// Tells a US payee without a W-9, once a year, that their payouts wait for one (or are
/// backup-withheld). A mail that cannot go out now is tried again by the next run.
async fn tax_notice(app: &App, affiliate: AffiliateId, year: i16, withholding: bool) {
    let consequence = if withholding {
        "Until you do, 24% of each payout is withheld as federal backup withholding and reported to the IRS on your Form 1099-NEC."
    } else {
        "Until you do, your payouts wait; nothing you earned is lost."
    };
    let text = format!(
        "Your payments from LeadsRefer in {year} reach the amount US tax law requires us to report on Form 1099-NEC, and we have no W-9 from you.\n\nPlease sign in and submit your tax profile: a W-9 if you are a US person, or a statement that you are not. {consequence}\n\n{}/api/tax/profile\n",
        app.public_url
    );
    // Best effort, whatever failed: the next run tries again.
    crate::notices::tell_affiliate_once(
        app,
        affiliate,
        &format!("w9-needed#{affiliate}#{year}"),
        "Your LeadsRefer payouts need a W-9",
        text,
        "the W-9 notice",
    )
    .await;
}

/// Sends a mail the payout cannot wait for: a failure is logged (which mail, never to whom)
/// and the run goes on.
async fn mail_or_log(app: &App, mail: &Email, what: &str) {
    if let Err(error) = app.mailer.send(mail).await {
        tracing::error!(%error, "{what} could not be sent");
    }
}

/// The run's report, to every admin.
async fn notify_admins(app: &App, run: &PayoutRun) -> Result<(), PayoutError> {
    for admin in app
        .store
        .all_accounts()
        .await?
        .iter()
        .filter(|a| a.role == Role::Admin)
    {
        let mail = Email {
            to: admin.email.clone(),
            subject: format!("Payout run {}", run.id),
            text: format!(
                "Payout run {} finished.\n\n{}\n",
                run.id,
                run.report.join("\n")
            ),
        };
        mail_or_log(app, &mail, "a payout run's summary").await;
    }
    Ok(())
}

/// The period a run started at `at` pays for: its UTC date.
pub fn period_of(at: Timestamp) -> String {
    at.strftime("%Y-%m-%d").to_string()
}

/// The `payout-run` job: today's run (a repeat does nothing), after resuming any earlier run
/// that did not finish.
pub async fn job(app: App) -> Result<String, crate::jobs::JobError> {
    let failed = |e: PayoutError| crate::jobs::JobError(e.into());
    let today = period_of(app.clock.now());
    for earlier in app
        .store
        .unfinished_runs()
        .await
        .map_err(|e| failed(e.into()))?
    {
        if earlier.id != today {
            run_for(&app, &earlier.id, earlier.affiliate)
                .await
                .map_err(failed)?;
        }
    }
    let started = app.clock.now();
    let run = run(&app, &today).await.map_err(failed)?;
    let rechecked = recheck_paypal(&app).await.map_err(failed)?;
    Ok(format!(
        "payout run {}: {}{}",
        run.id,
        // A repeat answers the day's last run: its report is what that run did, not this one.
        if run.finished_at.is_some_and(|at| at < started) {
            "already ran, and nothing new is owed: paid nobody now".to_string()
        } else if run.report.is_empty() {
            "nothing to pay".to_string()
        } else {
            run.report.join("; ")
        },
        if rechecked.is_empty() {
            String::new()
        } else {
            format!("; earlier PayPal payouts: {}", rechecked.join("; "))
        }
    ))
}

/// How long after a run its PayPal items are read again: a paid payment can still be reversed
/// or refunded, and an unclaimed one comes back after 30 days.
const RECHECK_PAYPAL: SignedDuration = SignedDuration::from_hours(45 * 24);

/// Reads the PayPal batches of the runs finished in the last [`RECHECK_PAYPAL`] again, and
/// takes back into the ledger what PayPal reversed, refunded or returned since.
async fn recheck_paypal(app: &App) -> Result<Vec<String>, PayoutError> {
    let Some(paypal) = &app.payouts.paypal else {
        return Ok(Vec::new());
    };
    let since = app.clock.now() - RECHECK_PAYPAL;
    let mut report = Vec::new();
    for run in app.store.runs(100).await? {
        let recent = run.finished_at.is_some_and(|at| at >= since);
        if let (true, Some(batch)) = (recent, &run.paypal_batch_id) {
            report.extend(sync_paypal(app, paypal, batch, &run.id).await?);
        }
    }
    Ok(report)
}
