//! Pay-per-call through Twilio: tracking numbers, the webhooks Twilio calls, recordings
//! archived to `Blobs`, and qualified calls converting through the same path as postbacks.
//!
//! A call to a tracking number is tied to a click: a static number's affiliate gets a click
//! made for the call; a pool number belongs to the click it is lent to (dynamic number
//! insertion, [`lend_number`]). The call is recorded once per CallSid however often Twilio
//! repeats a webhook; when the put-through call ends, a connected duration of at least the
//! offer's minimum converts it, once (its CallSid is the conversion's transaction id). The
//! recording is fetched by the `dispatch` job through the outbox, retried until archived, and
//! given up only into the dead letters an admin sees.

use jiff::{SignedDuration, Timestamp};

use crate::app::App;
use crate::domain::calls::{Assignment, Call, CallSettings, E164, Recording, Speaker, Utterance};
use crate::domain::ids::{ClickId, OfferId};
use crate::domain::offer::OfferStatus;
use crate::domain::tracking::{Click, EventName, Visitor, tracking_expiry};
use crate::ports::{BlobError, BlobKey, TableError};
use crate::store::Recorded;
use crate::tracking::{Postback, PostbackAuth, TrackingError};

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("storage failed")]
    Storage(#[from] TableError),
    #[error("the conversion could not be recorded: {0}")]
    Tracking(#[from] TrackingError),
    #[error("the recording could not be stored")]
    Blobs(#[from] BlobError),
    #[error("{0}")]
    Twilio(String),
}

/// A parameter of a Twilio webhook.
pub trait WebhookParams {
    fn param(&self, name: &str) -> Option<&str>;
}

/// A polite TwiML answer for a call that cannot be put through: never an error page.
pub fn polite(message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Say>{}</Say><Hangup/></Response>",
        crate::http::escape_markup(message)
    )
}

/// The TwiML that ends a put-through call's `action` request.
pub const HANG_UP: &str =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Hangup/></Response>";

/// How many pool numbers one click tries before showing none (a busy pool costs a click a
/// few writes at most).
const LEND_ATTEMPTS: usize = 3;

/// Lends one of an offer's pool numbers to a click for the offer's lease time: the number the
/// visitor holds already, if any (one number per visitor session), else a free one, starting
/// from the visitor's place in the pool so that visitors spread over it. None when the pool is
/// busy, and on any failure: a landing page without a number beats a failed click.
pub async fn lend_number(app: &App, offer: OfferId, click: ClickId, visitor: &str) -> Option<E164> {
    match try_lend(app, offer, click, visitor).await {
        Ok(number) => number,
        Err(error) => {
            tracing::warn!(%error, %offer, "no pool number could be lent");
            None
        }
    }
}

async fn try_lend(
    app: &App,
    offer: OfferId,
    click: ClickId,
    visitor: &str,
) -> Result<Option<E164>, TableError> {
    let Some(settings) = app.store.call_settings(offer).await? else {
        return Ok(None);
    };
    let until = (app.clock.now() + SignedDuration::from_mins(i64::from(settings.lease_minutes)))
        .as_second();
    if let Some(number) = app.store.visitor_lease(offer, visitor).await? {
        // Both records move on together, or the visitor's own old lease would keep them from
        // their number once the shorter one ran out.
        app.store.renew_lease(&number, click, until).await?;
        app.store
            .note_visitor_lease(offer, visitor, &number, until)
            .await?;
        return Ok(Some(number));
    }
    let pool = app.store.pool(offer).await?;
    if pool.is_empty() {
        return Ok(None);
    }
    let start = visitor.bytes().fold(0usize, |h, b| {
        h.wrapping_mul(31).wrapping_add(usize::from(b))
    });
    for i in 0..pool.len().min(LEND_ATTEMPTS) {
        let number = &pool[(start + i) % pool.len()];
        if app.store.lease_number(number, click, until).await? {
            app.store
                .note_visitor_lease(offer, visitor, number, until)
                .await?;
            return Ok(Some(number.clone()));
        }
    }
    Ok(None)
}

/// The voice webhook: records the call once and answers the TwiML that puts it through
/// (recorded from answer, both sides) to the advertiser, after the offer's notice.
pub async fn voice(
    app: &App,
    params: &impl WebhookParams,
    webhook_base: &str,
) -> Result<String, CallError> {
    const UNKNOWN: &str = "Sorry, this number is not in service. Goodbye.";
    let sid = params.param("CallSid").unwrap_or_default();
    let Some(number) = params.param("To").and_then(|to| E164::parse(to).ok()) else {
        return Ok(polite(UNKNOWN));
    };
    let Some(tracking) = app.store.number(&number).await? else {
        return Ok(polite(UNKNOWN));
    };
    let offer = app.store.offer(tracking.offer_id).await?;
    let settings = app.store.call_settings(tracking.offer_id).await?;
    let (Some(offer), Some(settings)) = (offer, settings) else {
        return Ok(polite(UNKNOWN));
    };
    if offer.status != OfferStatus::Active {
        return Ok(polite(
            "Sorry, we are not taking calls on this line at the moment. Please try again later.",
        ));
    }
    match app.store.call(sid).await? {
        None => {
            record_call(app, params, sid, &number, &tracking.assignment, &offer).await?;
        }
        // A repeat after a failure between the call's record and its click's: the click now.
        Some(call) => ensure_click(app, &call).await?,
    }
    let notice = settings
        .notice
        .as_deref()
        .map(|text| format!("<Say>{}</Say>", crate::http::escape_markup(text)))
        .unwrap_or_default();
    // Started after the notice, so that only the conversation is transcribed: the caller on
    // the inbound track, the advertiser on the outbound one once the call is put through.
    let transcribe = if settings.transcribe {
        format!(
            "<Start><Transcription statusCallbackUrl=\"{}/twilio/transcription\" track=\"both_tracks\" inboundTrackLabel=\"caller\" outboundTrackLabel=\"advertiser\"/></Start>",
            crate::http::escape_markup(webhook_base)
        )
    } else {
        String::new()
    };
    Ok(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>{notice}{transcribe}<Dial record=\"record-from-answer-dual\" recordingStatusCallback=\"{base}/twilio/recording\" recordingStatusCallbackEvent=\"completed\" action=\"{base}/twilio/status\" method=\"POST\"><Number>{}</Number></Dial></Response>",
        crate::http::escape_markup(settings.destination.as_str()),
        base = crate::http::escape_markup(webhook_base),
    ))
}

/// A new call (and, for a static number, the click it stands on), once per CallSid.
async fn record_call(
    app: &App,
    params: &impl WebhookParams,
    sid: &str,
    number: &E164,
    assignment: &Assignment,
    offer: &crate::domain::offer::Offer,
) -> Result<Call, CallError> {
    let now = app.clock.now();
    // A withheld number ("anonymous", "+266696687"…) is no one in particular: it gets no
    // pseudonym that would make all such callers look like one.
    let caller_hash = match params.param("From").map(E164::parse) {
        Some(Ok(from)) => app.pseudonymizer.caller_hash(from.as_str()),
        _ => String::new(),
    };
    let caller_country = params
        .param("FromCountry")
        .filter(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()))
        .map(str::to_string);
    // Who the call belongs to: a static number's link, or the click a pool number is lent to.
    let (click, made) = match assignment {
        Assignment::Static { link, .. } => {
            let id = ClickId(app.clock.new_id());
            let click =
                call_click(app, link, id, now, &caller_hash, caller_country.clone()).await?;
            let made = click.is_some();
            (click, made)
        }
        Assignment::Pool => match app.store.leased_to(number).await? {
            Some(id) => (app.store.click(id).await?, false),
            None => (None, false),
        },
    };
    let call = Call {
        sid: sid.to_string(),
        number: number.clone(),
        offer_id: offer.id,
        advertiser_id: offer.advertiser_id,
        affiliate_id: click.as_ref().map(|c| c.affiliate_id),
        click_id: click.as_ref().map(|c| c.id),
        caller_hash,
        caller_country,
        started_at: now,
        outcome: None,
        connected_secs: None,
        conversion_id: None,
        recording: None,
        transcript: Vec::new(),
        flags: if click.is_none() {
            vec!["unattributed".into()]
        } else {
            vec![]
        },
        expires_at: tracking_expiry(now),
        version: 0,
    };
    let recorded = app
        .store
        .create_call(&call, click.as_ref(), offer.currency)
        .await?;
    // The click made for this call is kept only if this request recorded the call (a crash
    // in between is repaired by `ensure_click`).
    if made
        && recorded.click_id == call.click_id
        && let Some(click) = click
    {
        app.store.create_uncounted_click(&click).await?;
    }
    Ok(recorded)
}

/// The click a static number's call stands on: the number's link, at the call's time, the
/// caller's pseudonym as its visitor. Flagged `call`: it counts as a call, not as a click.
/// None once the link is gone (its affiliate erased their account): the call still reaches
/// the advertiser, unattributed.
async fn call_click(
    app: &App,
    link: &crate::domain::ids::LinkCode,
    id: ClickId,
    at: Timestamp,
    caller_hash: &str,
    caller_country: Option<String>,
) -> Result<Option<Click>, CallError> {
    let Some(link) = app.store.link(link).await? else {
        return Ok(None);
    };
    let visitor = Visitor {
        ip_hash: caller_hash.to_string(),
        ip_prefix: String::new(),
        country: caller_country,
    };
    Ok(Some(Click::standing_for(
        Click::CALL_FLAG,
        &link,
        id,
        at,
        visitor,
        true,
    )))
}

/// Makes the click of a static number's call if a failure left the call without it.
async fn ensure_click(app: &App, call: &Call) -> Result<(), CallError> {
    let Some(click_id) = call.click_id else {
        return Ok(());
    };
    if app.store.click(click_id).await?.is_some() {
        return Ok(());
    }
    let Some(tracking) = app.store.number(&call.number).await? else {
        return Ok(());
    };
    let Assignment::Static { link, .. } = &tracking.assignment else {
        return Ok(());
    };
    if let Some(click) = call_click(
        app,
        link,
        click_id,
        call.started_at,
        &call.caller_hash,
        call.caller_country.clone(),
    )
    .await?
    {
        app.store.create_uncounted_click(&click).await?;
    }
    Ok(())
}

/// Twilio's final statuses of a `<Dial>`.
const FINAL: [&str; 5] = ["completed", "busy", "no-answer", "failed", "canceled"];

/// The put-through call ended: Twilio's `<Dial>` action, whose `DialCallStatus` and
/// `DialCallDuration` are the bridged call's outcome and the seconds caller and advertiser
/// were connected (the caller's own `CallDuration` also counts the notice and the ringing, so
/// it never decides). The outcome is recorded once, and a long enough call converts, once; a
/// conversion that fails here is queued, so that the outbox makes it.
pub async fn status(app: &App, params: &impl WebhookParams) -> Result<(), CallError> {
    let sid = params.param("CallSid").unwrap_or_default();
    let Some(outcome) = params
        .param("DialCallStatus")
        .filter(|status| FINAL.contains(status))
    else {
        return Ok(());
    };
    let seconds: u32 = params
        .param("DialCallDuration")
        .and_then(|d| d.parse().ok())
        .unwrap_or(0);
    let Some(call) = app
        .store
        .change_call(sid, |call| {
            let changed = call.outcome.is_none();
            if changed {
                call.outcome = Some(outcome.to_string());
                call.connected_secs = Some(seconds);
            }
            changed
        })
        .await?
    else {
        return Ok(());
    };
    match convert(app, call).await {
        Ok(()) => {}
        // What trying again cannot change (the click is outside the attribution window, the
        // offer does not pay for it) is noted on the call, not retried.
        Err(CallError::Tracking(refused)) if !matches!(refused, TrackingError::Storage(_)) => {
            flag_call(app, sid, format!("not_converted: {refused}")).await?;
        }
        Err(error) => {
            tracing::warn!(%error, call = %sid, "the call's conversion failed; queued to try again");
            crate::dispatch::enqueue_call_job(
                app,
                &format!("call-conversion:{sid}"),
                crate::dispatch::CallJob::Conversion {
                    call_sid: sid.to_string(),
                },
            )
            .await?;
        }
    }
    Ok(())
}

/// Notes `flag` on a call, once.
async fn flag_call(app: &App, sid: &str, flag: String) -> Result<(), CallError> {
    app.store
        .change_call(sid, |call| {
            let changed = !call.flags.contains(&flag);
            if changed {
                call.flags.push(flag.clone());
            }
            changed
        })
        .await?;
    Ok(())
}

/// Converts a call that qualifies and has not converted.
async fn convert(app: &App, call: Call) -> Result<(), CallError> {
    let (Some(click_id), None) = (call.click_id, call.conversion_id) else {
        return Ok(());
    };
    ensure_click(app, &call).await?;
    let Some(settings) = app.store.call_settings(call.offer_id).await? else {
        return Ok(());
    };
    let connected = call.connected_secs.unwrap_or(0);
    if call.outcome.as_deref() != Some("completed") || connected < settings.min_duration_secs {
        return Ok(());
    }
    // A second qualifying call from one caller within the window is held for review.
    let until = (call.started_at
        + SignedDuration::from_hours(i64::from(settings.repeat_window_hours)))
    .as_second();
    let mut flags = Vec::new();
    if !call.caller_hash.is_empty()
        && app
            .store
            .note_caller(call.offer_id, &call.caller_hash, &call.sid, until)
            .await?
    {
        flags.push("repeat_caller".to_string());
    }
    let recorded = crate::tracking::record_conversion(
        app,
        Postback {
            click_id,
            txn_id: Some(call.sid.clone()),
            event: EventName::default_event(),
            amount: None,
            currency: None,
            auth: PostbackAuth::Call { flags },
            client_prefix: None,
        },
    )
    .await?;
    let conversion = match recorded {
        Recorded::New(conversion) | Recorded::Duplicate(conversion) => conversion,
    };
    // The call shows why its conversion waits for review (a repeat caller), as the advertiser
    // reviews calls, not conversions' internals.
    app.store
        .change_call(&call.sid, |call| {
            let mut changed = call.conversion_id.is_none();
            call.conversion_id = Some(conversion.id);
            for flag in &conversion.flags {
                if !call.flags.contains(flag) {
                    call.flags.push(flag.clone());
                    changed = true;
                }
            }
            changed
        })
        .await?;
    Ok(())
}

/// The recording status callback: a completed recording is queued for archiving (once per
/// RecordingSid); a failed or absent one is noted on the call.
pub async fn recording(app: &App, params: &impl WebhookParams) -> Result<(), CallError> {
    let sid = params.param("CallSid").unwrap_or_default();
    let recording_sid = params.param("RecordingSid").unwrap_or_default();
    match params.param("RecordingStatus") {
        Some("completed") if !recording_sid.is_empty() => {
            let duration = params
                .param("RecordingDuration")
                .and_then(|d| d.parse().ok())
                .unwrap_or(0);
            crate::dispatch::enqueue_call_job(
                app,
                &format!("recording:{recording_sid}"),
                crate::dispatch::CallJob::Recording {
                    call_sid: sid.to_string(),
                    recording_sid: recording_sid.to_string(),
                    duration_secs: duration,
                },
            )
            .await?;
        }
        Some(status @ ("failed" | "absent")) => {
            flag_call(app, sid, format!("recording_{status}")).await?;
        }
        _ => {}
    }
    Ok(())
}

/// The most of a call's transcript kept: a long call's words past it are dropped (a flag says
/// so), keeping the call's record well inside DynamoDB's 400 KB.
const MAX_TRANSCRIPT_CHARS: usize = 100_000;

/// Twilio's real-time transcription callback (`<Start><Transcription statusCallbackUrl>`):
/// each final utterance is kept with the call, once however often Twilio repeats it, in the
/// order it was said; partial results are ignored, and an error flags the call.
pub async fn transcription(app: &App, params: &impl WebhookParams) -> Result<(), CallError> {
    let sid = params.param("CallSid").unwrap_or_default();
    match params.param("TranscriptionEvent") {
        Some("transcription-content") if params.param("Final") == Some("true") => {}
        Some("transcription-error") => {
            tracing::warn!(
                call = sid,
                code = params.param("TranscriptionErrorCode").unwrap_or_default(),
                "Twilio could not transcribe a call"
            );
            return flag_call(app, sid, "transcription_failed".into()).await;
        }
        _ => return Ok(()),
    }
    let speaker = params.param("Track").and_then(Speaker::of_track);
    let sequence = params.param("SequenceId").and_then(|s| s.parse().ok());
    let at = params.param("Timestamp").and_then(|t| t.parse().ok());
    // `TranscriptionData` is JSON in a form field: `{"transcript": "…", "confidence": 0.99}`.
    let text = params
        .param("TranscriptionData")
        .and_then(|data| serde_json::from_str::<serde_json::Value>(data).ok())
        .and_then(|data| data["transcript"].as_str().map(|t| t.trim().to_string()));
    let (Some(speaker), Some(sequence), Some(at), Some(text)) = (speaker, sequence, at, text)
    else {
        tracing::warn!(
            call = sid,
            "a transcription callback without its track, sequence, time or text"
        );
        return Ok(());
    };
    if text.is_empty() {
        return Ok(());
    }
    let utterance = Utterance {
        speaker,
        sequence,
        at,
        text,
    };
    app.store
        .change_call(sid, |call| {
            let known = call
                .transcript
                .iter()
                .any(|u| u.speaker == utterance.speaker && u.sequence == utterance.sequence);
            if known {
                return false;
            }
            let kept: usize = call.transcript.iter().map(|u| u.text.len()).sum();
            if kept + utterance.text.len() > MAX_TRANSCRIPT_CHARS {
                let flag = "transcript_truncated".to_string();
                let changed = !call.flags.contains(&flag);
                if changed {
                    call.flags.push(flag);
                }
                return changed;
            }
            let place = call.transcript.partition_point(|u| {
                (u.at, u.speaker == Speaker::Advertiser, u.sequence)
                    <= (
                        utterance.at,
                        utterance.speaker == Speaker::Advertiser,
                        utterance.sequence,
                    )
            });
            call.transcript.insert(place, utterance.clone());
            true
        })
        .await?;
    Ok(())
}

/// The `dispatch` job's step for a call's queued work.
pub async fn work(app: &App, job: &crate::dispatch::CallJob) -> Result<(), CallError> {
    match job {
        crate::dispatch::CallJob::Recording {
            call_sid,
            recording_sid,
            duration_secs,
        } => archive(app, call_sid, recording_sid, *duration_secs).await,
        crate::dispatch::CallJob::Conversion { call_sid } => {
            let call = app
                .store
                .call(call_sid)
                .await?
                .ok_or_else(|| CallError::Twilio(format!("no call {call_sid}")))?;
            convert(app, call).await
        }
    }
}

/// Where a call's recording is kept: by the call's day, so that the retention job finds the
/// ones past three years by their keys.
pub fn recording_key(call: &Call, recording_sid: &str) -> Result<BlobKey, BlobError> {
    BlobKey::parse(format!(
        "calls/{}/{}/{recording_sid}.mp3",
        call.started_at.strftime("%Y-%m-%d"),
        call.sid
    ))
}

/// Archives a recording (the `dispatch` job's step for a queued one): fetched from Twilio,
/// stored, checked, recorded on its call, then deleted from Twilio if the offer says so. Each
/// step is safe to repeat; an error is retried by the outbox.
pub async fn archive(
    app: &App,
    call_sid: &str,
    recording_sid: &str,
    duration_secs: u32,
) -> Result<(), CallError> {
    let twilio = app
        .twilio
        .clone()
        .ok_or_else(|| CallError::Twilio("Twilio is not configured".into()))?;
    let Some(call) = app.store.call(call_sid).await? else {
        return Err(CallError::Twilio(format!("no call {call_sid}")));
    };
    if call
        .recording
        .as_ref()
        .is_none_or(|r| r.recording_sid != recording_sid)
    {
        let audio = twilio
            .fetch_recording(recording_sid)
            .await
            .map_err(|e| CallError::Twilio(e.to_string()))?;
        if audio.is_empty() {
            return Err(CallError::Twilio("Twilio sent an empty recording".into()));
        }
        let key = recording_key(&call, recording_sid)?;
        let recording = Recording {
            recording_sid: recording_sid.to_string(),
            key: key.as_str().to_string(),
            bytes: audio.len() as u64,
            sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&audio)),
            duration_secs,
            archived_at: app.clock.now(),
        };
        app.blobs.put(&key, audio, "audio/mpeg").await?;
        app.store
            .change_call(call_sid, |call| {
                let changed = call.recording.as_ref() != Some(&recording);
                call.recording = Some(recording.clone());
                changed
            })
            .await?;
    }
    let delete = app
        .store
        .call_settings(call.offer_id)
        .await?
        .is_some_and(|s| s.delete_from_twilio);
    if delete {
        twilio
            .delete_recording(recording_sid)
            .await
            .map_err(|e| CallError::Twilio(e.to_string()))?;
    }
    Ok(())
}

/// How long a link to a recording may be used, on S3 or here.
pub const RECORDING_LINK_LIFETIME: SignedDuration = SignedDuration::from_mins(5);

/// A link to stream a recording, good for [`RECORDING_LINK_LIFETIME`]:
/// `/recordings/{sid}?expires=…&signature=…`.
pub fn recording_link(app: &App, call_sid: &str) -> String {
    let expires = (app.clock.now() + RECORDING_LINK_LIFETIME).as_second();
    let signature = app
        .pseudonymizer
        .sign("recording", &format!("{call_sid}:{expires}"));
    format!(
        "{}/recordings/{call_sid}?expires={expires}&signature={signature}",
        app.public_url
    )
}

/// Whether a recording link is genuine and still good at `now`.
pub fn recording_link_valid(
    app: &App,
    call_sid: &str,
    expires: i64,
    signature: &str,
    now: Timestamp,
) -> bool {
    now.as_second() < expires
        && app
            .pseudonymizer
            .verify("recording", &format!("{call_sid}:{expires}"), signature)
}

/// Sensible call settings for an offer that gives only where calls go.
pub fn default_settings(destination: E164) -> CallSettings {
    CallSettings {
        destination,
        min_duration_secs: 90,
        notice: None,
        delete_from_twilio: false,
        repeat_window_hours: 24,
        lease_minutes: 30,
        transcribe: false,
    }
}
