//! What a visitor's IP address says before it is pseudonymised: its country, from an
//! IP-to-country database in MaxMind format, and whether it belongs to a hosting network
//! (a datacenter, not a person at home), from an ASN database in MaxMind's GeoLite2-ASN
//! format. Both are optional: without them clicks take their country from CloudFront's
//! viewer headers only, and no click is flagged as datacenter traffic. Nothing of a lookup
//! is kept but the country code and the flag.
//!
//! The databases are read into memory once per cold start; a lookup is a walk of the
//! in-memory search tree, a microsecond or two.

use std::net::IpAddr;
use std::path::Path;

use maxminddb::Reader;
use serde::Deserialize;

/// The databases' file names in the geo folder (`infra/fetch-geo` fills it).
pub const COUNTRY_FILE: &str = "country.mmdb";
pub const ASN_FILE: &str = "asn.mmdb";

/// Autonomous systems of hosting and cloud providers: their addresses serve machines, and a
/// click from one is a script's or a proxy's far more often than a shopper's.
pub const HOSTING_ASNS: &[u32] = &[
    16509, 14618, // Amazon (AWS)
    15169, 396982, // Google, Google Cloud
    8075,   // Microsoft (Azure)
    14061, 62567, // DigitalOcean
    16276, // OVH
    24940, // Hetzner
    63949, // Akamai Linode
    20473, // Vultr (Choopa)
    45102, // Alibaba Cloud
    31898, // Oracle Cloud
    12876, // Scaleway
    51167, // Contabo
    132203, 45090, // Tencent Cloud
    60781, 16265,  // Leaseweb
    36352,  // ColoCrossing
    9009,   // M247
    46606,  // Unified Layer
    26347,  // DreamHost
    202425, // IP Volume
];

#[derive(Default)]
pub struct Geo {
    country: Option<Reader<Vec<u8>>>,
    asn: Option<Reader<Vec<u8>>>,
}

/// What a lookup found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Network {
    /// ISO 3166-1 alpha-2, upper case.
    pub country: Option<String>,
    pub hosting: bool,
}

/// A country record: ip-location-db's (`country_code`) or MaxMind's (`country.iso_code`).
#[derive(Deserialize)]
struct CountryRecord<'a> {
    #[serde(borrow, default)]
    country_code: Option<&'a str>,
    #[serde(borrow, default)]
    country: Option<IsoCode<'a>>,
}

#[derive(Deserialize)]
struct IsoCode<'a> {
    #[serde(borrow, default)]
    iso_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct AsnRecord {
    #[serde(default)]
    autonomous_system_number: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "{path} is not a MaxMind database: {source}. Fetch it again with infra/fetch-geo, or remove it."
)]
pub struct GeoError {
    path: String,
    source: maxminddb::MaxMindDbError,
}

impl Geo {
    /// No databases: countries come from CloudFront's headers alone.
    pub fn none() -> Self {
        Self::default()
    }

    /// Opens the databases present in `folder`, saying what is missing and what that means.
    pub fn open_folder(folder: &Path) -> Result<Self, GeoError> {
        let open = |file: &str, missing: &str| -> Result<Option<Reader<Vec<u8>>>, GeoError> {
            let path = folder.join(file);
            if !path.exists() {
                tracing::warn!(path = %path.display(), "{missing}");
                return Ok(None);
            }
            Reader::open_readfile(&path)
                .map(Some)
                .map_err(|source| GeoError {
                    path: path.display().to_string(),
                    source,
                })
        };
        Ok(Self {
            country: open(
                COUNTRY_FILE,
                "no IP-to-country database: clicks without a CloudFront country header are recorded without a country; run infra/fetch-geo to fetch one",
            )?,
            asn: open(
                ASN_FILE,
                "no ASN database: clicks from datacenters are not flagged; put a GeoLite2-ASN-format file here to flag them",
            )?,
        })
    }

    pub fn from_bytes(country: Option<Vec<u8>>, asn: Option<Vec<u8>>) -> Result<Self, GeoError> {
        let read = |bytes: Option<Vec<u8>>, what: &str| {
            bytes
                .map(Reader::from_source)
                .transpose()
                .map_err(|source| GeoError {
                    path: what.to_string(),
                    source,
                })
        };
        Ok(Self {
            country: read(country, "the country database")?,
            asn: read(asn, "the ASN database")?,
        })
    }

    pub fn lookup(&self, ip: IpAddr) -> Network {
        let country = self.country.as_ref().and_then(|reader| {
            let found = reader.lookup(ip).ok()?;
            let record: CountryRecord = found.decode().ok()??;
            let code = record
                .country_code
                .or(record.country.and_then(|c| c.iso_code))?;
            (code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphabetic()))
                .then(|| code.to_ascii_uppercase())
        });
        let hosting = self.asn.as_ref().is_some_and(|reader| {
            reader
                .lookup(ip)
                .ok()
                .and_then(|found| found.decode::<AsnRecord>().ok().flatten())
                .and_then(|record| record.autonomous_system_number)
                .is_some_and(|asn| HOSTING_ASNS.contains(&asn))
        });
        Network { country, hosting }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Geo {
        Geo::from_bytes(
            Some(include_bytes!("../tests/fixtures/geo/country.mmdb").to_vec()),
            Some(include_bytes!("../tests/fixtures/geo/asn.mmdb").to_vec()),
        )
        .unwrap()
    }

    fn network(country: Option<&str>, hosting: bool) -> Network {
        Network {
            country: country.map(str::to_string),
            hosting,
        }
    }

    #[test]
    fn countries_and_hosting_networks_are_looked_up() {
        let geo = fixture();
        let lookup = |ip: &str| geo.lookup(ip.parse().unwrap());
        assert_eq!(lookup("198.51.100.7"), network(Some("DE"), true), "AWS");
        assert_eq!(lookup("198.51.100.200"), network(Some("DE"), false));
        assert_eq!(lookup("203.0.113.5"), network(Some("US"), false), "an ISP");
        assert_eq!(lookup("2001:db8::1"), network(Some("FR"), false));
        assert_eq!(lookup("192.0.2.1"), network(None, false), "not in either");
    }

    #[test]
    fn without_databases_nothing_is_known_and_nothing_fails() {
        let ip = "198.51.100.7".parse().unwrap();
        assert_eq!(Geo::none().lookup(ip), Network::default());
        let folder = tempfile::tempdir().unwrap();
        assert_eq!(
            Geo::open_folder(folder.path()).unwrap().lookup(ip),
            Network::default()
        );
        std::fs::write(folder.path().join(COUNTRY_FILE), b"not a database").unwrap();
        let error = Geo::open_folder(folder.path()).err().unwrap().to_string();
        assert!(error.contains("infra/fetch-geo"), "{error}");
    }
}
