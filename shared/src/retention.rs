//! The `retention` job (daily): deletes what has passed its period, and nothing else.
//!
//! - Tracking records (clicks, conversions, their dedupe keys, counters, flags, deliveries)
//!   carry `expires_at` three years out, and sessions, reset codes and throttles their own
//!   short expiry; DynamoDB's TTL deletes them in production and this job purges them from the
//!   embedded store. Every read filters them meanwhile.
//! - Financial records (account, payouts, ledger entries, tax profile) are kept seven years
//!   from the account's last financial activity. An open account keeps them; for an erased one
//!   this job deletes them once seven years have passed since its last ledger entry, payout or
//!   the erasure itself, whichever came last.
//! - Data export files go when their download link expires.
//! - A tax year's 1099 file and statements (`tax/{year}/`, full TINs in the file) go seven years
//!   after the forms were due, on 31 January of the next year.
//! - Call recordings go with their calls, three years on: they are kept by the call's day
//!   (`calls/{YYYY-MM-DD}/…`), and each run deletes the 30 days before the cutoff.

use jiff::{SignedDuration, Timestamp, ToSpan};

use crate::app::App;
use crate::domain::accounts::AccountId;
use crate::domain::ids::{AdvertiserId, AffiliateId};
use crate::domain::ledger::{Account, Entry, Transaction};
use crate::domain::money::{Currency, Money};
use crate::jobs::JobError;
use crate::ports::TableError;
use crate::store::{RequestKind, RequestStatus};

/// Seven years after `at`, by the calendar.
pub fn financial_expiry(at: Timestamp) -> Timestamp {
    at.to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .checked_add(7.years())
        .map(|z| z.timestamp())
        .unwrap_or(Timestamp::MAX)
}

/// When a tax year's filing has been kept seven years: seven years after its forms were due
/// (31 January of the next year).
fn tax_files_expiry(year: i16) -> Timestamp {
    jiff::civil::Date::new(year.saturating_add(1), 1, 31)
        .and_then(|due| due.to_zoned_datetime(jiff::tz::TimeZone::UTC))
        .map_or(Timestamp::MAX, |due| financial_expiry(due.timestamp()))
}

/// Deletes every blob whose key starts with `prefix`; answers how many.
async fn delete_under(app: &App, prefix: &str) -> Result<usize, JobError> {
    let keys = app
        .blobs
        .list(prefix)
        .await
        .map_err(|e| JobError(e.into()))?;
    for key in &keys {
        app.blobs
            .delete(key)
            .await
            .map_err(|e| JobError(e.into()))?;
    }
    Ok(keys.len())
}

/// The ledger accounts an account of the platform may have.
fn ledger_accounts(id: AccountId) -> Vec<Account> {
    vec![
        Account::affiliate_pending(AffiliateId(id.0)),
        Account::affiliate_held(AffiliateId(id.0)),
        Account::affiliate_payable(AffiliateId(id.0)),
        Account::advertiser_receivable(AdvertiserId(id.0)),
    ]
}

/// The last financial activity of an erased account: its newest ledger entry or payout, or
/// the erasure itself.
pub async fn last_financial_activity(
    app: &App,
    id: AccountId,
    erased_at: Timestamp,
    currencies: &[Currency],
) -> Result<Timestamp, TableError> {
    let mut last = erased_at;
    for account in ledger_accounts(id) {
        for currency in currencies {
            for (transaction, _, at) in app.store.ledger_entries(&account, *currency).await? {
                // This job's own write-off (left by a run that stopped midway) is no activity.
                if !transaction.starts_with("retention:") {
                    last = last.max(at);
                }
            }
        }
    }
    for payout in app.store.payouts_of_affiliate(AffiliateId(id.0)).await? {
        last = last.max(payout.created_at);
    }
    Ok(last)
}

pub async fn job(app: App) -> Result<String, JobError> {
    let failed = |e: TableError| JobError(e.into());
    let now = app.clock.now();
    let purged = app.table.purge_expired().await.map_err(failed)?;
    let mut recordings = 0;
    let cutoff = now - crate::domain::tracking::TRACKING_RETENTION;
    for days_before in 1..=30 {
        let day = (cutoff - SignedDuration::from_hours(24 * days_before)).strftime("%Y-%m-%d");
        recordings += delete_under(&app, &format!("calls/{day}/")).await?;
    }
    let mut tax_files = 0;
    for filing in app.store.tax_forms_years().await.map_err(failed)? {
        if now >= tax_files_expiry(filing.year) {
            tax_files += delete_under(&app, &format!("tax/{}/", filing.year)).await?;
        }
    }
    let currencies = app.store.offer_currencies().await.map_err(failed)?;
    let mut deleted = Vec::new();
    let mut waiting = 0;
    let mut exports = 0;
    for mut request in app.store.privacy_requests().await.map_err(failed)? {
        if request.kind == RequestKind::Export
            && request.records_deleted_at.is_none()
            && request.download_until.is_some_and(|until| until <= now)
        {
            let key = crate::privacy::export_key(&request).map_err(|e| JobError(e.into()))?;
            app.blobs
                .delete(&key)
                .await
                .map_err(|e| JobError(e.into()))?;
            request.records_deleted_at = Some(now);
            app.store
                .save_privacy_request(&request)
                .await
                .map_err(failed)?;
            exports += 1;
            continue;
        }
        if request.kind != RequestKind::Erasure
            || request.status != RequestStatus::Done
            || request.records_deleted_at.is_some()
        {
            continue;
        }
        let erased_at = request.completed_at.unwrap_or(request.requested_at);
        let last = last_financial_activity(&app, request.account_id, erased_at, &currencies)
            .await
            .map_err(failed)?;
        if now < financial_expiry(last) {
            waiting += 1;
            continue;
        }
        let id = request.account_id;
        let mut entries = 0;
        for account in ledger_accounts(id) {
            for currency in &currencies {
                // What the account still holds moves to `platform:unclaimed` first, so that the
                // books still balance once its entries are gone.
                let balance = app
                    .store
                    .balance(&account, *currency)
                    .await
                    .map_err(failed)?;
                if balance != 0 {
                    let write_off = Transaction::new(
                        format!("retention:{}:{}", account.as_str(), currency.code()),
                        now,
                        format!("balance of erased account {id} at the end of its retention"),
                        vec![
                            Entry {
                                account: account.clone(),
                                amount: Money::new(-balance, *currency),
                            },
                            Entry {
                                account: Account::platform_unclaimed(),
                                amount: Money::new(balance, *currency),
                            },
                        ],
                    )
                    .map_err(|e| JobError(e.into()))?;
                    app.store.post(&write_off).await.map_err(failed)?;
                }
                entries += app
                    .store
                    .delete_ledger_account(&account, *currency)
                    .await
                    .map_err(failed)?;
            }
        }
        if let Some(crate::domain::tax::TaxProfile::Foreign {
            document: Some(document),
            ..
        }) = app
            .store
            .tax_profile(AffiliateId(id.0))
            .await
            .map_err(failed)?
            && let Ok(key) = crate::ports::BlobKey::parse(document.key)
        {
            app.blobs
                .delete(&key)
                .await
                .map_err(|e| JobError(e.into()))?;
        }
        let payouts = app
            .store
            .delete_financial_records(AffiliateId(id.0))
            .await
            .map_err(failed)?;
        app.store.delete_account(id).await.map_err(failed)?;
        request.records_deleted_at = Some(now);
        app.store
            .save_privacy_request(&request)
            .await
            .map_err(failed)?;
        deleted.push(format!(
            "account {id}: {payouts} payouts, {entries} ledger entries, tax profile and account record deleted"
        ));
    }
    Ok(format!(
        "{purged} expired records purged; {recordings} call recordings past three years deleted; {exports} expired export files deleted; {tax_files} tax files kept seven years deleted; {} erased accounts' financial records deleted, {waiting} still within seven years{}",
        deleted.len(),
        if deleted.is_empty() {
            String::new()
        } else {
            format!(" ({})", deleted.join("; "))
        }
    ))
}
