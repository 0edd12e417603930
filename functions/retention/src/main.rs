//! The `retention` Lambda function (EventBridge, daily): wiring only; the job is
//! `shared::retention::job`.

#[tokio::main]
async fn main() -> Result<(), shared::runtime::Error> {
    shared::runtime::serve_job("retention").await
}
