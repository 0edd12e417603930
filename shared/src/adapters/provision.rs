//! `leadsrefer provision --backend aws`: the table, bucket and key the AWS adapters use, shaped
//! as `template.yaml` declares them (a test compares the two), for an account or an emulator
//! outside SAM. Idempotent: what exists is kept (and its settings applied again), what is
//! missing is made.

use aws_config::SdkConfig;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    PointInTimeRecoverySpecification, Projection, ProjectionType, ScalarAttributeType, TableStatus,
    TimeToLiveSpecification, TimeToLiveStatus,
};
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketLocationConstraint,
    BucketVersioningStatus, CreateBucketConfiguration, ExpirationStatus, LifecycleExpiration,
    LifecycleRule, LifecycleRuleFilter, NoncurrentVersionExpiration, ObjectOwnership,
    OwnershipControls, OwnershipControlsRule, PublicAccessBlockConfiguration, ServerSideEncryption,
    ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    VersioningConfiguration,
};

use crate::adapters::aws::s3_client;
use crate::adapters::dynamodb::GSI1;
use crate::ports::table::EXPIRES_AT;

/// One rule of the bucket's lifecycle, as `template.yaml`'s `Bucket` declares it.
pub struct LifecycleShape {
    pub id: &'static str,
    pub prefix: Option<&'static str>,
    pub expiration_days: Option<i32>,
    pub noncurrent_days: Option<i32>,
    pub abort_multipart_days: Option<i32>,
}

/// The bucket's lifecycle rules; `template.yaml` must say the same (tested).
pub const LIFECYCLE: [LifecycleShape; 4] = [
    LifecycleShape {
        id: "ForgetDeletedVersions",
        prefix: None,
        expiration_days: None,
        noncurrent_days: Some(30),
        abort_multipart_days: Some(7),
    },
    LifecycleShape {
        id: "ExpireCallRecordings",
        prefix: Some("calls/"),
        expiration_days: Some(1097),
        noncurrent_days: None,
        abort_multipart_days: None,
    },
    LifecycleShape {
        id: "ExpirePayoutFiles",
        prefix: Some("payouts/"),
        expiration_days: Some(2557),
        noncurrent_days: None,
        abort_multipart_days: None,
    },
    LifecycleShape {
        id: "ExpireDataExports",
        prefix: Some("exports/"),
        expiration_days: Some(8),
        noncurrent_days: Some(1),
        abort_multipart_days: None,
    },
];

/// What to provision.
pub struct Names {
    pub table: String,
    pub bucket: String,
    /// The KMS key to encrypt with; none: the key under `alias/<table>`, made if missing.
    pub kms_key_id: Option<String>,
    /// Path-style S3 addressing (emulators).
    pub s3_path_style: bool,
}

/// What was provisioned, and what of it is new.
pub struct Provisioned {
    pub table: String,
    pub bucket: String,
    pub kms_key_id: String,
    /// A line per resource: made, or there already.
    pub report: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProvisionError(String);

/// A failure while doing `what`, with all the SDK says of it.
fn failure<E: std::error::Error>(what: impl Into<String>) -> impl FnOnce(E) -> ProvisionError {
    let what = what.into();
    move |error| ProvisionError(format!("{what}: {}", DisplayErrorContext(error)))
}

/// Makes (or keeps) the table, the key and the bucket.
pub async fn provision(config: &SdkConfig, names: &Names) -> Result<Provisioned, ProvisionError> {
    let mut report = Vec::new();
    report.push(table(config, &names.table).await?);
    let (kms_key_id, line) = key(config, &names.table, names.kms_key_id.as_deref()).await?;
    report.push(line);
    report.push(bucket(config, &names.bucket, &kms_key_id, names.s3_path_style).await?);
    Ok(Provisioned {
        table: names.table.clone(),
        bucket: names.bucket.clone(),
        kms_key_id,
        report,
    })
}

async fn table(config: &SdkConfig, name: &str) -> Result<String, ProvisionError> {
    let client = aws_sdk_dynamodb::Client::new(config);
    let exists = match client.describe_table().table_name(name).send().await {
        Ok(_) => true,
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            false
        }
        Err(error) => return Err(failure(format!("cannot read the table {name}"))(error)),
    };
    if !exists {
        let key = |name: &str, kind| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
        };
        let string = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
        };
        let shape = (|| {
            Ok::<_, aws_sdk_dynamodb::error::BuildError>((
                vec![
                    string("pk")?,
                    string("sk")?,
                    string("gsi1pk")?,
                    string("gsi1sk")?,
                ],
                vec![key("pk", KeyType::Hash)?, key("sk", KeyType::Range)?],
                GlobalSecondaryIndex::builder()
                    .index_name(GSI1)
                    .set_key_schema(Some(vec![
                        key("gsi1pk", KeyType::Hash)?,
                        key("gsi1sk", KeyType::Range)?,
                    ]))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build()?,
            ))
        })()
        .map_err(failure(format!("the table {name}'s shape")))?;
        let (attributes, keys, index) = shape;
        client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .set_attribute_definitions(Some(attributes))
            .set_key_schema(Some(keys))
            .global_secondary_indexes(index)
            .send()
            .await
            .map_err(failure(format!("cannot create the table {name}")))?;
        // TTL and backups can be set once the table is active.
        for _ in 0..120 {
            let status = client
                .describe_table()
                .table_name(name)
                .send()
                .await
                .ok()
                .and_then(|d| d.table.and_then(|t| t.table_status));
            if status == Some(TableStatus::Active) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }
    let ttl = client
        .describe_time_to_live()
        .table_name(name)
        .send()
        .await
        .map_err(failure(format!("cannot read the table {name}'s TTL")))?;
    let ttl_on = ttl
        .time_to_live_description()
        .and_then(|d| d.time_to_live_status())
        .is_some_and(|s| matches!(s, TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling));
    if !ttl_on {
        let specification = TimeToLiveSpecification::builder()
            .attribute_name(EXPIRES_AT)
            .enabled(true)
            .build()
            .map_err(failure(format!("the table {name}'s TTL")))?;
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(specification)
            .send()
            .await
            .map_err(failure(format!("cannot turn on the table {name}'s TTL")))?;
    }
    let recovery = PointInTimeRecoverySpecification::builder()
        .point_in_time_recovery_enabled(true)
        .build()
        .map_err(failure(format!("the table {name}'s backups")))?;
    client
        .update_continuous_backups()
        .table_name(name)
        .point_in_time_recovery_specification(recovery)
        .send()
        .await
        .map_err(failure(format!(
            "cannot turn on the table {name}'s point-in-time recovery"
        )))?;
    Ok(format!(
        "table {name}: {} (pay per request, index {GSI1}, TTL on {EXPIRES_AT}, point-in-time recovery)",
        if exists { "there already" } else { "made" }
    ))
}

async fn key(
    config: &SdkConfig,
    table: &str,
    given: Option<&str>,
) -> Result<(String, String), ProvisionError> {
    let client = aws_sdk_kms::Client::new(config);
    let alias = format!("alias/{table}");
    let wanted = given.unwrap_or(&alias);
    match client.describe_key().key_id(wanted).send().await {
        Ok(found) => {
            let id = found
                .key_metadata
                .map(|m| m.key_id)
                .ok_or_else(|| ProvisionError(format!("the key {wanted} has no metadata")))?;
            return Ok((id.clone(), format!("key {id} ({wanted}): there already")));
        }
        Err(error)
            if given.is_none()
                && error
                    .as_service_error()
                    .is_some_and(|e| e.is_not_found_exception()) => {}
        Err(error) => return Err(failure(format!("cannot read the key {wanted}"))(error)),
    }
    let made = client
        .create_key()
        .description(format!("LeadsRefer {table} data key"))
        .send()
        .await
        .map_err(failure("cannot create a key"))?;
    let id = made
        .key_metadata
        .map(|m| m.key_id)
        .ok_or_else(|| ProvisionError("the new key has no metadata".into()))?;
    client
        .enable_key_rotation()
        .key_id(&id)
        .send()
        .await
        .map_err(failure("cannot turn on the key's rotation"))?;
    client
        .create_alias()
        .alias_name(&alias)
        .target_key_id(&id)
        .send()
        .await
        .map_err(failure(format!("cannot name the key {alias}")))?;
    Ok((id.clone(), format!("key {id} ({alias}): made, rotation on")))
}

async fn bucket(
    config: &SdkConfig,
    name: &str,
    kms_key_id: &str,
    path_style: bool,
) -> Result<String, ProvisionError> {
    let client = s3_client(config, path_style);
    let exists = client.head_bucket().bucket(name).send().await.is_ok();
    if !exists {
        let mut create = client.create_bucket().bucket(name);
        let region = config.region().map(|r| r.to_string());
        if let Some(region) = region.filter(|r| r != "us-east-1") {
            create = create.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region.as_str()))
                    .build(),
            );
        }
        create
            .send()
            .await
            .map_err(failure(format!("cannot create the bucket {name}")))?;
    }
    let build = |e| failure(format!("the bucket {name}'s settings"))(e);
    client
        .put_public_access_block()
        .bucket(name)
        .public_access_block_configuration(
            PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .block_public_policy(true)
                .ignore_public_acls(true)
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await
        .map_err(failure(format!(
            "cannot block public access to the bucket {name}"
        )))?;
    client
        .put_bucket_ownership_controls()
        .bucket(name)
        .ownership_controls(
            OwnershipControls::builder()
                .rules(
                    OwnershipControlsRule::builder()
                        .object_ownership(ObjectOwnership::BucketOwnerEnforced)
                        .build()
                        .map_err(build)?,
                )
                .build()
                .map_err(build)?,
        )
        .send()
        .await
        .map_err(failure(format!(
            "cannot set the owner of objects in the bucket {name}"
        )))?;
    client
        .put_bucket_versioning()
        .bucket(name)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .map_err(failure(format!("cannot version the bucket {name}")))?;
    client
        .put_bucket_encryption()
        .bucket(name)
        .server_side_encryption_configuration(
            ServerSideEncryptionConfiguration::builder()
                .rules(
                    ServerSideEncryptionRule::builder()
                        .apply_server_side_encryption_by_default(
                            ServerSideEncryptionByDefault::builder()
                                .sse_algorithm(ServerSideEncryption::AwsKms)
                                .kms_master_key_id(kms_key_id)
                                .build()
                                .map_err(build)?,
                        )
                        .bucket_key_enabled(true)
                        .build(),
                )
                .build()
                .map_err(build)?,
        )
        .send()
        .await
        .map_err(failure(format!("cannot encrypt the bucket {name}")))?;
    let mut rules = Vec::new();
    for shape in &LIFECYCLE {
        let mut rule = LifecycleRule::builder()
            .id(shape.id)
            .status(ExpirationStatus::Enabled)
            .filter(
                LifecycleRuleFilter::builder()
                    .prefix(shape.prefix.unwrap_or(""))
                    .build(),
            );
        if let Some(days) = shape.expiration_days {
            rule = rule.expiration(LifecycleExpiration::builder().days(days).build());
        }
        if let Some(days) = shape.noncurrent_days {
            rule = rule.noncurrent_version_expiration(
                NoncurrentVersionExpiration::builder()
                    .noncurrent_days(days)
                    .build(),
            );
        }
        if let Some(days) = shape.abort_multipart_days {
            rule = rule.abort_incomplete_multipart_upload(
                AbortIncompleteMultipartUpload::builder()
                    .days_after_initiation(days)
                    .build(),
            );
        }
        rules.push(rule.build().map_err(build)?);
    }
    client
        .put_bucket_lifecycle_configuration()
        .bucket(name)
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .set_rules(Some(rules))
                .build()
                .map_err(build)?,
        )
        .send()
        .await
        .map_err(failure(format!(
            "cannot set the lifecycle of the bucket {name}"
        )))?;
    // Over a plain-HTTP endpoint (an emulator) a TLS-only policy would refuse every request.
    let plain_http = config
        .endpoint_url()
        .is_some_and(|url| url.starts_with("http://"));
    if plain_http {
        return Ok(format!(
            "bucket {name}: {} (versioned, SSE-KMS with the key, public access blocked, {} lifecycle rules; no TLS-only policy over the plain-HTTP endpoint)",
            if exists { "there already" } else { "made" },
            LIFECYCLE.len()
        ));
    }
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "TlsOnly",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [format!("arn:aws:s3:::{name}"), format!("arn:aws:s3:::{name}/*")],
            "Condition": { "Bool": { "aws:SecureTransport": "false" } }
        }]
    });
    client
        .put_bucket_policy()
        .bucket(name)
        .policy(policy.to_string())
        .send()
        .await
        .map_err(failure(format!(
            "cannot set the policy of the bucket {name}"
        )))?;
    Ok(format!(
        "bucket {name}: {} (versioned, SSE-KMS with the key, public access blocked, TLS only, {} lifecycle rules)",
        if exists { "there already" } else { "made" },
        LIFECYCLE.len()
    ))
}
