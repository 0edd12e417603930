//! Adapters: the ports on embedded technology (SQLite, a folder, a key file, an outbox folder)
//! and on AWS (DynamoDB, S3, KMS, SES).

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "aws")]
pub mod dynamodb;
pub mod fs;
#[cfg(feature = "aws")]
pub mod kms;
pub mod local_key;
pub mod memory_visits;
pub mod outbox;
pub mod paypal;
#[cfg(feature = "aws")]
pub mod provision;
#[cfg(feature = "aws")]
pub mod s3;
#[cfg(feature = "aws")]
pub mod ses;
pub mod sqlite;
pub mod twilio;
