//! Performance reports: the hourly counters of [`crate::store::stats`], summed by the
//! dimensions the caller groups by, over local days in the caller's time zone.
//!
//! Counters are kept per UTC hour, so a day in a zone whose offset is not a whole number of
//! hours (India, +05:30) takes the hours that start within it.

use std::collections::BTreeMap;

use jiff::civil::Date;
use jiff::tz::{Offset, TimeZone};
use jiff::{Timestamp, ToSpan};

use crate::domain::accounts::Party;
use crate::domain::ids::OfferId;
use crate::domain::money::{Currency, Money};
use crate::domain::tracking::Subs;
use crate::store::Store;
use crate::store::stats::{HourCounters, Need, SPLIT_COUNTRY, SPLIT_DEVICE};

/// The longest range one report covers.
pub const MAX_DAYS: i32 = 366;

/// What rows can be grouped by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dimension {
    Day,
    Hour,
    Offer,
    Affiliate,
    Advertiser,
    Country,
    Device,
    /// `sub1`…`sub5`: index 0…4.
    Sub(usize),
}

impl Dimension {
    pub const NAMES: [&'static str; 12] = [
        "day",
        "hour",
        "offer",
        "affiliate",
        "advertiser",
        "country",
        "device",
        "sub1",
        "sub2",
        "sub3",
        "sub4",
        "sub5",
    ];

    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "day" => Self::Day,
            "hour" => Self::Hour,
            "offer" => Self::Offer,
            "affiliate" => Self::Affiliate,
            "advertiser" => Self::Advertiser,
            "country" => Self::Country,
            "device" => Self::Device,
            _ => Self::Sub(Subs::NAMES.iter().position(|sub| *sub == name)?),
        })
    }

    /// Whether the totals keep it, so that a report grouped by it need not read the detail.
    fn in_totals(self) -> bool {
        matches!(
            self,
            Self::Day | Self::Hour | Self::Offer | Self::Affiliate | Self::Advertiser
        )
    }

    /// The column it fills in a report row, which is also its breakdowns' name.
    pub fn column(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Hour => "hour",
            Self::Offer => "offer_id",
            Self::Affiliate => "affiliate_id",
            Self::Advertiser => "advertiser_id",
            Self::Country => SPLIT_COUNTRY,
            Self::Device => SPLIT_DEVICE,
            Self::Sub(index) => Subs::NAMES[index],
        }
    }

    /// Its value for one hour's counters; empty when the click did not say (no country
    /// known, no sub-id given).
    fn value(self, counters: &HourCounters, zone: &TimeZone) -> String {
        let dimensions = &counters.dimensions;
        let local = || counters.hour.to_zoned_datetime(zone.clone());
        match self {
            Self::Day => local().date().to_string(),
            Self::Hour => local().strftime("%Y-%m-%dT%H:%M%:z").to_string(),
            Self::Offer => dimensions.offer_id.to_string(),
            Self::Affiliate => dimensions.affiliate_id.to_string(),
            Self::Advertiser => dimensions.advertiser_id.to_string(),
            Self::Country => dimensions.country.clone().unwrap_or_default(),
            Self::Device => dimensions
                .device
                .map(|device| {
                    serde_json::to_value(device)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default()
                })
                .unwrap_or_default(),
            Self::Sub(index) => dimensions.subs.get(index).unwrap_or_default().to_string(),
        }
    }
}

/// Whose traffic a report sums.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// One advertiser's or affiliate's.
    Party(Party),
    /// The whole network's (admins): every advertiser's counters, since every click, call and
    /// conversion counts once, under its offer's advertiser.
    Network,
}

/// What a report covers.
#[derive(Clone, Debug)]
pub struct ReportRequest {
    pub scope: Scope,
    /// Local dates in `zone`, both included.
    pub from: Date,
    pub to: Date,
    pub zone: TimeZone,
    pub group_by: Vec<Dimension>,
    pub offer: Option<OfferId>,
}

impl ReportRequest {
    /// The counters that answer it (see [`crate::store::stats`]).
    fn need(&self) -> Need {
        let mut others = self.group_by.iter().filter(|d| !d.in_totals());
        let other = match (others.next(), others.next()) {
            (None, _) => return Need::Totals,
            (Some(other), None) => other,
            (Some(_), Some(_)) => return Need::Detail,
        };
        if matches!(other, Dimension::Country | Dimension::Device) {
            // The totals count by these too, by hour: any time zone, any grouping by time.
            return Need::Split(other.column());
        }
        // Sub-ids' breakdowns are by UTC day: they answer no hour, and a day only where days
        // are UTC. They are the affiliate's alone (an advertiser may not group by sub-ids; an
        // operator reporting on an advertiser reads the detail).
        // UTC itself, however it was named (`UTC`, `Etc/UTC`, or none).
        let utc = self
            .zone
            .to_fixed_offset()
            .is_ok_and(|offset| offset == Offset::UTC)
            || matches!(
                self.zone.iana_name(),
                Some("UTC" | "Etc/UTC" | "Etc/UCT" | "UCT")
            );
        let by_hour = self.group_by.contains(&Dimension::Hour);
        let by_day = self.group_by.contains(&Dimension::Day);
        let affiliate = matches!(self.scope, Scope::Party(Party::Affiliate(_)));
        if by_hour || (by_day && !utc) || !affiliate {
            return Need::Detail;
        }
        Need::SubBreakdown(other.column())
    }
}

/// Sums over one group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub clicks: i64,
    pub unique_clicks: i64,
    pub invalid_clicks: i64,
    pub calls: i64,
    /// Calls to static numbers (see [`HourCounters::static_calls`]).
    pub static_calls: i64,
    pub conversions: i64,
    pub rejected_conversions: i64,
    /// Minor units of the row's currency.
    pub revenue: i64,
    pub payout: i64,
}

impl Totals {
    fn add(&mut self, counters: &HourCounters) {
        self.clicks += counters.clicks;
        self.unique_clicks += counters.unique_clicks;
        self.invalid_clicks += counters.invalid_clicks;
        self.calls += counters.calls;
        self.static_calls += counters.static_calls;
        self.conversions += counters.conversions;
        self.rejected_conversions += counters.rejected_conversions;
        self.revenue += counters.revenue;
        self.payout += counters.payout;
    }

    /// The visits conversions come from: clicks, and calls to static numbers (a pool
    /// number's caller clicked first, and that click is counted already). Dividing call
    /// conversions by web clicks alone gave rates over 100%.
    fn visits(&self) -> i128 {
        i128::from(self.clicks) + i128::from(self.static_calls)
    }

    /// Conversions per 100 visits (clicks and static numbers' calls), to two decimals (half
    /// to even); none without visits.
    pub fn conversion_rate(&self) -> Option<String> {
        ratio(i128::from(self.conversions) * 100, self.visits(), 2)
    }

    /// The affiliate's earnings per visit (click or static number's call), in `currency` to
    /// two more decimals than its minor unit (half to even); none without visits.
    pub fn earnings_per_click(&self, currency: Currency) -> Option<String> {
        per_visit(self.payout, self.visits(), currency)
    }

    /// What a visit cost the advertiser (revenue per visit), as [`Self::earnings_per_click`].
    pub fn revenue_per_click(&self, currency: Currency) -> Option<String> {
        per_visit(self.revenue, self.visits(), currency)
    }
}

/// `amount` (minor units) per visit, in `currency` to two more decimals than its minor unit.
fn per_visit(amount: i64, visits: i128, currency: Currency) -> Option<String> {
    ratio(i128::from(amount), visits, 2)
        .map(|per_minor_unit| shift_decimal(&per_minor_unit, currency.exponent()))
}

/// `numerator / denominator` as a decimal with `digits` decimals, rounded half to even.
fn ratio(numerator: i128, denominator: i128, digits: u32) -> Option<String> {
    if denominator == 0 {
        return None;
    }
    let scale = 10i128.pow(digits);
    let scaled = numerator * scale;
    let (quotient, remainder) = (
        scaled.div_euclid(denominator),
        scaled.rem_euclid(denominator),
    );
    let rounded = match (2 * remainder).cmp(&denominator) {
        std::cmp::Ordering::Less => quotient,
        std::cmp::Ordering::Greater => quotient + 1,
        std::cmp::Ordering::Equal => quotient + (quotient & 1),
    };
    let sign = if rounded < 0 { "-" } else { "" };
    let (whole, fraction) = (rounded.abs() / scale, rounded.abs() % scale);
    Some(if digits == 0 {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{fraction:0width$}", width = digits as usize)
    })
}

/// Moves a decimal's point `places` to the left: `"12.3456"` by 2 is `"0.123456"`.
fn shift_decimal(decimal: &str, places: u32) -> String {
    let (sign, digits) = decimal
        .strip_prefix('-')
        .map_or(("", decimal), |rest| ("-", rest));
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let mut all = format!("{whole}{fraction}");
    let decimals = fraction.len() + places as usize;
    while all.len() <= decimals {
        all.insert(0, '0');
    }
    let (whole, fraction) = all.split_at(all.len() - decimals);
    let whole = whole.trim_start_matches('0');
    let whole = if whole.is_empty() { "0" } else { whole };
    format!("{sign}{whole}.{fraction}")
}

/// One row: a group's values (in `group_by` order), its currency and its sums.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportRow {
    pub group: Vec<String>,
    pub currency: Currency,
    pub totals: Totals,
}

impl ReportRow {
    pub fn money(&self, minor: i64) -> String {
        Money::new(minor, self.currency).to_decimal()
    }
}

/// A report: its rows in group order, and a total per currency (amounts in different
/// currencies are never added together).
#[derive(Clone, Debug)]
pub struct Report {
    pub rows: Vec<ReportRow>,
    pub totals: Vec<ReportRow>,
}

/// Where the range's first day starts and the day after its last starts, in `zone`.
pub fn bounds(from: Date, to: Date, zone: &TimeZone) -> Result<(Timestamp, Timestamp), String> {
    let start = from
        .to_zoned_datetime(zone.clone())
        .map_err(|e| format!("`from` is not a day in this time zone: {e}"))?;
    let end = to
        .checked_add(1.day())
        .and_then(|day| day.to_zoned_datetime(zone.clone()))
        .map_err(|e| format!("`to` is not a day in this time zone: {e}"))?;
    Ok((start.timestamp(), end.timestamp()))
}

/// Sums counters into rows; a pure function of what was counted.
pub fn summarise(counters: &[HourCounters], request: &ReportRequest) -> Report {
    let mut groups: BTreeMap<(Vec<String>, &'static str), (Currency, Totals)> = BTreeMap::new();
    let mut totals: BTreeMap<&'static str, (Currency, Totals)> = BTreeMap::new();
    for counter in counters {
        if request
            .offer
            .is_some_and(|offer| offer != counter.dimensions.offer_id)
        {
            continue;
        }
        let currency = counter.dimensions.currency;
        let group = request
            .group_by
            .iter()
            .map(|dimension| dimension.value(counter, &request.zone))
            .collect();
        groups
            .entry((group, currency.code()))
            .or_insert((currency, Totals::default()))
            .1
            .add(counter);
        totals
            .entry(currency.code())
            .or_insert((currency, Totals::default()))
            .1
            .add(counter);
    }
    Report {
        rows: groups
            .into_iter()
            // A group whose counts cancel out (the records without a dimension, when all had
            // it) has nothing to show.
            .filter(|(_, (_, totals))| *totals != Totals::default())
            .map(|((group, _), (currency, totals))| ReportRow {
                group,
                currency,
                totals,
            })
            .collect(),
        totals: totals
            .into_values()
            .map(|(currency, totals)| ReportRow {
                group: vec![],
                currency,
                totals,
            })
            .collect(),
    }
}

/// Reads a party's counters for the range and sums them.
pub async fn report(
    store: &Store,
    request: &ReportRequest,
    now: Timestamp,
) -> Result<Report, crate::ports::TableError> {
    let (start, end) = bounds(request.from, request.to, &request.zone)
        .map_err(crate::ports::TableError::Invalid)?;
    let parties = match request.scope {
        Scope::Party(party) => vec![party],
        Scope::Network => {
            let advertisers: std::collections::BTreeSet<_> = store
                .all_offers()
                .await?
                .into_iter()
                .map(|offer| offer.advertiser_id)
                .collect();
            advertisers.into_iter().map(Party::Advertiser).collect()
        }
    };
    let mut counters = Vec::new();
    for party in parties {
        counters.extend(
            store
                .report_counters(party, start, end, request.need(), now)
                .await?,
        );
    }
    Ok(summarise(&counters, request))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_round_half_to_even() {
        assert_eq!(ratio(1, 8, 2).as_deref(), Some("0.12")); // 0.125 → 0.12
        assert_eq!(ratio(3, 8, 2).as_deref(), Some("0.38")); // 0.375 → 0.38
        assert_eq!(ratio(2, 3, 2).as_deref(), Some("0.67"));
        assert_eq!(ratio(5, 1, 0).as_deref(), Some("5"));
        assert_eq!(ratio(-1, 8, 2).as_deref(), Some("-0.12"));
        assert_eq!(ratio(1, 0, 2), None);
    }

    #[test]
    fn rates_and_earnings_per_click() {
        let totals = Totals {
            clicks: 3,
            conversions: 1,
            payout: 1000,
            ..Totals::default()
        };
        assert_eq!(totals.conversion_rate().as_deref(), Some("33.33"));
        let usd = Currency::parse("USD").unwrap();
        // $10.00 over 3 clicks: $3.333333… → 3.3333 (two decimals past the cent).
        assert_eq!(totals.earnings_per_click(usd).as_deref(), Some("3.3333"));
        let jpy = Currency::parse("JPY").unwrap();
        assert_eq!(totals.earnings_per_click(jpy).as_deref(), Some("333.33"));
        assert_eq!(Totals::default().earnings_per_click(usd), None);
    }

    #[test]
    fn shifting_decimals() {
        assert_eq!(shift_decimal("333.3333", 2), "3.333333");
        assert_eq!(shift_decimal("5.00", 2), "0.0500");
        assert_eq!(shift_decimal("-12.5", 3), "-0.0125");
    }

    #[test]
    fn days_follow_the_time_zone_across_daylight_saving() {
        let zone = TimeZone::get("America/New_York").unwrap();
        // 2026-11-01 is 25 hours long in New York (clocks go back).
        let (start, end) = bounds(
            jiff::civil::date(2026, 11, 1),
            jiff::civil::date(2026, 11, 1),
            &zone,
        )
        .unwrap();
        assert_eq!(start.to_string(), "2026-11-01T04:00:00Z");
        assert_eq!(end.duration_since(start).as_hours(), 25);
    }
}
