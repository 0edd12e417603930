//! The `dispatch` Lambda function (EventBridge, every minute): wiring only; the job is
//! `shared::dispatch`.

#[tokio::main]
async fn main() -> Result<(), shared::runtime::Error> {
    shared::runtime::serve_job("dispatch").await
}
