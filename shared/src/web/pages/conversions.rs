//! Conversions: each party's own, filterable by status and offer, with decisions one at a time
//! or in bulk for advertisers and admins.

use lambda_http::http::{Method, StatusCode};
use maud::html;
use serde_json::{Value, json};

use crate::domain::accounts::Role;
use crate::web::format::{money, status, time_element};
use crate::web::layout::{self, csrf, select};
use crate::web::pages::party::party_or_picker;
use crate::web::{Ctx, Refusal, encode, redirect};

type Result = std::result::Result<crate::http::Response, Refusal>;

/// Rows a page shows at least (whole API pages are read until it has them).
const PAGE_ROWS: usize = 50;
/// API pages one view reads at most while filtering.
const MAX_API_PAGES: usize = 5;

pub async fn list(ctx: Ctx) -> Result {
    let role = ctx.me().role;
    let party = match party_or_picker(&ctx, "Conversions", "/app/conversions").await? {
        Ok(party) => party,
        Err(picker) => return Ok(picker),
    };
    let wanted_status = ctx.query.get("status").unwrap_or("");
    let wanted_offer = ctx.query.get("offer_id").unwrap_or("");
    let mut cursor = ctx.query.get("cursor").map(str::to_string);
    let mut rows = Vec::new();
    let mut next = None;
    for _ in 0..MAX_API_PAGES {
        let mut path = format!("/api/conversions?limit=100&{}", party.query);
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={}", encode(cursor)));
        }
        let page = ctx.api.get(&path).await?;
        rows.extend(
            page["conversions"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|c| wanted_status.is_empty() || c["status"] == wanted_status)
                .filter(|c| wanted_offer.is_empty() || c["offer_id"] == wanted_offer),
        );
        next = page["next_cursor"].as_str().map(str::to_string);
        if rows.len() >= PAGE_ROWS || next.is_none() {
            break;
        }
        cursor = next.clone();
    }
    let offers = ctx.api.list("/api/offers", "offers").await?;
    let offer_name = |id: &str| crate::web::offer_name(&offers, id);
    let deciding = role != Role::Affiliate;
    let here = ctx
        .request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/app/conversions".into());
    let keep = |extra: &str| -> String {
        let mut query: Vec<String> = ctx
            .query
            .pairs()
            .iter()
            .filter(|(n, _)| n != "cursor" && n != "done")
            .map(|(n, v)| format!("{}={}", encode(n), encode(v)))
            .collect();
        if !extra.is_empty() {
            query.push(extra.to_string());
        }
        format!("/app/conversions?{}", query.join("&"))
    };
    let mut offer_options = vec![(String::new(), "Any".to_string())];
    offer_options.extend(offers.iter().map(|o| {
        (
            o["id"].as_str().unwrap_or("").to_string(),
            o["name"].as_str().unwrap_or("").to_string(),
        )
    }));
    let body = html! {
        h1 { "Conversions" }
        @if let Some(picker) = &party.picker { (picker) }
        form class="filters card" method="get" action="/app/conversions" {
            @for name in ["advertiser_id", "affiliate_id"] {
                @if let Some(value) = ctx.query.get(name) { input type="hidden" name=(name) value=(value); }
            }
            div { (select("Status", "status", &[(String::new(), "Any".into()), ("pending".into(), "Pending".into()),
                ("approved".into(), "Approved".into()), ("rejected".into(), "Rejected".into()), ("reversed".into(), "Reversed".into())],
                wanted_status, None)) }
            div { (select("Offer", "offer_id", &offer_options, wanted_offer, None)) }
            div { button type="submit" class="secondary" { "Filter" } }
        }
        @if rows.is_empty() { p class="muted" { "No conversions match." } }
        @else {
            form method="post" action="/app/conversions/decide" id="bulk" {
                (csrf(&ctx))
                input type="hidden" name="return" value=(here);
                div class="table-wrap" { table {
                    thead { tr {
                        @if deciding { th scope="col" { input type="checkbox" aria-label="Select all" data-select-all="ids"; } }
                        th scope="col" { "When" } th scope="col" { "Offer" } th scope="col" { "Event" }
                        th scope="col" { "Order" } th scope="col" class="num" { "Sale" }
                        @if role != Role::Affiliate { th scope="col" class="num" { "Revenue" } }
                        @if role != Role::Advertiser { th scope="col" class="num" { "Payout" } }
                        th scope="col" { "Status" }
                        @if deciding { th scope="col" { "Decide" } }
                    } }
                    tbody { @for conversion in &rows {
                        @let id = conversion["id"].as_str().unwrap_or("");
                        @let currency = conversion["currency"].as_str().unwrap_or("");
                        @let state = conversion["status"].as_str().unwrap_or("");
                        tr {
                            @if deciding { td { input type="checkbox" name="ids" value=(id) aria-label=(format!("Select conversion {id}")); } }
                            td { (time_element(conversion["created_at"].as_str().unwrap_or(""), &ctx.zone)) }
                            td { (offer_name(conversion["offer_id"].as_str().unwrap_or(""))) }
                            td { (conversion["event"].as_str().unwrap_or("")) }
                            td class="mono" { (conversion["txn_id"].as_str().unwrap_or("—")) }
                            td class="num" { (conversion["sale"].as_str().map_or("—".to_string(), |s| money(s, currency))) }
                            @if role != Role::Affiliate { td class="num" { (conversion["revenue"].as_str().map_or("—".to_string(), |s| money(s, currency))) } }
                            @if role != Role::Advertiser { td class="num" { (conversion["payout"].as_str().map_or("—".to_string(), |s| money(s, currency))) } }
                            td { (status(state)) @if let Some(reason) = conversion["reason"].as_str() { br; span class="muted" { (reason) } } }
                            @if deciding {
                                td {
                                    @if state == "pending" {
                                        button type="submit" name="one" value=(format!("{id}:approved")) class="small" { "Approve" } " "
                                        button type="submit" name="one" value=(format!("{id}:rejected")) class="small secondary" { "Reject" }
                                    } @else if state == "approved" {
                                        button type="submit" name="one" value=(format!("{id}:reversed")) class="small secondary" { "Reverse" }
                                    }
                                }
                            }
                        }
                    } }
                } }
                @if deciding {
                    div class="card" {
                        h2 { "Decide the selected" }
                        div class="filters" {
                            div { (select("Decision", "status", &[("approved".into(), "Approve".into()), ("rejected".into(), "Reject".into()), ("reversed".into(), "Reverse".into())], "approved", None)) }
                            div { label for="f-reason" { "Reason (shown to the affiliate)" } input id="f-reason" type="text" name="reason" maxlength="500"; }
                            div { button type="submit" name="bulk" value="1" { "Apply to selected" } }
                        }
                    }
                }
            }
        }
        @if let Some(next) = next {
            nav class="pager" aria-label="Pages" { a href=(keep(&format!("cursor={}", encode(&next)))) { "Older conversions" } }
        }
    };
    Ok(layout::page(&ctx, "Conversions", body))
}

pub async fn decide(ctx: Ctx) -> Result {
    let (ids, status): (Vec<String>, String) = match ctx.form.get("one") {
        Some(one) => {
            let (id, status) = one.split_once(':').unwrap_or((one, ""));
            (vec![id.to_string()], status.to_string())
        }
        None => (
            ctx.form.all("ids").iter().map(|s| s.to_string()).collect(),
            ctx.form.value("status").to_string(),
        ),
    };
    if ids.is_empty() {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "ids",
            "Select at least one conversion.",
        ));
    }
    let answer = ctx
        .api
        .send(
            Method::POST,
            "/api/conversions/status",
            Some(json!({ "ids": ids, "status": status, "reason": ctx.form.get("reason") })),
        )
        .await?;
    let failures: Vec<&Value> = answer["results"]
        .as_array()
        .map(|r| r.iter().filter(|o| o.get("error").is_some()).collect())
        .unwrap_or_default();
    let back = ctx
        .form
        .get("return")
        .filter(|r| r.starts_with("/app/conversions"))
        .unwrap_or("/app/conversions")
        .to_string();
    if failures.is_empty() {
        let separator = if back.contains('?') { '&' } else { '?' };
        return Ok(redirect(&format!("{back}{separator}done=decided")));
    }
    let body = html! {
        h1 { "Some decisions did not apply" }
        div class="notice error" role="alert" {
            ul { @for failure in &failures {
                li { code { (failure["id"].as_str().unwrap_or("")) } ": " (failure["error"].as_str().unwrap_or("")) }
            } }
        }
        p { a href=(back) { "Back to the conversions" } }
    };
    Ok(layout::page_with_status(
        &ctx,
        StatusCode::CONFLICT,
        "Decisions",
        body,
    ))
}
