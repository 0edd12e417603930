//! Affiliates' tax profiles: a W-9 (US persons) or a statement of being foreign. A TIN is
//! checked for shape here and then sealed through `Keys`; only its last four digits are kept
//! in the clear.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::ids::AffiliateId;

/// Which kind of taxpayer identification number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TinType {
    Ssn,
    Ein,
    Itin,
}

/// A TIN's nine digits, checked for its type's shape (DOMAIN.md): an SSN's area is never 000,
/// 666 or 900–999, its group never 00 and its serial never 0000; an ITIN begins with 9; an EIN
/// is nine digits (`XX-XXXXXXX`). Dashes where the forms print them are accepted.
pub fn check_tin(kind: TinType, text: &str) -> Result<String, &'static str> {
    let digits: String = text.chars().filter(|c| *c != '-').collect();
    let dashes_ok = match kind {
        TinType::Ssn | TinType::Itin => {
            text.len() == 9 || (text.len() == 11 && &text[3..4] == "-" && &text[6..7] == "-")
        }
        TinType::Ein => text.len() == 9 || (text.len() == 10 && &text[2..3] == "-"),
    };
    if digits.len() != 9 || !digits.bytes().all(|b| b.is_ascii_digit()) || !dashes_ok {
        return Err("must be 9 digits, as the form prints them");
    }
    let area: u32 = digits[..3].parse().expect("digits");
    match kind {
        TinType::Ssn => {
            if area == 0 || area == 666 || area >= 900 {
                return Err(
                    "is not a valid SSN: its first three digits cannot be 000, 666 or 900–999",
                );
            }
            if &digits[3..5] == "00" || &digits[5..] == "0000" {
                return Err("is not a valid SSN: its group cannot be 00 nor its serial 0000");
            }
        }
        TinType::Itin => {
            if !digits.starts_with('9') {
                return Err("is not a valid ITIN: it begins with 9");
            }
        }
        TinType::Ein => {}
    }
    Ok(digits)
}

/// Box 3 of the W-9.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaxClassification {
    /// Individual or sole proprietor (or single-member LLC).
    Individual,
    CCorporation,
    SCorporation,
    Partnership,
    TrustEstate,
    LlcC,
    LlcS,
    LlcP,
    Other,
}

impl TaxClassification {
    /// Whether payments to this payee are exempt from Form 1099-NEC reporting: corporations,
    /// C or S, and LLCs taxed as either, are (IRS instructions for Forms 1099-MISC and -NEC,
    /// "Exceptions"). The exceptions to the exemption (attorneys' fees, medical and health-care
    /// payments) are not what an affiliate is paid for, so they never apply here.
    pub fn exempt_from_1099_nec(self) -> bool {
        matches!(
            self,
            Self::CCorporation | Self::SCorporation | Self::LlcC | Self::LlcS
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UsAddress {
    pub line1: String,
    #[serde(default)]
    pub line2: Option<String>,
    pub city: String,
    /// Two letters (USPS).
    pub state: String,
    /// Five digits, or nine (`12345-6789`).
    pub zip: String,
}

/// A certified W-9.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct W9 {
    pub legal_name: String,
    pub business_name: Option<String>,
    pub classification: TaxClassification,
    pub address: UsAddress,
    pub tin_type: TinType,
    /// The TIN sealed through `Keys` (context: the affiliate and the purpose `tin`).
    pub tin_sealed: String,
    pub tin_last4: String,
    /// The name typed as the signature of the certification, and when.
    pub signed_name: String,
    pub certified_at: Timestamp,
    /// After the affiliate erased their account: the names and address above, sealed through
    /// `Keys` like the TIN (the clear fields then read `[erased]`), for the forms the law
    /// still requires.
    #[serde(default)]
    pub identity_sealed: Option<String>,
}

/// The parts of a W-9 that name and locate the payee.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub legal_name: String,
    pub business_name: Option<String>,
    pub address: UsAddress,
    pub signed_name: String,
}

/// What erased personal fields read.
pub const ERASED: &str = "[erased]";

/// An affiliate's tax status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
// One profile is read at a time: boxing the W-9 would save nothing worth an allocation.
#[allow(clippy::large_enum_variant)]
pub enum TaxProfile {
    /// A US person with a certified W-9: reported on 1099-NEC.
    Us { affiliate_id: AffiliateId, w9: W9 },
    /// Not a US person (W-8BEN): never on a 1099.
    Foreign {
        affiliate_id: AffiliateId,
        /// ISO 3166-1 alpha-2.
        country: String,
        signed_name: String,
        certified_at: Timestamp,
        /// The signed W-8BEN, once uploaded.
        #[serde(default)]
        document: Option<TaxDocument>,
    },
}

/// A signed form the payee uploaded (a W-8BEN), kept in `Blobs` as a tax record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaxDocument {
    /// Its key in `Blobs`.
    pub key: String,
    pub bytes: u64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    #[schema(value_type = String)]
    pub uploaded_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssns_follow_the_rules_at_every_boundary() {
        assert_eq!(
            check_tin(TinType::Ssn, "123-45-6789"),
            Ok("123456789".into())
        );
        assert!(check_tin(TinType::Ssn, "123456789").is_ok());
        assert!(check_tin(TinType::Ssn, "001-01-0001").is_ok());
        assert!(check_tin(TinType::Ssn, "665-01-0001").is_ok());
        assert!(check_tin(TinType::Ssn, "667-01-0001").is_ok());
        assert!(check_tin(TinType::Ssn, "899-99-9999").is_ok());
        for bad in [
            "000-12-3456",
            "666-12-3456",
            "900-12-3456",
            "999-12-3456",
            "123-00-4567",
            "123-45-0000",
            "12-345-6789",
            "1234-5-6789",
            "12345678",
            "1234567890",
            "12a-45-6789",
        ] {
            assert!(check_tin(TinType::Ssn, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn itins_begin_with_9_and_eins_are_nine_digits() {
        assert!(check_tin(TinType::Itin, "912-70-1234").is_ok());
        assert!(check_tin(TinType::Itin, "812-70-1234").is_err());
        assert_eq!(
            check_tin(TinType::Ein, "12-3456789"),
            Ok("123456789".into())
        );
        assert!(check_tin(TinType::Ein, "123456789").is_ok());
        assert!(check_tin(TinType::Ein, "123-456789").is_err());
        assert!(check_tin(TinType::Ein, "12-345678").is_err());
    }
}
