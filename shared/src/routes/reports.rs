//! `GET /api/reports`: clicks, conversions, revenue and payout by day, hour, offer, affiliate,
//! country, device or sub-id, over local days in the caller's time zone, as JSON or CSV; each
//! party sees only its own traffic and only its own side of the money (the `reports`
//! function).

use std::collections::BTreeMap;

use lambda_http::Body;
use lambda_http::http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use utoipa::ToSchema;

use super::{Route, schema};
use crate::app::App;
use crate::caller::{ANY_ROLE, caller};
use crate::csv::{defuse, push_record};
use crate::domain::ids::OfferId;
use crate::http::{ApiError, Params, Request, Response, json, uncached};
use crate::reports::{self, Dimension, MAX_DAYS, Report, ReportRequest, ReportRow, Scope};

pub const GET: Route = Route::new(
    "reports",
    &["GET"],
    "/api/reports",
    ANY_ROLE,
    "Performance report: `?from=&to=` (local dates, at most 366 days; default the last 7), \
     `?timezone=` (IANA, default UTC), `?group_by=` (comma-separated: day, hour, offer, \
     affiliate, advertiser, country, device, sub1…sub5; default day), `?offer_id=`, `?format=csv`; admins \
     see the whole network, or one party with `?advertiser_id=` or `?affiliate_id=`",
    |app, request| Box::pin(get(app, request)),
)
.answers(schema::<ReportView>);

/// What each party may see of the money.
#[derive(Clone, Copy)]
struct Sides {
    /// What the advertiser pays.
    revenue: bool,
    /// What the affiliate earns.
    payout: bool,
}

#[derive(Serialize, ToSchema)]
pub struct ReportRowView {
    /// The group's values, one per `group_by` dimension (`day`, `hour`, `offer_id`,
    /// `affiliate_id`, `advertiser_id`, `country`, `device`, `sub1`…`sub5`); empty when the click did not say.
    #[serde(flatten)]
    pub group: BTreeMap<String, String>,
    pub currency: String,
    /// Clicks by people (robots, previews and HEAD requests excluded).
    pub clicks: i64,
    /// First clicks of a visitor on a link within the offer's unique window.
    pub unique_clicks: i64,
    /// Robots, link previews and HEAD requests.
    pub invalid_clicks: i64,
    /// Calls to the offers' tracking numbers.
    pub calls: i64,
    /// Pending and approved conversions.
    pub conversions: i64,
    /// Conversions rejected on arrival (a cap).
    pub rejected_conversions: i64,
    /// Conversions per 100 visits: clicks, and calls to static numbers (which have no click
    /// before them; a pool number's caller clicked first); absent without visits.
    pub cr: Option<String>,
    /// What the advertiser pays (advertisers and admins).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revenue: Option<String>,
    /// What affiliates earn (affiliates and admins).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payout: Option<String>,
    /// Revenue less payout: what the network keeps (admins).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub margin: Option<String>,
    /// Money per visit (as for `cr`), to two decimals past the minor unit: what the affiliate
    /// earned (affiliates and admins) or what the advertiser paid (advertisers); absent
    /// without visits.
    pub epc: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ReportView {
    pub from: String,
    pub to: String,
    pub timezone: String,
    pub group_by: Vec<String>,
    pub rows: Vec<ReportRowView>,
    /// One total per currency.
    pub totals: Vec<ReportRowView>,
}

fn row_view(row: &ReportRow, group_by: &[Dimension], sides: Sides) -> ReportRowView {
    let totals = &row.totals;
    ReportRowView {
        group: group_by
            .iter()
            .zip(&row.group)
            .map(|(dimension, value)| (dimension.column().to_string(), value.clone()))
            .collect(),
        currency: row.currency.code().to_string(),
        clicks: totals.clicks,
        unique_clicks: totals.unique_clicks,
        invalid_clicks: totals.invalid_clicks,
        calls: totals.calls,
        conversions: totals.conversions,
        rejected_conversions: totals.rejected_conversions,
        cr: totals.conversion_rate(),
        revenue: sides.revenue.then(|| row.money(totals.revenue)),
        payout: sides.payout.then(|| row.money(totals.payout)),
        margin: (sides.revenue && sides.payout).then(|| row.money(totals.revenue - totals.payout)),
        epc: if sides.payout {
            totals.earnings_per_click(row.currency)
        } else {
            totals.revenue_per_click(row.currency)
        },
    }
}

async fn get(app: App, request: Request) -> Result<Response, ApiError> {
    let params = Params::from_query(&request)?;
    let caller = caller(&request);
    let naming_a_party =
        params.text("advertiser_id", 26)?.is_some() || params.text("affiliate_id", 26)?.is_some();
    let scope = if caller.is_admin() && !naming_a_party {
        Scope::Network
    } else {
        Scope::Party(crate::caller::party(caller, &params)?)
    };
    // Each party sees its own side of the money; admins both.
    let sides = Sides {
        revenue: caller.account.affiliate_id().is_none(),
        payout: caller.account.advertiser_id().is_none(),
    };

    let zone_name = params.text("timezone", 64)?.unwrap_or("UTC");
    let zone = jiff::tz::TimeZone::get(zone_name).map_err(|_| {
        ApiError::invalid(
            "timezone",
            "must be an IANA time zone name, such as Europe/Paris",
        )
    })?;
    let now_local = app.clock.now().to_zoned_datetime(zone.clone()).date();
    let date = |name: &'static str| -> Result<Option<jiff::civil::Date>, ApiError> {
        params
            .text(name, 10)?
            .map(|text| {
                text.parse::<jiff::civil::Date>()
                    .map_err(|_| ApiError::invalid(name, "must be a date, YYYY-MM-DD"))
            })
            .transpose()
    };
    let to = date("to")?.unwrap_or(now_local);
    let from = match date("from")? {
        Some(from) => from,
        None => to
            .checked_sub(jiff::ToSpan::days(6))
            .map_err(|_| ApiError::invalid("to", "is out of range"))?,
    };
    if from > to {
        return Err(ApiError::invalid("from", "must not be after `to`"));
    }
    let days = to
        .since(from)
        .map(|span| span.get_days())
        .unwrap_or(i32::MAX);
    if days >= MAX_DAYS {
        return Err(ApiError::invalid(
            "from",
            format!("a report covers at most {MAX_DAYS} days"),
        ));
    }

    let mut group_by = Vec::new();
    for name in params.text("group_by", 100)?.unwrap_or("day").split(',') {
        let dimension = Dimension::parse(name.trim()).ok_or_else(|| {
            ApiError::invalid("group_by", format!("takes {}", Dimension::NAMES.join(", ")))
        })?;
        if group_by.contains(&dimension) {
            return Err(ApiError::invalid("group_by", "names a dimension twice"));
        }
        if matches!(dimension, Dimension::Sub(_)) && caller.account.advertiser_id().is_some() {
            return Err(ApiError::forbidden(
                "group_by",
                "sub-ids are the affiliate's: advertisers group by offer, affiliate, country, device or time",
            ));
        }
        group_by.push(dimension);
    }
    let offer = params
        .text("offer_id", 26)?
        .map(|text| {
            OfferId::parse(text).ok_or_else(|| ApiError::invalid("offer_id", "is not an offer id"))
        })
        .transpose()?;
    let csv = match params.text("format", 4)? {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::invalid("format", "must be json or csv")),
    };

    let report_request = ReportRequest {
        scope,
        from,
        to,
        zone,
        group_by,
        offer,
    };
    let report = reports::report(&app.store, &report_request, app.clock.now())
        .await
        .map_err(ApiError::internal)?;
    if csv {
        return Ok(csv_response(&report, &report_request, sides));
    }
    let group_by = &report_request.group_by;
    Ok(json(
        StatusCode::OK,
        &ReportView {
            from: from.to_string(),
            to: to.to_string(),
            timezone: zone_name.to_string(),
            group_by: group_by.iter().map(|d| d.column().to_string()).collect(),
            rows: report
                .rows
                .iter()
                .map(|row| row_view(row, group_by, sides))
                .collect(),
            totals: report
                .totals
                .iter()
                .map(|row| row_view(row, group_by, sides))
                .collect(),
        },
    ))
}

/// RFC 4180 CSV: a header, then a row per group, sub-ids and other text defused.
fn csv_response(report: &Report, request: &ReportRequest, sides: Sides) -> Response {
    let mut header_row: Vec<&str> = request.group_by.iter().map(|d| d.column()).collect();
    header_row.extend([
        "currency",
        "clicks",
        "unique_clicks",
        "invalid_clicks",
        "calls",
        "conversions",
        "rejected_conversions",
        "cr",
    ]);
    if sides.revenue {
        header_row.push("revenue");
    }
    if sides.payout {
        header_row.push("payout");
    }
    if sides.revenue && sides.payout {
        header_row.push("margin");
    }
    header_row.push("epc");
    let mut out = String::new();
    push_record(&mut out, header_row.iter().map(|h| h.to_string()));
    for row in &report.rows {
        let view = row_view(row, &request.group_by, sides);
        let mut fields: Vec<String> = row.group.iter().map(|v| defuse(v)).collect();
        fields.extend([
            view.currency,
            view.clicks.to_string(),
            view.unique_clicks.to_string(),
            view.invalid_clicks.to_string(),
            view.calls.to_string(),
            view.conversions.to_string(),
            view.rejected_conversions.to_string(),
            view.cr.unwrap_or_default(),
        ]);
        fields.extend(view.revenue);
        fields.extend(view.payout);
        fields.extend(view.margin);
        fields.push(view.epc.unwrap_or_default());
        push_record(&mut out, fields.into_iter());
    }
    let mut response = uncached(StatusCode::OK, "text/csv; charset=utf-8", Body::Text(out));
    let disposition = format!(
        "attachment; filename=\"report-{}-{}.csv\"",
        request.from, request.to
    );
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    response
}
