//! `GET|PUT /api/tax/profile`: an affiliate's tax profile, a W-9 or a statement of being
//! foreign (served by the `payouts` function). The TIN goes in and never comes back: answers
//! show its last four digits. The body is read field by field, so that no error can echo it.

use lambda_http::http::StatusCode;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::{Route, schema};
use crate::app::App;
use crate::caller::{AFFILIATE, caller};
use crate::domain::tax::{TaxClassification, TaxProfile, TinType, UsAddress};
use crate::http::{ApiError, Fields, Request, Response, json, json_body};
use crate::secret::Secret;
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
}

#[derive(Serialize, ToSchema)]
pub struct ProfileAnswer {
    /// Absent until the affiliate certifies one.
    pub profile: Option<ProfileView>,
}

fn view(profile: &TaxProfile) -> ProfileView {
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
        },
        TaxProfile::Foreign {
            country,
            signed_name,
            certified_at,
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

async fn set(app: App, request: Request) -> Result<Response, ApiError> {
    let affiliate = crate::caller::active_affiliate(&request)?;
    let body: Value = json_body(&request)?;
    let input = input(body)?;
    let profile = tax::set_profile(&app, affiliate, input)
        .await
        .map_err(|error| match error {
            TaxError::Invalid { field, problem } => ApiError::invalid(field, problem),
            other => ApiError::internal(other),
        })?;
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
