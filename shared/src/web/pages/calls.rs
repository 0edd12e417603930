//! Pay-per-call: calls (with recording playback and transcription for the offer's advertiser
//! and admins), tracking numbers, and an offer's call settings.

use lambda_http::http::{Method, StatusCode};
use maud::html;
use serde_json::{Map, Value, json};

use crate::domain::accounts::Role;
use crate::web::format::{status, time_element};
use crate::web::layout::{self, csrf, form_error, input, select};
use crate::web::pages::party::party_or_picker;
use crate::web::{Ctx, Refusal, encode, redirect, text};

type Result = std::result::Result<crate::http::Response, Refusal>;

pub async fn calls(ctx: Ctx) -> Result {
    let role = ctx.me().role;
    let party = match party_or_picker(&ctx, "Calls", "/app/calls").await? {
        Ok(party) => party,
        Err(picker) => return Ok(picker),
    };
    let calls = ctx
        .api
        .list(&format!("/api/calls?{}", party.query), "calls")
        .await?;
    let listening = role != Role::Affiliate;
    let body = html! {
        h1 { "Calls" }
        @if let Some(picker) = &party.picker { (picker) }
        p { a href="/app/numbers" { "Tracking numbers" } }
        @if calls.is_empty() { p class="muted" { "No calls yet." } }
        @else {
            div class="table-wrap" { table {
                thead { tr {
                    th scope="col" { "When" } th scope="col" { "Number" } th scope="col" { "From" }
                    th scope="col" { "Outcome" } th scope="col" class="num" { "Connected" }
                    th scope="col" { "Review" } th scope="col" { "Recording" }
                } }
                tbody { @for call in &calls {
                    tr {
                        td { (time_element(text(call, "started_at"), &ctx.zone)) }
                        td class="mono" { (text(call, "number")) }
                        td { (call["caller_country"].as_str().unwrap_or("—")) }
                        td { (status(call["outcome"].as_str().unwrap_or("in progress")))
                            @if call["conversion_id"].is_string() { br; span class="muted" { "converted" } } }
                        td class="num" { (call["connected_secs"].as_u64().map(|s| format!("{}:{:02}", s / 60, s % 60)).unwrap_or_else(|| "—".into())) }
                        td { (call["flags"].as_array().map(|f| f.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")).unwrap_or_default()) }
                        td {
                            @if listening && call["recording"].is_object() {
                                a href=(format!("/app/calls/{}", encode(text(call, "sid")))) { "Listen" }
                            } @else if call["recording"].is_object() { "recorded" } @else { "—" }
                            @if let Some(transcript) = call["transcription"].as_str() {
                                details { summary { "Transcript" }
                                    @for line in transcript.lines() { p { (line) } } }
                            }
                        }
                    }
                } }
            } }
        }
    };
    Ok(layout::page(&ctx, "Calls", body))
}

/// One call's recording, played from a link good for five minutes.
pub async fn recording(ctx: Ctx) -> Result {
    let sid = ctx.path_param("call_sid").to_string();
    let link = ctx
        .api
        .get(&format!("/api/calls/{}/recording", encode(&sid)))
        .await?;
    let url = text(&link, "url").to_string();
    // Locally the link is this site's `/recordings/…`; on AWS S3 signs one to the object,
    // which the page's policy then allows audio from, and from nowhere else.
    let origin = url::Url::parse(&url)
        .ok()
        .map(|u| u.origin().ascii_serialization())
        .filter(|origin| !ctx.app.public_url.starts_with(origin.as_str()));
    let body = html! {
        h1 { "Call recording" }
        div class="card" {
            p { "Call " code { (sid) } }
            audio controls preload="none" src=(url) { a href=(url) { "Download the recording" } }
            p class="muted" { "The link works for five minutes; reload the page for a new one." }
        }
        p { a href="/app/calls" { "Back to the calls" } }
    };
    let mut response = layout::page(&ctx, "Call recording", body);
    response.headers_mut().insert(
        lambda_http::http::header::CONTENT_SECURITY_POLICY,
        crate::web::content_security_policy(origin.as_deref()),
    );
    Ok(response)
}

pub async fn numbers(ctx: Ctx) -> Result {
    number_page(ctx, None).await
}

async fn number_page(ctx: Ctx, refusal: Option<(&'static str, Refusal)>) -> Result {
    let role = ctx.me().role;
    let party = match party_or_picker(&ctx, "Tracking numbers", "/app/numbers").await? {
        Ok(party) => party,
        Err(picker) => return Ok(picker),
    };
    let numbers = ctx
        .api
        .list(&format!("/api/numbers?{}", party.query), "numbers")
        .await?;
    let managing = role != Role::Affiliate;
    let offers: Vec<(String, String)> = if managing {
        ctx.api
            .list("/api/offers", "offers")
            .await?
            .iter()
            .map(|o| (text(o, "id").to_string(), text(o, "name").to_string()))
            .collect()
    } else {
        Vec::new()
    };
    let failed = |form: &str| refusal.as_ref().filter(|(f, _)| *f == form).map(|(_, r)| r);
    let status_code = refusal.as_ref().map_or(StatusCode::OK, |(_, r)| r.status);
    let body = html! {
        h1 { "Tracking numbers" }
        @if numbers.is_empty() { p class="muted" { "No numbers yet." } }
        @else {
            div class="table-wrap" { table {
                thead { tr { th scope="col" { "Number" } th scope="col" { "Offer" } th scope="col" { "Kind" } th scope="col" { "Since" } } }
                tbody { @for number in &numbers {
                    tr {
                        td class="mono" { (text(number, "number")) }
                        td { code { (text(number, "offer_id")) } }
                        td { @if number["assignment"]["type"] == "static" {
                            "static, affiliate " code { (text(&number["assignment"], "affiliate_id")) }
                        } @else { "pool (dynamic number insertion)" } }
                        td { (time_element(text(number, "created_at"), &ctx.zone)) }
                    }
                } }
            } }
        }
        @if managing && !offers.is_empty() {
            div class="card" {
                h2 { "Register a number" }
                p class="muted" { "A number bought in Twilio: one affiliate's (static), or, without an affiliate, the offer's pool that the tracking link lends to each visitor through {call_number}." }
                (form_error(failed("number")))
                form method="post" action="/app/numbers" novalidate {
                    (csrf(&ctx))
                    div class="row" {
                        div { (input("Number", "number", "text", if failed("number").is_some() { ctx.form.value("number") } else { "" }, failed("number"), Some("E.164, such as +14155550100."))) }
                        div { (select("Offer", "offer_id", &offers, ctx.form.value("offer_id"), failed("number"))) }
                        div { (input("Affiliate id", "affiliate_id", "text", if failed("number").is_some() { ctx.form.value("affiliate_id") } else { "" }, failed("number"), Some("Empty for the pool."))) }
                    }
                    div class="actions" { button type="submit" { "Register" } }
                }
            }
            div class="card" {
                h2 { "An offer's calls" }
                (form_error(failed("settings")))
                form method="post" action="/app/numbers/settings" novalidate {
                    (csrf(&ctx))
                    div class="row" {
                        div { (select("Offer", "offer_id", &offers, ctx.form.value("offer_id"), failed("settings"))) }
                        div { (input("Put calls through to", "destination", "text", if failed("settings").is_some() { ctx.form.value("destination") } else { "" }, failed("settings"), Some("E.164."))) }
                        div { (input("Qualified after (seconds)", "min_duration_secs", "number", if failed("settings").is_some() { ctx.form.value("min_duration_secs") } else { "90" }, failed("settings"), None)) }
                    }
                    (input("Notice played to callers", "notice", "text", if failed("settings").is_some() { ctx.form.value("notice") } else { "" }, failed("settings"), Some("Such as \"This call is recorded and transcribed.\"")))
                    label class="check" { input type="checkbox" name="transcribe" value="on" checked[ctx.form.has("transcribe")]; span { "Transcribe calls as they happen (Twilio bills it per minute)" } }
                    div class="actions" { button type="submit" { "Save the call settings" } }
                }
            }
        }
        p { a href="/app/calls" { "Calls" } }
    };
    Ok(layout::page_with_status(
        &ctx,
        status_code,
        "Tracking numbers",
        body,
    ))
}

pub async fn register_number(ctx: Ctx) -> Result {
    let mut body = Map::new();
    body.insert("number".into(), json!(ctx.form.value("number")));
    body.insert("offer_id".into(), json!(ctx.form.value("offer_id")));
    if let Some(affiliate) = ctx.form.get("affiliate_id") {
        body.insert("affiliate_id".into(), json!(affiliate));
    }
    match ctx
        .api
        .send(Method::POST, "/api/numbers", Some(Value::Object(body)))
        .await
    {
        Ok(_) => Ok(redirect("/app/numbers?done=offer-saved")),
        Err(refusal) => number_page(ctx, Some(("number", refusal))).await,
    }
}

pub async fn settings(ctx: Ctx) -> Result {
    let seconds = match ctx.form.get("min_duration_secs") {
        None => None,
        Some(text) => match text.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                let refusal = Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "min_duration_secs",
                    "min_duration_secs: must be a whole number",
                );
                return number_page(ctx, Some(("settings", refusal))).await;
            }
        },
    };
    let body = json!({
        "destination": ctx.form.value("destination"),
        "min_duration_secs": seconds,
        "notice": ctx.form.get("notice"),
        "transcribe": ctx.form.has("transcribe"),
    });
    let offer = ctx.form.value("offer_id").to_string();
    match ctx
        .api
        .send(
            Method::PUT,
            &format!("/api/offers/{}/calls", encode(&offer)),
            Some(body),
        )
        .await
    {
        Ok(_) => Ok(redirect("/app/numbers?done=offer-saved")),
        Err(refusal) => number_page(ctx, Some(("settings", refusal))).await,
    }
}
