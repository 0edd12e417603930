//! The `click` Lambda function: wiring only; its routes are `shared::routes`' with function `click`.

#[tokio::main]
async fn main() -> Result<(), shared::runtime::Error> {
    shared::runtime::serve_function("click").await
}
