//! Pseudonymisation at the edge: a visitor's IP becomes a keyed hash and a truncated prefix
//! before anything is stored (EDPB 01/2025: a keyed hash whose key is kept apart from the data;
//! IPv4 truncated to /24, IPv6 to /48).

use std::net::IpAddr;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::tracking::Visitor;
use crate::secret::Secret;

#[derive(Clone)]
pub struct Pseudonymizer {
    /// The keyed MAC, with the key schedule done once and cloned per use.
    mac: Hmac<Sha256>,
}

impl Pseudonymizer {
    pub fn new(key: &Secret<Vec<u8>>) -> Self {
        Self {
            mac: Hmac::new_from_slice(key.expose()).expect("HMAC takes keys of any length"),
        }
    }

    /// 128 bits of HMAC-SHA256 over the address's canonical bytes, in hex.
    pub fn ip_hash(&self, ip: IpAddr) -> String {
        let mut mac = self.mac.clone();
        match canonical(ip) {
            IpAddr::V4(v4) => mac.update(&v4.octets()),
            IpAddr::V6(v6) => mac.update(&v6.octets()),
        }
        // Into a buffer: `hex::encode` goes char by char, which showed in the click's profile.
        let mut text = [0; 32];
        hex::encode_to_slice(&mac.finalize().into_bytes()[..16], &mut text)
            .expect("16 bytes fill 32 hex digits");
        std::str::from_utf8(&text)
            .expect("hex digits are ASCII")
            .to_owned()
    }

    /// A caller's phone number as 128 bits of the same keyed MAC, in hex (domain-separated
    /// from addresses, so that no number and address share a pseudonym).
    pub fn caller_hash(&self, number: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(b"caller\0");
        mac.update(number.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// A signature of `message` for short-lived links (domain-separated by `purpose`), hex.
    pub fn sign(&self, purpose: &str, message: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(b"link\0");
        mac.update(purpose.as_bytes());
        mac.update(b"\0");
        mac.update(message.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether `signature` is [`Pseudonymizer::sign`]'s, compared in constant time.
    pub fn verify(&self, purpose: &str, message: &str, signature: &str) -> bool {
        subtle::ConstantTimeEq::ct_eq(self.sign(purpose, message).as_bytes(), signature.as_bytes())
            .into()
    }

    pub fn visitor(&self, ip: IpAddr, country: Option<String>) -> Visitor {
        Visitor {
            ip_hash: self.ip_hash(ip),
            ip_prefix: truncated_prefix(ip),
            country,
        }
    }
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymizer([key redacted])")
    }
}

/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`) is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The address as text, as `to_string` writes it; IPv4 digit by digit, since every click's
/// address is written (into the request API Gateway's shape) and read back.
pub fn address_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let mut text = String::with_capacity(15);
            for (index, octet) in v4.octets().into_iter().enumerate() {
                if index > 0 {
                    text.push('.');
                }
                push_octet(&mut text, octet);
            }
            text
        }
        IpAddr::V6(v6) => v6.to_string(),
    }
}

/// Appends an octet in decimal. Formatting machinery showed in the click path's profile.
fn push_octet(out: &mut String, octet: u8) {
    let digits = [octet / 100, octet / 10 % 10, octet % 10];
    let first = digits.iter().position(|&d| d != 0).unwrap_or(2);
    out.extend(digits[first..].iter().map(|&d| char::from(b'0' + d)));
}

/// The /24 (IPv4) or /48 (IPv6) network the address is in, in CIDR notation.
pub fn truncated_prefix(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let mut prefix = String::with_capacity(18);
            for octet in &v4.octets()[..3] {
                push_octet(&mut prefix, *octet);
                prefix.push('.');
            }
            prefix.push_str("0/24");
            prefix
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let network = std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0);
            format!("{network}/48")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_written_as_formatting_would() {
        for octet in 0..=255u8 {
            let ip = IpAddr::from([octet, 255 - octet, octet / 10, 9]);
            assert_eq!(address_text(ip), ip.to_string());
        }
        let v6: IpAddr = "2001:db8::8a2e:370:7334".parse().unwrap();
        assert_eq!(address_text(v6), v6.to_string());
    }

    #[test]
    fn ip_hashes_are_32_lower_case_hex_digits_of_the_mac() {
        let pseudonymizer = Pseudonymizer::new(&Secret::new(b"key".to_vec()));
        let ip: IpAddr = "203.0.113.77".parse().unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(b"key").unwrap();
        mac.update(&[203, 0, 113, 77]);
        assert_eq!(
            pseudonymizer.ip_hash(ip),
            hex::encode(&mac.finalize().into_bytes()[..16])
        );
    }

    #[test]
    fn v4_prefixes_are_written_as_formatting_would() {
        for octet in 0..=255u8 {
            let ip = std::net::Ipv4Addr::new(octet, 255 - octet, octet / 10, 9);
            assert_eq!(
                truncated_prefix(ip.into()),
                format!("{octet}.{}.{}.0/24", 255 - octet, octet / 10)
            );
        }
    }

    #[test]
    fn prefixes_truncate_to_24_and_48_bits() {
        assert_eq!(
            truncated_prefix("203.0.113.77".parse().unwrap()),
            "203.0.113.0/24"
        );
        assert_eq!(
            truncated_prefix("2001:db8:abcd:12::1".parse().unwrap()),
            "2001:db8:abcd::/48"
        );
        assert_eq!(
            truncated_prefix("::ffff:203.0.113.77".parse().unwrap()),
            "203.0.113.0/24"
        );
    }

    #[test]
    fn hashes_are_keyed_stable_and_never_the_address() {
        let a = Pseudonymizer::new(&Secret::new(b"key-a".to_vec()));
        let b = Pseudonymizer::new(&Secret::new(b"key-b".to_vec()));
        let ip: IpAddr = "203.0.113.77".parse().unwrap();
        assert_eq!(a.ip_hash(ip), a.ip_hash(ip));
        assert_eq!(
            a.ip_hash(ip),
            a.ip_hash("::ffff:203.0.113.77".parse().unwrap())
        );
        assert_ne!(a.ip_hash(ip), b.ip_hash(ip));
        assert_eq!(a.ip_hash(ip).len(), 32);
        assert!(!a.ip_hash(ip).contains("203"));
    }
}
