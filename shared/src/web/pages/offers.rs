//! Offers: an advertiser's own (publish, edit, pause; integration help; applications), the
//! catalogue an affiliate applies from, every offer for an admin.

use lambda_http::http::{Method, StatusCode};
use maud::{Markup, html};
use serde_json::{Map, Value, json};

use crate::domain::accounts::Role;
use crate::web::format::{commission, money, status, time_element};
use crate::web::layout::{self, button_form, copyable, csrf, form_error, input, select};
use crate::web::{Ctx, Refusal, encode, redirect};

type Result = std::result::Result<crate::http::Response, Refusal>;

pub async fn list(ctx: Ctx) -> Result {
    let answer = ctx.api.get("/api/offers").await?;
    let offers = answer["offers"].as_array().cloned().unwrap_or_default();
    let role = ctx.me().role;
    let filter = ctx.query.get("status").unwrap_or("");
    let shown: Vec<&Value> = offers
        .iter()
        .filter(|o| filter.is_empty() || o["status"] == filter)
        .collect();
    let body = html! {
        h1 { @if role == Role::Affiliate { "Offer catalogue" } @else { "Offers" } }
        @if role != Role::Affiliate {
            p { a class="button" href="/app/offers/new" { "Publish an offer" } }
        }
        form class="filters card" method="get" action="/app/offers" {
            div { (select("Status", "status", &[
                (String::new(), "Any".into()), ("active".into(), "Active".into()),
                ("paused".into(), "Paused".into()), ("archived".into(), "Archived".into())], filter, None)) }
            div { button type="submit" class="secondary" { "Filter" } }
        }
        @if shown.is_empty() {
            p class="muted" { "No offers yet." }
        } @else {
            div class="table-wrap" {
                table {
                    thead { tr {
                        th scope="col" { "Offer" }
                        @if role != Role::Affiliate { th scope="col" class="num" { "Revenue" } }
                        th scope="col" class="num" { "Payout" }
                        th scope="col" { "Status" }
                        @if role == Role::Affiliate { th scope="col" { "Your application" } }
                    } }
                    tbody {
                        @for offer in &shown {
                            @let currency = offer["currency"].as_str().unwrap_or("");
                            tr {
                                td { a href=(format!("/app/offers/{}", offer["id"].as_str().unwrap_or(""))) { (offer["name"].as_str().unwrap_or("")) } }
                                @if role != Role::Affiliate { td class="num" { (commission(&offer["revenue"], currency)) } }
                                td class="num" { (commission(&offer["payout"], currency)) }
                                td { (status(offer["status"].as_str().unwrap_or(""))) }
                                @if role == Role::Affiliate {
                                    td {
                                        @match offer["application"].as_str() {
                                            Some(application) => (status(application)),
                                            None => (button_form(&ctx, &format!("/app/offers/{}/apply", offer["id"].as_str().unwrap_or("")), &[], "Apply", "small")),
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page(&ctx, "Offers", body))
}

pub async fn apply(ctx: Ctx) -> Result {
    let id = ctx.path_param("offer_id");
    ctx.api
        .send(
            Method::POST,
            &format!("/api/offers/{}/applications", encode(id)),
            None,
        )
        .await?;
    Ok(redirect(&format!(
        "/app/offers/{}?done=applied",
        encode(id)
    )))
}

pub async fn show(ctx: Ctx) -> Result {
    let id = ctx.path_param("offer_id").to_string();
    let offer = ctx.api.get(&format!("/api/offers/{}", encode(&id))).await?;
    let body = if ctx.me().role == Role::Affiliate {
        affiliate_view(&ctx, &offer).await?
    } else {
        let applications = ctx
            .api
            .get(&format!("/api/offers/{}/applications", encode(&id)))
            .await?;
        advertiser_view(&ctx, &offer, &applications)
    };
    Ok(layout::page(
        &ctx,
        offer["name"].as_str().unwrap_or("Offer"),
        body,
    ))
}

fn facts(offer: &Value, show_revenue: bool) -> Markup {
    let currency = offer["currency"].as_str().unwrap_or("");
    let caps = &offer["caps"];
    let list = |key: &str| {
        let items: Vec<String> = offer[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if items.is_empty() {
            "all".to_string()
        } else {
            items.join(", ")
        }
    };
    html! {
        dl class="facts" {
            dt { "Status" } dd { (status(offer["status"].as_str().unwrap_or(""))) }
            dt { "Destination" } dd { code { (offer["destination"].as_str().unwrap_or("")) } }
            @if show_revenue { dt { "Revenue" } dd { (commission(&offer["revenue"], currency)) } }
            dt { "Payout" } dd { (commission(&offer["payout"], currency)) }
            dt { "Currency" } dd { (currency) }
            dt { "Attribution window" } dd { (offer["attribution_window_days"].as_i64().unwrap_or(0)) " days" }
            dt { "Countries" } dd { (list("allowed_countries")) }
            dt { "Devices" } dd { (list("allowed_devices")) }
            dt { "Caps" } dd {
                "daily " (caps["daily"].as_u64().map_or("none".to_string(), |c| c.to_string()))
                ", monthly " (caps["monthly"].as_u64().map_or("none".to_string(), |c| c.to_string()))
                ", budget " (caps["budget"].as_str().map_or("none".to_string(), |b| money(b, currency)))
            }
            @if let Some(hold) = offer["hold_days"].as_u64() { dt { "Hold" } dd { (hold) " days" } }
            @if let Some(approval) = offer["approval"].as_str() {
                dt { "Approval" } dd { (approval) @if let Some(days) = offer["review_days"].as_u64() { " (review " (days) " days)" } }
            }
            @if let Some(events) = offer["events"].as_object().filter(|e| !e.is_empty()) {
                dt { "Other events" }
                dd { @for (name, event) in events {
                    div { code { (name) } ": " (commission(&event["revenue"], currency)) " / " (commission(&event["payout"], currency)) }
                } }
            }
            @if let Some(events) = offer["event_payouts"].as_object().filter(|e| !e.is_empty()) {
                dt { "Other events" }
                dd { @for (name, payout) in events { div { code { (name) } ": " (commission(payout, currency)) } } }
            }
            @if let Some(fallback) = offer["fallback_url"].as_str() { dt { "Fallback" } dd { code { (fallback) } } }
        }
    }
}

fn advertiser_view(ctx: &Ctx, offer: &Value, applications: &Value) -> Markup {
    let id = offer["id"].as_str().unwrap_or("");
    let currency = offer["currency"].as_str().unwrap_or("USD");
    let base = ctx.app.public_url.to_string();
    let secret = offer["postback_secret"].as_str().unwrap_or("");
    let postback = format!(
        "{base}/postback?click_id={{click_id}}&txn_id={{order_id}}&amount={{sale_amount}}&currency={currency}&token={secret}"
    );
    let pixel = format!(
        "<img src=\"{base}/px/{id}?txn_id=ORDER_ID&amount=SALE_AMOUNT&currency={currency}\" width=\"1\" height=\"1\" alt=\"\">"
    );
    let signed = format!(
        "QUERY='click_id=CLICK_ID&txn_id=ORDER_ID&amount=49.99&currency={currency}'\nT=$(date +%s)\nSIG=$(printf '%s.%s' \"$T\" \"$QUERY\" | openssl dgst -sha256 -hmac '{secret}' -hex | sed 's/.* //')\ncurl \"{base}/postback?$QUERY\" -H \"LeadsRefer-Signature: t=$T,v1=$SIG\""
    );
    let status_now = offer["status"].as_str().unwrap_or("");
    let apps = applications["applications"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    html! {
        h1 { (offer["name"].as_str().unwrap_or("")) }
        div class="actions" {
            a class="button secondary" href=(format!("/app/offers/{id}/edit")) { "Edit" }
            @if status_now == "active" {
                (button_form(ctx, &format!("/app/offers/{id}/status"), &[("status", "paused")], "Pause", "secondary"))
            } @else if status_now == "paused" {
                (button_form(ctx, &format!("/app/offers/{id}/status"), &[("status", "active")], "Activate", "secondary"))
            }
            @if status_now != "archived" {
                form class="inline" method="post" action=(format!("/app/offers/{id}/status")) data-confirm="Archive this offer? Its links stop working." {
                    (csrf(ctx)) input type="hidden" name="status" value="archived";
                    button type="submit" class="danger" { "Archive" }
                }
            }
            a class="button secondary" href=(format!("/app/conversions?offer_id={id}")) { "Conversions" }
            a class="button secondary" href=(format!("/app/reports?offer_id={id}")) { "Report" }
        }
        div class="card" { h2 { "Terms" } (facts(offer, true)) }
        div class="card" {
            h2 { "Integration" }
            p { "Call this URL from your server when an order completes, with the click id your landing page received as " code { "{click_id}" } ". Repeats of one " code { "txn_id" } " count once." }
            (copyable("postback-url", &postback))
            h2 { "Signed postbacks" }
            p { "Instead of the token, sign the query string (or POST body) with the secret: HMAC-SHA256 over " code { "t.payload" } ", sent as " code { "LeadsRefer-Signature: t=…,v1=…" } "; signatures older than 5 minutes are refused." }
            pre id="signed-recipe" { (signed) }
            h2 { "Conversion pixel" }
            p { "If you cannot call from your server, put this on the thank-you page; it attributes through the visitor's cookie." }
            (copyable("pixel-snippet", &pixel))
            h2 { "Test it" }
            p { "Send a test conversion: a test click on an approved affiliate's link, then this postback with the offer's token. Both are kept, marked test, and counted nowhere (no money, reports or caps). A postback your own server sends for a test click is a test too." }
            div class="actions" {
                form class="inline" method="post" action=(format!("/app/offers/{id}/test-conversion")) {
                    (csrf(ctx)) button type="submit" class="secondary" { "Send a test conversion" }
                }
                form class="inline" method="post" action=(format!("/app/offers/{id}/secret")) data-confirm="Replace the postback secret? Postbacks with the old one are refused from now on." {
                    (csrf(ctx)) button type="submit" class="secondary" { "Replace the secret" }
                }
            }
        }
        div class="card" {
            h2 { "Applications" }
            @if apps.is_empty() { p class="muted" { "No affiliate has applied yet." } }
            @else {
                div class="table-wrap" { table {
                    thead { tr { th scope="col" { "Affiliate" } th scope="col" { "Status" } th scope="col" { "Applied" } th scope="col" { "Decide" } } }
                    tbody { @for application in &apps {
                        @let affiliate = application["affiliate_id"].as_str().unwrap_or("");
                        tr {
                            td { code { (affiliate) } }
                            td { (status(application["status"].as_str().unwrap_or(""))) }
                            td { (time_element(application["created_at"].as_str().unwrap_or(""), &ctx.zone)) }
                            td {
                                @if application["status"] != "approved" {
                                    (button_form(ctx, &format!("/app/offers/{id}/applications/{affiliate}"), &[("status", "approved")], "Approve", "small"))
                                    " "
                                }
                                @if application["status"] != "rejected" {
                                    (button_form(ctx, &format!("/app/offers/{id}/applications/{affiliate}"), &[("status", "rejected")], "Reject", "small secondary"))
                                }
                            }
                        }
                    } }
                } }
            }
        }
    }
}

async fn affiliate_view(ctx: &Ctx, offer: &Value) -> std::result::Result<Markup, Refusal> {
    let id = offer["id"].as_str().unwrap_or("");
    let application = offer["application"].as_str();
    let links = if application == Some("approved") {
        ctx.api
            .list("/api/links", "links")
            .await?
            .into_iter()
            .filter(|l| l["offer_id"] == id)
            .collect()
    } else {
        Vec::new()
    };
    Ok(html! {
        h1 { (offer["name"].as_str().unwrap_or("")) }
        div class="card" { h2 { "Terms" } (facts(offer, false)) }
        @match application {
            None => div class="card" {
                p { "Apply to promote this offer; the advertiser decides." }
                (button_form(ctx, &format!("/app/offers/{id}/apply"), &[], "Apply", ""))
            },
            Some("approved") => {
                div class="card" {
                    h2 { "Your links" }
                    @for link in &links {
                        @let code = link["code"].as_str().unwrap_or("");
                        (copyable(&format!("link-{code}"), link["url"].as_str().unwrap_or("")))
                    }
                    p { a class="button" href=(format!("/app/links?offer_id={id}")) { "Make a link" } }
                }
                div class="card" {
                    h2 { "Your postback URL" }
                    p { "We call it when a conversion of yours on this offer is recorded or changes status. Macros: "
                        code { "{click_id} {conversion_id} {status} {payout} {currency} {sub1}…{sub5}" } "." }
                    form method="post" action=(format!("/app/offers/{id}/postback-url")) {
                        (csrf(ctx))
                        (input("Postback URL", "url", "url", offer["postback_url"].as_str().unwrap_or(""), None, Some("http(s); leave empty to remove it.")))
                        div class="actions" { button type="submit" { "Save" } }
                    }
                }
            },
            Some(other) => div class="card" { p { "Your application: " (status(other)) } },
        }
    })
}

pub async fn set_postback_url(ctx: Ctx) -> Result {
    let id = ctx.path_param("offer_id");
    let url = ctx.form.get("url");
    ctx.api
        .send(
            Method::PUT,
            &format!("/api/offers/{}/postback-url", encode(id)),
            Some(json!({ "url": url })),
        )
        .await?;
    Ok(redirect(&format!(
        "/app/offers/{}?done=postback-saved",
        encode(id)
    )))
}

pub async fn set_status(ctx: Ctx) -> Result {
    let id = ctx.path_param("offer_id");
    ctx.api
        .send(
            Method::PATCH,
            &format!("/api/offers/{}", encode(id)),
            Some(json!({ "status": ctx.form.value("status") })),
        )
        .await?;
    Ok(redirect(&format!(
        "/app/offers/{}?done=offer-saved",
        encode(id)
    )))
}

pub async fn rotate_secret(ctx: Ctx) -> Result {
    let id = ctx.path_param("offer_id");
    ctx.api
        .send(
            Method::POST,
            &format!("/api/offers/{}/postback-secret", encode(id)),
            None,
        )
        .await?;
    Ok(redirect(&format!(
        "/app/offers/{}?done=offer-saved",
        encode(id)
    )))
}

pub async fn test_conversion(ctx: Ctx) -> Result {
    let id = ctx.path_param("offer_id");
    ctx.api
        .send(
            Method::POST,
            &format!("/api/offers/{}/test-conversions", encode(id)),
            Some(json!({})),
        )
        .await?;
    Ok(redirect(&format!(
        "/app/conversions?offer_id={}&done=test-sent",
        encode(id)
    )))
}

pub async fn decide_application(ctx: Ctx) -> Result {
    let id = ctx.path_param("offer_id");
    let affiliate = ctx.path_param("affiliate_id");
    ctx.api
        .send(
            Method::PUT,
            &format!(
                "/api/offers/{}/applications/{}",
                encode(id),
                encode(affiliate)
            ),
            Some(json!({ "status": ctx.form.value("status") })),
        )
        .await?;
    Ok(redirect(&format!(
        "/app/offers/{}?done=decided",
        encode(id)
    )))
}

/// `12.00` → a fixed amount; `15%` or `12.5%` → a share in basis points.
fn commission_input(field: &str, text: &str) -> std::result::Result<Value, Refusal> {
    let text = text.trim();
    if let Some(percent) = text.strip_suffix('%') {
        let percent = percent.trim();
        let (whole, fraction) = percent.split_once('.').unwrap_or((percent, ""));
        let valid = !whole.is_empty()
            && whole.bytes().all(|b| b.is_ascii_digit())
            && fraction.len() <= 2
            && fraction.bytes().all(|b| b.is_ascii_digit());
        let bps = valid
            .then(|| format!("{whole}{fraction:0<2}").parse::<u32>().ok())
            .flatten();
        return match bps {
            Some(bps) => Ok(json!({ "share_bps": bps })),
            None => Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                field,
                format!("{field}: write a percentage such as 15% or 12.5%"),
            )),
        };
    }
    if text.is_empty() {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            field,
            format!("{field}: is required (an amount such as 12.00, or a share such as 15%)"),
        ));
    }
    Ok(json!({ "fixed": text }))
}

fn commission_text(value: &Value) -> String {
    if let Some(fixed) = value["fixed"].as_str() {
        return fixed.to_string();
    }
    if let Some(bps) = value["share_bps"].as_u64() {
        return if bps % 100 == 0 {
            format!("{}%", bps / 100)
        } else {
            format!("{}.{:02}%", bps / 100, bps % 100)
        };
    }
    String::new()
}

/// The form's fields as the API's offer input; the API validates every value.
fn offer_input(ctx: &Ctx, creating: bool) -> std::result::Result<Value, Refusal> {
    let form = &ctx.form;
    let mut input = Map::new();
    let number = |name: &str| -> std::result::Result<Option<u64>, Refusal> {
        match form.get(name) {
            None => Ok(None),
            Some(text) => text.parse::<u64>().map(Some).map_err(|_| {
                Refusal::new(
                    StatusCode::BAD_REQUEST,
                    name,
                    format!("{name}: must be a whole number"),
                )
            }),
        }
    };
    input.insert("name".into(), json!(form.value("name")));
    input.insert("destination".into(), json!(form.value("destination")));
    if creating {
        input.insert(
            "currency".into(),
            json!(form.value("currency").trim().to_ascii_uppercase()),
        );
        if ctx.me().role == Role::Admin {
            input.insert("advertiser_id".into(), json!(form.get("advertiser_id")));
        }
    }
    input.insert(
        "revenue".into(),
        commission_input("revenue", form.value("revenue"))?,
    );
    input.insert(
        "payout".into(),
        commission_input("payout", form.value("payout"))?,
    );
    input.insert(
        "caps".into(),
        json!({ "daily": number("caps.daily")?, "monthly": number("caps.monthly")?, "budget": form.get("caps.budget") }),
    );
    let countries: Vec<String> = form
        .value("allowed_countries")
        .split([',', ' '])
        .map(|c| c.trim().to_ascii_uppercase())
        .filter(|c| !c.is_empty())
        .collect();
    input.insert("allowed_countries".into(), json!(countries));
    input.insert("allowed_devices".into(), json!(form.all("allowed_devices")));
    for name in [
        "attribution_window_days",
        "hold_days",
        "review_days",
        "unique_window_hours",
        "min_conversion_seconds",
    ] {
        if let Some(value) = number(name)? {
            input.insert(name.into(), json!(value));
        }
    }
    input.insert(
        "approval".into(),
        json!(form.get("approval").unwrap_or("auto")),
    );
    match form.get("fallback_url") {
        Some(url) => input.insert("fallback_url".into(), json!(url)),
        None if !creating => input.insert("fallback_url".into(), json!("")),
        None => None,
    };
    let mut events = Map::new();
    for (index, line) in form.value("events").lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let parsed = line.split_once('=').and_then(|(name, rest)| {
            let (revenue, payout) = rest.split_once('/')?;
            Some((name.trim(), revenue.trim(), payout.trim()))
        });
        let Some((name, revenue, payout)) = parsed else {
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "events",
                format!(
                    "events: line {} must read `name = revenue / payout`, such as `lead = 2.00 / 1.50`",
                    index + 1
                ),
            ));
        };
        events.insert(
            name.to_string(),
            json!({ "revenue": commission_input("events", revenue)?, "payout": commission_input("events", payout)? }),
        );
    }
    input.insert("events".into(), Value::Object(events));
    Ok(Value::Object(input))
}

pub async fn new_offer(ctx: Ctx) -> Result {
    let mut refusal = None;
    if ctx.is_post() {
        let outcome = match offer_input(&ctx, true) {
            Ok(input) => ctx.api.send(Method::POST, "/api/offers", Some(input)).await,
            Err(refusal) => Err(refusal),
        };
        match outcome {
            Ok(offer) => {
                let id = offer["id"].as_str().unwrap_or("");
                return Ok(redirect(&format!(
                    "/app/offers/{}?done=offer-saved",
                    encode(id)
                )));
            }
            Err(error) => refusal = Some(error),
        }
    }
    let body = offer_form(&ctx, None, refusal.as_ref());
    let status = refusal.as_ref().map_or(StatusCode::OK, |r| r.status);
    Ok(layout::page_with_status(
        &ctx,
        status,
        "Publish an offer",
        body,
    ))
}

pub async fn edit_offer(ctx: Ctx) -> Result {
    let id = ctx.path_param("offer_id").to_string();
    let offer = ctx.api.get(&format!("/api/offers/{}", encode(&id))).await?;
    if offer.get("postback_secret").is_none() {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            "offer_id",
            "There is no such offer.",
        ));
    }
    let mut refusal = None;
    if ctx.is_post() {
        let outcome = match offer_input(&ctx, false) {
            Ok(input) => {
                ctx.api
                    .send(
                        Method::PATCH,
                        &format!("/api/offers/{}", encode(&id)),
                        Some(input),
                    )
                    .await
            }
            Err(refusal) => Err(refusal),
        };
        match outcome {
            Ok(_) => {
                return Ok(redirect(&format!(
                    "/app/offers/{}?done=offer-saved",
                    encode(&id)
                )));
            }
            Err(error) => refusal = Some(error),
        }
    }
    let body = offer_form(&ctx, Some(&offer), refusal.as_ref());
    let status = refusal.as_ref().map_or(StatusCode::OK, |r| r.status);
    Ok(layout::page_with_status(
        &ctx,
        status,
        "Edit the offer",
        body,
    ))
}

/// The offer form: what was typed when it comes back with an error, else the offer's values.
fn offer_form(ctx: &Ctx, offer: Option<&Value>, refusal: Option<&Refusal>) -> Markup {
    let posted = ctx.is_post();
    let value = |name: &str| -> String {
        if posted {
            return ctx.form.value(name).to_string();
        }
        let Some(offer) = offer else {
            return match name {
                "currency" => "USD".into(),
                "attribution_window_days" => "30".into(),
                "unique_window_hours" => "24".into(),
                _ => String::new(),
            };
        };
        match name {
            "revenue" | "payout" => commission_text(&offer[name]),
            "caps.daily" => offer["caps"]["daily"]
                .as_u64()
                .map(|v| v.to_string())
                .unwrap_or_default(),
            "caps.monthly" => offer["caps"]["monthly"]
                .as_u64()
                .map(|v| v.to_string())
                .unwrap_or_default(),
            "caps.budget" => offer["caps"]["budget"].as_str().unwrap_or("").to_string(),
            "allowed_countries" => offer[name]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default(),
            "events" => offer["events"]
                .as_object()
                .map(|events| {
                    events
                        .iter()
                        .map(|(n, e)| {
                            format!(
                                "{n} = {} / {}",
                                commission_text(&e["revenue"]),
                                commission_text(&e["payout"])
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default(),
            _ => match &offer[name] {
                Value::String(text) => text.clone(),
                Value::Number(n) => n.to_string(),
                _ => String::new(),
            },
        }
    };
    let devices: Vec<String> = if posted {
        ctx.form
            .all("allowed_devices")
            .iter()
            .map(|d| d.to_string())
            .collect()
    } else {
        offer
            .and_then(|o| o["allowed_devices"].as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let action = match offer {
        Some(offer) => format!("/app/offers/{}/edit", offer["id"].as_str().unwrap_or("")),
        None => "/app/offers/new".into(),
    };
    let approval = value("approval");
    let events_error = refusal.and_then(|r| r.about("events"));
    html! {
        h1 { @if offer.is_some() { "Edit the offer" } @else { "Publish an offer" } }
        (form_error(refusal))
        form method="post" action=(action) novalidate {
            (csrf(ctx))
            div class="card" {
                h2 { "The offer" }
                @if offer.is_none() && ctx.me().role == Role::Admin {
                    (input("Advertiser id", "advertiser_id", "text", &value("advertiser_id"), refusal, Some("Admins publish on an advertiser's behalf.")))
                }
                (input("Name", "name", "text", &value("name"), refusal, None))
                (input("Destination URL", "destination", "url", &value("destination"), refusal,
                    Some("Where shoppers land. Macros: {click_id}, {affiliate_id}, {offer_id}, {sub1}…{sub5}.")))
                div class="row" {
                    div {
                        @if offer.is_none() {
                            (input("Currency", "currency", "text", &value("currency"), refusal, Some("ISO 4217, such as USD.")))
                        } @else {
                            label for="f-currency" { "Currency" }
                            input id="f-currency" type="text" value=(offer.map(|o| o["currency"].as_str().unwrap_or("")).unwrap_or("")) disabled;
                        }
                    }
                    div { (input("Revenue per conversion", "revenue", "text", &value("revenue"), refusal, Some("What you pay: 25.00, or 15% of the sale."))) }
                    div { (input("Payout per conversion", "payout", "text", &value("payout"), refusal, Some("What affiliates earn: 18.00, or 10%."))) }
                }
                label for="f-events" { "Other events" }
                span class="hint" id="f-events-hint" { "One per line: name = revenue / payout, such as lead = 2.00 / 1.50." }
                textarea id="f-events" name="events" rows="3" aria-describedby="f-events-hint" aria-invalid=[events_error.map(|_| "true")] { (value("events")) }
                @if let Some(error) = events_error { p class="field-error" { (error) } }
            }
            div class="card" {
                h2 { "Caps and targeting" }
                div class="row" {
                    div { (input("Daily cap", "caps.daily", "number", &value("caps.daily"), refusal, Some("Conversions a day; empty for none."))) }
                    div { (input("Monthly cap", "caps.monthly", "number", &value("caps.monthly"), refusal, None)) }
                    div { (input("Budget", "caps.budget", "text", &value("caps.budget"), refusal, Some("Total revenue; empty for none."))) }
                }
                (input("Countries", "allowed_countries", "text", &value("allowed_countries"), refusal, Some("ISO codes separated by commas, such as US, CA; empty for all.")))
                fieldset {
                    legend { "Devices (none ticked: all)" }
                    @for device in ["desktop", "mobile", "tablet"] {
                        label class="check" {
                            input type="checkbox" name="allowed_devices" value=(device) checked[devices.iter().any(|d| d == device)];
                            span { (device) }
                        }
                    }
                }
                (input("Fallback URL", "fallback_url", "url", &value("fallback_url"), refusal, Some("Where excluded or capped visitors go; empty for a neutral page.")))
            }
            div class="card" {
                h2 { "Review and hold" }
                div class="row" {
                    div { (select("Approval", "approval", &[("auto".into(), "Automatic after review".into()), ("manual".into(), "By me".into())], if approval.is_empty() { "auto" } else { &approval }, refusal)) }
                    div { (input("Review days", "review_days", "number", &value("review_days"), refusal, Some("Days a conversion waits before automatic approval."))) }
                    div { (input("Hold days", "hold_days", "number", &value("hold_days"), refusal, Some("Days approved earnings wait before they can be paid."))) }
                }
                div class="row" {
                    div { (input("Attribution window (days)", "attribution_window_days", "number", &value("attribution_window_days"), refusal, None)) }
                    div { (input("Unique-click window (hours)", "unique_window_hours", "number", &value("unique_window_hours"), refusal, None)) }
                    div { (input("Flag conversions faster than (seconds)", "min_conversion_seconds", "number", &value("min_conversion_seconds"), refusal, None)) }
                }
            }
            div class="actions" { button type="submit" { "Save the offer" } a href="/app/offers" { "Cancel" } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commissions_are_read_as_amounts_or_shares() {
        assert_eq!(
            commission_input("payout", "18.00").unwrap(),
            json!({"fixed": "18.00"})
        );
        assert_eq!(
            commission_input("payout", "15%").unwrap(),
            json!({"share_bps": 1500})
        );
        assert_eq!(
            commission_input("payout", "12.5 %").unwrap(),
            json!({"share_bps": 1250})
        );
        assert_eq!(
            commission_input("payout", "x%")
                .unwrap_err()
                .field
                .as_deref(),
            Some("payout")
        );
        assert_eq!(
            commission_input("revenue", " ")
                .unwrap_err()
                .field
                .as_deref(),
            Some("revenue")
        );
        assert_eq!(commission_text(&json!({"share_bps": 1250})), "12.50%");
        assert_eq!(commission_text(&json!({"share_bps": 1500})), "15%");
    }
}
