//! Test support for the AWS adapters: fresh resources on the AWS emulator (moto server) that
//! `infra/test` starts, shaped as `template.yaml` declares them in production.

use aws_config::SdkConfig;

use crate::adapters::aws::AwsSettings;
use crate::adapters::provision::Names;
use crate::secret::Secret;

/// The emulator's base URL, which `infra/test` exports; a clear failure when it is absent, so
/// that the AWS tests never skip silently.
pub fn endpoint() -> String {
    std::env::var("LEADSREFER_TEST_MOTO_URL").unwrap_or_else(|_| {
        panic!("LEADSREFER_TEST_MOTO_URL is not set: the AWS adapter tests need the emulator that `infra/test` starts; run them through infra/test")
    })
}

/// A fresh table, bucket, KMS key and verified sender, named after `name` and a new ULID: made
/// by [`provision`](crate::adapters::provision::provision), as `leadsrefer provision` makes
/// them, so the tests run on resources shaped as production's.
pub async fn provision(config: &SdkConfig, name: &str, sender: &str) -> AwsSettings {
    let suffix = ulid::Ulid::generate().to_string().to_lowercase();
    let made = crate::adapters::provision::provision(
        config,
        &Names {
            table: format!("{name}-{suffix}"),
            bucket: format!("{name}-{suffix}"),
            kms_key_id: None,
            s3_path_style: true,
        },
    )
    .await
    .expect("the emulator takes the resources");
    aws_sdk_sesv2::Client::new(config)
        .create_email_identity()
        .email_identity(sender)
        .send()
        .await
        .expect("the emulator verifies the sender");
    AwsSettings {
        table: made.table,
        bucket: made.bucket,
        bucket_prefix: String::new(),
        kms_key_id: made.kms_key_id,
        s3_path_style: true,
        ip_hash_key: Secret::new(rand::random::<[u8; 32]>().to_vec()),
    }
}
