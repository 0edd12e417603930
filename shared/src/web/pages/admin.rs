//! An operator's screens: accounts (approve, suspend, locks), flagged traffic, dead-letter
//! postbacks with replay, payout runs (start, progress, report, retry), the tax-forms job,
//! privacy requests with their deadlines and policy versions, and the audit log.

use lambda_http::http::{Method, StatusCode};
use maud::html;
use serde_json::{Value, json};

use crate::web::format::{money, status, time_element};
use crate::web::layout::{self, button_form, csrf, form_error, input, select};
use crate::web::{Ctx, Refusal, encode, redirect, text};

type Result = std::result::Result<crate::http::Response, Refusal>;

/// An API path with the page's `?cursor=` passed on: the page of a list the pager asked for.
fn with_cursor(ctx: &Ctx, mut path: String) -> String {
    if let Some(cursor) = ctx.query.get("cursor") {
        path.push(if path.contains('?') { '&' } else { '?' });
        path.push_str("cursor=");
        path.push_str(&encode(cursor));
    }
    path
}

pub async fn accounts(ctx: Ctx) -> Result {
    let path = with_cursor(&ctx, "/api/admin/accounts?limit=100".to_string());
    let answer = ctx.api.get(&path).await?;
    let wanted_status = ctx.query.get("status").unwrap_or("");
    let wanted_role = ctx.query.get("role").unwrap_or("");
    let accounts: Vec<Value> = answer["accounts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|a| wanted_status.is_empty() || a["status"] == wanted_status)
        .filter(|a| wanted_role.is_empty() || a["role"] == wanted_role)
        .collect();
    let any = |options: &[(&str, &str)]| -> Vec<(String, String)> {
        std::iter::once((String::new(), "Any".to_string()))
            .chain(options.iter().map(|(v, l)| (v.to_string(), l.to_string())))
            .collect()
    };
    let body = html! {
        h1 { "Accounts" }
        form class="filters card" method="get" action="/app/admin/accounts" {
            div { (select("Status", "status", &any(&[("pending_approval", "Waiting for approval"), ("active", "Active"), ("suspended", "Suspended"), ("closed", "Closed")]), wanted_status, None)) }
            div { (select("Role", "role", &any(&[("advertiser", "Advertiser"), ("affiliate", "Affiliate"), ("admin", "Admin")]), wanted_role, None)) }
            div { button type="submit" class="secondary" { "Filter" } }
        }
        @if accounts.is_empty() { p class="muted" { "No accounts match." } }
        @else {
            div class="table-wrap" { table {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Email" } th scope="col" { "Role" } th scope="col" { "Status" } th scope="col" { "Since" } th scope="col" { "Act" } } }
                tbody { @for account in &accounts {
                    @let id = text(account, "id");
                    @let state = text(account, "status");
                    tr {
                        td { (text(account, "name")) }
                        td { (text(account, "email")) @if account["email_verified"] == false { br; span class="muted" { "not verified" } } }
                        td { (text(account, "role")) }
                        td { (status(state))
                            @if let Some(until) = account["locked_until"].as_str() { br; span class="muted" { "sign-in locked until " (time_element(until, &ctx.zone)) } } }
                        td { (time_element(text(account, "created_at"), &ctx.zone)) }
                        td {
                            @if account["role"] != "admin" {
                                @if state != "active" && state != "closed" {
                                    (button_form(&ctx, &format!("/app/admin/accounts/{id}/status"), &[("status", "active")], if state == "pending_approval" { "Approve" } else { "Reinstate" }, "small"))
                                    " "
                                }
                                @if state == "active" || state == "pending_approval" {
                                    (button_form(&ctx, &format!("/app/admin/accounts/{id}/status"), &[("status", "suspended")], "Suspend", "small secondary"))
                                }
                            }
                        }
                    }
                } }
            } }
        }
        @if let Some(next) = answer["next_cursor"].as_str() {
            nav class="pager" aria-label="Pages" { a href=(format!("/app/admin/accounts?cursor={}", encode(next))) { "More accounts" } }
        }
    };
    Ok(layout::page(&ctx, "Accounts", body))
}

pub async fn set_status(ctx: Ctx) -> Result {
    let id = ctx.path_param("account_id");
    ctx.api
        .send(
            Method::PUT,
            &format!("/api/admin/accounts/{}/status", encode(id)),
            Some(json!({ "status": ctx.form.value("status") })),
        )
        .await?;
    Ok(redirect("/app/admin/accounts?done=decided"))
}

pub async fn flagged(ctx: Ctx) -> Result {
    let day = ctx.query.get("day").map(str::to_string).unwrap_or_else(|| {
        ctx.app
            .clock
            .now()
            .to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .date()
            .to_string()
    });
    let path = with_cursor(&ctx, format!("/api/admin/flagged?day={}", encode(&day)));
    let outcome = ctx.api.get(&path).await;
    let refusal = outcome.as_ref().err();
    let flagged = outcome
        .as_ref()
        .ok()
        .and_then(|a| a["flagged"].as_array().cloned())
        .unwrap_or_default();
    let next = outcome
        .as_ref()
        .ok()
        .and_then(|a| a["next_cursor"].as_str().map(str::to_string));
    let body = html! {
        h1 { "Flagged clicks and conversions" }
        form class="filters card" method="get" action="/app/admin/flagged" {
            div { (input("Day (UTC)", "day", "date", &day, refusal, None)) }
            div { button type="submit" class="secondary" { "Show" } }
        }
        @if let Some(refusal) = refusal { div class="notice error" role="alert" { p { (refusal.message) } } }
        @if flagged.is_empty() { p class="muted" { "Nothing was flagged that day." } }
        @else {
            div class="table-wrap" { table {
                thead { tr { th scope="col" { "When" } th scope="col" { "What" } th scope="col" { "Offer" } th scope="col" { "Affiliate" } th scope="col" { "Why" } th scope="col" { "Review" } } }
                tbody { @for item in &flagged {
                    tr {
                        td { (time_element(text(item, "at"), &ctx.zone)) }
                        td { (text(item, "kind")) br; code { (text(item, "id")) } }
                        td { a href=(format!("/app/offers/{}", encode(text(item, "offer_id")))) { code { (text(item, "offer_id")) } } }
                        td { code { (text(item, "affiliate_id")) } }
                        td { (item["flags"].as_array().map(|f| f.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")).unwrap_or_default()) }
                        td { @if item["kind"] == "conversion" {
                            a href=(format!("/app/conversions?affiliate_id={}&status=pending", encode(text(item, "affiliate_id")))) { "Decide" }
                        } }
                    }
                } }
            } }
            p class="muted" { "A visitor flooding a link is listed once a minute, with the click that began the flood." }
            @if let Some(next) = &next {
                nav class="pager" aria-label="Pages" { a href=(format!("/app/admin/flagged?day={}&cursor={}", encode(&day), encode(next))) { "More" } }
            }
        }
    };
    let status_code = refusal.map_or(StatusCode::OK, |r| r.status);
    Ok(layout::page_with_status(&ctx, status_code, "Flagged", body))
}

pub async fn dead_letters(ctx: Ctx) -> Result {
    let letters = ctx
        .api
        .list("/api/admin/postbacks/dead-letters", "dead_letters")
        .await?;
    let body = html! {
        h1 { "Dead-letter postbacks" }
        p class="muted" { "Affiliate postbacks given up after failing for too long. Replay one once the affiliate's server works again." }
        @if letters.is_empty() { p class="muted" { "None: every postback was delivered or is still being retried." } }
        @else {
            div class="table-wrap" { table {
                thead { tr { th scope="col" { "Since" } th scope="col" { "Affiliate" } th scope="col" { "Kind" } th scope="col" class="num" { "Attempts" } th scope="col" { "Last error" } th scope="col" { "Replay" } } }
                tbody { @for letter in &letters {
                    tr {
                        td { (time_element(text(letter, "created_at"), &ctx.zone)) }
                        td { code { (text(letter, "affiliate_id")) } }
                        td { (text(letter, "kind")) }
                        td class="num" { (letter["attempts"].as_u64().unwrap_or(0)) }
                        td { (text(letter, "last_error")) }
                        td { (button_form(&ctx, &format!("/app/admin/postbacks/{}/replay", encode(text(letter, "id"))), &[], "Replay", "small")) }
                    }
                } }
            } }
        }
    };
    Ok(layout::page(&ctx, "Postbacks", body))
}

pub async fn replay(ctx: Ctx) -> Result {
    let id = ctx.path_param("delivery_id");
    ctx.api
        .send(
            Method::POST,
            &format!("/api/admin/postbacks/dead-letters/{}/replay", encode(id)),
            None,
        )
        .await?;
    Ok(redirect("/app/admin/postbacks?done=replayed"))
}

pub async fn payouts(ctx: Ctx) -> Result {
    payouts_page(ctx, None).await
}

/// The payout runs page, with what an uploaded return file did (or why it was refused).
async fn payouts_page(ctx: Ctx, returns: Option<std::result::Result<Value, Refusal>>) -> Result {
    let runs = ctx.api.list("/api/admin/payout-runs", "runs").await?;
    let running = runs.iter().any(|r| r["finished_at"].is_null());
    let picker = crate::web::pages::party::party_picker(&ctx, "/app/admin/payouts").await?;
    let years = ctx.api.get("/api/admin/tax-forms").await.ok();
    let body = html! {
        h1 { "Payout runs" }
        @if running {
            // A run in progress: the page refreshes itself every few seconds (no script needed).
            meta http-equiv="refresh" content="5";
            div class="notice" role="status" { p { "A run is in progress; this page refreshes every 5 seconds." } progress aria-label="Payout run in progress" {} }
        }
        div class="card" {
            p { "The payout run pays every affiliate whose payable balance reached the minimum, once per day, by PayPal or in an ACH file. Running it again the same day pays nobody twice." }
            form method="post" action="/app/admin/payouts/run" data-confirm="Start today's payout run now?" {
                (csrf(&ctx)) button type="submit" { "Run payouts now" }
            }
        }
        @if runs.is_empty() { p class="muted" { "No run yet." } }
        @else {
            div class="table-wrap" { table {
                thead { tr { th scope="col" { "Run" } th scope="col" { "Started" } th scope="col" { "Finished" } th scope="col" { "PayPal batch" } th scope="col" { "Report" } } }
                tbody { @for run in &runs {
                    @let id = text(run, "id");
                    tr {
                        td { code { (id) } }
                        td { (time_element(text(run, "started_at"), &ctx.zone)) }
                        td { @match run["finished_at"].as_str() { Some(at) => (time_element(at, &ctx.zone)), None => (status("processing")) } }
                        td class="mono" { (run["paypal_batch_id"].as_str().unwrap_or("—")) }
                        td {
                            @for line in run["report"].as_array().cloned().unwrap_or_default() { div { (line.as_str().unwrap_or("")) } }
                            @if run["report"].as_array().is_some_and(|lines| lines.iter().any(|l| l.as_str().is_some_and(|l| l.contains("ach.txt")))) {
                                a href=(format!("/app/admin/payouts/{}/ach", encode(id))) download { "Download the ACH file" }
                            }
                        }
                    }
                } }
            } }
        }
        div class="card" {
            h2 id="ach-returns" { "ACH returns" }
            p { "Upload the return file your bank sends (NACHA format). Each returned payout is marked failed and its amount is payable again; a return saying the account cannot take payments stops the affiliate's bank method until they give another. Each affiliate is mailed. Uploading the same file again changes nothing." }
            @if let Some(Err(refusal)) = &returns { (form_error(Some(refusal))) }
            form method="post" action=(crate::http::ACH_RETURNS_FORM_PATH) enctype="multipart/form-data" {
                (csrf(&ctx))
                label for="f-returns" { "Return file (NACHA)" }
                input id="f-returns" type="file" name="returns" accept=".ach,.txt,text/plain";
                div class="actions" { button type="submit" { "Record the returns" } }
            }
            @if let Some(Ok(recorded)) = &returns { (returns_table(recorded)) }
        }
        div class="card" {
            h2 { "An affiliate's payouts" }
            (picker)
            @if let Some(affiliate) = ctx.query.get("affiliate_id") { (affiliate_payouts(&ctx, affiliate).await) }
        }
        div class="card" {
            h2 { "Tax forms (1099-NEC)" }
            p { "The tax-forms job files the year just ended each January; ask for another year here." }
            @if let Some(years) = &years {
                ul { @for year in years["years"].as_array().cloned().unwrap_or_default() {
                    li { "Tax year " (year["year"].as_i64().unwrap_or(0)) ": "
                        @match year["filed_at"].as_str() { Some(at) => { "filed " (time_element(at, &ctx.zone)) }, None => { "requested, waiting for the job" } } }
                } }
            }
            form class="filters" method="post" action="/app/admin/tax-forms" {
                (csrf(&ctx))
                div { (input("Tax year", "year", "number", "", None, None)) }
                div { button type="submit" class="secondary" { "File this year" } }
            }
        }
    };
    let status_code = match &returns {
        Some(Err(refusal)) => refusal.status,
        _ => StatusCode::OK,
    };
    Ok(layout::page_with_status(
        &ctx,
        status_code,
        "Payout runs",
        body,
    ))
}

/// What each entry of an uploaded return file became.
fn returns_table(recorded: &Value) -> maud::Markup {
    let entries = recorded["entries"].as_array().cloned().unwrap_or_default();
    html! {
        div class="notice good" role="status" {
            p { (recorded["recorded"].as_u64().unwrap_or(0)) " payout(s) marked failed from " (entries.len()) " entries." }
        }
        div class="table-wrap" { table {
            caption { "The return file's entries" }
            thead { tr { th scope="col" { "Record" } th scope="col" { "Code" } th scope="col" class="num" { "Amount" } th scope="col" { "Payout" } th scope="col" { "Outcome" } } }
            tbody { @for entry in &entries {
                tr {
                    td class="num" { (entry["record"].as_u64().unwrap_or(0)) }
                    td { code { (text(entry, "code")) } " " span class="muted" { (text(entry, "reason")) } }
                    td class="num" { (money(text(entry, "amount"), "USD")) }
                    td { code { (entry["payout_id"].as_str().unwrap_or("—")) } }
                    td { (serde_json::from_value::<crate::ach_returns::Outcome>(entry["outcome"].clone()).map_or("", |outcome| outcome.words()))
                        @if entry["method_stopped"] == true { br; span class="muted" { "payout method stopped" } } }
                }
            } }
        } }
    }
}

/// The bank's return file, from the upload form to the API.
pub async fn record_ach_returns(ctx: Ctx) -> Result {
    let outcome = match ctx.uploaded("returns", "the bank's return file") {
        Err(refusal) => Err(refusal),
        Ok(bytes) => {
            ctx.api
                .send_bytes(Method::POST, "/api/admin/ach-returns", "text/plain", bytes)
                .await
        }
    };
    payouts_page(ctx, Some(outcome)).await
}

/// One affiliate's payouts, with a retry for those that failed.
async fn affiliate_payouts(ctx: &Ctx, affiliate: &str) -> maud::Markup {
    let outcome = ctx
        .api
        .get(&format!("/api/payouts?affiliate_id={}", encode(affiliate)))
        .await;
    html! {
        h2 { "Payouts to " code { (affiliate) } }
        @match outcome {
            Err(refusal) => div class="notice error" role="alert" { p { (refusal.message) } },
            Ok(answer) => {
                @let payouts = answer["payouts"].as_array().cloned().unwrap_or_default();
                @if payouts.is_empty() { p class="muted" { "No payouts." } }
                @else {
                    div class="table-wrap" { table {
                        thead { tr { th scope="col" { "Run" } th scope="col" class="num" { "Amount" } th scope="col" { "To" } th scope="col" { "Status" } th scope="col" { "Retry" } } }
                        tbody { @for payout in &payouts {
                            tr {
                                td { code { (text(payout, "run")) } }
                                td class="num" { (money(text(payout, "amount"), text(payout, "currency"))) }
                                td { (text(payout, "destination")) }
                                td { (status(text(payout, "status"))) @if let Some(failure) = payout["failure"].as_str() { br; span class="muted" { (failure) } } }
                                td { @if payout["status"] == "failed" {
                                    (button_form(ctx, &format!("/app/admin/payouts/{}/retry", encode(text(payout, "id"))), &[], "Retry", "small"))
                                } }
                            }
                        } }
                    } }
                }
            }
        }
    }
}

pub async fn run_payouts(ctx: Ctx) -> Result {
    ctx.api
        .send(Method::POST, "/api/admin/payout-runs", None)
        .await?;
    Ok(redirect("/app/admin/payouts?done=run-started"))
}

pub async fn retry_payout(ctx: Ctx) -> Result {
    let id = ctx.path_param("payout_id");
    ctx.api
        .send(
            Method::POST,
            &format!("/api/admin/payouts/{}/retry", encode(id)),
            None,
        )
        .await?;
    Ok(redirect("/app/admin/payouts?done=decided"))
}

pub async fn request_tax_forms(ctx: Ctx) -> Result {
    let year = ctx.form.value("year").trim().parse::<i64>().map_err(|_| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            "year",
            "year: must be a year, such as 2026",
        )
    })?;
    ctx.api
        .send(
            Method::POST,
            "/api/admin/tax-forms",
            Some(json!({ "year": year })),
        )
        .await?;
    Ok(redirect("/app/admin/payouts?done=forms-requested"))
}

pub async fn privacy(ctx: Ctx) -> Result {
    let requests = ctx
        .api
        .list("/api/admin/privacy/requests", "requests")
        .await?;
    let policies = ctx
        .api
        .list("/api/admin/policy-versions", "policies")
        .await?;
    let body = html! {
        h1 { "Privacy" }
        div class="card" {
            h2 { "Data-subject requests" }
            p class="muted" { "Each is answered within 30 days; open ones first, soonest deadline first." }
            @if requests.is_empty() { p class="muted" { "No requests." } }
            @else {
                div class="table-wrap" { table {
                    thead { tr { th scope="col" { "Kind" } th scope="col" { "Account" } th scope="col" { "Asked" } th scope="col" { "Due" } th scope="col" { "Status" } } }
                    tbody { @for request in &requests {
                        tr {
                            td { (text(request, "kind")) }
                            td { code { (text(request, "account_id")) } }
                            td { (time_element(text(request, "requested_at"), &ctx.zone)) }
                            td { (time_element(text(request, "due_at"), &ctx.zone)) @if request["overdue"] == true { " " (status("overdue")) } }
                            td { (status(text(request, "status"))) }
                        }
                    } }
                } }
            }
        }
        div class="card" {
            h2 { "Policy versions" }
            @if !policies.is_empty() {
                ul { @for policy in &policies {
                    li { strong { (text(policy, "version")) } ", published " (time_element(text(policy, "published_at"), &ctx.zone))
                        ": " (text(policy, "summary")) " — " (policy["notified"].as_u64().unwrap_or(0)) " notified"
                        @if policy["notified_at"].is_null() { " (sending)" } }
                } }
            }
            form method="post" action="/app/admin/policy-versions" novalidate {
                (csrf(&ctx))
                div class="row" {
                    div { (input("Version", "version", "text", "", None, Some("Such as 2026-12."))) }
                    div { (input("What changed", "summary", "text", "", None, None)) }
                }
                div class="actions" { button type="submit" { "Publish and notify every user" } }
            }
        }
    };
    Ok(layout::page(&ctx, "Privacy", body))
}

pub async fn publish_policy(ctx: Ctx) -> Result {
    ctx.api
        .send(
            Method::POST,
            "/api/admin/policy-versions",
            Some(json!({ "version": ctx.form.value("version"), "summary": ctx.form.value("summary") })),
        )
        .await?;
    Ok(redirect("/app/admin/privacy?done=policy-published"))
}

pub async fn audit(ctx: Ctx) -> Result {
    let path = with_cursor(&ctx, "/api/admin/audit".to_string());
    let answer = ctx.api.get(&path).await?;
    let events = answer["events"].as_array().cloned().unwrap_or_default();
    let body = html! {
        h1 { "Audit log" }
        div class="table-wrap" { table {
            thead { tr { th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "What" } th scope="col" { "On" } th scope="col" { "From" } } }
            tbody { @for event in &events {
                tr {
                    td { (time_element(text(event, "at"), &ctx.zone)) }
                    td { code { (event["actor"].as_str().unwrap_or("—")) } }
                    td { (text(event, "action")) }
                    td { code { (event["target"].as_str().unwrap_or("")) } }
                    td class="mono" { (event["client_prefix"].as_str().unwrap_or("")) }
                }
            } }
        } }
        @if let Some(next) = answer["next_cursor"].as_str() {
            nav class="pager" aria-label="Pages" { a href=(format!("/app/admin/audit?cursor={}", encode(next))) { "Older events" } }
        }
    };
    Ok(layout::page(&ctx, "Audit log", body))
}

/// A run's NACHA file, from the API (which audits the download).
pub async fn ach_file(ctx: Ctx) -> Result {
    let run = ctx.path_param("run_id").to_string();
    ctx.api
        .raw(&format!("/api/admin/payout-runs/{}/ach", encode(&run)))
        .await
}
