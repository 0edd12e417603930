//! Sessions, CSRF, sign-in throttling and lock-out, one-time tokens, registration rules.

use jiff::SignedDuration;
use serde_json::{Value, json};
use shared::http::Response;

use super::{PASSWORD, Who, World, body, email, field};

/// A signed-in browser: its session cookie and CSRF token.
struct Browser {
    cookie: String,
    csrf: String,
}

async fn sign_in(world: &World, address: &str, password: &str) -> Response {
    world
        .raw(
            "POST",
            "/api/auth/sign-in",
            &[],
            Some(json!({ "email": address, "password": password }).to_string()),
        )
        .await
}

async fn browser(world: &World, who: Who) -> Browser {
    let response = sign_in(world, world.account(who).email.as_str(), PASSWORD).await;
    assert_eq!(response.status(), 200, "{:?}", body(&response));
    let set_cookie = response.headers()["set-cookie"].to_str().unwrap();
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    Browser {
        cookie,
        csrf: body(&response)["csrf_token"].as_str().unwrap().to_string(),
    }
}

impl Browser {
    async fn send(
        &self,
        world: &World,
        method: &str,
        uri: &str,
        json: Option<serde_json::Value>,
        csrf: Option<&str>,
    ) -> Response {
        let mut headers = vec![("cookie".to_string(), self.cookie.clone())];
        if let Some(token) = csrf {
            headers.push(("x-csrf-token".to_string(), token.to_string()));
        }
        world
            .raw(method, uri, &headers, json.map(|j| j.to_string()))
            .await
    }
}

/// The last mail's one-time token (the 43 URL-safe characters after `marker`).
fn token_after(mail: &str, marker: &str) -> String {
    let start = mail
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} in {mail}"))
        + marker.len();
    mail[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

#[tokio::test]
async fn the_session_cookie_is_host_only_secure_httponly_and_lax() {
    let world = World::new().await;
    let response = sign_in(
        &world,
        world.account(Who::Advertiser).email.as_str(),
        PASSWORD,
    )
    .await;
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("__Host-session="), "{cookie}");
    for attribute in [
        "Path=/",
        "Secure",
        "HttpOnly",
        "SameSite=Lax",
        "Max-Age=43200",
    ] {
        assert!(cookie.contains(attribute), "{cookie} has {attribute}");
    }
    assert!(
        !cookie.to_lowercase().contains("domain"),
        "no Domain: {cookie}"
    );
    let token = cookie.split(['=', ';']).nth(1).unwrap();
    assert!(token.len() >= 43, "256 bits of token");
}

#[tokio::test]
async fn cookie_authenticated_writes_need_the_csrf_token() {
    let world = World::new().await;
    let browser = browser(&world, Who::Advertiser).await;
    let create = |csrf| {
        browser.send(
            &world,
            "POST",
            "/api/auth/api-keys",
            Some(json!({ "name": "k" })),
            csrf,
        )
    };
    for csrf in [None, Some("wrong")] {
        let refused = create(csrf).await;
        assert_eq!(
            (refused.status().as_u16(), field(&refused).as_str()),
            (403, "x-csrf-token")
        );
    }
    assert!(
        world
            .app
            .store
            .api_keys_of(world.account(Who::Advertiser).id)
            .await
            .unwrap()
            .len()
            == 1,
        "nothing created"
    );
    assert_eq!(create(Some(&browser.csrf)).await.status(), 201);
    assert_eq!(
        browser
            .send(&world, "GET", "/api/auth/me", None, None)
            .await
            .status(),
        200,
        "reads need no token"
    );
}

#[tokio::test]
async fn sessions_expire_when_idle_and_absolutely() {
    let world = World::new().await;
    let browser = browser(&world, Who::Affiliate).await;
    let me = || browser.send(&world, "GET", "/api/auth/me", None, None);
    // Used every 20 minutes, a session lives until its absolute end, 12 hours after sign-in.
    for _ in 0..35 {
        world.clock.advance(SignedDuration::from_mins(20));
        assert_eq!(me().await.status(), 200);
    }
    world.clock.advance(SignedDuration::from_mins(20)); // 12 h 0 min
    assert_eq!(me().await.status(), 401, "absolute expiry");

    let idle = browser_after_sign_in(&world).await;
    world.clock.advance(SignedDuration::from_mins(31));
    let answer = idle.send(&world, "GET", "/api/auth/me", None, None).await;
    assert_eq!(
        (answer.status().as_u16(), field(&answer).as_str()),
        (401, "session"),
        "idle expiry"
    );
}

async fn browser_after_sign_in(world: &World) -> Browser {
    browser(world, Who::Advertiser).await
}

#[tokio::test]
async fn sign_out_and_password_change_revoke_sessions() {
    let world = World::new().await;
    let first = browser(&world, Who::Advertiser).await;
    let second = browser(&world, Who::Advertiser).await;
    let out = first
        .send(
            &world,
            "POST",
            "/api/auth/sign-out",
            None,
            Some(&first.csrf),
        )
        .await;
    assert_eq!(out.status(), 204);
    assert!(
        out.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(
        first
            .send(&world, "GET", "/api/auth/me", None, None)
            .await
            .status(),
        401
    );
    assert_eq!(
        second
            .send(&world, "GET", "/api/auth/me", None, None)
            .await
            .status(),
        200,
        "only that session ended"
    );

    let change =
        json!({ "current_password": PASSWORD, "new_password": "an entirely new passphrase" });
    let changed = second
        .send(
            &world,
            "POST",
            "/api/auth/password",
            Some(change),
            Some(&second.csrf),
        )
        .await;
    assert_eq!(changed.status(), 200);
    assert_eq!(
        second
            .send(&world, "GET", "/api/auth/me", None, None)
            .await
            .status(),
        401,
        "old sessions end"
    );
    let new_cookie = changed.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let renewed = Browser {
        cookie: new_cookie,
        csrf: body(&changed)["csrf_token"].as_str().unwrap().into(),
    };
    assert_eq!(
        renewed
            .send(&world, "GET", "/api/auth/me", None, None)
            .await
            .status(),
        200,
        "the new one works"
    );
    let address = world.account(Who::Advertiser).email.as_str().to_string();
    assert_eq!(sign_in(&world, &address, PASSWORD).await.status(), 401);
    assert_eq!(
        sign_in(&world, &address, "an entirely new passphrase")
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn repeated_failures_lock_the_email_then_release_it() {
    let world = World::new().await;
    let address = world.account(Who::Affiliate).email.as_str().to_string();
    for attempt in 1..=4 {
        let failed = sign_in(&world, &address, "wrong password!").await;
        assert_eq!(
            (failed.status().as_u16(), field(&failed).as_str()),
            (401, "credentials"),
            "attempt {attempt}"
        );
    }
    let locked = sign_in(&world, &address, "wrong password!").await;
    assert_eq!(
        (locked.status().as_u16(), field(&locked).as_str()),
        (429, "email"),
        "the fifth failure locks"
    );
    assert_eq!(
        sign_in(&world, &address, PASSWORD).await.status(),
        429,
        "even the right password waits"
    );

    let accounts = world
        .send(Who::Admin, "GET", "/api/admin/accounts", None)
        .await;
    let listed = body(&accounts)["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["email"] == address.as_str())
        .unwrap()
        .clone();
    assert!(
        listed["locked_until"].is_string(),
        "admins see the lock: {listed}"
    );

    world.clock.advance(SignedDuration::from_mins(16));
    assert_eq!(
        sign_in(&world, &address, PASSWORD).await.status(),
        200,
        "the lock ends"
    );
    let audit = world
        .send(Who::Admin, "GET", "/api/admin/audit", None)
        .await;
    let actions: Vec<String> = body(&audit)["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    assert!(
        actions.contains(&"sign_in.failed".to_string())
            && actions.contains(&"sign_in.succeeded".to_string())
    );
}

/// Guesses sent all at once: each is counted before its password is checked, so no more than
/// the limit are checked, and a right password sent after them is refused with them.
#[tokio::test]
async fn parallel_guesses_cannot_pass_the_lock() {
    let world = World::new().await;
    let address = world.account(Who::Affiliate).email.as_str().to_string();
    let failures_checked = || async {
        let audit = world
            .send(Who::Admin, "GET", "/api/admin/audit", None)
            .await;
        body(&audit)["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "sign_in.failed")
            .count()
    };
    let burst = || {
        futures_util::future::join_all(
            (0..30).map(|_| sign_in(&world, &address, "wrong password!")),
        )
    };
    let answers = burst().await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.status().as_u16()).collect();
    assert_eq!(
        failures_checked().await,
        5,
        "only the limit's guesses were checked"
    );
    // Every answer is a refusal: a wrong password (401), or the lock (429). The guess that
    // reaches a limit is answered with the lock; with two limits counted at once (the email's
    // and the client's), which guesses those are depends on how the burst interleaves.
    let wrong = statuses.iter().filter(|s| **s == 401).count();
    assert!((3..=4).contains(&wrong), "{statuses:?}");
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        30 - wrong,
        "{statuses:?}"
    );

    // A window later, another burst; the right password sent once it is over waits with it.
    // (Sent within the burst, it could be counted among the limit's first guesses, and those
    // are checked: that would be a right password within the limit, not one past it.)
    world.clock.advance(SignedDuration::from_mins(16));
    burst().await;
    assert_eq!(
        sign_in(&world, &address, PASSWORD).await.status(),
        429,
        "the right password after thirty guesses waits with them"
    );
    assert_eq!(failures_checked().await, 10);
}

#[tokio::test]
async fn unknown_emails_are_throttled_too_and_answer_like_wrong_passwords() {
    let world = World::new().await;
    let unknown = sign_in(&world, "nobody@nowhere.test", "whatever password").await;
    let wrong = sign_in(
        &world,
        world.account(Who::Admin).email.as_str(),
        "whatever password",
    )
    .await;
    assert_eq!(unknown.status(), wrong.status());
    assert_eq!(
        body(&unknown),
        body(&wrong),
        "no difference tells whether an account exists"
    );
    // One client failing across many addresses is stopped too.
    let mut last = 0;
    for n in 0..25 {
        last = sign_in(
            &world,
            &format!("guess{n}@nowhere.test"),
            "whatever password",
        )
        .await
        .status()
        .as_u16();
    }
    assert_eq!(last, 429);
}

#[tokio::test]
async fn reset_codes_work_once_and_expire() {
    let world = World::new().await;
    let address = world.account(Who::Advertiser).email.as_str().to_string();
    let request = || {
        world.raw(
            "POST",
            "/api/auth/password-reset",
            &[],
            Some(json!({ "email": &address }).to_string()),
        )
    };
    assert_eq!(request().await.status(), 202);
    let code = token_after(world.mail().last().unwrap(), "(it works once):\n\n");
    let world = &world;
    let confirm = |code: String, password: &str| {
        let body = json!({ "token": code, "new_password": password }).to_string();
        async move {
            world
                .raw("POST", "/api/auth/password-reset/confirm", &[], Some(body))
                .await
        }
    };
    assert_eq!(
        confirm(code.clone(), "reset passphrase one").await.status(),
        204
    );
    let reused = confirm(code, "reset passphrase two").await;
    assert_eq!(
        (reused.status().as_u16(), field(&reused).as_str()),
        (400, "token"),
        "single use"
    );
    assert_eq!(
        sign_in(world, &address, "reset passphrase one")
            .await
            .status(),
        200
    );

    assert_eq!(request().await.status(), 202);
    let late = token_after(world.mail().last().unwrap(), "(it works once):\n\n");
    world.clock.advance(SignedDuration::from_mins(61));
    assert_eq!(
        confirm(late, "reset passphrase three").await.status(),
        400,
        "expired after an hour"
    );
    let before = world.mail().len();
    let unknown = world
        .raw(
            "POST",
            "/api/auth/password-reset",
            &[],
            Some(json!({ "email": "x@nowhere.test" }).to_string()),
        )
        .await;
    assert_eq!(
        unknown.status(),
        202,
        "the same answer for unknown addresses"
    );
    assert_eq!(world.mail().len(), before, "and no mail");
}

fn registration(address: &str, extra: serde_json::Value) -> String {
    let mut body = json!({ "email": address, "name": "Ann Publisher", "password": PASSWORD, "role": "affiliate" });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    body.to_string()
}

#[tokio::test]
async fn minors_are_refused_and_nothing_is_kept() {
    let world = World::new().await;
    let seventeen = jiff::tz::Offset::UTC
        .to_datetime(shared::ports::Clock::now(&*world.clock))
        .date()
        .saturating_sub(jiff::Span::new().years(17));
    let refused = world
        .raw(
            "POST",
            "/api/auth/register",
            &[],
            Some(registration(
                "kid@school.test",
                json!({ "date_of_birth": seventeen.to_string() }),
            )),
        )
        .await;
    assert_eq!(
        (refused.status().as_u16(), field(&refused).as_str()),
        (422, "date_of_birth")
    );
    let unattested = world
        .raw(
            "POST",
            "/api/auth/register",
            &[],
            Some(registration("kid@school.test", json!({ "adult": false }))),
        )
        .await;
    assert_eq!(
        (unattested.status().as_u16(), field(&unattested).as_str()),
        (422, "adult")
    );
    assert!(
        world
            .app
            .store
            .account_by_email(&email("kid@school.test"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(world.mail().is_empty(), "no mail either");
}

#[tokio::test]
async fn registration_folds_email_case_tells_nobody_which_emails_exist_and_waits_for_approval() {
    let world = World::new().await;
    let created = world
        .raw(
            "POST",
            "/api/auth/register",
            &[],
            Some(registration(" Ann@Example.COM ", json!({ "adult": true }))),
        )
        .await;
    assert_eq!(created.status(), 201, "{:?}", body(&created));
    assert_eq!(body(&created)["email"], "ann@example.com");
    assert_eq!(body(&created)["status"], "pending_approval");
    // The address has an account now: registering it again is answered as a new address is
    // (the same status, the same fields, an id that names nothing), changes nothing, and tells
    // the owner by mail, once a day however often it is tried.
    let fresh = world
        .raw(
            "POST",
            "/api/auth/register",
            &[],
            Some(registration("bob@example.com", json!({ "adult": true }))),
        )
        .await;
    for _ in 0..3 {
        let again = world
            .raw(
                "POST",
                "/api/auth/register",
                &[],
                Some(registration("ann@example.com", json!({ "adult": true }))),
            )
            .await;
        assert_eq!(again.status(), fresh.status());
        let (again, fresh) = (body(&again), body(&fresh));
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&again), keys(&fresh));
        assert_eq!(again["status"], fresh["status"]);
        assert_ne!(again["id"], body(&created)["id"]);
    }
    let told: Vec<String> = world
        .mail()
        .into_iter()
        .filter(|m| m.contains("To: ann@example.com") && m.contains("tried to open a new"))
        .collect();
    assert_eq!(told.len(), 1, "{told:?}");
    let phantom = world
        .send(Who::Admin, "GET", "/api/admin/accounts?limit=200", None)
        .await;
    assert_eq!(
        body(&phantom)["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["email"] == "ann@example.com")
            .count(),
        1,
        "nothing was stored for the attempts"
    );

    // The emailed link verifies the address.
    let verification = world
        .mail()
        .into_iter()
        .find(|m| m.contains("To: ann@example.com") && m.contains("verify-email?token="))
        .unwrap();
    let token = token_after(&verification, "verify-email?token=");
    let verified = world
        .raw(
            "GET",
            &format!("/api/auth/verify-email?token={token}"),
            &[],
            None,
        )
        .await;
    assert_eq!(body(&verified)["email_verified"], true);

    // Signed in (any case), but publishing waits for an admin.
    let ann = sign_in(&world, "ANN@example.com", PASSWORD).await;
    assert_eq!(ann.status(), 200);
    let csrf = body(&ann)["csrf_token"].as_str().unwrap().to_string();
    let cookie = ann.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let browser = Browser { cookie, csrf };
    let link = json!({ "offer_id": world.offer.to_string() });
    let waiting = browser
        .send(
            &world,
            "POST",
            "/api/links",
            Some(link.clone()),
            Some(&browser.csrf),
        )
        .await;
    assert_eq!(
        (waiting.status().as_u16(), field(&waiting).as_str()),
        (403, "account")
    );

    let id = body(&created)["id"].as_str().unwrap().to_string();
    let approved = world
        .send(
            Who::Admin,
            "PUT",
            &format!("/api/admin/accounts/{id}/status"),
            Some(json!({ "status": "active" })),
        )
        .await;
    assert_eq!(approved.status(), 200);
    let applied = browser
        .send(
            &world,
            "POST",
            &format!("/api/offers/{}/applications", world.offer),
            None,
            Some(&browser.csrf),
        )
        .await;
    assert_eq!(applied.status(), 201, "an approved affiliate may apply");
}

#[tokio::test]
async fn suspension_ends_sessions_and_refuses_api_keys() {
    let world = World::new().await;
    let browser = browser(&world, Who::Affiliate).await;
    let id = world.account(Who::Affiliate).id;
    let suspended = world
        .send(
            Who::Admin,
            "PUT",
            &format!("/api/admin/accounts/{id}/status"),
            Some(json!({ "status": "suspended" })),
        )
        .await;
    assert_eq!(suspended.status(), 200);
    assert_eq!(
        browser
            .send(&world, "GET", "/api/auth/me", None, None)
            .await
            .status(),
        401
    );
    let keyed = world
        .send(Who::Affiliate, "GET", "/api/auth/me", None)
        .await;
    assert_eq!(
        (keyed.status().as_u16(), field(&keyed).as_str()),
        (403, "account")
    );
    assert_eq!(
        sign_in(
            &world,
            world.account(Who::Affiliate).email.as_str(),
            PASSWORD
        )
        .await
        .status(),
        403
    );
}

#[tokio::test]
async fn api_keys_are_shown_once_stored_hashed_and_revocable() {
    let world = World::new().await;
    let created = world
        .send(
            Who::Advertiser,
            "POST",
            "/api/auth/api-keys",
            Some(json!({ "name": "warehouse" })),
        )
        .await;
    let secret = body(&created)["secret"].as_str().unwrap().to_string();
    let id = body(&created)["key"]["id"].as_str().unwrap().to_string();
    let listed = world
        .send(Who::Advertiser, "GET", "/api/auth/api-keys", None)
        .await;
    assert!(
        !String::from_utf8_lossy(listed.body().as_ref()).contains(&secret),
        "listing never shows a key"
    );
    let headers = [("authorization".to_string(), format!("Bearer {secret}"))];
    assert_eq!(
        world
            .raw("GET", "/api/auth/me", &headers, None)
            .await
            .status(),
        200
    );
    let other = world
        .send(
            Who::OtherAdvertiser,
            "DELETE",
            &format!("/api/auth/api-keys/{id}"),
            None,
        )
        .await;
    assert_eq!(other.status(), 404, "another account cannot revoke it");
    assert_eq!(
        world
            .send(
                Who::Advertiser,
                "DELETE",
                &format!("/api/auth/api-keys/{id}"),
                None
            )
            .await
            .status(),
        204
    );
    let revoked = world.raw("GET", "/api/auth/me", &headers, None).await;
    assert_eq!(
        (revoked.status().as_u16(), field(&revoked).as_str()),
        (401, "authorization")
    );
    for file in walk(world.data.path()) {
        let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
        assert!(
            !text.contains(&secret),
            "{} holds the key in clear",
            file.display()
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flat_map(|e| {
            let path = e.unwrap().path();
            if path.is_dir() {
                walk(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}
