//! Offers, affiliates' applications to them, and links by affiliate.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{Store, with_index};
use crate::domain::ids::{AdvertiserId, AffiliateId, OfferId};
use crate::domain::offer::Offer;
use crate::domain::tracking::Link;
use crate::ports::table::{Cond, Key, Query, TableError, to_item};

pub(super) fn offer_key(id: OfferId) -> Key {
    Key::new(format!("OFFER#{id}"), "OFFER")
}

/// Offers are indexed in one partition, ordered by advertiser: an advertiser's offers are a
/// prefix of it, every offer the whole of it. There are thousands of offers, not millions.
pub(super) fn offer_item(offer: &Offer) -> Result<crate::ports::Item, TableError> {
    Ok(with_index(
        to_item(offer, &offer_key(offer.id))?,
        "OFFERS".into(),
        format!("{}#{}", offer.advertiser_id, offer.id),
    ))
}

fn application_key(offer: OfferId, affiliate: AffiliateId) -> Key {
    Key::new(format!("APP#{offer}"), affiliate.to_string())
}

fn application_item(application: &Application) -> Result<crate::ports::Item, TableError> {
    Ok(with_index(
        to_item(
            application,
            &application_key(application.offer_id, application.affiliate_id),
        )?,
        format!("AFF#{}#APPS", application.affiliate_id),
        application.offer_id.to_string(),
    ))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApplicationStatus {
    Pending,
    Approved,
    Rejected,
}

/// An affiliate's application to promote an offer, and (once approved) their postback URL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Application {
    pub offer_id: OfferId,
    pub affiliate_id: AffiliateId,
    pub advertiser_id: AdvertiserId,
    pub status: ApplicationStatus,
    /// Where the affiliate's postbacks for this offer go (macros allowed).
    #[serde(default)]
    pub postback_url: Option<String>,
    pub created_at: Timestamp,
    #[serde(default)]
    pub decided_at: Option<Timestamp>,
}

impl Store {
    /// Writes back a changed offer.
    pub async fn save_offer(&self, offer: &Offer) -> Result<(), TableError> {
        self.table.put(offer_item(offer)?, Cond::Exists).await?;
        self.forget_offer(offer.id);
        Ok(())
    }

    pub async fn offers_of_advertiser(
        &self,
        advertiser: AdvertiserId,
    ) -> Result<Vec<Offer>, TableError> {
        self.query_all(Query::gsi1("OFFERS").prefix(format!("{advertiser}#")))
            .await
    }

    /// The currencies offers are priced in: those any balance can be in.
    pub async fn offer_currencies(
        &self,
    ) -> Result<Vec<crate::domain::money::Currency>, TableError> {
        let mut currencies: Vec<_> = self
            .all_offers()
            .await?
            .into_iter()
            .map(|offer| offer.currency)
            .collect();
        currencies.sort_by_key(|c| c.code());
        currencies.dedup_by_key(|c| c.code());
        Ok(currencies)
    }

    pub async fn all_offers(&self) -> Result<Vec<Offer>, TableError> {
        self.query_all(Query::gsi1("OFFERS")).await
    }

    /// Records an application once; a second one is `Conflict`.
    pub async fn create_application(&self, application: &Application) -> Result<(), TableError> {
        self.create(application_item(application)?).await
    }

    pub async fn save_application(&self, application: &Application) -> Result<(), TableError> {
        self.table
            .put(application_item(application)?, Cond::Exists)
            .await
    }

    pub async fn application(
        &self,
        offer: OfferId,
        affiliate: AffiliateId,
    ) -> Result<Option<Application>, TableError> {
        self.get(&application_key(offer, affiliate)).await
    }

    pub async fn applications_of_offer(
        &self,
        offer: OfferId,
    ) -> Result<Vec<Application>, TableError> {
        self.query_all(Query::partition(format!("APP#{offer}")))
            .await
    }

    pub async fn applications_of_affiliate(
        &self,
        affiliate: AffiliateId,
    ) -> Result<Vec<Application>, TableError> {
        self.query_all(Query::gsi1(format!("AFF#{affiliate}#APPS")))
            .await
    }

    /// The affiliate's link for the offer, if they made one.
    pub async fn link_for_offer(
        &self,
        affiliate: AffiliateId,
        offer: OfferId,
    ) -> Result<Option<Link>, TableError> {
        Ok(self
            .links_of_affiliate(affiliate)
            .await?
            .into_iter()
            .find(|link| link.offer_id == offer))
    }

    pub async fn links_of_affiliate(
        &self,
        affiliate: AffiliateId,
    ) -> Result<Vec<Link>, TableError> {
        self.query_all(Query::gsi1(format!("AFF#{affiliate}#LINKS")))
            .await
    }
}
