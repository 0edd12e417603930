//! The `tax-forms` Lambda function (EventBridge, daily; files in January and on request): wiring only; the job is
//! `shared::tax_forms::job`.

#[tokio::main]
async fn main() -> Result<(), shared::runtime::Error> {
    shared::runtime::serve_job("tax-forms").await
}
