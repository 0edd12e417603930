//! Affiliates' tax profiles: a certified W-9 whose TIN is sealed through `Keys` at once (the
//! affiliate and the purpose `tin` as the encryption context, so that no other account's
//! context, and no role without that purpose, opens it), or a statement of being foreign.

use crate::app::App;
use crate::domain::ids::AffiliateId;
use crate::domain::money::{Bps, Currency, Money};
use crate::domain::payout::{Payout, PayoutStatus};
use crate::domain::tax::{
    ERASED, Identity, TaxClassification, TaxDocument, TaxProfile, TinType, UsAddress, W9, check_tin,
};
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
    #[error("the document could not be stored")]
    Blobs(#[from] crate::ports::BlobError),
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
    crate::domain::accounts::check_text(value, max)
        .ok_or_else(|| invalid(field, format!("must be 1 to {max} characters")))
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
                    identity_sealed: None,
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
            // A W-8BEN uploaded before stays with the renewed statement.
            let document = match app.store.tax_profile(affiliate).await? {
                Some(TaxProfile::Foreign { document, .. }) => document,
                _ => None,
            };
            TaxProfile::Foreign {
                affiliate_id: affiliate,
                country,
                signed_name: text("signed_name", &signed_name, 100)?,
                certified_at: now,
                document,
            }
        }
    };
    app.store.save_tax_profile(affiliate, &profile).await?;
    Ok(profile)
}

/// Backup withholding: 24% of a reportable payment (DOMAIN.md).
pub const BACKUP_WITHHOLDING: u32 = 2_400;

/// The payer printed on every 1099-NEC: the operator of this platform.
#[derive(Clone, Debug)]
pub struct Payer {
    pub name: String,
    /// The payer's EIN, `XX-XXXXXXX`.
    pub tin: String,
    pub address: String,
    pub city: String,
    pub state: String,
    pub zip: String,
    pub phone: String,
}

/// How tax status bears on payouts and forms: configuration, read once per cold start.
#[derive(Clone, Debug)]
pub struct TaxSettings {
    /// `(first tax year, threshold in cents)`, ascending: a year uses the last entry at or
    /// before it (the earliest entry for years before them all).
    pub thresholds: Vec<(i16, i64)>,
    /// What happens to a US payee without a W-9 who reaches the threshold: their payouts wait
    /// (`false`, the default), or 24% is withheld and recorded (`true`).
    pub backup_withholding: bool,
    pub payer: Payer,
}

impl TaxSettings {
    /// From `LEADSREFER_1099_THRESHOLDS` (`2025=600.00,2026=2000.00`, the default: $600 through
    /// 2025, $2,000 from 2026 — DOMAIN.md marks the change unverified, hence configurable),
    /// `LEADSREFER_TAX_BACKUP_WITHHOLDING` (`true`/`false`) and `LEADSREFER_PAYER_*` (the
    /// payer's name, EIN, address, city, state, zip and phone; demo values for the local
    /// runner).
    pub fn from_env() -> Result<Self, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let thresholds = parse_thresholds(
            &var("LEADSREFER_1099_THRESHOLDS").unwrap_or_else(|| "2025=600.00,2026=2000.00".into()),
        )
        .map_err(|problem| format!("LEADSREFER_1099_THRESHOLDS: {problem}"))?;
        let backup_withholding = match var("LEADSREFER_TAX_BACKUP_WITHHOLDING").as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(format!(
                    "LEADSREFER_TAX_BACKUP_WITHHOLDING is {other:?}: give true or false"
                ));
            }
        };
        let text = |name: &str, default: &str| var(name).unwrap_or_else(|| default.into());
        let tin = text("LEADSREFER_PAYER_TIN", "12-3456789");
        check_tin(TinType::Ein, &tin)
            .map_err(|problem| format!("LEADSREFER_PAYER_TIN {problem} (an EIN, XX-XXXXXXX)"))?;
        Ok(Self {
            thresholds,
            backup_withholding,
            payer: Payer {
                name: text("LEADSREFER_PAYER_NAME", "LeadsRefer Demo LLC"),
                tin,
                address: text("LEADSREFER_PAYER_ADDRESS", "1 Demo Way"),
                city: text("LEADSREFER_PAYER_CITY", "Wilmington"),
                state: text("LEADSREFER_PAYER_STATE", "DE"),
                zip: text("LEADSREFER_PAYER_ZIP", "19801"),
                phone: text("LEADSREFER_PAYER_PHONE", "555-0100"),
            },
        })
    }

    /// The 1099-NEC reporting threshold for payments made in `year`, in cents.
    pub fn threshold(&self, year: i16) -> i64 {
        self.thresholds
            .iter()
            .rev()
            .find(|(from, _)| *from <= year)
            .or(self.thresholds.first())
            .map_or(60_000, |(_, cents)| *cents)
    }
}

/// `2025=600.00,2026=2000.00` → `[(2025, 60000), (2026, 200000)]`, ascending.
fn parse_thresholds(text: &str) -> Result<Vec<(i16, i64)>, String> {
    let usd = Currency::parse("USD").expect("USD exists");
    let mut thresholds = Vec::new();
    for part in text.split(',').map(str::trim) {
        let (year, amount) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?} is not YEAR=AMOUNT"))?;
        let year: i16 = year
            .trim()
            .parse()
            .map_err(|_| format!("{year:?} is not a year"))?;
        let amount =
            Money::parse_decimal(amount.trim(), usd).map_err(|e| format!("{amount:?}: {e}"))?;
        thresholds.push((year, amount.minor));
    }
    thresholds.sort();
    thresholds.dedup_by_key(|(year, _)| *year);
    if thresholds.is_empty() {
        return Err("give at least one YEAR=AMOUNT".into());
    }
    Ok(thresholds)
}

/// What a payout must do about its payee's tax status.
#[derive(Debug, PartialEq, Eq)]
pub enum TaxCheck {
    Clear,
    /// It waits: the payee must certify a W-9 first.
    Hold {
        year: i16,
        paid: i64,
        threshold: i64,
    },
    /// Backup withholding of this many cents is kept from it.
    Withhold {
        year: i16,
        withheld: i64,
    },
}

/// Whether a payment of `gross` US dollars to `affiliate` at `at` may go out as it is. A payee
/// with a certified W-9, or who certified being foreign, is clear; anyone else is clear until
/// their payments in the calendar year (sent or on their way, gross of withholding) would reach
/// the year's 1099 threshold, and is then held or backup-withheld as configured.
pub async fn payout_check(
    app: &App,
    affiliate: AffiliateId,
    gross: Money,
    at: jiff::Timestamp,
) -> Result<TaxCheck, TableError> {
    if gross.currency.code() != "USD" || app.store.tax_profile(affiliate).await?.is_some() {
        return Ok(TaxCheck::Clear);
    }
    let year = tax_year(at);
    let paid = paid_in_year(app, affiliate, year).await?;
    let threshold = app.payouts.tax.threshold(year);
    if paid + gross.minor < threshold {
        return Ok(TaxCheck::Clear);
    }
    if app.payouts.tax.backup_withholding {
        let withheld = Bps::new(BACKUP_WITHHOLDING)
            .expect("24% is a valid rate")
            .of(gross)
            .minor;
        return Ok(TaxCheck::Withhold { year, withheld });
    }
    Ok(TaxCheck::Hold {
        year,
        paid,
        threshold,
    })
}

/// The calendar year (UTC) a payment made at `at` belongs to.
pub fn tax_year(at: jiff::Timestamp) -> i16 {
    at.to_zoned_datetime(jiff::tz::TimeZone::UTC).year()
}

/// What `affiliate` was paid in US dollars in `year`: every payout made that year that did
/// not fail, gross of backup withholding, in cents.
pub async fn paid_in_year(app: &App, affiliate: AffiliateId, year: i16) -> Result<i64, TableError> {
    Ok(app
        .store
        .payouts_of_affiliate(affiliate)
        .await?
        .iter()
        .filter(|payout| counts_in_year(payout, year))
        .map(|payout| payout.amount.minor + payout.withheld)
        .sum())
}

/// A payout that is part of `year`'s reportable payments: US dollars, made that year, and not
/// failed or returned.
pub fn counts_in_year(payout: &Payout, year: i16) -> bool {
    payout.amount.currency.code() == "USD"
        && payout.status != PayoutStatus::Failed
        && tax_year(payout.created_at) == year
}

/// The payee's names and address: as the W-9 has them, or opened from their sealed copy once
/// the account was erased.
pub async fn identity(app: &App, affiliate: AffiliateId, w9: &W9) -> Result<Identity, KeyError> {
    match &w9.identity_sealed {
        None => Ok(Identity {
            legal_name: w9.legal_name.clone(),
            business_name: w9.business_name.clone(),
            address: w9.address.clone(),
            signed_name: w9.signed_name.clone(),
        }),
        Some(sealed) => {
            let opened = keys::open(app.keys.as_ref(), sealed, &tin_context(affiliate)).await?;
            serde_json::from_slice(opened.expose()).map_err(|_| KeyError::Malformed)
        }
    }
}

/// The W-9 with its names and address sealed and erased in the clear.
pub async fn pseudonymise(app: &App, affiliate: AffiliateId, w9: &W9) -> Result<W9, KeyError> {
    if w9.identity_sealed.is_some() {
        return Ok(w9.clone());
    }
    let identity = identity(app, affiliate, w9).await?;
    let json = serde_json::to_vec(&identity).expect("an identity serialises");
    let sealed = keys::seal(app.keys.as_ref(), &json, &tin_context(affiliate)).await?;
    let erased = || ERASED.to_string();
    Ok(W9 {
        legal_name: erased(),
        business_name: None,
        address: UsAddress {
            line1: erased(),
            line2: None,
            city: erased(),
            state: erased(),
            zip: erased(),
        },
        signed_name: erased(),
        identity_sealed: Some(sealed),
        ..w9.clone()
    })
}

/// The largest W-8BEN file taken (a scanned, signed form is a few hundred kilobytes).
// API Gateway hands a PDF to Lambda base64-encoded, a third larger, and Lambda takes at
// most 6 MB in a request: 4 MiB is what reaches the handler on AWS as it does locally.
pub const MAX_DOCUMENT_BYTES: usize = 4 * 1024 * 1024;

/// Stores a foreign payee's signed W-8BEN (a PDF) with their profile, replacing an earlier one.
pub async fn upload_w8ben(
    app: &App,
    affiliate: AffiliateId,
    pdf: Vec<u8>,
) -> Result<TaxDocument, TaxError> {
    let Some(TaxProfile::Foreign {
        affiliate_id,
        country,
        signed_name,
        certified_at,
        document: previous,
    }) = app.store.tax_profile(affiliate).await?
    else {
        return Err(invalid(
            "status",
            "state that you are foreign first (PUT /api/tax/profile with status foreign)",
        ));
    };
    if pdf.len() > MAX_DOCUMENT_BYTES {
        return Err(invalid("body", "must be at most 4 MiB"));
    }
    if !pdf.starts_with(b"%PDF-") {
        return Err(invalid("body", "must be the signed W-8BEN as a PDF file"));
    }
    let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&pdf));
    let key = crate::ports::BlobKey::parse(format!("tax/w8ben/{affiliate}/{}.pdf", &sha256[..16]))?;
    let document = TaxDocument {
        key: key.as_str().to_string(),
        bytes: pdf.len() as u64,
        sha256,
        uploaded_at: app.clock.now(),
    };
    app.blobs.put(&key, pdf, "application/pdf").await?;
    app.store
        .save_tax_profile(
            affiliate,
            &TaxProfile::Foreign {
                affiliate_id,
                country,
                signed_name,
                certified_at,
                document: Some(document.clone()),
            },
        )
        .await?;
    // The replaced file goes once the new one is on record.
    if let Some(previous) = previous.filter(|p| p.key != document.key)
        && let Ok(old) = crate::ports::BlobKey::parse(previous.key)
    {
        app.blobs.delete(&old).await?;
    }
    Ok(document)
}
