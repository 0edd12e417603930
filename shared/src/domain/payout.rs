//! How affiliates are paid: their payout method (PayPal or a US bank account by ACH), and the
//! payouts a run makes. Bank account numbers never appear here in the clear after input: they
//! are sealed through `Keys` before they are stored, and only the last four digits are shown.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::email::EmailAddress;
use super::ids::AffiliateId;
use super::money::Money;

/// An ABA routing number that passes its checksum:
/// 3(d1+d4+d7) + 7(d2+d5+d8) + (d3+d6+d9) ≡ 0 (mod 10).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoutingNumber(String);

impl RoutingNumber {
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let digits: Vec<u32> = text.chars().filter_map(|c| c.to_digit(10)).collect();
        if text.len() != 9 || digits.len() != 9 {
            return Err("must be 9 digits");
        }
        let sum: u32 = digits
            .iter()
            .zip([3, 7, 1, 3, 7, 1, 3, 7, 1])
            .map(|(d, w)| d * w)
            .sum();
        if !sum.is_multiple_of(10) {
            return Err("fails the ABA checksum: check the digits");
        }
        Ok(Self(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RoutingNumber {
    type Error = &'static str;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<RoutingNumber> for String {
    fn from(routing: RoutingNumber) -> String {
        routing.0
    }
}

/// A bank account number as typed: 4 to 17 digits (the DFI account field of a NACHA entry).
pub fn check_account_number(text: &str) -> Result<(), &'static str> {
    if !(4..=17).contains(&text.len()) || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err("must be 4 to 17 digits");
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccountType {
    Checking,
    Savings,
}

/// Whose bank account it is: a person's (paid in a PPD batch) or a company's (CCD).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccountHolder {
    #[default]
    Individual,
    Company,
}

/// Where an affiliate's money goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PayoutMethod {
    Paypal {
        email: EmailAddress,
    },
    Ach {
        routing_number: RoutingNumber,
        /// The account number sealed through `Keys` (context: the affiliate's id).
        account_sealed: String,
        account_last4: String,
        account_type: AccountType,
        #[serde(default)]
        account_holder: AccountHolder,
        name_on_account: String,
    },
}

impl PayoutMethod {
    pub fn rail(&self) -> Rail {
        match self {
            Self::Paypal { .. } => Rail::Paypal,
            Self::Ach { .. } => Rail::Ach,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Rail {
    Paypal,
    Ach,
}

/// An affiliate's payout method as stored, with when it last changed and until when payouts
/// wait (the cooling-off period after a change: an account taken over cannot redirect the next
/// payout at once).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayoutAccount {
    pub affiliate_id: AffiliateId,
    pub method: PayoutMethod,
    pub changed_at: Timestamp,
    pub hold_until: Timestamp,
    /// The bank returned a payment because the account cannot take one (closed, not found…):
    /// payouts wait until the affiliate gives another method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<MethodStopped>,
}

/// Why a payout method no longer pays.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MethodStopped {
    /// The return reason code (`R03`).
    pub code: String,
    /// The payout that came back.
    pub payout: String,
    pub at: Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PayoutStatus {
    /// In the ledger, not yet handed to its rail.
    Created,
    /// Handed to PayPal, or written into the run's ACH file.
    Sent,
    /// PayPal says the money arrived.
    Paid,
    /// The rail refused or returned it; the amount is back in the affiliate's payable balance.
    Failed,
}

/// One payment to one affiliate in one currency, made by one run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payout {
    /// `{run}:{affiliate}:{currency}`: a run pays an affiliate once per currency.
    pub id: String,
    pub run: String,
    pub affiliate_id: AffiliateId,
    /// What the rail sends (net of any backup withholding).
    pub amount: Money,
    /// Federal backup withholding kept back from this payment (24% when a US payee over the
    /// 1099 threshold has no W-9 and the operator chose to withhold), in `amount`'s currency.
    #[serde(default)]
    pub withheld: i64,
    /// Where it goes: the affiliate's method when the payout was made (a later change does
    /// not redirect it).
    pub method: PayoutMethod,
    pub status: PayoutStatus,
    pub created_at: Timestamp,
    /// The rail's reference: PayPal's payout item id, or the ACH trace number.
    #[serde(default)]
    pub reference: Option<String>,
    /// Why it failed, as the rail said.
    #[serde(default)]
    pub failure: Option<String>,
}

impl Payout {
    pub fn id_for(run: &str, affiliate: AffiliateId, amount: Money) -> String {
        format!("{run}:{affiliate}:{}", amount.currency.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_numbers_are_checked_by_their_checksum() {
        assert!(RoutingNumber::parse("021000021").is_ok());
        assert!(RoutingNumber::parse("111000025").is_ok());
        assert_eq!(
            RoutingNumber::parse("123456789"),
            Err("fails the ABA checksum: check the digits")
        );
        for bad in ["02100002", "0210000211", "02100002a", "", "021 00021"] {
            assert_eq!(RoutingNumber::parse(bad), Err("must be 9 digits"), "{bad}");
        }
    }

    #[test]
    fn account_numbers_are_4_to_17_digits() {
        assert!(check_account_number("1234").is_ok());
        assert!(check_account_number("12345678901234567").is_ok());
        for bad in ["123", "123456789012345678", "12-34", "abcd", ""] {
            assert!(check_account_number(bad).is_err(), "{bad}");
        }
    }
}
