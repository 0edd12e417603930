//! Reports: the API's report by any of its dimensions, in the visitor's time zone, as a chart
//! with the exact figures beside it, and as CSV.

use lambda_http::http::{HeaderValue, header};
use maud::{Markup, html};
use serde_json::Value;

use crate::domain::accounts::Role;
use crate::web::chart::{self, Series};
use crate::web::format::{count, money};
use crate::web::layout::{self, input, select};
use crate::web::pages::party::party_or_network;
use crate::web::{Ctx, Refusal, encode};

type Result = std::result::Result<crate::http::Response, Refusal>;

/// The most rows a report page shows when grouped by something other than time.
const MAX_ROWS: usize = 100;

/// The dimensions a role may group by (sub-ids are the affiliate's own).
fn dimensions(role: Role) -> Vec<(String, String)> {
    let mut options = vec![
        ("day", "Day"),
        ("hour", "Hour"),
        ("offer", "Offer"),
        ("country", "Country"),
        ("device", "Device"),
    ];
    if role != Role::Affiliate {
        options.push(("affiliate", "Affiliate"));
    }
    if role == Role::Admin {
        options.push(("advertiser", "Advertiser"));
    }
    if role != Role::Advertiser {
        options.extend([
            ("sub1", "Sub-id 1"),
            ("sub2", "Sub-id 2"),
            ("sub3", "Sub-id 3"),
            ("sub4", "Sub-id 4"),
            ("sub5", "Sub-id 5"),
        ]);
    }
    options
        .into_iter()
        .map(|(v, l)| (v.to_string(), l.to_string()))
        .collect()
}

/// The API query for this page's filters.
fn report_query(ctx: &Ctx, party: &str, group_by: &str) -> String {
    let mut query = format!(
        "group_by={}&timezone={}",
        encode(group_by),
        encode(&ctx.zone_name)
    );
    for name in ["from", "to", "offer_id"] {
        if let Some(value) = ctx.query.get(name) {
            query.push_str(&format!("&{name}={}", encode(value)));
        }
    }
    if !party.is_empty() {
        query.push('&');
        query.push_str(party);
    }
    query
}

/// The report's money column for this role: what the caller earns or pays.
fn money_column(role: Role) -> (&'static str, &'static str) {
    match role {
        Role::Affiliate => ("payout", "Payout"),
        _ => ("revenue", "Revenue"),
    }
}

pub fn number(value: &Value, key: &str) -> f64 {
    match &value[key] {
        Value::Number(n) => n.as_f64().unwrap_or(0.0),
        Value::String(s) => s.parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

/// Charts of a report grouped by `group_by`: lines over time, bars for anything else.
pub fn charts(role: Role, report: &Value, group_by: &str) -> Markup {
    let rows = report["rows"].as_array().cloned().unwrap_or_default();
    let (money_key, money_label) = money_column(role);
    let label = |row: &Value| -> String {
        let key = match group_by {
            "offer" => "offer_id",
            "affiliate" => "affiliate_id",
            "advertiser" => "advertiser_id",
            other => other,
        };
        row[key]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or("(none)")
            .to_string()
    };
    if rows.is_empty() {
        return html! { p class="muted" { "No traffic in this period." } };
    }
    if group_by == "day" || group_by == "hour" {
        let labels: Vec<String> = rows.iter().map(label).collect();
        let clicks: Vec<f64> = rows.iter().map(|r| number(r, "clicks")).collect();
        let conversions: Vec<f64> = rows.iter().map(|r| number(r, "conversions")).collect();
        let earned: Vec<f64> = rows.iter().map(|r| number(r, money_key)).collect();
        let summary = |name: &str, values: &[f64]| {
            format!(
                "{name} by {group_by} from {} to {}: total {}",
                labels.first().cloned().unwrap_or_default(),
                labels.last().cloned().unwrap_or_default(),
                values.iter().sum::<f64>()
            )
        };
        html! {
            (chart::lines("Clicks and conversions", &summary("Clicks and conversions", &clicks), &labels, &[
                Series { name: "Clicks".into(), values: clicks.clone() },
                Series { name: "Conversions".into(), values: conversions.clone() },
            ]))
            (chart::lines(money_label, &summary(money_label, &earned), &labels, &[
                Series { name: money_label.into(), values: earned.clone() },
            ]))
        }
    } else {
        let mut ranked: Vec<&Value> = rows.iter().collect();
        ranked.sort_by(|a, b| number(b, "clicks").total_cmp(&number(a, "clicks")));
        ranked.truncate(12);
        let labels: Vec<String> = ranked.iter().map(|r| label(r)).collect();
        let clicks: Vec<f64> = ranked.iter().map(|r| number(r, "clicks")).collect();
        let summary = format!(
            "Top {} by clicks: {}",
            labels.len(),
            labels
                .iter()
                .zip(&clicks)
                .map(|(l, c)| format!("{l} {c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        html! { (chart::bars(&format!("Clicks by {group_by}"), &summary, &labels, &clicks)) }
    }
}

/// The report's rows and totals, every figure exact as the API answered it.
pub fn table(role: Role, report: &Value, group_by: &str) -> Markup {
    let mut rows = report["rows"].as_array().cloned().unwrap_or_default();
    let groups = rows.len();
    // Time reads in order; anything else (sub-ids may be unique per click) is cut to the
    // groups with the most clicks, so a page stays small. The CSV has every row.
    let by_time = group_by.split(',').all(|d| d == "day" || d == "hour");
    if !by_time {
        rows.sort_by(|a, b| number(b, "clicks").total_cmp(&number(a, "clicks")));
        rows.truncate(MAX_ROWS);
    }
    let totals = report["totals"].as_array().cloned().unwrap_or_default();
    let columns: Vec<&str> = group_by
        .split(',')
        .map(|c| match c {
            "offer" => "offer_id",
            "affiliate" => "affiliate_id",
            "advertiser" => "advertiser_id",
            other => other,
        })
        .collect();
    let show_revenue = role != Role::Affiliate;
    let show_payout = role != Role::Advertiser;
    let money_cell = |row: &Value, key: &str| -> String {
        row[key]
            .as_str()
            .map(|m| money(m, row["currency"].as_str().unwrap_or("")))
            .unwrap_or_else(|| "—".into())
    };
    let cells = |row: &Value| -> Markup {
        html! {
            td class="num" { (count(row["clicks"].as_i64().unwrap_or(0))) }
            td class="num" { (count(row["unique_clicks"].as_i64().unwrap_or(0))) }
            td class="num" { (count(row["invalid_clicks"].as_i64().unwrap_or(0))) }
            td class="num" { (count(row["calls"].as_i64().unwrap_or(0))) }
            td class="num" { (count(row["conversions"].as_i64().unwrap_or(0))) }
            td class="num" { (row["cr"].as_str().map(|c| format!("{c}%")).unwrap_or_else(|| "—".into())) }
            @if show_revenue { td class="num" { (money_cell(row, "revenue")) } }
            @if show_payout { td class="num" { (money_cell(row, "payout")) } }
            @if show_revenue && show_payout { td class="num" { (money_cell(row, "margin")) } }
            td class="num" { (row["epc"].as_str().map(|e| money(e, row["currency"].as_str().unwrap_or(""))).unwrap_or_else(|| "—".into())) }
        }
    };
    html! {
        @if rows.len() < groups {
            p class="muted" { "The " (rows.len()) " groups with the most clicks, of " (count(groups as i64)) "; the CSV has them all." }
        }
        div class="table-wrap" { table {
            thead { tr {
                @for column in &columns { th scope="col" { (column) } }
                th scope="col" class="num" { "Clicks" } th scope="col" class="num" { "Unique" }
                th scope="col" class="num" { "Invalid" } th scope="col" class="num" { "Calls" }
                th scope="col" class="num" { "Conversions" } th scope="col" class="num" { "CR" }
                @if show_revenue { th scope="col" class="num" { "Revenue" } }
                @if show_payout { th scope="col" class="num" { "Payout" } }
                @if show_revenue && show_payout { th scope="col" class="num" { "Margin" } }
                th scope="col" class="num" { "EPC" }
            } }
            tbody { @for row in &rows { tr {
                @for column in &columns { td { (row[*column].as_str().filter(|s| !s.is_empty()).unwrap_or("(none)")) } }
                (cells(row))
            } } }
            tfoot { @for total in &totals { tr {
                td colspan=(columns.len()) { "Total (" (total["currency"].as_str().unwrap_or("")) ")" }
                (cells(total))
            } } }
        } }
    }
}

pub async fn report(ctx: Ctx) -> Result {
    let role = ctx.me().role;
    let party = party_or_network(&ctx, "/app/reports").await?;
    let group_by = ctx.query.get("group_by").unwrap_or("day").to_string();
    let query = report_query(&ctx, &party.query, &group_by);
    let outcome = ctx.api.get(&format!("/api/reports?{query}")).await;
    let refusal = outcome.as_ref().err();
    let body = html! {
        h1 { "Reports" }
        @if let Some(picker) = &party.picker { (picker) }
        form class="filters card" method="get" action="/app/reports" {
            @for name in ["advertiser_id", "affiliate_id", "offer_id"] {
                @if let Some(value) = ctx.query.get(name) { input type="hidden" name=(name) value=(value); }
            }
            div { (select("Group by", "group_by", &dimensions(role), &group_by, refusal)) }
            div { (input("From", "from", "date", ctx.query.value("from"), refusal, None)) }
            div { (input("To", "to", "date", ctx.query.value("to"), refusal, None)) }
            div { button type="submit" class="secondary" { "Show" } }
        }
        p class="muted" {
            "Days are in your time zone, " (ctx.zone_name) ". Without dates: the last 7 days."
            @if party.picker.is_some() && party.query.is_empty() { " Without an advertiser or affiliate: the whole network." }
        }
        @match &outcome {
            Err(refusal) => div class="notice error" role="alert" { p { (refusal.message) } },
            Ok(report) => {
                (charts(role, report, &group_by))
                p { a class="button secondary" href=(format!("/app/reports.csv?{query}")) download { "Download CSV" } }
                (table(role, report, &group_by))
            }
        }
    };
    let status = refusal.map_or(lambda_http::http::StatusCode::OK, |r| r.status);
    Ok(layout::page_with_status(&ctx, status, "Reports", body))
}

/// The same report as CSV, straight from the API.
pub async fn csv(ctx: Ctx) -> Result {
    let query = ctx.request.uri().query().unwrap_or("");
    let mut response = ctx
        .api
        .raw(&format!("/api/reports?{query}&format=csv"))
        .await?;
    response.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"leadsrefer-report.csv\""),
    );
    Ok(response)
}
