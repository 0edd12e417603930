//! Offers: where a tracking link sends its visitors, and what a conversion is worth.
//!
//! The destination is registered by the advertiser and validated once. A click only ever
//! redirects to it, with macro values percent-encoded into it: no part of the request can
//! change where the visitor goes (CWE-601). Macros may not stand in the scheme or host.

use std::borrow::Cow;
use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};

use super::ids::{AdvertiserId, AffiliateId, ClickId, OfferId};
use super::money::{Bps, Currency, Money};
use super::tracking::{EventName, Subs};
use crate::secret::Secret;

/// Everything but RFC 3986's unreserved characters is encoded, so a macro value can never
/// add a path, query, fragment or authority to the destination.
const MACRO_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A registered destination URL template: absolute http(s), macros only after the host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Destination(String);

impl Destination {
    /// A destination as an advertiser gives it: refused with a reason if it is not an
    /// absolute http(s) URL whose every fill is one. Spaces and control characters are refused
    /// (a CR/LF would split the `Location` header); characters outside ASCII are encoded (the
    /// host as its IDNA form, the rest as UTF-8 percent-escapes), so that `Location` is ASCII.
    pub fn parse(template: &str) -> Result<Self, &'static str> {
        if template
            .chars()
            .any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(
                "must not contain spaces or control characters: percent-encode them (a space is %20)",
            );
        }
        Self::checked(template)
    }

    /// A destination as it was stored, by any earlier version: spaces and control characters,
    /// refused at the API now, are percent-encoded rather than refused, so that an offer saved
    /// before still reads and its clicks still go out with a valid `Location`.
    fn stored(template: &str) -> Result<Self, &'static str> {
        let mut escaped = String::with_capacity(template.len());
        for c in template.chars() {
            if c.is_control() || c.is_whitespace() {
                push_escaped(&mut escaped, c);
            } else {
                escaped.push(c);
            }
        }
        Self::checked(&escaped)
    }

    fn checked(template: &str) -> Result<Self, &'static str> {
        if template.len() > 2048 {
            return Err("must be at most 2048 characters");
        }
        let (scheme, rest) = template
            .split_once("://")
            .ok_or("must be an absolute http(s) URL")?;
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return Err("must use http or https");
        }
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        if authority_end == 0 {
            return Err("must have a host");
        }
        let authority = &rest[..authority_end];
        if authority.contains(['{', '}', '@', '\\']) {
            return Err("must not have macros or credentials in the host");
        }
        let mut normalized = String::with_capacity(template.len() + 16);
        normalized.push_str(scheme);
        normalized.push_str("://");
        if authority.is_ascii() {
            normalized.push_str(authority);
        } else {
            // An internationalised host, as DNS knows it (IDNA), with its port.
            let url = url::Url::parse(&format!("{scheme}://{authority}/"))
                .map_err(|_| "must be a valid URL")?;
            normalized.push_str(url.host_str().ok_or("must have a host")?);
            if let Some(port) = url.port() {
                normalized.push(':');
                normalized.push_str(&port.to_string());
            }
        }
        for c in rest[authority_end..].chars() {
            if c.is_ascii() {
                normalized.push(c);
            } else {
                push_escaped(&mut normalized, c);
            }
        }
        // Validate the template with each macro replaced by a harmless value.
        let sample = fill_template(&normalized, |_| Some("x".into()));
        let url = url::Url::parse(&sample).map_err(|_| "must be a valid URL")?;
        if url.host_str().is_none_or(str::is_empty) {
            return Err("must have a host");
        }
        Ok(Self(normalized))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URL a click redirects to: known macros replaced by their percent-encoded values
    /// (missing sub-ids by nothing), unknown `{words}` left as written.
    pub fn fill(&self, macros: &Macros) -> String {
        fill_template(&self.0, |name| macros.value(name))
    }
}

impl TryFrom<String> for Destination {
    type Error = &'static str;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::stored(&text)
    }
}

/// `c` as the percent-escapes of its UTF-8 bytes.
fn push_escaped(out: &mut String, c: char) {
    let mut bytes = [0; 4];
    for byte in c.encode_utf8(&mut bytes).bytes() {
        out.push('%');
        out.push_str(&format!("{byte:02X}"));
    }
}

impl From<Destination> for String {
    fn from(destination: Destination) -> String {
        destination.0
    }
}

/// Fills `{name}` macros with percent-encoded values; names `value` does not know stay as written.
pub(crate) fn fill_template<'v>(
    template: &str,
    value: impl Fn(&str) -> Option<Cow<'v, str>>,
) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close)
                if after[..close]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                let name = &after[..close];
                match value(name) {
                    Some(v) => out.extend(utf8_percent_encode(&v, MACRO_VALUE)),
                    None => out.push_str(&rest[open..open + close + 2]),
                }
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The values a destination's macros are filled with.
pub struct Macros<'a> {
    pub click_id: ClickId,
    pub affiliate_id: AffiliateId,
    pub offer_id: OfferId,
    pub subs: &'a Subs,
    /// The pool number lent to the click, for pay-per-call offers.
    pub call_number: Option<&'a str>,
}

impl Macros<'_> {
    /// Borrowed where it can be: every click fills its destination.
    fn value(&self, name: &str) -> Option<Cow<'_, str>> {
        Some(match name {
            "click_id" => String::from(self.click_id).into(),
            "affiliate_id" => String::from(self.affiliate_id).into(),
            "offer_id" => String::from(self.offer_id).into(),
            "sub1" | "sub2" | "sub3" | "sub4" | "sub5" => {
                let index = usize::from(name.as_bytes()[3] - b'1');
                self.subs.get(index).unwrap_or_default().into()
            }
            "call_number" => self.call_number.unwrap_or_default().into(),
            _ => return None,
        })
    }
}

/// How an amount per conversion is computed: a fixed amount (CPA) or a share of the sale (CPS).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Commission {
    /// Minor units of the offer's currency.
    Fixed(i64),
    /// Basis points of the sale amount.
    Share(Bps),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OfferStatus {
    Active,
    Paused,
    /// Retired for good: links stop, history stays.
    Archived,
}

/// Conversion caps; each `None` is unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Caps {
    /// Conversions per calendar day (UTC).
    pub daily: Option<u32>,
    /// Conversions per calendar month (UTC).
    pub monthly: Option<u32>,
    /// Total revenue the advertiser will pay, in minor units of the offer's currency.
    pub budget: Option<i64>,
}

/// Device types an offer may be limited to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeviceType {
    Desktop,
    Mobile,
    Tablet,
}

/// Whether conversions are approved automatically after the review window or by the advertiser.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalMode {
    #[default]
    Auto,
    Manual,
}

/// What an additional event of an offer (a `lead`, a `sale`…) is worth.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCommission {
    pub revenue: Commission,
    pub payout: Commission,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CommissionError {
    #[error("is not an event this offer pays for")]
    UnknownEvent,
    #[error("is required for this revenue-share offer")]
    SaleRequired,
    #[error("must be the offer's currency")]
    CurrencyMismatch(Currency),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Offer {
    pub id: OfferId,
    pub advertiser_id: AdvertiserId,
    pub name: String,
    pub destination: Destination,
    pub currency: Currency,
    /// What the advertiser pays per conversion.
    pub revenue: Commission,
    /// What the affiliate earns per conversion.
    pub payout: Commission,
    /// How long after a click a conversion is still attributed to it.
    pub attribution_window: SignedDuration,
    /// Authenticates the advertiser's postbacks (`token`, or the HMAC signature's key).
    pub postback_secret: Secret<String>,
    pub status: OfferStatus,
    pub created_at: Timestamp,
    /// What particular affiliates earn instead of `payout`.
    #[serde(default)]
    pub payout_overrides: BTreeMap<AffiliateId, Commission>,
    #[serde(default)]
    pub caps: Caps,
    /// ISO 3166 alpha-2 codes; empty allows every country.
    #[serde(default)]
    pub allowed_countries: Vec<String>,
    /// Empty allows every device type.
    #[serde(default)]
    pub allowed_devices: Vec<DeviceType>,
    /// Days an approved conversion's earnings wait before they can be paid.
    #[serde(default)]
    pub hold_days: u32,
    /// With automatic approval: days a conversion stays pending for review before it is
    /// approved (flagged ones never are).
    #[serde(default)]
    pub review_days: u32,
    #[serde(default)]
    pub approval: ApprovalMode,
    /// Events besides the default `conversion`, each with its own commissions (per-affiliate
    /// overrides apply to the default event only).
    #[serde(default)]
    pub events: BTreeMap<EventName, EventCommission>,
    /// Where clicks from excluded countries or devices go; without one they get a neutral page.
    #[serde(default)]
    pub fallback_url: Option<Destination>,
    /// A visitor's repeat clicks on a link within this many hours count as gross clicks only.
    #[serde(default = "Offer::default_unique_window_hours")]
    pub unique_window_hours: u32,
    /// A conversion sooner than this many seconds after its click is flagged `too_fast`.
    #[serde(default)]
    pub min_conversion_seconds: u32,
}

impl Offer {
    /// A visitor's repeat clicks within a day are not unique unless the offer says otherwise.
    pub const DEFAULT_UNIQUE_WINDOW_HOURS: u32 = 24;

    fn default_unique_window_hours() -> u32 {
        Self::DEFAULT_UNIQUE_WINDOW_HOURS
    }

    /// Why this offer does not take a click from `country` on `device`, if it does not.
    /// An unknown country or device is not excluded: nothing says it should be.
    pub fn excludes(
        &self,
        country: Option<&str>,
        device: Option<DeviceType>,
    ) -> Option<&'static str> {
        if let Some(country) = country
            && !self.allowed_countries.is_empty()
            && !self.allowed_countries.iter().any(|c| c == country)
        {
            return Some("country_excluded");
        }
        if let Some(device) = device
            && !self.allowed_devices.is_empty()
            && !self.allowed_devices.contains(&device)
        {
            return Some("device_excluded");
        }
        None
    }
}

impl Offer {
    /// What the advertiser pays and `affiliate` earns for an `event` with this sale amount.
    pub fn commission(
        &self,
        sale: Option<Money>,
        affiliate: AffiliateId,
        event: &EventName,
    ) -> Result<(Money, Money), CommissionError> {
        if let Some(sale) = sale
            && sale.currency != self.currency
        {
            return Err(CommissionError::CurrencyMismatch(self.currency));
        }
        let amount = |commission: Commission| match commission {
            Commission::Fixed(minor) => Ok(Money::new(minor, self.currency)),
            Commission::Share(bps) => sale.map(|s| bps.of(s)).ok_or(CommissionError::SaleRequired),
        };
        let (revenue, payout) = if event.is_default() {
            (
                self.revenue,
                self.payout_overrides
                    .get(&affiliate)
                    .copied()
                    .unwrap_or(self.payout),
            )
        } else {
            let other = self
                .events
                .get(event)
                .ok_or(CommissionError::UnknownEvent)?;
            (other.revenue, other.payout)
        };
        Ok((amount(revenue)?, amount(payout)?))
    }

    /// Whether a conversion at `now` still falls in the attribution window of a click at
    /// `clicked_at`. The window is half-open: a conversion exactly one window after the click
    /// is out. A conversion stamped slightly before its click (clocks of two servers) is in.
    pub fn attributes(&self, clicked_at: Timestamp, now: Timestamp) -> bool {
        now.duration_since(clicked_at) < self.attribution_window
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ulid::Ulid;

    fn macros(subs: &Subs) -> Macros<'_> {
        Macros {
            click_id: ClickId(Ulid::from_parts(1, 1)),
            affiliate_id: AffiliateId(Ulid::from_parts(2, 2)),
            offer_id: OfferId(Ulid::from_parts(3, 3)),
            subs,
            call_number: Some("+14155550100"),
        }
    }

    #[test]
    fn fills_every_macro_percent_encoded() {
        let destination = Destination::parse(
            "https://shop.example/land?c={click_id}&a={affiliate_id}&o={offer_id}&s1={sub1}&s5={sub5}",
        )
        .unwrap();
        let subs = Subs::new([
            Some("a b&c=d/e?#é".into()),
            None,
            None,
            None,
            Some("x".into()),
        ]);
        let url = destination.fill(&macros(&subs));
        assert_eq!(
            url,
            format!(
                "https://shop.example/land?c={}&a={}&o={}&s1=a%20b%26c%3Dd%2Fe%3F%23%C3%A9&s5=x",
                Ulid::from_parts(1, 1),
                Ulid::from_parts(2, 2),
                Ulid::from_parts(3, 3)
            )
        );
    }

    #[test]
    fn missing_subs_fill_empty_and_unknown_macros_stay() {
        let destination =
            Destination::parse("https://shop.example/?s2={sub2}&x={unknown}&y={").unwrap();
        assert_eq!(
            destination.fill(&macros(&Subs::default())),
            "https://shop.example/?s2=&x={unknown}&y={"
        );
    }

    #[test]
    fn a_macro_value_cannot_reintroduce_a_macro() {
        let destination =
            Destination::parse("https://shop.example/?s={sub1}&c={click_id}").unwrap();
        let subs = Subs::new([Some("{click_id}".into()), None, None, None, None]);
        assert!(
            destination
                .fill(&macros(&subs))
                .starts_with("https://shop.example/?s=%7Bclick_id%7D&c=")
        );
    }

    #[test]
    fn destinations_must_be_http_with_a_fixed_host() {
        for bad in [
            "javascript:alert(1)",
            "ftp://example.com/",
            "//example.com/",
            "https://{sub1}/",
            "https://shop.{sub1}.example/",
            "https://user:pw@example.com/",
            "https:///path",
            "data:text/html,hi",
        ] {
            assert!(Destination::parse(bad).is_err(), "{bad}");
        }
        assert!(Destination::parse("http://example.com").is_ok());
        assert!(Destination::parse("https://example.com:8443/p/{sub1}?q={click_id}#f").is_ok());
    }

    #[test]
    fn destinations_are_refused_with_spaces_or_control_characters_and_encoded_outside_ascii() {
        for bad in [
            "https://shop.example.com/\r\nSet-Cookie: x=1",
            "https://shop.example.com/a b",
            "https://shop.example.com/\tx",
            "https://shop.example.com/?q=\u{85}",
        ] {
            assert_eq!(
                Destination::parse(bad),
                Err(
                    "must not contain spaces or control characters: percent-encode them (a space is %20)"
                ),
                "{bad:?}"
            );
        }
        let encoded =
            Destination::parse("https://bücher.example:8443/straße?q=ü&s={sub1}").unwrap();
        assert_eq!(
            encoded.as_str(),
            "https://xn--bcher-kva.example:8443/stra%C3%9Fe?q=%C3%BC&s={sub1}"
        );
        // One stored by an earlier version still reads, with a Location that stays one header.
        let stored: Destination = serde_json::from_value(serde_json::json!(
            "https://shop.example.com/\r\nSet-Cookie: x=1"
        ))
        .unwrap();
        assert_eq!(
            stored.as_str(),
            "https://shop.example.com/%0D%0ASet-Cookie:%20x=1"
        );
    }

    #[test]
    fn attribution_window_is_half_open() {
        let offer_window = SignedDuration::from_hours(24);
        let offer = Offer {
            id: OfferId(Ulid::nil()),
            advertiser_id: AdvertiserId(Ulid::nil()),
            name: "o".into(),
            destination: Destination::parse("https://example.com/").unwrap(),
            currency: Currency::parse("USD").unwrap(),
            revenue: Commission::Fixed(100),
            payout: Commission::Fixed(50),
            attribution_window: offer_window,
            postback_secret: Secret::new("s".into()),
            status: OfferStatus::Active,
            created_at: Timestamp::UNIX_EPOCH,
            payout_overrides: BTreeMap::new(),
            caps: Caps::default(),
            allowed_countries: vec![],
            allowed_devices: vec![],
            hold_days: 0,
            review_days: 0,
            approval: ApprovalMode::Auto,
            events: BTreeMap::new(),
            fallback_url: None,
            unique_window_hours: Offer::DEFAULT_UNIQUE_WINDOW_HOURS,
            min_conversion_seconds: 0,
        };
        let clicked = Timestamp::from_second(1_700_000_000).unwrap();
        assert!(offer.attributes(clicked, clicked));
        assert!(offer.attributes(clicked, clicked - SignedDuration::from_millis(5)));
        assert!(offer.attributes(
            clicked,
            clicked + offer_window - SignedDuration::from_millis(1)
        ));
        assert!(!offer.attributes(clicked, clicked + offer_window));
    }

    #[test]
    fn commission_is_fixed_or_a_share_of_the_sale() {
        let usd = Currency::parse("USD").unwrap();
        let mut offer = Offer {
            id: OfferId(Ulid::nil()),
            advertiser_id: AdvertiserId(Ulid::nil()),
            name: "o".into(),
            destination: Destination::parse("https://example.com/").unwrap(),
            currency: usd,
            revenue: Commission::Share(Bps::new(1500).unwrap()),
            payout: Commission::Fixed(250),
            attribution_window: SignedDuration::from_hours(1),
            postback_secret: Secret::new("s".into()),
            status: OfferStatus::Active,
            created_at: Timestamp::UNIX_EPOCH,
            payout_overrides: BTreeMap::new(),
            caps: Caps::default(),
            allowed_countries: vec![],
            allowed_devices: vec![],
            hold_days: 0,
            review_days: 0,
            approval: ApprovalMode::Auto,
            events: BTreeMap::new(),
            fallback_url: None,
            unique_window_hours: Offer::DEFAULT_UNIQUE_WINDOW_HOURS,
            min_conversion_seconds: 0,
        };
        let sale = Money::new(4999, usd);
        let ann = AffiliateId(Ulid::from_parts(9, 9));
        let conversion = EventName::default_event();
        let fixed = |minor| Money::new(minor, usd);
        assert_eq!(
            offer.commission(Some(sale), ann, &conversion),
            Ok((fixed(750), fixed(250)))
        );
        assert_eq!(
            offer.commission(None, ann, &conversion),
            Err(CommissionError::SaleRequired)
        );
        let eur = Money::new(100, Currency::parse("EUR").unwrap());
        assert_eq!(
            offer.commission(Some(eur), ann, &conversion),
            Err(CommissionError::CurrencyMismatch(usd))
        );
        offer.revenue = Commission::Fixed(900);
        assert_eq!(
            offer.commission(None, ann, &conversion),
            Ok((fixed(900), fixed(250)))
        );
        offer.payout_overrides.insert(ann, Commission::Fixed(400));
        assert_eq!(
            offer.commission(None, ann, &conversion),
            Ok((fixed(900), fixed(400))),
            "an override wins"
        );
        let bob = AffiliateId(Ulid::from_parts(8, 8));
        assert_eq!(
            offer.commission(None, bob, &conversion),
            Ok((fixed(900), fixed(250)))
        );

        // Other events have their own commissions; an event the offer does not know pays nothing.
        let lead = EventName::parse("lead").unwrap();
        offer.events.insert(
            lead.clone(),
            EventCommission {
                revenue: Commission::Fixed(300),
                payout: Commission::Fixed(200),
            },
        );
        assert_eq!(
            offer.commission(None, ann, &lead),
            Ok((fixed(300), fixed(200))),
            "overrides are for the default event"
        );
        let typo = EventName::parse("laed").unwrap();
        assert_eq!(
            offer.commission(None, ann, &typo),
            Err(CommissionError::UnknownEvent)
        );
    }
}
