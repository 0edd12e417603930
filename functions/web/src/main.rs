//! The `web` Lambda function: wiring only; it serves the dashboard's pages and assets
//! (`shared::web`), which call the API's handlers in process.

#[tokio::main]
async fn main() -> Result<(), shared::runtime::Error> {
    shared::runtime::serve_web().await
}
