//! The tracking service: a click becomes a recorded click and a redirect; a postback becomes
//! one conversion with its commission posted to the ledger.

use std::net::IpAddr;

use hmac::{Hmac, KeyInit, Mac};
use jiff::{SignedDuration, Timestamp};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::app::App;
use crate::dispatch;
use crate::domain::agent;
use crate::domain::caps;
use crate::domain::ids::{AffiliateId, ClickId, ConversionId, LinkCode, OfferId};
use crate::domain::ledger::{LedgerError, Transaction};
use crate::domain::money::{Currency, Money, MoneyError};
use crate::domain::offer::{ApprovalMode, CommissionError, Macros, Offer, OfferStatus};
use crate::domain::tracking::{
    Click, Conversion, ConversionStatus, EventName, Subs, Visitor, tracking_expiry,
};
use crate::ports::TableError;
use crate::ports::Write;
use crate::store::{Flagged, Recorded, stats};

/// Clicks one visitor may make in a minute (on any link) before the rest are a flood: kept,
/// flagged `click_flood`, and not counted.
pub const FLOOD_CLICKS_PER_MINUTE: i64 = 10;

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
    #[error("no affiliate has a link for this offer")]
    NoLink,
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

/// Where a click's visitor goes.
#[derive(Debug, PartialEq, Eq)]
pub enum ClickTarget {
    /// A 302 to this URL (the destination, or the fallback of an excluded click).
    Redirect(String),
    /// Excluded, and the offer has no fallback: a neutral page.
    Unavailable,
}

/// A recorded click and where its visitor goes.
pub struct ClickOutcome {
    pub click: Click,
    pub target: ClickTarget,
    /// How long the attribution cookie lives: the offer's attribution window.
    pub cookie_max_age: SignedDuration,
}

/// What the edge knows of a click's visitor, pseudonymised before anything is stored.
pub struct ClickRequest<'a> {
    pub subs: [Option<String>; 5],
    pub ip: IpAddr,
    /// From CloudFront's viewer headers; the country otherwise from the IP database.
    pub country: Option<String>,
    pub region: Option<String>,
    pub user_agent: Option<&'a str>,
    /// A HEAD request: something checking the link, not a person following it.
    pub head: bool,
}

/// Records a click on a tracking link and decides where its visitor goes. Robots and HEAD
/// requests are recorded with their reason and sent on, but do not count as clicks; a visitor
/// the offer excludes goes to the offer's fallback URL or a neutral page.
pub async fn record_click(
    app: &App,
    code: &LinkCode,
    request: ClickRequest<'_>,
) -> Result<ClickOutcome, TrackingError> {
    let route = app
        .store
        .link_with_offer(code)
        .await?
        .ok_or(TrackingError::UnknownLink)?;
    let (link, offer) = (&route.0, &route.1);
    if offer.status != OfferStatus::Active {
        return Err(TrackingError::OfferPaused);
    }
    let now = app.clock.now();
    let agent = agent::classify(request.user_agent);
    let mut flags: Vec<String> = agent.robot.map(str::to_string).into_iter().collect();
    if request.head {
        flags.push("head_request".into());
    }
    let network = app.geo.lookup(request.ip);
    if network.hosting {
        flags.push("datacenter".into());
    }
    let country = request.country.or(network.country);
    let excluded = offer.excludes(country.as_deref(), agent.device);
    flags.extend(excluded.map(str::to_string));
    let visitor = app.pseudonymizer.visitor(request.ip, country);
    let window = SignedDuration::from_hours(i64::from(offer.unique_window_hours));
    let visit = app
        .visits
        .record(link.code.as_str(), &visitor.ip_hash, now, window)
        .await?;
    let unique = visit.first_on_link;
    if visit.clicks_this_minute > FLOOD_CLICKS_PER_MINUTE {
        flags.push("click_flood".into());
    }
    // A flooding visitor goes on the review list once a minute, with the click that began the
    // flood: thousands of clicks a second would otherwise fill the list (and the store) with
    // a row each. Every click keeps its flags on its own record.
    let listed = !flags.is_empty() && visit.clicks_this_minute <= FLOOD_CLICKS_PER_MINUTE + 1;
    let click = Click {
        id: ClickId(app.clock.new_id()),
        link: link.code.clone(),
        offer_id: offer.id,
        affiliate_id: link.affiliate_id,
        advertiser_id: offer.advertiser_id,
        at: now,
        subs: Subs::new(request.subs).or(&link.subs),
        visitor,
        region: request.region,
        device: agent.device,
        os: agent.os,
        browser: agent.browser,
        flags,
        unique,
        expires_at: tracking_expiry(now),
    };
    app.store
        .create_click(&click, offer.currency, listed)
        .await?;
    // Dynamic number insertion: an offer whose landing page shows `{call_number}` lends
    // the visitor one of its pool's numbers, so that their call comes back to this click.
    // Robots, previews and excluded visitors get none: they would empty the pool.
    let call_number = if offer.destination.as_str().contains("{call_number}")
        && click.counts()
        && excluded.is_none()
    {
        crate::calls::lend_number(app, offer.id, click.id, &click.visitor.ip_hash).await
    } else {
        None
    };
    let macros = Macros {
        click_id: click.id,
        affiliate_id: click.affiliate_id,
        offer_id: click.offer_id,
        subs: &click.subs,
        call_number: call_number.as_ref().map(|n| n.as_str()),
    };
    let target = match (excluded, &offer.fallback_url) {
        (None, _) => ClickTarget::Redirect(offer.destination.fill(&macros)),
        (Some(_), Some(fallback)) => ClickTarget::Redirect(fallback.fill(&macros)),
        (Some(_), None) => ClickTarget::Unavailable,
    };
    Ok(ClickOutcome {
        click,
        target,
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
    /// A qualified call, vouched for by Twilio's signature on the webhook that reported it
    /// (checked by the calls route), with the call's own fraud signals.
    Call { flags: Vec<String> },
}

pub struct Postback {
    pub click_id: ClickId,
    pub txn_id: Option<String>,
    pub event: EventName,
    /// The sale amount as sent, parsed once the offer's currency is known.
    pub amount: Option<String>,
    pub currency: Option<Currency>,
    pub auth: PostbackAuth,
    /// The caller's network prefix, for the pixel's network check.
    pub client_prefix: Option<String>,
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
        flags: conversion_flags(
            &offer,
            &click,
            now,
            &postback.auth,
            postback.client_prefix.as_deref(),
        ),
        payable_at: None,
        matured: false,
        decided_at: None,
        due_at: None,
        at: now,
        expires_at: tracking_expiry(now),
    };
    if click.is_test() {
        conversion.status = ConversionStatus::Test;
        conversion.flags.clear();
        let recorded = app
            .store
            .record_conversion(&conversion, None, vec![], vec![])
            .await?;
        return Ok(recorded.expect("nothing but its dedupe key refuses an uncounted conversion"));
    }
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
    // The postback, the report counters and, for a suspect conversion, its entry in the
    // review index.
    let also = |conversion: &Conversion| -> Result<Vec<Write>, TableError> {
        let mut writes = postback(conversion)?;
        writes.extend(stats::count_conversion(conversion, &click)?);
        if let Some(at) = conversion.due_at
            && conversion.status == ConversionStatus::Pending
        {
            writes.push(crate::store::due_write(at, conversion.id)?);
        }
        if !conversion.flags.is_empty() {
            let flagged = Flagged {
                kind: "conversion".into(),
                id: conversion.id.to_string(),
                at: conversion.at,
                offer_id: conversion.offer_id.to_string(),
                affiliate_id: conversion.affiliate_id.to_string(),
                flags: conversion.flags.clone(),
            };
            writes.push(flagged.write(conversion.expires_at)?);
        }
        Ok(writes)
    };
    // Automatic approval after the review window, for what nothing flagged.
    if offer.approval == ApprovalMode::Auto && conversion.flags.is_empty() {
        conversion.due_at =
            Some(now + SignedDuration::from_hours(24 * i64::from(offer.review_days)));
    }
    let ledger = Transaction::conversion_recorded(&conversion)?;
    let counters = caps::counters(&offer, &conversion)?;
    let first = app
        .store
        .record_conversion(&conversion, Some(&ledger), counters, also(&conversion)?)
        .await?;
    if let Some(recorded) = first {
        return Ok(recorded);
    }
    // A cap is reached: the conversion is kept, rejected, with no commission.
    conversion.status = ConversionStatus::Rejected;
    conversion.reason = Some("cap".into());
    let recorded = app
        .store
        .record_conversion(&conversion, None, vec![], also(&conversion)?)
        .await?;
    Ok(recorded.expect(
        "without caps nothing refuses a conversion but its dedupe key, which answers the original",
    ))
}

/// "Send a test conversion": a test click on the affiliate's link (without one named, the
/// first approved affiliate's that has a link), then the postback the advertiser's server
/// would send for it, with the offer's own token, through [`record_conversion`]. Both are kept
/// as records marked test, and counted nowhere: no money, no reports, no caps, no affiliate
/// postback. (A postback the advertiser's own server sends for the test click is a test too.)
pub async fn test_conversion(
    app: &App,
    offer: &Offer,
    affiliate: Option<AffiliateId>,
    event: EventName,
    amount: Option<String>,
) -> Result<Recorded<Conversion>, TrackingError> {
    let candidates = match affiliate {
        Some(affiliate) => vec![affiliate],
        None => app
            .store
            .applications_of_offer(offer.id)
            .await?
            .into_iter()
            .filter(|a| a.status == crate::store::ApplicationStatus::Approved)
            .map(|a| a.affiliate_id)
            .collect(),
    };
    let mut link = None;
    for affiliate in candidates {
        link = app.store.link_for_offer(affiliate, offer.id).await?;
        if link.is_some() {
            break;
        }
    }
    let link = link.ok_or(TrackingError::NoLink)?;
    // What the postback would refuse is refused before the click is made: a refused test
    // leaves nothing behind.
    let sale = amount
        .as_deref()
        .map(|amount| Money::parse_decimal(amount, offer.currency))
        .transpose()
        .map_err(TrackingError::Amount)?;
    offer
        .commission(sale, link.affiliate_id, &event)
        .map_err(TrackingError::Commission)?;
    let visitor = Visitor {
        ip_hash: String::new(),
        ip_prefix: String::new(),
        country: None,
    };
    let (id, now) = (ClickId(app.clock.new_id()), app.clock.now());
    let click = Click::standing_for(Click::TEST_FLAG, &link, id, now, visitor, false);
    app.store.create_uncounted_click(&click).await?;
    record_conversion(
        app,
        Postback {
            click_id: click.id,
            txn_id: Some(format!("TEST-{}", click.id)),
            event,
            amount,
            currency: None,
            auth: PostbackAuth::Token(offer.postback_secret.expose().clone()),
            client_prefix: None,
        },
    )
    .await
}

/// How long a conversion without a click stays in the review index: anyone can fire a pixel,
/// so these are kept for review, not as records.
pub const UNATTRIBUTED_RETENTION: SignedDuration = SignedDuration::from_hours(24 * 90);

/// Keeps a conversion the pixel reported for a live offer without any click to attribute it
/// to (`no_click`), for review. Answers whether it was kept.
pub async fn record_unattributed(
    app: &App,
    offer_id: OfferId,
    visitor: Option<std::net::IpAddr>,
) -> Result<bool, TrackingError> {
    let Some(offer) = app.store.offer(offer_id).await? else {
        return Ok(false);
    };
    if offer.status != OfferStatus::Active {
        return Ok(false);
    }
    let now = app.clock.now();
    // Anyone can load a pixel: one source's hits past the flood limit a minute are not kept,
    // so that nobody can fill the review list. (Counted apart from the source's clicks.)
    let source = visitor.map_or_else(|| "unknown".into(), |ip| app.pseudonymizer.ip_hash(ip));
    let visit = app
        .visits
        .record(
            &format!("px:{offer_id}"),
            &format!("px:{source}"),
            now,
            SignedDuration::ZERO,
        )
        .await?;
    if visit.clicks_this_minute > FLOOD_CLICKS_PER_MINUTE {
        return Ok(false);
    }
    let flagged = Flagged {
        kind: "conversion".into(),
        id: app.clock.new_id().to_string(),
        at: now,
        offer_id: offer.id.to_string(),
        affiliate_id: String::new(),
        flags: vec!["no_click".into()],
    };
    app.store
        .flag(&flagged, (now + UNATTRIBUTED_RETENTION).as_second())
        .await?;
    Ok(true)
}

/// Why a conversion is suspect: its click was a robot's, it came sooner after the click than
/// the offer allows, or (for the pixel, which the shopper's browser loads) from another network
/// than the click.
fn conversion_flags(
    offer: &Offer,
    click: &Click,
    now: Timestamp,
    auth: &PostbackAuth,
    client_prefix: Option<&str>,
) -> Vec<String> {
    let mut flags = Vec::new();
    if !click.counts() {
        flags.push("robot_click".to_string());
    } else if click.flags.iter().any(|f| f == "datacenter") {
        flags.push("datacenter_click".to_string());
    }
    if now.duration_since(click.at)
        < SignedDuration::from_secs(i64::from(offer.min_conversion_seconds))
    {
        flags.push("too_fast".to_string());
    }
    if matches!(auth, PostbackAuth::Pixel(_))
        && client_prefix.is_some_and(|prefix| prefix != click.visitor.ip_prefix)
    {
        flags.push("ip_mismatch".to_string());
    }
    if let PostbackAuth::Call { flags: call_flags } = auth {
        flags.extend(call_flags.iter().cloned());
    }
    flags
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
        PostbackAuth::Call { .. } => Ok(()),
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
pub fn parse_signature_header(header: &str) -> Option<(i64, Vec<Vec<u8>>)> {
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
