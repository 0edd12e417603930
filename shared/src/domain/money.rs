//! Money: integer minor units with an ISO 4217 currency; rates in basis points.
//!
//! Rounding is explicit and one rule: half-even to the minor unit ([`Bps::of`]). Decimal input
//! is parsed exactly and refused, not rounded, when it has more decimals than the currency.

use serde::{Deserialize, Serialize};

/// The largest amount accepted from outside, in minor units: ten billion in any
/// two-decimal currency. Far above any real sale; far below `i64` overflow when summed.
pub const MAX_MINOR: i64 = 1_000_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("is not an ISO 4217 currency code")]
    UnknownCurrency,
    #[error("must be a decimal number such as 12.34")]
    NotDecimal,
    #[error("must not be negative")]
    Negative,
    #[error("has more than {0} decimal places")]
    TooPrecise(u32),
    #[error("is too large")]
    TooLarge,
    #[error("must be a whole number of basis points from 0 to 10000")]
    BadRate,
}

/// An ISO 4217 currency that has minor units (funds and metals such as XAU are refused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(iso_currency::Currency);

impl Currency {
    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        let currency =
            iso_currency::Currency::from_code(code).ok_or(MoneyError::UnknownCurrency)?;
        currency.exponent().ok_or(MoneyError::UnknownCurrency)?;
        Ok(Self(currency))
    }

    pub fn code(self) -> &'static str {
        self.0.code()
    }

    /// Decimal places of the minor unit (2 for USD, 0 for JPY, 3 for BHD).
    pub fn exponent(self) -> u32 {
        u32::from(self.0.exponent().expect("checked at parse"))
    }
}

impl TryFrom<String> for Currency {
    type Error = MoneyError;
    fn try_from(code: String) -> Result<Self, MoneyError> {
        Self::parse(&code)
    }
}

impl From<Currency> for String {
    fn from(currency: Currency) -> String {
        currency.code().to_string()
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// An amount in a currency's minor units.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    pub minor: i64,
    pub currency: Currency,
}

impl Money {
    pub fn new(minor: i64, currency: Currency) -> Self {
        Self { minor, currency }
    }

    /// Parses a non-negative decimal such as `49.99` exactly: digits, optionally a point and
    /// at most the currency's number of decimals. No sign, exponent, grouping or spaces.
    pub fn parse_decimal(text: &str, currency: Currency) -> Result<Self, MoneyError> {
        if text.starts_with('-') {
            return Err(MoneyError::Negative);
        }
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits(whole) || !digits(fraction) || text.ends_with('.') {
            return Err(MoneyError::NotDecimal);
        }
        let exponent = currency.exponent();
        if fraction.len() > exponent as usize {
            return Err(MoneyError::TooPrecise(exponent));
        }
        let whole = whole.trim_start_matches('0');
        if whole.len() > 15 {
            return Err(MoneyError::TooLarge);
        }
        let scale = 10i64.pow(exponent);
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| MoneyError::TooLarge)?
        };
        let padded = format!("{fraction:0<width$}", width = exponent as usize);
        let fraction: i64 = if padded.is_empty() {
            0
        } else {
            padded.parse().map_err(|_| MoneyError::NotDecimal)?
        };
        let minor = whole
            .checked_mul(scale)
            .and_then(|m| m.checked_add(fraction))
            .filter(|m| *m <= MAX_MINOR)
            .ok_or(MoneyError::TooLarge)?;
        Ok(Self { minor, currency })
    }

    /// The amount as a decimal string with exactly the currency's decimals (`-0.05`, `1200`).
    pub fn to_decimal(&self) -> String {
        let exponent = self.currency.exponent();
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        if exponent == 0 {
            return format!("{sign}{abs}");
        }
        let scale = 10u64.pow(exponent);
        format!(
            "{sign}{}.{:0width$}",
            abs / scale,
            abs % scale,
            width = exponent as usize
        )
    }
}

impl std::fmt::Display for Money {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.to_decimal(), self.currency)
    }
}

/// A rate in basis points (1/100 of a percent), 0..=10000.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Bps(u32);

impl Bps {
    pub fn new(bps: u32) -> Result<Self, MoneyError> {
        if bps > 10_000 {
            return Err(MoneyError::BadRate);
        }
        Ok(Self(bps))
    }

    pub fn get(self) -> u32 {
        self.0
    }

    /// `rate × amount`, rounded half-even to the minor unit (banker's rounding: exact halves go
    /// to the even neighbour, so rounding errors do not drift one way over many conversions).
    pub fn of(self, amount: Money) -> Money {
        let product = i128::from(amount.minor) * i128::from(self.0);
        Money::new(div_half_even(product, 10_000) as i64, amount.currency)
    }
}

impl TryFrom<u32> for Bps {
    type Error = MoneyError;
    fn try_from(bps: u32) -> Result<Self, MoneyError> {
        Self::new(bps)
    }
}

impl From<Bps> for u32 {
    fn from(bps: Bps) -> u32 {
        bps.0
    }
}

/// `n / d` rounded half-even, for `d > 0`.
fn div_half_even(n: i128, d: i128) -> i128 {
    let quotient = n.div_euclid(d);
    let remainder = n.rem_euclid(d);
    match (2 * remainder).cmp(&d) {
        std::cmp::Ordering::Less => quotient,
        std::cmp::Ordering::Greater => quotient + 1,
        std::cmp::Ordering::Equal => quotient + (quotient & 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd() -> Currency {
        Currency::parse("USD").unwrap()
    }

    #[test]
    fn parses_decimals_exactly_per_currency_exponent() {
        assert_eq!(Money::parse_decimal("49.99", usd()).unwrap().minor, 4999);
        assert_eq!(Money::parse_decimal("49.9", usd()).unwrap().minor, 4990);
        assert_eq!(Money::parse_decimal("0049", usd()).unwrap().minor, 4900);
        let jpy = Currency::parse("JPY").unwrap();
        assert_eq!(Money::parse_decimal("1200", jpy).unwrap().minor, 1200);
        assert_eq!(
            Money::parse_decimal("12.5", jpy),
            Err(MoneyError::TooPrecise(0))
        );
        let bhd = Currency::parse("BHD").unwrap();
        assert_eq!(Money::parse_decimal("1.005", bhd).unwrap().minor, 1005);
    }

    #[test]
    fn refuses_what_is_not_a_plain_non_negative_decimal() {
        for text in [
            "", ".5", "5.", "1e3", "+5", " 5", "5 ", "1,000", "NaN", "0x10", "1.2.3",
        ] {
            assert_eq!(
                Money::parse_decimal(text, usd()),
                Err(MoneyError::NotDecimal),
                "{text:?}"
            );
        }
        assert_eq!(Money::parse_decimal("-1", usd()), Err(MoneyError::Negative));
        assert_eq!(
            Money::parse_decimal("1.234", usd()),
            Err(MoneyError::TooPrecise(2))
        );
        assert_eq!(
            Money::parse_decimal("99999999999999999999", usd()),
            Err(MoneyError::TooLarge)
        );
        assert_eq!(
            Money::parse_decimal("10000000000.01", usd()),
            Err(MoneyError::TooLarge)
        );
        assert_eq!(
            Money::parse_decimal("10000000000.00", usd()).unwrap().minor,
            MAX_MINOR
        );
    }

    #[test]
    fn currencies_are_iso_4217_with_minor_units() {
        assert_eq!(Currency::parse("EUR").unwrap().exponent(), 2);
        assert_eq!(Currency::parse("usd"), Err(MoneyError::UnknownCurrency));
        assert_eq!(Currency::parse("XYZ"), Err(MoneyError::UnknownCurrency));
        assert_eq!(Currency::parse("XAU"), Err(MoneyError::UnknownCurrency));
    }

    #[test]
    fn formats_with_the_currency_decimals() {
        assert_eq!(Money::new(4999, usd()).to_decimal(), "49.99");
        assert_eq!(Money::new(-5, usd()).to_decimal(), "-0.05");
        assert_eq!(
            Money::new(1200, Currency::parse("JPY").unwrap()).to_decimal(),
            "1200"
        );
    }

    #[test]
    fn rates_round_half_even_to_the_minor_unit() {
        let bps = |b| Bps::new(b).unwrap();
        // 10% of 0.05 = 0.005: a tie, to the even neighbour 0.00.
        assert_eq!(bps(1000).of(Money::new(5, usd())).minor, 0);
        // 10% of 0.15 = 0.015: a tie, to the even neighbour 0.02.
        assert_eq!(bps(1000).of(Money::new(15, usd())).minor, 2);
        // 10% of 0.25 = 0.025 -> 0.02; 0.026 -> 0.03; 0.024 -> 0.02.
        assert_eq!(bps(1000).of(Money::new(25, usd())).minor, 2);
        assert_eq!(bps(1040).of(Money::new(25, usd())).minor, 3);
        assert_eq!(bps(960).of(Money::new(25, usd())).minor, 2);
        assert_eq!(
            bps(10_000).of(Money::new(MAX_MINOR, usd())).minor,
            MAX_MINOR
        );
        assert_eq!(bps(0).of(Money::new(MAX_MINOR, usd())).minor, 0);
        assert_eq!(Bps::new(10_001), Err(MoneyError::BadRate));
    }

    #[test]
    fn half_even_division_handles_negative_ties() {
        assert_eq!(div_half_even(-5, 10), 0);
        assert_eq!(div_half_even(-15, 10), -2);
        assert_eq!(div_half_even(-16, 10), -2);
        assert_eq!(div_half_even(7, 2), 4);
    }
}
