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
use crate::http::{ApiError, Params, Request, Response, client_ip, path_param, uncached};
use crate::tracking::{self, ClickRequest, ClickTarget, TrackingError};

pub const ROUTE: Route = Route::new(
    "click",
    &["GET", "HEAD"],
    "/c/{link}",
    Access::Public,
    "A tracking link: records the click and redirects (302) to the offer's destination",
    |app, request| Box::pin(handle(app, request)),
);

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

pub async fn handle(app: App, request: Request) -> Result<Response, ApiError> {
    let code = path_param(&request, "link")
        .as_deref()
        .and_then(LinkCode::parse)
        .ok_or_else(|| ApiError::not_found("link", "no such tracking link"))?;
    let params = Params::from_query(&request)?;
    let mut subs: [Option<String>; 5] = Default::default();
    for (slot, name) in subs.iter_mut().zip(Subs::NAMES) {
        *slot = params.text(name, Subs::MAX_LEN)?.map(str::to_string);
    }
    // Sub-ids the click does not give fall back to the link's defaults (in the service).
    let click = ClickRequest {
        subs,
        ip: client_ip(&request).unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into()),
        country: viewer_header(&request, &VIEWER_COUNTRY, 2),
        region: viewer_header(&request, &VIEWER_REGION, 3),
        user_agent: request
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
        head: request.method() == Method::HEAD,
    };
    let outcome =
        tracking::record_click(&app, &code, click)
            .await
            .map_err(|error| match error {
                TrackingError::UnknownLink => ApiError::not_found("link", "no such tracking link"),
                TrackingError::OfferPaused => {
                    ApiError::not_found("link", "this link's offer is paused")
                }
                other => ApiError::internal(other),
            })?;
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
    headers.insert(
        header::LOCATION,
        // From the `String` itself, not a copy of it.
        HeaderValue::try_from(location).map_err(ApiError::internal)?,
    );
    headers.insert(
        header::SET_COOKIE,
        HeaderValue::try_from(cookie).map_err(ApiError::internal)?,
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The neutral page for a visitor the offer does not take: no offer, no advertiser named.
fn unavailable() -> Response {
    let page = "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
                <title>Not available</title><p>Sorry, this offer is not available where you are.</p></html>";
    uncached(
        StatusCode::OK,
        "text/html; charset=utf-8",
        Body::Text(page.into()),
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
