//! The `Visits` contract: unique clicks per link and window, floods per visitor and minute.

use jiff::SignedDuration;

use crate::ports::clock::{Clock, ManualClock};
use crate::ports::visits::{Visit, Visits};

fn visit(first_on_link: bool, clicks_this_minute: i64) -> Visit {
    Visit {
        first_on_link,
        clicks_this_minute,
    }
}

/// Every expectation, on fresh visitor names (adapters may share state between runs). `clock`
/// is the one the adapter's storage judges expiry by; the suite moves it forward and back.
pub async fn run_all(visits: &dyn Visits, clock: &ManualClock) {
    let run = rand::random::<u64>();
    let (alice, bob) = (format!("alice-{run}"), format!("bob-{run}"));
    let window = SignedDuration::from_hours(24);
    // Early in a minute, so that the first clicks share it.
    let second = clock.now().as_second();
    let start = clock.now() + SignedDuration::from_secs(10 - second.rem_euclid(60));
    let at = |seconds: i64| {
        let now = start + SignedDuration::from_secs(seconds);
        clock.set(now);
        now
    };
    let original = clock.now();

    assert_eq!(
        visits.record("L1", &alice, at(0), window).await.unwrap(),
        visit(true, 1),
        "a first click"
    );
    assert_eq!(
        visits.record("L1", &alice, at(1), window).await.unwrap(),
        visit(false, 2),
        "a repeat"
    );
    assert_eq!(
        visits.record("L2", &alice, at(2), window).await.unwrap(),
        visit(true, 3),
        "another link: unique there, same minute"
    );
    assert_eq!(
        visits.record("L1", &bob, at(3), window).await.unwrap(),
        visit(true, 1),
        "another visitor"
    );
    assert_eq!(
        visits.record("L1", &alice, at(60), window).await.unwrap(),
        visit(false, 1),
        "a new minute, the same window"
    );
    let day = 24 * 3600;
    assert_eq!(
        visits
            .record("L1", &alice, at(day + 5), window)
            .await
            .unwrap(),
        visit(true, 1),
        "the window is over"
    );
    let short = SignedDuration::from_hours(1);
    assert_eq!(
        visits.record("L3", &bob, at(day), short).await.unwrap(),
        visit(true, 1)
    );
    assert_eq!(
        visits
            .record("L3", &bob, at(day + 3599), short)
            .await
            .unwrap(),
        visit(false, 1),
        "each link's window is its offer's"
    );
    clock.set(original);
}
