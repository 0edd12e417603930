//! Affiliate postbacks through an outbox, and the `dispatch` job that delivers them. Call
//! recordings to archive go through the same outbox: a delivery that fetches the recording
//! from Twilio into `Blobs`, with the same retries and dead letters.
//!
//! Recording a conversion writes its postback to the outbox in the same transaction, so a
//! postback exists exactly when its conversion does. Its id is the conversion and status it
//! reports, so one status change can never be queued twice.
//!
//! Each run of the job claims due postbacks one by one with a transaction (remove from the
//! queue, add to in-flight with a lease): of two runs racing, one gets each postback. After
//! the call, a 2xx answer moves it to the delivered log; anything else puts it back in the
//! queue with exponential backoff, until it is too old or has failed too often, when it goes to
//! the dead letters, where an admin sees it and can replay it. A run that dies mid-call leaves
//! an in-flight postback whose lease expires; the next run queues it again. So a postback is
//! never lost, and sent twice only when a call may have failed.
//!
//! | record | pk | sk |
//! | --- | --- | --- |
//! | queued | `OUTBOX#{shard}` | `{due, ms, 13 digits}#{id}` |
//! | in flight | `INFLIGHT` | `{id}` |
//! | dead letter | `DEADLETTER` | `{id}` |
//! | delivered | `DELIVERED#{affiliate}` | `{id}` (kept as long as tracking records) |

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::app::App;
use crate::domain::ids::{AffiliateId, ConversionId};
use crate::domain::offer::fill_template;
use crate::domain::tracking::{Click, Conversion, tracking_expiry};
use crate::jobs::JobError;
use crate::ports::table::{Cond, Key, Query, TableError, Write, from_item, to_item};

/// The queue is spread over this many partitions (DynamoDB takes 1,000 writes/s per partition).
pub const SHARDS: u32 = 4;
/// A postback is given up after this many failed calls…
pub const MAX_ATTEMPTS: u32 = 12;
/// …or this long after it was queued.
pub const GIVE_UP_AFTER: SignedDuration = SignedDuration::from_hours(24);
/// A claimed postback returns to the queue if its run has not finished with it by then.
pub const LEASE: SignedDuration = SignedDuration::from_mins(2);
/// How many postbacks one run delivers at most (the next run takes the rest).
const PER_RUN: usize = 500;

/// One postback to an affiliate, or one call recording to archive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// `{conversion id}:{status}`, or `recording:{RecordingSid}`.
    pub id: String,
    pub affiliate_id: AffiliateId,
    /// The conversion a postback reports (none for a recording).
    #[serde(default)]
    pub conversion_id: Option<ConversionId>,
    /// The affiliate's URL with the macros filled in (for a recording: what it fetches).
    pub url: String,
    /// Work for the calls instead of a URL to call.
    #[serde(default)]
    pub job: Option<CallJob>,
    pub attempts: u32,
    pub created_at: Timestamp,
    pub due_at: Timestamp,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub lease_until: Option<i64>,
}

/// Work for pay-per-call that must not be lost: the `dispatch` job does it, with retries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CallJob {
    /// Archive a call's recording.
    Recording {
        call_sid: String,
        recording_sid: String,
        duration_secs: u32,
    },
    /// Convert a qualified call whose conversion failed when its status arrived.
    Conversion { call_sid: String },
}

fn shard(id: &str) -> u32 {
    id.bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % SHARDS
}

fn queue_key(delivery: &Delivery) -> Key {
    Key::new(
        format!("OUTBOX#{}", shard(&delivery.id)),
        format!(
            "{:013}#{}",
            delivery.due_at.as_millisecond().max(0),
            delivery.id
        ),
    )
}

fn in_flight_key(id: &str) -> Key {
    Key::new("INFLIGHT", id)
}

fn dead_letter_key(id: &str) -> Key {
    Key::new("DEADLETTER", id)
}

/// The affiliate's postback URL for a conversion: `{click_id}`, `{conversion_id}`, `{offer_id}`,
/// `{status}`, `{payout}`, `{currency}`, `{event}` and `{sub1}`…`{sub5}`, percent-encoded.
pub fn postback_url(template: &str, conversion: &Conversion, click: &Click) -> String {
    fill_template(template, |name| {
        Some(std::borrow::Cow::Owned(match name {
            "click_id" => conversion.click_id.to_string(),
            "conversion_id" => conversion.id.to_string(),
            "offer_id" => conversion.offer_id.to_string(),
            "status" => conversion.status.as_str().to_string(),
            "payout" => conversion.payout.to_decimal(),
            "currency" => conversion.payout.currency.code().to_string(),
            "event" => conversion.event.as_str().to_string(),
            "sub1" | "sub2" | "sub3" | "sub4" | "sub5" => {
                let index = usize::from(name.as_bytes()[3] - b'1');
                click.subs.get(index).unwrap_or_default().to_string()
            }
            _ => return None,
        }))
    })
}

/// The write that queues a postback, to go in the transaction that records what it reports.
pub fn enqueue(delivery: &Delivery) -> Result<Write, TableError> {
    Ok(Write::Put {
        item: to_item(delivery, &queue_key(delivery))?,
        cond: Cond::NotExists,
    })
}

/// A new postback for a conversion in its current status, due now.
pub fn delivery(app: &App, template: &str, conversion: &Conversion, click: &Click) -> Delivery {
    let status = conversion.status.as_str();
    let now = app.clock.now();
    Delivery {
        id: format!("{}:{status}", conversion.id),
        affiliate_id: conversion.affiliate_id,
        conversion_id: Some(conversion.id),
        url: postback_url(template, conversion, click),
        job: None,
        attempts: 0,
        created_at: now,
        due_at: now,
        last_error: None,
        lease_until: None,
    }
}

/// How long to wait after the `attempts`-th failure: 30 s, 1 min, 2 min… at most an hour.
pub fn backoff(attempts: u32) -> SignedDuration {
    SignedDuration::from_secs((30i64 << attempts.min(7)).min(3600))
}

/// What one run did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub delivered: usize,
    pub retrying: usize,
    pub dead: usize,
    pub recovered: usize,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} delivered, {} to retry, {} given up (dead letters), {} recovered from an interrupted run",
            self.delivered, self.retrying, self.dead, self.recovered
        )
    }
}

/// Delivers every due postback once.
pub async fn run(app: &App) -> Result<Report, TableError> {
    let now = app.clock.now();
    let mut report = Report {
        recovered: recover(app, now).await?,
        ..Report::default()
    };
    let until = format!("{:013}#~", now.as_millisecond());
    let mut handled = 0;
    for shard in 0..SHARDS {
        let page = app
            .table
            .query(
                Query::partition(format!("OUTBOX#{shard}"))
                    .between("0", until.clone())
                    .limit(100),
            )
            .await?;
        for item in page.items {
            if handled >= PER_RUN {
                return Ok(report);
            }
            handled += 1;
            let delivery: Delivery = from_item(item)?;
            deliver(app, delivery, now, &mut report).await?;
        }
    }
    Ok(report)
}

/// Returns in-flight postbacks whose run died to the queue.
async fn recover(app: &App, now: Timestamp) -> Result<usize, TableError> {
    let page = app
        .table
        .query(Query::partition("INFLIGHT").limit(500))
        .await?;
    let mut recovered = 0;
    for item in page.items {
        let mut delivery: Delivery = from_item(item)?;
        let Some(lease) = delivery
            .lease_until
            .filter(|lease| *lease <= now.as_millisecond())
        else {
            continue;
        };
        delivery.lease_until = None;
        delivery.due_at = now;
        let writes = vec![
            Write::Delete {
                key: in_flight_key(&delivery.id),
                cond: Cond::Equals("lease_until".into(), Value::from(lease)),
            },
            enqueue(&delivery)?,
        ];
        match app.table.transact(writes).await {
            Ok(()) => recovered += 1,
            Err(TableError::Conflict { .. }) => {} // another run recovered it
            Err(e) => return Err(e),
        }
    }
    Ok(recovered)
}

async fn deliver(
    app: &App,
    mut delivery: Delivery,
    now: Timestamp,
    report: &mut Report,
) -> Result<(), TableError> {
    // Claim it: of two runs, only one removes it from the queue.
    let queued = queue_key(&delivery);
    delivery.lease_until = Some((now + LEASE).as_millisecond());
    let claim = vec![
        Write::Delete {
            key: queued,
            cond: Cond::Exists,
        },
        Write::Put {
            item: to_item(&delivery, &in_flight_key(&delivery.id))?,
            cond: Cond::NotExists,
        },
    ];
    match app.table.transact(claim).await {
        Err(TableError::Conflict { .. }) => return Ok(()),
        other => other?,
    }
    let outcome = match &delivery.job {
        None => app.outbound.get(&delivery.url).await,
        Some(job) => crate::calls::work(app, job)
            .await
            .map(|()| 200)
            .map_err(|e| crate::outbound::OutboundError::Failed(e.to_string())),
    };
    let release = Write::Delete {
        key: in_flight_key(&delivery.id),
        cond: Cond::Exists,
    };
    delivery.lease_until = None;
    delivery.attempts += 1;
    let next = match outcome {
        // A call's work is recorded on the call (its recording, its conversion); the
        // affiliate's delivery log is for their postbacks only.
        Ok(_) if delivery.job.is_some() => {
            report.delivered += 1;
            return app.table.transact(vec![release]).await;
        }
        Ok(status) if (200..300).contains(&status) => {
            report.delivered += 1;
            let mut done = to_item(
                &delivery,
                &Key::new(
                    format!("DELIVERED#{}", delivery.affiliate_id),
                    delivery.id.clone(),
                ),
            )?;
            done.insert("expires_at".into(), Value::from(tracking_expiry(now)));
            Write::Put {
                item: done,
                cond: Cond::Always,
            }
        }
        failed => {
            let (error, permanent) = match failed {
                Ok(status) => (format!("answered HTTP {status}"), false),
                Err(e) => (e.to_string(), e.is_permanent()),
            };
            tracing::info!(delivery = %delivery.id, attempts = delivery.attempts, %error, "delivery failed");
            delivery.last_error = Some(error);
            let too_old = now.duration_since(delivery.created_at) >= GIVE_UP_AFTER;
            if permanent || too_old || delivery.attempts >= MAX_ATTEMPTS {
                report.dead += 1;
                tracing::warn!(delivery = %delivery.id, "delivery given up: in the dead letters");
                Write::Put {
                    item: to_item(&delivery, &dead_letter_key(&delivery.id))?,
                    cond: Cond::Always,
                }
            } else {
                report.retrying += 1;
                delivery.due_at = now + backoff(delivery.attempts - 1);
                enqueue(&delivery)?
            }
        }
    };
    app.table.transact(vec![release, next]).await
}

/// Queues work for a call, once per `id` (Twilio may repeat a callback): a marker claimed in
/// the same write as the queue entry. Queued even for a call not (yet) on record: the job
/// then fails, is retried, and ends in the dead letters an admin sees, never dropped.
pub async fn enqueue_call_job(app: &App, id: &str, job: CallJob) -> Result<(), TableError> {
    let call_sid = match &job {
        CallJob::Recording { call_sid, .. } | CallJob::Conversion { call_sid } => call_sid.clone(),
    };
    let affiliate_id = app
        .store
        .call(&call_sid)
        .await?
        .and_then(|call| call.affiliate_id)
        .unwrap_or(AffiliateId(ulid::Ulid::nil()));
    let now = app.clock.now();
    let delivery = Delivery {
        id: id.to_string(),
        affiliate_id,
        conversion_id: None,
        url: format!("twilio:{id}"),
        job: Some(job),
        attempts: 0,
        created_at: now,
        due_at: now,
        last_error: None,
        lease_until: None,
    };
    let mut marker = to_item(
        &serde_json::json!({ "call_sid": call_sid }),
        &Key::new(format!("CALLJOB#{id}"), "CALLJOB"),
    )?;
    marker.insert("expires_at".into(), Value::from(tracking_expiry(now)));
    match app
        .table
        .transact(vec![
            Write::Put {
                item: marker,
                cond: Cond::NotExists,
            },
            enqueue(&delivery)?,
        ])
        .await
    {
        Ok(()) | Err(TableError::Conflict { write: 0, .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Every postback waiting in the queue (at most 1000 a shard), soonest due first in each.
pub async fn queued(app: &App) -> Result<Vec<Delivery>, TableError> {
    let mut queued = Vec::new();
    for shard in 0..SHARDS {
        let page = app
            .table
            .query(Query::partition(format!("OUTBOX#{shard}")).limit(1000))
            .await?;
        for item in page.items {
            queued.push(from_item(item)?);
        }
    }
    Ok(queued)
}

/// The dead letters, oldest first.
pub async fn dead_letters(app: &App) -> Result<Vec<Delivery>, TableError> {
    let page = app
        .table
        .query(Query::partition("DEADLETTER").limit(1000))
        .await?;
    page.items.into_iter().map(from_item).collect()
}

/// Queues a dead letter again, due now, with a fresh count of attempts; false if there is none.
pub async fn replay(app: &App, id: &str) -> Result<bool, TableError> {
    let Some(item) = app.table.get(&dead_letter_key(id)).await? else {
        return Ok(false);
    };
    let mut delivery: Delivery = from_item(item)?;
    let now = app.clock.now();
    delivery.attempts = 0;
    delivery.created_at = now;
    delivery.due_at = now;
    let writes = vec![
        Write::Delete {
            key: dead_letter_key(id),
            cond: Cond::Exists,
        },
        enqueue(&delivery)?,
    ];
    match app.table.transact(writes).await {
        Ok(()) => Ok(true),
        Err(TableError::Conflict { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The delivered log of an affiliate.
pub async fn delivered(app: &App, affiliate: AffiliateId) -> Result<Vec<Delivery>, TableError> {
    let page = app
        .table
        .query(Query::partition(format!("DELIVERED#{affiliate}")).limit(1000))
        .await?;
    page.items
        .into_iter()
        .map(from_item)
        .collect::<Result<_, _>>()
}

/// The `dispatch` job.
pub async fn job(app: App) -> Result<String, JobError> {
    run(&app)
        .await
        .map(|report| report.to_string())
        .map_err(|e| JobError(Box::new(e)))
}
