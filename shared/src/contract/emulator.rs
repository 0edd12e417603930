//! Test support for the AWS adapters: fresh resources on the AWS emulator (moto server) that
//! `infra/test` starts, shaped as `template.yaml` declares them in production.

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};

use crate::adapters::aws::{AwsSettings, s3_client};
use crate::adapters::dynamodb::GSI1;
use crate::secret::Secret;

/// The emulator's base URL, which `infra/test` exports; a clear failure when it is absent, so
/// that the AWS tests never skip silently.
pub fn endpoint() -> String {
    std::env::var("LEADSREFER_TEST_MOTO_URL").unwrap_or_else(|_| {
        panic!("LEADSREFER_TEST_MOTO_URL is not set: the AWS adapter tests need the emulator that `infra/test` starts; run them through infra/test")
    })
}

/// A fresh table, bucket, KMS key and verified sender, named after `name` and a new ULID.
pub async fn provision(config: &SdkConfig, name: &str, sender: &str) -> AwsSettings {
    let suffix = ulid::Ulid::generate().to_string().to_lowercase();
    let table = format!("{name}-{suffix}");
    let bucket = format!("{name}-{suffix}");
    let dynamodb = aws_sdk_dynamodb::Client::new(config);
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    };
    let string = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    dynamodb
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(vec![
            string("pk"),
            string("sk"),
            string("gsi1pk"),
            string("gsi1sk"),
        ]))
        .set_key_schema(Some(vec![
            key("pk", KeyType::Hash),
            key("sk", KeyType::Range),
        ]))
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(GSI1)
                .set_key_schema(Some(vec![
                    key("gsi1pk", KeyType::Hash),
                    key("gsi1sk", KeyType::Range),
                ]))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("the emulator creates the table");
    s3_client(config, true)
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("the emulator creates the bucket");
    let kms_key_id = aws_sdk_kms::Client::new(config)
        .create_key()
        .send()
        .await
        .expect("the emulator creates the key")
        .key_metadata
        .expect("a new key has metadata")
        .key_id;
    aws_sdk_sesv2::Client::new(config)
        .create_email_identity()
        .email_identity(sender)
        .send()
        .await
        .expect("the emulator verifies the sender");
    AwsSettings {
        table,
        bucket,
        bucket_prefix: String::new(),
        kms_key_id,
        s3_path_style: true,
        ip_hash_key: Secret::new(rand::random::<[u8; 32]>().to_vec()),
    }
}
