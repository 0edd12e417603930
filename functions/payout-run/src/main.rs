//! The `payout-run` Lambda function (EventBridge, daily): wiring only; the job is
//! `shared::payouts::job`.

#[tokio::main]
async fn main() -> Result<(), shared::runtime::Error> {
    shared::runtime::serve_job("payout-run").await
}
