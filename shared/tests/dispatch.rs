//! Affiliate postbacks: queued with their conversion, delivered by the `dispatch` job to a fake
//! affiliate server on loopback that fails on purpose, retried with backoff, dead-lettered and
//! replayed, never sent twice by racing runs, recovered after an interrupted run.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt};
use shared::App;
use shared::dispatch::{self, Delivery, Report};
use shared::domain::email::EmailAddress;
use shared::outbound::Outbound;
use shared::ports::table::{Cond, Key, Query, Write, from_item, to_item};
use shared::ports::{Clock, ManualClock};
use shared::routes::respond;
use shared::seed::{Demo, seed_demo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An affiliate's server: answers each request with the next scripted status (200 when the
/// script runs out), and remembers every request line.
#[derive(Clone, Default)]
struct FakeAffiliate {
    script: Arc<Mutex<VecDeque<u16>>>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl FakeAffiliate {
    async fn start(script: &[u16]) -> (Self, String) {
        let fake = Self {
            script: Arc::new(Mutex::new(script.iter().copied().collect())),
            ..Self::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = fake.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let server = server.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let line = String::from_utf8_lossy(&head)
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    server.requests.lock().unwrap().push(line);
                    let status = server.script.lock().unwrap().pop_front().unwrap_or(200);
                    let answer = format!(
                        "HTTP/1.1 {status} Scripted\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                });
            }
        });
        (fake, base)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

struct Setup {
    app: App,
    clock: Arc<ManualClock>,
    demo: Demo,
    _data: tempfile::TempDir,
}

/// The demo platform, with the demo affiliate's postback URL pointing at `base`.
async fn setup(base: &str) -> Setup {
    let data = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at(
        Timestamp::from_second(1_790_000_000).unwrap(),
    ));
    let app = App::embedded(
        data.path(),
        clock.clone(),
        EmailAddress::parse("no-reply@leadsrefer.test").unwrap(),
    )
    .unwrap();
    let (demo, _) = seed_demo(&app).await.unwrap();
    let mut application = app
        .store
        .application(demo.offer_id, demo.affiliate_id)
        .await
        .unwrap()
        .unwrap();
    application.postback_url = Some(format!(
        "{base}/pb?click={{click_id}}&payout={{payout}}&status={{status}}&s1={{sub1}}"
    ));
    app.store.save_application(&application).await.unwrap();
    // The affiliate's fake server is on loopback: allowed explicitly, as an operator would.
    let mut app = app;
    app.outbound = Outbound::new(true);
    Setup {
        app,
        clock,
        demo,
        _data: data,
    }
}

impl Setup {
    async fn get(&self, uri: &str) -> shared::http::Response {
        let mut context = ApiGatewayV2httpRequestContext::default();
        context.http.source_ip = Some("203.0.113.5".into());
        let request = lambda_http::http::Request::builder()
            .uri(uri)
            .body(Body::Empty)
            .unwrap()
            .with_request_context(RequestContext::ApiGatewayV2(context));
        respond(self.app.clone(), request, None).await
    }

    /// A click and its conversion; answers the click id.
    async fn convert(&self, txn: &str) -> String {
        let click = self
            .get(&format!("/c/{}?sub1=spring", self.demo.link))
            .await;
        let location = click.headers()["location"].to_str().unwrap().to_string();
        let click_id = location
            .split("clickid=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap()
            .to_string();
        let postback = self
            .get(&format!(
                "/postback?click_id={click_id}&txn_id={txn}&token={}",
                self.demo.postback_token.expose()
            ))
            .await;
        assert_eq!(postback.status(), 201);
        click_id
    }

    async fn run(&self) -> Report {
        dispatch::run(&self.app).await.unwrap()
    }
}

#[tokio::test]
async fn a_conversion_is_posted_back_once_with_its_macros_filled() {
    let (fake, base) = FakeAffiliate::start(&[]).await;
    let setup = setup(&base).await;
    let click_id = setup.convert("T1").await;
    assert!(
        fake.requests().is_empty(),
        "nothing is sent before the job runs"
    );
    assert_eq!(
        setup.run().await,
        Report {
            delivered: 1,
            ..Report::default()
        }
    );
    assert_eq!(
        fake.requests(),
        vec![format!(
            "GET /pb?click={click_id}&payout=18.00&status=pending&s1=spring HTTP/1.1"
        )]
    );
    assert_eq!(
        setup.run().await,
        Report::default(),
        "a second run sends nothing"
    );
    assert_eq!(fake.requests().len(), 1);
    assert_eq!(
        dispatch::delivered(&setup.app, setup.demo.affiliate_id)
            .await
            .unwrap()
            .len(),
        1
    );

    // The postback's repeat of the same conversion queues nothing new.
    let again = setup
        .get(&format!(
            "/postback?click_id={click_id}&txn_id=T1&token={}",
            setup.demo.postback_token.expose()
        ))
        .await;
    assert_eq!(again.status(), 200);
    assert_eq!(setup.run().await, Report::default());
}

#[tokio::test]
async fn failures_are_retried_with_backoff_until_delivered() {
    let (fake, base) = FakeAffiliate::start(&[500, 503]).await;
    let setup = setup(&base).await;
    setup.convert("T2").await;
    assert_eq!(setup.run().await.retrying, 1);
    assert_eq!(
        setup.run().await,
        Report::default(),
        "not due again before its backoff"
    );
    setup.clock.advance(SignedDuration::from_secs(30));
    assert_eq!(setup.run().await.retrying, 1, "second failure");
    setup.clock.advance(SignedDuration::from_secs(59));
    assert_eq!(setup.run().await, Report::default(), "the backoff doubled");
    setup.clock.advance(SignedDuration::from_secs(1));
    assert_eq!(setup.run().await.delivered, 1);
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn a_postback_that_keeps_failing_is_dead_lettered_then_replayed_by_an_admin() {
    let (fake, base) = FakeAffiliate::start(&[500; 40]).await;
    let setup = setup(&base).await;
    setup.convert("T3").await;
    let mut dead = 0;
    for _ in 0..40 {
        dead += setup.run().await.dead;
        setup.clock.advance(SignedDuration::from_hours(1));
    }
    assert_eq!(dead, 1);
    let letters = dispatch::dead_letters(&setup.app).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].attempts, dispatch::MAX_ATTEMPTS);
    assert_eq!(letters[0].last_error.as_deref(), Some("answered HTTP 500"));
    let sent = fake.requests().len();
    assert_eq!(
        sent,
        dispatch::MAX_ATTEMPTS as usize,
        "bounded: no call after giving up"
    );

    fake.script.lock().unwrap().clear();
    assert!(dispatch::replay(&setup.app, &letters[0].id).await.unwrap());
    assert!(dispatch::dead_letters(&setup.app).await.unwrap().is_empty());
    assert_eq!(setup.run().await.delivered, 1);
    assert!(
        !dispatch::replay(&setup.app, &letters[0].id).await.unwrap(),
        "nothing left to replay"
    );
}

#[tokio::test]
async fn racing_runs_send_each_postback_once() {
    let (fake, base) = FakeAffiliate::start(&[]).await;
    let setup = setup(&base).await;
    for n in 0..5 {
        setup.convert(&format!("R{n}")).await;
    }
    let (a, b, c) = tokio::join!(setup.run(), setup.run(), setup.run());
    assert_eq!(a.delivered + b.delivered + c.delivered, 5);
    assert_eq!(fake.requests().len(), 5, "five conversions, five calls");
}

#[tokio::test]
async fn a_postback_claimed_by_a_run_that_died_is_sent_by_a_later_run() {
    let (fake, base) = FakeAffiliate::start(&[]).await;
    let setup = setup(&base).await;
    setup.convert("T4").await;
    // A run claims the postback and dies before calling: the queue item moved to in-flight.
    let queued: Vec<_> = (0..dispatch::SHARDS)
        .map(|s| Query::partition(format!("OUTBOX#{s}")))
        .collect::<Vec<_>>();
    let mut found = None;
    for query in queued {
        if let Some(item) = setup
            .app
            .table
            .query(query)
            .await
            .unwrap()
            .items
            .into_iter()
            .next()
        {
            found = Some(item);
        }
    }
    let item = found.expect("the postback is queued");
    let mut delivery: Delivery = from_item(item.clone()).unwrap();
    delivery.lease_until = Some((setup.clock.now() + dispatch::LEASE).as_millisecond());
    setup
        .app
        .table
        .transact(vec![
            Write::Delete {
                key: Key::of(&item).unwrap(),
                cond: Cond::Exists,
            },
            Write::Put {
                item: to_item(&delivery, &Key::new("INFLIGHT", delivery.id.clone())).unwrap(),
                cond: Cond::NotExists,
            },
        ])
        .await
        .unwrap();
    assert_eq!(
        setup.run().await,
        Report::default(),
        "not while its lease holds"
    );
    setup.clock.advance(dispatch::LEASE);
    let report = setup.run().await;
    assert_eq!((report.recovered, report.delivered), (1, 1));
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn private_addresses_are_refused_when_not_allowed() {
    let (fake, base) = FakeAffiliate::start(&[]).await;
    let mut setup = setup(&base).await;
    setup.app.outbound = Outbound::new(false);
    setup.convert("T5").await;
    assert_eq!(setup.run().await.dead, 1, "refused for good, at once");
    assert!(fake.requests().is_empty(), "no connection was made");
    let letters = dispatch::dead_letters(&setup.app).await.unwrap();
    assert!(
        letters[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("not a public address")
    );
}

#[tokio::test]
async fn affiliates_without_a_postback_url_get_none() {
    let (fake, base) = FakeAffiliate::start(&[]).await;
    let setup = setup(&base).await;
    let mut application = setup
        .app
        .store
        .application(setup.demo.offer_id, setup.demo.affiliate_id)
        .await
        .unwrap()
        .unwrap();
    application.postback_url = None;
    setup
        .app
        .store
        .save_application(&application)
        .await
        .unwrap();
    setup.convert("T6").await;
    assert_eq!(setup.run().await, Report::default());
    assert!(fake.requests().is_empty());
}
