//! Pay-per-call: tracking numbers, calls and Twilio's webhook signature.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::ids::{AdvertiserId, AffiliateId, ClickId, ConversionId, LinkCode, OfferId};

/// A phone number in E.164: `+`, then 8 to 15 digits, the first not 0.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct E164(String);

impl E164 {
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let digits = text
            .strip_prefix('+')
            .ok_or("must be in E.164 form: + and the country code, such as +14155550100")?;
        if !(8..=15).contains(&digits.len())
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || digits.starts_with('0')
        {
            return Err("must be in E.164 form: + and 8 to 15 digits, such as +14155550100");
        }
        Ok(Self(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for E164 {
    type Error = &'static str;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<E164> for String {
    fn from(number: E164) -> Self {
        number.0
    }
}

/// How a tracking number ties a call to an affiliate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Assignment {
    /// Always the same affiliate's link: every call is theirs.
    Static {
        #[schema(value_type = String)]
        link: LinkCode,
        #[schema(value_type = String)]
        affiliate_id: AffiliateId,
    },
    /// One of the offer's pool: the click handler lends it to a visitor for a while (dynamic
    /// number insertion), and a call to it belongs to that click.
    Pool,
}

/// A phone number bought in Twilio and registered for an offer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TrackingNumber {
    #[schema(value_type = String)]
    pub number: E164,
    #[schema(value_type = String)]
    pub offer_id: OfferId,
    #[schema(value_type = String)]
    pub advertiser_id: AdvertiserId,
    pub assignment: Assignment,
    #[schema(value_type = String)]
    pub created_at: Timestamp,
}

/// An offer's calls: where they go and what makes one a conversion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CallSettings {
    /// The advertiser's number calls are put through to.
    #[schema(value_type = String)]
    pub destination: E164,
    /// A call connected at least this long converts (90 s is common).
    pub min_duration_secs: u32,
    /// Played to the caller before the call is put through ("This call may be recorded…").
    pub notice: Option<String>,
    /// Delete the recording from Twilio once it is archived.
    pub delete_from_twilio: bool,
    /// A second qualifying call from one caller within this many hours is held for review.
    pub repeat_window_hours: u32,
    /// How long a pool number stays lent to a visitor.
    pub lease_minutes: u32,
    /// Transcribe put-through calls as they happen (Twilio's real-time transcription, billed
    /// by Twilio per minute); the advertiser reads who said what with the call.
    #[serde(default)]
    pub transcribe: bool,
}

/// A recording, archived.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Recording {
    pub recording_sid: String,
    /// Its key in `Blobs`.
    pub key: String,
    pub bytes: u64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    pub duration_secs: u32,
    #[schema(value_type = String)]
    pub archived_at: Timestamp,
}

/// Who spoke: Twilio's tracks of the inbound call, whose `inbound_track` is what the caller
/// says and `outbound_track` what the advertiser says once put through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Speaker {
    Caller,
    Advertiser,
}

impl Speaker {
    pub fn of_track(track: &str) -> Option<Self> {
        match track {
            "inbound_track" => Some(Self::Caller),
            "outbound_track" => Some(Self::Advertiser),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Caller => "Caller",
            Self::Advertiser => "Advertiser",
        }
    }
}

/// One final utterance of a call's live transcription.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Utterance {
    pub speaker: Speaker,
    /// Twilio's `SequenceId`: counted per track, so a repeated callback is known by both.
    pub sequence: u64,
    /// When Twilio heard it (`Timestamp`, RFC 3339): the order across the two tracks.
    pub at: Timestamp,
    pub text: String,
}

/// A transcript as text: one line an utterance, `Speaker: text`.
pub fn transcript_text(transcript: &[Utterance]) -> Option<String> {
    if transcript.is_empty() {
        return None;
    }
    let lines: Vec<String> = transcript
        .iter()
        .map(|u| format!("{}: {}", u.speaker.label(), u.text))
        .collect();
    Some(lines.join("\n"))
}

/// One call to a tracking number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// Twilio's CallSid of the inbound call.
    pub sid: String,
    pub number: E164,
    pub offer_id: OfferId,
    pub advertiser_id: AdvertiserId,
    /// Whose call it is: none for a pool number no visitor held.
    pub affiliate_id: Option<AffiliateId>,
    pub click_id: Option<ClickId>,
    /// The caller's number as a keyed hash, like a visitor's IP: never the number.
    pub caller_hash: String,
    pub caller_country: Option<String>,
    pub started_at: Timestamp,
    /// Twilio's status of the put-through call (`completed`, `busy`, `no-answer`…), once known.
    pub outcome: Option<String>,
    /// Seconds the caller and the advertiser were connected.
    pub connected_secs: Option<u32>,
    pub conversion_id: Option<ConversionId>,
    pub recording: Option<Recording>,
    /// What was said, one final utterance a callback, in the order it was said.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transcript: Vec<Utterance>,
    pub flags: Vec<String>,
    pub expires_at: i64,
    /// Bumped by every change: callbacks racing on one call never lose each other's writes.
    #[serde(default)]
    pub version: u64,
}

/// Twilio's `X-Twilio-Signature` of a request: base64(HMAC-SHA1(auth token, the full URL as
/// Twilio called it, then each POST parameter's name and value, sorted by name)).
pub fn twilio_signature(auth_token: &[u8], url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(auth_token).expect("HMAC takes any key");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `signature` is Twilio's for the request, compared in constant time. Like Twilio's
/// own validators, it accepts a signature over the URL with or without the scheme's default
/// port (`https://host/…` and `https://host:443/…`): which one Twilio signs depends on how the
/// webhook URL was written in its console.
pub fn twilio_signature_valid(
    auth_token: &[u8],
    url: &str,
    params: &[(String, String)],
    signature: &str,
) -> bool {
    url_forms(url).iter().fold(false, |valid, form| {
        let expected = twilio_signature(auth_token, form, params);
        valid
            | bool::from(subtle::ConstantTimeEq::ct_eq(
                expected.as_bytes(),
                signature.as_bytes(),
            ))
    })
}

/// The URL as written and its other form: with the scheme's default port if it has none, or
/// without it if it names it. Text is kept byte for byte otherwise, as signatures need.
fn url_forms(url: &str) -> Vec<String> {
    let mut forms = vec![url.to_string()];
    let (scheme, port) = if url.starts_with("https://") {
        ("https://", ":443")
    } else if url.starts_with("http://") {
        ("http://", ":80")
    } else {
        return forms;
    };
    let rest = &url[scheme.len()..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    // A port follows the last ':' after any IPv6 literal's ']'.
    let host_end = authority.rfind(']').map_or(0, |i| i + 1);
    let other = match authority.strip_suffix(port) {
        Some(host) if host.len() >= host_end => format!("{scheme}{host}{tail}"),
        _ if authority[host_end..].contains(':') => return forms,
        _ => format!("{scheme}{authority}{port}{tail}"),
    };
    forms.push(other);
    forms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_over_either_form_of_the_url_is_accepted() {
        let params = vec![("CallSid".to_string(), "CA1".to_string())];
        for (signed, configured) in [
            (
                "https://hooks.example/twilio/voice",
                "https://hooks.example:443/twilio/voice",
            ),
            (
                "https://hooks.example:443/twilio/voice",
                "https://hooks.example/twilio/voice",
            ),
            (
                "http://127.0.0.1:80/twilio/voice?x=1",
                "http://127.0.0.1/twilio/voice?x=1",
            ),
            (
                "https://[::1]:443/twilio/voice",
                "https://[::1]/twilio/voice",
            ),
        ] {
            let signature = twilio_signature(b"token", signed, &params);
            assert!(
                twilio_signature_valid(b"token", configured, &params, &signature),
                "{signed} vs {configured}"
            );
        }
        // Another port, another host or another token is not the same URL.
        let signature =
            twilio_signature(b"token", "https://hooks.example:8443/twilio/voice", &params);
        assert!(!twilio_signature_valid(
            b"token",
            "https://hooks.example/twilio/voice",
            &params,
            &signature
        ));
        let signature = twilio_signature(b"token", "https://hooks.example/twilio/voice", &params);
        assert!(!twilio_signature_valid(
            b"other",
            "https://hooks.example/twilio/voice",
            &params,
            &signature
        ));
        assert!(!twilio_signature_valid(
            b"token",
            "https://evil.example/twilio/voice",
            &params,
            &signature
        ));
        assert_eq!(url_forms("https://h:8443/p"), ["https://h:8443/p"]);
    }

    #[test]
    fn numbers_are_e164() {
        assert!(E164::parse("+14155550100").is_ok());
        for bad in [
            "14155550100",
            "+0123456789",
            "+1415",
            "+1415555010012345",
            "+1 415",
        ] {
            assert!(E164::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_signature_is_twilios_documented_example() {
        // Twilio's security documentation: this request, token 12345.
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(
            twilio_signature(b"12345", url, &params),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
        assert!(twilio_signature_valid(
            b"12345",
            url,
            &params,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
        assert!(!twilio_signature_valid(
            b"12346",
            url,
            &params,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
    }
}
