//! The dashboard's pages with a busy account: 100,000 clicks and 5,000 conversions over 30 days
//! on the demo offer (sub-ids from 200 sources, four countries, three devices; conversions
//! approved, rejected and pending), then every page of every role opened through
//! `web::respond` exactly as the local runner and the `web` function call it, on the embedded
//! adapters. It prints each page's server time (median and 95th percentile of 40 loads) and
//! its size, with the chart's SVG included (assets are separate files, cached for a year).
//!
//! `cargo bench -p shared --bench dashboard` (results: BENCHMARKS.md)

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::SignedDuration;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt};
use shared::App;
use shared::domain::email::EmailAddress;
use shared::domain::tracking::EventName;
use shared::lifecycle::{Decider, Decision};
use shared::ports::ManualClock;
use shared::store::Recorded;
use shared::tracking::{ClickRequest, Postback, PostbackAuth};

const CLICKS: usize = 100_000;
/// One conversion every this many clicks: 5,000.
const CONVERSION_EVERY: usize = 20;
const LOADS: usize = 40;
const AGENTS: [&str; 3] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
];

fn request(method: &str, uri: &str, cookie: Option<&str>) -> lambda_http::Request {
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.http.source_ip = Some("192.0.2.10".into());
    let mut builder = lambda_http::http::Request::builder()
        .method(method)
        .uri(uri)
        .header("user-agent", AGENTS[0]);
    if let Some(cookie) = cookie {
        builder = builder.header("cookie", cookie);
    }
    builder
        .body(Body::Empty)
        .unwrap()
        .with_request_context(RequestContext::ApiGatewayV2(context))
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(bench());
}

async fn bench() {
    let data = tempfile::tempdir().unwrap();
    let now = jiff::Timestamp::now();
    let start = now - SignedDuration::from_hours(24 * 30);
    let clock = Arc::new(ManualClock::at(start));
    let app = App::embedded(
        data.path(),
        clock.clone(),
        EmailAddress::parse("no-reply@bench.test").unwrap(),
    )
    .unwrap();
    let demo = shared::seed::seed_demo(&app).await.unwrap().0;

    let generating = Instant::now();
    let step = SignedDuration::from_secs(24 * 30 * 3600 / CLICKS as i64);
    let mut conversions = Vec::new();
    for i in 0..CLICKS {
        clock.advance(step);
        let click = shared::tracking::record_click(
            &app,
            &demo.link,
            ClickRequest {
                subs: [Some(format!("source-{}", i % 200)), None, None, None, None],
                ip: std::net::Ipv4Addr::from(0x0A00_0000_u32 + i as u32).into(),
                country: Some(["US", "CA", "GB", "DE"][i % 4].into()),
                region: None,
                user_agent: Some(AGENTS[i % 3]),
                head: false,
            },
        )
        .await
        .unwrap();
        if i % CONVERSION_EVERY == 0 {
            let recorded = shared::tracking::record_conversion(
                &app,
                Postback {
                    click_id: click.click.id,
                    txn_id: Some(format!("BENCH-{i}")),
                    event: EventName::default_event(),
                    amount: None,
                    currency: None,
                    auth: PostbackAuth::Token(demo.postback_token.expose().clone()),
                    client_prefix: None,
                },
            )
            .await
            .unwrap();
            if let Recorded::New(conversion) = recorded {
                conversions.push(conversion.id);
            }
        }
    }
    for (index, id) in conversions.iter().enumerate() {
        let decision = match index % 10 {
            0..=5 => Decision::Approve,
            6 => Decision::Reject,
            _ => continue,
        };
        shared::lifecycle::decide(&app, *id, decision, None, Decider::Admin)
            .await
            .unwrap();
    }
    app.table.flush().await.unwrap();
    clock.set(now);
    eprintln!(
        "generated {CLICKS} clicks and {} conversions in {:.1} s",
        conversions.len(),
        generating.elapsed().as_secs_f64()
    );

    let mut cookies = Vec::new();
    for (role, email, password) in &demo.credentials {
        let mut sign_in = request("POST", "/api/auth/sign-in", None);
        *sign_in.body_mut() = Body::Text(
            serde_json::json!({"email": email.as_str(), "password": password.expose()}).to_string(),
        );
        sign_in
            .headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        let response = shared::routes::respond(app.clone(), sign_in, None).await;
        let cookie = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        cookies.push((role.as_str(), cookie));
    }
    let offer = format!("/app/offers/{}", demo.offer_id);
    let advertiser = format!("advertiser_id={}", demo.advertiser_id);
    let pages: Vec<(&str, String)> = vec![
        ("advertiser", "/app".into()),
        ("advertiser", "/app/offers".into()),
        ("advertiser", offer.clone()),
        ("advertiser", format!("{offer}/edit")),
        ("advertiser", "/app/offers/new".into()),
        ("advertiser", "/app/conversions".into()),
        ("advertiser", "/app/conversions?status=rejected".into()),
        ("advertiser", "/app/reports".into()),
        ("advertiser", "/app/reports?group_by=country".into()),
        ("advertiser", "/app/account".into()),
        ("affiliate", "/app".into()),
        ("affiliate", "/app/offers".into()),
        ("affiliate", offer.clone()),
        ("affiliate", "/app/links".into()),
        ("affiliate", "/app/conversions".into()),
        ("affiliate", "/app/reports?group_by=sub1".into()),
        ("affiliate", "/app/reports?group_by=hour".into()),
        ("affiliate", "/app/payouts".into()),
        ("affiliate", "/app/tax".into()),
        ("admin", "/app".into()),
        ("admin", "/app/admin/accounts".into()),
        ("admin", "/app/admin/flagged".into()),
        ("admin", "/app/admin/postbacks".into()),
        ("admin", "/app/admin/payouts".into()),
        ("admin", "/app/admin/privacy".into()),
        ("admin", "/app/admin/audit".into()),
        ("admin", format!("/app/conversions?{advertiser}")),
        ("admin", format!("/app/reports?{advertiser}&group_by=day")),
        ("admin", "/app/sign-in".into()),
        ("admin", "/app/privacy-policy".into()),
    ];
    println!("| role | page | median | p95 | size |");
    println!("| --- | --- | ---: | ---: | ---: |");
    let mut worst = Duration::ZERO;
    let mut largest = 0;
    for (role, path) in &pages {
        let cookie = cookies
            .iter()
            .find(|(r, _)| r == role)
            .map(|(_, c)| c.as_str());
        let cookie = if path == "/app/sign-in" || path == "/app/privacy-policy" {
            None
        } else {
            cookie
        };
        let mut times = Vec::with_capacity(LOADS);
        let mut size = 0;
        for _ in 0..LOADS + 3 {
            let started = Instant::now();
            let response = shared::web::respond(app.clone(), request("GET", path, cookie)).await;
            times.push(started.elapsed());
            assert_eq!(response.status(), 200, "{role} {path}");
            size = response.body().as_ref().len();
        }
        let mut times = times.split_off(3);
        times.sort();
        let (median, p95) = (times[LOADS / 2], times[LOADS * 95 / 100]);
        worst = worst.max(p95);
        largest = largest.max(size);
        let shown = path.replace(&demo.offer_id.to_string(), "{offer}");
        let shown = shown.replace(&demo.advertiser_id.to_string(), "{advertiser}");
        println!(
            "| {role} | `{shown}` | {:.1} ms | {:.1} ms | {:.1} KB |",
            median.as_secs_f64() * 1e3,
            p95.as_secs_f64() * 1e3,
            size as f64 / 1024.0
        );
    }
    println!(
        "\nslowest p95: {:.1} ms; largest page: {:.1} KB",
        worst.as_secs_f64() * 1e3,
        largest as f64 / 1024.0
    );
}
