//! The `data-exports` Lambda function (EventBridge, every 5 minutes): wiring only; the job is
//! `shared::privacy::exports_job`.

#[tokio::main]
async fn main() -> Result<(), shared::runtime::Error> {
    shared::runtime::serve_job("data-exports").await
}
