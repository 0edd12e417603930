//! `Keys` on KMS (aws-sdk-kms): `GenerateDataKey` and `Decrypt`, always with the encryption
//! context, which KMS binds to the wrapped key (and logs in CloudTrail).

use async_trait::async_trait;
use aws_sdk_kms::Client;
use aws_sdk_kms::error::SdkError;
use aws_sdk_kms::operation::decrypt::DecryptError;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;

use crate::ports::keys::{DataKey, EncryptionContext, KeyError, Keys};
use crate::secret::Secret;

pub struct KmsKeys {
    client: Client,
    key_id: String,
}

impl KmsKeys {
    pub fn new(client: Client, key_id: impl Into<String>) -> Self {
        Self {
            client,
            key_id: key_id.into(),
        }
    }
}

fn context(context: &EncryptionContext) -> Option<std::collections::HashMap<String, String>> {
    (!context.0.is_empty()).then(|| context.0.clone().into_iter().collect())
}

fn to_key(bytes: &[u8]) -> Result<Secret<[u8; 32]>, KeyError> {
    bytes
        .try_into()
        .map(Secret::new)
        .map_err(|_| KeyError::Malformed)
}

#[async_trait]
impl Keys for KmsKeys {
    async fn generate_data_key(
        &self,
        encryption_context: &EncryptionContext,
    ) -> Result<DataKey, KeyError> {
        let output = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(context(encryption_context))
            .send()
            .await
            .map_err(KeyError::backend)?;
        let plaintext = output.plaintext.ok_or(KeyError::Malformed)?;
        let wrapped = output.ciphertext_blob.ok_or(KeyError::Malformed)?;
        Ok(DataKey {
            plaintext: to_key(plaintext.as_ref())?,
            wrapped: wrapped.into_inner(),
        })
    }

    async fn unwrap_data_key(
        &self,
        wrapped: &[u8],
        encryption_context: &EncryptionContext,
    ) -> Result<Secret<[u8; 32]>, KeyError> {
        let result = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(wrapped))
            .set_encryption_context(context(encryption_context))
            .send()
            .await;
        match result {
            Ok(output) => to_key(output.plaintext.ok_or(KeyError::Malformed)?.as_ref()),
            Err(SdkError::ServiceError(e))
                if matches!(
                    e.err(),
                    DecryptError::InvalidCiphertextException(_)
                        | DecryptError::IncorrectKeyException(_)
                ) =>
            {
                Err(KeyError::Denied)
            }
            Err(e) => Err(KeyError::backend(e)),
        }
    }
}
