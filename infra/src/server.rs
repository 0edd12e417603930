//! The local HTTP server: every route of `shared::routes::ROUTES` at its template path and the
//! dashboard's pages (`shared::web`), each
//! request converted into the same `lambda_http` request API Gateway would hand a Lambda
//! (the caller's address in the request context), so one handler serves both worlds.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body as _, Incoming};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt};
use shared::App;
use shared::http::{ApiError, body_limit};
use shared::routes;
use tokio::net::TcpListener;

/// A constant, not a `&str` parsed into a header name on every click.
const X_FORWARDED_FOR: hyper::header::HeaderName =
    hyper::header::HeaderName::from_static("x-forwarded-for");

/// How long a clean shutdown waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may take to send a request's headers, and how long a kept-alive
/// connection may wait idle for its next request: a half-sent or forgotten connection is closed
/// then, instead of holding a descriptor for ever.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may take to send a request's body once its headers are in.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Descriptors kept back from connections, for the database, the data folder's files and the
/// runner's own outbound connections.
const RESERVED_DESCRIPTORS: u64 = 64;

/// The most connections served at once: `LEADSREFER_MAX_CONNECTIONS`, else what the process's
/// descriptor limit leaves after [`RESERVED_DESCRIPTORS`]. Past it a new connection is answered
/// 503 at once and closed, so that running out of descriptors never stalls the accept loop.
pub fn max_connections() -> Result<usize, String> {
    if let Ok(text) = std::env::var("LEADSREFER_MAX_CONNECTIONS") {
        return text.parse().ok().filter(|max| *max > 0).ok_or_else(|| {
            format!("LEADSREFER_MAX_CONNECTIONS is {text:?}: give a whole number of connections")
        });
    }
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the limit into the struct it is given, nothing else.
    let known = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    let descriptors = if known { limit.rlim_cur } else { 1024 };
    Ok(descriptors.saturating_sub(RESERVED_DESCRIPTORS).max(16) as usize)
}

/// What a connection over the limit hears before it is closed.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// Serves until `shutdown` resolves, then stops accepting and drains open connections.
/// With `trust_proxy`, the visitor's address is the last `X-Forwarded-For` entry; at most
/// `connections` (see [`max_connections`]) are served at once.
pub async fn serve(
    listener: TcpListener,
    app: App,
    trust_proxy: bool,
    connections: usize,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(connections));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: wait, don't die.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    // Refused politely, without waiting on a client that may never read.
                    let _ = stream.try_write(BUSY);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                let service = hyper::service::service_fn(move |request| answer(app.clone(), peer, trust_proxy, request));
                let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                    drop(slot);
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: draining open connections");
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}; closing them");
    }
}

/// The load test's yardstick: the same HTTP stack answering every request with a fixed 302
/// and doing nothing else (`leadsrefer baseline-302`).
pub async fn serve_baseline(listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let http = hyper::server::conn::http1::Builder::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let service = hyper::service::service_fn(|_request| async {
                    let response = hyper::Response::builder()
                        .status(302)
                        .header("location", "https://shop.example.com/welcome")
                        .body(Full::new(Bytes::new()))
                        .expect("a fixed response builds");
                    Ok::<_, Infallible>(response)
                });
                let connection = http.serve_connection(TokioIo::new(stream), service);
                tokio::spawn(async move { let _ = connection.await; });
            }
            () = &mut shutdown => return,
        }
    }
}

async fn answer(
    app: App,
    peer: SocketAddr,
    trust_proxy: bool,
    request: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    // What the debug line below logs, taken only when it is on: otherwise every click would
    // read the clock twice and copy its method and path for nothing.
    let logged = tracing::enabled!(tracing::Level::DEBUG).then(|| {
        (
            Instant::now(),
            parts.method.clone(),
            parts.uri.path().to_string(),
        )
    });
    let limit = body_limit(parts.uri.path());
    // Most requests (every click) have no body: nothing to collect.
    let body = if body.is_end_stream() {
        Ok(Bytes::new())
    } else {
        match tokio::time::timeout(BODY_READ_TIMEOUT, Limited::new(body, limit).collect()).await {
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
            Ok(Err(_)) => Err(ApiError::too_large("body", limit)),
            Err(_) => Err(ApiError::timed_out("body", BODY_READ_TIMEOUT)),
        }
    };
    let response = match body {
        Err(error) => error.into_response("-"),
        Ok(body) => {
            let client = if trust_proxy {
                forwarded_for(&parts.headers).unwrap_or(peer.ip())
            } else {
                peer.ip()
            };
            let request = lambda_request(parts, body, client);
            if shared::web::serves(request.uri().path()) {
                shared::web::respond(app, request).await
            } else {
                routes::respond(app, request, None).await
            }
        }
    };
    // The path only: query strings carry postback tokens and must stay out of logs. Debug
    // level: a line per request would cost the click path a write to the terminal.
    if let Some((started, method, path)) = logged {
        tracing::debug!(%method, %path, status = response.status().as_u16(), micros = started.elapsed().as_micros() as u64, "request");
    }
    let (parts, body) = response.into_parts();
    let bytes = match body {
        Body::Empty => Bytes::new(),
        Body::Text(text) => Bytes::from(text),
        Body::Binary(bytes) => Bytes::from(bytes),
        _ => Bytes::new(),
    };
    Ok(hyper::Response::from_parts(parts, Full::new(bytes)))
}

/// The last address of `X-Forwarded-For`: the one the trusted proxy appended.
fn forwarded_for(headers: &hyper::HeaderMap) -> Option<IpAddr> {
    let last = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .next_back()?
        .to_str()
        .ok()?
        .rsplit(',')
        .next()?;
    last.trim().parse().ok()
}

/// The request as API Gateway (HTTP API, payload v2) would have delivered it.
fn lambda_request(
    parts: hyper::http::request::Parts,
    body: Bytes,
    client: IpAddr,
) -> lambda_http::Request {
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.http.method = parts.method.clone();
    context.http.path = Some(parts.uri.path().to_string());
    context.http.source_ip = Some(shared::domain::privacy::address_text(client));
    let body = if body.is_empty() {
        Body::Empty
    } else {
        match String::from_utf8(body.to_vec()) {
            Ok(text) => Body::Text(text),
            Err(error) => Body::Binary(error.into_bytes()),
        }
    };
    lambda_http::Request::from_parts(parts, body)
        .with_request_context(RequestContext::ApiGatewayV2(context))
}
