//! The route table: every HTTP route's function, method, path, who may call it, what it
//! takes and answers, and its handler. A Lambda function serves the routes of its name; the
//! local runner serves them all; `template.yaml` declares the same paths (a test keeps them in
//! step), and `/api/openapi.json` is generated from this table.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use lambda_http::RequestExt;
use lambda_http::http::{HeaderName, HeaderValue, header};
use utoipa::ToSchema;
use utoipa::openapi::{RefOr, Schema};

use crate::app::App;
use crate::caller::{self, Access};
use crate::http::{ApiError, Request, Response};

pub mod admin;
pub mod auth;
pub mod calls;
pub mod click;
pub mod conversions;
pub mod links;
pub mod offers;
pub mod openapi;
pub mod payouts;
pub mod pixel;
pub mod postback;
pub mod privacy;
pub mod reports;
pub mod tax;

pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Response, ApiError>> + Send>>;

/// Adds a type's JSON schema (and the schemas it uses) to the document; answers a reference.
pub type SchemaFn = fn(&mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema>;

pub fn schema<T: ToSchema>(schemas: &mut Vec<(String, RefOr<Schema>)>) -> RefOr<Schema> {
    T::schemas(schemas);
    schemas.push((T::name().into_owned(), T::schema()));
    RefOr::Ref(utoipa::openapi::Ref::from_schema_name(T::name()))
}

/// One HTTP route.
pub struct Route {
    /// The function serving it: its crate in `functions/` and its resource in `template.yaml`.
    pub function: &'static str,
    pub methods: &'static [&'static str],
    /// API Gateway's path syntax: `/c/{link}`.
    pub path: &'static str,
    pub access: Access,
    pub summary: &'static str,
    /// The JSON body it takes, if any.
    pub request: Option<SchemaFn>,
    /// The JSON it answers on success, if any.
    pub response: Option<SchemaFn>,
    /// The statuses it answers on success, when not the usual ones (see [`Route::success`]).
    pub statuses: Option<&'static [u16]>,
    pub handler: fn(App, Request) -> HandlerFuture,
}

impl Route {
    pub const fn new(
        function: &'static str,
        methods: &'static [&'static str],
        path: &'static str,
        access: Access,
        summary: &'static str,
        handler: fn(App, Request) -> HandlerFuture,
    ) -> Self {
        Self {
            function,
            methods,
            path,
            access,
            summary,
            request: None,
            response: None,
            statuses: None,
            handler,
        }
    }

    /// Answers one of `statuses` on success (a 202 for work done later, a 200 for a repeat).
    pub const fn succeeds_with(mut self, statuses: &'static [u16]) -> Self {
        self.statuses = Some(statuses);
        self
    }

    /// The statuses `method` answers on success, as the API document says them: those
    /// declared, else 201 for a POST that answers what it made, 204 without an answer, 200.
    /// The authorization matrix holds every handler to them.
    pub fn success(&self, method: &str) -> &'static [u16] {
        match (self.statuses, method, self.response) {
            (Some(statuses), ..) => statuses,
            (None, "POST", Some(_)) => &[201],
            (None, _, None) => &[204],
            (None, ..) => &[200],
        }
    }

    pub const fn takes(mut self, schema: SchemaFn) -> Self {
        self.request = Some(schema);
        self
    }

    pub const fn answers(mut self, schema: SchemaFn) -> Self {
        self.response = Some(schema);
        self
    }

    /// The path parameters, if `path` is this route's.
    pub fn match_path(&self, path: &str) -> Option<Vec<(String, String)>> {
        match_path(self.path, path)
    }
}

/// The parameters of `path`, if it matches `pattern` (API Gateway's syntax: `/c/{link}`); the
/// dashboard's pages use it too.
pub fn match_path(pattern: &str, path: &str) -> Option<Vec<(String, String)>> {
    let mut params = Vec::new();
    let mut pattern = pattern.split('/');
    let mut actual = path.split('/');
    loop {
        match (pattern.next(), actual.next()) {
            (None, None) => return Some(params),
            (Some(p), Some(a)) if p.starts_with('{') && p.ends_with('}') && !a.is_empty() => {
                let value = percent_encoding::percent_decode_str(a).decode_utf8().ok()?;
                params.push((p[1..p.len() - 1].to_string(), value.into_owned()));
            }
            (Some(p), Some(a)) if p == a => {}
            _ => return None,
        }
    }
}

pub const ROUTES: &[Route] = &[
    click::ROUTE,
    postback::ROUTE,
    pixel::ROUTE,
    auth::REGISTER,
    auth::VERIFY_EMAIL,
    auth::SIGN_IN,
    auth::SIGN_OUT,
    auth::ME,
    auth::CORRECT_ME,
    auth::CHANGE_PASSWORD,
    auth::REQUEST_RESET,
    auth::CONFIRM_RESET,
    auth::CREATE_API_KEY,
    auth::LIST_API_KEYS,
    auth::REVOKE_API_KEY,
    offers::CREATE,
    offers::LIST,
    offers::GET,
    offers::UPDATE,
    offers::ROTATE_SECRET,
    offers::TEST_CONVERSION,
    offers::APPLY,
    offers::LIST_APPLICATIONS,
    offers::DECIDE_APPLICATION,
    offers::SET_POSTBACK_URL,
    links::CREATE,
    links::LIST,
    conversions::LIST,
    conversions::DECIDE,
    conversions::DECIDE_MANY,
    reports::GET,
    payouts::GET_METHOD,
    payouts::SET_METHOD,
    payouts::BALANCE,
    payouts::LIST,
    payouts::CONVERSIONS,
    payouts::RETRY,
    payouts::RUNS,
    payouts::ACH_FILE,
    tax::GET,
    tax::SET,
    tax::W8BEN,
    tax::FORM,
    tax::REQUEST_FORMS,
    tax::FORM_YEARS,
    payouts::RUN_NOW,
    payouts::ACH_RETURNS,
    admin::LIST_ACCOUNTS,
    admin::SET_STATUS,
    admin::AUDIT,
    admin::DEAD_LETTERS,
    admin::REPLAY,
    admin::FLAGGED,
    privacy::REQUEST_EXPORT,
    privacy::DOWNLOAD_EXPORT,
    privacy::MY_REQUESTS,
    privacy::ERASE,
    privacy::ALL_REQUESTS,
    privacy::ACKNOWLEDGE_POLICY,
    privacy::PUBLISH_POLICY,
    privacy::POLICIES,
    calls::VOICE,
    calls::STATUS,
    calls::RECORDING,
    calls::TRANSCRIPTION,
    calls::REGISTER_NUMBER,
    calls::NUMBERS,
    calls::SETTINGS,
    calls::LIST,
    calls::RECORDING_LINK,
    calls::STREAM,
    openapi::ROUTE,
];

/// What serves `method path` among `routes`.
pub enum Found {
    Route(&'static Route, Vec<(String, String)>),
    /// The path exists, with these methods only.
    MethodNotAllowed(Vec<&'static str>),
    NotFound,
}

pub fn find(routes: impl IntoIterator<Item = &'static Route>, method: &str, path: &str) -> Found {
    let mut allowed = Vec::new();
    for route in routes {
        if let Some(params) = route.match_path(path) {
            if route.methods.contains(&method) {
                return Found::Route(route, params);
            }
            allowed.extend(route.methods);
        }
    }
    if allowed.is_empty() {
        Found::NotFound
    } else {
        Found::MethodNotAllowed(allowed)
    }
}

/// A constant, not a `&str` parsed into a header name on every answer.
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Answers a request with the routes of `function` (every route when `None`): routing, the
/// caller's authentication and role, the handler, and the error answer. Every request gets an
/// answer: an error is the caller's 4xx or an opaque 5xx, never an `Err` to the Lambda runtime
/// (which API Gateway would turn into a blind 502).
pub async fn respond(app: App, mut request: Request, function: Option<&str>) -> Response {
    // Lambda's id for the request, else a new one, written on the stack: every click has one.
    let mut buffer = [0; ulid::ULID_LEN];
    let request_id: Cow<str> = match request.lambda_context_ref() {
        Some(context) => Cow::Owned(context.request_id.clone()),
        None => Cow::Borrowed(app.clock.new_id().array_to_str(&mut buffer)),
    };
    let routes = ROUTES
        .iter()
        .filter(|route| function.is_none_or(|name| route.function == name));
    let found = find(routes, request.method().as_str(), request.uri().path());
    let result = match found {
        Found::NotFound => Err(ApiError::not_found("path", "no such route")),
        Found::MethodNotAllowed(allowed) => {
            let mut response = ApiError::method_not_allowed(&allowed).into_response(&request_id);
            if let Ok(value) = HeaderValue::from_str(&allowed.join(", ")) {
                response.headers_mut().insert(header::ALLOW, value);
            }
            return response;
        }
        Found::Route(route, params) => {
            request = request.with_path_parameters(
                params
                    .into_iter()
                    .collect::<std::collections::HashMap<_, _>>(),
            );
            run(route, app, request).await
        }
    };
    let mut response = result.unwrap_or_else(|error| error.into_response(&request_id));
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(X_REQUEST_ID, value);
    }
    response
}

async fn run(route: &'static Route, app: App, mut request: Request) -> Result<Response, ApiError> {
    if let Access::Roles(roles) = route.access {
        let caller = caller::require(&app, &request, roles).await?;
        request.extensions_mut().insert(caller);
    }
    (route.handler)(app, request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn function(method: &str, path: &str) -> Option<&'static str> {
        match find(ROUTES, method, path) {
            Found::Route(route, _) => Some(route.function),
            _ => None,
        }
    }

    #[test]
    fn paths_match_their_routes_only() {
        let Found::Route(route, params) = find(ROUTES, "GET", "/c/AbCdE12345") else {
            panic!()
        };
        assert_eq!(route.function, "click");
        assert_eq!(params, vec![("link".to_string(), "AbCdE12345".to_string())]);
        assert_eq!(function("POST", "/postback"), Some("postback"));
        assert!(matches!(
            find(ROUTES, "DELETE", "/postback"),
            Found::MethodNotAllowed(_)
        ));
        for path in [
            "/c/",
            "/c",
            "/c/a/b",
            "/postback/x",
            "/",
            "/nope",
            "/api/offers/x/y/z/w",
        ] {
            assert!(
                matches!(find(ROUTES, "GET", path), Found::NotFound),
                "{path}"
            );
        }
    }

    #[test]
    fn no_two_routes_answer_the_same_method_and_path() {
        let mut seen = std::collections::BTreeSet::new();
        for route in ROUTES {
            for method in route.methods {
                assert!(
                    seen.insert((*method, route.path)),
                    "{method} {} is routed twice",
                    route.path
                );
            }
        }
    }
}
