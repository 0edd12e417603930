//! Identifiers. Records are keyed by time-ordered ULIDs; tracking links by a short random code
//! that people paste into ads.

use serde::{Deserialize, Serialize};
use ulid::Ulid;

/// Declares a ULID-backed id type that parses from and prints as the 26-character form.
macro_rules! ulid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(pub Ulid);

        /// Written from a buffer on the stack: a click's record holds four ids, and the
        /// click path allocated a string for each.
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut buffer = [0; ulid::ULID_LEN];
                serializer.serialize_str(self.0.array_to_str(&mut buffer))
            }
        }

        impl $name {
            /// Appends the id's text, without the formatting machinery (click path).
            pub fn push_to(&self, out: &mut String) {
                let mut buffer = [0; ulid::ULID_LEN];
                out.push_str(self.0.array_to_str(&mut buffer));
            }

            pub fn parse(text: &str) -> Option<Self> {
                // Only the canonical form (upper case, within 128 bits), so one id has one
                // spelling in every key: it must print back exactly as it was read.
                let ulid = Ulid::from_string(text).ok()?;
                (ulid.to_string() == text).then_some(Self(ulid))
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(text: String) -> Result<Self, String> {
                Self::parse(&text).ok_or_else(|| format!("not a valid id: {text:?}"))
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0.to_string()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

pub(crate) use ulid_id;

ulid_id!(/// An advertiser account.
    AdvertiserId);
ulid_id!(/// An affiliate account.
    AffiliateId);
ulid_id!(/// An offer.
    OfferId);
ulid_id!(/// A recorded click; the `{click_id}` an advertiser posts back.
    ClickId);
ulid_id!(/// A recorded conversion.
    ConversionId);

/// A tracking link's code: 10 characters of `[0-9A-Za-z]`, about 59 random bits.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LinkCode(String);

impl LinkCode {
    pub const LEN: usize = 10;
    const ALPHABET: &'static [u8] =
        b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    pub fn random() -> Self {
        use rand::RngExt;
        let mut rng = rand::rng();
        Self(
            (0..Self::LEN)
                .map(|_| Self::ALPHABET[rng.random_range(0..Self::ALPHABET.len())] as char)
                .collect(),
        )
    }

    pub fn parse(text: &str) -> Option<Self> {
        (text.len() == Self::LEN && text.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then(|| Self(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for LinkCode {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        Self::parse(&text).ok_or_else(|| format!("not a valid link code: {text:?}"))
    }
}

impl From<LinkCode> for String {
    fn from(code: LinkCode) -> String {
        code.0
    }
}

impl std::fmt::Display for LinkCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_one_canonical_spelling() {
        let id = ClickId(Ulid::generate());
        assert_eq!(ClickId::parse(&id.to_string()), Some(id));
        assert_eq!(ClickId::parse(&id.to_string().to_lowercase()), None);
        assert_eq!(ClickId::parse("not-a-ulid"), None);
        assert_eq!(
            ClickId::parse("ZZZZZZZZZZZZZZZZZZZZZZZZZZ"),
            None,
            "overflows 128 bits"
        );
    }

    #[test]
    fn link_codes_are_ten_alphanumerics() {
        let code = LinkCode::random();
        assert_eq!(LinkCode::parse(code.as_str()), Some(code));
        assert_eq!(LinkCode::parse("short"), None);
        assert_eq!(LinkCode::parse("../../etc1"), None);
    }
}
