//! The overview each role lands on: the last 30 days at a glance for advertisers and
//! affiliates (with an affiliate's balance), what waits for an admin.

use maud::{Markup, html};
use serde_json::Value;

use crate::domain::accounts::Role;
use crate::web::format::{count, money, status, time_element};
use crate::web::layout;
use crate::web::pages::reports::{charts, number};
use crate::web::{Ctx, Refusal};

type Result = std::result::Result<crate::http::Response, Refusal>;

/// Days the overview covers.
const DAYS: i64 = 30;

pub async fn home(ctx: Ctx) -> Result {
    let body = match ctx.me().role {
        Role::Admin => admin(&ctx).await?,
        role => party(&ctx, role).await?,
    };
    Ok(layout::page(&ctx, "Overview", body))
}

fn kpi(label: &str, value: String) -> Markup {
    html! { div class="kpi" { div class="label" { (label) } div class="value" { (value) } } }
}

async fn party(ctx: &Ctx, role: Role) -> std::result::Result<Markup, Refusal> {
    let today = ctx
        .app
        .clock
        .now()
        .to_zoned_datetime(ctx.zone.clone())
        .date();
    let from = today
        .checked_sub(jiff::Span::new().days(DAYS - 1))
        .unwrap_or(today);
    let zone: String = url::form_urlencoded::byte_serialize(ctx.zone_name.as_bytes()).collect();
    let report = ctx
        .api
        .get(&format!(
            "/api/reports?group_by=day&from={from}&to={today}&timezone={zone}"
        ))
        .await?;
    let totals = report["totals"].as_array().cloned().unwrap_or_default();
    let balance = if role == Role::Affiliate {
        Some(ctx.api.get("/api/payouts/balance").await?)
    } else {
        None
    };
    let money_key = if role == Role::Affiliate {
        "payout"
    } else {
        "revenue"
    };
    let rows = report["rows"].as_array().cloned().unwrap_or_default();
    let days: Vec<String> = (0..DAYS)
        .filter_map(|i| from.checked_add(jiff::Span::new().days(i)).ok())
        .map(|d| d.to_string())
        .collect();
    // Every day of the period, with zeros where there was no traffic.
    let filled = Value::Object(
        [(
            "rows".to_string(),
            Value::Array(
                days.iter()
                    .map(|day| {
                        rows.iter()
                            .find(|r| r["day"] == day.as_str())
                            .cloned()
                            .unwrap_or_else(
                                || serde_json::json!({ "day": day, "clicks": 0, "conversions": 0 }),
                            )
                    })
                    .collect(),
            ),
        )]
        .into_iter()
        .collect(),
    );
    Ok(html! {
        h1 { "Overview" }
        p class="muted" { "The last " (DAYS) " days, " (from) " to " (today) ", in " (ctx.zone_name) "." }
        @if totals.is_empty() {
            div class="kpis" { (kpi("Clicks", "0".into())) (kpi("Conversions", "0".into())) }
        }
        @for total in &totals {
            @let currency = total["currency"].as_str().unwrap_or("");
            div class="kpis" {
                (kpi("Clicks", count(total["clicks"].as_i64().unwrap_or(0))))
                (kpi("Conversions", count(total["conversions"].as_i64().unwrap_or(0))))
                (kpi("Conversion rate", total["cr"].as_str().map(|c| format!("{c}%")).unwrap_or_else(|| "—".into())))
                (kpi(if role == Role::Affiliate { "Earned" } else { "Spent" },
                    total[money_key].as_str().map(|m| money(m, currency)).unwrap_or_else(|| "—".into())))
                @if role == Role::Affiliate {
                    (kpi("EPC", total["epc"].as_str().map(|m| money(m, currency)).unwrap_or_else(|| "—".into())))
                }
            }
        }
        @if let Some(balance) = &balance {
            div class="card" {
                h2 { "Balance" }
                @for line in balance["balances"].as_array().cloned().unwrap_or_default() {
                    @let currency = line["currency"].as_str().unwrap_or("");
                    div class="kpis" {
                        (kpi("Pending", money(line["pending"].as_str().unwrap_or("0"), currency)))
                        (kpi("On hold", money(line["on_hold"].as_str().unwrap_or("0"), currency)))
                        (kpi("Payable", money(line["payable"].as_str().unwrap_or("0"), currency)))
                    }
                }
                p { a href="/app/payouts" { "Payouts and payout method" } }
            }
        }
        (charts(role, &filled, "day"))
        p { a href="/app/reports" { "Open the reports" } }
        @if rows.iter().all(|r| number(r, "clicks") == 0.0) && role == Role::Affiliate {
            p { "No clicks yet? " a href="/app/offers" { "Apply to offers" } " and " a href="/app/links" { "make links" } "." }
        }
    })
}

async fn admin(ctx: &Ctx) -> std::result::Result<Markup, Refusal> {
    let accounts = ctx
        .api
        .list("/api/admin/accounts?limit=200", "accounts")
        .await?;
    let waiting: Vec<&Value> = accounts
        .iter()
        .filter(|a| a["status"] == "pending_approval")
        .collect();
    let dead = ctx.api.get("/api/admin/postbacks/dead-letters").await?["dead_letters"]
        .as_array()
        .map_or(0, Vec::len);
    let runs = ctx.api.list("/api/admin/payout-runs", "runs").await?;
    let requests = ctx
        .api
        .list("/api/admin/privacy/requests", "requests")
        .await?;
    let open_requests = requests
        .iter()
        .filter(|r| r["status"] != "completed")
        .count();
    Ok(html! {
        h1 { "Overview" }
        div class="kpis" {
            (kpi("Accounts waiting", waiting.len().to_string()))
            (kpi("Dead-letter postbacks", dead.to_string()))
            (kpi("Open privacy requests", open_requests.to_string()))
            (kpi("Payout runs", runs.len().to_string()))
        }
        div class="card" {
            h2 { "Waiting for approval" }
            @if waiting.is_empty() { p class="muted" { "Nobody is waiting." } }
            @else {
                ul { @for account in &waiting {
                    li { (account["name"].as_str().unwrap_or("")) " (" (account["role"].as_str().unwrap_or("")) ", " (account["email"].as_str().unwrap_or("")) ") " }
                } }
                p { a class="button" href="/app/admin/accounts?status=pending_approval" { "Review accounts" } }
            }
        }
        div class="card" {
            h2 { "Latest payout runs" }
            @if runs.is_empty() { p class="muted" { "No run yet." } }
            ul { @for run in runs.iter().take(5) {
                li { code { (run["id"].as_str().unwrap_or("")) } " started " (time_element(run["started_at"].as_str().unwrap_or(""), &ctx.zone)) " "
                    (status(if run["finished_at"].is_null() { "processing" } else { "done" })) }
            } }
            p { a href="/app/admin/payouts" { "All payout runs" } }
        }
    })
}
