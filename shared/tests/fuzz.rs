//! The parsers that take what anyone on the internet sends, fuzzed with proptest (cargo-fuzz
//! needs a nightly compiler): query strings, form and JSON bodies, tracking links' sub-ids,
//! destination templates and their fill, postback signature headers and Twilio's signed forms.
//! Each property holds for any input: no panic, and a refusal is a 4xx, never a 5xx.
//!
//! `infra/test` runs the default 256 cases each; `PROPTEST_CASES=1000000 cargo test --release
//! -p shared --test fuzz` is the long run (BENCHMARKS.md).

use std::sync::Arc;

use lambda_http::Body;
use lambda_http::http::{HeaderValue, StatusCode};
use proptest::prelude::*;
use shared::App;
use shared::domain::calls::twilio_signature_valid;
use shared::domain::ids::{AffiliateId, ClickId, OfferId};
use shared::domain::offer::{Destination, Macros};
use shared::domain::tracking::Subs;
use shared::http::{Params, Request};
use shared::ports::ManualClock;

/// Query strings as a browser or a program may send them: any characters a URI allows,
/// escapes of any byte (invalid UTF-8 included), separators anywhere.
const QUERY: &str =
    "([A-Za-z0-9=&+._~!$'()*,;:@/?-]|%[0-9A-Fa-f]{2}|%[0-9A-Fa-f]?|sub[1-5]=){0,64}";

/// JSON objects whose strings hold any escape: lone and paired surrogates, controls.
const JSON: &str = r#"\{( *"[a-z_]{1,9}" *: *("([^"\\]|\\u[0-9a-fA-F]{4}|\\u[dD][89a-fA-F][0-9a-fA-F]{2}|\\[nrtbf"\\/])*"|-?[0-9]{1,20}(\.[0-9]{1,8})?|true|false|null|\[\]|\{\}) *,?){0,4}\}"#;

fn request(uri: &str, content_type: &str, body: Vec<u8>) -> Request {
    lambda_http::http::Request::builder()
        .method("POST")
        .uri(uri)
        .header("content-type", content_type)
        .body(if body.is_empty() {
            Body::Empty
        } else {
            Body::Binary(body)
        })
        .unwrap()
}

fn refused_with_a_4xx(result: Result<Params, shared::http::ApiError>) -> Result<(), TestCaseError> {
    if let Err(error) = result {
        prop_assert!(error.status.is_client_error(), "{:?}", error.status);
    }
    Ok(())
}

proptest! {
    #[test]
    fn query_strings_parse_or_are_refused_with_a_4xx(query in QUERY) {
        let uri = format!("/postback?{query}");
        prop_assume!(uri.parse::<lambda_http::http::Uri>().is_ok());
        refused_with_a_4xx(Params::from_query(&request(&uri, "text/plain", Vec::new())))?;
    }

    #[test]
    fn form_bodies_of_any_bytes_parse_or_are_refused_with_a_4xx(
        body in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        // What Twilio's webhooks and form postbacks arrive as.
        refused_with_a_4xx(Params::from_form(&body))?;
        let form = request("/postback", "application/x-www-form-urlencoded", body);
        refused_with_a_4xx(Params::from_query_and_body(&form))?;
    }

    #[test]
    fn json_bodies_parse_or_are_refused_with_a_4xx(
        json in JSON,
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        for body in [json.into_bytes(), bytes] {
            let posted = request("/postback", "application/json", body);
            refused_with_a_4xx(Params::from_query_and_body(&posted))?;
        }
    }

    #[test]
    fn postback_signature_headers_of_any_text_never_panic(header in "(t=-?[0-9]{0,20}|v1=[0-9a-fA-F]{0,70}|v0=[a-z]*|[ ,=a-z0-9]{0,8}){0,6}", noise in any::<String>()) {
        for header in [header, noise] {
            if let Some((_, signatures)) = shared::tracking::parse_signature_header(&header) {
                prop_assert!(!signatures.is_empty());
            }
        }
    }

    #[test]
    fn twilio_signatures_check_any_url_and_form_without_panic(
        url in "(https?://[a-z.]{1,20}(:[0-9]{1,5})?)?[ -~]{0,40}",
        params in proptest::collection::vec(("[ -~]{0,12}", any::<String>()), 0..6),
        signature in "[A-Za-z0-9+/=]{0,40}",
    ) {
        prop_assert!(!twilio_signature_valid(b"token", &url, &params, &signature) || signature.len() == 28);
    }

    /// A destination that is accepted fills, with any sub-ids, into a URL that is one valid
    /// `Location` header and goes to the template's own host: no open redirect, no header
    /// split, whatever the template or the visitor sent.
    #[test]
    fn accepted_destinations_fill_into_one_header_on_their_own_host(
        template in "(https?://)?([a-zé.]{1,12}|\\{sub1\\})(:[0-9]{1,5})?(/([ -~]|[é✓\r\n\t]|\\{(sub[1-5]|click_id|offer_id|affiliate_id|call_number|x)\\}){0,30})?",
        subs in proptest::array::uniform5(proptest::option::of(any::<String>())),
    ) {
        let Ok(destination) = Destination::parse(&template) else {
            return Ok(());
        };
        let subs = Subs::new(subs);
        let filled = destination.fill(&Macros {
            click_id: ClickId(ulid::Ulid::from_parts(1, 1)),
            affiliate_id: AffiliateId(ulid::Ulid::from_parts(2, 2)),
            offer_id: OfferId(ulid::Ulid::from_parts(3, 3)),
            subs: &subs,
            call_number: Some("+14155550100"),
        });
        prop_assert!(HeaderValue::try_from(filled.as_str()).is_ok(), "{filled:?}");
        let filled_host = url::Url::parse(&filled).unwrap().host_str().map(str::to_string);
        let template_host = url::Url::parse(destination.as_str()).ok().and_then(|u| u.host_str().map(str::to_string));
        prop_assert_eq!(filled_host, template_host);
    }
}

/// A tracking link followed with any query answers a shopper: a redirect, never a 4xx or 5xx.
#[test]
fn tracking_links_answer_any_query_with_a_redirect() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at(
        jiff::Timestamp::from_second(1_780_000_000).unwrap(),
    ));
    let sender = shared::domain::email::EmailAddress::parse("no-reply@leadsrefer.local").unwrap();
    let app = App::embedded(data.path(), clock, sender).unwrap();
    let (demo, _) = runtime.block_on(shared::seed::seed_demo(&app)).unwrap();
    proptest!(|(query in QUERY)| {
        let uri = format!("/c/{}?{query}", demo.link);
        prop_assume!(uri.parse::<lambda_http::http::Uri>().is_ok());
        let click = lambda_http::http::Request::builder()
            .uri(&uri)
            .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0")
            .body(Body::Empty)
            .unwrap();
        let answer = runtime.block_on(shared::routes::respond(app.clone(), click, None));
        prop_assert_eq!(answer.status(), StatusCode::FOUND, "{}", uri);
    });
}
