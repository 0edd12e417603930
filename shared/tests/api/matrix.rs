//! The authorization matrix, generated from the route table: every route × every kind of
//! caller. Anonymous callers get 401 from every non-public route; a role the route does not
//! admit gets 403; another tenant gets 403 or 404 for the first tenant's resources and never
//! sees them in a listing.

use serde_json::{Value, json};
use shared::caller::Access;
use shared::domain::accounts::Role;
use shared::ports::Clock;
use shared::routes::{ROUTES, Route};

use super::{EVERYONE, PASSWORD, Who, World, body, field, offer_body};

#[derive(Debug, PartialEq)]
enum Expect {
    /// A public route: whatever it answers, it is not an authentication or role refusal.
    Reachable,
    Unauthenticated,
    Forbidden,
    /// Another tenant's resource: 403 or 404.
    Hidden,
    /// Success, and none of these ids in the answer.
    Ok(Vec<String>),
}

fn role(who: Who) -> Option<Role> {
    match who {
        Who::Anonymous => None,
        Who::Admin => Some(Role::Admin),
        Who::Advertiser | Who::OtherAdvertiser => Some(Role::Advertiser),
        Who::Affiliate | Who::OtherAffiliate => Some(Role::Affiliate),
    }
}

fn expectation(world: &World, route: &Route, method: &str, who: Who) -> Expect {
    let Access::Roles(roles) = route.access else {
        return Expect::Reachable;
    };
    let Some(role) = role(who) else {
        return Expect::Unauthenticated;
    };
    if !roles.contains(&role) {
        return Expect::Forbidden;
    }
    // What the caller must never see of the first tenant (advertiser X, affiliate P).
    let foreign = match who {
        Who::OtherAdvertiser => vec![
            world.offer.to_string(),
            world.fresh_offer.to_string(),
            world.conversion.clone(),
            world.link.to_string(),
        ],
        Who::OtherAffiliate => vec![world.conversion.clone(), world.link.to_string()],
        _ => vec![],
    };
    let owner = matches!(who, Who::Admin | Who::Advertiser | Who::Affiliate);
    match (method, route.path) {
        // The caller's own account, keys and password.
        (_, path) if path.starts_with("/api/auth/") => Expect::Ok(foreign),
        // Offers are a marketplace: any approved affiliate may look at and apply to an active one.
        ("POST", "/api/offers/{offer_id}/applications") | ("GET", "/api/offers/{offer_id}")
            if role == Role::Affiliate =>
        {
            Expect::Ok(vec![])
        }
        // Answered per id: an id the caller sent comes back with "no such conversion", nothing
        // of the conversion itself.
        ("POST", "/api/conversions/status") if !owner => Expect::Reachable,
        // The world has made no payouts: every caller allowed in gets 404 (tests/payouts.rs
        // tries real ones).
        (_, path) if path.contains("{payout_id}") || path.contains("{run_id}") => Expect::Reachable,
        // No forms filed and no exports made in the world: 404 for everyone allowed in
        // (tests/tax.rs and tests/privacy.rs try real ones).
        (_, path)
            if path.contains("{year}")
                || path.contains("{request_id}")
                || path.contains("{call_sid}") =>
        {
            Expect::Reachable
        }
        // A number for an offer the other advertiser does not have.
        ("POST", "/api/numbers") if !owner => Expect::Hidden,
        // A link for an offer the other affiliate is not approved for.
        ("POST", "/api/links") if !owner => Expect::Hidden,
        (_, path) if path.contains('{') && !owner => Expect::Hidden,
        _ => Expect::Ok(foreign),
    }
}

/// The concrete request for a route: path parameters from the world, and a body that an
/// authorised caller's request succeeds with.
pub async fn request(
    world: &World,
    route: &Route,
    method: &str,
    who: Who,
) -> (String, Option<Value>) {
    let mut path = route.path.to_string();
    let offer = if route.path == "/api/offers/{offer_id}/applications" && method == "POST" {
        world.fresh_offer
    } else {
        world.offer
    };
    path = path.replace("{offer_id}", &offer.to_string());
    path = path.replace(
        "{affiliate_id}",
        &world.affiliate_id(Who::Affiliate).to_string(),
    );
    path = path.replace(
        "{account_id}",
        &world.account(Who::Advertiser).id.to_string(),
    );
    path = path.replace("{link}", world.link.as_str());
    path = path.replace("{delivery_id}", &world.dead_letter);
    path = path.replace("{id}", &world.conversion);
    path = path.replace("{payout_id}", "2026-01-01:01ARZ3NDEKTSV4RRFFQ69G5FAV:USD");
    path = path.replace("{year}", "2025");
    path = path.replace("{run_id}", "2026-01-01");
    path = path.replace("{request_id}", "01ARZ3NDEKTSV4RRFFQ69G5FAV");
    if path.contains("{key_id}") {
        // The caller's own spare key (anonymous callers name a made-up one).
        let id = match world.key(who) {
            Some(_) => {
                let created = world
                    .send(
                        who,
                        "POST",
                        "/api/auth/api-keys",
                        Some(json!({ "name": "spare" })),
                    )
                    .await;
                body(&created)["key"]["id"]
                    .as_str()
                    .unwrap_or("01ARZ3NDEKTSV4RRFFQ69G5FAV")
                    .to_string()
            }
            None => "01ARZ3NDEKTSV4RRFFQ69G5FAV".to_string(),
        };
        path = path.replace("{key_id}", &id);
    }
    match (method, route.path) {
        ("GET", "/api/auth/verify-email") => path.push_str("?token=not-a-token"),
        ("GET", "/api/payouts") if who == Who::Admin => path.push_str(&format!(
            "?affiliate_id={}",
            world.affiliate_id(Who::Affiliate)
        )),
        ("GET", "/api/conversions" | "/api/numbers" | "/api/calls") if who == Who::Admin => path
            .push_str(&format!(
                "?advertiser_id={}",
                world.advertiser_id(Who::Advertiser)
            )),
        ("GET" | "POST", "/postback") => {
            path.push_str("?click_id=01ARZ3NDEKTSV4RRFFQ69G5FAV&token=x")
        }
        _ => {}
    }
    let unique = format!("{who:?}-{}", world.clock.new_id()).to_lowercase();
    let body = match (method, route.path) {
        ("POST", "/api/auth/register") => Some(
            json!({ "email": format!("{unique}@new.test"), "name": "New", "password": PASSWORD, "role": "affiliate", "adult": true }),
        ),
        ("POST", "/api/auth/sign-in") => Some(
            json!({ "email": world.account(Who::Advertiser).email.as_str(), "password": PASSWORD }),
        ),
        ("POST", "/api/auth/password") => Some(
            json!({ "current_password": PASSWORD, "new_password": "a brand new long password" }),
        ),
        ("POST", "/api/auth/password-reset") => Some(json!({ "email": "nobody@nowhere.test" })),
        ("POST", "/api/auth/password-reset/confirm") => {
            Some(json!({ "token": "not-a-token", "new_password": "a brand new long password" }))
        }
        ("POST", "/api/auth/api-keys") => Some(json!({ "name": "ci" })),
        ("POST", "/api/offers") => {
            let mut offer = offer_body("USD");
            if who == Who::Admin {
                offer["advertiser_id"] = json!(world.account(Who::Advertiser).id.to_string());
            }
            Some(offer)
        }
        ("PATCH", "/api/offers/{offer_id}") => Some(json!({ "name": "Renamed" })),
        ("PUT", "/api/offers/{offer_id}/applications/{affiliate_id}") => {
            Some(json!({ "status": "approved" }))
        }
        ("PUT", "/api/offers/{offer_id}/postback-url") => {
            Some(json!({ "url": "https://publisher.test/pb?c={click_id}" }))
        }
        ("POST", "/api/links") => {
            Some(json!({ "offer_id": world.offer.to_string(), "sub1": "spring" }))
        }
        ("PUT", "/api/admin/accounts/{account_id}/status") => Some(json!({ "status": "active" })),
        ("PUT", "/api/conversions/{id}/status") => {
            Some(json!({ "status": "approved", "reason": "matches an order" }))
        }
        ("PUT", "/api/tax/profile") => Some(json!({
            "status": "us", "legal_name": "Pat Publisher", "classification": "individual",
            "tin_type": "ssn", "tin": "123-45-6789", "signed_name": "Pat Publisher", "certify": true,
            "address": {"line1": "1 Main St", "city": "Springfield", "state": "IL", "zip": "62701"}
        })),
        ("PUT", "/api/payouts/method") => Some(json!({
            "type": "ach", "routing_number": "021000021", "account_number": "000123456789",
            "account_type": "checking", "name_on_account": "Pat Publisher"
        })),
        ("PATCH", "/api/auth/me") => Some(json!({ "name": "Corrected Name" })),
        ("POST", "/api/privacy/erasure") => Some(json!({ "password": PASSWORD })),
        ("POST", "/api/privacy/policy-acknowledgement") => Some(json!({ "version": "2026-01" })),
        ("POST", "/api/admin/policy-versions") => {
            Some(json!({ "version": unique, "summary": "We now keep call recordings." }))
        }
        ("POST", "/api/admin/tax-forms") => Some(json!({ "year": 2025 })),
        ("POST", "/api/numbers") => {
            let digits: String = unique
                .bytes()
                .rev()
                .map(|b| char::from(b'0' + b % 10))
                .take(7)
                .collect();
            Some(json!({ "number": format!("+1415{digits}"), "offer_id": world.offer.to_string() }))
        }
        ("POST", "/api/offers/{offer_id}/test-conversions") => Some(json!({ "amount": "12.00" })),
        ("PUT", "/api/offers/{offer_id}/calls") => Some(json!({ "destination": "+14155550100" })),
        ("POST", "/api/conversions/status") => {
            Some(json!({ "ids": [world.conversion], "status": "approved" }))
        }
        (_, "/postback") if method == "POST" => None,
        _ => None,
    };
    (path, body)
}

#[tokio::test]
async fn every_route_admits_exactly_who_it_should() {
    let document = shared::routes::openapi::document();
    let mut undocumented = Vec::new();
    let mut checked = 0;
    for route in ROUTES {
        for method in route.methods {
            // A fresh world per route: one route's writes cannot change another's answer.
            let world = World::new().await;
            for who in EVERYONE {
                let expect = expectation(&world, route, method, who);
                let (path, json) = request(&world, route, method, who).await;
                let response = world.send(who, method, &path, json).await;
                let status = response.status().as_u16();
                let context = format!(
                    "{method} {path} as {who:?}: expected {expect:?}, got {status} {}",
                    body(&response)
                );
                assert!(status < 500, "{context}");
                // A success is one the API's document names for the operation.
                let documented = &document["paths"][route.path][method.to_lowercase()]["responses"];
                if status < 400 && documented.get(status.to_string()).is_none() {
                    undocumented.push(format!(
                        "{method} {} answered {status}; the document names {:?}",
                        route.path,
                        documented.as_object().map(|o| o.keys().collect::<Vec<_>>())
                    ));
                }
                match &expect {
                    Expect::Reachable => {
                        assert!(
                            !(status == 401
                                && ["session", "authorization"]
                                    .contains(&field(&response).as_str())),
                            "{context}"
                        );
                        assert!(!(status == 403 && field(&response) == "role"), "{context}");
                    }
                    Expect::Unauthenticated => assert_eq!(
                        (status, field(&response).as_str()),
                        (401, "session"),
                        "{context}"
                    ),
                    Expect::Forbidden => assert_eq!(
                        (status, field(&response).as_str()),
                        (403, "role"),
                        "{context}"
                    ),
                    Expect::Hidden => assert!(status == 403 || status == 404, "{context}"),
                    Expect::Ok(foreign) => {
                        assert!(![401, 403, 404].contains(&status), "{context}");
                        let text = String::from_utf8_lossy(response.body().as_ref()).into_owned();
                        for id in foreign {
                            assert!(
                                !text.contains(id.as_str()),
                                "{context}: shows the other tenant's {id}"
                            );
                        }
                        if role(who) == Some(Role::Affiliate) {
                            assert!(
                                !text.contains("postback_secret") && !text.contains("\"revenue\""),
                                "{context}: affiliates never see what advertisers pay"
                            );
                        }
                        if role(who) == Some(Role::Advertiser) {
                            assert!(
                                !text.contains("\"payout\":\""),
                                "{context}: advertisers never see affiliates' earnings per conversion"
                            );
                        }
                    }
                }
                checked += 1;
            }
        }
    }
    let expected: usize = ROUTES.iter().map(|r| r.methods.len()).sum::<usize>() * EVERYONE.len();
    assert_eq!(
        checked, expected,
        "every route and method, for every caller"
    );
    undocumented.sort();
    undocumented.dedup();
    assert!(undocumented.is_empty(), "{}", undocumented.join("\n"));
}
