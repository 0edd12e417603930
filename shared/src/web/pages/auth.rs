//! Signing in and out, registration with the age gate, the email-verification landing and
//! password reset: the API's `/api/auth/…` behind forms.

use lambda_http::http::{Method, StatusCode, header};
use maud::html;
use serde_json::json;

use crate::web::layout::{self, csrf, form_error, input};
use crate::web::{Ctx, Refusal, redirect, redirect_with_cookies};

type Result = std::result::Result<crate::http::Response, Refusal>;

/// Where to go after signing in: a dashboard path the sign-in page was sent from, or home.
fn next_path(ctx: &Ctx) -> String {
    let next = ctx
        .form
        .get("next")
        .or(ctx.query.get("next"))
        .unwrap_or("/app");
    if (next == "/app" || next.starts_with("/app/")) && !next.contains("//") && !next.contains('\\')
    {
        next.to_string()
    } else {
        "/app".into()
    }
}

pub async fn sign_in(ctx: Ctx) -> Result {
    if ctx.me.is_some() && !ctx.is_post() {
        return Ok(redirect("/app"));
    }
    let mut refusal = None;
    if ctx.is_post() {
        let body = json!({
            "email": ctx.form.value("email"),
            "password": ctx.form.value("password"),
        });
        let answer = ctx
            .api
            .send_raw(Method::POST, "/api/auth/sign-in", Some(body))
            .await;
        if answer.status().is_success() {
            return Ok(redirect_with_cookies(&next_path(&ctx), &answer));
        }
        refusal = Some(Refusal::of(&answer));
    }
    let status = refusal.as_ref().map_or(StatusCode::OK, |r| r.status);
    let body = html! {
        div class="card narrow" {
            h1 { "Sign in" }
            (form_error(refusal.as_ref()))
            form method="post" action="/app/sign-in" novalidate {
                (csrf(&ctx))
                input type="hidden" name="next" value=(next_path(&ctx));
                (input("Email", "email", "email", ctx.form.value("email"), refusal.as_ref(), None))
                (input("Password", "password", "password", "", refusal.as_ref(), None))
                div class="actions" {
                    button type="submit" { "Sign in" }
                    a href="/app/password-reset" { "Forgot your password?" }
                }
            }
            p { "New here? " a href="/app/register" { "Register as an advertiser or affiliate" } "." }
        }
    };
    Ok(layout::page_with_status(&ctx, status, "Sign in", body))
}

pub async fn sign_out(ctx: Ctx) -> Result {
    let answer = ctx
        .api
        .send_raw(Method::POST, "/api/auth/sign-out", None)
        .await;
    if !answer.status().is_success() && answer.status() != StatusCode::UNAUTHORIZED {
        return Err(Refusal::of(&answer));
    }
    let mut response = redirect("/app/sign-in?done=signed-out");
    response.headers_mut().append(
        header::SET_COOKIE,
        crate::caller::cleared_session_cookie()
            .parse()
            .expect("a fixed cookie is a header value"),
    );
    Ok(response)
}

pub async fn register(ctx: Ctx) -> Result {
    let mut refusal = None;
    if ctx.is_post() {
        let role = ctx.form.value("role");
        let body = json!({
            "email": ctx.form.value("email"),
            "name": ctx.form.value("name"),
            "password": ctx.form.value("password"),
            "role": role,
            "date_of_birth": ctx.form.get("date_of_birth"),
        });
        if !matches!(role, "advertiser" | "affiliate") {
            refusal = Some(Refusal::new(
                StatusCode::BAD_REQUEST,
                "role",
                "role: choose advertiser or affiliate",
            ));
        } else {
            match ctx
                .api
                .send(Method::POST, "/api/auth/register", Some(body))
                .await
            {
                Ok(_) => return Ok(redirect("/app/sign-in?done=registered")),
                Err(error) => refusal = Some(error),
            }
        }
    }
    let status = refusal.as_ref().map_or(StatusCode::OK, |r| r.status);
    let role = ctx.form.get("role").or(ctx.query.get("role")).unwrap_or("");
    let role_error = refusal.as_ref().and_then(|r| r.about("role"));
    let body = html! {
        div class="card narrow" {
            h1 { "Register" }
            p { "Advertisers publish offers; affiliates promote them. An admin approves each new account." }
            (form_error(refusal.as_ref()))
            form method="post" action="/app/register" novalidate {
                (csrf(&ctx))
                fieldset {
                    legend { "I am" }
                    label class="check" {
                        input type="radio" name="role" value="advertiser" checked[role == "advertiser"];
                        span { "an advertiser: I publish offers and pay for conversions" }
                    }
                    label class="check" {
                        input type="radio" name="role" value="affiliate" checked[role == "affiliate"];
                        span { "an affiliate: I promote offers and earn commissions" }
                    }
                    @if let Some(error) = role_error { p class="field-error" { (error) } }
                }
                (input("Name", "name", "text", ctx.form.value("name"), refusal.as_ref(), Some("Your name or your company's, as it should appear to partners.")))
                (input("Email", "email", "email", ctx.form.value("email"), refusal.as_ref(), None))
                (input("Password", "password", "password", "", refusal.as_ref(), Some("12 to 128 characters.")))
                (input("Date of birth", "date_of_birth", "date", ctx.form.value("date_of_birth"), refusal.as_ref(), Some("You must be 18 or older to use LeadsRefer.")))
                p class="muted" { "By registering you accept the " a href="/app/privacy-policy" { "privacy policy" } "." }
                div class="actions" { button type="submit" { "Register" } }
            }
        }
    };
    Ok(layout::page_with_status(&ctx, status, "Register", body))
}

pub async fn verify_email(ctx: Ctx) -> Result {
    let token = ctx.query.get("token").unwrap_or("");
    let path = format!(
        "/api/auth/verify-email?token={}",
        url::form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>()
    );
    let outcome = ctx.api.get(&path).await;
    let body = html! {
        div class="card narrow" {
            h1 { "Email verification" }
            @match &outcome {
                Ok(_) => {
                    div class="notice good" role="status" { p { "Your email address is confirmed." } }
                    p { a class="button" href="/app" { "Go to the dashboard" } }
                }
                Err(refusal) => {
                    div class="notice error" role="alert" { p { (refusal.message) } }
                    p { "The link works once and expires. Sign in to have a new one sent." }
                }
            }
        }
    };
    let status = outcome.as_ref().err().map_or(StatusCode::OK, |r| r.status);
    Ok(layout::page_with_status(
        &ctx,
        status,
        "Email verification",
        body,
    ))
}

pub async fn request_reset(ctx: Ctx) -> Result {
    let mut refusal = None;
    if ctx.is_post() {
        let body = json!({ "email": ctx.form.value("email") });
        match ctx
            .api
            .send(Method::POST, "/api/auth/password-reset", Some(body))
            .await
        {
            Ok(_) => return Ok(redirect("/app/password-reset/confirm?done=reset-sent")),
            Err(error) => refusal = Some(error),
        }
    }
    let status = refusal.as_ref().map_or(StatusCode::OK, |r| r.status);
    let body = html! {
        div class="card narrow" {
            h1 { "Reset your password" }
            p { "We mail a one-time code to the address, if it has an account." }
            (form_error(refusal.as_ref()))
            form method="post" action="/app/password-reset" novalidate {
                (csrf(&ctx))
                (input("Email", "email", "email", ctx.form.value("email"), refusal.as_ref(), None))
                div class="actions" { button type="submit" { "Mail me a code" } }
            }
        }
    };
    Ok(layout::page_with_status(
        &ctx,
        status,
        "Reset your password",
        body,
    ))
}

pub async fn confirm_reset(ctx: Ctx) -> Result {
    let mut refusal = None;
    if ctx.is_post() {
        let body = json!({
            "token": ctx.form.value("token"),
            "new_password": ctx.form.value("new_password"),
        });
        match ctx
            .api
            .send(Method::POST, "/api/auth/password-reset/confirm", Some(body))
            .await
        {
            Ok(_) => return Ok(redirect("/app/sign-in?done=password-set")),
            Err(error) => refusal = Some(error),
        }
    }
    let status = refusal.as_ref().map_or(StatusCode::OK, |r| r.status);
    let body = html! {
        div class="card narrow" {
            h1 { "Choose a new password" }
            (form_error(refusal.as_ref()))
            form method="post" action="/app/password-reset/confirm" novalidate {
                (csrf(&ctx))
                (input("Code from the email", "token", "text", ctx.form.value("token"), refusal.as_ref(), Some("It works once, within an hour.")))
                (input("New password", "new_password", "password", "", refusal.as_ref(), Some("12 to 128 characters.")))
                div class="actions" { button type="submit" { "Set the password" } }
            }
        }
    };
    Ok(layout::page_with_status(
        &ctx,
        status,
        "Choose a new password",
        body,
    ))
}
