//! An affiliate's money: balance, payouts, payout method, and tax profile (W-9, or a foreign
//! payee's statement) with their 1099 statements.

use lambda_http::http::{Method, StatusCode};
use maud::html;
use serde_json::{Value, json};

use crate::web::format::{money, status, time_element};
use crate::web::layout::{self, csrf, form_error, input, select};
use crate::web::{Ctx, Refusal, redirect};

type Result = std::result::Result<crate::http::Response, Refusal>;

pub async fn affiliate(ctx: Ctx) -> Result {
    method_page(ctx, None).await
}

pub async fn set_method(ctx: Ctx) -> Result {
    let form = &ctx.form;
    let body = match form.value("type") {
        "paypal" => json!({ "type": "paypal", "email": form.value("email") }),
        _ => json!({
            "type": "ach",
            "routing_number": form.value("routing_number"),
            "account_number": form.value("account_number"),
            "account_type": form.value("account_type"),
            "account_holder": form.value("account_holder"),
            "name_on_account": form.value("name_on_account"),
        }),
    };
    match ctx
        .api
        .send(Method::PUT, "/api/payouts/method", Some(body))
        .await
    {
        Ok(_) => Ok(redirect("/app/payouts?done=method-saved")),
        Err(refusal) => method_page(ctx, Some(refusal)).await,
    }
}

async fn method_page(ctx: Ctx, refusal: Option<Refusal>) -> Result {
    let balance = ctx.api.get("/api/payouts/balance").await?;
    let payouts = ctx.api.list("/api/payouts", "payouts").await?;
    let method = ctx.api.get("/api/payouts/method").await?["method"].clone();
    let posted = ctx.is_post();
    let rail = if posted {
        ctx.form.value("type").to_string()
    } else {
        method["type"].as_str().unwrap_or("paypal").to_string()
    };
    let value = |name: &str| -> String {
        if posted {
            // The account number is never shown again, even when it was typed.
            if name == "account_number" {
                String::new()
            } else {
                ctx.form.value(name).to_string()
            }
        } else {
            method[name].as_str().unwrap_or("").to_string()
        }
    };
    let status_code = refusal.as_ref().map_or(StatusCode::OK, |r| r.status);
    let body = html! {
        h1 { "Payouts" }
        div class="card" {
            h2 { "Balance" }
            div class="table-wrap" { table {
                thead { tr { th scope="col" { "Currency" } th scope="col" class="num" { "Pending" } th scope="col" class="num" { "On hold" } th scope="col" class="num" { "Payable" } } }
                tbody { @for line in balance["balances"].as_array().cloned().unwrap_or_default() {
                    @let currency = line["currency"].as_str().unwrap_or("");
                    tr { td { (currency) }
                        td class="num" { (money(line["pending"].as_str().unwrap_or("0"), currency)) }
                        td class="num" { (money(line["on_hold"].as_str().unwrap_or("0"), currency)) }
                        td class="num" { (money(line["payable"].as_str().unwrap_or("0"), currency)) } }
                } }
            } }
            p class="muted" { "Payable balances of at least " (balance["minimum_payout"].as_str().unwrap_or("")) " are paid in the daily payout run; smaller ones carry over." }
        }
        div class="card" {
            h2 { "Payouts" }
            @if payouts.is_empty() { p class="muted" { "No payouts yet." } }
            @else {
                div class="table-wrap" { table {
                    thead { tr { th scope="col" { "Date" } th scope="col" class="num" { "Amount" } th scope="col" { "To" } th scope="col" { "Status" } th scope="col" { "Reference" } } }
                    tbody { @for payout in &payouts {
                        tr {
                            td { (time_element(payout["created_at"].as_str().unwrap_or(""), &ctx.zone)) }
                            td class="num" { (money(payout["amount"].as_str().unwrap_or(""), payout["currency"].as_str().unwrap_or(""))) }
                            td { (payout["destination"].as_str().unwrap_or("")) }
                            td { (status(payout["status"].as_str().unwrap_or(""))) @if let Some(failure) = payout["failure"].as_str() { br; span class="muted" { (failure) } } }
                            td class="mono" { (payout["reference"].as_str().unwrap_or("—")) }
                        }
                    } }
                } }
            }
        }
        div class="card" {
            h2 { "Payout method" }
            @if let Some(stopped) = method["stopped"].as_object() {
                div class="notice error" role="alert" {
                    p { "Your bank returned payout " code { (stopped["payout_id"].as_str().unwrap_or("")) } " ("
                        (stopped["code"].as_str().unwrap_or("")) ": " (stopped["reason"].as_str().unwrap_or(""))
                        "). Payouts wait until you give another payout method below; the amount is in your payable balance." }
                }
            }
            @if let Some(held) = method["payouts_held_until"].as_str() {
                p class="muted" { "After a change, payouts wait until " (time_element(held, &ctx.zone)) " (a cooling-off period that protects you from a stolen sign-in)." }
            }
            (form_error(refusal.as_ref()))
            form method="post" action="/app/payouts/method" novalidate {
                (csrf(&ctx))
                fieldset {
                    legend { "Paid by" }
                    label class="check" { input type="radio" name="type" value="paypal" checked[rail == "paypal"]; span { "PayPal" } }
                    label class="check" { input type="radio" name="type" value="ach" checked[rail == "ach"]; span { "Bank transfer (ACH, US accounts)" } }
                }
                (input("PayPal email", "email", "email", &value("email"), refusal.as_ref(), Some("For PayPal.")))
                div class="row" {
                    div { (input("Routing number", "routing_number", "text", &value("routing_number"), refusal.as_ref(), Some("For ACH: 9 digits."))) }
                    div { (input("Account number", "account_number", "password", "", refusal.as_ref(),
                        Some(&method["account_last4"].as_str().map(|l| format!("Stored encrypted; ends in {l}. Type it again to change it.")).unwrap_or_else(|| "Stored encrypted; shown by its last four digits.".into())))) }
                }
                div class="row" {
                    div { (select("Account type", "account_type", &[("checking".into(), "Checking".into()), ("savings".into(), "Savings".into())], &value("account_type"), refusal.as_ref())) }
                    div { (select("Holder", "account_holder", &[("individual".into(), "Individual".into()), ("company".into(), "Company".into())], &value("account_holder"), refusal.as_ref())) }
                    div { (input("Name on the account", "name_on_account", "text", &value("name_on_account"), refusal.as_ref(), None)) }
                }
                div class="actions" { button type="submit" { "Save the payout method" } }
            }
        }
        p { a href="/app/tax" { "Tax profile and 1099 statements" } }
    };
    Ok(layout::page_with_status(&ctx, status_code, "Payouts", body))
}

pub async fn tax(ctx: Ctx) -> Result {
    let mut refusal = None;
    if ctx.is_post() {
        let form = &ctx.form;
        let body = if form.value("status") == "foreign" {
            json!({ "status": "foreign", "country": form.value("country"), "signed_name": form.value("signed_name"), "certify": form.has("certify") })
        } else {
            json!({
                "status": "us",
                "legal_name": form.value("legal_name"),
                "business_name": form.get("business_name"),
                "classification": form.value("classification"),
                "address": {
                    "line1": form.value("address.line1"), "line2": form.value("address.line2"),
                    "city": form.value("address.city"), "state": form.value("address.state"), "zip": form.value("address.zip"),
                },
                "tin_type": form.value("tin_type"),
                "tin": form.value("tin"),
                "signed_name": form.value("signed_name"),
                "certify": form.has("certify"),
            })
        };
        match ctx
            .api
            .send(Method::PUT, "/api/tax/profile", Some(body))
            .await
        {
            Ok(_) => return Ok(redirect("/app/tax?done=tax-saved")),
            Err(error) => refusal = Some(error),
        }
    }
    tax_page(ctx, refusal).await
}

/// A foreign affiliate's signed W-8BEN, from the upload form to the API as a PDF.
pub async fn upload_w8ben(ctx: Ctx) -> Result {
    let outcome = match ctx.uploaded("w8ben", "the signed form, a PDF file") {
        Err(refusal) => Err(refusal),
        Ok(bytes) => {
            ctx.api
                .send_bytes(
                    Method::PUT,
                    "/api/tax/profile/w8ben",
                    "application/pdf",
                    bytes,
                )
                .await
        }
    };
    match outcome {
        Ok(_) => Ok(redirect("/app/tax?done=tax-saved")),
        Err(refusal) => tax_page(ctx, Some(refusal)).await,
    }
}

async fn tax_page(ctx: Ctx, refusal: Option<Refusal>) -> Result {
    let profile = ctx.api.get("/api/tax/profile").await?["profile"].clone();
    let posted = ctx.is_post();
    let value = |name: &str| -> String {
        if posted {
            return if name == "tin" {
                String::new()
            } else {
                ctx.form.value(name).to_string()
            };
        }
        let pointer = format!("/{}", name.replace('.', "/"));
        profile
            .pointer(&pointer)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let residence = if posted {
        ctx.form.value("status").to_string()
    } else {
        profile["status"].as_str().unwrap_or("us").to_string()
    };
    let classifications: Vec<(String, String)> = [
        ("individual", "Individual or sole proprietor"),
        ("c_corporation", "C corporation"),
        ("s_corporation", "S corporation"),
        ("partnership", "Partnership"),
        ("trust_estate", "Trust or estate"),
        ("llc_c", "LLC taxed as a C corporation"),
        ("llc_s", "LLC taxed as an S corporation"),
        ("llc_p", "LLC taxed as a partnership"),
        ("other", "Other"),
    ]
    .map(|(v, l)| (v.to_string(), l.to_string()))
    .to_vec();
    let status_code = refusal.as_ref().map_or(StatusCode::OK, |r| r.status);
    let upload_error = refusal.as_ref().and_then(|r| {
        r.about("w8ben")
            .or(r.about("body"))
            .or(r.about("content-type"))
    });
    let this_year = ctx
        .app
        .clock
        .now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .year();
    let body = html! {
        h1 { "Tax profile" }
        @if !profile.is_null() {
            div class="card" {
                h2 { "On file" }
                dl class="facts" {
                    dt { "Status" } dd { (profile["status"].as_str().unwrap_or("")) }
                    @if let Some(name) = profile["legal_name"].as_str() { dt { "Legal name" } dd { (name) } }
                    @if let Some(last4) = profile["tin_last4"].as_str() { dt { "TIN" } dd { "ending in " (last4) } }
                    @if let Some(at) = profile["certified_at"].as_str() { dt { "Certified" } dd { (time_element(at, &ctx.zone)) } }
                }
            }
        }
        div class="card" {
            h2 { "Form W-9 (US persons) or foreign status" }
            p class="muted" { "Your TIN is encrypted before it is stored and shown only by its last four digits." }
            (form_error(refusal.as_ref()))
            form method="post" action="/app/tax" novalidate {
                (csrf(&ctx))
                fieldset {
                    legend { "I am" }
                    label class="check" { input type="radio" name="status" value="us" checked[residence != "foreign"]; span { "a US person (W-9)" } }
                    label class="check" { input type="radio" name="status" value="foreign" checked[residence == "foreign"]; span { "not a US person (upload a W-8BEN afterwards)" } }
                }
                (input("Legal name", "legal_name", "text", &value("legal_name"), refusal.as_ref(), Some("As shown on your income tax return.")))
                (input("Business name", "business_name", "text", &value("business_name"), refusal.as_ref(), Some("If different.")))
                (select("Federal tax classification", "classification", &classifications, &value("classification"), refusal.as_ref()))
                (input("Address", "address.line1", "text", &value("address.line1"), refusal.as_ref(), None))
                (input("Address, line 2", "address.line2", "text", &value("address.line2"), refusal.as_ref(), None))
                div class="row" {
                    div { (input("City", "address.city", "text", &value("address.city"), refusal.as_ref(), None)) }
                    div { (input("State", "address.state", "text", &value("address.state"), refusal.as_ref(), Some("Two letters."))) }
                    div { (input("ZIP", "address.zip", "text", &value("address.zip"), refusal.as_ref(), None)) }
                }
                div class="row" {
                    div { (select("TIN type", "tin_type", &[("ssn".into(), "SSN".into()), ("ein".into(), "EIN".into()), ("itin".into(), "ITIN".into())], &value("tin_type"), refusal.as_ref())) }
                    div { (input("TIN", "tin", "password", "", refusal.as_ref(), None)) }
                }
                (input("Country (foreign persons)", "country", "text", &value("country"), refusal.as_ref(), Some("ISO code, such as DE.")))
                (input("Signature: your full name", "signed_name", "text", &value("signed_name"), refusal.as_ref(), None))
                label class="check" {
                    input type="checkbox" name="certify" value="true";
                    span { "Under penalties of perjury, I certify that the information above is correct." }
                }
                @if let Some(error) = refusal.as_ref().and_then(|r| r.about("certify")) { p class="field-error" { (error) } }
                div class="actions" { button type="submit" { "Save the tax profile" } }
            }
        }
        @if residence == "foreign" || profile["status"] == "foreign" {
            div class="card" {
                h2 { "Form W-8BEN" }
                p { "Upload the form, signed, as a PDF (at most 4 MB). It is kept encrypted for the seven years tax law requires." }
                form method="post" action=(crate::http::W8BEN_FORM_PATH) enctype="multipart/form-data" {
                    (csrf(&ctx))
                    label for="f-w8ben" { "Signed W-8BEN (PDF)" }
                    input id="f-w8ben" type="file" name="w8ben" accept="application/pdf"
                        aria-invalid=[upload_error.map(|_| "true")];
                    @if let Some(error) = upload_error { p class="field-error" { (error) } }
                    div class="actions" { button type="submit" { "Upload" } }
                }
            }
        }
        div class="card" {
            h2 { "1099-NEC statements" }
            ul { @for year in (this_year - 3..this_year).rev() {
                li { a href=(format!("/app/tax/forms/{year}")) { "Tax year " (year) } }
            } }
        }
    };
    Ok(layout::page_with_status(
        &ctx,
        status_code,
        "Tax profile",
        body,
    ))
}

/// A year's 1099-NEC statement, as the API serves it.
pub async fn form(ctx: Ctx) -> Result {
    let year: String = ctx
        .path_param("year")
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    ctx.api.raw(&format!("/api/tax/forms/{year}")).await
}
