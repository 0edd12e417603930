//! The `auth` Lambda function: wiring only; its routes are `shared::routes`' with function `auth`.

#[tokio::main]
async fn main() -> Result<(), shared::runtime::Error> {
    shared::runtime::serve_function("auth").await
}
