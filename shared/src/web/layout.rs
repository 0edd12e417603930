//! The frame of every page (header, navigation by role, notices) and the form controls pages
//! share, each labelled and tied to its error message for screen readers.

use lambda_http::Body;
use lambda_http::http::{HeaderValue, StatusCode, header};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::{Ctx, Me, Refusal, assets};
use crate::domain::accounts::Role;
use crate::http::Response;

/// The navigation of each role: (path, label).
fn navigation(role: Role) -> &'static [(&'static str, &'static str)] {
    match role {
        Role::Advertiser => &[
            ("/app", "Overview"),
            ("/app/offers", "Offers"),
            ("/app/conversions", "Conversions"),
            ("/app/reports", "Reports"),
            ("/app/calls", "Calls"),
            ("/app/account", "Account"),
        ],
        Role::Affiliate => &[
            ("/app", "Overview"),
            ("/app/offers", "Offers"),
            ("/app/links", "Links"),
            ("/app/conversions", "Conversions"),
            ("/app/reports", "Reports"),
            ("/app/payouts", "Payouts"),
            ("/app/calls", "Calls"),
            ("/app/account", "Account"),
        ],
        Role::Admin => &[
            ("/app", "Overview"),
            ("/app/admin/accounts", "Accounts"),
            ("/app/offers", "Offers"),
            ("/app/conversions", "Conversions"),
            ("/app/admin/flagged", "Flagged"),
            ("/app/admin/payouts", "Payouts"),
            ("/app/admin/postbacks", "Postbacks"),
            ("/app/admin/privacy", "Privacy"),
            ("/app/admin/audit", "Audit"),
            ("/app/reports", "Reports"),
            ("/app/calls", "Calls"),
            ("/app/account", "Account"),
        ],
    }
}

/// The messages a page may be redirected to with `?done=CODE` after a form succeeded. Codes,
/// not text, so that a link cannot make the site say anything else.
fn done_message(code: &str) -> Option<&'static str> {
    Some(match code {
        "registered" => {
            "Your account was created. Check your mail for the verification link; an admin will approve the account."
        }
        "signed-out" => "You are signed out.",
        "reset-sent" => "If that address has an account, a reset code is on its way.",
        "password-set" => "Your password was changed. Sign in with the new one.",
        "offer-saved" => "The offer was saved.",
        "test-sent" => {
            "A test conversion was recorded: it is listed here with status test, and counted nowhere."
        }
        "applied" => "You applied. The advertiser will decide.",
        "decided" => "Done.",
        "link-made" => "Your link is ready.",
        "method-saved" => "Your payout method was saved.",
        "tax-saved" => "Your tax profile was saved.",
        "profile-saved" => "Your profile was saved.",
        "run-started" => "The payout run was started.",
        "export-requested" => "Your export was requested. It will be ready here within minutes.",
        "replayed" => "The postback was queued again.",
        "postback-saved" => "Your postback URL was saved.",
        "forms-requested" => "The tax forms will be filed within the hour.",
        "policy-published" => "The new policy version was published; notices are being sent.",
        _ => return None,
    })
}

/// A page of the dashboard, `200 OK`.
pub fn page(ctx: &Ctx, title: &str, body: Markup) -> Response {
    page_with_status(ctx, StatusCode::OK, title, body)
}

/// A page with another status (a form shown again with its error: 400, 409, 422…).
pub fn page_with_status(ctx: &Ctx, status: StatusCode, title: &str, body: Markup) -> Response {
    let current = ctx.request.uri().path();
    let done = ctx.query.get("done").and_then(done_message);
    let markup = frame(ctx.me.as_ref(), title, current, done, body);
    html_response(status, markup)
}

/// A refusal shown as a page: not found, forbidden, a form that cannot be done.
pub fn refusal_page(me: Option<&Me>, refusal: &Refusal) -> Response {
    let title = match refusal.status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::TOO_MANY_REQUESTS => "Too many attempts",
        status if status.is_server_error() => "Something went wrong",
        _ => "That did not work",
    };
    let body = html! {
        h1 { (title) }
        div class="notice error" role="alert" { p { (refusal.message) } }
        p { a href="/app" { "Back to the dashboard" } }
    };
    html_response(refusal.status, frame(me, title, "", None, body))
}

fn html_response(status: StatusCode, markup: Markup) -> Response {
    let mut response = Response::new(Body::Text(markup.into_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

fn frame(me: Option<&Me>, title: &str, current: &str, done: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · LeadsRefer" }
                link rel="stylesheet" href=(assets::STYLESHEET.path);
                script src=(assets::SCRIPT.path) defer {}
            }
            body data-zone-sensitive="true" {
                a class="skip" href="#main" { "Skip to content" }
                header class="top" {
                    div class="bar" {
                        a class="brand" href="/app" { "LeadsRefer" }
                        @if let Some(me) = me {
                            nav aria-label="Main" {
                                ul {
                                    @for (path, label) in navigation(me.role) {
                                        @let here = current == *path
                                            || (*path != "/app" && current.starts_with(&format!("{path}/")));
                                        li {
                                            @if here {
                                                a href=(path) aria-current="page" { (label) }
                                            } @else {
                                                a href=(path) { (label) }
                                            }
                                        }
                                    }
                                }
                            }
                            form method="post" action="/app/sign-out" {
                                input type="hidden" name="csrf" value=(me.csrf);
                                button class="link" type="submit" { "Sign out " span class="skip" { (me.email) } }
                            }
                        } @else {
                            nav aria-label="Main" {
                                ul {
                                    li { a href="/app/sign-in" { "Sign in" } }
                                    li { a href="/app/register" { "Register" } }
                                    li { a href="/app/privacy-policy" { "Privacy" } }
                                }
                            }
                        }
                    }
                }
                @if let Some(me) = me {
                    @if let Some((version, summary)) = &me.policy {
                        div class="policy" role="region" aria-label="Privacy policy update" {
                            div class="bar" {
                                p { strong { "Our privacy policy changed (version " (version) "): " } (summary) " " a href="/app/privacy-policy" { "Read the policy" } }
                                form method="post" action="/app/policy/acknowledge" {
                                    input type="hidden" name="csrf" value=(me.csrf);
                                    input type="hidden" name="version" value=(version);
                                    button type="submit" class="small secondary" { "I have read it" }
                                }
                            }
                        }
                    }
                }
                main id="main" {
                    @if let Some(me) = me {
                        @if me.status == "pending_approval" {
                            div class="notice" {
                                p { "Your account is waiting for an admin's approval. You can look around; publishing offers, applying and making links open once it is approved." }
                            }
                        }
                    }
                    @if let Some(done) = done {
                        div class="notice good" role="status" { p { (done) } }
                    }
                    (body)
                }
            }
        }
    }
}

/// The hidden CSRF field every form carries.
pub fn csrf(ctx: &Ctx) -> Markup {
    html! { input type="hidden" name="csrf" value=(ctx.csrf); }
}

/// The refusal at the top of a form, announced to screen readers.
pub fn form_error(refusal: Option<&Refusal>) -> Markup {
    html! {
        @if let Some(refusal) = refusal {
            div class="notice error" role="alert" {
                p { (refusal.message) }
            }
        }
    }
}

/// One labelled input, marked invalid with its message when the refusal names it.
pub fn input(
    label: &str,
    name: &str,
    kind: &str,
    value: &str,
    refusal: Option<&Refusal>,
    hint: Option<&str>,
) -> Markup {
    let id = format!("f-{}", name.replace(['.', '[', ']'], "-"));
    let error = refusal.and_then(|r| r.about(name));
    let hint_id = format!("{id}-hint");
    let error_id = format!("{id}-error");
    let described: Vec<&str> = [
        hint.map(|_| hint_id.as_str()),
        error.map(|_| error_id.as_str()),
    ]
    .into_iter()
    .flatten()
    .collect();
    let autocomplete = match (name, kind) {
        ("email", _) => "email",
        ("name", _) => "name",
        ("password", _) | ("current_password", _) => "current-password",
        ("new_password", _) => "new-password",
        _ => "off",
    };
    html! {
        label for=(id) { (label) }
        @if let Some(hint) = hint { span class="hint" id=(hint_id) { (hint) } }
        input id=(id) name=(name) type=(kind) value=(value) autocomplete=(autocomplete)
            aria-invalid=[error.map(|_| "true")]
            aria-describedby=[(!described.is_empty()).then(|| described.join(" "))];
        @if let Some(error) = error { p class="field-error" id=(error_id) { (error) } }
    }
}

/// A labelled `<select>` of (value, label) options.
pub fn select(
    label: &str,
    name: &str,
    options: &[(String, String)],
    selected: &str,
    refusal: Option<&Refusal>,
) -> Markup {
    let id = format!("f-{name}");
    let error = refusal.and_then(|r| r.about(name));
    let error_id = format!("{id}-error");
    html! {
        label for=(id) { (label) }
        select id=(id) name=(name) aria-invalid=[error.map(|_| "true")]
            aria-describedby=[error.map(|_| error_id.clone())] {
            @for (value, text) in options {
                option value=(value) selected[value == selected] { (text) }
            }
        }
        @if let Some(error) = error { p class="field-error" id=(error_id) { (error) } }
    }
}

/// A value to copy (a link, a postback URL), with a copy button the script reveals.
pub fn copyable(id: &str, text: &str) -> Markup {
    html! {
        div class="copyable" {
            code id=(id) { (text) }
            button type="button" class="secondary small" data-copy=(id) hidden { "Copy" }
        }
    }
}

/// A small form of one button that POSTs to `action` (a decision, a run).
pub fn button_form(
    ctx: &Ctx,
    action: &str,
    fields: &[(&str, &str)],
    label: &str,
    class: &str,
) -> Markup {
    html! {
        form class="inline" method="post" action=(action) {
            (csrf(ctx))
            @for (name, value) in fields { input type="hidden" name=(name) value=(value); }
            button type="submit" class=(class) { (label) }
        }
    }
}

/// Server-drawn SVG, the one markup a page inserts unescaped (`chart` draws it from numbers).
pub fn trusted_svg(svg: String) -> PreEscaped<String> {
    PreEscaped(svg)
}
