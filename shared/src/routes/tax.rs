//! `GET|PUT /api/tax/profile`: an affiliate's tax profile, a W-9 or a statement of being
//! foreign (served by the `payouts` function). The TIN goes in and never comes back: answers
//! show its last four digits. The body is read field by field, so that no error can echo it.

use lambda_http::http::StatusCode;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::{Route, schema};
use crate::app::App;
use crate::caller::{ADMIN, AFFILIATE, caller};
use crate::domain::tax::{TaxClassification, TaxDocument, TaxProfile, TinType, UsAddress};
use crate::http::{ApiError, Fields, Request, Response, json, json_body, path_param, uncached};
use crate::secret::Secret;
use crate::store::TaxFormsYear;
use crate::tax::{self, ProfileInput, TaxError};

pub const GET: Route = Route::new(
    "payouts",
    &["GET"],
    "/api/tax/profile",
    AFFILIATE,
    "The affiliate's tax profile, if any (the TIN by its last four digits)",
    |app, request| Box::pin(get(app, request)),
)
.answers(schema::<ProfileAnswer>);

pub const SET: Route = Route::new("payouts", &["PUT"], "/api/tax/profile", AFFILIATE,
    "Certify a W-9 (`{\"status\":\"us\",\"legal_name\",\"business_name\",\"classification\",\"address\":{line1,line2,city,state,zip},\"tin_type\":\"ssn\"|\"ein\"|\"itin\",\"tin\",\"signed_name\",\"certify\":true}`) or a foreign status (`{\"status\":\"foreign\",\"country\",\"signed_name\",\"certify\":true}`)",
    |app, request| Box::pin(set(app, request)))
.takes(schema::<ProfileInputDoc>)
.answers(schema::<ProfileAnswer>);

pub const W8BEN: Route = Route::new(
    "payouts",
    &["PUT"],
    "/api/tax/profile/w8ben",
    AFFILIATE,
    "Upload your signed W-8BEN (`content-type: application/pdf`, at most 4 MiB) after stating you are foreign",
    |app, request| Box::pin(w8ben(app, request)),
)
.answers(schema::<ProfileAnswer>);

pub const FORM: Route = Route::new(
    "payouts",
    &["GET"],
    "/api/tax/forms/{year}",
    AFFILIATE,
    "The affiliate's Form 1099-NEC statement for a year (HTML), once the tax-forms job wrote it",
    |app, request| Box::pin(form(app, request)),
)
.succeeds_with(&[200]);

pub const REQUEST_FORMS: Route = Route::new(
    "payouts",
    &["POST"],
    "/api/admin/tax-forms",
    ADMIN,
    "File a tax year's 1099-NECs (`{\"year\"}`), or file it again after corrections: the tax-forms job does it within the hour",
    |app, request| Box::pin(request_forms(app, request)),
)
.succeeds_with(&[202])
.takes(schema::<FormsRequest>)
.answers(schema::<TaxFormsYear>);

pub const FORM_YEARS: Route = Route::new(
    "payouts",
    &["GET"],
    "/api/admin/tax-forms",
    ADMIN,
    "Tax years filed or waiting, with the job's report",
    |app, request| Box::pin(form_years(app, request)),
)
.answers(schema::<FormYears>);

#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FormsRequest {
    /// The calendar year whose payments are reported.
    year: i16,
}

#[derive(Serialize, ToSchema)]
pub struct FormYears {
    pub years: Vec<TaxFormsYear>,
}

/// The body of `PUT /api/tax/profile` (documentation).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ProfileInputDoc {
    /// `us` (a W-9) or `foreign` (W-8BEN).
    status: String,
    legal_name: Option<String>,
    business_name: Option<String>,
    classification: Option<TaxClassification>,
    address: Option<UsAddress>,
    tin_type: Option<TinType>,
    /// Nine digits, dashes as the form prints them; sealed at once, shown by its last four.
    tin: Option<String>,
    /// Foreign: the two-letter country code.
    country: Option<String>,
    signed_name: String,
    /// The certification, which must be accepted.
    certify: bool,
}

#[derive(Serialize, ToSchema)]
pub struct ProfileView {
    /// `us` or `foreign`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legal_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub business_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classification: Option<TaxClassification>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<UsAddress>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tin_type: Option<TinType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tin_last4: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    pub signed_name: String,
    pub certified_at: String,
    /// Foreign: the signed W-8BEN on file, if uploaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub w8ben: Option<TaxDocument>,
}

#[derive(Serialize, ToSchema)]
pub struct ProfileAnswer {
    /// Absent until the affiliate certifies one.
    pub profile: Option<ProfileView>,
}

pub fn view(profile: &TaxProfile) -> ProfileView {
    match profile {
        TaxProfile::Us { w9, .. } => ProfileView {
            status: "us".into(),
            legal_name: Some(w9.legal_name.clone()),
            business_name: w9.business_name.clone(),
            classification: Some(w9.classification),
            address: Some(w9.address.clone()),
            tin_type: Some(w9.tin_type),
            tin_last4: Some(w9.tin_last4.clone()),
            country: None,
            signed_name: w9.signed_name.clone(),
            certified_at: w9.certified_at.to_string(),
            w8ben: None,
        },
        TaxProfile::Foreign {
            country,
            signed_name,
            certified_at,
            document,
            ..
        } => ProfileView {
            status: "foreign".into(),
            legal_name: None,
            business_name: None,
            classification: None,
            address: None,
            tin_type: None,
            tin_last4: None,
            country: Some(country.clone()),
            signed_name: signed_name.clone(),
            certified_at: certified_at.to_string(),
            w8ben: document.clone(),
        },
    }
}

async fn get(app: App, request: Request) -> Result<Response, ApiError> {
    let affiliate = crate::caller::active_affiliate(&request)?;
    let profile = app
        .store
        .tax_profile(affiliate)
        .await
        .map_err(ApiError::internal)?;
    Ok(json(
        StatusCode::OK,
        &ProfileAnswer {
            profile: profile.as_ref().map(view),
        },
    ))
}

const FIELDS: [&str; 10] = [
    "status",
    "legal_name",
    "business_name",
    "classification",
    "address",
    "tin_type",
    "tin",
    "country",
    "signed_name",
    "certify",
];

/// A named value of a `snake_case` enum.
fn choice<T: serde::de::DeserializeOwned>(
    fields: &Fields,
    name: &'static str,
    takes: &str,
) -> Result<T, ApiError> {
    serde_json::from_value(Value::String(fields.text(name)?))
        .map_err(|_| ApiError::invalid(name, format!("must be one of {takes}")))
}

fn input(body: Value) -> Result<ProfileInput, ApiError> {
    let fields = Fields::of(body, &FIELDS, "a tax profile")?;
    let certify = match fields.get("certify") {
        Some(Value::Bool(certify)) => *certify,
        Some(_) => return Err(ApiError::invalid("certify", "must be true or false")),
        None => return Err(ApiError::invalid("certify", "is required")),
    };
    match fields.text("status")?.as_str() {
        "us" => {
            let Some(Value::Object(address)) = fields.get("address") else {
                return Err(ApiError::invalid("address", "is required: an object"));
            };
            let part = |name: &'static str, field: &'static str| match address.get(name) {
                Some(Value::String(text)) => Ok(text.clone()),
                None | Some(Value::Null) if name == "line2" => Ok(String::new()),
                _ => Err(ApiError::invalid(field, "must be a string")),
            };
            Ok(ProfileInput::W9 {
                legal_name: fields.text("legal_name")?,
                business_name: fields.optional_text("business_name")?,
                classification: choice(
                    &fields,
                    "classification",
                    "individual, c_corporation, s_corporation, partnership, trust_estate, llc_c, llc_s, llc_p, other",
                )?,
                address: UsAddress {
                    line1: part("line1", "address.line1")?,
                    line2: Some(part("line2", "address.line2")?),
                    city: part("city", "address.city")?,
                    state: part("state", "address.state")?,
                    zip: part("zip", "address.zip")?,
                },
                tin_type: choice(&fields, "tin_type", "ssn, ein, itin")?,
                tin: Secret::new(fields.text("tin")?),
                signed_name: fields.text("signed_name")?,
                certify,
            })
        }
        "foreign" => Ok(ProfileInput::Foreign {
            country: fields.text("country")?,
            signed_name: fields.text("signed_name")?,
            certify,
        }),
        _ => Err(ApiError::invalid("status", "must be us or foreign")),
    }
}

fn to_api(error: TaxError) -> ApiError {
    match error {
        TaxError::Invalid { field, problem } => ApiError::invalid(field, problem),
        other => ApiError::internal(other),
    }
}

async fn set(app: App, request: Request) -> Result<Response, ApiError> {
    let affiliate = crate::caller::active_affiliate(&request)?;
    let body: Value = json_body(&request)?;
    let input = input(body)?;
    let profile = tax::set_profile(&app, affiliate, input)
        .await
        .map_err(to_api)?;
    caller(&request)
        .audit(&app, "tax_profile.certified", None)
        .await?;
    Ok(json(
        StatusCode::OK,
        &ProfileAnswer {
            profile: Some(view(&profile)),
        },
    ))
}

async fn form(app: App, request: Request) -> Result<Response, ApiError> {
    // Any affiliate its own statement, whatever its approval state.
    let affiliate = caller(&request)
        .account
        .affiliate_id()
        .ok_or_else(|| ApiError::forbidden("role", "affiliates only"))?;
    let missing = || ApiError::not_found("year", "no Form 1099-NEC for that year");
    let year: i16 = path_param(&request, "year")
        .and_then(|year| year.parse().ok())
        .ok_or_else(missing)?;
    let statement = crate::tax_forms::statement(&app, affiliate, year)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(missing)?;
    let mut response = uncached(
        StatusCode::OK,
        "text/html; charset=utf-8",
        lambda_http::Body::Binary(statement),
    );
    // A document to read, never a page that runs anything.
    response.headers_mut().insert(
        lambda_http::http::header::CONTENT_SECURITY_POLICY,
        lambda_http::http::HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'",
        ),
    );
    Ok(response)
}

async fn request_forms(app: App, request: Request) -> Result<Response, ApiError> {
    let input: FormsRequest = json_body(&request)?;
    // The year in progress may be asked for: its forms are drafts (no one is told), and
    // January files it again, complete.
    let this_year = crate::tax::tax_year(app.clock.now());
    if !(2000..=this_year).contains(&input.year) {
        return Err(ApiError::invalid(
            "year",
            format!("must be a year from 2000 to {this_year}"),
        ));
    }
    let mut record = app
        .store
        .tax_forms_year(input.year)
        .await
        .map_err(ApiError::internal)?
        .unwrap_or(TaxFormsYear {
            year: input.year,
            requested_at: None,
            filed_at: None,
            report: String::new(),
        });
    record.requested_at = Some(app.clock.now());
    app.store
        .save_tax_forms_year(&record)
        .await
        .map_err(ApiError::internal)?;
    caller(&request)
        .audit(&app, "tax_forms.requested", Some(input.year.to_string()))
        .await?;
    Ok(json(StatusCode::ACCEPTED, &record))
}

async fn form_years(app: App, _request: Request) -> Result<Response, ApiError> {
    let years = app
        .store
        .tax_forms_years()
        .await
        .map_err(ApiError::internal)?;
    Ok(json(StatusCode::OK, &FormYears { years }))
}

async fn w8ben(app: App, request: Request) -> Result<Response, ApiError> {
    let affiliate = crate::caller::active_affiliate(&request)?;
    let content_type = request
        .headers()
        .get(lambda_http::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("application/pdf")
    {
        return Err(ApiError::invalid(
            "content-type",
            "must be application/pdf: send the signed W-8BEN file as the body",
        ));
    }
    let pdf = request.body().as_ref().to_vec();
    tax::upload_w8ben(&app, affiliate, pdf)
        .await
        .map_err(to_api)?;
    caller(&request)
        .audit(&app, "tax_profile.w8ben_uploaded", None)
        .await?;
    get(app, request).await
}
