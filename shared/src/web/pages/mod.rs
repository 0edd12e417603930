//! Every page of the dashboard: its methods, path, who may open it and its handler. A page that
//! takes a form answers GET with the form and POST with the outcome (a redirect, or the form
//! again with the API's refusal beside the field).

use super::{Page, SIGNED_IN, Visitor};
use crate::domain::accounts::Role;

mod account;
mod admin;
mod auth;
mod calls;
mod conversions;
mod home;
mod links;
mod offers;
mod party;
mod payouts;
mod reports;

const ADVERTISER_OR_ADMIN: Visitor = Visitor::Roles(&[Role::Admin, Role::Advertiser]);
const AFFILIATE: Visitor = Visitor::Roles(&[Role::Affiliate]);
const ADMIN: Visitor = Visitor::Roles(&[Role::Admin]);
const GET: &[&str] = &["GET"];
const POST: &[&str] = &["POST"];
const FORM: &[&str] = &["GET", "POST"];

macro_rules! page {
    ($methods:expr, $path:expr, $visitor:expr, $handler:path) => {
        Page {
            methods: $methods,
            path: $path,
            visitor: $visitor,
            handler: |ctx| Box::pin($handler(ctx)),
        }
    };
}

pub const PAGES: &[Page] = &[
    page!(GET, "/app", SIGNED_IN, home::home),
    page!(FORM, "/app/sign-in", Visitor::Anyone, auth::sign_in),
    page!(POST, "/app/sign-out", SIGNED_IN, auth::sign_out),
    page!(FORM, "/app/register", Visitor::Anyone, auth::register),
    page!(
        GET,
        "/app/verify-email",
        Visitor::Anyone,
        auth::verify_email
    ),
    page!(
        FORM,
        "/app/password-reset",
        Visitor::Anyone,
        auth::request_reset
    ),
    page!(
        FORM,
        "/app/password-reset/confirm",
        Visitor::Anyone,
        auth::confirm_reset
    ),
    page!(GET, "/app/privacy-policy", Visitor::Anyone, account::policy),
    page!(GET, "/app/offers", SIGNED_IN, offers::list),
    page!(
        FORM,
        "/app/offers/new",
        ADVERTISER_OR_ADMIN,
        offers::new_offer
    ),
    page!(GET, "/app/offers/{offer_id}", SIGNED_IN, offers::show),
    page!(
        FORM,
        "/app/offers/{offer_id}/edit",
        ADVERTISER_OR_ADMIN,
        offers::edit_offer
    ),
    page!(
        POST,
        "/app/offers/{offer_id}/status",
        ADVERTISER_OR_ADMIN,
        offers::set_status
    ),
    page!(
        POST,
        "/app/offers/{offer_id}/test-conversion",
        ADVERTISER_OR_ADMIN,
        offers::test_conversion
    ),
    page!(
        POST,
        "/app/offers/{offer_id}/secret",
        ADVERTISER_OR_ADMIN,
        offers::rotate_secret
    ),
    page!(
        POST,
        "/app/offers/{offer_id}/applications/{affiliate_id}",
        ADVERTISER_OR_ADMIN,
        offers::decide_application
    ),
    page!(
        POST,
        "/app/offers/{offer_id}/apply",
        AFFILIATE,
        offers::apply
    ),
    page!(
        POST,
        "/app/offers/{offer_id}/postback-url",
        AFFILIATE,
        offers::set_postback_url
    ),
    page!(FORM, "/app/links", AFFILIATE, links::links),
    page!(GET, "/app/conversions", SIGNED_IN, conversions::list),
    page!(
        POST,
        "/app/conversions/decide",
        ADVERTISER_OR_ADMIN,
        conversions::decide
    ),
    page!(GET, "/app/reports", SIGNED_IN, reports::report),
    page!(GET, "/app/reports.csv", SIGNED_IN, reports::csv),
    page!(GET, "/app/calls", SIGNED_IN, calls::calls),
    page!(
        GET,
        "/app/calls/{call_sid}",
        ADVERTISER_OR_ADMIN,
        calls::recording
    ),
    page!(GET, "/app/numbers", SIGNED_IN, calls::numbers),
    page!(
        POST,
        "/app/numbers",
        ADVERTISER_OR_ADMIN,
        calls::register_number
    ),
    page!(
        POST,
        "/app/numbers/settings",
        ADVERTISER_OR_ADMIN,
        calls::settings
    ),
    page!(GET, "/app/payouts", AFFILIATE, payouts::affiliate),
    page!(POST, "/app/payouts/method", AFFILIATE, payouts::set_method),
    page!(FORM, "/app/tax", AFFILIATE, payouts::tax),
    page!(GET, "/app/tax/forms/{year}", AFFILIATE, payouts::form),
    page!(
        POST,
        crate::http::W8BEN_FORM_PATH,
        AFFILIATE,
        payouts::upload_w8ben
    ),
    page!(GET, "/app/account", SIGNED_IN, account::account),
    page!(
        POST,
        "/app/policy/acknowledge",
        SIGNED_IN,
        account::acknowledge_policy
    ),
    page!(POST, "/app/account/profile", SIGNED_IN, account::profile),
    page!(POST, "/app/account/password", SIGNED_IN, account::password),
    page!(
        POST,
        "/app/account/api-keys",
        SIGNED_IN,
        account::create_key
    ),
    page!(
        POST,
        "/app/account/api-keys/{key_id}/revoke",
        SIGNED_IN,
        account::revoke_key
    ),
    page!(
        POST,
        "/app/account/export",
        SIGNED_IN,
        account::request_export
    ),
    page!(
        GET,
        "/app/account/export/{request_id}",
        SIGNED_IN,
        account::download_export
    ),
    page!(FORM, "/app/account/erase", SIGNED_IN, account::erase),
    page!(GET, "/app/admin/accounts", ADMIN, admin::accounts),
    page!(
        POST,
        "/app/admin/accounts/{account_id}/status",
        ADMIN,
        admin::set_status
    ),
    page!(GET, "/app/admin/flagged", ADMIN, admin::flagged),
    page!(GET, "/app/admin/postbacks", ADMIN, admin::dead_letters),
    page!(
        POST,
        "/app/admin/postbacks/{delivery_id}/replay",
        ADMIN,
        admin::replay
    ),
    page!(GET, "/app/admin/payouts", ADMIN, admin::payouts),
    page!(POST, "/app/admin/payouts/run", ADMIN, admin::run_payouts),
    page!(
        POST,
        crate::http::ACH_RETURNS_FORM_PATH,
        ADMIN,
        admin::record_ach_returns
    ),
    page!(
        GET,
        "/app/admin/payouts/{run_id}/ach",
        ADMIN,
        admin::ach_file
    ),
    page!(
        POST,
        "/app/admin/payouts/{payout_id}/retry",
        ADMIN,
        admin::retry_payout
    ),
    page!(
        POST,
        "/app/admin/tax-forms",
        ADMIN,
        admin::request_tax_forms
    ),
    page!(GET, "/app/admin/privacy", ADMIN, admin::privacy),
    page!(
        POST,
        "/app/admin/policy-versions",
        ADMIN,
        admin::publish_policy
    ),
    page!(GET, "/app/admin/audit", ADMIN, admin::audit),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_two_pages_answer_the_same_method_and_path_nor_shadow_the_api() {
        let mut seen = std::collections::BTreeSet::new();
        for page in PAGES {
            assert!(
                super::super::serves(page.path),
                "{} is outside the dashboard",
                page.path
            );
            for method in page.methods {
                assert!(
                    seen.insert((*method, page.path)),
                    "{method} {} twice",
                    page.path
                );
            }
        }
    }
}
