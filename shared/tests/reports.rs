//! Reports against the records they summarise: generated traffic (thousands of clicks from many
//! visitors over several days, conversions, duplicates and robots) goes through the real
//! routes, and every report total must equal what a count of the stored records gives.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use lambda_http::Body;
use serde_json::{Value, json};
use shared::App;
use shared::domain::tracking::{Click, Conversion, ConversionStatus};
use shared::http::Response;
use shared::ports::{Clock, ManualClock};
use shared::seed::Demo;
use support::body;

mod support;

const PHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
const DESKTOP: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
const BOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

struct World {
    app: App,
    clock: Arc<ManualClock>,
    demo: Demo,
    data: tempfile::TempDir,
}

/// A small deterministic generator: the same traffic on every run.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % sides
    }
}

impl World {
    async fn new() -> Self {
        // 2026-06-28 20:26:40 UTC: late in the day, so traffic spans several local days.
        let support::Platform {
            app,
            clock,
            demo,
            data,
        } = support::platform(1_782_678_400).await;
        Self {
            app,
            clock,
            demo,
            data,
        }
    }

    async fn send(&self, uri: &str, ip: &str, headers: &[(&str, &str)]) -> Response {
        support::send(&self.app, "GET", uri, ip, headers, None).await
    }

    async fn sign_in(&self, role: &str) -> String {
        support::sign_in(&self.app, &self.demo, role).await.0
    }

    async fn report(&self, cookie: &str, query: &str) -> Response {
        self.send(
            &format!("/api/reports?{query}"),
            "192.0.2.1",
            &[("cookie", cookie)],
        )
        .await
    }

    /// Every stored click, read from the database file itself.
    async fn clicks(&self) -> Vec<Click> {
        self.app.table.flush().await.unwrap();
        let db = rusqlite::Connection::open(self.data.path().join("leadsrefer.sqlite3")).unwrap();
        let mut statement = db
            .prepare("SELECT attrs FROM items WHERE pk LIKE 'CLICK#%'")
            .unwrap();
        statement
            .query_map([], |row| row.get::<_, String>(0))
            .unwrap()
            .map(|attrs| serde_json::from_str(&attrs.unwrap()).unwrap())
            .collect()
    }

    async fn conversions(&self) -> Vec<Conversion> {
        self.app
            .store
            .conversions_of_offer(self.demo.advertiser_id, self.demo.offer_id)
            .await
            .unwrap()
    }

    /// Sends generated traffic: answers how many clicks and postbacks were answered.
    async fn generate(&self, clicks: usize) -> (usize, usize) {
        let mut dice = Dice(0x9E37_79B9_7F4A_7C15);
        let mut click_ids = Vec::new();
        let mut postbacks = 0;
        for n in 0..clicks {
            // 400 visitors in 40 networks; repeat visits make gross and unique differ.
            let visitor = dice.roll(400);
            let ip = format!("198.51.{}.{}", visitor / 10, visitor % 10 + 1);
            let agent = [PHONE, DESKTOP, DESKTOP, BOT][dice.roll(4) as usize];
            let country = ["US", "DE", "FR", ""][dice.roll(4) as usize];
            let sub = ["alpha", "beta", "=cmd|' /C calc'!A0", ""][dice.roll(4) as usize];
            let mut headers = vec![("user-agent", agent)];
            if !country.is_empty() {
                headers.push(("cloudfront-viewer-country", country));
            }
            let uri = if sub.is_empty() {
                format!("/c/{}", self.demo.link)
            } else {
                format!("/c/{}?sub2={}", self.demo.link, urlencode(sub))
            };
            let response = self.send(&uri, &ip, &headers).await;
            assert_eq!(response.status(), 302, "click {n}");
            let location = response.headers()["location"].to_str().unwrap();
            let id = location.split("clickid=").nth(1).unwrap();
            click_ids.push((id.split('&').next().unwrap().to_string(), ip));
            // A conversion for about one click in four, some of them sent twice.
            if dice.roll(4) == 0 {
                let (click, ip) = &click_ids[dice.roll(click_ids.len() as u64) as usize];
                let txn = format!("T{}", dice.roll(1_000_000));
                let uri = format!(
                    "/postback?click_id={click}&txn_id={txn}&token={}",
                    self.demo.postback_token.expose()
                );
                for _ in 0..=dice.roll(2) {
                    let response = self.send(&uri, ip, &[]).await;
                    assert!(matches!(response.status().as_u16(), 200 | 201));
                    postbacks += 1;
                }
            }
            // Spread over about three days: up to 3 minutes between clicks.
            self.clock
                .advance(SignedDuration::from_secs(dice.roll(180) as i64));
        }
        (clicks, postbacks)
    }
}

fn urlencode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// What a report grouped by day (in `zone`), country, device and sub2 must say, counted from
/// the records alone.
#[derive(Debug, Default, PartialEq, Eq)]
struct Expected {
    clicks: i64,
    unique_clicks: i64,
    invalid_clicks: i64,
    conversions: i64,
    revenue: i64,
    payout: i64,
}

type Group = (String, String, String, String);

fn expected(
    clicks: &[Click],
    conversions: &[Conversion],
    zone: &TimeZone,
) -> BTreeMap<Group, Expected> {
    let group = |at: Timestamp, click: &Click| -> Group {
        let device = click
            .device
            .map(|d| {
                serde_json::to_value(d)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .unwrap_or_default();
        (
            at.to_zoned_datetime(zone.clone()).date().to_string(),
            click.visitor.country.clone().unwrap_or_default(),
            device,
            click.subs.get(1).unwrap_or_default().to_string(),
        )
    };
    let by_id: BTreeMap<String, &Click> = clicks.iter().map(|c| (c.id.to_string(), c)).collect();
    let mut out: BTreeMap<Group, Expected> = BTreeMap::new();
    for click in clicks {
        let row = out.entry(group(click.at, click)).or_default();
        if click.counts() {
            row.clicks += 1;
            row.unique_clicks += i64::from(click.unique);
        } else {
            row.invalid_clicks += 1;
        }
    }
    for conversion in conversions {
        assert_ne!(conversion.status, ConversionStatus::Rejected);
        let click = by_id[&conversion.click_id.to_string()];
        let row = out.entry(group(conversion.at, click)).or_default();
        row.conversions += 1;
        row.revenue += conversion.revenue.minor;
        row.payout += conversion.payout.minor;
    }
    out
}

fn minor(decimal: &Value) -> i64 {
    let text = decimal.as_str().unwrap();
    let (whole, cents) = text.split_once('.').unwrap();
    whole.parse::<i64>().unwrap() * 100 + cents.parse::<i64>().unwrap()
}

/// The groups' sums by day alone.
fn days_of(groups: &BTreeMap<Group, Expected>) -> BTreeMap<String, Expected> {
    sums_by(groups, |(day, ..)| day.clone())
}

/// The groups' sums by what `key` takes of them.
fn sums_by<K: Ord>(
    groups: &BTreeMap<Group, Expected>,
    key: impl Fn(&Group) -> K,
) -> BTreeMap<K, Expected> {
    let mut sums: BTreeMap<K, Expected> = BTreeMap::new();
    for (group, group_sums) in groups {
        let row = sums.entry(key(group)).or_default();
        row.clicks += group_sums.clicks;
        row.unique_clicks += group_sums.unique_clicks;
        row.invalid_clicks += group_sums.invalid_clicks;
        row.conversions += group_sums.conversions;
        row.revenue += group_sums.revenue;
        row.payout += group_sums.payout;
    }
    sums
}

fn sums(row: &Value) -> Expected {
    Expected {
        clicks: row["clicks"].as_i64().unwrap(),
        unique_clicks: row["unique_clicks"].as_i64().unwrap(),
        invalid_clicks: row["invalid_clicks"].as_i64().unwrap(),
        conversions: row["conversions"].as_i64().unwrap(),
        // An affiliate's report has no revenue (the advertiser's side of the money).
        revenue: if row["revenue"].is_null() {
            0
        } else {
            minor(&row["revenue"])
        },
        payout: minor(&row["payout"]),
    }
}

/// The sums an affiliate sees: no revenue.
fn affiliates<K: Ord>(sums: BTreeMap<K, Expected>) -> BTreeMap<K, Expected> {
    sums.into_iter()
        .map(|(key, sums)| (key, Expected { revenue: 0, ..sums }))
        .collect()
}

/// A report grouped by day alone, by day.
fn reported_days(report: &Value) -> BTreeMap<String, Expected> {
    reported_by(report, "day")
}

/// A report grouped by one column alone, by its value.
fn reported_by(report: &Value, column: &str) -> BTreeMap<String, Expected> {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| (row[column].as_str().unwrap().to_string(), sums(row)))
        .collect()
}

fn reported(report: &Value) -> BTreeMap<Group, Expected> {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let text = |name: &str| row[name].as_str().unwrap().to_string();
            (
                (text("day"), text("country"), text("device"), text("sub2")),
                sums(row),
            )
        })
        .collect()
}

#[tokio::test]
async fn reports_of_generated_traffic_equal_the_records_in_every_time_zone() {
    let world = World::new().await;
    let start = world.clock.now();
    let (sent, postbacks) = world.generate(3_000).await;
    let clicks = world.clicks().await;
    let conversions = world.conversions().await;
    assert_eq!(clicks.len(), sent, "every click is recorded");
    assert!(
        conversions.len() > 500 && postbacks > conversions.len(),
        "duplicates were sent"
    );
    assert!(clicks.iter().any(|c| !c.unique) && clicks.iter().any(|c| !c.counts()));

    let admin = world.sign_in("admin").await;
    let days = |zone: &TimeZone| {
        let first = start.to_zoned_datetime(zone.clone()).date();
        let last = world.clock.now().to_zoned_datetime(zone.clone()).date();
        assert!(last.since(first).unwrap().get_days() >= 2, "several days");
        (first, last)
    };
    for zone_name in ["UTC", "America/New_York", "Asia/Tokyo"] {
        let zone = TimeZone::get(zone_name).unwrap();
        let (first, last) = days(&zone);
        let response = world
            .report(
                &admin,
                &format!(
                    "advertiser_id={}&from={first}&to={last}&timezone={}&group_by=day,country,device,sub2",
                    world.demo.advertiser_id,
                    urlencode(zone_name)
                ),
            )
            .await;
        assert_eq!(response.status(), 200, "{:?}", response.body());
        let report = body(&response);
        let want = expected(&clicks, &conversions, &zone);
        assert_eq!(reported(&report), want, "{zone_name}");
        // Grouped by day alone, the report reads the totals instead of the detail: the same
        // sums.
        let by_day = body(
            &world
                .report(
                    &admin,
                    &format!(
                        "advertiser_id={}&from={first}&to={last}&timezone={}&group_by=day",
                        world.demo.advertiser_id,
                        urlencode(zone_name)
                    ),
                )
                .await,
        );
        assert_eq!(reported_days(&by_day), days_of(&want), "{zone_name}");
        // Grouped by one other dimension, it reads the totals' split by country or device (and
        // the advertiser's report by sub-id the detail): the same sums again, including the
        // records without the dimension.
        for (column, value) in [
            (
                "country",
                (|(_, country, ..)| country.clone()) as fn(&Group) -> String,
            ),
            ("device", |(_, _, device, _)| device.clone()),
            ("sub2", |(.., sub2)| sub2.clone()),
        ] {
            let alone = body(
                &world
                    .report(
                        &admin,
                        &format!(
                            "advertiser_id={}&from={first}&to={last}&timezone={}&group_by={column}",
                            world.demo.advertiser_id,
                            urlencode(zone_name)
                        ),
                    )
                    .await,
            );
            assert_eq!(
                reported_by(&alone, column),
                sums_by(&want, value),
                "{zone_name} {column}"
            );
            assert_eq!(alone["totals"], report["totals"], "{zone_name} {column}");
        }
        // The affiliate's by sub-id reads the breakdowns over whole UTC days, and the detail
        // for the hours around them.
        let affiliate = world.sign_in("affiliate").await;
        let subs = body(
            &world
                .report(
                    &affiliate,
                    &format!(
                        "from={first}&to={last}&timezone={}&group_by=sub2",
                        urlencode(zone_name)
                    ),
                )
                .await,
        );
        assert_eq!(
            reported_by(&subs, "sub2"),
            affiliates(sums_by(&want, |(.., sub2)| sub2.clone())),
            "{zone_name}: the affiliate's sub-ids"
        );
        let totals = &report["totals"][0];
        assert_eq!(by_day["totals"], report["totals"], "{zone_name}");
        assert_eq!(
            totals["clicks"],
            clicks.iter().filter(|c| c.counts()).count()
        );
        assert_eq!(totals["conversions"], conversions.len());
        assert_eq!(
            minor(&totals["payout"]),
            conversions.iter().map(|c| c.payout.minor).sum::<i64>()
        );
    }

    // The same report is the affiliate's, with its side of the money only; the advertiser's
    // has revenue and no payout, and the affiliate's sub-ids are not the advertiser's to see.
    let (first, last) = days(&TimeZone::UTC);
    let range = format!("from={first}&to={last}");
    let affiliate = world.sign_in("affiliate").await;
    let mine = body(
        &world
            .report(&affiliate, &format!("{range}&group_by=sub2"))
            .await,
    );
    let total = &mine["totals"][0];
    assert!(total.get("revenue").is_none() && total.get("margin").is_none());
    assert!(total["payout"].is_string() && total["epc"].is_string());
    let advertiser = world.sign_in("advertiser").await;
    let theirs = body(
        &world
            .report(&advertiser, &format!("{range}&group_by=offer"))
            .await,
    );
    assert!(theirs["totals"][0].get("payout").is_none());
    assert_eq!(
        theirs["totals"][0]["revenue"],
        json!(format!(
            "{}.{:02}",
            conversions.iter().map(|c| c.revenue.minor).sum::<i64>() / 100,
            conversions.iter().map(|c| c.revenue.minor).sum::<i64>() % 100
        ))
    );
    let refused = world
        .report(&advertiser, &format!("{range}&group_by=sub2"))
        .await;
    assert_eq!(refused.status(), 403);
    assert_eq!(body(&refused)["error"]["field"], "group_by");
}

/// Whether reports by day from the totals equal those summed from the detail, over the days
/// the traffic took.
async fn totals_agree_with_detail(world: &World, start: Timestamp) -> BTreeMap<String, Expected> {
    let admin = world.sign_in("admin").await;
    let first = start.to_zoned_datetime(TimeZone::UTC).date();
    let last = world.clock.now().to_zoned_datetime(TimeZone::UTC).date();
    let query = |group_by: &str| {
        format!(
            "advertiser_id={}&from={first}&to={last}&group_by={group_by}",
            world.demo.advertiser_id
        )
    };
    let by_day = body(&world.report(&admin, &query("day")).await);
    let detail = body(
        &world
            .report(&admin, &query("day,country,device,sub2"))
            .await,
    );
    let days = reported_days(&by_day);
    let groups = reported(&detail);
    assert_eq!(days, days_of(&groups));
    assert_eq!(by_day["totals"], detail["totals"]);
    // By one other dimension, from the breakdowns over whole UTC days since they began.
    let by_country = body(&world.report(&admin, &query("country")).await);
    assert_eq!(
        reported_by(&by_country, "country"),
        sums_by(&groups, |(_, country, ..)| country.clone())
    );
    // Sub-ids are the affiliate's: its breakdowns (the operator's report of the advertiser by
    // sub-id reads the detail).
    let affiliate = world.sign_in("affiliate").await;
    let by_sub = body(
        &world
            .report(
                &affiliate,
                &format!("from={first}&to={last}&group_by=day,sub2"),
            )
            .await,
    );
    let want = sums_by(&groups, |(day, _, _, sub2)| (day.clone(), sub2.clone()));
    let got: BTreeMap<(String, String), Expected> = by_sub["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let text = |name: &str| row[name].as_str().unwrap().to_string();
            ((text("day"), text("sub2")), sums(row))
        })
        .collect();
    assert_eq!(got, affiliates(want));
    days
}

/// A store made before the totals existed holds detailed counters alone: its reports read
/// the detail until the hour after the next, and the totals from then on, with the same sums.
async fn totals_begin_in_a_store_made_before_them(
    world: World,
    clicks: usize,
    drop_totals: impl AsyncFnOnce(World) -> World,
) {
    let start = world.clock.now();
    let (sent, _) = world.generate(clicks).await;
    // As the version before them left it: no totals, and no hour from which they hold.
    let world = drop_totals(world).await;
    let days = totals_agree_with_detail(&world, start).await;
    let counted: i64 = days.values().map(|d| d.clicks + d.invalid_clicks).sum();
    assert_eq!(counted, sent as i64);
    // Traffic a day later: past the hour the totals begin, in the first whole UTC day the
    // breakdowns hold.
    world.clock.advance(SignedDuration::from_hours(24));
    world.generate(clicks).await;
    let days = totals_agree_with_detail(&world, start).await;
    let counted: i64 = days.values().map(|d| d.clicks + d.invalid_clicks).sum();
    assert_eq!(counted, 2 * sent as i64);
}

#[tokio::test]
async fn totals_begin_after_an_upgrade_on_the_embedded_store() {
    totals_begin_in_a_store_made_before_them(World::new().await, 200, async |world: World| {
        let World {
            app,
            clock,
            demo,
            data,
        } = world;
        app.table.flush().await.unwrap();
        drop(app);
        let db = rusqlite::Connection::open(data.path().join("leadsrefer.sqlite3")).unwrap();
        let dropped = db
            .execute(
                "DELETE FROM items WHERE pk LIKE 'TOTALS#%' OR pk = 'META#report-totals'",
                [],
            )
            .unwrap();
        assert!(dropped > 0);
        drop(db);
        let sender =
            shared::domain::email::EmailAddress::parse("no-reply@leadsrefer.local").unwrap();
        let app = App::embedded(data.path(), clock.clone(), sender).unwrap();
        World {
            app,
            clock,
            demo,
            data,
        }
    })
    .await;
}

#[tokio::test]
async fn totals_begin_after_an_upgrade_on_the_aws_adapters() {
    let support::Platform {
        app,
        clock,
        demo,
        data,
    } = support::aws_platform("reports", 1_782_678_400).await;
    let world = World {
        app,
        clock,
        demo,
        data,
    };
    // A new table on AWS cannot tell that it is new: its totals begin after the next hour too,
    // so nothing needs taking away.
    // (The emulator takes about a second a click: a few dozen do.)
    totals_begin_in_a_store_made_before_them(world, 40, async |world: World| world).await;
}

#[tokio::test]
async fn csv_exports_match_the_json_report_and_defuse_formulas() {
    let world = World::new().await;
    world.generate(400).await;
    let (first, last) = {
        let now = world.clock.now().to_zoned_datetime(TimeZone::UTC).date();
        (now.checked_sub(jiff::ToSpan::days(3)).unwrap(), now)
    };
    let affiliate = world.sign_in("affiliate").await;
    let query = format!("from={first}&to={last}&group_by=sub2");
    let json_report = body(&world.report(&affiliate, &query).await);
    let response = world
        .report(&affiliate, &format!("{query}&format=csv"))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"report-")
    );
    let Body::Text(csv) = response.body() else {
        panic!()
    };
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines[0],
        "sub2,currency,clicks,unique_clicks,invalid_clicks,calls,conversions,rejected_conversions,cr,payout,epc"
    );
    assert_eq!(
        lines.len() - 1,
        json_report["rows"].as_array().unwrap().len()
    );
    // The sub-id that would run as a spreadsheet formula is quoted text instead.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("'=cmd|' /C calc'!A0,USD,")),
        "{lines:?}"
    );
    let clicks: i64 = lines[1..]
        .iter()
        .map(|l| l.rsplit(',').nth(8).unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(clicks, json_report["totals"][0]["clicks"].as_i64().unwrap());
}

#[tokio::test]
async fn bad_report_requests_name_the_field() {
    let world = World::new().await;
    let affiliate = world.sign_in("affiliate").await;
    let admin = world.sign_in("admin").await;
    for (cookie, query, field) in [
        (&affiliate, "timezone=Mars/Olympus", "timezone"),
        (&affiliate, "from=2026-13-01", "from"),
        (&affiliate, "from=2026-06-10&to=2026-06-01", "from"),
        (&affiliate, "from=2024-01-01&to=2026-06-01", "from"),
        (&affiliate, "group_by=day,planet", "group_by"),
        (&affiliate, "group_by=day,day", "group_by"),
        (&affiliate, "format=xml", "format"),
        (&affiliate, "offer_id=nope", "offer_id"),
        (&admin, "advertiser_id=nope", "advertiser_id"),
    ] {
        let response = world.report(cookie, query).await;
        assert_eq!(response.status(), 400, "{query}");
        assert_eq!(body(&response)["error"]["field"], field, "{query}");
    }
    let anonymous = world.send("/api/reports", "192.0.2.1", &[]).await;
    assert_eq!(anonymous.status(), 401);
}
