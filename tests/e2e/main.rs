//! End to end: the real `leadsrefer` binary, started on an ephemeral port with a fresh data
//! folder, driven over HTTP as an integrator would drive it.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use shared::App;
use shared::adapters::aws::{AwsSettings, sdk_config};
use shared::contract::emulator;
use shared::domain::email::EmailAddress;
use shared::domain::ledger::Account;
use shared::domain::money::Currency;
use shared::ports::SystemClock;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// The fake Twilio and Twilio's own webhook signer, shared with the in-process call tests.
#[path = "../../shared/tests/support/twilio.rs"]
#[allow(dead_code)]
mod twilio;

/// Where a runner keeps its data.
enum Backend {
    Embedded(tempfile::TempDir),
    Aws(AwsSettings),
}

const SENDER: &str = "no-reply@leadsrefer.test";

impl Backend {
    fn embedded() -> Self {
        Self::Embedded(tempfile::tempdir().unwrap())
    }

    /// Fresh resources on the emulator that infra/test started.
    async fn aws() -> Self {
        emulator::endpoint();
        Self::Aws(emulator::provision(&sdk_config().await, "e2e", SENDER).await)
    }

    fn configure(&self, command: &mut Command) {
        // Each test counts what it made itself: no generated demo traffic.
        command
            .env("LEADSREFER_MAIL_FROM", SENDER)
            .env("LEADSREFER_NO_DEMO_HISTORY", "true");
        match self {
            Self::Embedded(data) => {
                command.arg("--data").arg(data.path());
            }
            Self::Aws(settings) => {
                command
                    .args(["--backend", "aws"])
                    // The tests try the demo on the emulator: asked for, as a deployment must.
                    .env("LEADSREFER_DEMO", "true")
                    .env("LEADSREFER_TABLE", &settings.table)
                    .env("LEADSREFER_BUCKET", &settings.bucket)
                    .env("LEADSREFER_KMS_KEY_ID", &settings.kms_key_id)
                    .env("LEADSREFER_S3_PATH_STYLE", "true")
                    .env(
                        "LEADSREFER_IP_HASH_KEY",
                        hex::encode(settings.ip_hash_key.expose()),
                    );
            }
        }
    }

    /// The application on the same data, as the runner opens it.
    async fn open(&self) -> App {
        let sender = EmailAddress::parse(SENDER).unwrap();
        match self {
            Self::Embedded(data) => {
                App::embedded(data.path(), Arc::new(SystemClock), sender).unwrap()
            }
            Self::Aws(settings) => App::aws(settings, Arc::new(SystemClock), sender)
                .await
                .unwrap(),
        }
    }
}

/// A running local runner and what it printed at start.
struct Runner {
    child: Child,
    /// Everything the runner logged (stderr), when started with logs captured.
    logs: Arc<std::sync::Mutex<String>>,
    base: String,
    tracking_url: String,
    postback_template: String,
    banner: String,
}

impl Runner {
    async fn start(backend: &Backend) -> Self {
        Self::start_logging(backend, "warn").await
    }

    /// Starts a runner logging at `level`, every log line kept in `logs`.
    async fn start_logging(backend: &Backend, level: &str) -> Self {
        Self::start_with(backend, level, &[]).await
    }

    /// As [`Runner::start_logging`], with more environment variables.
    async fn start_with(backend: &Backend, level: &str, env: &[(&str, &str)]) -> Self {
        Self::start_limited(backend, level, env, None).await
    }

    /// As [`Runner::start_with`], under a limit of `descriptors` open files if given (what
    /// `ulimit -n` sets).
    async fn start_limited(
        backend: &Backend,
        level: &str,
        env: &[(&str, &str)],
        descriptors: Option<u64>,
    ) -> Self {
        let mut command = Command::new(runner_binary());
        command.args(["serve", "--addr", "127.0.0.1:0"]);
        command.envs(env.iter().copied());
        if let Some(descriptors) = descriptors {
            // SAFETY: between fork and exec only setrlimit runs, which is async-signal-safe.
            unsafe {
                command.pre_exec(move || {
                    let limit = libc::rlimit {
                        rlim_cur: descriptors,
                        rlim_max: descriptors,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        backend.configure(&mut command);
        let mut child = command
            .env("RUST_LOG", level)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the leadsrefer binary starts");
        let logs = Arc::new(std::sync::Mutex::new(String::new()));
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = logs.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stderr.next_line().await {
                let mut logs = sink.lock().unwrap();
                logs.push_str(&line);
                logs.push('\n');
            }
        });
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut banner = String::new();
        let read_banner = async {
            while let Some(line) = lines.next_line().await.unwrap() {
                banner.push_str(&line);
                banner.push('\n');
                if line.starts_with("Press Ctrl-C") {
                    break;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), read_banner)
            .await
            .expect("the runner starts within 30 s");
        // Keep draining stdout so the runner never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let field = |prefix: &str| {
            banner
                .lines()
                .find_map(|l| l.trim().strip_prefix(prefix))
                .unwrap_or_else(|| panic!("the banner has {prefix:?}:\n{banner}"))
                .split_whitespace()
                .next()
                .unwrap()
                .to_string()
        };
        let base = field("LeadsRefer is running at");
        let tracking_url = field("tracking link:");
        let postback_template = field("postback:");
        Self {
            child,
            logs,
            base,
            tracking_url,
            postback_template,
            banner,
        }
    }

    /// Kills the runner outright (`kill -9`: a crash, a power cut as the process sees it).
    async fn kill(mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }

    /// Sends `signal` and waits for a clean exit.
    async fn stop_with(mut self, signal: &str) {
        let pid = self.child.id().unwrap().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .await
            .unwrap();
        assert!(sent.success());
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("the runner stops within 20 s")
            .unwrap();
        assert!(
            status.success(),
            "a {signal} shutdown exits 0, not {status}"
        );
    }
}

/// The runner the tests start: the build under test, or `LEADSREFER_TEST_RUNNER` (such as
/// `target/release/leadsrefer`, to crash it under the load only an optimised build makes).
fn runner_binary() -> String {
    std::env::var("LEADSREFER_TEST_RUNNER")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_leadsrefer").to_string())
}

fn client() -> reqwest::Client {
    shared::outbound::install_crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Follows a tracking link; answers the click id in the redirect.
async fn click(url: &str) -> String {
    let response = client().get(url).send().await.unwrap();
    assert_eq!(response.status(), 302);
    let location = response.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with("https://shop.example.com/welcome?clickid="),
        "{location}"
    );
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    let click_id = location
        .split("clickid=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_string();
    assert!(
        cookie.contains(&format!("={click_id};")),
        "the cookie holds the click id: {cookie}"
    );
    assert!(cookie.contains("HttpOnly") && cookie.contains("Secure"));
    click_id
}

async fn postback(url: &str) -> (u16, Value) {
    let response = client().get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Opens the runner's data as the runner does, once it has stopped: the demo offer's
/// conversions and the sum of every balance they touched (zero when the ledger balances).
async fn recorded(backend: &Backend) -> (usize, i64) {
    let app = backend.open().await;
    let demo = shared::seed::demo(&app).await.unwrap().unwrap();
    let conversions = app
        .store
        .conversions_of_offer(demo.advertiser_id, demo.offer_id)
        .await
        .unwrap()
        .len();
    let usd = Currency::parse("USD").unwrap();
    let mut sum = 0;
    for account in [
        Account::advertiser_receivable(demo.advertiser_id),
        Account::affiliate_pending(demo.affiliate_id),
        Account::platform_margin(),
    ] {
        let balance = app.store.balance(&account, usd).await.unwrap();
        assert_eq!(
            balance,
            app.store.balance_from_entries(&account, usd).await.unwrap()
        );
        sum += balance;
    }
    (conversions, sum)
}

#[tokio::test]
async fn the_core_loop_runs_over_http_and_survives_a_restart() {
    core_loop(Backend::embedded()).await;
}

#[tokio::test]
async fn the_core_loop_runs_on_the_aws_adapters() {
    core_loop(Backend::aws().await).await;
}

/// `serve --backend aws` on a deployment's table seeds no demo unless asked (`--demo`): its
/// accounts would be live, with passwords the banner printed.
#[tokio::test]
async fn a_deployment_gets_no_demo_unless_asked() {
    let backend = Backend::aws().await;
    let mut command = Command::new(runner_binary());
    command.args(["serve", "--addr", "127.0.0.1:0"]);
    backend.configure(&mut command);
    let mut child = command
        .env("LEADSREFER_DEMO", "false")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the leadsrefer binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = String::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            banner.push_str(&line);
            banner.push('\n');
            if line.starts_with("Press Ctrl-C") {
                break;
            }
        }
    })
    .await
    .expect("the runner starts within 30 s");
    child.kill().await.unwrap();
    assert!(banner.contains("No demo on this backend"), "{banner}");
    assert!(!banner.contains("demo.leadsrefer.local"), "{banner}");
    let app = backend.open().await;
    assert!(shared::seed::demo(&app).await.unwrap().is_none());
    let admin = EmailAddress::parse("admin@demo.leadsrefer.local").unwrap();
    assert!(app.store.account_by_email(&admin).await.unwrap().is_none());
}

async fn core_loop(backend: Backend) {
    let runner = Runner::start(&backend).await;
    assert!(runner.banner.contains("Seeded a demo"), "{}", runner.banner);

    let click_id = click(&runner.tracking_url).await;
    let url = runner.postback_template.replace("{click_id}", &click_id);
    let (status, first) = postback(&url).await;
    assert_eq!(
        (status, &first["duplicate"]),
        (201, &Value::Bool(false)),
        "{first}"
    );

    let mut repeats = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let url = url.clone();
        repeats.spawn(async move { postback(&url).await });
    }
    for (status, answer) in &repeats.join_all().await {
        assert_eq!(*status, 200);
        assert_eq!(answer["duplicate"], true);
        assert_eq!(answer["conversion"]["id"], first["conversion"]["id"]);
    }
    runner.stop_with("TERM").await;
    assert_eq!(
        recorded(&backend).await,
        (1, 0),
        "one conversion, and the ledger balances"
    );

    let again = Runner::start(&backend).await;
    assert!(
        again.banner.contains("The demo"),
        "no second seed: {}",
        again.banner
    );
    let (status, repeat) =
        postback(&again.postback_template.replace("{click_id}", &click_id)).await;
    assert_eq!(status, 200, "the data survived the restart: {repeat}");
    assert_eq!(repeat["conversion"]["id"], first["conversion"]["id"]);
    again.stop_with("INT").await;
    // As the runner left it (opening the data in process, as `recorded` does, closes it too).
    if let Backend::Embedded(data) = &backend {
        assert_owner_only(data.path());
    }
    assert_eq!(recorded(&backend).await, (1, 0));
}

/// Every file and folder the runner made in `folder` is its owner's alone.
fn assert_owner_only(folder: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{} is {:o}", path.display(), mode & 0o777);
        if path.is_dir() {
            assert_owner_only(&path);
        }
    }
}

#[tokio::test]
async fn hostile_requests_get_4xx_over_http() {
    let backend = Backend::embedded();
    let runner = Runner::start(&backend).await;
    let click_id = click(&runner.tracking_url).await;
    let postback = runner.postback_template.replace("{click_id}", &click_id);

    // 100 KB of parameters: more than an http::Uri (and so any Rust client) can hold, so sent raw.
    let address = runner.base.trim_start_matches("http://").to_string();
    let huge = "x".repeat(100 * 1024);
    let path = postback.trim_start_matches(&runner.base);
    let answer = raw_request(
        &address,
        format!("GET {path}&sub1={huge} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 4"),
        "100 KB of parameters: {}",
        &answer[..answer.len().min(200)]
    );
    let path = runner.tracking_url.trim_start_matches(&runner.base);
    let answer = raw_request(
        &address,
        format!("GET {path}&sub2={huge} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 4"),
        "{}",
        &answer[..answer.len().min(200)]
    );

    let body = format!("click_id={click_id}&txn_id={}", "y".repeat(200 * 1024));
    let response = client()
        .post(format!("{}/postback", runner.base))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);

    let response = client()
        .get(format!("{}/postback?click_id=%FF&token=x", runner.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["field"], "click_id");

    // Raw, unencoded invalid UTF-8 in the request line.
    let answer = raw_request(
        &address,
        b"GET /postback?click_id=\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");

    let response = client()
        .get(format!("{}/c/NoSuchLnk1", runner.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert!(
        response.headers().get("location").is_none(),
        "an unknown link redirects nowhere"
    );
    runner.stop_with("TERM").await;
    assert_eq!(
        recorded(&backend).await.0,
        0,
        "nothing hostile was recorded"
    );
}

/// Sends raw bytes as a request and answers the response's text.
async fn raw_request(address: &str, request: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// A signed-in party of the walkthrough.
struct Party {
    cookie: String,
    csrf: String,
}

impl Party {
    async fn sign_in(base: &str, email: &str, password: &str) -> Self {
        let response = client()
            .post(format!("{base}/api/auth/sign-in"))
            .json(&serde_json::json!({ "email": email, "password": password }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{email} signs in");
        let cookie = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let body: Value = response.json().await.unwrap();
        Self {
            cookie,
            csrf: body["csrf_token"].as_str().unwrap().to_string(),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        url: String,
        json: Option<Value>,
    ) -> (u16, Value) {
        let mut request = client()
            .request(method, url)
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf);
        if let Some(json) = json {
            request = request.json(&json);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// The README's walkthrough, as a new user does it with curl: register, approval, offer,
/// application, link, click, postback; each party then sees only its own data. Debug logs are
/// captured throughout (at trace level, every crate), and no secret may appear in them.
#[tokio::test]
async fn a_new_advertiser_and_affiliate_go_from_sign_up_to_a_conversion() {
    use reqwest::Method;
    let backend = Backend::embedded();
    let runner = Runner::start_logging(&backend, "trace").await;
    let base = runner.base.clone();
    let admin_line = runner
        .banner
        .lines()
        .find(|l| l.trim_start().starts_with("admin"))
        .expect("the banner prints the admin")
        .to_string();
    let mut admin_words = admin_line.split_whitespace().skip(1);
    let (admin_email, admin_password) = (
        admin_words.next().unwrap().to_string(),
        admin_words.nth(1).unwrap().to_string(),
    );

    let password = "a long and secret passphrase";
    let mut secrets = vec![password.to_string(), admin_password.clone()];
    let mut ids = Vec::new();
    for (email, role) in [
        ("shop@brand.test", "advertiser"),
        ("pub@blog.test", "affiliate"),
    ] {
        let response = client()
            .post(format!("{base}/api/auth/register"))
            .json(&serde_json::json!({ "email": email, "name": role, "password": password, "role": role, "date_of_birth": "1990-04-17" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let account: Value = response.json().await.unwrap();
        assert_eq!(account["status"], "pending_approval");
        ids.push(account["id"].as_str().unwrap().to_string());
    }
    let admin = Party::sign_in(&base, &admin_email, &admin_password).await;
    for id in &ids {
        let (status, _) = admin
            .call(
                Method::PUT,
                format!("{base}/api/admin/accounts/{id}/status"),
                Some(serde_json::json!({ "status": "active" })),
            )
            .await;
        assert_eq!(status, 200);
    }

    let shop = Party::sign_in(&base, "shop@brand.test", password).await;
    let offer = serde_json::json!({
        "name": "Running shoes", "destination": "https://brand.test/shoes?click={click_id}&s1={sub1}",
        "currency": "USD", "revenue": { "fixed": "12.00" }, "payout": { "fixed": "8.00" }
    });
    let (status, offer) = shop
        .call(Method::POST, format!("{base}/api/offers"), Some(offer))
        .await;
    assert_eq!(status, 201, "{offer}");
    let offer_id = offer["id"].as_str().unwrap().to_string();
    let token = offer["postback_secret"].as_str().unwrap().to_string();

    let publisher = Party::sign_in(&base, "pub@blog.test", password).await;
    let (status, _) = publisher
        .call(
            Method::POST,
            format!("{base}/api/offers/{offer_id}/applications"),
            None,
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = shop
        .call(
            Method::PUT,
            format!("{base}/api/offers/{offer_id}/applications/{}", ids[1]),
            Some(serde_json::json!({ "status": "approved" })),
        )
        .await;
    assert_eq!(status, 200);
    let (status, link) = publisher
        .call(
            Method::POST,
            format!("{base}/api/links"),
            Some(serde_json::json!({ "offer_id": offer_id, "sub1": "newsletter" })),
        )
        .await;
    assert_eq!(status, 201, "{link}");

    let response = client()
        .get(link["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with("https://brand.test/shoes?click=")
            && location.ends_with("&s1=newsletter"),
        "{location}"
    );
    let click_id = location
        .split("click=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let (status, conversion) = postback(&format!(
        "{base}/postback?click_id={click_id}&txn_id=A-1&token={token}"
    ))
    .await;
    assert_eq!(status, 201, "{conversion}");

    let (_, seen_by_shop) = shop
        .call(Method::GET, format!("{base}/api/conversions"), None)
        .await;
    let (_, seen_by_publisher) = publisher
        .call(Method::GET, format!("{base}/api/conversions"), None)
        .await;
    assert_eq!(seen_by_shop["conversions"].as_array().unwrap().len(), 1);
    assert_eq!(seen_by_shop["conversions"][0]["revenue"], "12.00");
    assert!(seen_by_shop["conversions"][0].get("payout").is_none());
    assert_eq!(seen_by_publisher["conversions"][0]["payout"], "8.00");
    assert!(seen_by_publisher["conversions"][0].get("revenue").is_none());
    let (_, offers) = shop
        .call(Method::GET, format!("{base}/api/offers"), None)
        .await;
    assert_eq!(
        offers["offers"].as_array().unwrap().len(),
        1,
        "the shop sees its own offer, not the demo's"
    );

    let api_key = {
        let (status, created) = publisher
            .call(
                Method::POST,
                format!("{base}/api/auth/api-keys"),
                Some(serde_json::json!({ "name": "reporting" })),
            )
            .await;
        assert_eq!(status, 201);
        created["secret"].as_str().unwrap().to_string()
    };
    let keyed = client()
        .get(format!("{base}/api/links"))
        .bearer_auth(&api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(keyed.status(), 200);
    let openapi: Value = client()
        .get(format!("{base}/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(openapi["openapi"], "3.1.0");

    let logs = runner.logs.clone();
    runner.stop_with("TERM").await;
    secrets.extend([
        api_key,
        token,
        admin.csrf.clone(),
        shop.csrf.clone(),
        publisher.csrf.clone(),
    ]);
    for party in [&admin, &shop, &publisher] {
        secrets.push(party.cookie.split('=').nth(1).unwrap().to_string());
    }
    let logs = logs.lock().unwrap().clone();
    assert!(
        logs.lines().count() >= 15,
        "logging was on (a line per request):\n{logs}"
    );
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret reached the logs: {secret}"
        );
    }
    assert!(
        !logs.contains("127.0.0.1:"),
        "no client address in the logs"
    );
}

/// The money path on the AWS adapters (DynamoDB, KMS, S3, SES on the emulator), in process:
/// an ACH method sealed through KMS, conversions approved, a payout run that opens the account
/// number through KMS, writes the NACHA file to S3 and mails through SES; a repeat pays nothing.
#[tokio::test]
async fn the_money_path_runs_on_the_aws_adapters() {
    use shared::domain::payout::{AccountHolder, AccountType, PayoutStatus};
    use shared::lifecycle::{Decider, Decision};
    use shared::payouts::MethodInput;
    use shared::secret::Secret;
    use shared::tracking::{ClickRequest, Postback, PostbackAuth};

    let backend = Backend::aws().await;
    let app = backend.open().await;
    let (demo, _) = shared::seed::seed_demo(&app).await.unwrap();
    let affiliate = app
        .store
        .account(shared::domain::accounts::AccountId(demo.affiliate_id.0))
        .await
        .unwrap()
        .unwrap();
    shared::payouts::set_method(
        &app,
        demo.affiliate_id,
        &affiliate.email,
        MethodInput::Ach {
            routing_number: "021000021".into(),
            account_number: Secret::new("000123456789".into()),
            account_type: AccountType::Checking,
            account_holder: AccountHolder::Individual,
            name_on_account: "Pat Publisher".into(),
        },
    )
    .await
    .unwrap();
    for n in 0..3 {
        let request = ClickRequest {
            subs: Default::default(),
            ip: format!("198.51.100.{}", n + 1).parse().unwrap(),
            country: Some("US".into()),
            region: None,
            user_agent: Some(VISITOR_AGENT),
            head: false,
        };
        let click = shared::tracking::record_click(&app, &demo.link, request)
            .await
            .unwrap();
        let recorded = shared::tracking::record_conversion(
            &app,
            Postback {
                click_id: click.click.id,
                txn_id: Some(format!("AWS-{n}")),
                event: shared::domain::tracking::EventName::default_event(),
                amount: None,
                currency: None,
                auth: PostbackAuth::Token(demo.postback_token.expose().clone()),
                client_prefix: None,
            },
        )
        .await
        .unwrap();
        let shared::store::Recorded::New(conversion) = recorded else {
            panic!("a new conversion")
        };
        shared::lifecycle::decide(&app, conversion.id, Decision::Approve, None, Decider::Admin)
            .await
            .unwrap();
    }
    let period = shared::payouts::period_of(app.clock.now());
    let run = shared::payouts::run(&app, &period).await.unwrap();
    assert!(run.finished_at.is_some(), "{:?}", run.report);
    let again = shared::payouts::run(&app, &period).await.unwrap();
    assert_eq!(
        again.started_at, run.started_at,
        "a repeat answers the same run"
    );
    let payouts = app.store.payouts_of_run(&period).await.unwrap();
    assert_eq!(payouts.len(), 1);
    assert_eq!(
        (payouts[0].amount.minor, payouts[0].status),
        (5_400, PayoutStatus::Sent)
    );
    let file = app
        .blobs
        .get(&shared::ports::BlobKey::parse(format!("payouts/{period}/ach.txt")).unwrap())
        .await
        .unwrap()
        .expect("the NACHA file is in S3");
    let text = String::from_utf8(file).unwrap();
    assert!(text.lines().all(|line| line.len() == 94));
    assert!(
        text.contains("000123456789"),
        "the account number, opened through KMS"
    );
    let usd = Currency::parse("USD").unwrap();
    assert_eq!(
        app.store
            .balance(&Account::platform_cash(), usd)
            .await
            .unwrap(),
        -5_400
    );

    // A W-9's TIN, sealed through KMS: the raw DynamoDB item holds no trace of it.
    shared::tax::set_profile(
        &app,
        demo.affiliate_id,
        shared::tax::ProfileInput::W9 {
            legal_name: "Pat Publisher".into(),
            business_name: None,
            classification: shared::domain::tax::TaxClassification::Individual,
            address: shared::domain::tax::UsAddress {
                line1: "1 Main St".into(),
                line2: None,
                city: "Springfield".into(),
                state: "IL".into(),
                zip: "62701".into(),
            },
            tin_type: shared::domain::tax::TinType::Ssn,
            tin: Secret::new("123-45-6789".into()),
            signed_name: "Pat Publisher".into(),
            certify: true,
        },
    )
    .await
    .unwrap();
    let raw = app
        .table
        .get(&shared::ports::Key::new(
            format!("TAX#{}", demo.affiliate_id),
            "TAX",
        ))
        .await
        .unwrap()
        .expect("the tax profile is stored");
    let raw = serde_json::to_string(&raw).unwrap();
    assert!(
        !raw.contains("123456789") && !raw.contains("123-45-6789"),
        "{raw}"
    );
    assert!(raw.contains("\"tin_last4\":\"6789\""));

    // The 1099 filing on S3 (a $50 threshold, so that $54.00 is reported): the TIN opened
    // through KMS into the CSV, its last four only on the statement.
    let mut taxed = app.clone();
    let mut settings = shared::payouts::PayoutSettings::from_env().unwrap();
    settings.tax.thresholds = vec![(2000, 5_000)];
    taxed.payouts = Arc::new(settings);
    let year = shared::tax::tax_year(app.clock.now());
    let read = |key: String| {
        let app = app.clone();
        async move {
            let bytes = app
                .blobs
                .get(&shared::ports::BlobKey::parse(key).unwrap())
                .await
                .unwrap()
                .expect("written to S3");
            String::from_utf8(bytes).unwrap()
        }
    };
    let filing = shared::tax_forms::file_year(&taxed, year).await.unwrap();
    assert_eq!(filing.forms.len(), 1, "{:?}", filing.notes);
    let csv = read(format!("tax/{year}/1099-nec.csv")).await;
    assert!(
        csv.contains("123-45-6789") && csv.contains(",54.00,0.00,"),
        "{csv}"
    );
    let statement = read(format!("tax/{year}/statements/{}.html", demo.affiliate_id)).await;
    assert!(statement.contains("***-**-6789") && !statement.contains("123-45-6789"));

    // Erasure seals the W-9's names and address through KMS too; the filing still has them.
    shared::privacy::erase(&app, &affiliate, &demo.credentials[2].2)
        .await
        .unwrap();
    let raw = app
        .table
        .get(&shared::ports::Key::new(
            format!("TAX#{}", demo.affiliate_id),
            "TAX",
        ))
        .await
        .unwrap()
        .unwrap();
    let raw = serde_json::to_string(&raw).unwrap();
    assert!(
        !raw.contains("Pat Publisher") && !raw.contains("Springfield"),
        "{raw}"
    );
    shared::tax_forms::file_year(&taxed, year).await.unwrap();
    let csv = read(format!("tax/{year}/1099-nec.csv")).await;
    assert!(
        csv.contains("Pat Publisher,") && csv.contains("Springfield"),
        "{csv}"
    );

    // Everything the run stored, item by item and object by object: money's secrets only
    // where the README says they are kept, no password anywhere.
    let Backend::Aws(settings) = &backend else {
        unreachable!()
    };
    let stored = everything_stored(settings).await;
    money_secrets_kept_where_documented(&stored, "s3 ", "000123456789", year);
    for (_, _, password) in &demo.credentials {
        kept_only_where_documented(&stored, password.expose(), |_| false);
    }
    // Visitors are pseudonyms: neither their addresses nor their user-agents are kept.
    for n in 1..=3 {
        kept_only_where_documented(&stored, &format!("198.51.100.{n}"), |_| false);
    }
    kept_only_where_documented(&stored, VISITOR_AGENT, |_| false);
}

/// The user-agent of the money path's visitors, which nothing may keep.
const VISITOR_AGENT: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/124.0";

/// Every place (a file, an item, an object) named with its bytes: what a scan for secrets reads.
type Places = Vec<(String, Vec<u8>)>;

/// Every file under `folder`, by its path relative to it.
fn files_under(folder: &std::path::Path) -> Places {
    let mut places = Vec::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let name = path.strip_prefix(folder).unwrap().display().to_string();
                places.push((name, std::fs::read(&path).unwrap()));
            }
        }
    }
    places
}

/// Every item of the table and every object of the bucket (by `item <pk> <sk>` and
/// `s3 <key>`), read straight from the emulator.
async fn everything_stored(settings: &AwsSettings) -> Places {
    let config = sdk_config().await;
    let mut places = Vec::new();
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let mut pages = dynamodb
        .scan()
        .table_name(&settings.table)
        .into_paginator()
        .items()
        .send();
    while let Some(item) = pages.next().await {
        let item = item.unwrap();
        let key = |name: &str| {
            item.get(name)
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default()
        };
        places.push((
            format!("item {} {}", key("pk"), key("sk")),
            format!("{item:?}").into_bytes(),
        ));
    }
    let s3 = shared::adapters::aws::s3_client(&config, true);
    let listed = s3
        .list_objects_v2()
        .bucket(&settings.bucket)
        .send()
        .await
        .unwrap();
    for object in listed.contents() {
        let key = object.key().unwrap().to_string();
        let body = s3
            .get_object()
            .bucket(&settings.bucket)
            .key(&key)
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes()
            .to_vec();
        places.push((format!("s3 {key}"), body));
    }
    places
}

/// The places holding `secret`, each of which must be one the README says keeps it.
fn kept_only_where_documented(
    places: &Places,
    secret: &str,
    documented: impl Fn(&str) -> bool,
) -> Vec<String> {
    let found: Vec<String> = places
        .iter()
        .filter(|(_, bytes)| {
            bytes
                .windows(secret.len())
                .any(|window| window == secret.as_bytes())
        })
        .map(|(name, _)| name.clone())
        .collect();
    let undocumented: Vec<&String> = found.iter().filter(|name| !documented(name)).collect();
    assert!(
        undocumented.is_empty(),
        "{secret:?} is kept where the README does not say: {undocumented:?}"
    );
    found
}

/// Where the README says money's secrets are kept, checked on `places` (`root` is how a place
/// names the blob store: `blobs/` in a data folder, `s3 ` on AWS): the account number only in
/// ACH files, the TIN (123-45-6789) only in the year's 1099 file, and each found there.
fn money_secrets_kept_where_documented(
    places: &Places,
    root: &str,
    account_number: &str,
    year: impl std::fmt::Display,
) {
    let ach_file =
        |place: &str| place.starts_with(&format!("{root}payouts/")) && place.ends_with("/ach.txt");
    let filing = format!("{root}tax/{year}/1099-nec.csv");
    let ach = kept_only_where_documented(places, account_number, ach_file);
    assert!(!ach.is_empty(), "the ACH file holds the account number");
    let tin = kept_only_where_documented(places, "123-45-6789", |place| place == filing);
    assert!(!tin.is_empty(), "the 1099 file holds the TIN");
    // The TIN's digits alone: in the filing, or inside an account number that holds them.
    kept_only_where_documented(places, "123456789", |place| {
        place == filing || account_number.contains("123456789") && ach_file(place)
    });
}

/// A demo party's email and password, as the banner prints them (`role email / password`).
fn banner_sign_in(banner: &str, role: &str) -> (String, String) {
    let line = banner
        .lines()
        .find(|l| l.trim_start().starts_with(role))
        .unwrap_or_else(|| panic!("the banner prints the {role}:\n{banner}"));
    let mut words = line.split_whitespace().skip(1);
    (
        words.next().unwrap().to_string(),
        words.nth(1).unwrap().to_string(),
    )
}

/// `leadsrefer run JOB` on the backend's data, logging at trace level; answers what it
/// printed and what it logged.
async fn run_job(backend: &Backend, job: &str) -> (String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_leadsrefer"));
    command.args(["run", job]).env("RUST_LOG", "trace");
    backend.configure(&mut command);
    if matches!(backend, Backend::Aws(_)) {
        // A job on a deployment's data links its mail to the deployment.
        command.env("LEADSREFER_PUBLIC_URL", "https://track.leadsrefer.test");
    }
    let output = command.output().await.unwrap();
    let logs = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{job}: {logs}");
    (String::from_utf8(output.stdout).unwrap(), logs)
}

/// Issue 7's walkthrough, as a new user does it over HTTP on the local runner (trace logs on):
/// the affiliate certifies a W-9 and gives a bank account, is paid over the year's 1099
/// threshold, the tax-forms job files the year (CSV and statement), the affiliate reads the
/// statement, exports their data and erases the account. Neither the TIN nor the account
/// number ever reaches the logs.
#[tokio::test]
async fn an_affiliate_is_paid_over_the_threshold_gets_a_1099_exports_and_erases() {
    use reqwest::Method;
    let backend = Backend::embedded();
    let runner = Runner::start_logging(&backend, "trace").await;
    let base = runner.base.clone();
    let (admin_email, admin_password) = banner_sign_in(&runner.banner, "admin");
    let (shop_email, shop_password) = banner_sign_in(&runner.banner, "advertiser");
    let (pub_email, pub_password) = banner_sign_in(&runner.banner, "affiliate");
    let publisher = Party::sign_in(&base, &pub_email, &pub_password).await;
    let (status, profile) = publisher
        .call(
            Method::PUT,
            format!("{base}/api/tax/profile"),
            Some(serde_json::json!({
                "status": "us", "legal_name": "Pat Publisher", "classification": "individual",
                "tin_type": "ssn", "tin": "123-45-6789", "signed_name": "Pat Publisher", "certify": true,
                "address": {"line1": "1 Main St", "city": "Springfield", "state": "IL", "zip": "62701"}
            })),
        )
        .await;
    assert_eq!(
        (status, &profile["profile"]["tin_last4"]),
        (200, &Value::from("6789"))
    );
    let (status, _) = publisher
        .call(
            Method::PUT,
            format!("{base}/api/payouts/method"),
            Some(serde_json::json!({
                "type": "ach", "routing_number": "021000021", "account_number": "000987654321",
                "account_type": "checking", "name_on_account": "Pat Publisher"
            })),
        )
        .await;
    assert_eq!(status, 200);

    // The advertiser pays $2,100.00 a conversion; one conversion, approved.
    let shop = Party::sign_in(&base, &shop_email, &shop_password).await;
    let (_, offers) = shop
        .call(Method::GET, format!("{base}/api/offers"), None)
        .await;
    let offer_id = offers["offers"][0]["id"].as_str().unwrap().to_string();
    let (status, changed) = shop
        .call(
            Method::PATCH,
            format!("{base}/api/offers/{offer_id}"),
            Some(serde_json::json!({ "revenue": { "fixed": "2500.00" }, "payout": { "fixed": "2100.00" } })),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    let click_id = click(&runner.tracking_url).await;
    let (status, conversion) =
        postback(&runner.postback_template.replace("{click_id}", &click_id)).await;
    assert_eq!(status, 201, "{conversion}");
    let id = conversion["conversion"]["id"].as_str().unwrap();
    let (status, _) = shop
        .call(
            Method::PUT,
            format!("{base}/api/conversions/{id}/status"),
            Some(serde_json::json!({ "status": "approved" })),
        )
        .await;
    assert_eq!(status, 200);

    let admin = Party::sign_in(&base, &admin_email, &admin_password).await;
    let (status, run) = admin
        .call(Method::POST, format!("{base}/api/admin/payout-runs"), None)
        .await;
    assert_eq!(status, 200, "{run}");
    assert!(run["report"].to_string().contains("pays 2100.00"), "{run}");
    for bookkeeping in ["left_owing", "payouts_made", "ach_first_trace"] {
        assert!(
            run.get(bookkeeping).is_none(),
            "the run's answer shows {bookkeeping}: {run}"
        );
    }
    let year = shared::tax::tax_year(shared::ports::Clock::now(&shared::ports::SystemClock));
    let (status, _) = admin
        .call(
            Method::POST,
            format!("{base}/api/admin/tax-forms"),
            Some(serde_json::json!({ "year": year })),
        )
        .await;
    assert_eq!(status, 202);
    let (status, export) = publisher
        .call(Method::POST, format!("{base}/api/privacy/exports"), None)
        .await;
    assert_eq!(status, 202);
    let export_id = export["id"].as_str().unwrap().to_string();
    let logs = runner.logs.clone();
    runner.stop_with("TERM").await;

    // The jobs, on demand, as an operator runs them.
    let (filed, filing_logs) = run_job(&backend, "tax-forms").await;
    assert!(
        filed.contains(&format!(
            "{year}: 1 form (drafts: the year is not over), box 1 $2100.00"
        )),
        "{filed}"
    );
    let (exported, export_logs) = run_job(&backend, "data-exports").await;
    // The runner's own timer may have written it already: the download below is the proof.
    assert!(exported.contains("exports written"), "{exported}");
    let Backend::Embedded(data) = &backend else {
        unreachable!()
    };
    let csv = std::fs::read_to_string(data.path().join(format!("blobs/tax/{year}/1099-nec.csv")))
        .unwrap();
    assert!(
        csv.contains("123-45-6789") && csv.contains("2100.00"),
        "{csv}"
    );

    let runner = Runner::start_logging(&backend, "trace").await;
    let base = runner.base.clone();
    let publisher = Party::sign_in(&base, &pub_email, &pub_password).await;
    let statement = client()
        .get(format!("{base}/api/tax/forms/{year}"))
        .header("cookie", &publisher.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(statement.status(), 200);
    let statement = statement.text().await.unwrap();
    assert!(statement.contains("***-**-6789") && statement.contains("$2100.00"));
    let file = client()
        .get(format!("{base}/api/privacy/exports/{export_id}"))
        .header("cookie", &publisher.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(file.status(), 200);
    let file: Value = file.json().await.unwrap();
    assert_eq!(file["account"]["email"], pub_email.as_str());
    assert_eq!(file["payouts"][0]["amount"]["minor"], 210_000);

    let (status, erased) = publisher
        .call(
            Method::POST,
            format!("{base}/api/privacy/erasure"),
            Some(serde_json::json!({ "password": pub_password })),
        )
        .await;
    assert_eq!(status, 200, "{erased}");
    let refused = client()
        .post(format!("{base}/api/auth/sign-in"))
        .json(&serde_json::json!({ "email": pub_email, "password": pub_password }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let later_logs = runner.logs.clone();
    runner.stop_with("TERM").await;

    let logs = format!(
        "{}{}{filing_logs}{export_logs}",
        logs.lock().unwrap(),
        later_logs.lock().unwrap()
    );
    assert!(logs.lines().count() >= 15, "logging was on:\n{logs}");
    for secret in [
        "123-45-6789",
        "123456789",
        "000987654321",
        pub_password.as_str(),
        admin_password.as_str(),
    ] {
        assert!(!logs.contains(secret), "{secret} reached the logs");
    }

    // Every file of the data folder: the account number only in the ACH file, the TIN only
    // in the 1099 file, no password and no session anywhere.
    let files = files_under(data.path());
    money_secrets_kept_where_documented(&files, "blobs/", "000987654321", year);
    let session = publisher.cookie.split('=').nth(1).unwrap().to_string();
    for secret in [&pub_password, &admin_password, &shop_password, &session] {
        kept_only_where_documented(&files, secret, |_| false);
    }
}

/// Issue 8's walkthrough on the real local runner: an advertiser sets up calls for the demo
/// offer and a tracking number for the demo affiliate; Twilio's conversation follows (voice
/// webhook, the put-through call's end, the recording), each request signed by Twilio's own
/// library; the runner's dispatch timer archives the recording from a fake Twilio. The call,
/// its conversion and its recording are then where each party should see them.
#[tokio::test]
async fn a_scripted_twilio_conversation_makes_a_call_a_conversion_and_an_archived_recording() {
    use reqwest::Method;
    let (fake, api_base) = twilio::FakeTwilio::start().await;
    let mp3: Vec<u8> = b"ID3\x04"
        .iter()
        .copied()
        .chain((0..150_000u32).map(|i| i as u8))
        .collect();
    fake.recordings
        .lock()
        .unwrap()
        .insert("RE77".into(), mp3.clone());
    let backend = Backend::embedded();
    let runner = Runner::start_with(
        &backend,
        "info",
        &[
            ("LEADSREFER_TWILIO_ACCOUNT_SID", twilio::ACCOUNT_SID),
            ("LEADSREFER_TWILIO_AUTH_TOKEN", twilio::AUTH_TOKEN),
            ("LEADSREFER_TWILIO_API_BASE", &api_base),
        ],
    )
    .await;
    let base = runner.base.clone();
    let (shop, publisher, _) = calls_for_the_demo(
        &runner,
        serde_json::json!({ "destination": "+14155550100", "min_duration_secs": 90 }),
    )
    .await;

    let webhook = |path: &'static str, params: Vec<(&'static str, &'static str)>| {
        let base = base.clone();
        async move {
            let url = format!("{base}{path}");
            let signature = twilio::signature(twilio::AUTH_TOKEN, &url, &params);
            let response = client()
                .post(&url)
                .header("x-twilio-signature", signature)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(twilio::form(&params))
                .send()
                .await
                .unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let sid = ("CallSid", "CA77");
    let account = ("AccountSid", twilio::ACCOUNT_SID);
    let (status, twiml) = webhook(
        "/twilio/voice",
        vec![
            account,
            sid,
            ("From", "+12125550123"),
            ("To", "+14155550123"),
            ("FromCountry", "US"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{twiml}");
    assert!(
        twiml.contains("record-from-answer-dual") && twiml.contains("+14155550100"),
        "{twiml}"
    );
    let (status, _) = webhook(
        "/twilio/status",
        vec![
            account,
            sid,
            ("DialCallStatus", "completed"),
            ("DialCallDuration", "140"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = webhook(
        "/twilio/recording",
        vec![
            account,
            sid,
            ("RecordingSid", "RE77"),
            ("RecordingStatus", "completed"),
            ("RecordingDuration", "138"),
        ],
    )
    .await;
    assert_eq!(status, 204);

    // The runner's dispatch timer (every 10 s) archives the recording.
    let mut calls = Value::Null;
    for _ in 0..40 {
        let (_, seen) = shop
            .call(Method::GET, format!("{base}/api/calls"), None)
            .await;
        calls = seen;
        if calls["calls"][0]["recording"].is_object() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let call = &calls["calls"][0];
    assert_eq!(call["sid"], "CA77", "{calls}");
    assert_eq!(call["connected_secs"], 140);
    assert!(call["conversion_id"].is_string(), "{call}");
    assert_eq!(call["recording"]["bytes"], mp3.len());
    let (_, link) = shop
        .call(
            Method::GET,
            format!("{base}/api/calls/CA77/recording"),
            None,
        )
        .await;
    let audio = client()
        .get(link["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(audio.status(), 200);
    assert_eq!(audio.bytes().await.unwrap().to_vec(), mp3);
    let (_, theirs) = publisher
        .call(Method::GET, format!("{base}/api/calls"), None)
        .await;
    assert_eq!(theirs["calls"][0]["sid"], "CA77");
    assert!(theirs["calls"][0].get("recording").is_none());
    let (_, conversions) = publisher
        .call(Method::GET, format!("{base}/api/conversions"), None)
        .await;
    assert_eq!(conversions["conversions"].as_array().unwrap().len(), 1);
    runner.stop_with("TERM").await;
}

/// Connections that send half a request, or nothing, cannot starve the runner: with 500 of
/// them held open under a 1,024-descriptor limit, clicks are still answered at once; past the
/// connection cap a new connection is told 503 at once; and a half-sent request is closed after
/// the header timeout instead of being held for ever.
#[tokio::test]
async fn half_open_connections_neither_starve_clicks_nor_stay_for_ever() {
    let backend = Backend::embedded();
    let runner = Runner::start_limited(
        &backend,
        "warn",
        &[("LEADSREFER_MAX_CONNECTIONS", "600")],
        Some(1024),
    )
    .await;
    let address = runner.base.trim_start_matches("http://").to_string();
    let mut held = Vec::new();
    for i in 0..500 {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        // Half a request: the request line and one header, never the blank line.
        if i % 2 == 0 {
            stream
                .write_all(b"GET /c/NoSuchLnk1 HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
        }
        held.push(stream);
    }
    let http = client();
    let mut slowest = Duration::ZERO;
    for _ in 0..50 {
        let started = std::time::Instant::now();
        let click = http.get(&runner.tracking_url).send().await.unwrap();
        assert_eq!(click.status(), 302);
        slowest = slowest.max(started.elapsed());
    }
    assert!(
        slowest < Duration::from_millis(500),
        "clicks beside 500 half-open connections took up to {slowest:?}"
    );
    // Up to the cap of 600 (the 500 held, the client's own, 99 more), then past it: answered
    // 503 at once.
    for _ in 0..99 {
        held.push(tokio::net::TcpStream::connect(&address).await.unwrap());
    }
    let mut refused = 0;
    for _ in 0..20 {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        let mut answer = [0u8; 12];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_secs(1), stream.read(&mut answer)).await
            && answer[..n].starts_with(b"HTTP/1.1 503")
        {
            refused += 1;
        }
        held.push(stream);
    }
    assert!(
        refused >= 18,
        "only {refused} of 20 connections over the cap were refused"
    );
    // The header timeout (10 s) closes a half-sent request.
    let mut rest = Vec::new();
    let closed =
        tokio::time::timeout(Duration::from_secs(15), held[0].read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "a half-sent request is closed by the server"
    );
    drop(held);
    // Slots come back as connections close: clicks on new connections go through.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        client()
            .get(&runner.tracking_url)
            .send()
            .await
            .unwrap()
            .status(),
        302
    );
}

/// Clicks at full speed on one connection, four pipelined at a time (a raw client: a test
/// build of an HTTP client could not load an optimised runner), each from another public
/// address (`X-Forwarded-For`, for a runner trusting its proxy) with a browser's user-agent:
/// each a unique visitor, the heaviest click to store. Each answered click's id is kept with
/// when its answer came, until `stop` or the connection breaks.
async fn drive_clicks(
    address: String,
    path: String,
    driver: u32,
    stop: Arc<std::sync::atomic::AtomicBool>,
    answered: Arc<std::sync::Mutex<Vec<(String, std::time::Instant)>>>,
) {
    const DEPTH: u32 = 4;
    let Ok(stream) = tokio::net::TcpStream::connect(&address).await else {
        return;
    };
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let mut line = String::new();
    let mut sent = 0u32;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let mut requests = String::new();
        for _ in 0..DEPTH {
            sent += 1;
            requests.push_str(&format!(
                "GET {path} HTTP/1.1\r\nHost: {address}\r\nX-Forwarded-For: {}.{}.{}.{}\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36\r\n\r\n",
                12 + driver,
                (sent >> 16) & 255,
                (sent >> 8) & 255,
                sent & 255,
            ));
        }
        if writer.write_all(requests.as_bytes()).await.is_err() {
            return;
        }
        for _ in 0..DEPTH {
            let mut id = None;
            loop {
                line.clear();
                match reader.read_line(&mut line).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                if line == "\r\n" {
                    break;
                }
                if let Some(location) = line.strip_prefix("location: ") {
                    id = location
                        .split("clickid=")
                        .nth(1)
                        .map(|rest| rest.split(['&', '\r']).next().unwrap().to_string());
                }
            }
            if let Some(id) = id {
                answered
                    .lock()
                    .unwrap()
                    .push((id, std::time::Instant::now()));
            }
        }
    }
}

/// A crash under full click load, ten times over: every click answered before the window the
/// README states (`MAX_LOSS`, 50 ms) is on disk after `kill -9`, and its postback is taken
/// once the runner is back.
#[tokio::test]
async fn a_crash_under_click_load_loses_no_click_answered_before_the_stated_window() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let window = shared::adapters::sqlite::MAX_LOSS;
    let backend = Backend::embedded();
    let (mut answered_in_all, mut lost_in_all) = (0, 0);
    let mut last_stored = None;
    for trial in 0..10u64 {
        let runner =
            Runner::start_with(&backend, "warn", &[("LEADSREFER_TRUST_PROXY", "true")]).await;
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut drivers = Vec::new();
        for driver in 0..16 {
            let (stop, answered) = (stop.clone(), answered.clone());
            let address = runner.base.trim_start_matches("http://").to_string();
            let path = runner
                .tracking_url
                .trim_start_matches(&runner.base)
                .to_string();
            drivers.push(tokio::spawn(drive_clicks(
                address, path, driver, stop, answered,
            )));
        }
        tokio::time::sleep(Duration::from_millis(800 + trial * 37)).await;
        let killed_at = std::time::Instant::now();
        runner.kill().await;
        stop.store(true, Ordering::Relaxed);
        for driver in drivers {
            driver.await.unwrap();
        }
        let answered = std::mem::take(&mut *answered.lock().unwrap());
        assert!(
            answered.len() > 100,
            "trial {trial}: only {} clicks answered",
            answered.len()
        );
        let app = backend.open().await;
        for (id, at) in &answered {
            let id = shared::domain::ids::ClickId::parse(id).unwrap();
            if app.store.click(id).await.unwrap().is_some() {
                last_stored = Some(id);
                continue;
            }
            lost_in_all += 1;
            let before_kill = killed_at.saturating_duration_since(*at);
            assert!(
                before_kill <= window,
                "trial {trial}: click {id} was answered {before_kill:?} before the kill and lost"
            );
        }
        answered_in_all += answered.len();
    }
    eprintln!(
        "{answered_in_all} clicks answered over 10 crashes, {lost_in_all} lost (each within {window:?})"
    );
    // Back after the crashes: an answered click's postback is taken.
    let runner = Runner::start(&backend).await;
    let url = runner
        .postback_template
        .replace("{click_id}", &last_stored.unwrap().to_string());
    let (status, answer) = postback(&url).await;
    assert_eq!(status, 201, "{answer}");
    runner.stop_with("TERM").await;
}

/// A job on a deployment's data is refused without the deployment's public URL: its mail would
/// link to this machine.
#[tokio::test]
async fn a_job_on_aws_needs_the_public_url_its_mail_links_to() {
    let backend = Backend::aws().await;
    let mut command = Command::new(runner_binary());
    command.args(["run", "data-exports"]);
    backend.configure(&mut command);
    let output = command
        .env_remove("LEADSREFER_PUBLIC_URL")
        .output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{said}");
    assert!(said.contains("LEADSREFER_PUBLIC_URL"), "{said}");
    let mut command = Command::new(runner_binary());
    command.args(["run", "data-exports"]);
    backend.configure(&mut command);
    let output = command
        .env("LEADSREFER_PUBLIC_URL", "https://track.leadsrefer.test")
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `leadsrefer run --help` lists every job, and running one says nothing of the geo databases
/// (only the click path reads them, so only `serve` opens them and says what a missing one
/// means).
#[tokio::test]
async fn the_cli_lists_its_jobs_and_warns_only_where_it_matters() {
    let help = Command::new(runner_binary())
        .args(["run", "--help"])
        .output()
        .await
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for job in shared::jobs::JOBS {
        assert!(help.contains(job.name), "{help}");
    }
    let data = tempfile::tempdir().unwrap();
    let run = Command::new(runner_binary())
        .args(["run", "maturation", "--data"])
        .arg(data.path())
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    let logs = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{logs}");
    assert!(!logs.contains("WARN"), "{logs}");
}

/// The demo advertiser and affiliate signed in, the demo offer's call `settings` set, and
/// +14155550123 its static number for the demo affiliate: answers the two and the offer's id.
async fn calls_for_the_demo(runner: &Runner, settings: Value) -> (Party, Party, String) {
    use reqwest::Method;
    let base = &runner.base;
    let (shop_email, shop_password) = banner_sign_in(&runner.banner, "advertiser");
    let (pub_email, pub_password) = banner_sign_in(&runner.banner, "affiliate");
    let shop = Party::sign_in(base, &shop_email, &shop_password).await;
    let publisher = Party::sign_in(base, &pub_email, &pub_password).await;
    let (_, me) = publisher
        .call(Method::GET, format!("{base}/api/auth/me"), None)
        .await;
    let affiliate_id = me["account"]["id"].as_str().unwrap().to_string();
    let (_, offers) = shop
        .call(Method::GET, format!("{base}/api/offers"), None)
        .await;
    let offer_id = offers["offers"][0]["id"].as_str().unwrap().to_string();
    let (status, answer) = shop
        .call(
            Method::PUT,
            format!("{base}/api/offers/{offer_id}/calls"),
            Some(settings),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let (status, number) = shop
        .call(
            Method::POST,
            format!("{base}/api/numbers"),
            Some(serde_json::json!({ "number": "+14155550123", "offer_id": offer_id, "affiliate_id": affiliate_id })),
        )
        .await;
    assert_eq!(status, 201, "{number}");
    (shop, publisher, offer_id)
}

/// `leadsrefer <args>` on the backend's data: answers whether it succeeded and what it printed
/// (standard output, then standard error).
async fn cli(backend: &Backend, args: &[&str]) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_leadsrefer"));
    command.args(args);
    backend.configure(&mut command);
    let output = command.output().await.unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}

/// Pay-per-call and a test conversion tried without a Twilio account, from the command line:
/// `simulate-call` drives the running server's signed webhooks (a long call converts, a short
/// one does not, an unknown number is not in service), and `test-conversion` walks a click and
/// a postback that no report counts.
#[tokio::test]
async fn calls_and_test_conversions_can_be_tried_without_twilio() {
    use reqwest::Method;
    let backend = Backend::embedded();
    let runner = Runner::start(&backend).await;
    let base = runner.base.clone();
    let (shop, _, offer_id) = calls_for_the_demo(
        &runner,
        serde_json::json!({ "destination": "+14155550100", "min_duration_secs": 90, "notice": "Calls are recorded & kept." }),
    )
    .await;

    let call = |to: &'static str, from: &'static str, seconds: &'static str| {
        let base = base.clone();
        let backend = &backend;
        async move {
            cli(
                backend,
                &[
                    "simulate-call",
                    "--server",
                    &base,
                    "--to",
                    to,
                    "--from",
                    from,
                    "--seconds",
                    seconds,
                ],
            )
            .await
        }
    };
    let (ok, long) = call("+14155550123", "+12125550111", "120").await;
    assert!(ok, "{long}");
    assert!(
        long.contains("the caller hears: Calls are recorded & kept.")
            && long.contains("put through to +14155550100, connected 120 s"),
        "{long}"
    );
    let (ok, short) = call("+14155550123", "+12125550122", "30").await;
    assert!(ok && short.contains("connected 30 s"), "{short}");
    let (ok, unknown) = call("+14155550999", "+12125550133", "120").await;
    assert!(ok, "{unknown}");
    assert!(
        unknown.contains("not in service") && unknown.contains("not put through"),
        "{unknown}"
    );
    let (_, calls) = shop
        .call(Method::GET, format!("{base}/api/calls"), None)
        .await;
    let calls = calls["calls"].as_array().unwrap().clone();
    assert_eq!(
        calls.len(),
        2,
        "the unknown number's call is no one's: {calls:?}"
    );
    let converted = calls
        .iter()
        .filter(|c| c["conversion_id"].is_string())
        .count();
    assert_eq!(converted, 1, "only the long call qualifies: {calls:?}");

    // A server that is not there is named, with what to check.
    let (ok, refused) = cli(
        &backend,
        &[
            "simulate-call",
            "--server",
            "http://127.0.0.1:9",
            "--to",
            "+14155550123",
        ],
    )
    .await;
    assert!(!ok && refused.contains("could not be reached"), "{refused}");

    // A test conversion from the command line: kept, marked test, in no report.
    let report = || {
        let shop = &shop;
        let base = base.clone();
        async move {
            shop.call(
                Method::GET,
                format!("{base}/api/reports?group_by=offer"),
                None,
            )
            .await
            .1["totals"]
                .clone()
        }
    };
    let before = report().await;
    let (ok, printed) = cli(&backend, &["test-conversion", "--offer", &offer_id]).await;
    assert!(ok, "{printed}");
    assert!(
        printed.contains("marked test, counted nowhere"),
        "{printed}"
    );
    assert!(
        !printed.contains("INFO"),
        "a CLI command logs nothing of note: {printed}"
    );
    let (_, conversions) = shop
        .call(Method::GET, format!("{base}/api/conversions"), None)
        .await;
    assert!(
        conversions["conversions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["status"] == "test"),
        "{conversions}"
    );
    assert_eq!(report().await, before, "reports are as before");
    let (ok, none) = cli(
        &backend,
        &[
            "test-conversion",
            "--offer",
            &offer_id,
            "--affiliate",
            "advertiser@demo.leadsrefer.local",
        ],
    )
    .await;
    assert!(
        !ok && none.contains("--affiliate is not an affiliate id"),
        "{none}"
    );
    runner.stop_with("TERM").await;
}

/// `leadsrefer provision --backend aws` makes the table, bucket and key as template.yaml has
/// them, says so, changes nothing when run again, and the runner then works on them.
#[tokio::test]
async fn provision_makes_a_deployments_resources_once() {
    emulator::endpoint();
    let suffix = ulid::Ulid::generate().to_string().to_lowercase();
    let (table, bucket) = (format!("prov-{suffix}"), format!("prov-{suffix}"));
    let provision = || {
        let (table, bucket) = (table.clone(), bucket.clone());
        async move {
            let output = Command::new(runner_binary())
                .args(["provision", "--backend", "aws"])
                .env("LEADSREFER_TABLE", &table)
                .env("LEADSREFER_BUCKET", &bucket)
                .env("LEADSREFER_S3_PATH_STYLE", "true")
                .env_remove("LEADSREFER_KMS_KEY_ID")
                .output()
                .await
                .unwrap();
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            assert!(output.status.success(), "{said}");
            said
        }
    };
    let first = provision().await;
    assert_eq!(first.matches(": made").count(), 3, "{first}");
    let again = provision().await;
    assert_eq!(again.matches(": there already").count(), 3, "{again}");
    let key_id = again
        .split("LEADSREFER_KMS_KEY_ID=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_string();
    assert!(
        first.contains(&key_id),
        "the same key both times:\n{first}\n{again}"
    );

    let config = sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let ttl = dynamodb
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let ttl = ttl.time_to_live_description().unwrap();
    assert_eq!(ttl.attribute_name(), Some("expires_at"));
    let described = dynamodb
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let indexes = described.table().unwrap().global_secondary_indexes();
    assert_eq!(indexes[0].index_name(), Some("gsi1"));
    let s3 = shared::adapters::aws::s3_client(&config, true);
    // Versioned: a key written twice keeps both. (The emulator's answer to
    // GetBucketVersioning has a root element the SDK does not read.)
    for body in ["one", "two"] {
        s3.put_object()
            .bucket(&bucket)
            .key("probe")
            .body(body.as_bytes().to_vec().into())
            .send()
            .await
            .unwrap();
    }
    let versions = s3
        .list_object_versions()
        .bucket(&bucket)
        .prefix("probe")
        .send()
        .await
        .unwrap();
    assert_eq!(versions.versions().len(), 2);
    let lifecycle = s3
        .get_bucket_lifecycle_configuration()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert_eq!(
        lifecycle.rules().len(),
        shared::adapters::provision::LIFECYCLE.len()
    );

    // The runner works on what was made.
    let output = Command::new(runner_binary())
        .args(["run", "retention", "--backend", "aws"])
        .env("LEADSREFER_TABLE", &table)
        .env("LEADSREFER_BUCKET", &bucket)
        .env("LEADSREFER_KMS_KEY_ID", &key_id)
        .env("LEADSREFER_S3_PATH_STYLE", "true")
        .env("LEADSREFER_IP_HASH_KEY", "00".repeat(32))
        .env("LEADSREFER_PUBLIC_URL", "https://track.leadsrefer.test")
        .env("LEADSREFER_MAIL_FROM", SENDER)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
