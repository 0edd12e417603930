//! Time and ids. Everything that reads the time reads it from a [`Clock`], so that tests can
//! stand at an attribution window's edge or three years later.

use std::sync::atomic::{AtomicI64, Ordering};

use jiff::{SignedDuration, Timestamp};
use ulid::Ulid;

pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;

    /// A new time-ordered id (a ULID): the clock's millisecond and 80 random bits.
    fn new_id(&self) -> Ulid {
        let ms = self.now().as_millisecond().max(0) as u64;
        Ulid::from_parts(ms, rand::random::<u128>())
    }
}

/// The system's clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that stands still until moved: for tests.
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn at(time: Timestamp) -> Self {
        Self(AtomicI64::new(time.as_millisecond()))
    }

    pub fn set(&self, time: Timestamp) {
        self.0.store(time.as_millisecond(), Ordering::SeqCst);
    }

    pub fn advance(&self, by: SignedDuration) {
        self.0.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millisecond(self.0.load(Ordering::SeqCst)).expect("clock within range")
    }
}
