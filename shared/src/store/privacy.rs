//! Data-subject requests (export, erasure) and published policy versions.
//!
//! | record | pk | sk | gsi1pk / gsi1sk |
//! | --- | --- | --- | --- |
//! | privacy request | `PRIVACY#{account}` | `{request id}` | `PRIVACY` / `{request id}` |
//! | policy version | `POLICY` | `{version}` | |

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::accounts::{account_key, email_key};
use super::{Store, with_index};
use crate::domain::accounts::{Account, AccountId};
use crate::ports::table::{Cond, Item, Key, Query, TableError, Write, to_item};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    Export,
    Erasure,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    Pending,
    Done,
    /// An export the account's erasure overtook.
    Cancelled,
}

/// A data-subject request, answered within the month the GDPR allows (DOMAIN.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PrivacyRequest {
    pub id: String,
    #[schema(value_type = String)]
    pub account_id: AccountId,
    pub kind: RequestKind,
    pub status: RequestStatus,
    #[schema(value_type = String)]
    pub requested_at: Timestamp,
    /// The 30-day deadline.
    #[schema(value_type = String)]
    pub due_at: Timestamp,
    #[schema(value_type = Option<String>)]
    pub completed_at: Option<Timestamp>,
    /// An export's file can be downloaded until then.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub download_until: Option<Timestamp>,
    /// When the retention job deleted an erasure's legally kept records, or an export's file.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub records_deleted_at: Option<Timestamp>,
}

/// A version of the privacy policy an admin published, and how far its notice went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PolicyVersion {
    pub version: String,
    /// What changed, in the words the notice uses.
    pub summary: String,
    #[schema(value_type = String)]
    pub published_at: Timestamp,
    /// Set when every active user had the notice.
    #[schema(value_type = Option<String>)]
    pub notified_at: Option<Timestamp>,
    /// Users notified so far.
    pub notified: u64,
}

/// The policy version an account last acknowledged on the platform.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Acknowledgement {
    version: String,
    at: Timestamp,
}

fn acknowledgement_key(account: AccountId) -> Key {
    Key::new(format!("POLICYACK#{account}"), "POLICYACK")
}

fn request_key(account: AccountId, id: &str) -> Key {
    Key::new(format!("PRIVACY#{account}"), id)
}

fn policy_key(version: &str) -> Key {
    Key::new("POLICY", version)
}

impl Store {
    pub async fn save_privacy_request(&self, request: &PrivacyRequest) -> Result<(), TableError> {
        self.table.put(request_item(request)?, Cond::Always).await
    }

    pub async fn privacy_request(
        &self,
        account: AccountId,
        id: &str,
    ) -> Result<Option<PrivacyRequest>, TableError> {
        self.get(&request_key(account, id)).await
    }

    /// One account's requests, newest first.
    pub async fn privacy_requests_of(
        &self,
        account: AccountId,
    ) -> Result<Vec<PrivacyRequest>, TableError> {
        self.query_all(Query::partition(format!("PRIVACY#{account}")).descending())
            .await
    }

    /// Every request, oldest first.
    pub async fn privacy_requests(&self) -> Result<Vec<PrivacyRequest>, TableError> {
        self.query_all(Query::gsi1("PRIVACY")).await
    }

    /// Closes an account for erasure: its email claim is released (the address may register
    /// again) and the record is replaced by `erased`, in one write.
    /// Closes an account with its erasure's record, in one write: an erased account always
    /// has the record that retention counts its seven years from.
    pub async fn erase_account(
        &self,
        before: &Account,
        erased: &Account,
        request: &PrivacyRequest,
    ) -> Result<(), TableError> {
        let record = with_index(
            to_item(erased, &account_key(erased.id))?,
            "ACCTS".into(),
            erased.id.to_string(),
        );
        self.table
            .transact(vec![
                Write::Delete {
                    key: email_key(&before.email),
                    cond: Cond::Always,
                },
                Write::Put {
                    item: record,
                    cond: Cond::Exists,
                },
                Write::Put {
                    item: request_item(request)?,
                    cond: Cond::Always,
                },
            ])
            .await
    }

    /// Publishes a policy version once: `Ok(false)` if that version exists.
    pub async fn publish_policy(&self, policy: &PolicyVersion) -> Result<bool, TableError> {
        match self
            .create(to_item(policy, &policy_key(&policy.version))?)
            .await
        {
            Ok(()) => Ok(true),
            Err(TableError::Conflict { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub async fn save_policy(&self, policy: &PolicyVersion) -> Result<(), TableError> {
        self.table
            .put(to_item(policy, &policy_key(&policy.version))?, Cond::Always)
            .await
    }

    pub async fn policies(&self) -> Result<Vec<PolicyVersion>, TableError> {
        self.query_all(Query::partition("POLICY")).await
    }

    /// The policy version the account acknowledged last, if any.
    pub async fn acknowledged_policy(
        &self,
        account: AccountId,
    ) -> Result<Option<String>, TableError> {
        Ok(self
            .get::<Acknowledgement>(&acknowledgement_key(account))
            .await?
            .map(|a| a.version))
    }

    pub async fn acknowledge_policy(
        &self,
        account: AccountId,
        version: &str,
        at: Timestamp,
    ) -> Result<(), TableError> {
        let acknowledgement = Acknowledgement {
            version: version.to_string(),
            at,
        };
        self.table
            .put(
                to_item(&acknowledgement, &acknowledgement_key(account))?,
                Cond::Always,
            )
            .await
    }
}

fn request_item(request: &PrivacyRequest) -> Result<Item, TableError> {
    Ok(with_index(
        to_item(request, &request_key(request.account_id, &request.id))?,
        "PRIVACY".into(),
        request.id.clone(),
    ))
}
