//! Twilio as the call tests meet it: a fake of its REST API on loopback that serves recordings
//! (and fails on purpose when told), and webhook signatures computed by Twilio's official
//! Python library (`twilio` in the test virtual environment), not by our own code.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;

pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const AUTH_TOKEN: &str = "test-auth-token-0123456789abcdef";

/// Twilio's REST API for recordings.
#[derive(Clone, Default)]
pub struct FakeTwilio {
    /// RecordingSid → its audio.
    pub recordings: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    /// How many downloads to fail (HTTP 503) before serving.
    pub failures: Arc<Mutex<u32>>,
    pub downloads: Arc<Mutex<u32>>,
    pub deleted: Arc<Mutex<Vec<String>>>,
}

impl FakeTwilio {
    /// Starts it on loopback; answers it and its base URL.
    pub async fn start() -> (Self, String) {
        let fake = Self::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = fake.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let server = server.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let server = server.clone();
                        async move { Ok::<_, Infallible>(server.answer(request)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (fake, base)
    }

    fn answer(
        &self,
        request: hyper::Request<hyper::body::Incoming>,
    ) -> hyper::Response<Full<Bytes>> {
        let reply = |status: u16, body: Vec<u8>, kind: &str| {
            hyper::Response::builder()
                .status(status)
                .header("content-type", kind)
                .body(Full::new(Bytes::from(body)))
                .unwrap()
        };
        // Basic base64("AC…:token").
        let expected = format!(
            "Basic {}",
            base64_encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}").as_bytes())
        );
        let authorised = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            == Some(expected.as_str());
        if !authorised {
            return reply(
                401,
                br#"{"code":20003,"message":"Authenticate"}"#.to_vec(),
                "application/json",
            );
        }
        let path = request.uri().path().to_string();
        let prefix = format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/");
        let Some(file) = path.strip_prefix(&prefix) else {
            return reply(404, b"{}".to_vec(), "application/json");
        };
        match (request.method().as_str(), file.rsplit_once('.')) {
            ("GET", Some((sid, "mp3"))) => {
                *self.downloads.lock().unwrap() += 1;
                {
                    let mut failures = self.failures.lock().unwrap();
                    if *failures > 0 {
                        *failures -= 1;
                        return reply(503, b"{}".to_vec(), "application/json");
                    }
                }
                match self.recordings.lock().unwrap().get(sid) {
                    Some(audio) => reply(200, audio.clone(), "audio/mpeg"),
                    None => reply(404, b"{}".to_vec(), "application/json"),
                }
            }
            ("DELETE", Some((sid, "json"))) => {
                self.recordings.lock().unwrap().remove(sid);
                self.deleted.lock().unwrap().push(sid.to_string());
                reply(204, vec![], "application/json")
            }
            _ => reply(404, b"{}".to_vec(), "application/json"),
        }
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `X-Twilio-Signature` for a POST to `url` with `params`, by twilio's RequestValidator.
pub fn signature(token: &str, url: &str, params: &[(&str, &str)]) -> String {
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    let input = serde_json::json!({
        "token": token,
        "url": url,
        "params": params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<HashMap<_, _>>(),
    });
    let output = std::process::Command::new(&python)
        .args([
            "-c",
            "import json, sys\nfrom twilio.request_validator import RequestValidator\n\
             i = json.load(sys.stdin)\n\
             print(RequestValidator(i['token']).compute_signature(i['url'], i['params']))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.to_string().as_bytes())?;
            child.wait_with_output()
        })
        .unwrap_or_else(|e| {
            panic!(
                "{} (run infra/test once to install the test tools): {e}",
                python.display()
            )
        });
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// The form body of `params`.
pub fn form(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
