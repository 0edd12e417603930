//! `GET /px/{offer}`: the conversion pixel on an advertiser's thank-you page. It attributes
//! through the `lr_<offer>` cookie the click set, takes the postback's optional fields
//! (`txn_id`, `event`, `amount`, `currency`), and always answers a 1×1 transparent GIF — a
//! broken image on a checkout page helps nobody. `X-LeadsRefer-Result` says what happened:
//! `recorded`, `duplicate` or `ignored` (no cookie, bad input, another offer's click).

use lambda_http::Body;
use lambda_http::http::{HeaderValue, StatusCode};

use super::Route;
use super::click::cookie_name;
use crate::app::App;
use crate::caller::Access;
use crate::domain::ids::{ClickId, OfferId};
use crate::domain::money::Currency;
use crate::domain::tracking::EventName;
use crate::http::{
    ApiError, ErrorChain, Params, Request, Response, client_ip, path_param, uncached,
};
use crate::store::Recorded;
use crate::tracking::{self, Postback, PostbackAuth, TrackingError};

pub const ROUTE: Route = Route::new(
    "pixel",
    &["GET"],
    "/px/{offer}",
    Access::Public,
    "The conversion pixel: attributes through the click's cookie; always a 1×1 GIF",
    |app, request| Box::pin(handle(app, request)),
)
.succeeds_with(&[200]);

/// The smallest transparent GIF (43 bytes).
pub const GIF: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";

pub async fn handle(app: App, request: Request) -> Result<Response, ApiError> {
    let result = match pixel(&app, &request).await {
        Ok(Some(Recorded::New(_))) => "recorded",
        Ok(Some(Recorded::Duplicate(_))) => "duplicate",
        Ok(None) => match unattributed(&app, &request).await {
            Ok(true) => "unattributed",
            Ok(false) => "ignored",
            Err(error) => {
                tracing::warn!(error = %ErrorChain(&error), "unattributed pixel not recorded");
                "ignored"
            }
        },
        Err(error) => {
            tracing::warn!(error = %ErrorChain(&error), "pixel conversion not recorded");
            "ignored"
        }
    };
    let mut response = uncached(StatusCode::OK, "image/gif", Body::Binary(GIF.to_vec()));
    response
        .headers_mut()
        .insert("x-leadsrefer-result", HeaderValue::from_static(result));
    Ok(response)
}

/// The conversion the pixel reports, if its request says enough to record one.
async fn pixel(
    app: &App,
    request: &Request,
) -> Result<Option<Recorded<crate::domain::tracking::Conversion>>, TrackingError> {
    let Some(offer) = path_param(request, "offer")
        .as_deref()
        .and_then(OfferId::parse)
    else {
        return Ok(None);
    };
    let Some(click_id) =
        crate::caller::cookie(request, &cookie_name(offer)).and_then(ClickId::parse)
    else {
        return Ok(None);
    };
    let Ok(params) = Params::from_query(request) else {
        return Ok(None);
    };
    let (Ok(txn_id), Ok(event), Ok(amount), Ok(currency)) = (
        params.text("txn_id", 255),
        params.text("event", 64),
        params.text("amount", 32),
        params.text("currency", 3),
    ) else {
        return Ok(None);
    };
    let Ok(event) = EventName::parse_or_default(event) else {
        return Ok(None);
    };
    let currency = match currency.map(Currency::parse) {
        None => None,
        Some(Ok(currency)) => Some(currency),
        Some(Err(_)) => return Ok(None),
    };
    let postback = Postback {
        click_id,
        txn_id: txn_id.map(str::to_string),
        event,
        amount: amount.map(str::to_string),
        currency,
        auth: PostbackAuth::Pixel(offer),
        client_prefix: client_ip(request).map(crate::domain::privacy::truncated_prefix),
    };
    tracking::record_conversion(app, postback).await.map(Some)
}

/// A pixel of a live offer that no click of that offer's can explain (no cookie, or one of no
/// click of it): kept in the review index as a conversion without a click, never dropped.
async fn unattributed(app: &App, request: &Request) -> Result<bool, TrackingError> {
    let Some(offer) = path_param(request, "offer")
        .as_deref()
        .and_then(OfferId::parse)
    else {
        return Ok(false);
    };
    let attributed = crate::caller::cookie(request, &cookie_name(offer))
        .and_then(ClickId::parse)
        .is_some();
    if attributed {
        return Ok(false);
    }
    tracking::record_unattributed(app, offer, client_ip(request)).await
}
