//! The `privacy` Lambda function: wiring only; its routes are `shared::routes`' with function
//! `privacy`.

#[tokio::main]
async fn main() -> Result<(), shared::runtime::Error> {
    shared::runtime::serve_function("privacy").await
}
