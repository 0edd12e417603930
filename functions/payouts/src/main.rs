//! The `payouts` Lambda function: wiring only; its routes are `shared::routes`' with function `payouts`.

#[tokio::main]
async fn main() -> Result<(), shared::runtime::Error> {
    shared::runtime::serve_function("payouts").await
}
