//! Pay-per-call (the `calls` function): Twilio's webhooks, signed with `X-Twilio-Signature`
//! and answered in TwiML; tracking numbers and call settings for advertisers; calls for each
//! party; recordings streamed to advertisers through short-lived links.

use lambda_http::Body;
use lambda_http::http::{HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::{Route, schema};
use crate::app::App;
use crate::caller::{ADVERTISER_OR_ADMIN, ANY_ROLE, Access, caller, party};
use crate::calls::{self, WebhookParams};
use crate::domain::accounts::Party;
use crate::domain::calls::{
    Assignment, Call, CallSettings, E164, Recording, TrackingNumber, twilio_signature_valid,
};
use crate::domain::ids::AffiliateId;
use crate::http::{
    ApiError, Fields, Params, Request, Response, json, json_body, no_content, path_param, uncached,
};

const TWILIO: Access = Access::Public;

pub const VOICE: Route = Route::new(
    "calls",
    &["POST"],
    "/twilio/voice",
    TWILIO,
    "Twilio's voice webhook (signed): records the call and answers TwiML that puts it through, recorded",
    |app, request| Box::pin(voice(app, request)),
)
.succeeds_with(&[200]);

pub const STATUS: Route = Route::new(
    "calls",
    &["POST"],
    "/twilio/status",
    TWILIO,
    "Twilio's Dial action (signed; the voice answer names it): the put-through call's outcome and connected time; a long enough call converts",
    |app, request| Box::pin(status(app, request)),
)
.succeeds_with(&[200]);

pub const RECORDING: Route = Route::new(
    "calls",
    &["POST"],
    "/twilio/recording",
    TWILIO,
    "Twilio's recording status callback (signed): a completed recording is archived",
    |app, request| Box::pin(recording(app, request)),
);

pub const TRANSCRIPTION: Route = Route::new(
    "calls",
    &["POST"],
    "/twilio/transcription",
    TWILIO,
    "Twilio's real-time transcription callback (signed; `<Start><Transcription>` for offers with `transcribe`): each final utterance is kept with the call, once, in the order it was said",
    |app, request| Box::pin(transcription(app, request)),
);

pub const REGISTER_NUMBER: Route = Route::new("calls", &["POST"], "/api/numbers", ADVERTISER_OR_ADMIN,
    "Register a Twilio number (`{\"number\":\"+1…\",\"offer_id\",\"affiliate_id\"}`): one affiliate's (static), or without `affiliate_id` the offer's pool for dynamic number insertion (`{call_number}` in the destination)",
    |app, request| Box::pin(register_number(app, request)))
.takes(schema::<NumberInput>)
.answers(schema::<TrackingNumber>);

pub const NUMBERS: Route = Route::new("calls", &["GET"], "/api/numbers", ANY_ROLE,
    "Tracking numbers: an advertiser's, or an affiliate's own static ones (admins give advertiser_id or affiliate_id)",
    |app, request| Box::pin(numbers(app, request)))
.answers(schema::<NumberList>);

pub const SETTINGS: Route = Route::new("calls", &["PUT"], "/api/offers/{offer_id}/calls", ADVERTISER_OR_ADMIN,
    "An offer's calls (`{\"destination\":\"+1…\",\"min_duration_secs\":90,\"notice\",\"delete_from_twilio\",\"repeat_window_hours\",\"lease_minutes\",\"transcribe\"}`)",
    |app, request| Box::pin(settings(app, request)))
.takes(schema::<CallSettings>)
.answers(schema::<CallSettings>);

pub const LIST: Route = Route::new("calls", &["GET"], "/api/calls", ANY_ROLE,
    "Calls of the caller's offers or links, newest first (admins give advertiser_id or affiliate_id)",
    |app, request| Box::pin(list(app, request)))
.answers(schema::<CallList>);

pub const RECORDING_LINK: Route = Route::new("calls", &["GET"], "/api/calls/{call_sid}/recording", ADVERTISER_OR_ADMIN,
    "A link to stream a call's recording, good for five minutes (advertisers of the offer and admins only)",
    |app, request| Box::pin(recording_link(app, request)))
.answers(schema::<RecordingLink>);

pub const STREAM: Route = Route::new(
    "calls",
    &["GET"],
    "/recordings/{call_sid}",
    Access::Public,
    "A recording's audio (MP3), through a link from /api/calls/{call_sid}/recording",
    |app, request| Box::pin(stream(app, request)),
)
.succeeds_with(&[200]);

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct NumberInput {
    /// E.164, as bought in Twilio.
    number: String,
    offer_id: String,
    /// For a static number: the affiliate whose calls it brings (they need a link for the offer).
    affiliate_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct NumberList {
    pub numbers: Vec<TrackingNumber>,
}

#[derive(Serialize, ToSchema)]
pub struct CallView {
    pub sid: String,
    pub number: String,
    pub offer_id: String,
    pub affiliate_id: Option<String>,
    pub click_id: Option<String>,
    pub started_at: String,
    pub caller_country: Option<String>,
    pub outcome: Option<String>,
    pub connected_secs: Option<u32>,
    pub conversion_id: Option<String>,
    pub flags: Vec<String>,
    /// Advertisers and admins only: affiliates never hear calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recording: Option<Recording>,
    /// Advertisers and admins only, for offers that transcribe: one line an utterance,
    /// `Caller: …` or `Advertiser: …`, in the order they were said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transcription: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CallList {
    pub calls: Vec<CallView>,
}

#[derive(Serialize, ToSchema)]
pub struct RecordingLink {
    pub url: String,
    pub expires_at: String,
}

impl WebhookParams for Params {
    fn param(&self, name: &str) -> Option<&str> {
        self.raw(name)
    }
}

fn twiml(text: String) -> Response {
    uncached(StatusCode::OK, "text/xml; charset=utf-8", Body::Text(text))
}

/// The webhook's parameters, if Twilio signed them: the URL Twilio called (the configured
/// webhook base, the path and the query as sent) and the form body, under the auth token.
fn signed(app: &App, request: &Request) -> Result<Params, ApiError> {
    let Some(twilio) = &app.twilio else {
        return Err(ApiError::forbidden(
            "signature",
            "call tracking is not configured (LEADSREFER_TWILIO_ACCOUNT_SID)",
        ));
    };
    let mut url = format!(
        "{}{}",
        twilio.webhook_base(&app.public_url),
        request.uri().path()
    );
    if let Some(query) = request.uri().query() {
        url.push('?');
        url.push_str(query);
    }
    let refused = || {
        ApiError::forbidden(
            "signature",
            "X-Twilio-Signature does not match this request",
        )
    };
    // A body that does not parse was not signed by Twilio either.
    let params = Params::from_form(request.body().as_ref()).map_err(|_| refused())?;
    let signature = request
        .headers()
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !twilio_signature_valid(twilio.auth_token(), &url, &params.pairs(), signature)
        || params.raw("AccountSid") != Some(twilio.account_sid())
    {
        return Err(refused());
    }
    Ok(params)
}

async fn voice(app: App, request: Request) -> Result<Response, ApiError> {
    let params = signed(&app, &request)?;
    let base = app
        .twilio
        .as_ref()
        .map(|t| t.webhook_base(&app.public_url).to_string())
        .unwrap_or_default();
    match calls::voice(&app, &params, &base).await {
        Ok(answer) => Ok(twiml(answer)),
        // Never an error page to a caller: Twilio would read it out.
        Err(error) => {
            tracing::error!(%error, "a call could not be put through");
            Ok(twiml(calls::polite(
                "Sorry, we cannot take your call right now. Please try again later.",
            )))
        }
    }
}

async fn status(app: App, request: Request) -> Result<Response, ApiError> {
    let params = signed(&app, &request)?;
    calls::status(&app, &params)
        .await
        .map_err(ApiError::internal)?;
    Ok(twiml(calls::HANG_UP.to_string()))
}

async fn recording(app: App, request: Request) -> Result<Response, ApiError> {
    let params = signed(&app, &request)?;
    calls::recording(&app, &params)
        .await
        .map_err(ApiError::internal)?;
    Ok(no_content())
}

async fn transcription(app: App, request: Request) -> Result<Response, ApiError> {
    let params = signed(&app, &request)?;
    calls::transcription(&app, &params)
        .await
        .map_err(ApiError::internal)?;
    Ok(no_content())
}

async fn register_number(app: App, request: Request) -> Result<Response, ApiError> {
    let body: Value = json_body(&request)?;
    let fields = Fields::of(
        body,
        &["number", "offer_id", "affiliate_id"],
        "a tracking number",
    )?;
    let number = E164::parse(&fields.text("number")?)
        .map_err(|problem| ApiError::invalid("number", problem))?;
    let caller = caller(&request);
    if !caller.is_admin() {
        caller.require_active()?;
    }
    let offer = super::offers::managed(&app, caller, Some(&fields.text("offer_id")?)).await?;
    let assignment = match fields.optional_text("affiliate_id")? {
        None => Assignment::Pool,
        Some(text) => {
            let affiliate = AffiliateId::parse(&text)
                .ok_or_else(|| ApiError::invalid("affiliate_id", "is not an affiliate id"))?;
            let link = app
                .store
                .link_for_offer(affiliate, offer.id)
                .await
                .map_err(ApiError::internal)?
                .ok_or_else(|| {
                    ApiError::invalid(
                        "affiliate_id",
                        "has no link for this offer: approve the affiliate, who then makes one",
                    )
                })?;
            Assignment::Static {
                link: link.code,
                affiliate_id: affiliate,
            }
        }
    };
    let tracking = TrackingNumber {
        number,
        offer_id: offer.id,
        advertiser_id: offer.advertiser_id,
        assignment,
        created_at: app.clock.now(),
    };
    if !app
        .store
        .create_number(&tracking)
        .await
        .map_err(ApiError::internal)?
    {
        return Err(ApiError::conflict("number", "is registered already"));
    }
    caller
        .audit(
            &app,
            "number.registered",
            Some(tracking.number.as_str().to_string()),
        )
        .await?;
    Ok(json(StatusCode::CREATED, &tracking))
}

async fn numbers(app: App, request: Request) -> Result<Response, ApiError> {
    let params = Params::from_query(&request)?;
    let numbers = match party(caller(&request), &params)? {
        Party::Advertiser(id) => app.store.numbers_of_advertiser(id).await,
        Party::Affiliate(id) => app.store.numbers_of_affiliate(id).await,
    }
    .map_err(ApiError::internal)?;
    Ok(json(StatusCode::OK, &NumberList { numbers }))
}

async fn settings(app: App, request: Request) -> Result<Response, ApiError> {
    let caller = caller(&request);
    if !caller.is_admin() {
        caller.require_active()?;
    }
    let offer =
        super::offers::managed(&app, caller, path_param(&request, "offer_id").as_deref()).await?;
    let body: Value = json_body(&request)?;
    let fields = Fields::of(
        body,
        &[
            "destination",
            "min_duration_secs",
            "notice",
            "delete_from_twilio",
            "repeat_window_hours",
            "lease_minutes",
            "transcribe",
        ],
        "call settings",
    )?;
    let destination = E164::parse(&fields.text("destination")?)
        .map_err(|problem| ApiError::invalid("destination", problem))?;
    let mut settings = calls::default_settings(destination);
    let whole = |name: &'static str, max: u64| -> Result<Option<u32>, ApiError> {
        match fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n <= max) => {
                Ok(n.as_u64().map(|n| n as u32))
            }
            Some(_) => Err(ApiError::invalid(
                name,
                format!("must be a whole number from 0 to {max}"),
            )),
        }
    };
    if let Some(secs) = whole("min_duration_secs", 3_600)? {
        settings.min_duration_secs = secs;
    }
    if let Some(hours) = whole("repeat_window_hours", 24 * 90)? {
        settings.repeat_window_hours = hours;
    }
    if let Some(minutes) = whole("lease_minutes", 24 * 60)? {
        settings.lease_minutes = minutes.max(1);
    }
    settings.notice = match fields.optional_text("notice")? {
        Some(notice) if !notice.trim().is_empty() => Some(
            crate::domain::accounts::check_text(&notice, 500).ok_or_else(|| {
                ApiError::invalid("notice", "must be at most 500 characters, one line")
            })?,
        ),
        _ => None,
    };
    let flag = |name: &'static str| match fields.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ApiError::invalid(name, "must be true or false")),
    };
    settings.delete_from_twilio = flag("delete_from_twilio")?;
    settings.transcribe = flag("transcribe")?;
    app.store
        .save_call_settings(offer.id, &settings)
        .await
        .map_err(ApiError::internal)?;
    caller
        .audit(&app, "offer.calls_set", Some(offer.id.to_string()))
        .await?;
    Ok(json(StatusCode::OK, &settings))
}

fn view(call: Call, hearing: bool) -> CallView {
    CallView {
        sid: call.sid,
        number: call.number.as_str().to_string(),
        offer_id: call.offer_id.to_string(),
        affiliate_id: call.affiliate_id.map(|id| id.to_string()),
        click_id: call.click_id.map(|id| id.to_string()),
        started_at: call.started_at.to_string(),
        caller_country: call.caller_country,
        outcome: call.outcome,
        connected_secs: call.connected_secs,
        conversion_id: call.conversion_id.map(|id| id.to_string()),
        flags: call.flags,
        recording: call.recording.filter(|_| hearing),
        transcription: crate::domain::calls::transcript_text(&call.transcript).filter(|_| hearing),
    }
}

async fn list(app: App, request: Request) -> Result<Response, ApiError> {
    let params = Params::from_query(&request)?;
    let (calls, hearing) = match party(caller(&request), &params)? {
        Party::Advertiser(id) => (app.store.calls_of_advertiser(id, 500).await, true),
        Party::Affiliate(id) => (app.store.calls_of_affiliate(id, 500).await, false),
    };
    let calls = calls.map_err(ApiError::internal)?;
    Ok(json(
        StatusCode::OK,
        &CallList {
            calls: calls.into_iter().map(|c| view(c, hearing)).collect(),
        },
    ))
}

async fn recording_link(app: App, request: Request) -> Result<Response, ApiError> {
    let hidden = || ApiError::not_found("call_sid", "no such call recording");
    let sid = path_param(&request, "call_sid").ok_or_else(hidden)?;
    let call = app
        .store
        .call(&sid)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(hidden)?;
    let caller = caller(&request);
    if !caller.is_admin() && caller.account.advertiser_id() != Some(call.advertiser_id) {
        return Err(hidden());
    }
    // S3 signs a link straight to the object (a long call's MP3 is more than a function may
    // answer); elsewhere the `/recordings` route serves it through a link signed here.
    let valid_for = calls::RECORDING_LINK_LIFETIME.unsigned_abs();
    let key = call
        .recording
        .as_ref()
        .and_then(|r| crate::ports::BlobKey::parse(r.key.clone()).ok())
        .ok_or_else(hidden)?;
    let url = match app
        .blobs
        .link(&key, valid_for)
        .await
        .map_err(ApiError::internal)?
    {
        Some(url) => url,
        None => calls::recording_link(&app, &sid),
    };
    let expires_at = (app.clock.now() + calls::RECORDING_LINK_LIFETIME).to_string();
    caller
        .audit(&app, "call.recording_opened", Some(sid))
        .await?;
    Ok(json(StatusCode::OK, &RecordingLink { url, expires_at }))
}

async fn stream(app: App, request: Request) -> Result<Response, ApiError> {
    let refused = || {
        ApiError::forbidden(
            "signature",
            "this link is not valid or has expired: ask for a new one",
        )
    };
    let sid = path_param(&request, "call_sid").ok_or_else(refused)?;
    let params = Params::from_query(&request)?;
    let expires: i64 = params
        .text("expires", 20)?
        .and_then(|e| e.parse().ok())
        .ok_or_else(refused)?;
    let signature = params.text("signature", 128)?.ok_or_else(refused)?;
    if !calls::recording_link_valid(&app, &sid, expires, signature, app.clock.now()) {
        return Err(refused());
    }
    let call = app
        .store
        .call(&sid)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(refused)?;
    let recording = call.recording.ok_or_else(refused)?;
    let key = crate::ports::BlobKey::parse(recording.key).map_err(ApiError::internal)?;
    let audio = app
        .blobs
        .get(&key)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(refused)?;
    let mut response = uncached(StatusCode::OK, "audio/mpeg", Body::Binary(audio));
    response.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("inline; filename=\"call.mp3\""),
    );
    Ok(response)
}
