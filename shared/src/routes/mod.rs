//! The route table: every HTTP function's method, path and handler. Lambda functions serve
//! one entry each; the local runner serves them all; `template.yaml` declares the same paths
//! (a test keeps them in step).

use std::future::Future;
use std::pin::Pin;

use lambda_http::RequestExt;
use lambda_http::http::{HeaderValue, header};

use crate::app::App;
use crate::http::{ApiError, Request, Response};

pub mod click;
pub mod postback;

pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Response, ApiError>> + Send>>;

/// One HTTP function.
pub struct Route {
    /// The function's name: its crate in `functions/` and its resource in `template.yaml`.
    pub function: &'static str,
    pub methods: &'static [&'static str],
    /// API Gateway's path syntax: `/c/{link}`.
    pub path: &'static str,
    pub handler: fn(App, Request) -> HandlerFuture,
}

pub const ROUTES: &[Route] = &[click::ROUTE, postback::ROUTE];

impl Route {
    /// The path parameters, if `path` is this route's.
    pub fn match_path(&self, path: &str) -> Option<Vec<(String, String)>> {
        let mut params = Vec::new();
        let mut pattern = self.path.split('/');
        let mut actual = path.split('/');
        loop {
            match (pattern.next(), actual.next()) {
                (None, None) => return Some(params),
                (Some(p), Some(a)) if p.starts_with('{') && p.ends_with('}') && !a.is_empty() => {
                    let value = percent_encoding::percent_decode_str(a).decode_utf8().ok()?;
                    params.push((p[1..p.len() - 1].to_string(), value.into_owned()));
                }
                (Some(p), Some(a)) if p == a => {}
                _ => return None,
            }
        }
    }
}

/// The route serving `path`, with its path parameters.
pub fn find(path: &str) -> Option<(&'static Route, Vec<(String, String)>)> {
    ROUTES
        .iter()
        .find_map(|route| route.match_path(path).map(|params| (route, params)))
}

/// Runs a request through its route: the method check, the handler, and the error answer.
/// Every request gets an answer: a handler's error is the caller's 4xx or an opaque 5xx,
/// never an `Err` to the Lambda runtime (which API Gateway would turn into a blind 502).
pub async fn dispatch(route: &Route, app: App, request: Request) -> Response {
    let request_id = request
        .lambda_context_ref()
        .map(|context| context.request_id.clone())
        .unwrap_or_else(|| app.clock.new_id().to_string());
    let result = if route.methods.contains(&request.method().as_str()) {
        (route.handler)(app, request).await
    } else {
        Err(ApiError::method_not_allowed(route.methods))
    };
    let mut response = result.unwrap_or_else(|error| error.into_response(&request_id));
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    if route.methods.len() > 1 || response.status() == 405 {
        response.headers_mut().insert(
            header::ALLOW,
            HeaderValue::from_str(&route.methods.join(", ")).expect("method names are header-safe"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_match_their_routes_only() {
        let (route, params) = find("/c/AbCdE12345").unwrap();
        assert_eq!(route.function, "click");
        assert_eq!(params, vec![("link".to_string(), "AbCdE12345".to_string())]);
        assert_eq!(find("/postback").unwrap().0.function, "postback");
        for path in ["/c/", "/c", "/c/a/b", "/postback/x", "/", "/nope"] {
            assert!(find(path).is_none(), "{path}");
        }
    }

    #[test]
    fn every_function_has_one_route_and_a_unique_path() {
        let mut names: Vec<_> = ROUTES.iter().map(|r| r.function).collect();
        let mut paths: Vec<_> = ROUTES.iter().map(|r| r.path).collect();
        names.sort();
        names.dedup();
        paths.sort();
        paths.dedup();
        assert_eq!((names.len(), paths.len()), (ROUTES.len(), ROUTES.len()));
    }
}
