//! The `conversions` Lambda function: wiring only; its routes are `shared::routes`' with function `conversions`.

#[tokio::main]
async fn main() -> Result<(), shared::runtime::Error> {
    shared::runtime::serve_function("conversions").await
}
