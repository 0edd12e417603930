//! The dashboard through `web::respond`, as the local runner and the `web` function call it:
//! what it refuses (a form without its token, another tenant's page, a role's page to another
//! role), what every answer carries (the security headers), and that a refused form comes back
//! with the API's message beside the field. infra/browser drives the same pages in Chromium.

use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt};
use shared::http::Response;
use support::{BROWSER, platform, sign_in};

mod support;

async fn page(
    app: &shared::App,
    method: &str,
    uri: &str,
    cookie: Option<&str>,
    form: Option<&str>,
) -> Response {
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.http.source_ip = Some("192.0.2.44".into());
    let mut builder = lambda_http::http::Request::builder()
        .method(method)
        .uri(uri)
        .header("user-agent", BROWSER);
    if let Some(cookie) = cookie {
        builder = builder.header("cookie", cookie);
    }
    let body = match form {
        Some(form) => {
            builder = builder.header("content-type", "application/x-www-form-urlencoded");
            Body::Text(form.to_string())
        }
        None => Body::Empty,
    };
    let request = builder
        .body(body)
        .unwrap()
        .with_request_context(RequestContext::ApiGatewayV2(context));
    shared::web::respond(app.clone(), request).await
}

fn text(response: &Response) -> String {
    String::from_utf8_lossy(response.body().as_ref()).into_owned()
}

#[tokio::test]
async fn every_answer_carries_the_security_headers_and_signed_out_visitors_sign_in() {
    let world = platform(support::at("2026-06-02T12:00:00Z")).await;
    let home = page(&world.app, "GET", "/app", None, None).await;
    assert_eq!(home.status(), 303);
    assert_eq!(home.headers()["location"], "/app/sign-in?next=%2Fapp");
    let sign_in = page(&world.app, "GET", "/app/sign-in", None, None).await;
    for response in [&home, &sign_in] {
        let policy = response.headers()["content-security-policy"]
            .to_str()
            .unwrap();
        assert!(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"));
        assert!(!policy.contains("unsafe-inline"));
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        assert_eq!(response.headers()["referrer-policy"], "same-origin");
    }
    let form_cookie = sign_in.headers()["set-cookie"].to_str().unwrap();
    assert!(form_cookie.starts_with("__Host-form=") && form_cookie.contains("HttpOnly"));
}

#[tokio::test]
async fn forms_without_their_token_are_refused_and_change_nothing() {
    let world = platform(support::at("2026-06-02T12:00:00Z")).await;
    let (cookie, csrf) = sign_in(&world.app, &world.demo, "advertiser").await;
    let action = format!("/app/offers/{}/status", world.demo.offer_id);
    for form in [
        "status=paused".to_string(),
        format!("status=paused&csrf={}", "0".repeat(csrf.len())),
    ] {
        let refused = page(&world.app, "POST", &action, Some(&cookie), Some(&form)).await;
        assert_eq!(refused.status(), 403, "{}", text(&refused));
    }
    let offer = world
        .app
        .store
        .offer(world.demo.offer_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(offer.status, shared::domain::offer::OfferStatus::Active);

    let paused = page(
        &world.app,
        "POST",
        &action,
        Some(&cookie),
        Some(&format!("status=paused&csrf={csrf}")),
    )
    .await;
    assert_eq!(paused.status(), 303, "{}", text(&paused));
    let offer = world
        .app
        .store
        .offer(world.demo.offer_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(offer.status, shared::domain::offer::OfferStatus::Paused);

    // Signed out, a form must match the visitor's own form cookie.
    let login = format!(
        "email=advertiser%40demo.leadsrefer.local&password=x&csrf={}",
        "a".repeat(64)
    );
    let forged = page(&world.app, "POST", "/app/sign-in", None, Some(&login)).await;
    assert_eq!(forged.status(), 403);
}

#[tokio::test]
async fn another_tenants_pages_and_another_roles_pages_are_not_found() {
    let world = platform(support::at("2026-06-02T12:00:00Z")).await;
    let (affiliate, _) = sign_in(&world.app, &world.demo, "affiliate").await;
    let (admin, admin_csrf) = sign_in(&world.app, &world.demo, "admin").await;
    // A second advertiser, approved.
    let registered = support::send(
        &world.app,
        "POST",
        "/api/auth/register",
        "192.0.2.5",
        &[],
        Some(serde_json::json!({"email": "other@shop.example", "name": "Other", "password": "a long secret passphrase", "role": "advertiser", "adult": true})),
    )
    .await;
    let other_id = support::body(&registered)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let approved = page(
        &world.app,
        "POST",
        &format!("/app/admin/accounts/{other_id}/status"),
        Some(&admin),
        Some(&format!("status=active&csrf={admin_csrf}")),
    )
    .await;
    assert_eq!(approved.status(), 303, "{}", text(&approved));
    let signed_in = support::send(
        &world.app,
        "POST",
        "/api/auth/sign-in",
        "192.0.2.5",
        &[],
        Some(serde_json::json!({"email": "other@shop.example", "password": "a long secret passphrase"})),
    )
    .await;
    let other = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();

    let offer = format!("/app/offers/{}", world.demo.offer_id);
    for path in [offer.clone(), format!("{offer}/edit")] {
        let hidden = page(&world.app, "GET", &path, Some(&other), None).await;
        assert_eq!(hidden.status(), 404, "{path}");
        assert!(!text(&hidden).contains("postback"), "{path}");
    }
    let own = page(&world.app, "GET", &offer, Some(&affiliate), None).await;
    assert_eq!(own.status(), 200);
    assert!(!text(&own).contains(world.demo.postback_token.expose().as_str()));
    for path in ["/app/admin/accounts", "/app/offers/new", "/app/admin/audit"] {
        let refused = page(&world.app, "GET", path, Some(&affiliate), None).await;
        assert_eq!(refused.status(), 404, "{path}");
    }
}

#[tokio::test]
async fn a_refused_form_comes_back_with_the_field_named_and_what_was_typed() {
    let world = platform(support::at("2026-06-02T12:00:00Z")).await;
    let (cookie, csrf) = sign_in(&world.app, &world.demo, "advertiser").await;
    let form = format!(
        "csrf={csrf}&name=Shoes+%3Cb%3E&destination=ftp%3A%2F%2Fnope&currency=USD&revenue=10.00&payout=5.00"
    );
    let refused = page(
        &world.app,
        "POST",
        "/app/offers/new",
        Some(&cookie),
        Some(&form),
    )
    .await;
    assert_eq!(refused.status(), 400);
    let html = text(&refused);
    assert!(
        html.contains(r#"id="f-destination" name="destination" type="url" value="ftp://nope""#),
        "{html}"
    );
    assert!(html.contains("aria-invalid=\"true\""));
    assert!(html.contains("Shoes &lt;b&gt;"), "escaped, never markup");
    assert_eq!(
        world
            .app
            .store
            .offers_of_advertiser(world.demo.advertiser_id)
            .await
            .unwrap()
            .len(),
        1
    );
}
