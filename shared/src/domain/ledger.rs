//! The double-entry ledger. Every movement of money is one [`Transaction`] whose entries sum
//! to zero in each currency: debits positive, credits negative. Balances are sums of entries.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::ids::{AdvertiserId, AffiliateId};
use super::money::{Currency, Money};
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
        let entries: Vec<Entry> = entries
            .into_iter()
            .filter(|e| e.amount.minor != 0)
            .collect();
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
