//! The `calls` Lambda function: wiring only; its routes are `shared::routes`' with function
//! `calls`.

#[tokio::main]
async fn main() -> Result<(), shared::runtime::Error> {
    shared::runtime::serve_function("calls").await
}
