//! Payouts (the `payouts` function): an affiliate's payout method, balance and payout history;
//! admins' payout runs, their reports, and a run on demand. Bank account numbers are taken in
//! and never given back: answers show the last four digits.

use lambda_http::http::StatusCode;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::{Route, schema};
use crate::app::App;
use crate::caller::{ADMIN, AFFILIATE, Access, caller};
use crate::domain::accounts::Role;

const AFFILIATE_OR_ADMIN: Access = Access::Roles(&[Role::Admin, Role::Affiliate]);
use crate::domain::ids::AffiliateId;
use crate::domain::ledger::Account;
use crate::domain::money::{Currency, Money};
use crate::domain::payout::{AccountHolder, AccountType, Payout, PayoutMethod, PayoutStatus, Rail};
use crate::http::{ApiError, Fields, Params, Request, Response, json, json_body, path_param};
use crate::payouts::{self, MethodInput, PayoutError};
use crate::secret::Secret;
use crate::store::PayoutRun;

pub const GET_METHOD: Route = Route::new(
    "payouts",
    &["GET"],
    "/api/payouts/method",
    AFFILIATE,
    "The affiliate's payout method, if any (bank accounts by their last four digits)",
    |app, request| Box::pin(get_method(app, request)),
)
.answers(schema::<MethodAnswer>);

pub const SET_METHOD: Route = Route::new("payouts", &["PUT"], "/api/payouts/method", AFFILIATE,
    "Set the payout method: `{\"type\":\"paypal\",\"email\":…}` or `{\"type\":\"ach\",\"routing_number\":…,\"account_number\":…,\"account_type\":\"checking\"|\"savings\",\"name_on_account\":…}`; a change holds payouts for the cooling-off period and is mailed to the affiliate",
    |app, request| Box::pin(set_method(app, request)))
.takes(schema::<MethodInputDoc>)
.answers(schema::<MethodAnswer>);

pub const BALANCE: Route = Route::new(
    "payouts",
    &["GET"],
    "/api/payouts/balance",
    AFFILIATE,
    "The affiliate's earnings by currency: pending approval, approved but on hold, payable",
    |app, request| Box::pin(balance(app, request)),
)
.answers(schema::<BalanceView>);

pub const LIST: Route = Route::new(
    "payouts",
    &["GET"],
    "/api/payouts",
    AFFILIATE_OR_ADMIN,
    "Payouts, newest first: an affiliate's own (admins add `?affiliate_id=`)",
    |app, request| Box::pin(list(app, request)),
)
.answers(schema::<PayoutList>);

pub const CONVERSIONS: Route = Route::new("payouts", &["GET"], "/api/payouts/{payout_id}/conversions", AFFILIATE_OR_ADMIN,
    "The conversions whose earnings a payout paid: those that became payable after the affiliate's previous payout in that currency, up to this one",
    |app, request| Box::pin(conversions(app, request)))
.answers(schema::<super::conversions::ConversionList>);

pub const RETRY: Route = Route::new("payouts", &["POST"], "/api/admin/payouts/{payout_id}/retry", ADMIN,
    "Pay a failed payout's affiliate again now (their payable balance, which holds the failed amount), in a run of its own",
    |app, request| Box::pin(retry(app, request)))
.succeeds_with(&[200])
.answers(schema::<PayoutRunView>);

pub const RUNS: Route = Route::new(
    "payouts",
    &["GET"],
    "/api/admin/payout-runs",
    ADMIN,
    "Payout runs, newest first, with their reports",
    |app, request| Box::pin(runs(app, request)),
)
.answers(schema::<RunList>);

pub const ACH_FILE: Route = Route::new(
    "payouts",
    &["GET"],
    "/api/admin/payout-runs/{run_id}/ach",
    ADMIN,
    "A payout run's NACHA file (text/plain, 94-character records) to upload to the bank; it holds full account numbers, so each download is audited",
    |app, request| Box::pin(ach_file(app, request)),
)
.succeeds_with(&[200]);

pub const ACH_RETURNS: Route = Route::new(
    "payouts",
    &["POST"],
    "/api/admin/ach-returns",
    ADMIN,
    "Record the bank's NACHA return file (the body, `text/plain`, at most 1 MiB): each return's payout (found by its original trace number, payee and amount) is marked failed and its amount is payable again; returns that say the account cannot take payments (R02, R03, R04, R12–R17, R20, R23) stop the affiliate's method until they give another; every affiliate concerned is mailed once. Uploading the same file again changes nothing. A file that is not a whole return file is refused naming the record.",
    |app, request| Box::pin(ach_returns(app, request)),
)
.succeeds_with(&[200])
.answers(schema::<crate::ach_returns::ReturnsRecorded>);

pub const RUN_NOW: Route = Route::new(
    "payouts",
    &["POST"],
    "/api/admin/payout-runs",
    ADMIN,
    "Run (or resume) today's payout run now; once it has finished, a later run the same day pays those who became payable since (`{day}-2`, …), and with nothing new owed the day's last run answers as it was",
    |app, request| Box::pin(run_now(app, request)),
)
.succeeds_with(&[200])
.answers(schema::<PayoutRunView>);

/// The body of `PUT /api/payouts/method` (documentation; read field by field so that no
/// account number can echo back in an error).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct MethodInputDoc {
    /// `paypal` or `ach`.
    r#type: String,
    /// PayPal: the account's email.
    email: Option<String>,
    /// ACH: 9 digits passing the ABA checksum.
    routing_number: Option<String>,
    /// ACH: 4 to 17 digits; stored encrypted, shown by its last four.
    account_number: Option<String>,
    account_type: Option<AccountType>,
    /// ACH: `individual` (the default; paid in a PPD batch) or `company` (CCD).
    account_holder: Option<AccountHolder>,
    /// ACH: 1 to 22 characters, as the bank has it.
    name_on_account: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct MethodView {
    pub r#type: Rail,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_last4: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_type: Option<AccountType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_holder: Option<AccountHolder>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name_on_account: Option<String>,
    /// Payouts wait until then after a change (the cooling-off period).
    pub payouts_held_until: String,
    /// The bank returned a payment to this account saying it cannot take payments: payouts
    /// wait until another method is given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<StoppedView>,
}

#[derive(Serialize, ToSchema)]
pub struct StoppedView {
    /// The bank's return reason code (`R03`).
    pub code: String,
    /// What it means.
    pub reason: String,
    /// The payout that came back.
    pub payout_id: String,
    pub at: String,
}

#[derive(Serialize, ToSchema)]
pub struct MethodAnswer {
    /// Absent until the affiliate sets one.
    pub method: Option<MethodView>,
}

#[derive(Serialize, ToSchema)]
pub struct CurrencyBalance {
    pub currency: String,
    /// Earned on conversions not yet approved.
    pub pending: String,
    /// Approved, in the offer's hold period.
    pub on_hold: String,
    /// Paid at the next run if it reaches the minimum; negative after a reversal of earnings
    /// already paid (recovered from later earnings).
    pub payable: String,
}

#[derive(Serialize, ToSchema)]
pub struct BalanceView {
    pub balances: Vec<CurrencyBalance>,
    /// The least a payout may be.
    pub minimum_payout: String,
}

#[derive(Serialize, ToSchema)]
pub struct PayoutView {
    pub id: String,
    pub run: String,
    pub affiliate_id: String,
    pub amount: String,
    pub currency: String,
    pub status: PayoutStatus,
    /// PayPal's email, or the bank account by its last four digits.
    pub destination: String,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PayoutList {
    pub payouts: Vec<PayoutView>,
}

#[derive(Serialize, ToSchema)]
pub struct RunList {
    pub runs: Vec<PayoutRunView>,
}

/// A payout run as the API shows it: what it paid and when, not the bookkeeping a resumed run
/// keeps (which step it reached, a digest of who was owed, its first trace number).
#[derive(Serialize, ToSchema)]
pub struct PayoutRunView {
    /// The period it pays for, the UTC date of its schedule (`2026-11-30`), and for a later
    /// run the same day its number (`2026-11-30-2`); an admin's retry for one affiliate
    /// `2026-11-30-retry-{affiliate}`.
    pub id: String,
    pub started_at: String,
    /// Unset while it runs.
    pub finished_at: Option<String>,
    /// PayPal's id of the run's batch, once PayPal accepted it.
    pub paypal_batch_id: Option<String>,
    /// One line per affiliate and currency: paid, carried over, or why not.
    pub report: Vec<String>,
    /// A run for one affiliate only (an admin's retry of a failed payout).
    pub affiliate: Option<String>,
}

impl PayoutRunView {
    fn of(run: &PayoutRun) -> Self {
        Self {
            id: run.id.clone(),
            started_at: run.started_at.to_string(),
            finished_at: run.finished_at.map(|at| at.to_string()),
            paypal_batch_id: run.paypal_batch_id.clone(),
            report: run.report.clone(),
            affiliate: run.affiliate.map(|a| a.to_string()),
        }
    }
}

fn method_view(account: &crate::domain::payout::PayoutAccount) -> MethodView {
    let held = account.hold_until.to_string();
    let stopped = account.stopped.as_ref().map(|stop| StoppedView {
        code: stop.code.clone(),
        reason: crate::domain::nacha_returns::reason(&stop.code).to_string(),
        payout_id: stop.payout.clone(),
        at: stop.at.to_string(),
    });
    match &account.method {
        PayoutMethod::Paypal { email } => MethodView {
            r#type: Rail::Paypal,
            email: Some(email.as_str().to_string()),
            routing_number: None,
            account_last4: None,
            account_type: None,
            account_holder: None,
            name_on_account: None,
            payouts_held_until: held,
            stopped,
        },
        PayoutMethod::Ach {
            routing_number,
            account_last4,
            account_type,
            account_holder,
            name_on_account,
            ..
        } => MethodView {
            r#type: Rail::Ach,
            email: None,
            routing_number: Some(routing_number.as_str().to_string()),
            account_last4: Some(account_last4.clone()),
            account_type: Some(*account_type),
            account_holder: Some(*account_holder),
            name_on_account: Some(name_on_account.clone()),
            payouts_held_until: held,
            stopped,
        },
    }
}

fn payout_view(payout: &Payout) -> PayoutView {
    PayoutView {
        id: payout.id.clone(),
        run: payout.run.clone(),
        affiliate_id: payout.affiliate_id.to_string(),
        amount: payout.amount.to_decimal(),
        currency: payout.amount.currency.code().to_string(),
        status: payout.status,
        destination: payouts::describe(&payout.method),
        created_at: payout.created_at.to_string(),
        reference: payout.reference.clone(),
        failure: payout.failure.clone(),
    }
}

async fn get_method(app: App, request: Request) -> Result<Response, ApiError> {
    let affiliate = crate::caller::active_affiliate(&request)?;
    let account = app
        .store
        .payout_account(affiliate)
        .await
        .map_err(ApiError::internal)?;
    Ok(json(
        StatusCode::OK,
        &MethodAnswer {
            method: account.as_ref().map(method_view),
        },
    ))
}

async fn set_method(app: App, request: Request) -> Result<Response, ApiError> {
    let affiliate = crate::caller::active_affiliate(&request)?;
    const KNOWN: [&str; 7] = [
        "type",
        "email",
        "routing_number",
        "account_number",
        "account_type",
        "account_holder",
        "name_on_account",
    ];
    let fields = Fields::of(json_body(&request)?, &KNOWN, "a payout method")?;
    let text = |name: &'static str| fields.text(name);
    let input = match text("type")?.as_str() {
        "paypal" => MethodInput::Paypal {
            email: text("email")?,
        },
        "ach" => MethodInput::Ach {
            routing_number: text("routing_number")?,
            account_number: Secret::new(text("account_number")?),
            account_type: match text("account_type")?.as_str() {
                "checking" => AccountType::Checking,
                "savings" => AccountType::Savings,
                _ => {
                    return Err(ApiError::invalid(
                        "account_type",
                        "must be checking or savings",
                    ));
                }
            },
            account_holder: match fields.get("account_holder") {
                None => AccountHolder::Individual,
                Some(Value::String(holder)) if holder == "individual" => AccountHolder::Individual,
                Some(Value::String(holder)) if holder == "company" => AccountHolder::Company,
                Some(_) => {
                    return Err(ApiError::invalid(
                        "account_holder",
                        "must be individual or company",
                    ));
                }
            },
            name_on_account: text("name_on_account")?,
        },
        _ => return Err(ApiError::invalid("type", "must be paypal or ach")),
    };
    let caller = caller(&request);
    let account = payouts::set_method(&app, affiliate, &caller.account.email, input)
        .await
        .map_err(|error| match error {
            PayoutError::Invalid { field, problem } => ApiError::invalid(field, problem),
            other => ApiError::internal(other),
        })?;
    caller.audit(&app, "payout_method.changed", None).await?;
    Ok(json(
        StatusCode::OK,
        &MethodAnswer {
            method: Some(method_view(&account)),
        },
    ))
}

async fn balance(app: App, request: Request) -> Result<Response, ApiError> {
    let affiliate = crate::caller::active_affiliate(&request)?;
    let currencies = app
        .store
        .offer_currencies()
        .await
        .map_err(ApiError::internal)?;
    let mut balances = Vec::new();
    for currency in currencies {
        let mut amounts = Vec::new();
        for account in [
            Account::affiliate_pending(affiliate),
            Account::affiliate_held(affiliate),
            Account::affiliate_payable(affiliate),
        ] {
            let balance = app
                .store
                .balance(&account, currency)
                .await
                .map_err(ApiError::internal)?;
            // Credits are what the affiliate is owed: shown positive.
            amounts.push(Money::new(-balance, currency).to_decimal());
        }
        let [pending, on_hold, payable] =
            <[String; 3]>::try_from(amounts).map_err(|_| ApiError::internal("three balances"))?;
        balances.push(CurrencyBalance {
            currency: currency.code().to_string(),
            pending,
            on_hold,
            payable,
        });
    }
    Ok(json(
        StatusCode::OK,
        &BalanceView {
            balances,
            minimum_payout: Money::new(
                app.payouts.minimum,
                Currency::parse("USD").map_err(ApiError::internal)?,
            )
            .to_decimal(),
        },
    ))
}

async fn list(app: App, request: Request) -> Result<Response, ApiError> {
    let caller = caller(&request);
    let affiliate = if let Some(affiliate) = caller.account.affiliate_id() {
        affiliate
    } else {
        let params = Params::from_query(&request)?;
        params
            .text("affiliate_id", 26)?
            .and_then(AffiliateId::parse)
            .ok_or_else(|| ApiError::invalid("affiliate_id", "admins name one affiliate"))?
    };
    let payouts = app
        .store
        .payouts_of_affiliate(affiliate)
        .await
        .map_err(ApiError::internal)?;
    Ok(json(
        StatusCode::OK,
        &PayoutList {
            payouts: payouts.iter().map(payout_view).collect(),
        },
    ))
}

async fn runs(app: App, _request: Request) -> Result<Response, ApiError> {
    let runs = app.store.runs(100).await.map_err(ApiError::internal)?;
    Ok(json(
        StatusCode::OK,
        &RunList {
            runs: runs.iter().map(PayoutRunView::of).collect(),
        },
    ))
}

async fn ach_file(app: App, request: Request) -> Result<Response, ApiError> {
    let run = path_param(&request, "run_id").unwrap_or_default();
    let file = payouts::ach_file(&app, &run)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("run_id", "no ACH file for this run"))?;
    caller(&request)
        .audit(&app, "payout_run.ach_downloaded", Some(run.clone()))
        .await?;
    let mut response = crate::http::uncached(
        StatusCode::OK,
        "text/plain; charset=us-ascii",
        lambda_http::Body::Binary(file),
    );
    let disposition = format!("attachment; filename=\"leadsrefer-ach-{run}.txt\"");
    if let Ok(value) = lambda_http::http::HeaderValue::from_str(&disposition) {
        response
            .headers_mut()
            .insert(lambda_http::http::header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

async fn ach_returns(app: App, request: Request) -> Result<Response, ApiError> {
    let content_type = request
        .headers()
        .get(lambda_http::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim_start()
        .to_ascii_lowercase();
    if !(content_type.starts_with("text/plain")
        || content_type.starts_with("application/octet-stream"))
    {
        return Err(ApiError::invalid(
            "content-type",
            "must be text/plain: send the bank's return file as the body",
        ));
    }
    let recorded = crate::ach_returns::record(&app, request.body().as_ref())
        .await
        .map_err(|error| match error {
            PayoutError::Invalid { field, problem } => ApiError::invalid(field, problem),
            other => ApiError::internal(other),
        })?;
    caller(&request)
        .audit(
            &app,
            "ach_returns.recorded",
            Some(format!(
                "{} entries, {} payouts failed",
                recorded.entries.len(),
                recorded.recorded
            )),
        )
        .await?;
    Ok(json(StatusCode::OK, &recorded))
}

async fn run_now(app: App, request: Request) -> Result<Response, ApiError> {
    let period = payouts::period_of(app.clock.now());
    let run = payouts::run(&app, &period)
        .await
        .map_err(ApiError::internal)?;
    // The run it ran or answered: the day's, or a later one the same day (`{day}-2`).
    caller(&request)
        .audit(&app, "payout_run.started", Some(run.id.clone()))
        .await?;
    Ok(json(StatusCode::OK, &PayoutRunView::of(&run)))
}

/// The payout a path names, if the caller may see it.
async fn visible_payout(app: &App, request: &Request) -> Result<Payout, ApiError> {
    let hidden = || ApiError::not_found("payout_id", "no such payout");
    let id = path_param(request, "payout_id").ok_or_else(hidden)?;
    let payout = app
        .store
        .payout(&id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(hidden)?;
    let caller = caller(request);
    match caller.account.affiliate_id() {
        Some(affiliate) if affiliate != payout.affiliate_id => Err(hidden()),
        _ => Ok(payout),
    }
}

async fn conversions(app: App, request: Request) -> Result<Response, ApiError> {
    let payout = visible_payout(&app, &request).await?;
    let currency = payout.amount.currency;
    // The window: after the affiliate's previous payout in this currency, up to this one.
    let previous = app
        .store
        .payouts_of_affiliate(payout.affiliate_id)
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .filter(|p| p.amount.currency == currency && p.created_at < payout.created_at)
        .map(|p| p.created_at)
        .max();
    let mut paid = Vec::new();
    let mut cursor = None;
    loop {
        let (page, next) = app
            .store
            .conversions_of_affiliate(payout.affiliate_id, cursor, 500)
            .await
            .map_err(ApiError::internal)?;
        paid.extend(page.into_iter().filter(|c| {
            c.matured
                && c.payout.currency == currency
                && c.payable_at.is_some_and(|at| {
                    at <= payout.created_at && previous.is_none_or(|previous| at > previous)
                })
        }));
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(json(
        StatusCode::OK,
        &super::conversions::ConversionList {
            conversions: paid
                .iter()
                .map(|c| super::conversions::view(c, caller(&request).is_admin(), true))
                .collect(),
            next_cursor: None,
        },
    ))
}

async fn retry(app: App, request: Request) -> Result<Response, ApiError> {
    let payout = visible_payout(&app, &request).await?;
    let run = payouts::retry(&app, &payout.id)
        .await
        .map_err(|error| match error {
            PayoutError::Invalid { field, problem } => ApiError::conflict(field, problem),
            other => ApiError::internal(other),
        })?;
    caller(&request)
        .audit(&app, "payout.retried", Some(payout.id))
        .await?;
    Ok(json(StatusCode::OK, &PayoutRunView::of(&run)))
}
