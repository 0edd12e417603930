//! Every scheduled job, run on both adapter sets: the embedded ones, and the AWS ones on the
//! emulator that `infra/test` starts. DynamoDB refuses what SQLite takes (an empty key
//! condition made `maturation` fail on every AWS run, so nothing was ever auto-approved or made
//! payable there), so a job is known to run only when it has run on both.

use jiff::SignedDuration;
use shared::App;
use shared::domain::ledger::Account;
use shared::domain::tracking::ConversionStatus;
use shared::ports::ManualClock;
use shared::seed::Demo;

mod support;

const START: &str = "2026-06-02T12:00:00Z";

#[tokio::test]
async fn every_job_runs_on_the_embedded_adapters() {
    let platform = support::platform(support::at(START)).await;
    every_job_runs(&platform.app, &platform.clock, &platform.demo).await;
}

#[tokio::test]
async fn every_job_runs_on_the_aws_adapters() {
    let platform = support::aws_platform("jobs", support::at(START)).await;
    every_job_runs(&platform.app, &platform.clock, &platform.demo).await;
}

/// A conversion on an offer with automatic approval after a day's review and a day's hold:
/// the maturation job approves it, then makes it payable; then every other job runs once.
async fn every_job_runs(app: &App, clock: &ManualClock, demo: &Demo) {
    let mut offer = app.store.offer(demo.offer_id).await.unwrap().unwrap();
    offer.review_days = 1;
    offer.hold_days = 1;
    app.store.save_offer(&offer).await.unwrap();
    let conversion = support::conversion(app, demo, "JOBS-1").await.id;
    let status = |app: &App| {
        let app = app.clone();
        async move {
            app.store
                .conversion(conversion)
                .await
                .unwrap()
                .unwrap()
                .status
        }
    };
    let payable = Account::affiliate_payable(demo.affiliate_id);

    let report = run(app, "maturation").await;
    assert!(report.starts_with("0 "), "nothing is due yet: {report}");
    assert_eq!(status(app).await, ConversionStatus::Pending);

    clock.advance(SignedDuration::from_hours(24) + SignedDuration::from_secs(1));
    let report = run(app, "maturation").await;
    assert!(report.starts_with("1 "), "approved after review: {report}");
    assert_eq!(status(app).await, ConversionStatus::Approved);
    assert_eq!(support::checked_balance(app, &payable).await, 0, "held");

    clock.advance(SignedDuration::from_hours(24) + SignedDuration::from_secs(1));
    let report = run(app, "maturation").await;
    assert!(report.starts_with("1 "), "payable after the hold: {report}");
    assert_eq!(support::checked_balance(app, &payable).await, -1800);
    let report = run(app, "maturation").await;
    assert!(report.starts_with("0 "), "once only: {report}");

    for job in shared::jobs::JOBS {
        run(app, job.name).await;
    }
}

async fn run(app: &App, name: &str) -> String {
    let job = shared::jobs::find(name).unwrap();
    match (job.run)(app.clone()).await {
        Ok(report) => report,
        Err(error) => panic!("job {name} failed: {}", shared::http::ErrorChain(&error)),
    }
}
