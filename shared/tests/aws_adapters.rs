//! The port contract suites against the AWS adapters, on the AWS emulator (moto server) that
//! `infra/test` starts: the same suites the embedded adapters pass, unchanged.

use std::sync::Arc;

use jiff::Timestamp;
use shared::adapters::aws::{s3_client, sdk_config};
use shared::adapters::{dynamodb::DynamoTable, kms::KmsKeys, s3::S3Blobs, ses::SesMailer};
use shared::contract::{self, emulator};
use shared::domain::email::EmailAddress;
use shared::ports::{Mailer, ManualClock, Table};

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::at(
        Timestamp::from_second(1_767_225_600).unwrap(),
    ))
}

#[tokio::test]
async fn dynamodb_table_meets_the_table_contract() {
    emulator::endpoint();
    let config = sdk_config().await;
    let settings = emulator::provision(&config, "contract", "no-reply@leadsrefer.test").await;
    let clock = clock();
    let table: Arc<dyn Table> = Arc::new(DynamoTable::new(
        aws_sdk_dynamodb::Client::new(&config),
        &settings.table,
        clock.clone(),
    ));
    contract::table::run_all(table.clone(), clock.clone()).await;
    contract::visits::run_all(&shared::store::TableVisits::new(table), &clock).await;
}

#[tokio::test]
async fn s3_blobs_meet_the_blobs_contract() {
    emulator::endpoint();
    let config = sdk_config().await;
    let settings = emulator::provision(&config, "contract", "no-reply@leadsrefer.test").await;
    let blobs = S3Blobs::new(
        s3_client(&config, true),
        &settings.bucket,
        "stage/",
        Some(settings.kms_key_id),
    );
    contract::blobs::run_all(&blobs, "contract").await;
}

/// In the versioned bucket production has, a deleted blob keeps no old version: an erased
/// user's export is gone at once, not at the lifecycle's next pass.
#[tokio::test]
async fn a_deleted_blob_leaves_no_version_behind() {
    use shared::ports::{BlobKey, Blobs};
    emulator::endpoint();
    let config = sdk_config().await;
    let settings = emulator::provision(&config, "versions", "no-reply@leadsrefer.test").await;
    let client = s3_client(&config, true);
    let blobs = S3Blobs::new(
        client.clone(),
        &settings.bucket,
        "stage/",
        Some(settings.kms_key_id),
    );
    let key = BlobKey::parse("exports/someone/export.json").unwrap();
    let other = BlobKey::parse("exports/someone/export.json.keep").unwrap();
    for body in [b"first".to_vec(), b"second".to_vec()] {
        blobs.put(&key, body, "application/json").await.unwrap();
    }
    blobs
        .put(&other, b"kept".to_vec(), "application/json")
        .await
        .unwrap();
    let versions = |prefix: &'static str| {
        let (client, bucket) = (client.clone(), settings.bucket.clone());
        async move {
            let listed = client
                .list_object_versions()
                .bucket(bucket)
                .prefix(prefix)
                .send()
                .await
                .unwrap();
            (listed.versions().len(), listed.delete_markers().len())
        }
    };
    assert_eq!(versions("stage/exports/someone/export.json").await, (3, 0));
    blobs.delete(&key).await.unwrap();
    assert_eq!(
        versions("stage/exports/someone/export.json").await,
        (1, 0),
        "only the other object's version is left"
    );
    assert!(blobs.get(&other).await.unwrap().is_some());
    blobs.delete(&key).await.unwrap();
}

#[tokio::test]
async fn kms_keys_meet_the_keys_contract() {
    emulator::endpoint();
    let config = sdk_config().await;
    let settings = emulator::provision(&config, "contract", "no-reply@leadsrefer.test").await;
    contract::keys::run_all(&KmsKeys::new(
        aws_sdk_kms::Client::new(&config),
        &settings.kms_key_id,
    ))
    .await;
}

#[tokio::test]
async fn ses_mailer_meets_the_mailer_contract() {
    let endpoint = emulator::endpoint();
    let config = sdk_config().await;
    let sender = "mailer-contract@leadsrefer.test";
    emulator::provision(&config, "contract", sender).await;
    let mailer = SesMailer::new(
        aws_sdk_sesv2::Client::new(&config),
        EmailAddress::parse(sender).unwrap(),
        clock(),
    );
    contract::mailer::run_all(&mailer, || sent_mail(&endpoint)).await;
}

#[tokio::test]
async fn ses_refuses_an_unverified_sender() {
    emulator::endpoint();
    let config = sdk_config().await;
    let mailer = SesMailer::new(
        aws_sdk_sesv2::Client::new(&config),
        EmailAddress::parse("stranger@unverified.test").unwrap(),
        clock(),
    );
    let email = shared::ports::Email {
        to: EmailAddress::parse("ann@example.com").unwrap(),
        subject: "s".into(),
        text: "t".into(),
    };
    assert!(
        mailer.send(&email).await.is_err(),
        "SES refuses mail from an unverified identity"
    );
}

/// Every raw message the emulator's SES accepted, from moto's state dump.
async fn sent_mail(endpoint: &str) -> Vec<String> {
    shared::outbound::install_crypto_provider();
    let data: serde_json::Value = reqwest::get(format!("{endpoint}/moto-api/data.json"))
        .await
        .expect("the emulator answers")
        .json()
        .await
        .expect("moto's data.json is JSON");
    data["ses"]["RawMessage"]
        .as_array()
        .map(|messages| {
            messages
                .iter()
                .filter_map(|m| m["raw_data"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
