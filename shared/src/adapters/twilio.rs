//! Twilio's REST API as call tracking uses it: a recording's audio, fetched once archived by
//! us, and then (if the offer says so) deleted from Twilio. Recording URLs are built from the
//! configured API base and the recording's sid, never taken from a request (no SSRF).

use std::time::Duration;

use crate::secret::Secret;

#[derive(Clone)]
pub struct TwilioSettings {
    /// `https://api.twilio.com`.
    pub api_base: String,
    pub account_sid: String,
    pub auth_token: Secret<String>,
    /// The base URL Twilio calls the webhooks at, exactly as configured in Twilio (it is part
    /// of each signature); the public URL unless `LEADSREFER_TWILIO_WEBHOOK_BASE` says.
    pub webhook_base: Option<String>,
    /// No Twilio account: calls come from `leadsrefer simulate-call` alone (see
    /// [`Twilio::simulated`]).
    pub simulated: bool,
}

/// The account sid of simulated calls: Twilio's shape (`AC` and 32 hex digits), no account's.
pub const SIMULATED_ACCOUNT_SID: &str = "AC00000000000000000000000000000000";

#[derive(Debug, thiserror::Error)]
pub enum TwilioError {
    #[error("Twilio could not be reached: {0}")]
    Unreachable(String),
    #[error("Twilio answered HTTP {0}")]
    Refused(u16),
}

pub struct Twilio {
    settings: TwilioSettings,
    client: reqwest::Client,
}

/// How long one download may take (a long call's MP3 is a few megabytes).
const TIMEOUT: Duration = Duration::from_secs(60);

impl Twilio {
    pub fn new(settings: TwilioSettings) -> Self {
        crate::outbound::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .user_agent(concat!("LeadsRefer/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client builds");
        Self { settings, client }
    }

    /// From `LEADSREFER_TWILIO_ACCOUNT_SID`, `LEADSREFER_TWILIO_AUTH_TOKEN`,
    /// `LEADSREFER_TWILIO_API_BASE` and `LEADSREFER_TWILIO_WEBHOOK_BASE`; none without an
    /// account sid (call tracking is then off, and its webhooks refuse every request).
    pub fn from_env() -> Result<Option<Self>, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let Some(account_sid) = var("LEADSREFER_TWILIO_ACCOUNT_SID") else {
            return Ok(None);
        };
        let auth_token = var("LEADSREFER_TWILIO_AUTH_TOKEN").ok_or(
            "LEADSREFER_TWILIO_AUTH_TOKEN is missing: Twilio's auth token signs its webhooks",
        )?;
        Ok(Some(Self::new(TwilioSettings {
            api_base: var("LEADSREFER_TWILIO_API_BASE")
                .unwrap_or_else(|| "https://api.twilio.com".into()),
            account_sid,
            auth_token: Secret::new(auth_token),
            webhook_base: var("LEADSREFER_TWILIO_WEBHOOK_BASE"),
            simulated: false,
        })))
    }

    /// The account of a local runner without Twilio: `leadsrefer simulate-call` signs the
    /// webhooks, as Twilio would, with this installation's own auth token (a key file of the
    /// data folder, `token_file`), so that pay-per-call can be tried without a Twilio account.
    /// Nothing is ever fetched from Twilio for it: the simulator reports no recording.
    pub fn simulated(token_file: &std::path::Path) -> std::io::Result<Self> {
        let key = crate::adapters::local_key::read_or_create_key_file(token_file)?;
        Ok(Self::new(TwilioSettings {
            api_base: "https://api.twilio.com".into(),
            account_sid: SIMULATED_ACCOUNT_SID.into(),
            auth_token: Secret::new(hex::encode(key)),
            webhook_base: None,
            simulated: true,
        }))
    }

    /// Whether calls come from the simulator, not from Twilio.
    pub fn is_simulated(&self) -> bool {
        self.settings.simulated
    }

    pub fn account_sid(&self) -> &str {
        &self.settings.account_sid
    }

    pub fn auth_token(&self) -> &[u8] {
        self.settings.auth_token.expose().as_bytes()
    }

    /// The base URL of the webhooks Twilio calls (no trailing slash).
    pub fn webhook_base<'a>(&'a self, public_url: &'a str) -> &'a str {
        self.settings
            .webhook_base
            .as_deref()
            .unwrap_or(public_url)
            .trim_end_matches('/')
    }

    fn recording_url(&self, recording_sid: &str, extension: &str) -> String {
        format!(
            "{}/2010-04-01/Accounts/{}/Recordings/{recording_sid}.{extension}",
            self.settings.api_base.trim_end_matches('/'),
            self.settings.account_sid
        )
    }

    /// One authenticated call to a recording's resource.
    async fn call(
        &self,
        method: reqwest::Method,
        recording_sid: &str,
        extension: &str,
    ) -> Result<reqwest::Response, TwilioError> {
        self.client
            .request(method, self.recording_url(recording_sid, extension))
            .basic_auth(
                &self.settings.account_sid,
                Some(self.settings.auth_token.expose()),
            )
            .send()
            .await
            .map_err(|e| TwilioError::Unreachable(e.without_url().to_string()))
    }

    /// The recording's audio, as MP3.
    pub async fn fetch_recording(&self, recording_sid: &str) -> Result<Vec<u8>, TwilioError> {
        let response = self
            .call(reqwest::Method::GET, recording_sid, "mp3")
            .await?;
        if !response.status().is_success() {
            return Err(TwilioError::Refused(response.status().as_u16()));
        }
        response
            .bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| TwilioError::Unreachable(e.without_url().to_string()))
    }

    /// Deletes the recording from Twilio; one already gone counts as deleted.
    pub async fn delete_recording(&self, recording_sid: &str) -> Result<(), TwilioError> {
        let response = self
            .call(reqwest::Method::DELETE, recording_sid, "json")
            .await?;
        match response.status().as_u16() {
            200..=299 | 404 => Ok(()),
            status => Err(TwilioError::Refused(status)),
        }
    }
}
