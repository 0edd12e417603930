//! An affiliate's tracking links: each with its sub-ids, ready to copy.

use lambda_http::http::{Method, StatusCode};
use maud::html;
use serde_json::{Map, Value, json};

use crate::web::format::time_element;
use crate::web::layout::{self, copyable, csrf, form_error, input, select};
use crate::web::{Ctx, Refusal, redirect};

type Result = std::result::Result<crate::http::Response, Refusal>;

pub async fn links(ctx: Ctx) -> Result {
    let mut refusal = None;
    if ctx.is_post() {
        let mut input = Map::new();
        input.insert("offer_id".into(), json!(ctx.form.value("offer_id")));
        for sub in ["sub1", "sub2", "sub3", "sub4", "sub5"] {
            if let Some(value) = ctx.form.get(sub) {
                input.insert(sub.into(), json!(value));
            }
        }
        match ctx
            .api
            .send(Method::POST, "/api/links", Some(Value::Object(input)))
            .await
        {
            Ok(_) => return Ok(redirect("/app/links?done=link-made")),
            Err(error) => refusal = Some(error),
        }
    }
    let links = ctx.api.list("/api/links", "links").await?;
    let offers = ctx.api.list("/api/offers", "offers").await?;
    let name_of = |id: &str| crate::web::offer_name(&offers, id);
    let approved: Vec<(String, String)> = offers
        .iter()
        .filter(|o| o["application"] == "approved" && o["status"] == "active")
        .map(|o| {
            (
                o["id"].as_str().unwrap_or("").to_string(),
                o["name"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let chosen = ctx
        .form
        .get("offer_id")
        .or(ctx.query.get("offer_id"))
        .unwrap_or("");
    let status = refusal.as_ref().map_or(StatusCode::OK, |r| r.status);
    let body = html! {
        h1 { "Links" }
        div class="card" {
            h2 { "Make a link" }
            @if approved.is_empty() {
                p { "You can make links for offers you are approved for. " a href="/app/offers" { "Browse the offers" } "." }
            } @else {
                (form_error(refusal.as_ref()))
                form method="post" action="/app/links" novalidate {
                    (csrf(&ctx))
                    (select("Offer", "offer_id", &approved, chosen, refusal.as_ref()))
                    div class="row" {
                        @for sub in ["sub1", "sub2", "sub3", "sub4", "sub5"] {
                            div { (input(sub, sub, "text", ctx.form.value(sub), refusal.as_ref(), None)) }
                        }
                    }
                    p class="hint" { "Sub-ids are yours: a click may give its own (" code { "?sub1=…" } "); these are the defaults." }
                    div class="actions" { button type="submit" { "Make the link" } }
                }
            }
        }
        h2 { "Your links" }
        @if links.is_empty() { p class="muted" { "No links yet." } }
        @for link in &links {
            @let code = link["code"].as_str().unwrap_or("");
            @let subs: Vec<String> = link["subs"].as_array().map(|subs| subs.iter().enumerate()
                .filter_map(|(i, s)| s.as_str().map(|s| format!("sub{}={s}", i + 1))).collect()).unwrap_or_default();
            div class="card" {
                p { strong { (name_of(link["offer_id"].as_str().unwrap_or(""))) }
                    " · made " (time_element(link["created_at"].as_str().unwrap_or(""), &ctx.zone))
                    @if !subs.is_empty() { " · " span class="mono" { (subs.join(" ")) } } }
                (copyable(&format!("link-{code}"), link["url"].as_str().unwrap_or("")))
            }
        }
    };
    Ok(layout::page_with_status(&ctx, status, "Links", body))
}
