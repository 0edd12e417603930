//! The domain: plain types and rules, with no storage or transport in them.

pub mod accounts;
pub mod agent;
pub mod banking_days;
pub mod calls;
pub mod caps;
pub mod email;
pub mod ids;
pub mod ledger;
pub mod money;
pub mod nacha;
pub mod nacha_returns;
pub mod offer;
pub mod payout;
pub mod privacy;
pub mod tax;
pub mod tracking;
