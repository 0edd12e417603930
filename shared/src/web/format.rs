//! How the dashboard shows values: money in its currency's format, times in the visitor's time
//! zone, statuses as labelled badges. The API answers exact decimal strings; these only add
//! symbols, separators and zones, never arithmetic.

use maud::{Markup, html};

/// `"1234.5"` in `USD` → `$1,234.50`; a currency without a symbol of its own → `1,234.50 XYZ`.
/// Text that is not a decimal is shown as it is.
pub fn money(amount: &str, currency: &str) -> String {
    let Some(grouped) = grouped_decimal(amount, minor_digits(currency)) else {
        return format!("{amount} {currency}");
    };
    let (sign, digits) = match grouped.strip_prefix('-') {
        Some(rest) => ("-", rest.to_string()),
        None => ("", grouped),
    };
    match symbol(currency) {
        Some(symbol) => format!("{sign}{symbol}{digits}"),
        None => format!("{sign}{digits} {currency}"),
    }
}

fn symbol(currency: &str) -> Option<&'static str> {
    Some(match currency {
        "USD" => "$",
        "EUR" => "€",
        "GBP" => "£",
        "JPY" => "¥",
        "CAD" => "CA$",
        "AUD" => "A$",
        "INR" => "₹",
        _ => return None,
    })
}

fn minor_digits(currency: &str) -> usize {
    iso_currency::Currency::from_code(currency)
        .and_then(|c| c.exponent())
        .map(usize::from)
        .unwrap_or(2)
}

/// The decimal with thousands separators and exactly `scale` decimals, padding (never rounding:
/// the API already answers the currency's minor unit).
fn grouped_decimal(text: &str, scale: usize) -> Option<String> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut grouped = String::new();
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    let mut fraction = fraction.to_string();
    while fraction.len() < scale {
        fraction.push('0');
    }
    let sign = if negative { "-" } else { "" };
    Some(if fraction.is_empty() {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}.{fraction}")
    })
}

/// A count with thousands separators.
pub fn count(n: i64) -> String {
    grouped_decimal(&n.to_string(), 0).unwrap_or_else(|| n.to_string())
}

/// An RFC 3339 timestamp in the visitor's zone, to the minute: `2026-12-03 09:15`.
pub fn time(text: &str, zone: &jiff::tz::TimeZone) -> String {
    match text.parse::<jiff::Timestamp>() {
        Ok(at) => at
            .to_zoned_datetime(zone.clone())
            .strftime("%Y-%m-%d %H:%M")
            .to_string(),
        Err(_) => text.to_string(),
    }
}

/// A `<time>` element: the local time shown, the instant in `datetime`.
pub fn time_element(text: &str, zone: &jiff::tz::TimeZone) -> Markup {
    html! { time datetime=(text) { (time(text, zone)) } }
}

/// A status badge; its text is the status itself, so colour is never the only sign.
pub fn status(status: &str) -> Markup {
    let class = format!(
        "status status-{}",
        status.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
    );
    html! { span class=(class) { (status.replace('_', " ")) } }
}

/// A commission as the API answers it: `{"fixed": "25.00"}` or `{"share_bps": 1500}`.
pub fn commission(value: &serde_json::Value, currency: &str) -> String {
    if let Some(fixed) = value["fixed"].as_str() {
        return money(fixed, currency);
    }
    if let Some(bps) = value["share_bps"].as_u64() {
        return format!("{}.{:02}% of the sale", bps / 100, bps % 100);
    }
    "—".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_shown_in_its_currency_without_rounding() {
        assert_eq!(money("1234.5", "USD"), "$1,234.50");
        assert_eq!(money("-18.00", "EUR"), "-€18.00");
        assert_eq!(money("1000000", "JPY"), "¥1,000,000");
        assert_eq!(money("0.125", "BHD"), "0.125 BHD");
        assert_eq!(money("12.00", "CHF"), "12.00 CHF");
        assert_eq!(money("n/a", "USD"), "n/a USD");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(count(-12), "-12");
    }

    #[test]
    fn times_are_shown_in_the_visitors_zone() {
        let paris = jiff::tz::TimeZone::get("Europe/Paris").unwrap();
        assert_eq!(time("2026-12-03T23:30:00Z", &paris), "2026-12-04 00:30");
        assert_eq!(time("not a time", &paris), "not a time");
    }
}
