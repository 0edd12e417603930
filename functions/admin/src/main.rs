//! The `admin` Lambda function: wiring only; its routes are `shared::routes`' with function `admin`.

#[tokio::main]
async fn main() -> Result<(), shared::runtime::Error> {
    shared::runtime::serve_function("admin").await
}
