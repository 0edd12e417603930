//! Outbound HTTP: the one client (reqwest, rustls on ring) that calls affiliates' postback URLs
//! and, later, payout and billing providers. Built once per process.
//!
//! Affiliates choose the URLs this server calls, so the client refuses, by default, every
//! address that is not public (loopback, private, link-local, the cloud metadata service…):
//! both literal IPs in the URL and every address a host name resolves to, checked at connect
//! time so a DNS answer cannot swap in a private address after the check (SSRF, CWE-918).
//! An operator may allow private addresses (`LEADSREFER_OUTBOUND_ALLOW_PRIVATE=true`), to reach
//! servers on their own network; nothing allows them by default, the local runner included.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Once};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// How long one outbound call may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct Outbound {
    client: reqwest::Client,
    allow_private: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("refused: {0} is not a public address")]
    PrivateAddress(String),
    #[error("the URL is not an http(s) URL")]
    BadUrl,
    #[error("the request failed: {0}")]
    Failed(String),
}

impl OutboundError {
    /// Whether trying again later could succeed.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::PrivateAddress(_) | Self::BadUrl)
    }
}

/// Whether an address is reachable on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
                || (a == 198 && (b == 18 || b == 19)) // benchmarking
                || a >= 240)
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || (first & 0xfe00) == 0xfc00 // unique local
                    || (first & 0xffc0) == 0xfe80 // link-local
                    || first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
            }
        },
    }
}

/// Resolves names, then drops every answer that is not public.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addresses: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = addresses
                .into_iter()
                .filter(|a| is_public(a.ip()))
                .collect();
            if public.is_empty() {
                return Err(Box::new(OutboundError::PrivateAddress(host))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

/// Installs the process-wide rustls crypto provider (ring, like the AWS clients) that every
/// reqwest client needs; idempotent.
pub fn install_crypto_provider() {
    static PROVIDER: Once = Once::new();
    PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl Outbound {
    pub fn new(allow_private: bool) -> Self {
        install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("LeadsRefer/", env!("CARGO_PKG_VERSION")));
        if !allow_private {
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        let client = builder.build().expect("the HTTP client builds");
        Self {
            client,
            allow_private,
        }
    }

    /// Refuses a URL that names a host that is not public, unless private addresses are
    /// allowed: a literal address (in any of the forms URLs allow, such as `0x7f.0.0.1`) or
    /// `localhost`. For where an affiliate saves a URL, so that the mistake is named then; a
    /// name is resolved, and its addresses checked, only when it is called.
    /// Answers the URL parsed.
    pub fn check_destination(&self, url: &str) -> Result<url::Url, OutboundError> {
        let parsed = url::Url::parse(url).map_err(|_| OutboundError::BadUrl)?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(OutboundError::BadUrl);
        }
        if self.allow_private {
            return Ok(parsed);
        }
        let private = match parsed.host() {
            Some(url::Host::Ipv4(v4)) => (!is_public(IpAddr::V4(v4))).then(|| v4.to_string()),
            Some(url::Host::Ipv6(v6)) => (!is_public(IpAddr::V6(v6))).then(|| v6.to_string()),
            Some(url::Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                (name == "localhost" || name.ends_with(".localhost")).then_some(name)
            }
            None => return Err(OutboundError::BadUrl),
        };
        match private {
            Some(host) => Err(OutboundError::PrivateAddress(host)),
            None => Ok(parsed),
        }
    }

    /// GETs `url`; answers the status code. Redirects are not followed (a redirect could lead
    /// to a private address).
    pub async fn get(&self, url: &str) -> Result<u16, OutboundError> {
        let parsed = self.check_destination(url)?;
        match self.client.get(parsed).send().await {
            Ok(response) => Ok(response.status().as_u16()),
            Err(error) => {
                // A refusal by the resolver surfaces as a connect error carrying ours.
                let mut source: Option<&dyn std::error::Error> = Some(&error);
                while let Some(cause) = source {
                    if let Some(OutboundError::PrivateAddress(host)) =
                        cause.downcast_ref::<OutboundError>()
                    {
                        return Err(OutboundError::PrivateAddress(host.clone()));
                    }
                    source = cause.source();
                }
                // No URL in the message: it may carry an affiliate's secret token.
                Err(OutboundError::Failed(error.without_url().to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[tokio::test]
    async fn private_targets_are_refused_before_any_connection() {
        let outbound = Outbound::new(false);
        for url in [
            "http://127.0.0.1:9/x",
            "http://[::1]:9/",
            "http://169.254.169.254/latest/meta-data/",
            "http://localhost:9/",
        ] {
            assert!(
                matches!(
                    outbound.get(url).await,
                    Err(OutboundError::PrivateAddress(_))
                ),
                "{url}"
            );
        }
        assert!(matches!(
            outbound.get("ftp://example.com/").await,
            Err(OutboundError::BadUrl)
        ));
    }

    #[test]
    fn a_saved_destination_must_name_a_public_host_unless_private_ones_are_allowed() {
        let strict = Outbound::new(false);
        for url in [
            "http://127.0.0.1:3000/api/admin/accounts",
            "http://0x7f.0.0.1/pb",
            "http://2130706433/pb",
            "http://[::ffff:10.0.0.1]/pb",
            "http://LocalHost./pb",
            "http://metadata.localhost/pb",
        ] {
            assert!(
                matches!(
                    strict.check_destination(url),
                    Err(OutboundError::PrivateAddress(_))
                ),
                "{url}"
            );
        }
        for url in [
            "https://publisher.example/pb?c={click_id}",
            "http://93.184.216.34/pb",
            "https://localhost.example.com/pb",
        ] {
            assert!(strict.check_destination(url).is_ok(), "{url}");
        }
        let allowing = Outbound::new(true);
        assert!(allowing.check_destination("http://127.0.0.1:9/pb").is_ok());
        assert!(matches!(
            allowing.check_destination("file:///etc/passwd"),
            Err(OutboundError::BadUrl)
        ));
    }
}
