//! The `click` Lambda function: wiring only; the handler is `shared::routes::click`.

#[tokio::main]
async fn main() -> Result<(), shared::runtime::Error> {
    shared::runtime::serve_route(&shared::routes::click::ROUTE).await
}
