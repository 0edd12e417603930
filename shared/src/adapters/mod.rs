//! Adapters: the ports on embedded technology (SQLite, a folder, a key file, an outbox folder)
//! and on AWS (DynamoDB, S3, KMS, SES).

pub mod aws;
pub mod dynamodb;
pub mod fs;
pub mod kms;
pub mod local_key;
pub mod memory_visits;
pub mod outbox;
pub mod paypal;
pub mod s3;
pub mod ses;
pub mod sqlite;
pub mod twilio;
