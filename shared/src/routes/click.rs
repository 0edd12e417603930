//! `GET /c/{link}`: a tracking link. Records the click and answers `302` to the offer's
//! registered destination with its macros filled in, setting the attribution cookie for the
//! offer's attribution window. The destination is looked up by the link's code; nothing in the
//! request can name another (no open redirect).

use lambda_http::Body;
use lambda_http::http::{HeaderName, HeaderValue, Method, StatusCode, header};

use super::Route;
use crate::app::App;
use crate::caller::Access;
use crate::domain::ids::{LinkCode, OfferId};
use crate::domain::tracking::Subs;
use crate::http::{ApiError, MAX_QUERY_BYTES, Request, Response, client_ip, path_param, uncached};
use crate::tracking::{self, ClickRequest, ClickTarget, TrackingError};

pub const ROUTE: Route = Route::new(
    "click",
    &["GET", "HEAD"],
    "/c/{link}",
    Access::Public,
    "A tracking link: records the click and redirects (302) to the offer's destination",
    |app, request| Box::pin(handle(app, request)),
)
.succeeds_with(&[302]);

/// CloudFront's viewer headers, as constants: a `&str` is parsed into a header name on each
/// lookup, and every click looks both up.
const VIEWER_COUNTRY: HeaderName = HeaderName::from_static("cloudfront-viewer-country");
const VIEWER_REGION: HeaderName = HeaderName::from_static("cloudfront-viewer-country-region");

/// The attribution cookie of an offer: `lr_<offer id>`, holding the click id.
pub fn cookie_name(offer_id: OfferId) -> String {
    let mut name = String::with_capacity(COOKIE_PREFIX.len() + ulid::ULID_LEN);
    name.push_str(COOKIE_PREFIX);
    offer_id.push_to(&mut name);
    name
}

const COOKIE_PREFIX: &str = "lr_";

/// A shopper's browser is at the other end: every answer is a redirect or a small page,
/// never a JSON error, whatever the link or its query.
pub async fn handle(app: App, request: Request) -> Result<Response, ApiError> {
    let Some(code) = path_param(&request, "link")
        .as_deref()
        .and_then(LinkCode::parse)
    else {
        return Ok(not_active());
    };
    // Sub-ids the click does not give fall back to the link's defaults (in the service).
    let click = ClickRequest {
        subs: shopper_subs(&request),
        ip: client_ip(&request).unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into()),
        country: viewer_header(&request, &VIEWER_COUNTRY, 2),
        region: viewer_header(&request, &VIEWER_REGION, 3),
        user_agent: request
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
        head: request.method() == Method::HEAD,
    };
    let outcome = match tracking::record_click(&app, &code, click).await {
        Ok(outcome) => outcome,
        Err(TrackingError::UnknownLink | TrackingError::OfferPaused) => return Ok(not_active()),
        Err(error) => {
            tracing::error!(error = %crate::http::ErrorChain(&error), "a click could not be recorded");
            return Ok(try_again());
        }
    };
    let location = match outcome.target {
        ClickTarget::Redirect(location) => location,
        ClickTarget::Unavailable => return Ok(unavailable()),
    };
    // Built without the formatting machinery: every click sets one.
    const ATTRIBUTES: &str = "; Path=/; Secure; HttpOnly; SameSite=None";
    let mut digits = itoa::Buffer::new();
    let max_age = digits.format(outcome.cookie_max_age.as_secs().max(0));
    let mut cookie = cookie_name(outcome.click.offer_id);
    cookie.reserve(1 + ulid::ULID_LEN + "; Max-Age=".len() + max_age.len() + ATTRIBUTES.len());
    cookie.push('=');
    outcome.click.id.push_to(&mut cookie);
    cookie.push_str("; Max-Age=");
    cookie.push_str(max_age);
    cookie.push_str(ATTRIBUTES);
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::FOUND;
    let headers = response.headers_mut();
    // From the `String` itself, not a copy of it. Destinations are checked to make valid
    // headers when they are saved; one that does not is the neutral page, not an error.
    let (Ok(location), Ok(cookie)) = (
        HeaderValue::try_from(location),
        HeaderValue::try_from(cookie),
    ) else {
        tracing::error!(offer = %outcome.click.offer_id, "a destination makes no valid Location header");
        return Ok(unavailable());
    };
    headers.insert(header::LOCATION, location);
    headers.insert(header::SET_COOKIE, cookie);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The sub-ids of a click, taken leniently (ad platforms and mail clients send odd links): a
/// repeated one counts once (its first value), invalid encodings become U+FFFD, control
/// characters are dropped and a long one is cut to [`Subs::MAX_LEN`] characters. A query past
/// [`MAX_QUERY_BYTES`] is read up to that length.
fn shopper_subs(request: &Request) -> [Option<String>; 5] {
    let mut subs: [Option<String>; 5] = Default::default();
    let query = request.uri().query().unwrap_or("");
    let query = &query.as_bytes()[..query.len().min(MAX_QUERY_BYTES)];
    for (name, value) in url::form_urlencoded::parse(query) {
        let Some(slot) = Subs::NAMES.iter().position(|n| *n == name) else {
            continue;
        };
        if subs[slot].is_some() {
            continue;
        }
        let value: String = value
            .chars()
            .filter(|c| !c.is_control())
            .take(Subs::MAX_LEN)
            .collect();
        if !value.is_empty() {
            subs[slot] = Some(value);
        }
    }
    subs
}

/// A small page for a shopper, never cached; `head` goes into its `<head>`.
fn page(status: StatusCode, title: &str, head: &str, message: &str) -> Response {
    let page = format!(
        "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">{head}\
         <title>{title}</title><p>{message}</p></html>"
    );
    uncached(status, "text/html; charset=utf-8", Body::Text(page))
}

/// The neutral page for a visitor the offer does not take: no offer, no advertiser named.
fn unavailable() -> Response {
    page(
        StatusCode::OK,
        "Not available",
        "",
        "Sorry, this offer is not available where you are.",
    )
}

/// An unknown link, or one whose offer is paused.
fn not_active() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Link not active",
        "",
        "Sorry, this link is not active any more.",
    )
}

/// The click could not be recorded (storage failing). Not a 5xx, which a shopper's browser
/// shows as a broken site (DESIGN.md): a page that tries the link again by itself in five
/// seconds, so that the click is recorded, and its shopper sent on, once storage is back.
fn try_again() -> Response {
    page(
        StatusCode::OK,
        "One moment",
        "<meta http-equiv=\"refresh\" content=\"5\">",
        "Sorry, something went wrong on our side. This page tries again in a few seconds.",
    )
}

/// The visitor's country (ISO 3166-1 alpha-2) or region (the ISO 3166-2 subdivision code,
/// 1 to 3 characters) from CloudFront's viewer headers, when the edge sends them.
fn viewer_header(request: &Request, name: &HeaderName, max_len: usize) -> Option<String> {
    let value = request.headers().get(name)?.to_str().ok()?;
    (!value.is_empty()
        && value.len() <= max_len
        && value
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()))
    .then(|| value.to_string())
}
