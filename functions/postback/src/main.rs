//! The `postback` Lambda function: wiring only; the handler is `shared::routes::postback`.

#[tokio::main]
async fn main() -> Result<(), shared::runtime::Error> {
    shared::runtime::serve_route(&shared::routes::postback::ROUTE).await
}
