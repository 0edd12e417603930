//! `leadsrefer`: LeadsRefer on one machine. One process serves every HTTP route and runs every
//! scheduled job, through the same handler code the Lambda functions run, on the embedded
//! adapters (SQLite, folders, a local key file) in one data folder.

mod server;

/// mimalloc: the click path allocates small short-lived objects from every worker thread,
/// where glibc's allocator spent a fifth of the CPU (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use shared::App;
use shared::accounts::AccountError;
use shared::app::Backend;
use shared::call_simulator::SimulatedCall;
use shared::domain::accounts::{check_name, check_password};
use shared::domain::calls::E164;
use shared::domain::email::EmailAddress;
use shared::domain::ids::{AffiliateId, OfferId};
use shared::domain::tracking::EventName;
use shared::ports::SystemClock;
use shared::secret::Secret;
use shared::tracking::TrackingError;
use tokio::net::TcpListener;

#[derive(Parser)]
#[command(
    name = "leadsrefer",
    version,
    about = "LeadsRefer, the affiliate performance platform, on one machine."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve every HTTP route and run every scheduled job until Ctrl-C or SIGTERM.
    ///
    /// On first start with an empty data folder it seeds a demo advertiser, affiliate, offer and
    /// tracking link, and prints a tracking URL and a postback URL to try.
    Serve {
        /// Address to listen on; port 0 picks a free port (the chosen address is printed).
        #[arg(long, env = "LEADSREFER_ADDR", default_value = "127.0.0.1:3000")]
        addr: SocketAddr,
        /// Data folder: database, blobs, keys and mail outbox. Created if missing.
        #[arg(long, env = "LEADSREFER_DATA", default_value = ".leadsrefer")]
        data: PathBuf,
        /// Adapters: `embedded` (the data folder) or `aws` (DynamoDB, S3, KMS and SES, configured
        /// by LEADSREFER_TABLE, LEADSREFER_BUCKET, LEADSREFER_KMS_KEY_ID, LEADSREFER_IP_HASH_KEY
        /// and the usual AWS_* variables; see the README).
        #[arg(long, env = "LEADSREFER_BACKEND", default_value = "embedded", value_parser = ["embedded", "aws"])]
        backend: String,
        /// Behind a reverse proxy (nginx, a load balancer): take the visitor's address from the
        /// last `X-Forwarded-For` entry, the one the proxy added. Never set it when visitors
        /// reach this server directly: they could then claim any address.
        #[arg(long, env = "LEADSREFER_TRUST_PROXY")]
        trust_proxy: bool,
        /// Seed the demo without its three weeks of generated traffic (clicks, conversions in
        /// every status, a payout) that the dashboard's charts show on first start.
        #[arg(long, env = "LEADSREFER_NO_DEMO_HISTORY")]
        no_demo_history: bool,
        /// Seed the demo on the `aws` backend too. The embedded backend seeds it on its first
        /// start; a deployment gets none unless asked, since its accounts would be live.
        #[arg(long, env = "LEADSREFER_DEMO")]
        demo: bool,
    },
    /// Create an admin account (admins never self-register). The password is read from
    /// standard input (one line), so it stays out of the shell history and process list.
    CreateAdmin {
        /// The admin's email address.
        #[arg(long)]
        email: String,
        /// The admin's name.
        #[arg(long)]
        name: String,
        /// Data folder, as for `serve`.
        #[arg(long, env = "LEADSREFER_DATA", default_value = ".leadsrefer")]
        data: PathBuf,
        /// Adapters, as for `serve`.
        #[arg(long, env = "LEADSREFER_BACKEND", default_value = "embedded", value_parser = ["embedded", "aws"])]
        backend: String,
    },
    /// A bare HTTP server that answers every request with a fixed 302 and stores nothing: the
    /// yardstick of the load test (infra/bench/load.sh).
    #[command(name = "baseline-302", hide = true)]
    Baseline302 {
        #[arg(long, default_value = "127.0.0.1:0")]
        addr: SocketAddr,
    },
    /// Record the bank's ACH return file (NACHA): each returned payout is marked failed and its
    /// amount payable again, accounts that cannot take payments stop the affiliate's method,
    /// and each affiliate is mailed. Recording the same file again changes nothing.
    AchReturns {
        /// The return file, as the bank sent it.
        file: PathBuf,
        /// Data folder, as for `serve`.
        #[arg(long, env = "LEADSREFER_DATA", default_value = ".leadsrefer")]
        data: PathBuf,
        /// Adapters, as for `serve`.
        #[arg(long, env = "LEADSREFER_BACKEND", default_value = "embedded", value_parser = ["embedded", "aws"])]
        backend: String,
    },
    /// Send a test conversion on an offer: a test click on an approved affiliate's link, then
    /// the postback the advertiser's server would send, with the offer's token. Both are kept,
    /// marked test, and counted nowhere: no money, no reports, no caps, no affiliate postback.
    TestConversion {
        /// The offer's id.
        #[arg(long)]
        offer: String,
        /// The affiliate whose link to click (default: the first approved one with a link).
        #[arg(long)]
        affiliate: Option<String>,
        /// The event, as a postback's `event` (default `conversion`).
        #[arg(long)]
        event: Option<String>,
        /// The sale amount, as a postback's `amount` (required for a revenue share).
        #[arg(long)]
        amount: Option<String>,
        /// Data folder, as for `serve`.
        #[arg(long, env = "LEADSREFER_DATA", default_value = ".leadsrefer")]
        data: PathBuf,
        /// Adapters, as for `serve`.
        #[arg(long, env = "LEADSREFER_BACKEND", default_value = "embedded", value_parser = ["embedded", "aws"])]
        backend: String,
    },
    /// Call a tracking number, as Twilio would tell the running server: its voice webhook, then
    /// the end of the put-through call, each signed like Twilio's. Without a Twilio account
    /// configured, the server and this command share the data folder's own simulator token.
    SimulateCall {
        /// The tracking number called (E.164, such as +14155550123).
        #[arg(long)]
        to: String,
        /// The caller's number.
        #[arg(long, default_value = "+14155550199")]
        from: String,
        /// How long caller and advertiser talk once put through; 0: nobody answers.
        #[arg(long, default_value_t = 120)]
        seconds: u32,
        /// The running server's address, as Twilio would call it (default: the public URL).
        #[arg(long, env = "LEADSREFER_PUBLIC_URL", default_value = shared::app::DEFAULT_PUBLIC_URL)]
        server: String,
        /// The server's data folder, as for `serve`.
        #[arg(long, env = "LEADSREFER_DATA", default_value = ".leadsrefer")]
        data: PathBuf,
    },
    /// Make the table, bucket and KMS key a deployment's data lives in, shaped as
    /// template.yaml declares them (TTL, point-in-time recovery, versioning, SSE-KMS, lifecycle),
    /// for an account or an emulator outside SAM. Names from LEADSREFER_TABLE and
    /// LEADSREFER_BUCKET; the key is LEADSREFER_KMS_KEY_ID, or the one under alias/<table>
    /// (made if missing). Running it again changes nothing that is right already.
    Provision {
        /// Only `aws`: the embedded backend's data folder is made by its first start.
        #[arg(long, value_parser = ["aws"])]
        backend: String,
    },
    /// Run one scheduled job now, print its report, and exit.
    Run {
        /// The job's name.
        #[arg(value_parser = job_names())]
        job: String,
        /// Data folder, as for `serve`.
        #[arg(long, env = "LEADSREFER_DATA", default_value = ".leadsrefer")]
        data: PathBuf,
        /// Adapters, as for `serve`.
        #[arg(long, env = "LEADSREFER_BACKEND", default_value = "embedded", value_parser = ["embedded", "aws"])]
        backend: String,
    },
}

/// How long mimalloc keeps freed memory before handing it back to the OS. Its default (one
/// second) made the runner under click load give back and fault in again ~700 pages a second,
/// zeroing each (1.4% of its CPU in `clear_page_erms`); five seconds made it ~20.
/// `MIMALLOC_PURGE_DELAY` in the environment still decides, when set.
const ALLOCATOR_PURGE_DELAY_MS: std::ffi::c_long = 5_000;

/// `mi_option_purge_delay` in the `mi_option_t` of the mimalloc that libmimalloc-sys builds
/// (it names no constant for it); a test checks that it is the option with that default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> ExitCode {
    // Everything the runner creates (the database, blobs with ACH files and exports, mail with
    // tokens) is its owner's alone: files 0600, folders 0700.
    // SAFETY: umask only sets the process's file-creation mask.
    unsafe { libc::umask(0o077) };
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: `mi_option_set` is not thread-safe; no other thread exists yet (the async
        // runtime is built below).
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, ALLOCATOR_PURGE_DELAY_MS) };
    }
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run()),
        Err(error) => {
            eprintln!("leadsrefer: could not start the async runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colours for a person at a terminal; a log file gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match Cli::parse().command {
        Command::Serve {
            addr,
            data,
            backend,
            trust_proxy,
            no_demo_history,
            demo,
        } => {
            let demo = DemoOptions {
                wanted: demo,
                history: !no_demo_history,
            };
            serve(addr, &data, &backend, trust_proxy, demo).await
        }
        Command::Run { job, data, backend } => run_job(&job, &data, &backend).await,
        Command::AchReturns {
            file,
            data,
            backend,
        } => ach_returns(&file, &data, &backend).await,
        Command::Baseline302 { addr } => baseline(addr).await,
        Command::Provision { backend: _ } => provision().await,
        Command::TestConversion {
            offer,
            affiliate,
            event,
            amount,
            data,
            backend,
        } => {
            test_conversion(
                &offer,
                affiliate.as_deref(),
                event.as_deref(),
                amount,
                &data,
                &backend,
            )
            .await
        }
        Command::SimulateCall {
            to,
            from,
            seconds,
            server,
            data,
        } => simulate_call(&to, &from, seconds, &server, &data).await,
        Command::CreateAdmin {
            email,
            name,
            data,
            backend,
        } => create_admin(&email, &name, &data, &backend).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("leadsrefer: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The application on the chosen adapters, and where its data lives, for the banner. Without
/// the geo databases: only the click path reads them, so only `serve` opens them (and says
/// once what a missing one means). Links point at `LEADSREFER_PUBLIC_URL`, which a command on
/// the `aws` backend must be given (its mail would link to this machine otherwise).
async fn open(data: &Path, backend: &str) -> Result<(App, String), String> {
    let (app, place) = open_adapters(data, backend).await?;
    Ok(
        match shared::app::public_url_from_env(app.backend).map_err(|e| e.to_string())? {
            Some(url) => (app.with_public_url(&url), place),
            None => (app, place),
        },
    )
}

/// [`open`] without its public URL: `serve` has an address of its own to fall back on.
async fn open_adapters(data: &Path, backend: &str) -> Result<(App, String), String> {
    let sender = shared::app::sender_from_env().map_err(|e| e.to_string())?;
    match Backend::parse(backend) {
        Some(Backend::Aws) => App::aws_from_env(Arc::new(SystemClock), sender)
            .await
            .map_err(|e| e.to_string()),
        _ => {
            let app =
                App::embedded(data, Arc::new(SystemClock), sender).map_err(|e| e.to_string())?;
            Ok((app, format!("data in {}", data.display())))
        }
    }
}

/// What `serve` does about the demo.
struct DemoOptions {
    /// Seed it on the aws backend too (`--demo`).
    wanted: bool,
    /// With its generated history (unless `--no-demo-history`).
    history: bool,
}

async fn serve(
    addr: SocketAddr,
    data: &Path,
    backend: &str,
    trust_proxy: bool,
    demo: DemoOptions,
) -> Result<(), String> {
    let connections = server::max_connections()?;
    let (app, place) = open_adapters(data, backend).await?;
    let geo = shared::app::open_geo(app.backend, data).map_err(|e| e.to_string())?;
    let app = app.with_geo(geo);
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        format!(
            "cannot listen on {addr}: {e}. Is another server using it? Pick another with --addr."
        )
    })?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let base = format!("http://{local}");
    // Links in mail and API answers point at this server unless the operator says otherwise.
    let app = match std::env::var("LEADSREFER_PUBLIC_URL") {
        Ok(url) => app.with_public_url(&url),
        Err(_) => app.with_public_url(&base),
    };
    // A deployment's table gets no demo unless asked: its accounts would be live.
    let seeded_demo = if demo.wanted || app.backend == Backend::Embedded {
        Some(
            shared::seed::seed_demo(&app)
                .await
                .map_err(|e| format!("cannot seed the demo: {e}"))?,
        )
    } else {
        None
    };
    // Generated traffic belongs in a local trial, never in a deployment's table.
    if let Some((demo_made, true)) = &seeded_demo
        && demo.history
        && app.backend == Backend::Embedded
    {
        eprintln!(
            "Generating {} days of demo traffic for the dashboard's charts…",
            shared::seed::HISTORY_DAYS
        );
        let history = shared::seed::seed_history(&app, demo_made)
            .await
            .map_err(|e| format!("cannot generate the demo's history: {e}"))?;
        eprintln!(
            "  {} clicks, {} conversions, {} payout run(s) (skip with --no-demo-history)",
            history.clicks, history.conversions, history.payouts
        );
    }
    println!("Dashboard: {base}/app  (open it in a browser; demo sign-ins below)");
    println!("LeadsRefer is running at {base} ({place})");
    match &seeded_demo {
        Some((demo, seeded)) => {
            println!("{} demo:", if *seeded { "Seeded a" } else { "The" });
            println!("  tracking link: {}", demo.tracking_url(&base));
            println!("  postback:      {}", demo.postback_url(&base));
            println!(
                "  (replace {{click_id}} with the click id from the tracking link's redirect)"
            );
            if *seeded {
                println!(
                    "Demo sign-ins (role, email / password), for the dashboard or POST {base}/api/auth/sign-in:"
                );
                for line in demo.credential_lines() {
                    println!("  {line}");
                }
                println!("  (shown this once: they are kept nowhere but as password hashes)");
            } else {
                println!(
                    "Demo sign-ins: the passwords printed when the demo was seeded; a lost one is reset from the sign-in page (\"Forgot your password?\")."
                );
            }
        }
        None => println!("No demo on this backend (--demo seeds one)."),
    }
    println!("API description: {base}/api/openapi.json");
    if let Some((demo, _)) = &seeded_demo {
        println!("For the README's walks, paste into your shell:");
        println!("  {}", demo.walk_variables(&base));
    }
    println!("Press Ctrl-C to stop.");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let jobs = tokio::spawn(run_jobs(app.clone(), stopped));
    server::serve(
        listener,
        app.clone(),
        trust_proxy,
        connections,
        shutdown_signal(),
    )
    .await;
    // Let a job run in progress finish, then commit every buffered write.
    let _ = stop.send(true);
    let _ = jobs.await;
    app.table
        .flush()
        .await
        .map_err(|e| format!("buffered writes could not be committed: {e}"))?;
    app.visits
        .save()
        .await
        .map_err(|e| format!("recent visits could not be saved: {e}"))?;
    println!("LeadsRefer stopped cleanly.");
    Ok(())
}

/// The scheduled jobs' names: what `run` takes, listed in its `--help`.
fn job_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(shared::jobs::JOBS.iter().map(|job| job.name))
}

async fn run_job(name: &str, data: &Path, backend: &str) -> Result<(), String> {
    // Clap took only a listed name.
    let job = shared::jobs::find(name).ok_or_else(|| format!("no job named {name:?}"))?;
    let (app, _) = open(data, backend).await?;
    let report = (job.run)(app).await.map_err(|e| e.to_string())?;
    println!("{}: {report}", job.name);
    Ok(())
}

async fn ach_returns(file: &Path, data: &Path, backend: &str) -> Result<(), String> {
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let (app, _) = open(data, backend).await?;
    let recorded = shared::ach_returns::record(&app, &bytes)
        .await
        .map_err(|e| format!("{}: {e}", file.display()))?;
    for entry in &recorded.entries {
        println!(
            "record {}: {} ({}) {} USD, trace {}: {}{}{}",
            entry.record,
            entry.code,
            entry.reason,
            entry.amount,
            entry.original_trace,
            entry.outcome.words(),
            entry
                .payout_id
                .as_deref()
                .map(|id| format!(", payout {id}"))
                .unwrap_or_default(),
            if entry.method_stopped {
                ", payout method stopped"
            } else {
                ""
            },
        );
    }
    println!(
        "{} payout(s) marked failed from {} entries",
        recorded.recorded,
        recorded.entries.len()
    );
    Ok(())
}

async fn test_conversion(
    offer: &str,
    affiliate: Option<&str>,
    event: Option<&str>,
    amount: Option<String>,
    data: &Path,
    backend: &str,
) -> Result<(), String> {
    let offer_id = OfferId::parse(offer).ok_or("--offer is not an offer id")?;
    let affiliate = affiliate
        .map(|id| AffiliateId::parse(id).ok_or("--affiliate is not an affiliate id"))
        .transpose()?;
    let event =
        EventName::parse_or_default(event).map_err(|problem| format!("--event {problem}"))?;
    let (app, _) = open(data, backend).await?;
    let offer = app
        .store
        .offer(offer_id)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("--offer names no offer here")?;
    let conversion = shared::tracking::test_conversion(&app, &offer, affiliate, event, amount)
        .await
        .map_err(|e| match e {
            TrackingError::NoLink => "no approved affiliate has a link for this offer yet (or --affiliate names none): approve one, who then makes a link".to_string(),
            other => other.to_string(),
        })?
        .into_inner();
    app.table.flush().await.map_err(|e| e.to_string())?;
    println!(
        "Test conversion {} on click {} (offer {}, affiliate {}): revenue {}, payout {}; marked test, counted nowhere.",
        conversion.id,
        conversion.click_id,
        conversion.offer_id,
        conversion.affiliate_id,
        conversion.revenue,
        conversion.payout,
    );
    Ok(())
}

async fn simulate_call(
    to: &str,
    from: &str,
    seconds: u32,
    server: &str,
    data: &Path,
) -> Result<(), String> {
    let call = SimulatedCall {
        to: E164::parse(to).map_err(|problem| format!("--to {problem}"))?,
        from: E164::parse(from).map_err(|problem| format!("--from {problem}"))?,
        connected_secs: seconds,
    };
    let twilio = shared::app::local_twilio(data).map_err(|e| e.to_string())?;
    let simulation = shared::call_simulator::simulate(&twilio, server, &call).await?;
    println!(
        "Call {} from {} to {}:",
        simulation.sid,
        call.from.as_str(),
        call.to.as_str()
    );
    for said in &simulation.heard {
        println!("  the caller hears: {said}");
    }
    match (&simulation.put_through_to, simulation.outcome) {
        (Some(number), Some("completed")) => {
            println!("  put through to {number}, connected {seconds} s")
        }
        (Some(number), _) => println!("  put through to {number}, nobody answered"),
        (None, _) => println!("  not put through"),
    }
    println!("See it with GET /api/calls; a qualified call converts (GET /api/conversions).");
    Ok(())
}

async fn provision() -> Result<(), String> {
    for line in shared::app::provision_from_env().await? {
        println!("{line}");
    }
    Ok(())
}

async fn baseline(addr: SocketAddr) -> Result<(), String> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    println!(
        "baseline 302 server at http://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    server::serve_baseline(listener, shutdown_signal()).await;
    Ok(())
}

async fn create_admin(email: &str, name: &str, data: &Path, backend: &str) -> Result<(), String> {
    let email = EmailAddress::parse(email).map_err(|problem| format!("--email {problem}"))?;
    let name = check_name(name).map_err(|problem| format!("--name {problem}"))?;
    eprintln!("Type the new admin's password (12 to 128 characters) and press Enter:");
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password: {e}"))?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    check_password(&password).map_err(|problem| format!("the password {problem}"))?;
    let (app, _) = open(data, backend).await?;
    let account = shared::accounts::create_admin(&app, email, name, &Secret::new(password))
        .await
        .map_err(|e| match e {
            AccountError::EmailTaken => "that email already has an account".to_string(),
            other => other.to_string(),
        })?;
    println!("Created admin {} ({}).", account.email.as_str(), account.id);
    Ok(())
}

/// Runs every scheduled job on its local timer until `stop` turns true; a run in progress
/// finishes first.
async fn run_jobs(app: App, stop: tokio::sync::watch::Receiver<bool>) {
    let mut timers = tokio::task::JoinSet::new();
    for job in shared::jobs::JOBS {
        let (app, mut stop) = (app.clone(), stop.clone());
        timers.spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(job.every) => {}
                    _ = stop.changed() => return,
                }
                match (job.run)(app.clone()).await {
                    Ok(report) => tracing::debug!(job = job.name, %report, "job run"),
                    Err(error) => tracing::error!(job = job.name, error = %shared::http::ErrorChain(&error), "job failed"),
                }
            }
        });
    }
    timers.join_all().await;
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("a SIGTERM handler can be installed");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option number is mimalloc's, not libmimalloc-sys's: an update of mimalloc that
    /// renumbered its options would make `main` set another one.
    #[test]
    fn option_15_is_the_purge_delay() {
        // SAFETY: reads an option; the test sets none.
        let delay = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        let expected = std::env::var("MIMALLOC_PURGE_DELAY")
            .ok()
            .and_then(|value| value.parse().ok())
            .unwrap_or(1_000);
        assert_eq!(delay, expected, "mimalloc v3's default purge delay, in ms");
    }
}
