//! The dashboard's stylesheet and script, compiled into the binary and served under names that
//! carry a hash of their content (`/assets/app.3f9c0a1b2c.css`): a browser may keep them for a
//! year, and a new build's pages name new files.

use std::sync::LazyLock;

use lambda_http::Body;
use lambda_http::http::{HeaderValue, StatusCode, header};
use sha2::{Digest, Sha256};

use crate::http::Response;

/// One embedded file.
pub struct Asset {
    /// `/assets/app.<hash>.css`.
    pub path: String,
    content_type: &'static str,
    bytes: &'static [u8],
}

impl Asset {
    fn new(stem: &str, extension: &str, content_type: &'static str, bytes: &'static [u8]) -> Self {
        let hash = hex::encode(&Sha256::digest(bytes)[..5]);
        Self {
            path: format!("/assets/{stem}.{hash}.{extension}"),
            content_type,
            bytes,
        }
    }
}

pub static STYLESHEET: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "app",
        "css",
        "text/css; charset=utf-8",
        include_bytes!("assets/app.css"),
    )
});

pub static SCRIPT: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "app",
        "js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/app.js"),
    )
});

/// The asset at `path`, with a year's cache lifetime; `None` for any other path (an old
/// build's name included: its content is gone).
pub fn serve(path: &str) -> Option<Response> {
    let asset = [&*STYLESHEET, &*SCRIPT]
        .into_iter()
        .find(|asset| asset.path == path)?;
    let mut response = Response::new(Body::Binary(asset.bytes.to_vec()));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_served_only_under_their_content_hash() {
        let css = serve(&STYLESHEET.path).unwrap();
        assert_eq!(
            css.headers()[header::CONTENT_TYPE],
            "text/css; charset=utf-8"
        );
        assert!(
            css.headers()[header::CACHE_CONTROL]
                .to_str()
                .unwrap()
                .contains("immutable")
        );
        assert!(STYLESHEET.path.starts_with("/assets/app.") && STYLESHEET.path.ends_with(".css"));
        assert!(serve("/assets/app.0000000000.css").is_none());
        assert!(serve("/assets/app.js").is_none());
        assert_ne!(STYLESHEET.path, SCRIPT.path);
    }
}
