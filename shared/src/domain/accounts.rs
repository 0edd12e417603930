//! Accounts: who may use the platform, in which role, and whether an admin has let them in.
//!
//! An advertiser's or affiliate's account id is also its advertiser or affiliate id. Only the
//! fact that a registrant is an adult is kept, not the date of birth (data minimisation).

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use ulid::Ulid;

use super::email::EmailAddress;
use super::ids::{AdvertiserId, AffiliateId, ulid_id};
use crate::secret::Secret;

ulid_id!(/// An account: an admin, an advertiser or an affiliate.
    AccountId);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Advertiser,
    Affiliate,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Advertiser => "advertiser",
            Self::Affiliate => "affiliate",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    /// Registered; an admin has not approved it yet. It may sign in and look, not publish.
    PendingApproval,
    Active,
    /// Refused sign-in and every API call.
    Suspended,
    /// Erased at its holder's request: refused like a suspended account, for good.
    Closed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: AccountId,
    pub role: Role,
    pub email: EmailAddress,
    pub name: String,
    /// argon2id, PHC string format; redacted from `Debug`, so it cannot reach a log.
    pub password_hash: Secret<String>,
    pub status: AccountStatus,
    pub email_verified: bool,
    /// When the registrant showed they are 18 or older (by date of birth or attestation).
    pub adult_confirmed_at: Timestamp,
    pub created_at: Timestamp,
}

impl Account {
    pub fn advertiser_id(&self) -> Option<AdvertiserId> {
        (self.role == Role::Advertiser).then_some(AdvertiserId(self.id.0))
    }

    pub fn affiliate_id(&self) -> Option<AffiliateId> {
        (self.role == Role::Affiliate).then_some(AffiliateId(self.id.0))
    }
}

/// Passwords: 12 to 128 characters (OWASP ASVS), anything else allowed, spaces included.
pub fn check_password(password: &str) -> Result<(), &'static str> {
    match password.chars().count() {
        0..=11 => Err("must be at least 12 characters"),
        129.. => Err("must be at most 128 characters"),
        _ => Ok(()),
    }
}

/// A display name: 1 to 100 characters, no control characters, trimmed.
pub fn check_name(name: &str) -> Result<String, &'static str> {
    check_text(name, 100).ok_or("must be 1 to 100 characters without control characters")
}

/// Text a person types (a name, an address line): trimmed, 1 to `max` characters, no control
/// characters; none otherwise.
pub fn check_text(text: &str, max: usize) -> Option<String> {
    let text = text.trim();
    (!text.is_empty() && text.chars().count() <= max && !text.chars().any(char::is_control))
        .then(|| text.to_string())
}

/// Whether someone born on `birth` is 18 or older on `today`.
pub fn is_adult(birth: Date, today: Date) -> bool {
    birth
        .checked_add(jiff::Span::new().years(18))
        .is_ok_and(|eighteenth| eighteenth <= today)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn adulthood_starts_on_the_eighteenth_birthday() {
        let today = date(2026, 11, 29);
        assert!(is_adult(date(2008, 11, 29), today));
        assert!(!is_adult(date(2008, 11, 30), today));
        assert!(is_adult(date(1950, 1, 1), today));
        assert!(!is_adult(date(2026, 11, 29), today));
        // Born on 29 February: adult on 28 February? jiff clamps to the 28th.
        assert!(is_adult(date(2008, 2, 29), date(2026, 2, 28)));
    }

    #[test]
    fn passwords_and_names_have_bounds() {
        assert!(check_password("short").is_err());
        assert!(check_password("twelve chars").is_ok());
        assert!(check_password(&"x".repeat(129)).is_err());
        assert_eq!(check_name("  Ann  ").unwrap(), "Ann");
        assert!(check_name("   ").is_err());
        assert!(check_name("a\u{0}b").is_err());
    }
}

/// The advertiser or affiliate whose records a request reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Party {
    Advertiser(AdvertiserId),
    Affiliate(AffiliateId),
}
