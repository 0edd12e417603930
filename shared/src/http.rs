//! HTTP plumbing shared by every route: the one error shape, strict parameter parsing, and
//! what a handler may know of its caller.
//!
//! Requests and responses are `lambda_http`'s types in Lambda, in the local runner and in
//! tests alike. Query strings are read from the URI (API Gateway v2's raw query string),
//! never from API Gateway's pre-split map, which joins repeated names with commas.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt};
use serde::Serialize;

pub type Request = lambda_http::Request;
pub type Response = lambda_http::Response<Body>;

/// The longest query string any route reads; longer ones are refused before parsing.
pub const MAX_QUERY_BYTES: usize = 8 * 1024;
/// The largest request body any route reads.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The dashboard's one page that takes a file (multipart/form-data): a foreign affiliate's
/// signed W-8BEN.
pub const W8BEN_FORM_PATH: &str = "/app/tax/w8ben";

/// The dashboard's form for the bank's ACH return file (multipart/form-data).
pub const ACH_RETURNS_FORM_PATH: &str = "/app/admin/payouts/returns";

/// The largest body a server reads for `path`: [`MAX_BODY_BYTES`], but for the upload routes
/// (a signed W-8BEN, an ACH return file) and the dashboard's forms for them.
pub fn body_limit(path: &str) -> usize {
    match path {
        "/api/tax/profile/w8ben" => crate::tax::MAX_DOCUMENT_BYTES,
        "/api/admin/ach-returns" => crate::ach_returns::MAX_FILE_BYTES,
        // The dashboard's upload form: the file, wrapped in multipart/form-data.
        ACH_RETURNS_FORM_PATH => crate::ach_returns::MAX_FILE_BYTES + MAX_BODY_BYTES,
        // The dashboard's upload form: the file, wrapped in multipart/form-data.
        W8BEN_FORM_PATH => crate::tax::MAX_DOCUMENT_BYTES + MAX_BODY_BYTES,
        _ => MAX_BODY_BYTES,
    }
}

/// An error answered to the caller: `{"error": {"code", "field", "message"}}`.
/// 4xx messages say what was wrong with which field; 5xx bodies say nothing of internals.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub field: Option<Cow<'static, str>>,
    pub message: String,
    /// For 5xx: the cause, logged with the request, never sent.
    pub cause: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ApiError {
    fn new(
        status: StatusCode,
        code: &'static str,
        field: Option<&'static str>,
        message: String,
    ) -> Self {
        Self {
            status,
            code,
            field: field.map(Cow::Borrowed),
            message,
            cause: None,
        }
    }

    /// 400: the field is missing or malformed.
    pub fn invalid(field: &'static str, problem: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_field",
            Some(field),
            format!("{field}: {problem}"),
        )
    }

    /// 400 for a field named at run time, such as a JSON path (`caps.daily`).
    pub fn invalid_at(field: String, problem: impl std::fmt::Display) -> Self {
        let message = format!("{field}: {problem}");
        Self {
            field: Some(Cow::Owned(field)),
            ..Self::new(StatusCode::BAD_REQUEST, "invalid_field", None, message)
        }
    }

    /// 403: the caller may not do this.
    pub fn forbidden(field: &'static str, problem: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            Some(field),
            format!("{field}: {problem}"),
        )
    }

    /// 409: it conflicts with what exists.
    pub fn conflict(field: &'static str, problem: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "conflict",
            Some(field),
            format!("{field}: {problem}"),
        )
    }

    /// 429: too many attempts.
    pub fn too_many(field: &'static str, problem: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            Some(field),
            format!("{field}: {problem}"),
        )
    }

    /// 401: the credential in the field is missing or wrong.
    pub fn unauthorized(field: &'static str, problem: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            Some(field),
            format!("{field}: {problem}"),
        )
    }

    /// 404: what the field names does not exist.
    pub fn not_found(field: &'static str, problem: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            Some(field),
            format!("{field}: {problem}"),
        )
    }

    /// 422: well-formed, but the request cannot be done.
    pub fn unprocessable(field: &'static str, problem: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
            Some(field),
            format!("{field}: {problem}"),
        )
    }

    /// 413 / 414: the body or query is larger than any route reads.
    /// The client did not send `field` in time (a stalled upload): 408.
    pub fn timed_out(field: &'static str, within: std::time::Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            Some(field),
            format!("{field}: not sent within {} s", within.as_secs()),
        )
    }

    pub fn too_large(field: &'static str, limit: usize) -> Self {
        let status = if field == "query" {
            StatusCode::URI_TOO_LONG
        } else {
            StatusCode::PAYLOAD_TOO_LARGE
        };
        Self::new(
            status,
            "too_large",
            Some(field),
            format!("{field}: larger than {limit} bytes"),
        )
    }

    pub fn method_not_allowed(allowed: &[&str]) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            None,
            format!("method not allowed; use {}", allowed.join(" or ")),
        )
    }

    /// 500, with the cause kept for the log.
    pub fn internal(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            cause: Some(cause.into()),
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                None,
                "internal error".into(),
            )
        }
    }

    pub fn into_response(self, request_id: &str) -> Response {
        if let Some(cause) = &self.cause {
            tracing::error!(request_id, error = %ErrorChain(cause.as_ref()), "request failed");
        }
        let message = if self.status.is_server_error() {
            format!("internal error; quote request id {request_id} when reporting it")
        } else {
            self.message
        };
        json(
            self.status,
            &serde_json::json!({ "error": { "code": self.code, "field": self.field, "message": message } }),
        )
    }
}

/// Displays an error with its whole `source()` chain.
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// A request body as JSON of type `T`: `application/json`, at most [`MAX_BODY_BYTES`], no
/// unknown fields (types say `deny_unknown_fields`); an error names the offending field's path.
pub fn json_body<T: serde::de::DeserializeOwned>(request: &Request) -> Result<T, ApiError> {
    let body = request.body().as_ref();
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::too_large("body", MAX_BODY_BYTES));
    }
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("application/json")
    {
        return Err(ApiError::invalid("body", "send application/json"));
    }
    // serde would also build a struct from an array, positionally; this API speaks objects.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::invalid("body", "must be a JSON object"));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        // A syntax error has no meaningful path (serde_path_to_error says `?`).
        if (inner.is_syntax() || inner.is_eof()) && (path.contains('?') || path == ".") {
            return ApiError::invalid("body", "is not valid JSON");
        }
        // serde's messages end with " at line L column C", which says nothing to an API caller.
        let message = inner.to_string();
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_string();
        // "missing field `x`" is about `x`, inside `path` (an unknown field's path names it already).
        let named = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
            .map(str::to_string);
        let root = path == "." || path.is_empty();
        match named {
            Some(name) if root => ApiError::invalid_at(name, message),
            Some(name) => ApiError::invalid_at(format!("{path}.{name}"), message),
            None if root => ApiError::invalid("body", message),
            None => ApiError::invalid_at(path, message),
        }
    })?;
    deserializer
        .end()
        .map_err(|_| ApiError::invalid("body", "has trailing characters after the JSON value"))?;
    Ok(value)
}

/// `204 No Content`.
pub fn no_content() -> Response {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// A response that no cache may keep: tracking and API answers are per request.
pub fn uncached(status: StatusCode, content_type: &'static str, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Text for XML or HTML (TwiML, statements): the five markup characters escaped.
pub fn escape_markup(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A JSON response.
pub fn json(status: StatusCode, body: &impl Serialize) -> Response {
    uncached(
        status,
        "application/json",
        Body::Text(serde_json::to_string(body).expect("JSON serialises")),
    )
}

/// Request parameters by name, from the query string and (for a POST) the body, each given
/// at most once.
#[derive(Debug, Default)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    /// The query string's parameters.
    pub fn from_query(request: &Request) -> Result<Self, ApiError> {
        let query = request.uri().query().unwrap_or("");
        if query.len() > MAX_QUERY_BYTES {
            return Err(ApiError::too_large("query", MAX_QUERY_BYTES));
        }
        let mut params = Self::default();
        params.add_form(query.as_bytes())?;
        Ok(params)
    }

    /// The parameters of a form body alone (what a webhook's signature covers).
    pub fn from_form(body: &[u8]) -> Result<Self, ApiError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(ApiError::too_large("body", MAX_BODY_BYTES));
        }
        let mut params = Self::default();
        params.add_form(body)?;
        Ok(params)
    }

    /// Every parameter, by name.
    pub fn pairs(&self) -> Vec<(String, String)> {
        self.0.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// A parameter as sent (any text, control characters included), if present.
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The query string's and the body's parameters; the body may be a form or a JSON object.
    pub fn from_query_and_body(request: &Request) -> Result<Self, ApiError> {
        let mut params = Self::from_query(request)?;
        let body = request.body().as_ref();
        if body.is_empty() {
            return Ok(params);
        }
        if body.len() > MAX_BODY_BYTES {
            return Err(ApiError::too_large("body", MAX_BODY_BYTES));
        }
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match content_type.as_str() {
            "application/json" => params.add_json(body)?,
            "application/x-www-form-urlencoded" | "" => params.add_form(body)?,
            _ => {
                return Err(ApiError::invalid(
                    "body",
                    "send application/x-www-form-urlencoded or application/json",
                ));
            }
        }
        Ok(params)
    }

    fn insert(&mut self, name: String, value: String) -> Result<(), ApiError> {
        if self.0.contains_key(&name) {
            return Err(ApiError::invalid(field_name(&name), "given more than once"));
        }
        self.0.insert(name, value);
        Ok(())
    }

    /// `application/x-www-form-urlencoded`, strictly: invalid UTF-8 is refused, not replaced.
    fn add_form(&mut self, input: &[u8]) -> Result<(), ApiError> {
        for pair in input.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            let (name, value) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            let name = decode_form_component(name)
                .map_err(|_| ApiError::invalid("query", "a parameter name is not valid UTF-8"))?;
            let value = decode_form_component(value)
                .map_err(|_| ApiError::invalid(field_name(&name), "is not valid UTF-8"))?;
            self.insert(name, value)?;
        }
        Ok(())
    }

    /// A JSON object of strings, numbers (kept exactly as written) and booleans.
    fn add_json(&mut self, body: &[u8]) -> Result<(), ApiError> {
        let object: BTreeMap<String, &serde_json::value::RawValue> =
            serde_json::from_slice(body)
                .map_err(|e| ApiError::invalid("body", format!("is not a JSON object ({e})")))?;
        for (name, raw) in object {
            let text = raw.get();
            let value = match text.as_bytes().first() {
                // RawValue checks the syntax only: a lone surrogate (`"\ud800"`) is well-formed
                // JSON that no Rust string can hold.
                Some(b'"') => serde_json::from_str::<String>(text).map_err(|_| {
                    ApiError::invalid(field_name(&name), "is not a valid Unicode string")
                })?,
                Some(b'-' | b'0'..=b'9') | Some(b't' | b'f') => text.to_string(),
                Some(b'n') => continue,
                _ => {
                    return Err(ApiError::invalid(
                        field_name(&name),
                        "must be a string or a number",
                    ));
                }
            };
            self.insert(name, value)?;
        }
        Ok(())
    }

    /// The named parameter, if present and non-empty, at most `max_len` characters.
    pub fn text(&self, name: &'static str, max_len: usize) -> Result<Option<&str>, ApiError> {
        match self.0.get(name).map(String::as_str) {
            None | Some("") => Ok(None),
            Some(value) if value.chars().count() > max_len => Err(ApiError::invalid(
                name,
                format!("longer than {max_len} characters"),
            )),
            Some(value) if value.chars().any(char::is_control) => Err(ApiError::invalid(
                name,
                "must not contain control characters",
            )),
            Some(value) => Ok(Some(value)),
        }
    }

    /// Like [`Params::text`], but refusing absence.
    pub fn required(&self, name: &'static str, max_len: usize) -> Result<&str, ApiError> {
        self.text(name, max_len)?
            .ok_or_else(|| ApiError::invalid(name, "is required"))
    }
}

/// The name to report for a parameter: one of the names routes read, or `parameter` for a
/// name no route knows (error messages never echo arbitrary request text).
fn field_name(name: &str) -> &'static str {
    const KNOWN: [&str; 16] = [
        "click_id",
        "txn_id",
        "event",
        "amount",
        "currency",
        "token",
        "sub1",
        "sub2",
        "sub3",
        "sub4",
        "sub5",
        "adv_sub",
        "status",
        "offer_id",
        "affiliate_id",
        "link",
    ];
    KNOWN
        .iter()
        .find(|k| **k == name)
        .copied()
        .unwrap_or("parameter")
}

fn decode_form_component(raw: &[u8]) -> Result<String, std::str::Utf8Error> {
    let plus_as_space: Vec<u8> = raw
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    let decoded: Vec<u8> = percent_encoding::percent_decode(&plus_as_space).collect();
    String::from_utf8(decoded).map_err(|e| e.utf8_error())
}

/// The caller's IP address as API Gateway saw it (the local runner supplies the same context).
pub fn client_ip(request: &Request) -> Option<IpAddr> {
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(context) => context.http.source_ip.as_deref()?.parse().ok(),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// A path parameter of the route, as API Gateway (or the local runner) extracted it.
pub fn path_param(request: &Request, name: &str) -> Option<String> {
    request
        .path_parameters_ref()
        .and_then(|p| p.first(name))
        .map(str::to_string)
}

/// A JSON object read field by field, for bodies holding secrets (account numbers, TINs):
/// every error names the field and none echoes a value, as a typed parse's might.
pub struct Fields(serde_json::Map<String, serde_json::Value>);

impl Fields {
    /// The body's fields, refusing anything but an object of `known` fields.
    pub fn of(body: serde_json::Value, known: &[&str], what: &str) -> Result<Self, ApiError> {
        let serde_json::Value::Object(fields) = body else {
            return Err(ApiError::invalid("body", "must be a JSON object"));
        };
        if let Some(unknown) = fields.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(ApiError::invalid_at(
                unknown.clone(),
                format!("is not a field of {what}"),
            ));
        }
        Ok(Self(fields))
    }

    pub fn get(&self, name: &str) -> Option<&serde_json::Value> {
        self.0.get(name)
    }

    /// A required string.
    pub fn text(&self, name: &'static str) -> Result<String, ApiError> {
        match self.0.get(name) {
            Some(serde_json::Value::String(text)) => Ok(text.clone()),
            Some(_) => Err(ApiError::invalid(name, "must be a string")),
            None => Err(ApiError::invalid(name, "is required")),
        }
    }

    /// An optional string (absent or null is none).
    pub fn optional_text(&self, name: &'static str) -> Result<Option<String>, ApiError> {
        match self.0.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            _ => self.text(name).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str) -> Request {
        lambda_http::http::Request::builder()
            .uri(uri)
            .body(Body::Empty)
            .unwrap()
    }

    #[test]
    fn query_parameters_are_decoded_strictly() {
        let params = Params::from_query(&request("/p?a=1+2%2B3&b=%C3%A9&c=&c2")).unwrap();
        assert_eq!(params.text("amount", 10).unwrap(), None);
        assert_eq!(params.0["a"], "1 2+3");
        assert_eq!(params.0["b"], "é");
        let err = Params::from_query(&request("/p?sub1=%FF")).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("sub1"));
        let err = Params::from_query(&request("/p?sub1=a&sub1=b")).unwrap_err();
        assert_eq!(
            (err.field.as_deref(), err.message.as_str()),
            (Some("sub1"), "sub1: given more than once")
        );
    }

    #[test]
    fn oversized_and_control_characters_are_refused() {
        let long = format!("/p?sub1={}", "x".repeat(MAX_QUERY_BYTES));
        assert_eq!(
            Params::from_query(&request(&long)).unwrap_err().status,
            StatusCode::URI_TOO_LONG
        );
        let params = Params::from_query(&request("/p?txn_id=a%00b&sub1=xxxxxx")).unwrap();
        assert_eq!(
            params.text("txn_id", 10).unwrap_err().field.as_deref(),
            Some("txn_id")
        );
        assert_eq!(
            params.text("sub1", 5).unwrap_err().message,
            "sub1: longer than 5 characters"
        );
    }

    #[test]
    fn a_lone_surrogate_is_refused_naming_its_field() {
        let mut params = Params::default();
        let error = params.add_json(br#"{"click_id": "\ud800x"}"#).unwrap_err();
        assert_eq!(
            (error.status, error.field.as_deref()),
            (StatusCode::BAD_REQUEST, Some("click_id"))
        );
    }

    #[test]
    fn json_numbers_keep_their_exact_text() {
        let mut params = Params::default();
        params
            .add_json(br#"{"amount": 49.10, "click_id": "X", "n": null}"#)
            .unwrap();
        assert_eq!(params.0["amount"], "49.10");
        assert!(!params.0.contains_key("n"));
        assert!(params.add_json(br#"{"event": [1]}"#).is_err());
    }
}
