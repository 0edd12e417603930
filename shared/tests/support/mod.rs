//! What the route-level integration tests share: requests as API Gateway delivers them to the
//! handlers, the demo accounts' sign-ins, and JSON answers.
#![allow(dead_code)] // each test binary uses its own part

use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt};
use serde_json::{Value, json};
use shared::App;
use shared::domain::email::EmailAddress;
use shared::http::Response;
use shared::ports::ManualClock;
use shared::routes;
use shared::seed::{Demo, seed_demo};

/// A fresh embedded platform in a temporary folder, on a manual clock, with the demo seeded.
pub struct Platform {
    pub app: App,
    pub clock: std::sync::Arc<ManualClock>,
    pub demo: Demo,
    pub data: tempfile::TempDir,
}

/// The platform, its clock set to `at` (epoch seconds).
pub async fn platform(at: i64) -> Platform {
    let data = tempfile::tempdir().unwrap();
    let clock = std::sync::Arc::new(ManualClock::at(jiff::Timestamp::from_second(at).unwrap()));
    let sender = EmailAddress::parse("no-reply@leadsrefer.local").unwrap();
    let app = App::embedded(data.path(), clock.clone(), sender).unwrap();
    let (demo, _) = seed_demo(&app).await.unwrap();
    Platform {
        app,
        clock,
        demo,
        data,
    }
}

pub const BROWSER: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";

/// A request from `ip` through the route table, with a browser's user-agent unless `headers`
/// give one, and a JSON body if any.
pub async fn send(
    app: &App,
    method: &str,
    uri: &str,
    ip: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Response {
    let mut builder = lambda_http::http::Request::builder()
        .method(method)
        .uri(uri);
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("user-agent"))
    {
        builder = builder.header("user-agent", BROWSER);
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.http.source_ip = Some(ip.into());
    let body = match body {
        Some(json) => {
            builder = builder.header("content-type", "application/json");
            Body::Text(json.to_string())
        }
        None => Body::Empty,
    };
    let request = builder
        .body(body)
        .unwrap()
        .with_request_context(RequestContext::ApiGatewayV2(context));
    routes::respond(app.clone(), request, None).await
}

/// The session cookie and CSRF token of the demo account of `role`.
pub async fn sign_in(app: &App, demo: &Demo, role: &str) -> (String, String) {
    let (_, email, password) = demo
        .credentials
        .iter()
        .find(|(r, _, _)| serde_json::to_value(r).unwrap() == role)
        .unwrap();
    let response = send(
        app,
        "POST",
        "/api/auth/sign-in",
        "192.0.2.1",
        &[],
        Some(json!({"email": email.as_str(), "password": password.expose()})),
    )
    .await;
    assert_eq!(response.status(), 200, "{:?}", response.body());
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    (
        cookie,
        body(&response)["csrf_token"].as_str().unwrap().to_string(),
    )
}

/// A JSON answer.
pub fn body(response: &Response) -> Value {
    match response.body() {
        Body::Text(text) => serde_json::from_str(text).unwrap(),
        other => panic!("not text: {other:?}"),
    }
}
