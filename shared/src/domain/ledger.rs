//! The double-entry ledger. Every movement of money is one [`Transaction`] whose entries sum
//! to zero in each currency: debits positive, credits negative. Balances are sums of entries.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::ids::{AdvertiserId, AffiliateId};
use super::money::{Currency, Money};
use super::payout::Payout;
use super::tracking::Conversion;

/// A ledger account's name, such as `advertiser:01J…:receivable`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Account(String);

impl Account {
    /// What an advertiser owes the platform (a debit balance).
    pub fn advertiser_receivable(id: AdvertiserId) -> Self {
        Self(format!("advertiser:{id}:receivable"))
    }

    /// What an affiliate has earned on conversions not yet approved (a credit balance).
    pub fn affiliate_pending(id: AffiliateId) -> Self {
        Self(format!("affiliate:{id}:pending"))
    }

    /// An affiliate's approved earnings still in the offer's hold period (a credit balance).
    pub fn affiliate_held(id: AffiliateId) -> Self {
        Self(format!("affiliate:{id}:held"))
    }

    /// What an affiliate can be paid now (a credit balance; a debit balance after a reversal of
    /// earnings already paid, recovered from later earnings).
    pub fn affiliate_payable(id: AffiliateId) -> Self {
        Self(format!("affiliate:{id}:payable"))
    }

    /// Payouts made and not yet settled by their rail (a credit balance while in flight).
    pub fn payouts_clearing() -> Self {
        Self("platform:payouts-clearing".into())
    }

    /// Money that left the platform's bank or PayPal account (a credit balance).
    pub fn platform_cash() -> Self {
        Self("platform:cash".into())
    }

    /// Backup withholding kept from affiliates' payments, owed to the IRS (a credit balance).
    pub fn tax_withheld() -> Self {
        Self("platform:tax-withheld".into())
    }

    /// What an erased account still held when its records were deleted, seven years on: owed
    /// to or by no one the platform can reach (escheatment is the operator's to handle).
    pub fn platform_unclaimed() -> Self {
        Self("platform:unclaimed".into())
    }

    /// The platform's margin: revenue less payouts (a credit balance).
    pub fn platform_margin() -> Self {
        Self("platform:margin".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub account: Account,
    /// Positive debits, negative credits.
    pub amount: Money,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger transaction {0} does not balance in {1}")]
    Unbalanced(String, Currency),
    #[error("ledger transaction {0} has no entries")]
    Empty(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    /// Deterministic, derived from what caused it, so that a repeat cannot post it twice.
    pub id: String,
    pub at: Timestamp,
    pub memo: String,
    pub entries: Vec<Entry>,
}

impl Transaction {
    /// A transaction of the non-zero entries, refused unless it balances in every currency.
    pub fn new(
        id: String,
        at: Timestamp,
        memo: String,
        entries: Vec<Entry>,
    ) -> Result<Self, LedgerError> {
        // One entry per account and currency (a store writes each account's balance once).
        let mut merged: Vec<Entry> = Vec::with_capacity(entries.len());
        for entry in entries {
            match merged
                .iter_mut()
                .find(|e| e.account == entry.account && e.amount.currency == entry.amount.currency)
            {
                Some(same) => same.amount.minor += entry.amount.minor,
                None => merged.push(entry),
            }
        }
        let entries: Vec<Entry> = merged.into_iter().filter(|e| e.amount.minor != 0).collect();
        if entries.is_empty() {
            return Err(LedgerError::Empty(id));
        }
        let mut sums: BTreeMap<&str, (Currency, i128)> = BTreeMap::new();
        for entry in &entries {
            let sum = sums
                .entry(entry.amount.currency.code())
                .or_insert((entry.amount.currency, 0));
            sum.1 += i128::from(entry.amount.minor);
        }
        if let Some((currency, _)) = sums.values().find(|(_, sum)| *sum != 0) {
            return Err(LedgerError::Unbalanced(id, *currency));
        }
        Ok(Self {
            id,
            at,
            memo,
            entries,
        })
    }

    /// The commission of a newly recorded conversion: the advertiser owes the revenue, the
    /// affiliate earns the payout (pending approval), the platform keeps the difference.
    pub fn conversion_recorded(conversion: &Conversion) -> Result<Self, LedgerError> {
        let currency = conversion.revenue.currency;
        let margin = conversion.revenue.minor - conversion.payout.minor;
        Self::new(
            format!("conversion:{}:recorded", conversion.id),
            conversion.at,
            format!("commission on conversion {}", conversion.id),
            vec![
                Entry {
                    account: Account::advertiser_receivable(conversion.advertiser_id),
                    amount: conversion.revenue,
                },
                Entry {
                    account: Account::affiliate_pending(conversion.affiliate_id),
                    amount: Money::new(-conversion.payout.minor, currency),
                },
                Entry {
                    account: Account::platform_margin(),
                    amount: Money::new(-margin, currency),
                },
            ],
        )
    }
}

/// Where an approved conversion's earnings are when it is reversed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Earnings {
    Held,
    Payable,
}

impl Transaction {
    fn conversion_step(
        conversion: &Conversion,
        step: &str,
        at: Timestamp,
        entries: Vec<Entry>,
    ) -> Result<Self, LedgerError> {
        Self::new(
            format!("conversion:{}:{step}", conversion.id),
            at,
            format!("conversion {} {step}", conversion.id),
            entries,
        )
    }

    /// Approval: the affiliate's pending earnings move into the hold period, or straight to
    /// payable when the offer holds nothing.
    pub fn conversion_approved(
        conversion: &Conversion,
        into: Earnings,
        at: Timestamp,
    ) -> Result<Self, LedgerError> {
        let payout = conversion.payout;
        let into = match into {
            Earnings::Held => Account::affiliate_held(conversion.affiliate_id),
            Earnings::Payable => Account::affiliate_payable(conversion.affiliate_id),
        };
        Self::conversion_step(
            conversion,
            "approved",
            at,
            vec![
                Entry {
                    account: Account::affiliate_pending(conversion.affiliate_id),
                    amount: payout,
                },
                Entry {
                    account: into,
                    amount: Money::new(-payout.minor, payout.currency),
                },
            ],
        )
    }

    /// The hold is over: the earnings become payable.
    pub fn conversion_matured(conversion: &Conversion, at: Timestamp) -> Result<Self, LedgerError> {
        let payout = conversion.payout;
        Self::conversion_step(
            conversion,
            "matured",
            at,
            vec![
                Entry {
                    account: Account::affiliate_held(conversion.affiliate_id),
                    amount: payout,
                },
                Entry {
                    account: Account::affiliate_payable(conversion.affiliate_id),
                    amount: Money::new(-payout.minor, payout.currency),
                },
            ],
        )
    }

    /// Undoes a recorded commission: the advertiser no longer owes the revenue, the affiliate
    /// no longer earns the payout (from wherever it is), the platform no longer keeps the
    /// margin. `step` is `rejected` (from pending) or `reversed` (after approval).
    fn conversion_undone(
        conversion: &Conversion,
        step: &str,
        from: Account,
        at: Timestamp,
    ) -> Result<Self, LedgerError> {
        let currency = conversion.revenue.currency;
        let margin = conversion.revenue.minor - conversion.payout.minor;
        Self::conversion_step(
            conversion,
            step,
            at,
            vec![
                Entry {
                    account: Account::advertiser_receivable(conversion.advertiser_id),
                    amount: Money::new(-conversion.revenue.minor, currency),
                },
                Entry {
                    account: from,
                    amount: conversion.payout,
                },
                Entry {
                    account: Account::platform_margin(),
                    amount: Money::new(margin, currency),
                },
            ],
        )
    }

    /// Rejection of a pending conversion: the commission as if it never was.
    pub fn conversion_rejected(
        conversion: &Conversion,
        at: Timestamp,
    ) -> Result<Self, LedgerError> {
        Self::conversion_undone(
            conversion,
            "rejected",
            Account::affiliate_pending(conversion.affiliate_id),
            at,
        )
    }

    /// Reversal of an approved conversion (a chargeback, a refund): compensating entries, taken
    /// from the held or payable earnings. Earnings already paid leave the payable balance in
    /// debit, recovered from the affiliate's next earnings.
    pub fn conversion_reversed(
        conversion: &Conversion,
        from: Earnings,
        at: Timestamp,
    ) -> Result<Self, LedgerError> {
        let account = match from {
            Earnings::Held => Account::affiliate_held(conversion.affiliate_id),
            Earnings::Payable => Account::affiliate_payable(conversion.affiliate_id),
        };
        Self::conversion_undone(conversion, "reversed", account, at)
    }
}

impl Transaction {
    /// One step of a payout: its amount moves from `credit` to `debit`, and any backup
    /// withholding between the affiliate's payable balance and the tax-withheld account
    /// (`withheld_debit` says which way).
    fn payout_step(
        payout: &Payout,
        step: &str,
        at: Timestamp,
        debit: Account,
        credit: Account,
        withheld_debit: Option<bool>,
    ) -> Result<Self, LedgerError> {
        let amount = payout.amount;
        let mut entries = vec![
            Entry {
                account: debit,
                amount,
            },
            Entry {
                account: credit,
                amount: Money::new(-amount.minor, amount.currency),
            },
        ];
        if let Some(payable_debited) = withheld_debit {
            let sign = if payable_debited { 1 } else { -1 };
            entries.push(Entry {
                account: Account::affiliate_payable(payout.affiliate_id),
                amount: Money::new(sign * payout.withheld, amount.currency),
            });
            entries.push(Entry {
                account: Account::tax_withheld(),
                amount: Money::new(-sign * payout.withheld, amount.currency),
            });
        }
        Self::new(
            format!("payout:{}:{step}", payout.id),
            at,
            format!("payout {} {step}", payout.id),
            entries,
        )
    }

    /// A payout is made: the affiliate's payable balance moves into clearing, and any backup
    /// withholding into the tax-withheld account.
    pub fn payout_created(payout: &Payout, at: Timestamp) -> Result<Self, LedgerError> {
        Self::payout_step(
            payout,
            "created",
            at,
            Account::affiliate_payable(payout.affiliate_id),
            Account::payouts_clearing(),
            Some(true),
        )
    }

    /// The rail took the money out: clearing settles against cash.
    pub fn payout_sent(payout: &Payout, at: Timestamp) -> Result<Self, LedgerError> {
        Self::payout_step(
            payout,
            "sent",
            at,
            Account::payouts_clearing(),
            Account::platform_cash(),
            None,
        )
    }

    /// The money came back after it was sent (returned, unclaimed, reversed): cash returns and
    /// the affiliate is owed it again.
    pub fn payout_returned(payout: &Payout, at: Timestamp) -> Result<Self, LedgerError> {
        Self::payout_step(
            payout,
            "returned",
            at,
            Account::platform_cash(),
            Account::affiliate_payable(payout.affiliate_id),
            Some(false),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(minor: i64) -> Money {
        Money::new(minor, Currency::parse("USD").unwrap())
    }

    fn entry(account: &str, amount: Money) -> Entry {
        Entry {
            account: Account(account.into()),
            amount,
        }
    }

    #[test]
    fn balanced_transactions_are_accepted_and_zero_entries_dropped() {
        let txn = Transaction::new(
            "t".into(),
            Timestamp::UNIX_EPOCH,
            "m".into(),
            vec![
                entry("a", usd(500)),
                entry("b", usd(-300)),
                entry("c", usd(-200)),
                entry("d", usd(0)),
            ],
        )
        .unwrap();
        assert_eq!(txn.entries.len(), 3);
    }

    #[test]
    fn unbalanced_or_empty_transactions_are_refused() {
        let eur = Money::new(-500, Currency::parse("EUR").unwrap());
        let at = Timestamp::UNIX_EPOCH;
        assert!(matches!(
            Transaction::new(
                "t".into(),
                at,
                "m".into(),
                vec![entry("a", usd(500)), entry("b", usd(-499))]
            ),
            Err(LedgerError::Unbalanced(..))
        ));
        assert!(matches!(
            Transaction::new(
                "t".into(),
                at,
                "m".into(),
                vec![entry("a", usd(500)), entry("b", eur)]
            ),
            Err(LedgerError::Unbalanced(..))
        ));
        assert!(matches!(
            Transaction::new("t".into(), at, "m".into(), vec![]),
            Err(LedgerError::Empty(_))
        ));
    }
}
