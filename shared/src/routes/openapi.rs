//! `GET /api/openapi.json`: the HTTP API described in OpenAPI 3.1, generated from the route
//! table (paths, methods, who may call, what each takes and answers) and the request and
//! response types' schemas (utoipa). Nothing in it is written by hand apart from the two
//! credentials and the error shape (the `openapi` function).

use std::collections::BTreeMap;

use lambda_http::http::StatusCode;
use serde_json::{Value, json};

use super::{ROUTES, Route};
use crate::caller::{Access, CSRF_HEADER, SESSION_COOKIE};
use crate::http::json as json_response;

pub const ROUTE: Route = Route::new(
    "openapi",
    &["GET"],
    "/api/openapi.json",
    Access::Public,
    "This document",
    |_app, _request| Box::pin(async { Ok(json_response(StatusCode::OK, &document())) }),
)
.succeeds_with(&[200]);

fn path_parameters(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect()
}

fn operation(
    route: &Route,
    method: &str,
    schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::Schema>)>,
) -> Value {
    let mut responses = BTreeMap::new();
    for status in route.success(method) {
        let body = match (status, route.response) {
            (200..=202, Some(schema_fn)) => {
                json!({ "description": "success", "content": { "application/json": { "schema": schema_fn(schemas) } } })
            }
            (302, _) => json!({ "description": "a redirect to the offer's destination" }),
            _ => json!({ "description": "success" }),
        };
        responses.insert(status.to_string(), body);
    }
    responses.insert(
        "4XX".to_string(),
        json!({ "description": "the request is refused; the message starts with the offending field",
                "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }),
    );
    let mut operation = json!({
        "operationId": format!("{}_{}_{}", route.function, method.to_lowercase(), route.path.trim_matches('/').replace(['/', '{', '}', '.', '-'], "_")),
        "summary": route.summary,
        "tags": [route.function],
        "parameters": path_parameters(route.path),
        "responses": responses,
    });
    if let Some(schema_fn) = route.request {
        operation["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": schema_fn(schemas) } } });
    }
    if let Access::Roles(roles) = route.access {
        let roles: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        operation["security"] = json!([{ "session": [] }, { "apiKey": [] }]);
        operation["description"] = json!(format!("For {} accounts.", roles.join(", ")));
    }
    operation
}

/// The document.
pub fn document() -> Value {
    let mut schemas = Vec::new();
    let mut paths: BTreeMap<&str, serde_json::Map<String, Value>> = BTreeMap::new();
    for route in ROUTES {
        for method in route.methods {
            let operation = operation(route, method, &mut schemas);
            paths
                .entry(route.path)
                .or_default()
                .insert(method.to_lowercase(), operation);
        }
    }
    let mut components: serde_json::Map<String, Value> = schemas
        .into_iter()
        .map(|(name, schema)| {
            (
                name,
                serde_json::to_value(schema).expect("schemas serialise"),
            )
        })
        .collect();
    components.insert(
        "Error".into(),
        json!({ "type": "object", "required": ["error"], "properties": { "error": { "type": "object",
            "required": ["code", "message"], "properties": {
                "code": { "type": "string" },
                "field": { "type": ["string", "null"], "description": "the offending field or parameter" },
                "message": { "type": "string", "description": "starts with the field's name" } } } } }),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "LeadsRefer API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!(
                "Browsers sign in and send the `{SESSION_COOKIE}` cookie, plus the session's CSRF token as `{CSRF_HEADER}` on every \
                 POST, PUT, PATCH and DELETE. Programs send `Authorization: Bearer <API key>`."),
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "session": { "type": "apiKey", "in": "cookie", "name": SESSION_COOKIE },
                "apiKey": { "type": "http", "scheme": "bearer" },
            },
        },
    })
}
