//! The dashboard's way to the services: the API itself, called in process.
//!
//! A page never reaches a service or a repository directly. It sends the API request a program
//! would send, with the browser's own session cookie, address and user-agent (and, for a
//! form, the form's CSRF token as `X-CSRF-Token`), through [`routes::respond`]: the same
//! routing, authentication, `Access` rules, tenant isolation and validation as `/api/`. A page
//! and a route can therefore never disagree about who may do what.

use lambda_http::http::{HeaderValue, Method, StatusCode, header};
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt};
use serde_json::Value;

use crate::app::App;
use crate::caller::{CSRF_HEADER, SESSION_COOKIE, cookie};
use crate::http::{Request, Response};
use crate::routes;

/// What the API refused, in its own error shape: the page shows the message beside the field.
#[derive(Clone, Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub code: String,
    /// The field at fault, as the API names it (`caps.daily`, `email`…).
    pub field: Option<String>,
    pub message: String,
}

impl Refusal {
    pub fn of(response: &Response) -> Self {
        let status = response.status();
        let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap_or_default();
        let error = &body["error"];
        Self {
            status,
            code: error["code"].as_str().unwrap_or("error").to_string(),
            field: error["field"].as_str().map(str::to_string),
            message: error["message"]
                .as_str()
                .unwrap_or("the request failed")
                .to_string(),
        }
    }

    /// A refusal the dashboard itself makes, in the API's shape.
    pub fn new(status: StatusCode, field: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: "invalid_field".into(),
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// The message for `field`, if this refusal is about it.
    pub fn about(&self, field: &str) -> Option<&str> {
        let named = self.field.as_deref()?;
        (named == field || named.starts_with(&format!("{field}."))).then_some(self.message.as_str())
    }
}

fn json_body(value: Value) -> (&'static str, Body) {
    ("application/json", Body::Text(value.to_string()))
}

/// The browser's side of one page request, replayed on every API call the page makes.
#[derive(Clone)]
pub struct Api {
    app: App,
    session: Option<String>,
    csrf: Option<String>,
    user_agent: Option<HeaderValue>,
    context: Option<RequestContext>,
}

impl Api {
    /// The browser's session cookie, address and user-agent, from the page request.
    pub fn of(app: &App, request: &Request) -> Self {
        Self {
            app: app.clone(),
            session: cookie(request, SESSION_COOKIE).map(str::to_string),
            csrf: None,
            user_agent: request.headers().get(header::USER_AGENT).cloned(),
            context: request.request_context_ref().cloned(),
        }
    }

    /// The same, with the CSRF token the submitted form carried.
    pub fn with_csrf(mut self, token: Option<String>) -> Self {
        self.csrf = token;
        self
    }

    pub fn has_session(&self) -> bool {
        self.session.is_some()
    }

    /// `GET path` (with its query), answering the JSON.
    pub async fn get(&self, path: &str) -> Result<Value, Refusal> {
        let response = self.call(Method::GET, path, None).await;
        Self::json(&response)
    }

    /// `GET path`, answering the array under `key` of its JSON (empty when absent).
    pub async fn list(&self, path: &str, key: &str) -> Result<Vec<Value>, Refusal> {
        let mut answer = self.get(path).await?;
        Ok(match answer[key].take() {
            Value::Array(items) => items,
            _ => Vec::new(),
        })
    }

    /// `GET path`, answering the response as it is (a CSV, a file).
    pub async fn raw(&self, path: &str) -> Result<Response, Refusal> {
        let response = self.call(Method::GET, path, None).await;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(Refusal::of(&response))
        }
    }

    /// A state-changing call with a JSON body (or none).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Refusal> {
        let response = self.call(method, path, body.map(json_body)).await;
        Self::json(&response)
    }

    /// A state-changing call with a body of another type (a PDF).
    pub async fn send_bytes(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<Value, Refusal> {
        let response = self
            .call(method, path, Some((content_type, Body::Binary(bytes))))
            .await;
        Self::json(&response)
    }

    /// A state-changing call, answering the whole response (for `Set-Cookie`).
    pub async fn send_raw(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        self.call(method, path, body.map(json_body)).await
    }

    fn json(response: &Response) -> Result<Value, Refusal> {
        if !response.status().is_success() {
            return Err(Refusal::of(response));
        }
        if response.body().as_ref().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(response.body().as_ref()).map_err(|_| Refusal {
            status: StatusCode::BAD_GATEWAY,
            code: "internal".into(),
            field: None,
            message: "the API answered something that is not JSON".into(),
        })
    }

    async fn call(&self, method: Method, path: &str, body: Option<(&str, Body)>) -> Response {
        let mut builder = lambda_http::http::Request::builder()
            .method(method)
            .uri(path);
        if let Some(session) = &self.session {
            builder = builder.header(header::COOKIE, format!("{SESSION_COOKIE}={session}"));
        }
        if let Some(csrf) = &self.csrf {
            builder = builder.header(CSRF_HEADER, csrf.as_str());
        }
        if let Some(user_agent) = &self.user_agent {
            builder = builder.header(header::USER_AGENT, user_agent.clone());
        }
        let body = match body {
            Some((content_type, body)) => {
                builder = builder.header(header::CONTENT_TYPE, content_type);
                body
            }
            None => Body::Empty,
        };
        let request = match builder.body(body) {
            Ok(request) => request,
            // Only a path with characters a URI cannot hold gets here; pages build paths from
            // ids and encoded parameters.
            Err(_) => {
                return crate::http::ApiError::invalid("path", "is not a valid path")
                    .into_response("-");
            }
        };
        let request = match &self.context {
            Some(context) => request.with_request_context(context.clone()),
            None => request,
        };
        routes::respond(self.app.clone(), request, None).await
    }
}
