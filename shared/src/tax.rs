//! Affiliates' tax profiles: a certified W-9 whose TIN is sealed through `Keys` at once (the
//! affiliate and the purpose `tin` as the encryption context, so that no other account's
//! context, and no role without that purpose, opens it), or a statement of being foreign.

use crate::app::App;
use crate::domain::ids::AffiliateId;
use crate::domain::tax::{TaxClassification, TaxProfile, TinType, UsAddress, W9, check_tin};
use crate::ports::keys::{self, EncryptionContext};
use crate::ports::{KeyError, TableError};
use crate::secret::Secret;

#[derive(Debug, thiserror::Error)]
pub enum TaxError {
    #[error("{field}: {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
    #[error("the TIN could not be sealed")]
    Keys(#[from] KeyError),
    #[error("storage failed")]
    Storage(#[from] TableError),
}

fn invalid(field: &'static str, problem: impl Into<String>) -> TaxError {
    TaxError::Invalid {
        field,
        problem: problem.into(),
    }
}

/// The encryption context of an affiliate's TIN.
pub fn tin_context(affiliate: AffiliateId) -> EncryptionContext {
    EncryptionContext::new(&[("purpose", "tin"), ("affiliate", &affiliate.to_string())])
}

/// A tax profile as the affiliate gives it.
pub enum ProfileInput {
    W9 {
        legal_name: String,
        business_name: Option<String>,
        classification: TaxClassification,
        address: UsAddress,
        tin_type: TinType,
        tin: Secret<String>,
        signed_name: String,
        /// "Under penalties of perjury, I certify…": must be true.
        certify: bool,
    },
    Foreign {
        country: String,
        signed_name: String,
        certify: bool,
    },
}

/// Text of 1 to `max` characters with no control characters, trimmed.
fn text(field: &'static str, value: &str, max: usize) -> Result<String, TaxError> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(invalid(field, format!("must be 1 to {max} characters")));
    }
    Ok(value.to_string())
}

/// Records the affiliate's tax profile, replacing any earlier one.
pub async fn set_profile(
    app: &App,
    affiliate: AffiliateId,
    input: ProfileInput,
) -> Result<TaxProfile, TaxError> {
    let now = app.clock.now();
    let profile = match input {
        ProfileInput::W9 {
            legal_name,
            business_name,
            classification,
            address,
            tin_type,
            tin,
            signed_name,
            certify,
        } => {
            let digits =
                check_tin(tin_type, tin.expose()).map_err(|problem| invalid("tin", problem))?;
            if !certify {
                return Err(invalid(
                    "certify",
                    "the certification must be accepted (true)",
                ));
            }
            let state = address.state.trim().to_ascii_uppercase();
            if state.len() != 2 || !state.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(invalid(
                    "address.state",
                    "must be the two-letter state code",
                ));
            }
            let zip = address.zip.trim().to_string();
            let zip_ok = match zip.len() {
                5 => zip.bytes().all(|b| b.is_ascii_digit()),
                10 => {
                    zip.as_bytes()[5] == b'-'
                        && zip
                            .bytes()
                            .enumerate()
                            .all(|(i, b)| i == 5 || b.is_ascii_digit())
                }
                _ => false,
            };
            if !zip_ok {
                return Err(invalid("address.zip", "must be 12345 or 12345-6789"));
            }
            let address = UsAddress {
                line1: text("address.line1", &address.line1, 100)?,
                line2: address
                    .line2
                    .filter(|line| !line.trim().is_empty())
                    .map(|line| text("address.line2", &line, 100))
                    .transpose()?,
                city: text("address.city", &address.city, 60)?,
                state,
                zip,
            };
            TaxProfile::Us {
                affiliate_id: affiliate,
                w9: W9 {
                    legal_name: text("legal_name", &legal_name, 100)?,
                    business_name: business_name
                        .filter(|name| !name.trim().is_empty())
                        .map(|name| text("business_name", &name, 100))
                        .transpose()?,
                    classification,
                    address,
                    tin_type,
                    tin_sealed: keys::seal(
                        app.keys.as_ref(),
                        digits.as_bytes(),
                        &tin_context(affiliate),
                    )
                    .await?,
                    tin_last4: digits[5..].to_string(),
                    signed_name: text("signed_name", &signed_name, 100)?,
                    certified_at: now,
                },
            }
        }
        ProfileInput::Foreign {
            country,
            signed_name,
            certify,
        } => {
            let country = country.trim().to_ascii_uppercase();
            if country.len() != 2
                || !country.bytes().all(|b| b.is_ascii_uppercase())
                || country == "US"
            {
                return Err(invalid(
                    "country",
                    "must be the two-letter code of a country other than the US",
                ));
            }
            if !certify {
                return Err(invalid(
                    "certify",
                    "the certification must be accepted (true)",
                ));
            }
            TaxProfile::Foreign {
                affiliate_id: affiliate,
                country,
                signed_name: text("signed_name", &signed_name, 100)?,
                certified_at: now,
            }
        }
    };
    app.store.save_tax_profile(affiliate, &profile).await?;
    Ok(profile)
}
