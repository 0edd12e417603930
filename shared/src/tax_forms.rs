//! The `tax-forms` job: Form 1099-NEC for every US payee of a calendar year.
//!
//! For each affiliate paid in US dollars in the year (payouts made that year and not failed,
//! gross of backup withholding: box 1; the withholding: box 4), a payee whose box 1 reaches the
//! year's threshold, or who had anything withheld, gets a form; foreign payees never do, nor do
//! payees whose W-9 classifies them as a corporation (C or S, or an LLC taxed as one). The
//! job writes, to `Blobs`:
//! - `tax/{year}/1099-nec.csv`: one row per form with payer, recipient, full TIN and boxes, the
//!   file a filing provider imports (it holds TINs: the bucket is private and SSE-KMS);
//! - `tax/{year}/statements/{affiliate}.html`: the recipient's statement (Copy B), TIN
//!   truncated to its last four as recipient copies may be;
//!
//! and mails each recipient once that their form is ready. It runs hourly: it files the year
//! just ended once in January, and any past year an admin requests (`POST /api/admin/tax-forms`),
//! which also regenerates a corrected year. Only this job's role may open TINs.

use std::fmt::Write as _;

use crate::app::App;
use crate::csv::{defuse, push_record};
use crate::domain::ids::AffiliateId;
use crate::domain::money::{Currency, Money};
use crate::domain::tax::{TaxProfile, TinType};
use crate::jobs::JobError;
use crate::ports::keys;
use crate::ports::{BlobError, BlobKey, Email, KeyError, TableError};
use crate::store::TaxFormsYear;
use crate::tax::{counts_in_year, identity, tin_context};

#[derive(Debug, thiserror::Error)]
pub enum TaxFormsError {
    #[error("storage failed")]
    Storage(#[from] TableError),
    #[error("a TIN or W-9 could not be opened")]
    Keys(#[from] KeyError),
    #[error("a form could not be written")]
    Blobs(#[from] BlobError),
}

/// One Form 1099-NEC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Form {
    pub affiliate: AffiliateId,
    /// Box 1, nonemployee compensation, in cents.
    pub box1: i64,
    /// Box 4, federal income tax withheld, in cents.
    pub box4: i64,
}

/// What a year's filing produced.
#[derive(Debug, Default)]
pub struct Filing {
    pub forms: Vec<Form>,
    /// One line per payee left out, or filed without a TIN, and why.
    pub notes: Vec<String>,
    /// Recipients not yet told their form is ready (the mail failed, or another run is
    /// sending it): the year is filed again by the next run, which tells only them.
    pub untold: usize,
}

fn usd(cents: i64) -> String {
    Money::new(cents, Currency::parse("USD").expect("USD exists")).to_decimal()
}

/// The CSV's columns, in order.
pub const COLUMNS: [&str; 22] = [
    "tax_year",
    "form",
    "payer_name",
    "payer_tin",
    "payer_address",
    "payer_city",
    "payer_state",
    "payer_zip",
    "payer_phone",
    "recipient_account_number",
    "recipient_tin_type",
    "recipient_tin",
    "recipient_name",
    "recipient_business_name",
    "recipient_address",
    "recipient_address_2",
    "recipient_city",
    "recipient_state",
    "recipient_zip",
    "box1_nonemployee_compensation",
    "box4_federal_income_tax_withheld",
    "recipient_email",
];

/// Writes `year`'s forms, statements and CSV, and tells each recipient once.
pub async fn file_year(app: &App, year: i16) -> Result<Filing, TaxFormsError> {
    // Before the year is over its forms are drafts: written for a look, nobody told.
    let draft = crate::tax::tax_year(app.clock.now()) <= year;
    let threshold = app.payouts.tax.threshold(year);
    let payer = &app.payouts.tax.payer;
    let mut filing = Filing::default();
    let mut csv = String::new();
    push_record(&mut csv, COLUMNS.iter().map(|c| c.to_string()));
    for account in app.store.all_accounts().await? {
        let Some(affiliate) = account.affiliate_id() else {
            continue;
        };
        {
            let (mut box1, mut box4) = (0, 0);
            for payout in app.store.payouts_of_affiliate(affiliate).await? {
                if counts_in_year(&payout, year) {
                    box1 += payout.amount.minor + payout.withheld;
                    box4 += payout.withheld;
                }
            }
            if box1 < threshold && box4 == 0 {
                continue;
            }
            let profile = app.store.tax_profile(affiliate).await?;
            let (tin_type, tin, last4, identity) = match &profile {
                Some(TaxProfile::Foreign { .. }) => {
                    filing.notes.push(format!(
                        "affiliate {affiliate}: paid {} but foreign (W-8BEN): no 1099",
                        usd(box1)
                    ));
                    continue;
                }
                Some(TaxProfile::Us { w9, .. }) if w9.classification.exempt_from_1099_nec() => {
                    filing.notes.push(format!(
                        "affiliate {affiliate}: paid {} but a corporation on its W-9 ({:?}): exempt, no 1099",
                        usd(box1),
                        w9.classification
                    ));
                    continue;
                }
                Some(TaxProfile::Us { w9, .. }) => {
                    let digits =
                        keys::open(app.keys.as_ref(), &w9.tin_sealed, &tin_context(affiliate))
                            .await?;
                    let digits = String::from_utf8_lossy(digits.expose()).into_owned();
                    let (kind, printed) = match w9.tin_type {
                        TinType::Ein => ("EIN", format!("{}-{}", &digits[..2], &digits[2..])),
                        // The IRS's TIN-type indicator puts ITINs with SSNs.
                        TinType::Ssn | TinType::Itin => (
                            "SSN",
                            format!("{}-{}-{}", &digits[..3], &digits[3..5], &digits[5..]),
                        ),
                    };
                    (
                        kind,
                        printed,
                        w9.tin_last4.clone(),
                        Some(identity(app, affiliate, w9).await?),
                    )
                }
                None => {
                    filing.notes.push(format!(
                        "affiliate {affiliate}: paid {} with no W-9: filed without a TIN (backup withholding {})",
                        usd(box1),
                        usd(box4)
                    ));
                    ("", String::new(), String::new(), None)
                }
            };
            let (name, business, line1, line2, city, state, zip) = match &identity {
                Some(id) => (
                    id.legal_name.clone(),
                    id.business_name.clone().unwrap_or_default(),
                    id.address.line1.clone(),
                    id.address.line2.clone().unwrap_or_default(),
                    id.address.city.clone(),
                    id.address.state.clone(),
                    id.address.zip.clone(),
                ),
                None => (
                    account.name.clone(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                ),
            };
            push_record(
                &mut csv,
                [
                    year.to_string(),
                    "1099-NEC".into(),
                    defuse(&payer.name),
                    payer.tin.clone(),
                    defuse(&payer.address),
                    defuse(&payer.city),
                    payer.state.clone(),
                    payer.zip.clone(),
                    payer.phone.clone(),
                    affiliate.to_string(),
                    tin_type.into(),
                    tin,
                    defuse(&name),
                    defuse(&business),
                    defuse(&line1),
                    defuse(&line2),
                    defuse(&city),
                    state.clone(),
                    zip.clone(),
                    usd(box1),
                    usd(box4),
                    defuse(account.email.as_str()),
                ]
                .into_iter(),
            );
            let masked = match tin_type {
                "EIN" => format!("**-***{last4}"),
                "SSN" => format!("***-**-{last4}"),
                _ => "(none on file)".into(),
            };
            let mut statement = String::new();
            let _ = write!(
                statement,
                "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Form 1099-NEC {year}</title>\
<style>body{{font-family:sans-serif;max-width:40em;margin:2em auto}}td,th{{border:1px solid #999;padding:.4em;text-align:left;vertical-align:top}}table{{border-collapse:collapse;width:100%}}</style></head><body>\n\
<h1>{}Form 1099-NEC: Nonemployee Compensation, {year}</h1>\n<p>Copy B, for recipient. This is important tax information and is being furnished to the IRS.</p>\n<table>\n\
<tr><th>Payer</th><td>{}<br>{}<br>{}, {} {}<br>{}</td></tr>\n<tr><th>Payer's TIN</th><td>{}</td></tr>\n\
<tr><th>Recipient</th><td>{}{}<br>{}{}<br>{}, {} {}</td></tr>\n<tr><th>Recipient's TIN</th><td>{}</td></tr>\n\
<tr><th>Account number</th><td>{affiliate}</td></tr>\n\
<tr><th>1 Nonemployee compensation</th><td>${}</td></tr>\n<tr><th>4 Federal income tax withheld</th><td>${}</td></tr>\n</table>\n\
<p>Box 1 is the total of payments made to you in {year} by PayPal or bank transfer, before any backup withholding. Keep this statement for your records.</p>\n</body></html>\n",
                if draft {
                    "DRAFT (the year is not over) — "
                } else {
                    ""
                },
                crate::http::escape_markup(&payer.name),
                crate::http::escape_markup(&payer.address),
                crate::http::escape_markup(&payer.city),
                crate::http::escape_markup(&payer.state),
                crate::http::escape_markup(&payer.zip),
                crate::http::escape_markup(&payer.phone),
                crate::http::escape_markup(&payer.tin),
                crate::http::escape_markup(&name),
                if business.is_empty() {
                    String::new()
                } else {
                    format!("<br>{}", crate::http::escape_markup(&business))
                },
                crate::http::escape_markup(&line1),
                if line2.is_empty() {
                    String::new()
                } else {
                    format!(", {}", crate::http::escape_markup(&line2))
                },
                crate::http::escape_markup(&city),
                crate::http::escape_markup(&state),
                crate::http::escape_markup(&zip),
                masked,
                usd(box1),
                usd(box4),
            );
            app.blobs
                .put(
                    &statement_key(year, affiliate)?,
                    statement.into_bytes(),
                    "text/html; charset=utf-8",
                )
                .await?;
            let mail = Email {
                to: account.email.clone(),
                subject: format!("Your {year} Form 1099-NEC from LeadsRefer is ready"),
                text: format!(
                    "Your {year} Form 1099-NEC is ready: ${} in box 1, ${} withheld in box 4.\n\nSign in to read it: {}/api/tax/forms/{year}\n",
                    usd(box1),
                    usd(box4),
                    app.public_url
                ),
            };
            let told = if draft {
                Ok(crate::notices::Sent::Before)
            } else {
                crate::notices::send_once(app, &format!("1099#{year}#{affiliate}"), &mail).await?
            };
            match told {
                Ok(crate::notices::Sent::Now | crate::notices::Sent::Before) => {}
                Ok(crate::notices::Sent::Elsewhere) => filing.untold += 1,
                Err(error) => {
                    filing.untold += 1;
                    filing.notes.push(format!(
                        "affiliate {affiliate}: the form is ready but the mail failed ({error}); the next run tries again"
                    ));
                }
            }
            filing.forms.push(Form {
                affiliate,
                box1,
                box4,
            });
        }
    }
    app.blobs
        .put(&csv_key(year)?, csv.into_bytes(), "text/csv; charset=utf-8")
        .await?;
    Ok(filing)
}

pub fn csv_key(year: i16) -> Result<BlobKey, BlobError> {
    BlobKey::parse(format!("tax/{year}/1099-nec.csv"))
}

pub fn statement_key(year: i16, affiliate: AffiliateId) -> Result<BlobKey, BlobError> {
    BlobKey::parse(format!("tax/{year}/statements/{affiliate}.html"))
}

/// The `tax-forms` job: the year just ended (in January, once), and every year an admin asked
/// for since the last run.
pub async fn job(app: App) -> Result<String, JobError> {
    let failed = |e: TaxFormsError| JobError(e.into());
    let now = app.clock.now();
    let today = now.to_zoned_datetime(jiff::tz::TimeZone::UTC);
    let mut years: Vec<i16> = app
        .store
        .tax_forms_years()
        .await
        .map_err(|e| failed(e.into()))?
        .into_iter()
        .filter(|year| year.requested_at.is_some())
        .map(|year| year.year)
        .collect();
    let last_year = today.year() - 1;
    // Filed in January unless filed since the year ended (a draft from before does not count).
    if today.month() == 1
        && app
            .store
            .tax_forms_year(last_year)
            .await
            .map_err(|e| failed(e.into()))?
            .is_none_or(|record| {
                record
                    .filed_at
                    .is_none_or(|at| crate::tax::tax_year(at) <= last_year)
            })
        && !years.contains(&last_year)
    {
        years.push(last_year);
    }
    if years.is_empty() {
        return Ok("no tax year to file".into());
    }
    let mut lines = Vec::new();
    for year in years {
        let filing = file_year(&app, year).await.map_err(failed)?;
        let box1: i64 = filing.forms.iter().map(|f| f.box1).sum();
        let box4: i64 = filing.forms.iter().map(|f| f.box4).sum();
        let line = format!(
            "{year}: {}{}, box 1 ${}, box 4 ${} in tax/{year}/1099-nec.csv{}",
            crate::jobs::counted(filing.forms.len(), "form", "forms"),
            if crate::tax::tax_year(now) <= year {
                " (drafts: the year is not over)"
            } else {
                ""
            },
            usd(box1),
            usd(box4),
            if filing.notes.is_empty() {
                String::new()
            } else {
                format!("; {}", filing.notes.join("; "))
            }
        );
        // An admin's request made while this run filed is kept for the next run.
        let asked_since = app
            .store
            .tax_forms_year(year)
            .await
            .map_err(|e| failed(e.into()))?
            .and_then(|record| record.requested_at)
            .filter(|at| *at > now);
        app.store
            .save_tax_forms_year(&TaxFormsYear {
                year,
                // Still asked for while a recipient waits for their mail.
                requested_at: asked_since.or((filing.untold > 0).then_some(now)),
                filed_at: Some(app.clock.now()),
                report: line.clone(),
            })
            .await
            .map_err(|e| failed(e.into()))?;
        lines.push(line);
    }
    Ok(lines.join("\n"))
}

/// The statement of `affiliate` for `year`, if the job wrote one.
pub async fn statement(
    app: &App,
    affiliate: AffiliateId,
    year: i16,
) -> Result<Option<Vec<u8>>, BlobError> {
    app.blobs.get(&statement_key(year, affiliate)?).await
}
