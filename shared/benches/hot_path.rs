//! The product's hot paths in process, through `routes::respond` exactly as Lambda and the
//! local runner call them, on the embedded adapters in a temporary folder:
//! - `click`: `GET /c/{link}` (records the click, 302);
//! - `postback_new`: a new conversion (conversion, dedupe key, ledger, balances in one write);
//! - `postback_repeat`: the same postback again (answered with the original).
//!
//! `cargo bench -p shared --bench hot_path`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt};
use shared::App;
use shared::domain::email::EmailAddress;
use shared::ports::SystemClock;
use shared::routes::respond;

fn request(uri: &str) -> lambda_http::Request {
    request_from(uri, "203.0.113.7".into())
}

/// A request from `ip`: clicks come from many visitors, as real traffic does.
fn request_from(uri: &str, ip: String) -> lambda_http::Request {
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.http.source_ip = Some(ip);
    lambda_http::http::Request::builder()
        .uri(uri)
        .header("user-agent", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")
        .body(Body::Empty)
        .unwrap()
        .with_request_context(RequestContext::ApiGatewayV2(context))
}

fn hot_path(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let data = tempfile::tempdir().unwrap();
    let app = App::embedded(
        data.path(),
        Arc::new(SystemClock),
        EmailAddress::parse("no-reply@bench.test").unwrap(),
    )
    .unwrap();
    let demo = runtime.block_on(shared::seed::seed_demo(&app)).unwrap().0;
    let click_uri = format!("/c/{}?sub1=bench", demo.link);
    let click_id = runtime.block_on(async {
        let response = respond(app.clone(), request(&click_uri), None).await;
        let cookie = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .to_string();
        cookie.split(['=', ';']).nth(1).unwrap().to_string()
    });
    let token = demo.postback_token.expose().clone();

    let agent = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
    let visitors = AtomicU64::new(0);
    c.bench_function("enrich", |b| {
        b.iter(|| {
            let n = visitors.fetch_add(1, Ordering::Relaxed);
            let ip = std::net::Ipv4Addr::from(0x0A00_0000 | (n as u32 & 0x00FF_FFFF)).into();
            let agent = shared::domain::agent::classify(Some(agent));
            let network = app.geo.lookup(ip);
            (agent, app.pseudonymizer.visitor(ip, network.country))
        })
    });

    c.bench_function("click", |b| {
        b.to_async(&runtime).iter(|| async {
            let n = visitors.fetch_add(1, Ordering::Relaxed);
            let ip = std::net::Ipv4Addr::from(0x0A00_0000 | (n as u32 & 0x00FF_FFFF));
            let response =
                respond(app.clone(), request_from(&click_uri, ip.to_string()), None).await;
            assert_eq!(response.status(), 302);
        })
    });

    let counter = AtomicU64::new(0);
    c.bench_function("postback_new", |b| {
        b.to_async(&runtime).iter(|| async {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            let uri = format!("/postback?click_id={click_id}&txn_id=bench-{n}&token={token}");
            let response = respond(app.clone(), request(&uri), None).await;
            assert_eq!(response.status(), 201);
        })
    });

    let repeat = format!("/postback?click_id={click_id}&txn_id=bench-0&token={token}");
    c.bench_function("postback_repeat", |b| {
        b.to_async(&runtime).iter(|| async {
            let response = respond(app.clone(), request(&repeat), None).await;
            assert_eq!(response.status(), 200);
        })
    });
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
