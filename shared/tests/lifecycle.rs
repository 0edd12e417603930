//! A conversion's life after it is recorded, through the real routes: approval (with and without
//! a hold), rejection, reversal, the maturation job, racing decisions and bulk decisions. After
//! every step each balance equals the sum of its entries and the ledger is balanced.

use std::sync::Arc;

use jiff::SignedDuration;
use serde_json::{Value, json};
use shared::App;
use shared::domain::ledger::Account;
use shared::http::Response;
use shared::ports::ManualClock;
use shared::seed::Demo;
use support::body;

mod support;

struct World {
    app: App,
    clock: Arc<ManualClock>,
    demo: Demo,
}

impl World {
    async fn new(hold_days: u32) -> (Self, tempfile::TempDir) {
        let support::Platform {
            app,
            clock,
            demo,
            data,
        } = support::platform(1_782_000_000).await;
        let mut offer = app.store.offer(demo.offer_id).await.unwrap().unwrap();
        offer.hold_days = hold_days;
        app.store.save_offer(&offer).await.unwrap();
        (Self { app, clock, demo }, data)
    }

    async fn send(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Response {
        support::send(&self.app, method, uri, "203.0.113.9", headers, body).await
    }

    async fn sign_in(&self, role: &str) -> (String, String) {
        support::sign_in(&self.app, &self.demo, role).await
    }

    /// A click and its conversion; answers the conversion id.
    async fn conversion(&self, txn: &str) -> String {
        let click = self
            .send("GET", &format!("/c/{}", self.demo.link), &[], None)
            .await;
        let click_id = support::click_id(click.headers()["location"].to_str().unwrap());
        let response = self
            .send(
                "GET",
                &format!(
                    "/postback?click_id={click_id}&txn_id={txn}&token={}",
                    self.demo.postback_token.expose()
                ),
                &[],
                None,
            )
            .await;
        assert_eq!(response.status(), 201);
        body(&response)["conversion"]["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn decide(&self, who: &(String, String), id: &str, status: &str) -> Response {
        self.send(
            "PUT",
            &format!("/api/conversions/{id}/status"),
            &[("cookie", &who.0), ("x-csrf-token", &who.1)],
            Some(json!({"status": status, "reason": "checked against orders"})),
        )
        .await
    }

    /// The demo parties' balances, each checked against its entries: advertiser receivable,
    /// affiliate pending, held, payable, platform margin.
    async fn balances(&self) -> [i64; 5] {
        let accounts = [
            Account::advertiser_receivable(self.demo.advertiser_id),
            Account::affiliate_pending(self.demo.affiliate_id),
            Account::affiliate_held(self.demo.affiliate_id),
            Account::affiliate_payable(self.demo.affiliate_id),
            Account::platform_margin(),
        ];
        let mut balances = [0; 5];
        for (balance, account) in balances.iter_mut().zip(&accounts) {
            *balance = support::checked_balance(&self.app, account).await;
        }
        assert_eq!(balances.iter().sum::<i64>(), 0, "the ledger balances");
        balances
    }

    async fn run(&self, job: &str) -> String {
        (shared::jobs::find(job).unwrap().run)(self.app.clone())
            .await
            .unwrap()
    }
}

// The demo offer pays $25.00 revenue and $18.00 payout per conversion.
const RECORDED: [i64; 5] = [2500, -1800, 0, 0, -700];

#[tokio::test]
async fn approval_holds_earnings_until_the_maturation_job_makes_them_payable_once() {
    let (w, _data) = World::new(3).await;
    let advertiser = w.sign_in("advertiser").await;
    let id = w.conversion("A-1").await;
    assert_eq!(w.balances().await, RECORDED);

    let approved = w.decide(&advertiser, &id, "approved").await;
    assert_eq!(approved.status(), 200, "{:?}", approved.body());
    assert_eq!(body(&approved)["status"], "approved");
    assert_eq!(w.balances().await, [2500, 0, -1800, 0, -700], "held");
    let again = w.decide(&advertiser, &id, "approved").await;
    assert_eq!(again.status(), 200, "deciding what is so changes nothing");
    assert_eq!(w.balances().await, [2500, 0, -1800, 0, -700]);

    assert!(
        w.run("maturation").await.starts_with("0 "),
        "the hold is not over"
    );
    w.clock.advance(SignedDuration::from_hours(72));
    assert!(w.run("maturation").await.starts_with("1 "));
    assert_eq!(w.balances().await, [2500, 0, 0, -1800, -700], "payable");
    assert!(w.run("maturation").await.starts_with("0 "), "once");
    assert_eq!(w.balances().await, [2500, 0, 0, -1800, -700]);

    // A chargeback after it became payable takes it back from the payable balance.
    let advertiser = w.sign_in("advertiser").await;
    let reversed = w.decide(&advertiser, &id, "reversed").await;
    assert_eq!(reversed.status(), 200);
    assert_eq!(w.balances().await, [0; 5]);
    let conversion = w
        .app
        .store
        .conversion(shared::domain::ids::ConversionId::parse(&id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(conversion.reason.as_deref(), Some("checked against orders"));
}

#[tokio::test]
async fn without_a_hold_approved_earnings_are_payable_at_once_and_a_reversal_of_held_ones_undoes_them()
 {
    let (w, _data) = World::new(0).await;
    let admin = w.sign_in("admin").await;
    let first = w.conversion("B-1").await;
    assert_eq!(w.decide(&admin, &first, "approved").await.status(), 200);
    assert_eq!(w.balances().await, [2500, 0, 0, -1800, -700]);

    let (held, _data) = World::new(30).await;
    let admin = held.sign_in("admin").await;
    let id = held.conversion("B-2").await;
    assert_eq!(held.decide(&admin, &id, "approved").await.status(), 200);
    assert_eq!(held.decide(&admin, &id, "reversed").await.status(), 200);
    assert_eq!(held.balances().await, [0; 5]);
    held.clock.advance(SignedDuration::from_hours(24 * 31));
    assert!(
        held.run("maturation").await.starts_with("0 "),
        "a reversed conversion never matures"
    );
    assert_eq!(held.balances().await, [0; 5]);
}

#[tokio::test]
async fn rejection_undoes_the_commission_and_impossible_steps_are_refused() {
    let (w, _data) = World::new(0).await;
    let advertiser = w.sign_in("advertiser").await;
    let id = w.conversion("C-1").await;
    let rejected = w.decide(&advertiser, &id, "rejected").await;
    assert_eq!(rejected.status(), 200);
    assert_eq!(w.balances().await, [0; 5]);
    for (status, code) in [("approved", 409), ("reversed", 409), ("pending", 400)] {
        let response = w.decide(&advertiser, &id, status).await;
        assert_eq!(response.status(), code, "{status}");
        assert_eq!(body(&response)["error"]["field"], "status");
    }
    assert_eq!(w.balances().await, [0; 5], "nothing changed");

    // The report counts what the conversion became.
    let report = w
        .send(
            "GET",
            &format!(
                "/api/reports?advertiser_id={}&from=2026-06-01&to=2026-06-30",
                w.demo.advertiser_id
            ),
            &[("cookie", &w.sign_in("admin").await.0)],
            None,
        )
        .await;
    let totals = &body(&report)["totals"][0];
    assert_eq!(
        (
            totals["conversions"].as_i64(),
            totals["rejected_conversions"].as_i64()
        ),
        (Some(0), Some(1))
    );
    assert_eq!(totals["revenue"], "0.00");

    // Others' conversions are not theirs to decide; affiliates decide none.
    let other = w.conversion("C-2").await;
    let affiliate = w.sign_in("affiliate").await;
    assert_eq!(w.decide(&affiliate, &other, "approved").await.status(), 403);
    let unknown = "01KB4ZJ6Y0E5V2M3N4P5Q6R7S8";
    assert_eq!(
        w.decide(&advertiser, unknown, "approved").await.status(),
        404
    );
}

#[tokio::test]
async fn racing_decisions_apply_exactly_one() {
    let (w, _data) = World::new(0).await;
    let w = Arc::new(w);
    let advertiser = w.sign_in("advertiser").await;
    let id = w.conversion("D-1").await;
    let mut racers = Vec::new();
    for n in 0..12 {
        let (w, advertiser, id) = (w.clone(), advertiser.clone(), id.clone());
        let status = if n % 2 == 0 { "approved" } else { "rejected" };
        racers.push(tokio::spawn(async move {
            w.decide(&advertiser, &id, status).await.status().as_u16()
        }));
    }
    let mut codes = Vec::new();
    for racer in racers {
        codes.push(racer.await.unwrap());
    }
    assert!(codes.iter().all(|c| [200, 409].contains(c)), "{codes:?}");
    let balances = w.balances().await;
    assert!(
        balances == [2500, 0, 0, -1800, -700] || balances == [0; 5],
        "one decision applied: {balances:?}"
    );
}

#[tokio::test]
async fn bulk_decisions_answer_each_conversion_and_queue_the_affiliates_postbacks() {
    let (w, _data) = World::new(0).await;
    let affiliate = w.sign_in("affiliate").await;
    let set = w
        .send(
            "PUT",
            &format!("/api/offers/{}/postback-url", w.demo.offer_id),
            &[("cookie", &affiliate.0), ("x-csrf-token", &affiliate.1)],
            Some(json!({"url": "https://publisher.example/pb?c={click_id}&s={status}"})),
        )
        .await;
    assert_eq!(set.status(), 200, "{:?}", set.body());
    let ids = [w.conversion("E-1").await, w.conversion("E-2").await];
    let advertiser = w.sign_in("advertiser").await;
    assert_eq!(
        w.decide(&advertiser, &ids[1], "rejected").await.status(),
        200
    );
    let response = w
        .send(
            "POST",
            "/api/conversions/status",
            &[("cookie", &advertiser.0), ("x-csrf-token", &advertiser.1)],
            Some(json!({"ids": [ids[0], ids[1], "01KB4ZJ6Y0E5V2M3N4P5Q6R7S8"], "status": "approved"})),
        )
        .await;
    assert_eq!(response.status(), 200, "{:?}", response.body());
    let results = body(&response)["results"].clone();
    assert_eq!(results[0]["status"], "approved");
    assert!(results[1]["error"].as_str().unwrap().contains("rejected"));
    assert_eq!(results[2]["error"], "no such conversion");
    assert_eq!(w.balances().await, [2500, 0, 0, -1800, -700]);

    // Each status change queued its own postback to the affiliate.
    let queued = shared::dispatch::queued(&w.app).await.unwrap();
    let mut ids_and_status: Vec<String> = queued.iter().map(|d| d.id.clone()).collect();
    ids_and_status.sort();
    let mut expected = vec![
        format!("{}:pending", ids[0]),
        format!("{}:approved", ids[0]),
        format!("{}:pending", ids[1]),
        format!("{}:rejected", ids[1]),
    ];
    expected.sort();
    assert_eq!(ids_and_status, expected);

    for bad in [
        json!({"ids": [], "status": "approved"}),
        json!({"ids": ["x"], "status": "approved"}),
    ] {
        let response = w
            .send(
                "POST",
                "/api/conversions/status",
                &[("cookie", &advertiser.0), ("x-csrf-token", &advertiser.1)],
                Some(bad),
            )
            .await;
        assert_eq!(response.status(), 400);
        assert_eq!(body(&response)["error"]["field"], "ids");
    }
}

#[tokio::test]
async fn automatic_approval_waits_for_the_review_window_and_never_takes_flagged_or_manual_ones() {
    let (w, _data) = World::new(0).await;
    let mut offer = w.app.store.offer(w.demo.offer_id).await.unwrap().unwrap();
    offer.review_days = 2;
    w.app.store.save_offer(&offer).await.unwrap();
    let clean = w.conversion("F-1").await;
    // A conversion a second after its click is flagged `too_fast`: it waits for a person.
    offer.min_conversion_seconds = 3600;
    w.app.store.save_offer(&offer).await.unwrap();
    let flagged = w.conversion("F-2").await;
    offer.min_conversion_seconds = 0;
    offer.approval = shared::domain::offer::ApprovalMode::Manual;
    w.app.store.save_offer(&offer).await.unwrap();
    let manual = w.conversion("F-3").await;

    w.clock.advance(SignedDuration::from_hours(24));
    assert!(
        w.run("maturation").await.starts_with("0 "),
        "the window is not over"
    );
    w.clock.advance(SignedDuration::from_hours(24));
    assert!(w.run("maturation").await.starts_with("1 "));
    assert!(w.run("maturation").await.starts_with("0 "), "once");
    let status = |id: &str| {
        let id = shared::domain::ids::ConversionId::parse(id).unwrap();
        let store = w.app.store.clone();
        async move { store.conversion(id).await.unwrap().unwrap() }
    };
    let approved = status(&clean).await;
    assert_eq!(
        approved.status,
        shared::domain::tracking::ConversionStatus::Approved
    );
    assert_eq!(
        approved.reason.as_deref(),
        Some("approved automatically after the review window")
    );
    for id in [&flagged, &manual] {
        assert_eq!(
            status(id).await.status,
            shared::domain::tracking::ConversionStatus::Pending,
            "{id}"
        );
    }
    assert_eq!(w.balances().await, [7500, -3600, 0, -1800, -2100]);
}
