//! The one runner every Lambda function's `main.rs` calls: tracing set up, the application
//! state built once per cold start, then each invocation handed to the route's handler.

use std::convert::Infallible;

use lambda_http::service_fn;

use crate::app::{App, Backend};
use crate::routes::respond;

pub type Error = lambda_http::Error;

/// Serves the routes of one function in Lambda until the runtime shuts the process down.
pub async fn serve_function(function: &'static str) -> Result<(), Error> {
    // JSON logs when the function's log format is JSON (`AWS_LAMBDA_LOG_FORMAT`).
    lambda_http::tracing::init_default_subscriber();
    // Bad configuration fails the cold start with a message, not a panic.
    let app = App::from_env(Backend::Aws).await?;
    lambda_http::run(service_fn(move |request| {
        let app = app.clone();
        async move { Ok::<_, Infallible>(respond(app, request, Some(function)).await) }
    }))
    .await
}

/// Serves the web dashboard's pages and assets in Lambda (the `web` function).
pub async fn serve_web() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let app = App::from_env(Backend::Aws).await?;
    lambda_http::run(service_fn(move |request| {
        let app = app.clone();
        async move { Ok::<_, Infallible>(crate::web::respond(app, request).await) }
    }))
    .await
}

/// Runs one scheduled job per invocation (an EventBridge event) until the runtime shuts the
/// process down. A failed run answers an error, so that Lambda retries it: every job is
/// exactly-once in effect, so a retry only finishes what the failed run left.
pub async fn serve_job(name: &'static str) -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let job = crate::jobs::find(name).ok_or_else(|| format!("no job named {name}"))?;
    let app = App::from_env(Backend::Aws).await?;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |_event: lambda_runtime::LambdaEvent<serde_json::Value>| {
            let app = app.clone();
            async move {
                let report = (job.run)(app).await?;
                tracing::info!(job = job.name, %report, "job finished");
                Ok::<_, Error>(serde_json::json!({ "job": job.name, "report": report }))
            }
        },
    ))
    .await
}
