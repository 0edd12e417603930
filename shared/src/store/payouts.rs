//! Payout methods, payout runs and payouts.
//!
//! | record | pk | sk | gsi1pk / gsi1sk |
//! | --- | --- | --- | --- |
//! | payout method | `PAYMETHOD#{affiliate}` | `PAYMETHOD` | |
//! | tax profile (W-9 or foreign) | `TAX#{affiliate}` | `TAX` | |
//! | payout run | `RUN#{run}` | `RUN` | `RUNS` / `{run}` |
//! | payout | `RUN#{run}#PAYOUTS` | `{payout id}` | `AFF#{affiliate}#PAYOUTS` / `{payout id}` |
//! | a tax year's 1099 filing | `TAXFORMS` | `{year}` | |
//!
//! Financial records: kept (no `expires_at`), as the privacy policy's seven years require.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{Store, ledger_balance_key, ledger_writes, with_index};
use crate::domain::ids::AffiliateId;
use crate::domain::ledger::{Account, Transaction};
use crate::domain::payout::{Payout, PayoutAccount};
use crate::domain::tax::TaxProfile;
use crate::ports::table::{Cond, Key, Query, TableError, Write, to_item};

/// A payout run: keyed by its period, claimed once, and marked done with its report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayoutRun {
    /// The period it pays for, the UTC date of its schedule (`2026-11-30`), and for a later
    /// run the same day its number (`2026-11-30-2`); an admin's retry for one affiliate
    /// `2026-11-30-retry-{affiliate}`.
    pub id: String,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    /// PayPal's id of the run's batch, once PayPal accepted it.
    pub paypal_batch_id: Option<String>,
    /// One line per affiliate and currency: paid, carried over, or why not.
    pub report: Vec<String>,
    /// Step 1 (making the payouts) is done: a resumed run only hands them to their rails, so
    /// that its bank file and PayPal batch never gain payouts after they went out.
    #[serde(default)]
    pub payouts_made: bool,
    /// A run for one affiliate only (an admin's retry of a failed payout).
    #[serde(default)]
    pub affiliate: Option<AffiliateId>,
    /// What was still owed when it had made its payouts, as a digest: a later run the same
    /// day is made only when this has changed (someone became payable since).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_owing: Option<String>,
    /// The first trace sequence of the run's ACH file, taken from the installation's count
    /// when the file is first written: a rewrite after a crash repeats it, and no two files
    /// share a trace number, so that a bank's return names one payout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ach_first_trace: Option<u64>,
}

/// A tax year's 1099-NEC filing: requested by an admin, and filed by the `tax-forms` job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaxFormsYear {
    pub year: i16,
    /// Set while a request waits for the job.
    #[schema(value_type = Option<String>)]
    pub requested_at: Option<Timestamp>,
    #[schema(value_type = Option<String>)]
    pub filed_at: Option<Timestamp>,
    /// The job's report of the last filing.
    pub report: String,
}

fn tax_forms_key(year: i16) -> Key {
    Key::new("TAXFORMS", year.to_string())
}

fn method_key(affiliate: AffiliateId) -> Key {
    Key::new(format!("PAYMETHOD#{affiliate}"), "PAYMETHOD")
}

fn run_key(run: &str) -> Key {
    Key::new(format!("RUN#{run}"), "RUN")
}

fn payout_key(payout: &Payout) -> Key {
    Key::new(format!("RUN#{}#PAYOUTS", payout.run), payout.id.clone())
}

fn payout_item(payout: &Payout) -> Result<crate::ports::Item, TableError> {
    Ok(with_index(
        to_item(payout, &payout_key(payout))?,
        format!("AFF#{}#PAYOUTS", payout.affiliate_id),
        payout.id.clone(),
    ))
}

fn tax_key(affiliate: AffiliateId) -> Key {
    Key::new(format!("TAX#{affiliate}"), "TAX")
}

impl Store {
    pub async fn tax_profile(
        &self,
        affiliate: AffiliateId,
    ) -> Result<Option<TaxProfile>, TableError> {
        self.get(&tax_key(affiliate)).await
    }

    pub async fn save_tax_profile(
        &self,
        affiliate: AffiliateId,
        profile: &TaxProfile,
    ) -> Result<(), TableError> {
        self.table
            .put(to_item(profile, &tax_key(affiliate))?, Cond::Always)
            .await
    }

    pub async fn tax_forms_years(&self) -> Result<Vec<TaxFormsYear>, TableError> {
        self.query_all(Query::partition("TAXFORMS")).await
    }

    pub async fn tax_forms_year(&self, year: i16) -> Result<Option<TaxFormsYear>, TableError> {
        self.get(&tax_forms_key(year)).await
    }

    pub async fn save_tax_forms_year(&self, record: &TaxFormsYear) -> Result<(), TableError> {
        self.table
            .put(to_item(record, &tax_forms_key(record.year))?, Cond::Always)
            .await
    }

    pub async fn payout_account(
        &self,
        affiliate: AffiliateId,
    ) -> Result<Option<PayoutAccount>, TableError> {
        self.get(&method_key(affiliate)).await
    }

    /// Replaces a payout method with `after` if it has not changed since `before` was read;
    /// answers whether it did.
    pub async fn replace_payout_account(
        &self,
        before: &PayoutAccount,
        after: &PayoutAccount,
    ) -> Result<bool, TableError> {
        let changed_at = serde_json::to_value(before.changed_at)
            .map_err(|e| TableError::Invalid(e.to_string()))?;
        match self
            .table
            .put(
                to_item(after, &method_key(after.affiliate_id))?,
                Cond::Equals("changed_at".into(), changed_at),
            )
            .await
        {
            Ok(()) => Ok(true),
            Err(TableError::Conflict { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub async fn save_payout_account(&self, account: &PayoutAccount) -> Result<(), TableError> {
        self.table
            .put(
                to_item(account, &method_key(account.affiliate_id))?,
                Cond::Always,
            )
            .await
    }

    /// Deletes an erased affiliate's financial records past their retention: payouts and the
    /// tax profile.
    pub async fn delete_financial_records(
        &self,
        affiliate: AffiliateId,
    ) -> Result<usize, TableError> {
        let payouts = self.payouts_of_affiliate(affiliate).await?;
        for payout in &payouts {
            self.table.delete(&payout_key(payout), Cond::Always).await?;
        }
        self.table.delete(&tax_key(affiliate), Cond::Always).await?;
        Ok(payouts.len())
    }

    pub async fn delete_payout_account(&self, affiliate: AffiliateId) -> Result<(), TableError> {
        self.table
            .delete(&method_key(affiliate), Cond::Always)
            .await
            .map(|_| ())
    }

    /// Claims the run for its period: `Ok(run)` for the caller to carry out, whether it is new
    /// or an earlier attempt that did not finish (its steps are safe to repeat).
    pub async fn claim_run(
        &self,
        id: &str,
        affiliate: Option<AffiliateId>,
        now: Timestamp,
    ) -> Result<PayoutRun, TableError> {
        let run = PayoutRun {
            id: id.to_string(),
            started_at: now,
            finished_at: None,
            paypal_batch_id: None,
            report: vec![],
            payouts_made: false,
            affiliate,
            left_owing: None,
            ach_first_trace: None,
        };
        let item = with_index(to_item(&run, &run_key(id))?, "RUNS".into(), id.to_string());
        match self.table.put(item, Cond::NotExists).await {
            Ok(()) => Ok(run),
            Err(TableError::Conflict {
                existing: Some(existing),
                ..
            }) => crate::ports::table::from_item(*existing),
            Err(e) => Err(e),
        }
    }

    pub async fn payout_run(&self, id: &str) -> Result<Option<PayoutRun>, TableError> {
        self.get(&run_key(id)).await
    }

    /// Takes `count` trace sequence numbers from the installation's count of ACH entries and
    /// answers the first (1 for the first file ever).
    pub async fn take_ach_traces(&self, count: u64) -> Result<u64, TableError> {
        let count = i64::try_from(count).map_err(|e| TableError::Invalid(e.to_string()))?;
        let counted = self
            .table
            .update(
                &super::meta_key("ach-traces"),
                crate::ports::table::Update::default().add("taken", count),
                Cond::Always,
            )
            .await?;
        let taken = counted
            .get("taken")
            .and_then(serde_json::Value::as_i64)
            .ok_or_else(|| TableError::Invalid("the ACH trace count is not a number".into()))?;
        Ok((taken - count + 1) as u64)
    }

    pub async fn save_run(&self, run: &PayoutRun) -> Result<(), TableError> {
        let item = with_index(
            to_item(run, &run_key(&run.id))?,
            "RUNS".into(),
            run.id.clone(),
        );
        self.table.put(item, Cond::Exists).await
    }

    /// The latest runs first.
    pub async fn runs(&self, limit: usize) -> Result<Vec<PayoutRun>, TableError> {
        let page = self
            .table
            .query(Query::gsi1("RUNS").descending().limit(limit))
            .await?;
        page.items
            .into_iter()
            .map(crate::ports::table::from_item)
            .collect()
    }

    /// Every run that has not finished, oldest first. All runs are read, not the latest few: a
    /// run may wait on its rails (a PayPal batch) for longer than any fixed count of runs
    /// covers, and there is one run a day (seven years of them are a few thousand items).
    pub async fn unfinished_runs(&self) -> Result<Vec<PayoutRun>, TableError> {
        let runs: Vec<PayoutRun> = self.query_all(Query::gsi1("RUNS")).await?;
        Ok(runs
            .into_iter()
            .filter(|run| run.finished_at.is_none())
            .collect())
    }

    /// Makes a payout with its ledger transaction, once: `Ok(false)` if the run made it
    /// before. The affiliate's payable balance may not go into debit by it (a payout never
    /// pays more than is owed, however runs race).
    pub async fn create_payout(
        &self,
        payout: &Payout,
        ledger: &Transaction,
    ) -> Result<bool, TableError> {
        let mut writes = vec![Write::Put {
            item: payout_item(payout)?,
            cond: Cond::NotExists,
        }];
        let payable = ledger_balance_key(
            &Account::affiliate_payable(payout.affiliate_id),
            payout.amount.currency,
        );
        for write in ledger_writes(ledger)? {
            match write {
                // Payable balances are credits (negative): after this debit it must stay ≤ 0.
                Write::Update { key, update, .. } if key == payable => writes.push(Write::Update {
                    key,
                    update,
                    cond: Cond::Below(
                        "balance".into(),
                        -(payout.amount.minor + payout.withheld) + 1,
                    ),
                }),
                other => writes.push(other),
            }
        }
        match self.table.transact(writes).await {
            Ok(()) => Ok(true),
            Err(TableError::Conflict { write: 0, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Moves a payout from `before`'s status to `after`'s with its ledger transaction, if no
    /// one moved it first (`Ok(false)`).
    pub async fn change_payout(
        &self,
        before: &Payout,
        after: &Payout,
        ledger: Option<&Transaction>,
    ) -> Result<bool, TableError> {
        let status =
            serde_json::to_value(before.status).map_err(|e| TableError::Invalid(e.to_string()))?;
        let mut writes = vec![Write::Put {
            item: payout_item(after)?,
            cond: Cond::Equals("status".into(), status),
        }];
        if let Some(ledger) = ledger {
            writes.extend(ledger_writes(ledger)?);
        }
        match self.table.transact(writes).await {
            Ok(()) => Ok(true),
            Err(TableError::Conflict { write: 0, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A payout by its id (`{run}:{affiliate}:{currency}`).
    pub async fn payout(&self, id: &str) -> Result<Option<Payout>, TableError> {
        let Some((run, _)) = id.split_once(':') else {
            return Ok(None);
        };
        self.get(&Key::new(format!("RUN#{run}#PAYOUTS"), id)).await
    }

    pub async fn payouts_of_run(&self, run: &str) -> Result<Vec<Payout>, TableError> {
        self.query_all(Query::partition(format!("RUN#{run}#PAYOUTS")))
            .await
    }

    /// An affiliate's payouts, newest first.
    pub async fn payouts_of_affiliate(
        &self,
        affiliate: AffiliateId,
    ) -> Result<Vec<Payout>, TableError> {
        self.query_all(Query::gsi1(format!("AFF#{affiliate}#PAYOUTS")).descending())
            .await
    }
}
