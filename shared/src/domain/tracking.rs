//! Tracking records: parties, links, clicks and conversions.
//!
//! A click keeps a pseudonym of its visitor, never the raw IP or user-agent (DESIGN.md,
//! "Privacy and security"). Clicks and conversions expire three years after they are made.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::ids::{AdvertiserId, AffiliateId, ClickId, ConversionId, LinkCode, OfferId};
use super::money::Money;
use super::offer::DeviceType;

/// How long tracking records are kept (privacy policy §6). 3 × 365 days plus a leap day.
pub const TRACKING_RETENTION: SignedDuration = SignedDuration::from_hours(24 * (3 * 365 + 1));

/// The epoch second at which a tracking record made at `at` expires.
pub fn tracking_expiry(at: Timestamp) -> i64 {
    (at + TRACKING_RETENTION).as_second()
}

/// An affiliate's tracking link for one offer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub code: LinkCode,
    pub offer_id: OfferId,
    pub affiliate_id: AffiliateId,
    pub advertiser_id: AdvertiserId,
    pub created_at: Timestamp,
    /// Sub-ids a click gets when it does not give its own.
    #[serde(default)]
    pub subs: Subs,
}

/// The affiliate's sub-ids `sub1`…`sub5`, each at most [`Subs::MAX_LEN`] characters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Subs([Option<String>; 5]);

impl Subs {
    pub const NAMES: [&'static str; 5] = ["sub1", "sub2", "sub3", "sub4", "sub5"];
    pub const MAX_LEN: usize = 255;

    pub fn new(values: [Option<String>; 5]) -> Self {
        Self(values)
    }

    pub fn get(&self, index: usize) -> Option<&str> {
        self.0.get(index).and_then(|v| v.as_deref())
    }

    /// These sub-ids, each missing one taken from `defaults`.
    pub fn or(self, defaults: &Subs) -> Subs {
        let mut values = self.0;
        for (value, default) in values.iter_mut().zip(&defaults.0) {
            if value.is_none() {
                value.clone_from(default);
            }
        }
        Subs(values)
    }
}

/// What is kept of the visitor behind a click: a keyed hash of the IP (to spot repeats and
/// fraud), its truncated network prefix, and the country when the edge supplies it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Visitor {
    pub ip_hash: String,
    pub ip_prefix: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Click {
    pub id: ClickId,
    pub link: LinkCode,
    pub offer_id: OfferId,
    pub affiliate_id: AffiliateId,
    pub advertiser_id: AdvertiserId,
    pub at: Timestamp,
    pub subs: Subs,
    pub visitor: Visitor,
    /// The ISO 3166-2 subdivision (state, province) CloudFront saw, when it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// From the user-agent, which itself is not kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser: Option<String>,
    /// Why this click is suspect or was not sent on, if it is: `bot`, `link_preview`,
    /// `no_user_agent`, `head_request`, `click_flood`, `datacenter`, `country_excluded`,
    /// `device_excluded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    /// The first click of this visitor on this link within the offer's unique-click window.
    #[serde(default = "yes")]
    pub unique: bool,
    pub expires_at: i64,
}

fn yes() -> bool {
    true
}

impl Click {
    /// Flags that mean no person clicked (or one clicked far too often): such clicks are
    /// kept, but not counted as clicks.
    pub const ROBOT_FLAGS: [&'static str; 5] = [
        "bot",
        "link_preview",
        "no_user_agent",
        "head_request",
        "click_flood",
    ];

    /// The flag of the click a static number's call stands on: counted as a call, not a click.
    pub const CALL_FLAG: &'static str = "call";

    /// The flag of a test click, made by "send a test conversion": a record only, counted
    /// nowhere; a conversion on it is a test conversion.
    pub const TEST_FLAG: &'static str = "test";

    pub fn is_test(&self) -> bool {
        self.flags.iter().any(|f| f == Self::TEST_FLAG)
    }

    /// A click no browser made, on `link`: the one a static number's call stands on
    /// ([`Self::CALL_FLAG`]) or a test ([`Self::TEST_FLAG`]), with the link's sub-ids and no
    /// device.
    pub fn standing_for(
        flag: &'static str,
        link: &Link,
        id: ClickId,
        at: Timestamp,
        visitor: Visitor,
        unique: bool,
    ) -> Self {
        Self {
            id,
            link: link.code.clone(),
            offer_id: link.offer_id,
            affiliate_id: link.affiliate_id,
            advertiser_id: link.advertiser_id,
            at,
            subs: link.subs.clone(),
            visitor,
            region: None,
            device: None,
            os: None,
            browser: None,
            flags: vec![flag.into()],
            unique,
            expires_at: tracking_expiry(at),
        }
    }

    /// Whether it is the click a static number's call stands on: the call is a visit of its
    /// own, with no click before it.
    pub fn stands_for_a_call(&self) -> bool {
        self.flags.iter().any(|f| f == Self::CALL_FLAG)
    }

    /// Whether it counts as a click (a person's), unique or not.
    pub fn counts(&self) -> bool {
        !self
            .flags
            .iter()
            .any(|f| Self::ROBOT_FLAGS.contains(&f.as_str()))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConversionStatus {
    Pending,
    Approved,
    Rejected,
    Reversed,
    /// Made by "send a test conversion" (or posted back on its test click): a record only,
    /// never money, never counted, never decided.
    Test,
}

/// A conversion event's name: `conversion` by default; lower-case letters, digits, `_`, `-`.
impl ConversionStatus {
    /// Its name, as the API and postback macros spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Reversed => "reversed",
            Self::Test => "test",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventName(String);

impl EventName {
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        if text.is_empty()
            || text.len() > 64
            || !text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err("must be 1 to 64 characters of a-z, 0-9, _ or -");
        }
        Ok(Self(text.to_string()))
    }

    pub fn default_event() -> Self {
        Self(Self::DEFAULT.into())
    }

    /// The event a postback names, or `conversion` when it names none.
    pub fn parse_or_default(text: Option<&str>) -> Result<Self, &'static str> {
        text.map_or_else(|| Ok(Self::default_event()), Self::parse)
    }

    pub const DEFAULT: &'static str = "conversion";

    pub fn is_default(&self) -> bool {
        self.0 == Self::DEFAULT
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EventName {
    type Error = &'static str;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<EventName> for String {
    fn from(name: EventName) -> String {
        name.0
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversion {
    pub id: ConversionId,
    pub click_id: ClickId,
    pub link: LinkCode,
    pub offer_id: OfferId,
    pub affiliate_id: AffiliateId,
    pub advertiser_id: AdvertiserId,
    pub event: EventName,
    /// The advertiser's transaction id; repeats of it are the same conversion.
    pub txn_id: Option<String>,
    /// The sale amount the advertiser reported.
    pub sale: Option<Money>,
    pub revenue: Money,
    pub payout: Money,
    pub status: ConversionStatus,
    /// Why it was rejected, such as `cap`.
    #[serde(default)]
    pub reason: Option<String>,
    /// Why it is suspect, if it is (`robot_click`, `too_fast`, `ip_mismatch`): such a conversion
    /// is held for review, never approved automatically.
    #[serde(default)]
    pub flags: Vec<String>,
    /// When an approved conversion's earnings become payable (approval + the offer's hold).
    #[serde(default)]
    pub payable_at: Option<Timestamp>,
    /// Whether the hold is over and the earnings moved to payable.
    #[serde(default)]
    pub matured: bool,
    /// When it was last approved, rejected or reversed, and why.
    #[serde(default)]
    pub decided_at: Option<Timestamp>,
    /// When its next automatic step is due: approval after the review window (automatic
    /// approval, not flagged), or the end of the hold. None when nothing is.
    #[serde(default)]
    pub due_at: Option<Timestamp>,
    pub at: Timestamp,
    pub expires_at: i64,
}

impl Conversion {
    /// What makes two postbacks the same conversion: the offer, the event, and the advertiser's
    /// transaction id — or, when the advertiser sends none, the click (one event per click).
    /// Where it is in its lifecycle, as one word: `pending`, `held` (approved, in the hold
    /// period), `payable`, `rejected` or `reversed`. Changes are conditioned on it, so that two
    /// decisions racing cannot both apply.
    pub fn state(&self) -> &'static str {
        match (self.status, self.matured) {
            (ConversionStatus::Pending, _) => "pending",
            (ConversionStatus::Approved, false) => "held",
            (ConversionStatus::Approved, true) => "payable",
            (ConversionStatus::Rejected, _) => "rejected",
            (ConversionStatus::Reversed, _) => "reversed",
            (ConversionStatus::Test, _) => "test",
        }
    }

    pub fn dedupe_key(&self) -> String {
        match &self.txn_id {
            Some(txn) => format!("{}|{}|txn|{txn}", self.offer_id, self.event.as_str()),
            None => format!(
                "{}|{}|click|{}",
                self.offer_id,
                self.event.as_str(),
                self.click_id
            ),
        }
    }
}
