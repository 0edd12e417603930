//! Whose records a page shows. Advertisers and affiliates see their own; an admin names one
//! advertiser or affiliate (the API's rule for conversions, reports, calls and numbers), chosen
//! with a picker shown above the records.

use maud::{Markup, html};

use crate::domain::accounts::Role;
use crate::http::Response;
use crate::web::layout::{self, select};
use crate::web::{Ctx, Refusal, encode};

/// The records' owner: the API query that names it (empty for advertisers and affiliates) and,
/// for an admin, the picker to show above them.
pub struct Party {
    pub query: String,
    pub picker: Option<Markup>,
}

/// The party the page shows, or (`Err`) the page asking an admin to choose one.
pub async fn party_or_picker(
    ctx: &Ctx,
    title: &str,
    action: &str,
) -> Result<Result<Party, Response>, Refusal> {
    if ctx.me().role != Role::Admin {
        return Ok(Ok(Party {
            query: String::new(),
            picker: None,
        }));
    }
    let picker = party_picker(ctx, action).await?;
    let Some(query) = chosen(ctx) else {
        let body =
            html! { h1 { (title) } p { "Choose one advertiser or one affiliate." } (picker) };
        return Ok(Err(layout::page(ctx, title, body)));
    };
    Ok(Ok(Party {
        query,
        picker: Some(picker),
    }))
}

/// The party the page shows; for an admin who chose none, the whole network (reports).
pub async fn party_or_network(ctx: &Ctx, action: &str) -> Result<Party, Refusal> {
    if ctx.me().role != Role::Admin {
        return Ok(Party {
            query: String::new(),
            picker: None,
        });
    }
    Ok(Party {
        query: chosen(ctx).unwrap_or_default(),
        picker: Some(party_picker(ctx, action).await?),
    })
}

/// The API query naming the party an admin chose, if any.
fn chosen(ctx: &Ctx) -> Option<String> {
    match (
        ctx.query.get("advertiser_id"),
        ctx.query.get("affiliate_id"),
    ) {
        (Some(id), _) => Some(format!("advertiser_id={}", encode(id))),
        (None, Some(id)) => Some(format!("affiliate_id={}", encode(id))),
        (None, None) => None,
    }
}

/// An admin's choice of account, from the first page of accounts.
pub async fn party_picker(ctx: &Ctx, action: &str) -> Result<Markup, Refusal> {
    let accounts = ctx
        .api
        .list("/api/admin/accounts?limit=200", "accounts")
        .await?;
    let option = |role: &str| -> Vec<(String, String)> {
        std::iter::once((String::new(), "—".to_string()))
            .chain(accounts.iter().filter(|a| a["role"] == role).map(|a| {
                (
                    a["id"].as_str().unwrap_or("").to_string(),
                    format!(
                        "{} ({})",
                        a["name"].as_str().unwrap_or(""),
                        a["email"].as_str().unwrap_or("")
                    ),
                )
            }))
            .collect()
    };
    Ok(html! {
        form class="filters card" method="get" action=(action) {
            div { (select("Advertiser", "advertiser_id", &option("advertiser"), ctx.query.value("advertiser_id"), None)) }
            div { (select("Affiliate", "affiliate_id", &option("affiliate"), ctx.query.value("affiliate_id"), None)) }
            div { button type="submit" class="secondary" { "Show" } }
        }
    })
}
