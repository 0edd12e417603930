//! The `offers` Lambda function: wiring only; its routes are `shared::routes`' with function `offers`.

#[tokio::main]
async fn main() -> Result<(), shared::runtime::Error> {
    shared::runtime::serve_function("offers").await
}
