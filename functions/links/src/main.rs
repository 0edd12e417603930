//! The `links` Lambda function: wiring only; its routes are `shared::routes`' with function `links`.

#[tokio::main]
async fn main() -> Result<(), shared::runtime::Error> {
    shared::runtime::serve_function("links").await
}
