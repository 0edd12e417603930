//! The `reports` Lambda function: wiring only; its routes are `shared::routes`' with function `reports`.

#[tokio::main]
async fn main() -> Result<(), shared::runtime::Error> {
    shared::runtime::serve_function("reports").await
}
