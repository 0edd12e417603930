//! Scheduled jobs: each one a Lambda function on an EventBridge schedule in production, a timer
//! in the local runner, and `leadsrefer run NAME` on demand. A job is exactly-once in effect:
//! running it twice for one period, or concurrently, changes nothing the first run did not.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::app::App;

pub type JobFuture = Pin<Box<dyn Future<Output = Result<String, JobError>> + Send>>;

/// One scheduled job.
pub struct Job {
    /// The function's name: its crate in `functions/` and its resource in `template.yaml`.
    pub name: &'static str,
    /// The EventBridge schedule expression in `template.yaml`.
    pub schedule: &'static str,
    /// How often the local runner runs it.
    pub every: Duration,
    /// Runs the job once; answers a one-line report of what it did.
    pub run: fn(App) -> JobFuture,
}

#[derive(Debug, thiserror::Error)]
#[error("job failed: {0}")]
pub struct JobError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Every scheduled job.
pub const JOBS: &[Job] = &[
    Job {
        name: "dispatch",
        schedule: "rate(1 minute)",
        every: Duration::from_secs(10),
        run: |app| Box::pin(crate::dispatch::job(app)),
    },
    Job {
        name: "maturation",
        schedule: "rate(15 minutes)",
        every: Duration::from_secs(60),
        run: |app| Box::pin(crate::lifecycle::maturation_job(app)),
    },
    Job {
        name: "payout-run",
        // Daily at 06:00 UTC; the run is keyed by its UTC date, so a repeat pays nothing.
        schedule: "cron(0 6 * * ? *)",
        every: Duration::from_secs(3600),
        run: |app| Box::pin(crate::payouts::job(app)),
    },
    Job {
        name: "tax-forms",
        // Hourly: the year just ended is filed once in January, and a year an admin asks for
        // within the hour.
        schedule: "rate(1 hour)",
        every: Duration::from_secs(3600),
        run: |app| Box::pin(crate::tax_forms::job(app)),
    },
    Job {
        name: "retention",
        schedule: "cron(0 3 * * ? *)",
        every: Duration::from_secs(3600),
        run: |app| Box::pin(crate::retention::job(app)),
    },
    Job {
        name: "data-exports",
        schedule: "rate(5 minutes)",
        every: Duration::from_secs(30),
        run: |app| Box::pin(crate::privacy::exports_job(app)),
    },
    Job {
        name: "policy-notices",
        schedule: "rate(5 minutes)",
        every: Duration::from_secs(60),
        run: |app| Box::pin(crate::privacy::notices_job(app)),
    },
];

pub fn find(name: &str) -> Option<&'static Job> {
    JOBS.iter().find(|job| job.name == name)
}

/// `n` and its noun, for a job's report: "1 form", "2 forms".
pub fn counted(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
