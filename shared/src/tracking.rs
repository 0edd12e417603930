//! The tracking service: a click becomes a recorded click and a redirect; a postback becomes
//! one conversion with its commission posted to the ledger.

use std::net::IpAddr;

use hmac::{Hmac, KeyInit, Mac};
use jiff::{SignedDuration, Timestamp};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::app::App;
use crate::dispatch;
use crate::domain::caps;
use crate::domain::ids::{ClickId, ConversionId, LinkCode, OfferId};
use crate::domain::ledger::{LedgerError, Transaction};
use crate::domain::money::{Currency, Money, MoneyError};
use crate::domain::offer::{CommissionError, Macros, Offer, OfferStatus};
use crate::domain::tracking::{
    Click, Conversion, ConversionStatus, EventName, Subs, tracking_expiry,
};
use crate::ports::TableError;
use crate::ports::Write;
use crate::store::Recorded;

/// How far a signed postback's timestamp may be from now (Stripe's tolerance).
pub const SIGNATURE_TOLERANCE: SignedDuration = SignedDuration::from_mins(5);

#[derive(Debug, thiserror::Error)]
pub enum TrackingError {
    #[error("no such tracking link")]
    UnknownLink,
    #[error("the offer is paused")]
    OfferPaused,
    #[error("no such click")]
    UnknownClick,
    #[error("the token does not match this click's offer")]
    WrongToken,
    #[error("the signature does not match this click's offer")]
    WrongSignature,
    #[error("the signature's timestamp is more than 5 minutes from now")]
    StaleSignature,
    #[error("the click is older than the offer's attribution window")]
    OutsideWindow,
    #[error("amount {0}")]
    Amount(MoneyError),
    #[error("amount {0}")]
    Commission(CommissionError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("storage failed")]
    Storage(#[from] TableError),
}

/// A recorded click and where to send its visitor.
pub struct ClickOutcome {
    pub click: Click,
    pub location: String,
    /// How long the attribution cookie lives: the offer's attribution window.
    pub cookie_max_age: SignedDuration,
}

/// Records a click on a tracking link and fills the offer's destination for the redirect.
pub async fn record_click(
    app: &App,
    code: &LinkCode,
    subs: [Option<String>; 5],
    ip: IpAddr,
    country: Option<String>,
) -> Result<ClickOutcome, TrackingError> {
    let link = app
        .store
        .link(code)
        .await?
        .ok_or(TrackingError::UnknownLink)?;
    let offer = app
        .store
        .offer(link.offer_id)
        .await?
        .ok_or(TrackingError::UnknownLink)?;
    let subs = Subs::new(subs).or(&link.subs);
    if offer.status != OfferStatus::Active {
        return Err(TrackingError::OfferPaused);
    }
    let now = app.clock.now();
    let click = Click {
        id: ClickId(app.clock.new_id()),
        link: link.code.clone(),
        offer_id: offer.id,
        affiliate_id: link.affiliate_id,
        advertiser_id: offer.advertiser_id,
        at: now,
        subs,
        visitor: app.pseudonymizer.visitor(ip, country),
        expires_at: tracking_expiry(now),
    };
    app.store.create_click(&click).await?;
    let location = offer.destination.fill(&Macros {
        click_id: click.id,
        affiliate_id: click.affiliate_id,
        offer_id: click.offer_id,
        subs: &click.subs,
    });
    Ok(ClickOutcome {
        click,
        location,
        cookie_max_age: offer.attribution_window,
    })
}

/// How the advertiser proves a postback is theirs.
pub enum PostbackAuth {
    /// The offer's postback secret, as the `token` parameter.
    Token(String),
    /// `LeadsRefer-Signature: t=<unix>,v1=<hex>`: hex(HMAC-SHA256(secret, "<t>.<payload>")),
    /// where the payload is the raw query string of a GET or the raw body of a POST.
    Signature { header: String, payload: Vec<u8> },
    /// The pixel on the advertiser's page, which names its offer and carries the click's
    /// cookie: the click must be of that offer.
    Pixel(OfferId),
}

pub struct Postback {
    pub click_id: ClickId,
    pub txn_id: Option<String>,
    pub event: EventName,
    /// The sale amount as sent, parsed once the offer's currency is known.
    pub amount: Option<String>,
    pub currency: Option<Currency>,
    pub auth: PostbackAuth,
}

/// Records the conversion a postback reports, once; a repeat answers the original.
pub async fn record_conversion(
    app: &App,
    postback: Postback,
) -> Result<Recorded<Conversion>, TrackingError> {
    let click = app
        .store
        .click(postback.click_id)
        .await?
        .ok_or(TrackingError::UnknownClick)?;
    let offer = app
        .store
        .offer(click.offer_id)
        .await?
        .ok_or(TrackingError::UnknownClick)?;
    let now = app.clock.now();
    authenticate(&offer, &postback.auth, now)?;
    if !offer.attributes(click.at, now) {
        return Err(TrackingError::OutsideWindow);
    }
    let sale = postback
        .amount
        .as_deref()
        .map(|amount| Money::parse_decimal(amount, postback.currency.unwrap_or(offer.currency)))
        .transpose()
        .map_err(TrackingError::Amount)?;
    let (revenue, payout) = offer
        .commission(sale, click.affiliate_id, &postback.event)
        .map_err(TrackingError::Commission)?;
    let mut conversion = Conversion {
        id: ConversionId(app.clock.new_id()),
        click_id: click.id,
        link: click.link.clone(),
        offer_id: offer.id,
        affiliate_id: click.affiliate_id,
        advertiser_id: offer.advertiser_id,
        event: postback.event,
        txn_id: postback.txn_id,
        sale,
        revenue,
        payout,
        status: ConversionStatus::Pending,
        reason: None,
        at: now,
        expires_at: tracking_expiry(now),
    };
    let postback_url = app
        .store
        .application(offer.id, conversion.affiliate_id)
        .await?
        .and_then(|a| a.postback_url);
    // The affiliate's postback, queued in the same transaction as the conversion it reports.
    let postback = |conversion: &Conversion| -> Result<Vec<Write>, TableError> {
        match &postback_url {
            Some(template) => Ok(vec![dispatch::enqueue(&dispatch::delivery(
                app, template, conversion, &click,
            ))?]),
            None => Ok(vec![]),
        }
    };
    let ledger = Transaction::conversion_recorded(&conversion)?;
    let counters = caps::counters(&offer, &conversion)?;
    let first = app
        .store
        .record_conversion(&conversion, Some(&ledger), counters, postback(&conversion)?)
        .await?;
    if let Some(recorded) = first {
        return Ok(recorded);
    }
    // A cap is reached: the conversion is kept, rejected, with no commission.
    conversion.status = ConversionStatus::Rejected;
    conversion.reason = Some("cap".into());
    let recorded = app
        .store
        .record_conversion(&conversion, None, vec![], postback(&conversion)?)
        .await?;
    Ok(recorded.expect(
        "without caps nothing refuses a conversion but its dedupe key, which answers the original",
    ))
}

fn authenticate(offer: &Offer, auth: &PostbackAuth, now: Timestamp) -> Result<(), TrackingError> {
    let secret = offer.postback_secret.expose().as_bytes();
    match auth {
        PostbackAuth::Token(token) => {
            // Constant time in the token's content (its length is no secret).
            if bool::from(token.as_bytes().ct_eq(secret)) {
                Ok(())
            } else {
                Err(TrackingError::WrongToken)
            }
        }
        PostbackAuth::Signature { header, payload } => {
            let (timestamp, signatures) =
                parse_signature_header(header).ok_or(TrackingError::WrongSignature)?;
            let signed_at =
                Timestamp::from_second(timestamp).map_err(|_| TrackingError::WrongSignature)?;
            if now.duration_since(signed_at).abs() > SIGNATURE_TOLERANCE {
                return Err(TrackingError::StaleSignature);
            }
            let expected = sign(secret, timestamp, payload);
            let matches = signatures.iter().fold(false, |found, candidate| {
                found | bool::from(candidate.as_slice().ct_eq(expected.as_slice()))
            });
            if matches {
                Ok(())
            } else {
                Err(TrackingError::WrongSignature)
            }
        }
        PostbackAuth::Pixel(offer_id) if *offer_id == offer.id => Ok(()),
        PostbackAuth::Pixel(_) => Err(TrackingError::UnknownClick),
    }
}

/// HMAC-SHA256 over `"<timestamp>.<payload>"`.
pub fn sign(secret: &[u8], timestamp: i64, payload: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac.finalize().into_bytes().to_vec()
}

/// `t=<unix>,v1=<hex>[,v1=<hex>…]` (other schemes are ignored, as Stripe's are).
fn parse_signature_header(header: &str) -> Option<(i64, Vec<Vec<u8>>)> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=')? {
            ("t", t) => timestamp = Some(t.parse().ok()?),
            ("v1", hex_sig) => signatures.push(hex::decode(hex_sig).ok()?),
            _ => {}
        }
    }
    Some((timestamp?, signatures)).filter(|(_, s)| !s.is_empty())
}
