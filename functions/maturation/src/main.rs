//! The `maturation` Lambda function (EventBridge, every 15 minutes): wiring only; the job is
//! `shared::lifecycle::maturation_job`.

#[tokio::main]
async fn main() -> Result<(), shared::runtime::Error> {
    shared::runtime::serve_job("maturation").await
}
