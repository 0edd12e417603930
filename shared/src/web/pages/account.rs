//! Everyone's own account: profile, password, API keys (a new key shown once), data export and
//! erasure; and the privacy policy, naming the subprocessors this deployment uses.

use lambda_http::http::{Method, StatusCode, header};
use maud::{Markup, html};
use serde_json::{Value, json};

use crate::app::Backend;
use crate::web::format::{status, time_element};
use crate::web::layout::{self, button_form, copyable, csrf, form_error, input};
use crate::web::{Ctx, Refusal, encode, redirect, redirect_with_cookies};

type Result = std::result::Result<crate::http::Response, Refusal>;

pub async fn account(ctx: Ctx) -> Result {
    account_page(ctx, None, None).await
}

/// The account page; `refusal` beside the form that failed, `new_key` shown once.
async fn account_page(
    ctx: Ctx,
    refusal: Option<(&'static str, Refusal)>,
    new_key: Option<Value>,
) -> Result {
    let keys = ctx.api.list("/api/auth/api-keys", "api_keys").await?;
    let requests = ctx.api.list("/api/privacy/requests", "requests").await?;
    let me = ctx.me().clone();
    let failed = |form: &str| refusal.as_ref().filter(|(f, _)| *f == form).map(|(_, r)| r);
    let status_code = refusal.as_ref().map_or(StatusCode::OK, |(_, r)| r.status);
    let body = html! {
        h1 { "Account" }
        div class="card" {
            h2 { "Profile" }
            dl class="facts" {
                dt { "Email" } dd { (me.email) @if !me.email_verified { " (not verified yet: see the link we mailed)" } }
                dt { "Role" } dd { (format!("{:?}", me.role).to_lowercase()) }
                dt { "Status" } dd { (status(&me.status)) }
                dt { "Time zone" } dd { (ctx.zone_name) }
            }
            (form_error(failed("profile")))
            form method="post" action="/app/account/profile" novalidate {
                (csrf(&ctx))
                (input("Name", "name", "text", if ctx.is_post() { ctx.form.value("name") } else { &me.name }, failed("profile"), None))
                div class="actions" { button type="submit" { "Save" } }
            }
        }
        div class="card" {
            h2 { "Password" }
            (form_error(failed("password")))
            form method="post" action="/app/account/password" novalidate {
                (csrf(&ctx))
                (input("Current password", "current_password", "password", "", failed("password"), None))
                (input("New password", "new_password", "password", "", failed("password"), Some("12 to 128 characters. Every other session ends.")))
                div class="actions" { button type="submit" { "Change the password" } }
            }
        }
        div class="card" {
            h2 { "API keys" }
            p class="muted" { "For programs: send " code { "Authorization: Bearer <key>" } ". A key is shown once, when it is made." }
            @if let Some(new_key) = &new_key {
                div class="secret" role="status" {
                    p { strong { "Your new key (copy it now; it is not shown again):" } }
                    (copyable("new-api-key", new_key["secret"].as_str().unwrap_or("")))
                }
            }
            (form_error(failed("api-key")))
            form method="post" action="/app/account/api-keys" novalidate {
                (csrf(&ctx))
                (input("Key name", "name", "text", "", failed("api-key"), Some("What uses it, such as \"order system\".")))
                div class="actions" { button type="submit" { "Make a key" } }
            }
            @if !keys.is_empty() {
                div class="table-wrap" { table {
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Ends in" } th scope="col" { "Made" } th scope="col" { "Revoke" } } }
                    tbody { @for key in &keys {
                        tr {
                            td { (key["name"].as_str().unwrap_or("")) }
                            td class="mono" { "…" (key["last4"].as_str().unwrap_or("")) }
                            td { (time_element(key["created_at"].as_str().unwrap_or(""), &ctx.zone)) }
                            td { (button_form(&ctx, &format!("/app/account/api-keys/{}/revoke", encode(key["id"].as_str().unwrap_or(""))), &[], "Revoke", "small secondary")) }
                        }
                    } }
                } }
            }
        }
        div class="card" {
            h2 { "Your data" }
            @if requests.iter().any(|r| r["kind"] == "export" && r["status"] == "pending") {
                // The export job runs every few minutes: the page looks again by itself.
                meta http-equiv="refresh" content="15";
                p role="status" { "Your export is being prepared; this page refreshes until it is ready." progress aria-label="Export in progress" {} }
            }
            p { "Download everything we hold about you as JSON. It is ready within minutes and can be downloaded for 7 days." }
            (button_form(&ctx, "/app/account/export", &[], "Request my data", "secondary"))
            @if !requests.is_empty() {
                div class="table-wrap" { table {
                    thead { tr { th scope="col" { "Request" } th scope="col" { "Asked" } th scope="col" { "Status" } th scope="col" { "" } } }
                    tbody { @for request in &requests {
                        tr {
                            td { (request["kind"].as_str().unwrap_or("")) }
                            td { (time_element(request["requested_at"].as_str().unwrap_or(""), &ctx.zone)) }
                            td { (status(request["status"].as_str().unwrap_or(""))) }
                            td { @if request["kind"] == "export" && request["status"] == "done" && !request["download_until"].is_null() {
                                a href=(format!("/app/account/export/{}", encode(request["id"].as_str().unwrap_or("")))) { "Download" }
                            } }
                        }
                    } }
                } }
            }
            p { a href="/app/account/erase" { "Erase my account…" } }
        }
    };
    Ok(layout::page_with_status(&ctx, status_code, "Account", body))
}

pub async fn profile(ctx: Ctx) -> Result {
    let body = json!({ "name": ctx.form.value("name") });
    match ctx
        .api
        .send(Method::PATCH, "/api/auth/me", Some(body))
        .await
    {
        Ok(_) => Ok(redirect("/app/account?done=profile-saved")),
        Err(refusal) => account_page(ctx, Some(("profile", refusal)), None).await,
    }
}

pub async fn password(ctx: Ctx) -> Result {
    let body = json!({
        "current_password": ctx.form.value("current_password"),
        "new_password": ctx.form.value("new_password"),
    });
    let answer = ctx
        .api
        .send_raw(Method::POST, "/api/auth/password", Some(body))
        .await;
    if !answer.status().is_success() {
        return account_page(ctx, Some(("password", Refusal::of(&answer))), None).await;
    }
    // A new session replaces this one: hand its cookie to the browser.
    Ok(redirect_with_cookies(
        "/app/account?done=profile-saved",
        &answer,
    ))
}

pub async fn create_key(ctx: Ctx) -> Result {
    let body = json!({ "name": ctx.form.value("name") });
    match ctx
        .api
        .send(Method::POST, "/api/auth/api-keys", Some(body))
        .await
    {
        Ok(key) => account_page(ctx, None, Some(key)).await,
        Err(refusal) => account_page(ctx, Some(("api-key", refusal)), None).await,
    }
}

pub async fn revoke_key(ctx: Ctx) -> Result {
    let id = ctx.path_param("key_id");
    ctx.api
        .send(
            Method::DELETE,
            &format!("/api/auth/api-keys/{}", encode(id)),
            None,
        )
        .await?;
    Ok(redirect("/app/account?done=profile-saved"))
}

pub async fn request_export(ctx: Ctx) -> Result {
    ctx.api
        .send(Method::POST, "/api/privacy/exports", None)
        .await?;
    Ok(redirect("/app/account?done=export-requested"))
}

pub async fn download_export(ctx: Ctx) -> Result {
    let id = ctx.path_param("request_id");
    let mut response = ctx
        .api
        .raw(&format!("/api/privacy/exports/{}", encode(id)))
        .await?;
    response.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        "attachment; filename=\"leadsrefer-export.json\""
            .parse()
            .expect("a fixed header value"),
    );
    Ok(response)
}

pub async fn erase(ctx: Ctx) -> Result {
    let mut refusal = None;
    if ctx.is_post() {
        let answer = ctx
            .api
            .send_raw(
                Method::POST,
                "/api/privacy/erasure",
                Some(json!({ "password": ctx.form.value("password") })),
            )
            .await;
        if answer.status().is_success() {
            return Ok(redirect_with_cookies(
                "/app/sign-in?done=signed-out",
                &answer,
            ));
        }
        refusal = Some(Refusal::of(&answer));
    }
    let status_code = refusal.as_ref().map_or(StatusCode::OK, |r| r.status);
    let body = html! {
        div class="card narrow" {
            h1 { "Erase your account" }
            p { "Your account is closed at once and your personal data erased. Payout, ledger and tax records are kept, pseudonymised, for the seven years the law requires." }
            (form_error(refusal.as_ref()))
            form method="post" action="/app/account/erase" data-confirm="Erase your account for good?" novalidate {
                (csrf(&ctx))
                (input("Your password, to confirm", "password", "password", "", refusal.as_ref(), None))
                div class="actions" { button type="submit" class="danger" { "Erase my account" } a href="/app/account" { "Cancel" } }
            }
        }
    };
    Ok(layout::page_with_status(
        &ctx,
        status_code,
        "Erase your account",
        body,
    ))
}

/// The subprocessors this deployment uses, by what it is configured with.
fn subprocessors(ctx: &Ctx) -> Markup {
    let aws = ctx.app.backend == Backend::Aws;
    html! {
        ul {
            @if aws {
                li { strong { "Amazon Web Services" } ": hosting (Lambda, API Gateway), the database (DynamoDB), files (S3), encryption keys (KMS) and transactional mail (SES)." }
            } @else {
                li { "This installation runs on its operator's own machine: data, files, keys and mail stay there." }
            }
            @if ctx.app.twilio.as_ref().is_some_and(|t| !t.is_simulated()) { li { strong { "Twilio" } ": call tracking and call recording." } }
            @if ctx.app.payouts.paypal.is_some() { li { strong { "PayPal" } ": affiliate payouts to PayPal accounts." } }
            li { "Your bank and the receiving banks: affiliate payouts by ACH transfer." }
        }
    }
}

pub async fn policy(ctx: Ctx) -> Result {
    let body = html! {
        div class="card" {
            h1 { "Privacy policy" }
            h2 { "What we keep" }
            p { "Account data (name, email, role), business and payout information (TINs and bank account numbers encrypted, shown only by their last four digits), and tracking data: clicks and conversions, pseudonymised at the edge: we keep a keyed hash of the visitor's address, a truncated prefix, country and device type, never the raw address or user-agent." }
            h2 { "How long" }
            p { "Click and conversion records: 3 years. Account, payout, ledger and tax records: 7 years, as financial and tax law requires." }
            h2 { "Cookies" }
            p { "A secure, HTTP-only session cookie when you sign in; a form token against cross-site forgery; your time zone, so that reports show your days. A tracking link sets an attribution cookie for the offer's attribution window. No third-party advertising cookies." }
            h2 { "Subprocessors of this deployment" }
            (subprocessors(&ctx))
            h2 { "Your rights" }
            p { "Download all your data or erase your account from your " a href="/app/account" { "account page" } ". We answer every request within 30 days. Users must be 18 or older." }
        }
    };
    Ok(layout::page(&ctx, "Privacy policy", body))
}

/// The policy banner's "I have read it".
pub async fn acknowledge_policy(ctx: Ctx) -> Result {
    ctx.api
        .send(
            Method::POST,
            "/api/privacy/policy-acknowledgement",
            Some(json!({ "version": ctx.form.value("version") })),
        )
        .await?;
    let back = ctx
        .request
        .headers()
        .get(header::REFERER)
        .and_then(|r| r.to_str().ok())
        .and_then(|r| url::Url::parse(r).ok())
        .map(|u| u.path().to_string())
        .filter(|p| p.starts_with("/app"))
        .unwrap_or_else(|| "/app".into());
    Ok(redirect(&back))
}
