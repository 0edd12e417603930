//! The AWS adapter set, configured from the environment that `template.yaml` gives each
//! function. Clients are built once per process (per Lambda cold start) from one `aws-config`
//! load; endpoints follow the standard `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>`
//! settings, so the same binary talks to AWS or to an emulator.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

use crate::app::SetupError;
use crate::secret::Secret;

/// Where the AWS resources are, as `template.yaml` passes them.
#[derive(Clone, Debug)]
pub struct AwsSettings {
    /// `LEADSREFER_TABLE`: the DynamoDB table.
    pub table: String,
    /// `LEADSREFER_BUCKET`: the S3 bucket.
    pub bucket: String,
    /// `LEADSREFER_BUCKET_PREFIX`: a prefix for every object key (default none).
    pub bucket_prefix: String,
    /// `LEADSREFER_KMS_KEY_ID`: the KMS key for envelope encryption and SSE-KMS.
    pub kms_key_id: String,
    /// `LEADSREFER_S3_PATH_STYLE=true`: path-style S3 addressing (emulators).
    pub s3_path_style: bool,
    /// `LEADSREFER_IP_HASH_KEY`: the key of the IP pseudonyms, hex, at least 32 bytes. Kept in
    /// the function's configuration, apart from the data it pseudonymises.
    pub ip_hash_key: Secret<Vec<u8>>,
}

fn required(name: &'static str) -> Result<String, SetupError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or(SetupError::Config {
            name,
            value: String::new(),
            expected: "must be set for the aws backend (template.yaml sets it)",
        })
}

impl AwsSettings {
    pub fn from_env() -> Result<Self, SetupError> {
        let key_hex = required("LEADSREFER_IP_HASH_KEY")?;
        let ip_hash_key =
            hex::decode(&key_hex)
                .ok()
                .filter(|k| k.len() >= 32)
                .ok_or(SetupError::Config {
                    name: "LEADSREFER_IP_HASH_KEY",
                    value: "[redacted]".into(),
                    expected: "must be at least 32 bytes in hex (openssl rand -hex 32)",
                })?;
        Ok(Self {
            table: required("LEADSREFER_TABLE")?,
            bucket: required("LEADSREFER_BUCKET")?,
            bucket_prefix: std::env::var("LEADSREFER_BUCKET_PREFIX").unwrap_or_default(),
            kms_key_id: required("LEADSREFER_KMS_KEY_ID")?,
            s3_path_style: std::env::var("LEADSREFER_S3_PATH_STYLE").is_ok_and(|v| v == "true"),
            ip_hash_key: Secret::new(ip_hash_key),
        })
    }
}

/// The shared SDK configuration: region, credentials and endpoints from the environment, one
/// HTTPS client (rustls on ring) for every service.
pub async fn sdk_config() -> SdkConfig {
    let https = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https)
        .load()
        .await
}

/// The S3 client, path-style when configured.
pub fn s3_client(config: &SdkConfig, path_style: bool) -> aws_sdk_s3::Client {
    let s3 = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(path_style)
        .build();
    aws_sdk_s3::Client::from_conf(s3)
}
