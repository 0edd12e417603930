//! `leadsrefer simulate-call`: a phone call as Twilio reports it to the runner's webhooks (the
//! voice webhook when the call comes in, then the `<Dial>`'s action when the put-through call
//! ends), each request signed with the account's auth token as Twilio signs it. Pay-per-call
//! can so be tried without a Twilio account (see [`Twilio::simulated`]), and the real
//! webhooks, signature check included, are what it exercises.

use std::time::Duration;

use crate::adapters::twilio::Twilio;
use crate::domain::calls::{E164, twilio_signature};

/// The call to simulate.
pub struct SimulatedCall {
    /// The tracking number called.
    pub to: E164,
    /// The caller.
    pub from: E164,
    /// How long caller and advertiser talk once put through; 0 is a call nobody answers.
    pub connected_secs: u32,
}

/// What happened to it.
pub struct Simulation {
    /// Its CallSid.
    pub sid: String,
    /// What the caller heard before the call was put through (or instead).
    pub heard: Vec<String>,
    /// The number the call was put through to, if it was.
    pub put_through_to: Option<String>,
    /// How the put-through call ended, as Twilio says it (`completed`, `no-answer`).
    pub outcome: Option<&'static str>,
}

/// Places `call` with the server at `server` (its base URL), as `twilio`'s account.
pub async fn simulate(
    twilio: &Twilio,
    server: &str,
    call: &SimulatedCall,
) -> Result<Simulation, String> {
    crate::outbound::install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let sid = format!("CA{}", hex::encode(rand::random::<[u8; 16]>()));
    let common = [
        ("AccountSid", twilio.account_sid().to_string()),
        ("CallSid", sid.clone()),
        ("From", call.from.as_str().to_string()),
        ("To", call.to.as_str().to_string()),
        ("Direction", "inbound".to_string()),
        ("ApiVersion", "2010-04-01".to_string()),
    ];
    let base = twilio
        .webhook_base(server.trim_end_matches('/'))
        .to_string();
    let post = |path: &'static str, extra: Vec<(&'static str, String)>| {
        let mut params: Vec<(String, String)> = common
            .iter()
            .chain(extra.iter())
            .map(|(name, value)| (name.to_string(), value.clone()))
            .collect();
        params.sort();
        let url = format!("{base}{path}");
        let signature = twilio_signature(twilio.auth_token(), &url, &params);
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&params)
            .finish();
        let request = client
            .post(url)
            .header("x-twilio-signature", signature)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        async move {
            let response = request.send().await.map_err(|e| {
                format!(
                    "{server} could not be reached ({e}): is the server running there? (--server)"
                )
            })?;
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            if status.is_success() {
                Ok(text)
            } else if status.as_u16() == 403 {
                Err(format!(
                    "{path} refused the call's signature (HTTP 403): give simulate-call the server's data folder (--data) and the same LEADSREFER_TWILIO_* settings, and --server the address Twilio would call"
                ))
            } else {
                Err(format!("{path} answered HTTP {status}: {text}"))
            }
        }
    };
    let twiml = post("/twilio/voice", vec![("CallStatus", "ringing".into())]).await?;
    let heard = elements(&twiml, "Say");
    let put_through_to = elements(&twiml, "Number").into_iter().next();
    let mut outcome = None;
    if put_through_to.is_some() {
        let status = if call.connected_secs > 0 {
            "completed"
        } else {
            "no-answer"
        };
        post(
            "/twilio/status",
            vec![
                ("CallStatus", "completed".into()),
                (
                    "DialCallSid",
                    format!("CA{}", hex::encode(rand::random::<[u8; 16]>())),
                ),
                ("DialCallStatus", status.into()),
                ("DialCallDuration", call.connected_secs.to_string()),
            ],
        )
        .await?;
        outcome = Some(status);
    }
    Ok(Simulation {
        sid,
        heard,
        put_through_to,
        outcome,
    })
}

/// The text of every `<name>…</name>` of a TwiML answer, unescaped.
fn elements(twiml: &str, name: &str) -> Vec<String> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    twiml
        .split(open.as_str())
        .skip(1)
        .filter_map(|rest| rest.split(close.as_str()).next())
        .map(|text| {
            text.replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&#39;", "'")
                .replace("&amp;", "&")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twiml_elements_are_read_whole_and_unescaped() {
        let twiml = "<?xml version=\"1.0\"?><Response><Say>Calls &amp; more.</Say><Dial record=\"x\"><Number>+14155550100</Number></Dial></Response>";
        assert_eq!(elements(twiml, "Say"), ["Calls & more."]);
        assert_eq!(elements(twiml, "Number"), ["+14155550100"]);
        assert!(elements(twiml, "Play").is_empty());
    }
}
