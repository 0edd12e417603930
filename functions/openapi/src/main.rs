//! The `openapi` Lambda function: wiring only; its routes are `shared::routes`' with function `openapi`.

#[tokio::main]
async fn main() -> Result<(), shared::runtime::Error> {
    shared::runtime::serve_function("openapi").await
}
