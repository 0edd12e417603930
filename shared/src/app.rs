//! The application state: the ports, built once per process (per cold start in Lambda) and
//! cloned cheaply into every request.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::adapters::fs::FolderBlobs;
use crate::adapters::local_key::{LocalKeys, read_or_create_key_file};
use crate::adapters::memory_visits::MemoryVisits;
use crate::adapters::outbox::OutboxMailer;
use crate::adapters::sqlite::SqliteTable;
use crate::adapters::twilio::Twilio;
#[cfg(feature = "aws")]
use crate::adapters::{
    aws::{AwsSettings, s3_client, sdk_config},
    dynamodb::DynamoTable,
    kms::KmsKeys,
    s3::S3Blobs,
    ses::SesMailer,
};
use crate::domain::email::EmailAddress;
use crate::domain::privacy::Pseudonymizer;
use crate::geo::Geo;
use crate::outbound::Outbound;
use crate::payouts::PayoutSettings;
use crate::ports::{Blobs, Clock, Keys, Mailer, SystemClock, Table, Visits};
use crate::secret::Secret;
use crate::store::Store;
#[cfg(feature = "aws")]
use crate::store::TableVisits;

/// The public base URL unless `LEADSREFER_PUBLIC_URL` (or the local runner) says otherwise.
pub const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:3000";

/// The sender of transactional mail unless `LEADSREFER_MAIL_FROM` says otherwise.
pub const DEFAULT_SENDER: &str = "no-reply@leadsrefer.local";

#[derive(Clone)]
pub struct App {
    pub table: Arc<dyn Table>,
    pub blobs: Arc<dyn Blobs>,
    pub keys: Arc<dyn Keys>,
    pub mailer: Arc<dyn Mailer>,
    pub clock: Arc<dyn Clock>,
    pub pseudonymizer: Pseudonymizer,
    pub store: Store,
    /// The base URL links in mail and API answers start with (`LEADSREFER_PUBLIC_URL`; the
    /// local runner sets its own address).
    pub public_url: Arc<str>,
    /// Calls affiliates' postback URLs (and, later, payout providers).
    pub outbound: Outbound,
    /// IP-to-country and ASN databases, when present.
    pub geo: Arc<Geo>,
    /// Visitors' recent clicks, for unique clicks and floods.
    pub visits: Arc<dyn Visits>,
    /// How payouts are made.
    pub payouts: Arc<PayoutSettings>,
    /// Call tracking's Twilio account; none turns call tracking off.
    pub twilio: Option<Arc<Twilio>>,
    /// Which adapters it runs on: the privacy policy page names the subprocessors in use.
    pub backend: Backend,
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(
        "cannot use the data folder {path}: {source}. Pass a writable folder with --data (or LEADSREFER_DATA)."
    )]
    DataFolder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open {what} in {path}: {source}")]
    Adapter {
        what: &'static str,
        path: PathBuf,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{name} is {value:?}: {expected}")]
    Config {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// The embedded adapters' files inside a data folder.
pub struct DataLayout {
    pub database: PathBuf,
    pub blobs: PathBuf,
    pub outbox: PathBuf,
    pub master_key: PathBuf,
    pub ip_hash_key: PathBuf,
    /// The auth token of simulated calls, when no Twilio account is configured.
    pub twilio_simulator_key: PathBuf,
    /// Visitors' recent clicks, saved by a clean shutdown.
    pub visits: PathBuf,
}

impl DataLayout {
    pub fn in_folder(data: &Path) -> Self {
        Self {
            database: data.join("leadsrefer.sqlite3"),
            blobs: data.join("blobs"),
            outbox: data.join("outbox"),
            // Keys live in their own folder, apart from the data they protect.
            master_key: data.join("keys").join("master.key"),
            ip_hash_key: data.join("keys").join("ip-hash.key"),
            twilio_simulator_key: data.join("keys").join("twilio-simulator.key"),
            visits: data.join("visits.json"),
        }
    }
}

impl App {
    /// The same application, answering with links under `url` (no trailing slash).
    pub fn with_geo(mut self, geo: Geo) -> Self {
        self.geo = Arc::new(geo);
        self
    }

    pub fn with_public_url(mut self, url: &str) -> Self {
        self.public_url = url.trim_end_matches('/').into();
        self
    }

    /// Every port on its embedded adapter, in `data` (created if missing).
    pub fn embedded(
        data: &Path,
        clock: Arc<dyn Clock>,
        sender: EmailAddress,
    ) -> Result<Self, SetupError> {
        let layout = DataLayout::in_folder(data);
        let new_folder = !data.exists();
        for folder in [data, &data.join("keys")] {
            std::fs::create_dir_all(folder).map_err(|source| SetupError::DataFolder {
                path: folder.to_path_buf(),
                source,
            })?;
        }
        let adapter = |what: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |e: Box<dyn std::error::Error + Send + Sync>| SetupError::Adapter {
                what,
                path,
                source: e,
            }
        };
        let table = SqliteTable::open(&layout.database, clock.clone())
            .map_err(|e| adapter("the database", &layout.database)(e.into()))?;
        let blobs = FolderBlobs::open(&layout.blobs)
            .map_err(|e| adapter("the blob folder", &layout.blobs)(e.into()))?;
        let keys = LocalKeys::open(&layout.master_key)
            .map_err(|e| adapter("the master key", &layout.master_key)(e.into()))?;
        let mailer = OutboxMailer::open(&layout.outbox, sender, clock.clone())
            .map_err(|e| adapter("the outbox", &layout.outbox)(e.into()))?;
        let ip_key = read_or_create_key_file(&layout.ip_hash_key)
            .map_err(|e| adapter("the IP-hash key", &layout.ip_hash_key)(e.into()))?;
        let held = crate::adapters::memory_visits::held_from_env().map_err(|value| {
            SetupError::Config {
                name: "LEADSREFER_VISITORS_HELD",
                value,
                expected: "give a whole number of visitors, at least 32",
            }
        })?;
        let visits = MemoryVisits::open(&layout.visits, clock.now(), held)
            .map_err(|e| adapter("the saved visits", &layout.visits)(e.into()))?;
        // The folder itself only if made here: an existing one may be the operator's own.
        let own = [
            new_folder.then_some(data),
            Some(&layout.blobs),
            Some(&layout.outbox),
            layout.master_key.parent(),
            Some(&layout.database),
            Some(&layout.database.with_extension("sqlite3-wal")),
            Some(&layout.database.with_extension("sqlite3-shm")),
            Some(&layout.visits),
        ];
        owner_only(own.into_iter().flatten()).map_err(|source| SetupError::DataFolder {
            path: data.to_path_buf(),
            source,
        })?;
        let created = table.created();
        let table: Arc<dyn Table> = Arc::new(table);
        let store = Store::new(table.clone());
        if created {
            store.counts_totals_from_start();
        }
        Ok(Self {
            store,
            table,
            blobs: Arc::new(blobs),
            keys: Arc::new(keys),
            mailer: Arc::new(mailer),
            clock,
            pseudonymizer: Pseudonymizer::new(&Secret::new(ip_key)),
            public_url: DEFAULT_PUBLIC_URL.into(),
            outbound: Outbound::new(allow_private_from_env()),
            geo: Arc::new(Geo::none()),
            visits: Arc::new(visits),
            payouts: Arc::new(payout_settings()?),
            twilio: Some(local_twilio(data)?),
            backend: Backend::Embedded,
        })
    }

    /// Every port on AWS: DynamoDB, S3, KMS and SES, with clients built once, here.
    #[cfg(feature = "aws")]
    pub async fn aws(
        settings: &AwsSettings,
        clock: Arc<dyn Clock>,
        sender: EmailAddress,
    ) -> Result<Self, SetupError> {
        let config = sdk_config().await;
        let table: Arc<dyn Table> = Arc::new(DynamoTable::new(
            aws_sdk_dynamodb::Client::new(&config),
            &settings.table,
            clock.clone(),
        ));
        Ok(Self {
            store: Store::new(table.clone()),
            visits: Arc::new(TableVisits::new(table.clone())),
            table,
            blobs: Arc::new(S3Blobs::new(
                s3_client(&config, settings.s3_path_style),
                &settings.bucket,
                &settings.bucket_prefix,
                Some(settings.kms_key_id.clone()),
            )),
            keys: Arc::new(KmsKeys::new(
                aws_sdk_kms::Client::new(&config),
                &settings.kms_key_id,
            )),
            mailer: Arc::new(SesMailer::new(
                aws_sdk_sesv2::Client::new(&config),
                sender,
                clock.clone(),
            )),
            clock,
            pseudonymizer: Pseudonymizer::new(&settings.ip_hash_key),
            public_url: DEFAULT_PUBLIC_URL.into(),
            outbound: Outbound::new(allow_private_from_env()),
            geo: Arc::new(Geo::none()),
            payouts: Arc::new(payout_settings()?),
            twilio: twilio()?,
            backend: Backend::Aws,
        })
    }

    /// The application on the AWS adapters the environment names (see [`AwsSettings`]), and
    /// where its data lives, in words.
    #[cfg(feature = "aws")]
    pub async fn aws_from_env(
        clock: Arc<dyn Clock>,
        sender: EmailAddress,
    ) -> Result<(Self, String), SetupError> {
        let settings = AwsSettings::from_env()?;
        let place = format!(
            "on AWS: table {}, bucket {}",
            settings.table, settings.bucket
        );
        Ok((Self::aws(&settings, clock, sender).await?, place))
    }

    /// A build without the AWS adapters says how to get one.
    #[cfg(not(feature = "aws"))]
    pub async fn aws_from_env(
        _clock: Arc<dyn Clock>,
        _sender: EmailAddress,
    ) -> Result<(Self, String), SetupError> {
        Err(SetupError::Config {
            name: "the backend",
            value: "aws".into(),
            expected: NO_AWS_ADAPTERS,
        })
    }

    /// The state a process configured by its environment runs on: Lambda functions default to
    /// the `aws` backend, the local runner to `embedded`; `LEADSREFER_BACKEND` overrides either.
    ///
    /// - `embedded`: the data folder is `LEADSREFER_DATA` (default `./.leadsrefer`).
    /// - `aws`: see [`AwsSettings`].
    ///
    /// `LEADSREFER_MAIL_FROM` is the sender address for both.
    pub async fn from_env(default: Backend) -> Result<Self, SetupError> {
        let sender = sender_from_env()?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let backend = Backend::from_env(default)?;
        let public_url = public_url_from_env(backend)?.unwrap_or_else(|| DEFAULT_PUBLIC_URL.into());
        let app = match backend {
            Backend::Embedded => Self::embedded(&data_folder(), clock, sender)?,
            Backend::Aws => Self::aws_from_env(clock, sender).await?.0,
        };
        let geo = open_geo(backend, &data_folder())?;
        Ok(app.with_public_url(&public_url).with_geo(geo))
    }
}

/// Takes every permission but the owner's from these files and folders (those that exist):
/// the data folder holds accounts, ACH files with whole account numbers, exports and mail with
/// tokens. The local runner creates everything owner-only (its umask); this closes what an
/// earlier version left readable to others, and what a process without that umask creates
/// stays out of their reach inside folders closed here.
fn owner_only<'a>(paths: impl IntoIterator<Item = &'a Path>) -> std::io::Result<()> {
    #[cfg(unix)]
    for path in paths {
        use std::os::unix::fs::PermissionsExt;
        let mode = match std::fs::metadata(path) {
            Ok(metadata) => metadata.permissions().mode(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error),
        };
        if mode & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))?;
        }
    }
    Ok(())
}

/// Which adapter set a process runs on.
/// The IP databases (see [`Geo`]) in `LEADSREFER_GEO_DIR`, else in `geo/` of the data folder
/// (embedded) or a Lambda layer's `/opt/geo` (AWS); missing ones are said and done without.
pub fn open_geo(backend: Backend, data: &Path) -> Result<Geo, SetupError> {
    let folder = std::env::var_os("LEADSREFER_GEO_DIR").map_or_else(
        || match backend {
            Backend::Embedded => data.join("geo"),
            Backend::Aws => PathBuf::from("/opt/geo"),
        },
        PathBuf::from,
    );
    Geo::open_folder(&folder).map_err(|e| SetupError::Adapter {
        what: "the geo databases",
        path: folder.clone(),
        source: e.into(),
    })
}

/// The payout configuration from the environment (see [`PayoutSettings::from_env`]).
fn payout_settings() -> Result<PayoutSettings, SetupError> {
    PayoutSettings::from_env().map_err(|problem| SetupError::Adapter {
        what: "the payout settings",
        path: PathBuf::from("(environment)"),
        source: problem.into(),
    })
}

/// Call tracking's Twilio account from the environment (see [`Twilio::from_env`]).
/// The Twilio account a local runner takes calls for: the configured one, or without one the
/// simulator's (`leadsrefer simulate-call`), whose token is a key file of the data folder. The
/// simulator reads it from here too, without opening the rest of the data.
pub fn local_twilio(data: &Path) -> Result<Arc<Twilio>, SetupError> {
    if let Some(twilio) = twilio()? {
        return Ok(twilio);
    }
    let key = DataLayout::in_folder(data).twilio_simulator_key;
    Twilio::simulated(&key)
        .map(Arc::new)
        .map_err(|source| SetupError::Adapter {
            what: "the call simulator's key",
            path: key,
            source: source.into(),
        })
}

fn twilio() -> Result<Option<Arc<Twilio>>, SetupError> {
    Twilio::from_env()
        .map(|twilio| twilio.map(Arc::new))
        .map_err(|problem| SetupError::Adapter {
            what: "the Twilio settings",
            path: PathBuf::from("(environment)"),
            source: problem.into(),
        })
}

/// The embedded backend's data folder: `LEADSREFER_DATA`, else `.leadsrefer`.
fn data_folder() -> PathBuf {
    std::env::var_os("LEADSREFER_DATA").map_or_else(|| PathBuf::from(".leadsrefer"), PathBuf::from)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, folders, a key file, an outbox folder.
    Embedded,
    /// DynamoDB, S3, KMS, SES.
    Aws,
}

impl Backend {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "embedded" => Some(Self::Embedded),
            "aws" => Some(Self::Aws),
            _ => None,
        }
    }

    /// `LEADSREFER_BACKEND`, or `default` when unset.
    pub fn from_env(default: Self) -> Result<Self, SetupError> {
        match std::env::var("LEADSREFER_BACKEND") {
            Err(_) => Ok(default),
            Ok(value) => Self::parse(&value).ok_or(SetupError::Config {
                name: "LEADSREFER_BACKEND",
                value,
                expected: "must be `embedded` or `aws`",
            }),
        }
    }
}

/// `LEADSREFER_OUTBOUND_ALLOW_PRIVATE=true`: outbound calls (affiliates' postback URLs) may
/// reach private and loopback addresses. Off unless set, on every backend: affiliates choose
/// those URLs.
fn allow_private_from_env() -> bool {
    std::env::var("LEADSREFER_OUTBOUND_ALLOW_PRIVATE").as_deref() == Ok("true")
}

/// `leadsrefer provision --backend aws`: the table, bucket and key that `LEADSREFER_TABLE`,
/// `LEADSREFER_BUCKET` and (if set) `LEADSREFER_KMS_KEY_ID` name, made or kept (see
/// [`crate::adapters::provision`]); answers the lines to print.
#[cfg(feature = "aws")]
pub async fn provision_from_env() -> Result<Vec<String>, String> {
    use crate::adapters::provision::{Names, provision};
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let names = Names {
        table: var("LEADSREFER_TABLE")
            .ok_or("LEADSREFER_TABLE is missing: the table to make (leadsrefer-<stage>)")?,
        bucket: var("LEADSREFER_BUCKET")
            .ok_or("LEADSREFER_BUCKET is missing: the bucket to make (a globally unique name)")?,
        kms_key_id: var("LEADSREFER_KMS_KEY_ID"),
        s3_path_style: var("LEADSREFER_S3_PATH_STYLE").as_deref() == Some("true"),
    };
    let config = crate::adapters::aws::sdk_config().await;
    let made = provision(&config, &names)
        .await
        .map_err(|e| e.to_string())?;
    let mut lines = made.report;
    lines.push(format!(
        "For the runner and its commands: export LEADSREFER_TABLE={} LEADSREFER_BUCKET={} LEADSREFER_KMS_KEY_ID={}",
        made.table, made.bucket, made.kms_key_id
    ));
    lines.push(
        "and LEADSREFER_IP_HASH_KEY (openssl rand -hex 32, made once and kept: it keys every visitor's pseudonym).".into(),
    );
    Ok(lines)
}

/// A build without the AWS adapters says how to get one.
#[cfg(not(feature = "aws"))]
pub async fn provision_from_env() -> Result<Vec<String>, String> {
    Err(format!("--backend aws: {NO_AWS_ADAPTERS}"))
}

/// What a build without the `aws` feature answers to anything on AWS.
pub const NO_AWS_ADAPTERS: &str = "this build has no AWS adapters: build it with the `aws` \
     feature (`cargo install --path infra --features aws`, or \
     `cargo run -p leadsrefer --features aws -- …`)";

/// `LEADSREFER_PUBLIC_URL`: where links in mail and answers point. Required on AWS, where a
/// function has no address of its own and mail would otherwise link to the local default;
/// the embedded backend falls back on its own (`None`).
pub fn public_url_from_env(backend: Backend) -> Result<Option<String>, SetupError> {
    let value = std::env::var("LEADSREFER_PUBLIC_URL").unwrap_or_default();
    if value.trim().is_empty() {
        return match backend {
            Backend::Embedded => Ok(None),
            Backend::Aws => Err(SetupError::Config {
                name: "LEADSREFER_PUBLIC_URL",
                value,
                expected: "set it to the deployment's public URL (the stack's PublicUrl): the links in its mail point there",
            }),
        };
    }
    match url::Url::parse(&value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(Some(value)),
        _ => Err(SetupError::Config {
            name: "LEADSREFER_PUBLIC_URL",
            value,
            expected: "an http(s) URL, such as https://track.example.com",
        }),
    }
}

pub fn sender_from_env() -> Result<EmailAddress, SetupError> {
    let value = std::env::var("LEADSREFER_MAIL_FROM").unwrap_or_else(|_| DEFAULT_SENDER.into());
    EmailAddress::parse(&value).map_err(|expected| SetupError::Config {
        name: "LEADSREFER_MAIL_FROM",
        value,
        expected,
    })
}
