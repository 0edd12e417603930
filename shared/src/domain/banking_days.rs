//! Banking days: when the Federal Reserve's ACH settles. An ACH file's effective entry date must
//! be one: not a Saturday or Sunday, and not one of the Federal Reserve's holidays (New Year's
//! Day, Martin Luther King Jr. Day, Presidents Day, Memorial Day, Juneteenth, Independence Day,
//! Labor Day, Columbus Day, Veterans Day, Thanksgiving, Christmas).
//!
//! The Fed's observed rule is its own: a holiday on a Sunday closes the Monday after, but a
//! holiday on a Saturday leaves the Friday before open (so 31 December 2021, a Friday, was a
//! banking day although New Year's Day 2022 fell on a Saturday).

use jiff::civil::{Date, Weekday};

/// The Fed's holidays of `year`, as they fall (before the Sunday rule).
fn holidays(year: i16) -> [Date; 11] {
    let day = |month: i8, day: i8| Date::new(year, month, day).expect("a fixed holiday exists");
    let nth = |month: i8, nth: i8, weekday: Weekday| {
        day(month, 1)
            .nth_weekday_of_month(nth, weekday)
            .expect("every month has a first, second, third, fourth and last of each weekday")
    };
    [
        day(1, 1),
        nth(1, 3, Weekday::Monday),
        nth(2, 3, Weekday::Monday),
        nth(5, -1, Weekday::Monday),
        day(6, 19),
        day(7, 4),
        nth(9, 1, Weekday::Monday),
        nth(10, 2, Weekday::Monday),
        day(11, 11),
        nth(11, 4, Weekday::Thursday),
        day(12, 25),
    ]
}

/// Whether the Fed is closed on `date` for a holiday (observed).
fn is_holiday(date: Date) -> bool {
    let closed = holidays(date.year()).contains(&date);
    // A Sunday holiday closes the Monday after it.
    let observed = date.weekday() == Weekday::Monday
        && date
            .yesterday()
            .is_ok_and(|sunday| holidays(sunday.year()).contains(&sunday));
    closed || observed
}

/// Whether ACH entries can settle on `date`.
pub fn is_banking_day(date: Date) -> bool {
    !matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday) && !is_holiday(date)
}

/// The first banking day after `date`: the effective entry date of a file made on `date`.
pub fn next_banking_day(date: Date) -> Date {
    let mut next = date
        .tomorrow()
        .expect("dates this side of 9999 have a tomorrow");
    while !is_banking_day(next) {
        next = next
            .tomorrow()
            .expect("dates this side of 9999 have a tomorrow");
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn a_friday_run_settles_on_monday_and_new_years_eve_after_the_holiday() {
        assert_eq!(
            next_banking_day(date(2026, 12, 4)),
            date(2026, 12, 7),
            "Friday → Monday"
        );
        assert_eq!(
            next_banking_day(date(2026, 12, 31)),
            date(2027, 1, 4),
            "1 Jan, then a weekend"
        );
        assert_eq!(next_banking_day(date(2026, 12, 3)), date(2026, 12, 4));
        assert_eq!(
            next_banking_day(date(2026, 11, 25)),
            date(2026, 11, 27),
            "Thanksgiving"
        );
        assert_eq!(
            next_banking_day(date(2026, 12, 24)),
            date(2026, 12, 28),
            "Christmas on a Friday"
        );
    }

    /// The Fed's published holiday closures, 2025 to 2028, observed rule included.
    #[test]
    fn the_feds_closures_across_years() {
        let closed = [
            // 2025
            date(2025, 1, 1),
            date(2025, 1, 20),
            date(2025, 2, 17),
            date(2025, 5, 26),
            date(2025, 6, 19),
            date(2025, 7, 4),
            date(2025, 9, 1),
            date(2025, 10, 13),
            date(2025, 11, 11),
            date(2025, 11, 27),
            date(2025, 12, 25),
            // 2026: Independence Day on a Saturday (no closure on Friday 3 July).
            date(2026, 1, 1),
            date(2026, 1, 19),
            date(2026, 2, 16),
            date(2026, 5, 25),
            date(2026, 6, 19),
            date(2026, 9, 7),
            date(2026, 10, 12),
            date(2026, 11, 11),
            date(2026, 11, 26),
            date(2026, 12, 25),
            // 2027: Juneteenth on a Saturday; Independence Day on a Sunday → Monday 5 July;
            // Christmas on a Saturday (Friday 24 December open).
            date(2027, 1, 1),
            date(2027, 1, 18),
            date(2027, 2, 15),
            date(2027, 5, 31),
            date(2027, 7, 5),
            date(2027, 9, 6),
            date(2027, 10, 11),
            date(2027, 11, 11),
            date(2027, 11, 25),
            // 2028: New Year's Day on a Saturday (31 December 2027 open); Juneteenth on a
            // Monday; Veterans Day on a Saturday.
            date(2028, 1, 17),
            date(2028, 2, 21),
            date(2028, 5, 29),
            date(2028, 6, 19),
            date(2028, 7, 4),
            date(2028, 9, 4),
            date(2028, 10, 9),
            date(2028, 11, 23),
            date(2028, 12, 25),
        ];
        for day in closed {
            assert!(!is_banking_day(day), "{day} is a Fed holiday");
        }
        for open in [
            date(2026, 7, 3),
            date(2027, 6, 18),
            date(2027, 12, 24),
            date(2027, 12, 31),
            date(2028, 11, 10),
            date(2026, 12, 3),
        ] {
            assert!(is_banking_day(open), "{open} is a banking day");
        }
        // Every weekend is closed; in four years, 250 to 252 banking days a year.
        for year in 2025..=2028 {
            let mut count = 0;
            let mut day = date(year, 1, 1);
            while day.year() == year {
                if is_banking_day(day) {
                    count += 1;
                    assert!(!matches!(
                        day.weekday(),
                        Weekday::Saturday | Weekday::Sunday
                    ));
                }
                day = day.tomorrow().unwrap();
            }
            assert!((249..=252).contains(&count), "{year}: {count} banking days");
        }
    }
}
