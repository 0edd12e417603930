//! The `pixel` Lambda function: wiring only; its routes are `shared::routes`' with function `pixel`.

#[tokio::main]
async fn main() -> Result<(), shared::runtime::Error> {
    shared::runtime::serve_function("pixel").await
}
