//! The `postback` Lambda function: wiring only; its routes are `shared::routes`' with function `postback`.

#[tokio::main]
async fn main() -> Result<(), shared::runtime::Error> {
    shared::runtime::serve_function("postback").await
}
