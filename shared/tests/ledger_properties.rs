//! Property tests of the money path: random sequences of conversions, approvals, rejections,
//! reversals, time passing with the maturation job, and payout runs, some of them hit by an
//! injected storage failure (before or after the write reaches the store, at any step) and then
//! run again. After every step: each balance equals the sum of its entries, the ledger sums to
//! zero, every cent of the live conversions' payouts is pending, held, payable, in clearing or
//! paid out, and money paid out equals the payouts made, each once.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use shared::App;
use shared::domain::email::EmailAddress;
use shared::domain::ids::ConversionId;
use shared::domain::ledger::Account;
use shared::domain::money::Currency;
use shared::domain::payout::{PayoutStatus, check_account_number};
use shared::domain::tracking::{ConversionStatus, EventName};
use shared::lifecycle::{Decider, Decision};
use shared::payouts::MethodInput;
use shared::ports::table::{Item, Key, Page, Query, Table, TableError, Update, Write};
use shared::ports::{Cond, ManualClock};
use shared::secret::Secret;
use shared::store::Store;
use shared::tracking::{ClickRequest, Postback, PostbackAuth};

/// A `Table` whose writes fail on demand: the armed write fails before reaching the store (a
/// crash before it) or after (a crash before the answer), as chosen.
struct Faulty {
    inner: Arc<dyn Table>,
    /// (writes to let through first, fail after the write instead of before).
    armed: Mutex<Option<(u32, bool)>>,
}

impl Faulty {
    /// Whether this write fails, and when.
    fn trip(&self) -> Option<bool> {
        let mut armed = self.armed.lock().unwrap();
        match armed.as_mut() {
            Some((0, after)) => {
                let after = *after;
                *armed = None;
                Some(after)
            }
            Some((n, _)) => {
                *n -= 1;
                None
            }
            None => None,
        }
    }

    async fn write<T>(
        &self,
        write: impl std::future::Future<Output = Result<T, TableError>>,
    ) -> Result<T, TableError> {
        match self.trip() {
            None => write.await,
            Some(false) => Err(TableError::Backend(
                "injected failure before the write".into(),
            )),
            Some(true) => {
                write.await?;
                Err(TableError::Backend(
                    "injected failure after the write".into(),
                ))
            }
        }
    }
}

#[async_trait]
impl Table for Faulty {
    async fn get(&self, key: &Key) -> Result<Option<Item>, TableError> {
        self.inner.get(key).await
    }
    async fn put(&self, item: Item, cond: Cond) -> Result<(), TableError> {
        self.write(self.inner.put(item, cond)).await
    }
    async fn update(&self, key: &Key, update: Update, cond: Cond) -> Result<Item, TableError> {
        self.write(self.inner.update(key, update, cond)).await
    }
    async fn delete(&self, key: &Key, cond: Cond) -> Result<Option<Item>, TableError> {
        self.write(self.inner.delete(key, cond)).await
    }
    async fn query(&self, query: Query) -> Result<Page, TableError> {
        self.inner.query(query).await
    }
    async fn transact(&self, writes: Vec<Write>) -> Result<(), TableError> {
        self.write(self.inner.transact(writes)).await
    }
    async fn transact_deferred(&self, writes: Vec<Write>) -> Result<(), TableError> {
        self.write(self.inner.transact_deferred(writes)).await
    }
    async fn update_deferred(
        &self,
        key: &Key,
        update: Update,
        cond: Cond,
    ) -> Result<Item, TableError> {
        self.write(self.inner.update_deferred(key, update, cond))
            .await
    }
    async fn flush(&self) -> Result<(), TableError> {
        self.inner.flush().await
    }
}

#[derive(Clone, Debug)]
enum Step {
    Convert,
    Approve(usize),
    Reject(usize),
    Reverse(usize),
    /// Hours pass, then the maturation job runs.
    Wait(u8),
    PayoutRun,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => Just(Step::Convert),
        4 => any::<usize>().prop_map(Step::Approve),
        1 => any::<usize>().prop_map(Step::Reject),
        1 => any::<usize>().prop_map(Step::Reverse),
        2 => (1u8..=48).prop_map(Step::Wait),
        2 => Just(Step::PayoutRun),
    ]
}

/// A failure to inject into a step: after how many writes, and before or after the write.
fn fault() -> impl Strategy<Value = Option<(u32, bool)>> {
    prop_oneof![3 => Just(None), 1 => (0u32..6, any::<bool>()).prop_map(Some)]
}

struct World {
    app: App,
    faulty: Arc<Faulty>,
    clock: Arc<ManualClock>,
    demo: shared::seed::Demo,
    conversions: Vec<ConversionId>,
    _data: tempfile::TempDir,
}

impl World {
    async fn new(hold_days: u32) -> Self {
        let data = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::at(
            Timestamp::from_second(1_795_935_600).unwrap(),
        ));
        let sender = EmailAddress::parse("no-reply@leadsrefer.local").unwrap();
        let mut app = App::embedded(data.path(), clock.clone(), sender).unwrap();
        let faulty = Arc::new(Faulty {
            inner: app.table.clone(),
            armed: Mutex::new(None),
        });
        app.table = faulty.clone();
        app.store = Store::new(faulty.clone());
        let (demo, _) = shared::seed::seed_demo(&app).await.unwrap();
        let mut offer = app.store.offer(demo.offer_id).await.unwrap().unwrap();
        offer.hold_days = hold_days;
        app.store.save_offer(&offer).await.unwrap();
        let number = "000123456789";
        check_account_number(number).unwrap();
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
                account_number: Secret::new(number.into()),
                account_type: shared::domain::payout::AccountType::Checking,
                account_holder: shared::domain::payout::AccountHolder::Individual,
                name_on_account: "Pat Publisher".into(),
            },
        )
        .await
        .unwrap();
        Self {
            app,
            faulty,
            clock,
            demo,
            conversions: Vec::new(),
            _data: data,
        }
    }

    fn pick(&self, index: usize) -> Option<ConversionId> {
        (!self.conversions.is_empty()).then(|| self.conversions[index % self.conversions.len()])
    }

    /// Runs a step; `Err` only for a storage failure (the injected one).
    async fn run(&mut self, step: &Step, n: usize) -> Result<(), String> {
        let app = self.app.clone();
        let failed = |e: &dyn std::fmt::Display| e.to_string();
        match step {
            Step::Convert => {
                let request = ClickRequest {
                    subs: Default::default(),
                    ip: format!("198.51.100.{}", n % 250 + 1).parse().unwrap(),
                    country: None,
                    region: None,
                    user_agent: Some("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/124.0"),
                    head: false,
                };
                let click = shared::tracking::record_click(&app, &self.demo.link, request)
                    .await
                    .map_err(|e| failed(&e))?;
                // A lost click is the visitor's to make again; the conversion is what counts.
                app.table.flush().await.map_err(|e| failed(&e))?;
                let postback = || Postback {
                    click_id: click.click.id,
                    txn_id: Some(format!("T{n}")),
                    event: EventName::default_event(),
                    amount: None,
                    currency: None,
                    auth: PostbackAuth::Token(self.demo.postback_token.expose().clone()),
                    client_prefix: None,
                };
                let recorded = shared::tracking::record_conversion(&app, postback())
                    .await
                    .map_err(|e| failed(&e))?;
                let id = match recorded {
                    shared::store::Recorded::New(c) | shared::store::Recorded::Duplicate(c) => c.id,
                };
                if !self.conversions.contains(&id) {
                    self.conversions.push(id);
                }
            }
            Step::Approve(i) | Step::Reject(i) | Step::Reverse(i) => {
                let Some(id) = self.pick(*i) else {
                    return Ok(());
                };
                let decision = match step {
                    Step::Approve(_) => Decision::Approve,
                    Step::Reject(_) => Decision::Reject,
                    _ => Decision::Reverse,
                };
                match shared::lifecycle::decide(&app, id, decision, None, Decider::Admin).await {
                    Ok(_)
                    | Err(shared::lifecycle::LifecycleError::NotAllowed { .. })
                    | Err(shared::lifecycle::LifecycleError::Changed) => {}
                    Err(e) => return Err(failed(&e)),
                }
            }
            Step::Wait(hours) => {
                self.clock
                    .advance(SignedDuration::from_hours(i64::from(*hours)));
                (shared::jobs::find("maturation").unwrap().run)(app)
                    .await
                    .map_err(|e| failed(&e))?;
            }
            Step::PayoutRun => {
                shared::payouts::job(app).await.map_err(|e| failed(&e))?;
            }
        }
        Ok(())
    }

    /// Every invariant of the money, checked from the store.
    async fn check(&self) {
        let usd = Currency::parse("USD").unwrap();
        let store = &self.app.store;
        let affiliate = self.demo.affiliate_id;
        let accounts = [
            Account::advertiser_receivable(self.demo.advertiser_id),
            Account::affiliate_pending(affiliate),
            Account::affiliate_held(affiliate),
            Account::affiliate_payable(affiliate),
            Account::platform_margin(),
            Account::payouts_clearing(),
            Account::platform_cash(),
        ];
        let mut balances = Vec::new();
        for account in &accounts {
            let balance = store.balance(account, usd).await.unwrap();
            assert_eq!(
                balance,
                store.balance_from_entries(account, usd).await.unwrap(),
                "{account:?}"
            );
            balances.push(balance);
        }
        assert_eq!(
            balances.iter().sum::<i64>(),
            0,
            "the ledger sums to zero: {balances:?}"
        );
        let conversions = store
            .conversions_of_offer(self.demo.advertiser_id, self.demo.offer_id)
            .await
            .unwrap();
        let live: Vec<_> = conversions
            .iter()
            .filter(|c| {
                matches!(
                    c.status,
                    ConversionStatus::Pending | ConversionStatus::Approved
                )
            })
            .collect();
        let earned: i64 = live.iter().map(|c| c.payout.minor).sum();
        let revenue: i64 = live.iter().map(|c| c.revenue.minor).sum();
        assert_eq!(
            balances[0], revenue,
            "the advertiser owes the live conversions' revenue"
        );
        assert_eq!(
            -(balances[1] + balances[2] + balances[3] + balances[5] + balances[6]),
            earned,
            "every cent earned is pending, held, payable, in clearing or paid: {balances:?}"
        );
        let mut paid = 0;
        for run in store.runs(1000).await.unwrap() {
            for payout in store.payouts_of_run(&run.id).await.unwrap() {
                if matches!(payout.status, PayoutStatus::Sent | PayoutStatus::Paid) {
                    paid += payout.amount.minor;
                }
            }
        }
        assert_eq!(
            -balances[6], paid,
            "cash out equals the payouts sent, each once"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn no_cent_is_created_or_lost(
        hold in prop_oneof![Just(0u32), Just(1u32)],
        steps in proptest::collection::vec((step(), fault()), 1..30),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let mut world = World::new(hold).await;
            for (n, (step, fault)) in steps.iter().enumerate() {
                *world.faulty.armed.lock().unwrap() = *fault;
                if world.run(step, n).await.is_err() {
                    // The crash: every invariant still holds, and running the step again
                    // finishes what it began, never twice.
                    *world.faulty.armed.lock().unwrap() = None;
                    world.check().await;
                    world.run(step, n).await.unwrap();
                }
                *world.faulty.armed.lock().unwrap() = None;
                world.check().await;
            }
        });
    }
}
