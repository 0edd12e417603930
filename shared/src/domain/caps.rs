//! Caps: an offer's daily, monthly and budget limits, enforced by counters that are updated in
//! the very transaction that records a conversion, each guarded by `Cond::Below`. However many
//! postbacks race, a counter can only pass its cap by refusing the transaction that would.

use jiff::SignedDuration;
use jiff::tz::Offset;

use super::offer::Offer;
use super::tracking::Conversion;
use crate::ports::table::{Cond, EXPIRES_AT, Key, TableError, Update, Write};

/// Counters outlive their period by a margin, then expire.
const DAY_COUNTER_LIFE: SignedDuration = SignedDuration::from_hours(24 * 3);
const MONTH_COUNTER_LIFE: SignedDuration = SignedDuration::from_hours(24 * 63);

/// The counter updates a conversion makes, one per cap the offer has.
pub fn counters(offer: &Offer, conversion: &Conversion) -> Result<Vec<Write>, TableError> {
    let date = Offset::UTC.to_datetime(conversion.at).date();
    let mut writes = Vec::new();
    let count = |key: Key, cap: u32, life: SignedDuration| Write::Update {
        key,
        update: Update::default()
            .add("count", 1)
            .set(EXPIRES_AT, (conversion.at + life).as_second()),
        cond: Cond::Below("count".into(), i64::from(cap)),
    };
    if let Some(cap) = offer.caps.daily {
        writes.push(count(
            Key::new(format!("CAP#{}#day#{date}", offer.id), "CAP"),
            cap,
            DAY_COUNTER_LIFE,
        ));
    }
    if let Some(cap) = offer.caps.monthly {
        let month = format!("{:04}-{:02}", date.year(), date.month());
        writes.push(count(
            Key::new(format!("CAP#{}#month#{month}", offer.id), "CAP"),
            cap,
            MONTH_COUNTER_LIFE,
        ));
    }
    if let Some(budget) = offer.caps.budget {
        // spent + revenue <= budget, that is spent < budget − revenue + 1.
        let revenue = conversion.revenue.minor;
        writes.push(Write::Update {
            key: Key::new(format!("CAP#{}#budget", offer.id), "CAP"),
            update: Update::default().add("spent", revenue),
            cond: Cond::Below(
                "spent".into(),
                budget.saturating_sub(revenue).saturating_add(1),
            ),
        });
    }
    Ok(writes)
}
