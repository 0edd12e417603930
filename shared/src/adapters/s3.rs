//! `Blobs` on S3 (aws-sdk-s3): one bucket, an optional key prefix, every object encrypted
//! server-side with the platform's KMS key (SSE-KMS).

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;

use crate::ports::blobs::{BlobError, BlobKey, Blobs};

pub struct S3Blobs {
    client: Client,
    bucket: String,
    /// Prepended to every key (`""` for none); lets several stages share a bucket.
    prefix: String,
    /// The KMS key for SSE-KMS; `None` uses the bucket's default encryption.
    kms_key_id: Option<String>,
}

impl S3Blobs {
    pub fn new(
        client: Client,
        bucket: impl Into<String>,
        prefix: impl Into<String>,
        kms_key_id: Option<String>,
    ) -> Self {
        Self {
            client,
            bucket: bucket.into(),
            prefix: prefix.into(),
            kms_key_id,
        }
    }

    fn object_key(&self, key: &BlobKey) -> String {
        format!("{}{}", self.prefix, key.as_str())
    }
}

#[async_trait]
impl Blobs for S3Blobs {
    async fn link(
        &self,
        key: &BlobKey,
        valid_for: std::time::Duration,
    ) -> Result<Option<String>, BlobError> {
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(valid_for)
            .map_err(BlobError::backend)?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .presigned(config)
            .await
            .map_err(BlobError::backend)?;
        Ok(Some(request.uri().to_string()))
    }

    async fn put(&self, key: &BlobKey, body: Vec<u8>, content_type: &str) -> Result<(), BlobError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .body(ByteStream::from(body))
            .content_type(content_type)
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .set_ssekms_key_id(self.kms_key_id.clone())
            .send()
            .await
            .map_err(BlobError::backend)?;
        Ok(())
    }

    async fn get(&self, key: &BlobKey) -> Result<Option<Vec<u8>>, BlobError> {
        let result = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .send()
            .await;
        match result {
            Ok(output) => {
                let bytes = output.body.collect().await.map_err(BlobError::backend)?;
                Ok(Some(bytes.into_bytes().to_vec()))
            }
            Err(SdkError::ServiceError(e)) if matches!(e.err(), GetObjectError::NoSuchKey(_)) => {
                Ok(None)
            }
            Err(e) => Err(BlobError::backend(e)),
        }
    }

    /// Deletes every version of the object. In a versioned bucket (production's) a plain
    /// delete only hides the object behind a marker and keeps its data as an old version; what
    /// is deleted here (an erased user's export, an expired file) is gone at once instead of at
    /// the lifecycle's next pass.
    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        let object_key = self.object_key(key);
        let listed = self
            .client
            .list_object_versions()
            .bucket(&self.bucket)
            .prefix(&object_key)
            .send()
            .await
            .map_err(BlobError::backend)?;
        let versions: Vec<String> = listed
            .versions()
            .iter()
            .filter(|v| v.key() == Some(object_key.as_str()))
            .filter_map(|v| v.version_id().map(str::to_string))
            .chain(
                listed
                    .delete_markers()
                    .iter()
                    .filter(|m| m.key() == Some(object_key.as_str()))
                    .filter_map(|m| m.version_id().map(str::to_string)),
            )
            .collect();
        if versions.is_empty() {
            // S3 answers success for a missing key, as the port requires.
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(&object_key)
                .send()
                .await
                .map_err(BlobError::backend)?;
        }
        for version in versions {
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(&object_key)
                .version_id(version)
                .send()
                .await
                .map_err(BlobError::backend)?;
        }
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<BlobKey>, BlobError> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(format!("{}{prefix}", self.prefix))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(BlobError::backend)?;
            for object in page.contents() {
                if let Some(key) = object
                    .key()
                    .and_then(|k| k.strip_prefix(self.prefix.as_str()))
                {
                    keys.push(BlobKey::parse(key)?);
                }
            }
        }
        keys.sort();
        Ok(keys)
    }
}
