//! `/api/links`: an affiliate's tracking links, made for offers they are approved for
//! (the `links` function).

use lambda_http::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Route, schema};
use crate::app::App;
use crate::caller::{AFFILIATE, caller};
use crate::domain::ids::{LinkCode, OfferId};
use crate::domain::offer::OfferStatus;
use crate::domain::tracking::{Link, Subs};
use crate::http::{ApiError, Request, Response, json, json_body};
use crate::store::ApplicationStatus;

pub const CREATE: Route = Route::new(
    "links",
    &["POST"],
    "/api/links",
    AFFILIATE,
    "Make a tracking link for an offer you are approved for, with default sub-ids",
    |app, request| Box::pin(create(app, request)),
)
.takes(schema::<LinkInput>)
.answers(schema::<LinkView>);

pub const LIST: Route = Route::new(
    "links",
    &["GET"],
    "/api/links",
    AFFILIATE,
    "Your tracking links",
    |app, request| Box::pin(list(app, request)),
)
.answers(schema::<LinkList>);

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkInput {
    pub offer_id: String,
    /// Defaults for `sub1`…`sub5`, used when a click does not give them.
    #[serde(default)]
    pub sub1: Option<String>,
    #[serde(default)]
    pub sub2: Option<String>,
    #[serde(default)]
    pub sub3: Option<String>,
    #[serde(default)]
    pub sub4: Option<String>,
    #[serde(default)]
    pub sub5: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct LinkView {
    pub code: String,
    /// The URL to promote.
    pub url: String,
    pub offer_id: String,
    pub subs: Vec<Option<String>>,
    pub created_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct LinkList {
    pub links: Vec<LinkView>,
}

impl LinkView {
    fn of(app: &App, link: &Link) -> Self {
        Self {
            code: link.code.to_string(),
            url: format!("{}/c/{}", app.public_url, link.code),
            offer_id: link.offer_id.to_string(),
            subs: (0..5)
                .map(|i| link.subs.get(i).map(str::to_string))
                .collect(),
            created_at: link.created_at.to_string(),
        }
    }
}

async fn create(app: App, request: Request) -> Result<Response, ApiError> {
    let input: LinkInput = json_body(&request)?;
    let caller = caller(&request);
    caller.require_active()?;
    let affiliate = caller
        .account
        .affiliate_id()
        .expect("the route admits affiliates");
    let offer_id = OfferId::parse(&input.offer_id)
        .ok_or_else(|| ApiError::invalid("offer_id", "is not an offer id"))?;
    let application = app
        .store
        .application(offer_id, affiliate)
        .await
        .map_err(ApiError::internal)?;
    if application.is_none_or(|a| a.status != ApplicationStatus::Approved) {
        return Err(ApiError::forbidden(
            "offer_id",
            "you are not approved for this offer",
        ));
    }
    let offer = app
        .store
        .offer(offer_id)
        .await
        .map_err(ApiError::internal)?;
    let offer = offer
        .filter(|o| o.status == OfferStatus::Active)
        .ok_or_else(|| ApiError::unprocessable("offer_id", "the offer is not active"))?;
    let mut subs: [Option<String>; 5] = Default::default();
    for ((slot, value), name) in subs
        .iter_mut()
        .zip([input.sub1, input.sub2, input.sub3, input.sub4, input.sub5])
        .zip(Subs::NAMES)
    {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            if value.chars().count() > Subs::MAX_LEN || value.chars().any(char::is_control) {
                return Err(ApiError::invalid(
                    name,
                    format!(
                        "must be at most {} characters without control characters",
                        Subs::MAX_LEN
                    ),
                ));
            }
            *slot = Some(value);
        }
    }
    let link = Link {
        code: LinkCode::random(),
        offer_id: offer.id,
        affiliate_id: affiliate,
        advertiser_id: offer.advertiser_id,
        created_at: app.clock.now(),
        subs: Subs::new(subs),
    };
    app.store
        .create_link(&link)
        .await
        .map_err(ApiError::internal)?;
    caller
        .audit(&app, "link.created", Some(link.code.to_string()))
        .await?;
    Ok(json(StatusCode::CREATED, &LinkView::of(&app, &link)))
}

async fn list(app: App, request: Request) -> Result<Response, ApiError> {
    let affiliate = caller(&request)
        .account
        .affiliate_id()
        .expect("the route admits affiliates");
    let links = app
        .store
        .links_of_affiliate(affiliate)
        .await
        .map_err(ApiError::internal)?;
    Ok(json(
        StatusCode::OK,
        &LinkList {
            links: links.iter().map(|l| LinkView::of(&app, l)).collect(),
        },
    ))
}
