//! The `policy-notices` Lambda function (EventBridge, every 5 minutes): wiring only; the job is
//! `shared::privacy::notices_job`.

#[tokio::main]
async fn main() -> Result<(), shared::runtime::Error> {
    shared::runtime::serve_job("policy-notices").await
}
