//! The web dashboard: server-rendered pages for advertisers, affiliates and admins at `/app/…`,
//! and their stylesheet and script at `/assets/…` (the `web` function on AWS; the local runner
//! serves it beside the API).
//!
//! Decisions a reader may question:
//! - **Pages are clients of the API, in process** ([`api`]): a page sends the API request a
//!   program would, with the browser's session cookie and the form's CSRF token. There is no
//!   second business layer and no way around `Access`: a page for another tenant's object gets
//!   the API's 404, and a form without its token gets the API's 403.
//! - **HTML from maud**: templates are Rust, checked by the compiler, and every value is
//!   escaped unless a page says otherwise (only the server-drawn SVG charts do). No template
//!   files to keep in step, no Node toolchain.
//! - **Progressive enhancement**: every page works without JavaScript; one small script of
//!   our own adds copy buttons, the visitor's time zone and confirmations. The
//!   Content-Security-Policy allows no inline script or style at all.
//! - **CSRF**: a signed-in form carries the session's synchronizer token (checked here and
//!   again by the API); a signed-out form (sign-in, registration, reset) carries a token that
//!   must match the `__Host-form` cookie (double submit), against login CSRF.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use lambda_http::Body;
use lambda_http::http::{HeaderValue, Method, StatusCode, header};
use subtle::ConstantTimeEq;

use crate::app::App;
use crate::caller::cookie;
use crate::domain::accounts::Role;
use crate::http::{Request, Response, body_limit};
use crate::routes::match_path;

pub mod api;
pub mod assets;
pub mod chart;
pub mod format;
pub mod layout;
mod pages;

pub use api::{Api, Refusal};

/// The cookie holding a signed-out visitor's form token.
const FORM_COOKIE: &str = "__Host-form";
/// The cookie the script sets to the browser's IANA time zone.
const ZONE_COOKIE: &str = "tz";

/// The routes the `web` function answers on API Gateway (method, path): the dashboard's pages
/// route among themselves, so the gateway hands it everything under its prefixes.
pub const GATEWAY_ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/app"),
    ("GET", "/app/{proxy+}"),
    ("POST", "/app/{proxy+}"),
    ("GET", "/assets/{proxy+}"),
];

/// Whether the dashboard serves `path` (the API and tracking routes serve the rest).
pub fn serves(path: &str) -> bool {
    path == "/" || path == "/app" || path.starts_with("/app/") || path.starts_with("/assets/")
}

pub type PageFuture = Pin<Box<dyn Future<Output = Result<Response, Refusal>> + Send>>;

/// Who may open a page. The API decides what each role may do; this only decides whether a
/// visitor must sign in first.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Visitor {
    /// Signed out or in (sign-in, registration, the privacy policy).
    Anyone,
    /// Signed in, in one of these roles; others are shown the 404 page, as for a page that
    /// does not exist.
    Roles(&'static [Role]),
}

pub const SIGNED_IN: Visitor = Visitor::Roles(&[Role::Admin, Role::Advertiser, Role::Affiliate]);

/// One page: its methods, its path (the route table's syntax), who may open it, its handler.
pub struct Page {
    pub methods: &'static [&'static str],
    pub path: &'static str,
    pub visitor: Visitor,
    pub handler: fn(Ctx) -> PageFuture,
}

/// The signed-in account, as `GET /api/auth/me` answers it.
#[derive(Clone, Debug)]
pub struct Me {
    pub id: String,
    pub role: Role,
    pub name: String,
    pub email: String,
    pub status: String,
    pub email_verified: bool,
    /// The session's CSRF token, put in every form.
    pub csrf: String,
    /// The current privacy policy (version, what changed), until the account acknowledges it.
    pub policy: Option<(String, String)>,
}

/// What a page handler gets.
pub struct Ctx {
    pub app: App,
    pub request: Request,
    pub path_params: BTreeMap<String, String>,
    /// The query string's parameters (a repeated name keeps every value).
    pub query: Form,
    /// A POST's form fields.
    pub form: Form,
    /// A multipart POST's files.
    pub uploads: Vec<Upload>,
    pub api: Api,
    pub me: Option<Me>,
    /// The token every form of this page carries.
    pub csrf: String,
    /// The visitor's IANA time zone (the script's cookie), UTC until known.
    pub zone: jiff::tz::TimeZone,
    pub zone_name: String,
}

impl Ctx {
    pub fn path_param(&self, name: &str) -> &str {
        self.path_params.get(name).map(String::as_str).unwrap_or("")
    }

    /// The signed-in account; pages with `Visitor::Roles` always have one.
    pub fn me(&self) -> &Me {
        self.me
            .as_ref()
            .expect("the dispatcher signs in the visitor of every Visitor::Roles page")
    }

    pub fn role(&self) -> Option<Role> {
        self.me.as_ref().map(|me| me.role)
    }

    pub fn is_post(&self) -> bool {
        self.request.method() == Method::POST
    }

    /// The file sent in the form's `field`, or a 400 asking the visitor to choose `what`.
    pub fn uploaded(&self, field: &'static str, what: &str) -> Result<Vec<u8>, Refusal> {
        self.uploads
            .iter()
            .find(|upload| upload.field == field && !upload.bytes.is_empty())
            .map(|upload| upload.bytes.clone())
            .ok_or_else(|| {
                Refusal::new(
                    StatusCode::BAD_REQUEST,
                    field,
                    format!("{field}: choose {what}"),
                )
            })
    }
}

/// A file sent with a form.
#[derive(Clone, Debug)]
pub struct Upload {
    pub field: String,
    pub content_type: Option<String>,
    pub bytes: Vec<u8>,
}

/// A multipart/form-data body: its text fields and its files.
async fn multipart(content_type: &str, body: Vec<u8>) -> Result<(Form, Vec<Upload>), Refusal> {
    let malformed = |_| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            "body",
            "The form could not be read; send it again.",
        )
    };
    let boundary = multer::parse_boundary(content_type).map_err(malformed)?;
    let body =
        futures_util::stream::once(
            async move { Ok::<_, std::io::Error>(bytes::Bytes::from(body)) },
        );
    let mut parts = multer::Multipart::new(body, boundary);
    let (mut fields, mut uploads) = (Vec::new(), Vec::new());
    while let Some(part) = parts.next_field().await.map_err(malformed)? {
        let name = part.name().unwrap_or("").to_string();
        if part.file_name().is_some() {
            let content_type = part.content_type().map(|m| m.essence_str().to_string());
            let bytes = part.bytes().await.map_err(malformed)?.to_vec();
            uploads.push(Upload {
                field: name,
                content_type,
                bytes,
            });
        } else {
            fields.push((name, part.text().await.map_err(malformed)?));
        }
    }
    Ok((Form(fields), uploads))
}

/// Form fields (`application/x-www-form-urlencoded`) or query parameters, in order.
#[derive(Clone, Debug, Default)]
pub struct Form(Vec<(String, String)>);

impl Form {
    pub fn parse(input: &[u8]) -> Self {
        Self(
            url::form_urlencoded::parse(input)
                .map(|(name, value)| (name.into_owned(), value.into_owned()))
                .collect(),
        )
    }

    /// The first value of `name`, trimmed; `None` when absent or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// The first value of `name` as typed (what a form shows again).
    pub fn value(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// Every value of `name` (checkboxes).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }
}

/// Answers a dashboard request: assets, pages, and every refusal as a page.
pub async fn respond(app: App, request: Request) -> Response {
    let path = request.uri().path().to_string();
    if path == "/" || path == "/app/" {
        return secured(redirect("/app"));
    }
    if path.starts_with("/assets/") {
        return match assets::serve(&path) {
            Some(response) => response,
            None => secured(plain(StatusCode::NOT_FOUND, "no such asset")),
        };
    }
    let method = request.method().as_str().to_string();
    let mut allowed: Vec<&str> = Vec::new();
    let mut found = None;
    for page in pages::PAGES {
        if let Some(params) = match_path(page.path, &path) {
            if page.methods.contains(&method.as_str())
                || (method == "HEAD" && page.methods.contains(&"GET"))
            {
                found = Some((page, params));
                break;
            }
            allowed.extend(page.methods);
        }
    }
    let Some((page, params)) = found else {
        let api = Api::of(&app, &request);
        let me = signed_in(&api).await;
        let (status, message) = if allowed.is_empty() {
            (StatusCode::NOT_FOUND, "There is no such page.")
        } else {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                "That page cannot be sent a form.",
            )
        };
        let refusal = Refusal::new(status, "path", message);
        return secured(layout::refusal_page(me.as_ref(), &refusal));
    };
    secured(open(app, request, page, params).await)
}

async fn open(app: App, request: Request, page: &Page, params: Vec<(String, String)>) -> Response {
    let api = Api::of(&app, &request);
    let me = if api.has_session() {
        signed_in(&api).await
    } else {
        None
    };
    if let Visitor::Roles(roles) = page.visitor {
        match &me {
            None => {
                let target = request
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/app");
                return redirect(&format!("/app/sign-in?next={}", encode(target)));
            }
            Some(me) if !roles.contains(&me.role) => {
                let refusal = Refusal::new(StatusCode::NOT_FOUND, "path", "There is no such page.");
                return layout::refusal_page(Some(me), &refusal);
            }
            Some(_) => {}
        }
    }

    // Signed out: the double-submit token of this browser, made on its first form.
    let form_cookie = cookie(&request, FORM_COOKIE)
        .filter(|token| token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_string);
    let new_form_cookie = me.is_none() && form_cookie.is_none();
    let csrf = match &me {
        Some(me) => me.csrf.clone(),
        None => form_cookie.clone().unwrap_or_else(new_token),
    };

    let (form, uploads) = if request.method() == Method::POST {
        let body = request.body().as_ref();
        if body.len() > body_limit(request.uri().path()) {
            let refusal = Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body",
                "The form is too large.",
            );
            return layout::refusal_page(me.as_ref(), &refusal);
        }
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let (form, uploads) = if content_type
            .to_ascii_lowercase()
            .starts_with("multipart/form-data")
        {
            match multipart(&content_type, body.to_vec()).await {
                Ok(parsed) => parsed,
                Err(refusal) => return layout::refusal_page(me.as_ref(), &refusal),
            }
        } else {
            (Form::parse(body), Vec::new())
        };
        let sent = form.get("csrf").unwrap_or("").as_bytes();
        let expected = match (&me, &form_cookie) {
            (Some(me), _) => Some(me.csrf.as_bytes()),
            (None, Some(token)) => Some(token.as_bytes()),
            (None, None) => None,
        };
        let valid = expected.is_some_and(|expected| bool::from(sent.ct_eq(expected)));
        if !valid {
            let refusal = Refusal::new(
                StatusCode::FORBIDDEN,
                "csrf",
                "This form has expired or did not come from this site. Go back, reload the page and send it again.",
            );
            return layout::refusal_page(me.as_ref(), &refusal);
        }
        (form, uploads)
    } else {
        (Form::default(), Vec::new())
    };

    let query = Form::parse(request.uri().query().unwrap_or("").as_bytes());
    let zone_name = cookie(&request, ZONE_COOKIE)
        .map(|raw| {
            percent_encoding::percent_decode_str(raw)
                .decode_utf8_lossy()
                .into_owned()
        })
        .filter(|name| jiff::tz::TimeZone::get(name).is_ok())
        .unwrap_or_else(|| "UTC".to_string());
    let zone = jiff::tz::TimeZone::get(&zone_name).unwrap_or(jiff::tz::TimeZone::UTC);
    let api = if request.method() == Method::POST {
        api.with_csrf(form.get("csrf").map(str::to_string))
    } else {
        api
    };
    let ctx = Ctx {
        app: app.clone(),
        path_params: params.into_iter().collect(),
        query,
        form,
        uploads,
        api,
        me: me.clone(),
        csrf: csrf.clone(),
        zone,
        zone_name,
        request,
    };
    let mut response = match (page.handler)(ctx).await {
        Ok(response) => response,
        Err(refusal) if refusal.status == StatusCode::UNAUTHORIZED => redirect("/app/sign-in"),
        Err(refusal) => layout::refusal_page(me.as_ref(), &refusal),
    };
    if new_form_cookie
        && let Ok(value) = HeaderValue::from_str(&format!(
            "{FORM_COOKIE}={csrf}; Path=/; Secure; HttpOnly; SameSite=Lax"
        ))
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// The visitor's account, if their session cookie is live.
async fn signed_in(api: &Api) -> Option<Me> {
    if !api.has_session() {
        return None;
    }
    let session = api.get("/api/auth/me").await.ok()?;
    let account = &session["account"];
    let role = match account["role"].as_str()? {
        "admin" => Role::Admin,
        "advertiser" => Role::Advertiser,
        "affiliate" => Role::Affiliate,
        _ => return None,
    };
    Some(Me {
        id: account["id"].as_str()?.to_string(),
        role,
        name: account["name"].as_str().unwrap_or("").to_string(),
        email: account["email"].as_str().unwrap_or("").to_string(),
        status: account["status"].as_str().unwrap_or("").to_string(),
        email_verified: account["email_verified"].as_bool().unwrap_or(false),
        csrf: session["csrf_token"].as_str()?.to_string(),
        policy: session["policy"]["version"].as_str().map(|version| {
            (
                version.to_string(),
                session["policy"]["summary"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        }),
    })
}

fn new_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// A path segment or query value, percent-encoded.
pub fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A string field of an API answer, or "" when absent.
pub fn text<'a>(value: &'a serde_json::Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or("")
}

/// The name of offer `id` among the API's `offers`, or the id itself.
pub fn offer_name(offers: &[serde_json::Value], id: &str) -> String {
    offers
        .iter()
        .find(|offer| offer["id"] == id)
        .and_then(|offer| offer["name"].as_str())
        .unwrap_or(id)
        .to_string()
}

/// A redirect that hands the browser the cookies an API answer set (a new session, a cleared
/// one).
pub fn redirect_with_cookies(to: &str, answer: &Response) -> Response {
    let mut response = redirect(to);
    for cookie in answer.headers().get_all(header::SET_COOKIE) {
        response
            .headers_mut()
            .append(header::SET_COOKIE, cookie.clone());
    }
    response
}

/// `303 See Other` to a path of this site (pages only ever redirect within the dashboard).
pub fn redirect(to: &str) -> Response {
    let target = if to.starts_with('/') && !to.starts_with("//") && !to.starts_with("/\\") {
        to
    } else {
        "/app"
    };
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(value) = HeaderValue::from_str(target) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    let mut response = Response::new(Body::Text(text.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The dashboard's Content-Security-Policy: nothing but this site's own files, no inline script
/// or style, no framing. `media` adds the one origin a page plays audio from (a recording's
/// link, which S3 signs on AWS).
pub fn content_security_policy(media: Option<&str>) -> HeaderValue {
    let media = media.map(|origin| format!(" {origin}")).unwrap_or_default();
    let policy = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         media-src 'self'{media}; connect-src 'self'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'"
    );
    HeaderValue::from_str(&policy).unwrap_or_else(|_| content_security_policy(None))
}

/// The headers every dashboard answer carries (a page may set a policy of its own, built by
/// [`content_security_policy`]): no script but our own file, no framing, no
/// referrer beyond the origin, no type sniffing; pages are never cached.
fn secured(mut response: Response) -> Response {
    let headers = response.headers_mut();
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            content_security_policy(None),
        );
    }
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_stay_on_this_site() {
        for (to, expected) in [
            ("/app/offers", "/app/offers"),
            ("//evil.example/x", "/app"),
            ("/\\evil.example", "/app"),
            ("https://evil.example", "/app"),
        ] {
            assert_eq!(redirect(to).headers()[header::LOCATION], expected, "{to}");
        }
    }

    #[test]
    fn a_page_may_widen_where_audio_plays_from_and_nothing_else() {
        let base = content_security_policy(None);
        let base = base.to_str().unwrap();
        assert!(base.contains("media-src 'self';") && !base.contains("unsafe"));
        let recording = content_security_policy(Some("https://b.s3.us-east-1.amazonaws.com"));
        assert_eq!(
            recording.to_str().unwrap(),
            base.replace(
                "media-src 'self';",
                "media-src 'self' https://b.s3.us-east-1.amazonaws.com;"
            )
        );
        let mut page = redirect("/app");
        page.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, recording.clone());
        assert_eq!(
            secured(page).headers()[header::CONTENT_SECURITY_POLICY],
            recording
        );
        assert_eq!(
            secured(redirect("/app")).headers()[header::CONTENT_SECURITY_POLICY],
            base
        );
    }

    #[test]
    fn forms_keep_every_value_and_trim_what_they_answer() {
        let form = Form::parse(b"id=a&id=b&name=+Ann+&empty=&csrf=x%26y");
        assert_eq!(form.all("id"), ["a", "b"]);
        assert_eq!(form.get("name"), Some("Ann"));
        assert_eq!(form.value("name"), " Ann ");
        assert_eq!(form.get("empty"), None);
        assert_eq!(form.get("csrf"), Some("x&y"));
    }
}
