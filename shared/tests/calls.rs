//! Pay-per-call against the real store and a fake Twilio on loopback: webhooks signed by
//! Twilio's own library are accepted and anything altered is refused; a short call does not
//! convert, a long one converts once however its callbacks repeat or arrive; recordings are
//! archived byte for byte, after failed downloads too; each party sees its own calls.

use std::sync::Arc;

use jiff::SignedDuration;
use lambda_http::Body;
use serde_json::{Value, json};
use shared::App;
use shared::adapters::twilio::{Twilio, TwilioSettings};
use shared::http::Response;
use shared::secret::Secret;
use support::twilio::{ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, form, signature};
use support::{Platform, body};

mod support;

const HOOKS: &str = "https://calls.example.test";
const NUMBER: &str = "+14155550123";
const POOL_NUMBER: &str = "+14155550199";
const DESTINATION: &str = "+14155550100";
const IP: &str = "203.0.113.9";

struct World {
    platform: Platform,
    fake: FakeTwilio,
}

impl World {
    async fn new() -> Self {
        Self::on(support::platform(support::at("2026-06-02T12:00:00Z")).await).await
    }

    /// The platform on the AWS adapters, on the emulator `infra/test` starts.
    async fn on_aws() -> Self {
        Self::on(support::aws_platform("calls", support::at("2026-06-02T12:00:00Z")).await).await
    }

    async fn on(mut platform: Platform) -> Self {
        let (fake, base) = FakeTwilio::start().await;
        platform.app.twilio = Some(Arc::new(Twilio::new(TwilioSettings {
            api_base: base,
            account_sid: ACCOUNT_SID.into(),
            auth_token: Secret::new(AUTH_TOKEN.into()),
            webhook_base: Some(HOOKS.into()),
            simulated: false,
        })));
        let world = Self { platform, fake };
        let advertiser = world.sign_in("advertiser").await;
        let offer = world.platform.demo.offer_id;
        let settings = world
            .send(
                &advertiser,
                "PUT",
                &format!("/api/offers/{offer}/calls"),
                Some(json!({
                    "destination": DESTINATION, "min_duration_secs": 90, "delete_from_twilio": true,
                    "notice": "This call may be recorded for quality & training."
                })),
            )
            .await;
        assert_eq!(settings.status(), 200, "{}", text(&settings));
        let registered = world
            .send(
                &advertiser,
                "POST",
                "/api/numbers",
                Some(json!({
                    "number": NUMBER, "offer_id": offer.to_string(),
                    "affiliate_id": world.platform.demo.affiliate_id.to_string()
                })),
            )
            .await;
        assert_eq!(registered.status(), 201, "{}", text(&registered));
        world
    }

    /// Registers [`POOL_NUMBER`] in the demo offer's pool and shows it to each visitor on the
    /// landing page (`{call_number}`), lent to their click.
    async fn pool_number_shown_to_visitors(&self) {
        let advertiser = self.sign_in("advertiser").await;
        let offer_id = self.platform.demo.offer_id;
        let pool = self
            .send(
                &advertiser,
                "POST",
                "/api/numbers",
                Some(json!({ "number": POOL_NUMBER, "offer_id": offer_id.to_string() })),
            )
            .await;
        assert_eq!(pool.status(), 201, "{}", text(&pool));
        let mut offer = self.app().store.offer(offer_id).await.unwrap().unwrap();
        offer.destination = shared::domain::offer::Destination::parse(
            "https://shop.example.com/call?clickid={click_id}&phone={call_number}",
        )
        .unwrap();
        self.app().store.save_offer(&offer).await.unwrap();
    }

    fn app(&self) -> &App {
        &self.platform.app
    }

    async fn sign_in(&self, role: &str) -> (String, String) {
        support::sign_in(self.app(), &self.platform.demo, role).await
    }

    async fn send(
        &self,
        who: &(String, String),
        method: &str,
        uri: &str,
        body: Option<Value>,
    ) -> Response {
        support::send(
            self.app(),
            method,
            uri,
            IP,
            &[("cookie", &who.0), ("x-csrf-token", &who.1)],
            body,
        )
        .await
    }

    /// A real-time transcription's `transcription-content` callback, as Twilio sends it:
    /// `TranscriptionData` is JSON in a form field, `SequenceId` counts per track.
    async fn utterance(
        &self,
        sid: &str,
        track: &str,
        sequence: &str,
        at: &str,
        transcript: &str,
        last: bool,
    ) -> Response {
        let data = if last {
            json!({ "transcript": transcript, "confidence": 0.9956335 })
        } else {
            json!({ "transcript": transcript, "stability": 0.9 })
        };
        let answered = self
            .hook(
                "/twilio/transcription",
                &[
                    ("AccountSid", ACCOUNT_SID),
                    ("CallSid", sid),
                    ("TranscriptionSid", "GT8fbf0c4d58d0f4d9a3b8e7c1f2e3d4a5"),
                    ("Timestamp", at),
                    ("SequenceId", sequence),
                    ("TranscriptionEvent", "transcription-content"),
                    ("LanguageCode", "en-US"),
                    ("Track", track),
                    ("TranscriptionData", &data.to_string()),
                    ("Final", if last { "true" } else { "false" }),
                ],
            )
            .await;
        assert_eq!(answered.status(), 204, "{}", text(&answered));
        answered
    }

    /// A webhook as Twilio sends it: form-encoded, signed over `url_path` (what Twilio
    /// called) with `token`.
    async fn hook_signed(
        &self,
        path: &str,
        url_path: &str,
        token: &str,
        params: &[(&str, &str)],
    ) -> Response {
        let signature = signature(token, &format!("{HOOKS}{url_path}"), params);
        support::send_body(
            self.app(),
            "POST",
            path,
            "54.172.60.1",
            &[("x-twilio-signature", &signature)],
            Some((
                "application/x-www-form-urlencoded",
                Body::Text(form(params)),
            )),
        )
        .await
    }

    async fn hook(&self, path: &str, params: &[(&str, &str)]) -> Response {
        self.hook_signed(path, path, AUTH_TOKEN, params).await
    }

    async fn voice(&self, sid: &str, to: &str, from: &str) -> String {
        let answer = self
            .hook(
                "/twilio/voice",
                &[
                    ("AccountSid", ACCOUNT_SID),
                    ("CallSid", sid),
                    ("From", from),
                    ("To", to),
                    ("FromCountry", "US"),
                    ("CallStatus", "ringing"),
                    ("Direction", "inbound"),
                ],
            )
            .await;
        assert_eq!(answer.status(), 200, "{}", text(&answer));
        assert_eq!(answer.headers()["content-type"], "text/xml; charset=utf-8");
        text(&answer)
    }

    async fn ended(&self, sid: &str, seconds: &str) -> Response {
        self.hook(
            "/twilio/status",
            &[
                ("AccountSid", ACCOUNT_SID),
                ("CallSid", sid),
                ("DialCallStatus", "completed"),
                ("DialCallDuration", seconds),
                ("DialCallSid", "CAchild"),
            ],
        )
        .await
    }

    async fn recorded(&self, sid: &str, recording: &str) -> Response {
        self.hook(
            "/twilio/recording",
            &[
                ("AccountSid", ACCOUNT_SID),
                ("CallSid", sid),
                ("RecordingSid", recording),
                (
                    "RecordingUrl",
                    &format!("https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{recording}"),
                ),
                ("RecordingStatus", "completed"),
                ("RecordingDuration", "125"),
                ("RecordingChannels", "2"),
                ("RecordingSource", "DialVerb"),
            ],
        )
        .await
    }

    async fn dispatch(&self) -> String {
        (shared::jobs::find("dispatch").unwrap().run)(self.app().clone())
            .await
            .unwrap()
    }

    async fn conversions(&self) -> usize {
        let (page, _) = self
            .app()
            .store
            .conversions_of_affiliate(self.platform.demo.affiliate_id, None, 100)
            .await
            .unwrap();
        page.len()
    }
}

fn text(response: &Response) -> String {
    String::from_utf8_lossy(response.body().as_ref()).into_owned()
}

fn audio(seed: u8) -> Vec<u8> {
    let mut mp3 = b"ID3\x04\x00\x00\x00\x00\x00\x00".to_vec();
    mp3.extend((0..200_000u32).map(|i| (i as u8).wrapping_mul(seed)));
    mp3
}

#[tokio::test]
async fn signatures_from_twilios_library_pass_and_anything_altered_is_refused() {
    let w = World::new().await;
    // Another URL, another parameter value, another token: each refused, nothing recorded.
    let params = [
        ("AccountSid", ACCOUNT_SID),
        ("CallSid", "CA0002"),
        ("From", "+12125550123"),
        ("To", NUMBER),
    ];
    let other_url = w
        .hook_signed("/twilio/voice", "/twilio/voice?x=1", AUTH_TOKEN, &params)
        .await;
    let other_token = w
        .hook_signed("/twilio/voice", "/twilio/voice", "another-token", &params)
        .await;
    let signature = signature(AUTH_TOKEN, &format!("{HOOKS}/twilio/voice"), &params);
    let mut altered = params;
    altered[3] = ("To", "+14155550999");
    let other_param = support::send_body(
        w.app(),
        "POST",
        "/twilio/voice",
        IP,
        &[("x-twilio-signature", &signature)],
        Some((
            "application/x-www-form-urlencoded",
            Body::Text(form(&altered)),
        )),
    )
    .await;
    let unsigned = support::send_body(
        w.app(),
        "POST",
        "/twilio/voice",
        IP,
        &[],
        Some((
            "application/x-www-form-urlencoded",
            Body::Text(form(&params)),
        )),
    )
    .await;
    let garbled = support::send_body(
        w.app(),
        "POST",
        "/twilio/voice",
        IP,
        &[("x-twilio-signature", &signature)],
        Some((
            "application/x-www-form-urlencoded",
            Body::Text("To=%FF&To=2".into()),
        )),
    )
    .await;
    for refused in [other_url, other_token, other_param, unsigned, garbled] {
        assert_eq!(
            (refused.status().as_u16(), support::field(&refused)),
            (403, "signature".to_string())
        );
    }
    assert!(w.app().store.call("CA0002").await.unwrap().is_none());
    // The same request as Twilio signed it passes.
    let good = w.hook("/twilio/voice", &params).await;
    assert_eq!(good.status(), 200, "{}", text(&good));
    assert!(w.app().store.call("CA0002").await.unwrap().is_some());
}

#[tokio::test]
async fn a_call_is_put_through_recorded_and_a_long_one_converts_once() {
    let w = World::new().await;
    let twiml = w.voice("CA1001", NUMBER, "+12125550123").await;
    assert!(twiml.contains("<Say>This call may be recorded for quality &amp; training.</Say>"));
    assert!(twiml.contains(
        "<Dial record=\"record-from-answer-dual\" recordingStatusCallback=\"https://calls.example.test/twilio/recording\""
    ));
    assert!(twiml.contains(&format!("<Number>{DESTINATION}</Number>")));
    assert!(
        !twiml.contains("<Transcription"),
        "calls are transcribed only for offers that ask"
    );
    // A repeat of the webhook records nothing new.
    w.voice("CA1001", NUMBER, "+12125550123").await;
    let call = w.app().store.call("CA1001").await.unwrap().unwrap();
    assert_eq!(call.affiliate_id, Some(w.platform.demo.affiliate_id));
    // The caller is the keyed pseudonym, never the number.
    assert_eq!(
        call.caller_hash,
        w.app().pseudonymizer.caller_hash("+12125550123")
    );
    let stored = serde_json::to_string(&w.app().store.call("CA1001").await.unwrap()).unwrap();
    assert!(!stored.contains("2125550123"), "{stored}");

    // Not final yet: nothing. Then a short call: no conversion.
    let ringing = w
        .hook(
            "/twilio/status",
            &[
                ("AccountSid", ACCOUNT_SID),
                ("CallSid", "CA1001"),
                ("DialCallStatus", "in-progress"),
            ],
        )
        .await;
    assert_eq!(ringing.status(), 200);
    assert_eq!(
        w.app().store.call("CA1001").await.unwrap().unwrap().outcome,
        None
    );
    assert_eq!(w.ended("CA1001", "45").await.status(), 200);
    assert_eq!(w.conversions().await, 0);
    assert_eq!(
        w.app()
            .store
            .call("CA1001")
            .await
            .unwrap()
            .unwrap()
            .outcome
            .as_deref(),
        Some("completed")
    );

    // A long one converts once: callbacks repeated, the recording's before its status.
    w.voice("CA1002", NUMBER, "+13105550111").await;
    w.fake
        .recordings
        .lock()
        .unwrap()
        .insert("RE1002".into(), audio(7));
    assert_eq!(w.recorded("CA1002", "RE1002").await.status(), 204);
    assert_eq!(w.recorded("CA1002", "RE1002").await.status(), 204);
    for _ in 0..3 {
        let ended = w.ended("CA1002", "125").await;
        assert_eq!(ended.status(), 200);
        assert!(text(&ended).contains("<Hangup/>"));
    }
    assert_eq!(w.conversions().await, 1);
    let call = w.app().store.call("CA1002").await.unwrap().unwrap();
    assert!(call.conversion_id.is_some());
    assert_eq!(call.connected_secs, Some(125));

    // The recording is archived once, byte for byte, then deleted from Twilio.
    let report = w.dispatch().await;
    assert!(report.starts_with("1 delivered"), "{report}");
    assert!(w.dispatch().await.starts_with("0 delivered"));
    let call = w.app().store.call("CA1002").await.unwrap().unwrap();
    let recording = call.recording.expect("archived");
    let stored = w
        .app()
        .blobs
        .get(&shared::ports::BlobKey::parse(recording.key.clone()).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, audio(7));
    assert_eq!(
        recording.sha256,
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(audio(7)))
    );
    assert_eq!((recording.bytes, recording.duration_secs), (200_010, 125));
    assert_eq!(*w.fake.deleted.lock().unwrap(), vec!["RE1002".to_string()]);
    assert_eq!(*w.fake.downloads.lock().unwrap(), 1);
}

#[tokio::test]
async fn a_failed_download_is_retried_and_archived_in_the_end() {
    let w = World::new().await;
    w.voice("CA2001", NUMBER, "+12125550123").await;
    w.fake
        .recordings
        .lock()
        .unwrap()
        .insert("RE2001".into(), audio(3));
    *w.fake.failures.lock().unwrap() = 2;
    w.recorded("CA2001", "RE2001").await;
    assert!(w.dispatch().await.contains("1 to retry"));
    assert!(
        w.app()
            .store
            .call("CA2001")
            .await
            .unwrap()
            .unwrap()
            .recording
            .is_none()
    );
    w.platform.clock.advance(SignedDuration::from_secs(31));
    assert!(w.dispatch().await.contains("1 to retry"));
    w.platform.clock.advance(SignedDuration::from_secs(61));
    assert!(w.dispatch().await.starts_with("1 delivered"));
    let call = w.app().store.call("CA2001").await.unwrap().unwrap();
    assert_eq!(call.recording.unwrap().bytes, 200_010);
    assert_eq!(*w.fake.downloads.lock().unwrap(), 3);
    // The affiliate's delivery log holds their postbacks, not the platform's call work.
    let log = shared::dispatch::delivered(w.app(), w.platform.demo.affiliate_id)
        .await
        .unwrap();
    assert!(log.iter().all(|d| d.job.is_none()), "{log:?}");
}

#[tokio::test]
async fn unknown_numbers_and_paused_offers_get_a_polite_message() {
    let w = World::new().await;
    let unknown = w.voice("CA3001", "+14155550777", "+12125550123").await;
    assert!(unknown.contains("<Say>Sorry, this number is not in service. Goodbye.</Say><Hangup/>"));
    let mut offer = w
        .app()
        .store
        .offer(w.platform.demo.offer_id)
        .await
        .unwrap()
        .unwrap();
    offer.status = shared::domain::offer::OfferStatus::Paused;
    w.app().store.save_offer(&offer).await.unwrap();
    let paused = w.voice("CA3002", NUMBER, "+12125550123").await;
    assert!(paused.contains("not taking calls"), "{paused}");
    assert!(!paused.contains("<Dial"));
}

/// Erasure deletes the affiliate's links; their static number is the advertiser's, and its
/// callers still get through, to a call that is nobody's.
#[tokio::test]
async fn a_static_number_of_an_erased_affiliate_still_puts_calls_through() {
    let w = World::new().await;
    let demo = &w.platform.demo;
    let account = w
        .app()
        .store
        .account(shared::domain::accounts::AccountId(demo.affiliate_id.0))
        .await
        .unwrap()
        .unwrap();
    shared::privacy::erase(w.app(), &account, &demo.credentials[2].2)
        .await
        .unwrap();
    let twiml = w.voice("CA3101", NUMBER, "+12125550123").await;
    assert!(
        twiml.contains(&format!("<Number>{DESTINATION}</Number>")),
        "{twiml}"
    );
    let call = w.app().store.call("CA3101").await.unwrap().unwrap();
    assert_eq!(call.affiliate_id, None);
    assert_eq!(call.flags, vec!["unattributed".to_string()]);
}

#[tokio::test]
async fn a_pool_number_shown_to_a_visitor_brings_their_call_back_to_the_click() {
    let w = World::new().await;
    w.pool_number_shown_to_visitors().await;
    let click = support::send(
        w.app(),
        "GET",
        &format!("/c/{}", w.platform.demo.link),
        "198.51.100.77",
        &[],
        None,
    )
    .await;
    let location = click.headers()["location"].to_str().unwrap().to_string();
    assert!(location.ends_with("&phone=%2B14155550199"), "{location}");
    let click_id = support::click_id(&location);
    // The only pool number is lent: the next visitor gets none.
    let second = support::send(
        w.app(),
        "GET",
        &format!("/c/{}", w.platform.demo.link),
        "198.51.100.78",
        &[],
        None,
    )
    .await;
    assert!(
        second.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("&phone=")
    );
    w.voice("CA4001", POOL_NUMBER, "+12125550123").await;
    let call = w.app().store.call("CA4001").await.unwrap().unwrap();
    assert_eq!(call.click_id.map(|c| c.to_string()), Some(click_id.clone()));
    w.ended("CA4001", "200").await;
    let (conversions, _) = w
        .app()
        .store
        .conversions_of_affiliate(w.platform.demo.affiliate_id, None, 10)
        .await
        .unwrap();
    assert_eq!(conversions[0].click_id.to_string(), click_id);
    // After the lease a call to the number is nobody's.
    w.platform.clock.advance(SignedDuration::from_mins(31));
    w.voice("CA4002", POOL_NUMBER, "+12125550123").await;
    let stray = w.app().store.call("CA4002").await.unwrap().unwrap();
    assert_eq!(stray.flags, vec!["unattributed".to_string()]);
}

#[tokio::test]
async fn each_party_sees_its_own_calls_and_only_advertisers_hear_them() {
    let w = World::new().await;
    w.voice("CA5001", NUMBER, "+12125550123").await;
    w.fake
        .recordings
        .lock()
        .unwrap()
        .insert("RE5001".into(), audio(5));
    w.ended("CA5001", "95").await;
    w.utterance(
        "CA5001",
        "inbound_track",
        "1",
        "2026-06-02T12:00:05Z",
        "Hi, I would like to order.",
        true,
    )
    .await;
    w.recorded("CA5001", "RE5001").await;
    w.dispatch().await;

    let advertiser = w.sign_in("advertiser").await;
    let affiliate = w.sign_in("affiliate").await;
    let seen = body(&w.send(&advertiser, "GET", "/api/calls", None).await);
    assert_eq!(seen["calls"][0]["sid"], "CA5001");
    assert_eq!(
        seen["calls"][0]["transcription"],
        "Caller: Hi, I would like to order."
    );
    assert!(seen["calls"][0]["recording"]["sha256"].is_string());
    let theirs = w.send(&affiliate, "GET", "/api/calls", None).await;
    let theirs_text = text(&theirs);
    assert_eq!(body(&theirs)["calls"][0]["sid"], "CA5001");
    assert!(!theirs_text.contains("recording") && !theirs_text.contains("order."));
    let numbers = body(&w.send(&affiliate, "GET", "/api/numbers", None).await);
    assert_eq!(numbers["numbers"][0]["number"], NUMBER);
    let refused = w
        .send(&affiliate, "GET", "/api/calls/CA5001/recording", None)
        .await;
    assert_eq!(refused.status(), 403);

    let link = w
        .send(&advertiser, "GET", "/api/calls/CA5001/recording", None)
        .await;
    assert_eq!(link.status(), 200, "{}", text(&link));
    let url = body(&link)["url"].as_str().unwrap().to_string();
    let path = url.strip_prefix(&*w.app().public_url).unwrap().to_string();
    let streamed = support::send(w.app(), "GET", &path, IP, &[], None).await;
    assert_eq!(streamed.status(), 200);
    assert_eq!(streamed.headers()["content-type"], "audio/mpeg");
    assert_eq!(streamed.body().as_ref(), audio(5).as_slice());
    let tampered = path.replace("CA5001", "CA5002");
    assert_eq!(
        support::send(w.app(), "GET", &tampered, IP, &[], None)
            .await
            .status(),
        403
    );
    w.platform.clock.advance(SignedDuration::from_mins(6));
    assert_eq!(
        support::send(w.app(), "GET", &path, IP, &[], None)
            .await
            .status(),
        403,
        "the link expires"
    );

    // Reports count calls.
    let report = body(
        &w.send(
            &advertiser,
            "GET",
            "/api/reports?from=2026-06-01&to=2026-06-03",
            None,
        )
        .await,
    );
    assert_eq!(report["totals"][0]["calls"], 1, "{report}");
}

#[tokio::test]
async fn recordings_are_archived_to_s3_on_the_aws_adapters() {
    let w = World::on_aws().await;
    w.voice("CA6001", NUMBER, "+12125550123").await;
    w.fake
        .recordings
        .lock()
        .unwrap()
        .insert("RE6001".into(), audio(9));
    *w.fake.failures.lock().unwrap() = 1;
    w.ended("CA6001", "300").await;
    w.recorded("CA6001", "RE6001").await;
    assert!(w.dispatch().await.contains("1 to retry"));
    w.platform.clock.advance(SignedDuration::from_secs(31));
    assert!(w.dispatch().await.starts_with("1 delivered"));
    let call = w.app().store.call("CA6001").await.unwrap().unwrap();
    assert!(call.conversion_id.is_some());
    let recording = call.recording.unwrap();
    let stored = w
        .app()
        .blobs
        .get(&shared::ports::BlobKey::parse(recording.key).unwrap())
        .await
        .unwrap()
        .expect("in S3");
    assert_eq!(
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&stored)),
        recording.sha256
    );
    assert_eq!(stored, audio(9));
    // On S3 the advertiser's link is a presigned URL straight to the object.
    let advertiser = w.sign_in("advertiser").await;
    let link = body(
        &w.send(&advertiser, "GET", "/api/calls/CA6001/recording", None)
            .await,
    );
    let url = link["url"].as_str().unwrap();
    assert!(url.contains("X-Amz-Signature="), "{url}");
    shared::outbound::install_crypto_provider();
    let fetched = reqwest::get(url).await.unwrap();
    assert!(fetched.status().is_success());
    assert_eq!(fetched.bytes().await.unwrap().to_vec(), audio(9));
}

#[tokio::test]
async fn a_second_qualifying_call_from_one_caller_is_held_but_withheld_numbers_are_not() {
    let w = World::new().await;
    for (sid, from) in [
        ("CA7001", "+12125550123"),
        ("CA7002", "+12125550123"),
        ("CA7003", "anonymous"),
        ("CA7004", "anonymous"),
    ] {
        w.voice(sid, NUMBER, from).await;
        w.ended(sid, "100").await;
    }
    let flags = |sid: &'static str| {
        let app = w.app().clone();
        async move {
            let call = app.store.call(sid).await.unwrap().unwrap();
            let conversion = app
                .store
                .conversion(call.conversion_id.expect("converted"))
                .await
                .unwrap()
                .unwrap();
            conversion.flags
        }
    };
    assert!(flags("CA7001").await.is_empty());
    assert_eq!(flags("CA7002").await, vec!["repeat_caller".to_string()]);
    // The advertiser reviews calls: the call itself says why it is held.
    let call_flags = |sid: &'static str| {
        let app = w.app().clone();
        async move { app.store.call(sid).await.unwrap().unwrap().flags }
    };
    assert_eq!(
        call_flags("CA7002").await,
        vec!["repeat_caller".to_string()]
    );
    assert!(call_flags("CA7001").await.is_empty());
    assert!(flags("CA7003").await.is_empty());
    assert!(
        flags("CA7004").await.is_empty(),
        "withheld numbers are no one in particular"
    );
    // A held conversion waits for review: it is not approved automatically.
    let held = w
        .app()
        .store
        .conversion(
            w.app()
                .store
                .call("CA7002")
                .await
                .unwrap()
                .unwrap()
                .conversion_id
                .unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    assert!(held.due_at.is_none());
}

#[tokio::test]
async fn another_advertiser_never_reaches_a_call_or_its_recording() {
    let w = World::new().await;
    w.voice("CA8001", NUMBER, "+12125550123").await;
    w.fake
        .recordings
        .lock()
        .unwrap()
        .insert("RE8001".into(), audio(2));
    w.recorded("CA8001", "RE8001").await;
    w.dispatch().await;
    shared::accounts::create_account(
        w.app(),
        shared::domain::accounts::Role::Advertiser,
        shared::domain::email::EmailAddress::parse("other@shop.test").unwrap(),
        "Other Shop".into(),
        &Secret::new("another long password".into()),
        shared::domain::accounts::AccountStatus::Active,
    )
    .await
    .unwrap();
    let signed_in = support::send(
        w.app(),
        "POST",
        "/api/auth/sign-in",
        IP,
        &[],
        Some(json!({"email": "other@shop.test", "password": "another long password"})),
    )
    .await;
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let other = (
        cookie,
        body(&signed_in)["csrf_token"].as_str().unwrap().to_string(),
    );
    // The recording is there, for its owner: the 404 below is the other advertiser's alone.
    let advertiser = w.sign_in("advertiser").await;
    let owned = w
        .send(&advertiser, "GET", "/api/calls/CA8001/recording", None)
        .await;
    assert_eq!(owned.status(), 200, "{}", text(&owned));
    let link = w
        .send(&other, "GET", "/api/calls/CA8001/recording", None)
        .await;
    assert_eq!(link.status(), 404);
    let calls = body(&w.send(&other, "GET", "/api/calls", None).await);
    assert_eq!(calls["calls"], json!([]));
    let settings = w
        .send(
            &other,
            "PUT",
            &format!("/api/offers/{}/calls", w.platform.demo.offer_id),
            Some(json!({ "destination": "+14155550666" })),
        )
        .await;
    assert_eq!(settings.status(), 404);
}

#[tokio::test]
async fn a_call_whose_click_was_lost_midway_gets_it_back_and_converts() {
    let w = World::new().await;
    w.voice("CA9001", NUMBER, "+12125550123").await;
    let call = w.app().store.call("CA9001").await.unwrap().unwrap();
    let click = call.click_id.unwrap();
    // As if the process died between the call's record and its click's.
    w.app().table.flush().await.unwrap();
    w.app()
        .table
        .delete(
            &shared::ports::Key::new(format!("CLICK#{click}"), "CLICK"),
            shared::ports::table::Cond::Always,
        )
        .await
        .unwrap();
    assert!(w.app().store.click(click).await.unwrap().is_none());
    // Twilio retries the webhook: the click is made again, with the same id.
    w.voice("CA9001", NUMBER, "+12125550123").await;
    assert!(w.app().store.click(click).await.unwrap().is_some());
    w.ended("CA9001", "95").await;
    assert_eq!(w.conversions().await, 1);
}

/// A refused registration changes nothing: the demo affiliate's static number, registered
/// again without `affiliate_id`, is refused and never joins the offer's pool (where other
/// affiliates' visitors would be shown it, and their calls paid to the static number's owner).
#[tokio::test]
async fn a_static_number_registered_again_as_a_pool_number_is_refused_and_not_pooled() {
    let w = World::new().await;
    let advertiser = w.sign_in("advertiser").await;
    let offer = w.platform.demo.offer_id;
    let again = w
        .send(
            &advertiser,
            "POST",
            "/api/numbers",
            Some(json!({ "number": NUMBER, "offer_id": offer.to_string() })),
        )
        .await;
    assert_eq!(again.status(), 409, "{}", text(&again));
    assert!(w.app().store.pool(offer).await.unwrap().is_empty());
    let stored = w
        .app()
        .store
        .number(&shared::domain::calls::E164::parse(NUMBER).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        stored.assignment,
        shared::domain::calls::Assignment::Static { .. }
    ));
}

/// Conversion rates count calls as visits where no click came before them: a static number's
/// call is a visit of its own, a pool number's caller clicked first (and that click is
/// counted). Dividing call conversions by web clicks alone gave rates above 100%.
#[tokio::test]
async fn conversion_rates_count_static_numbers_calls_as_visits() {
    let w = World::new().await;
    let affiliate = w.sign_in("affiliate").await;
    let report = async || {
        body(
            &w.send(
                &affiliate,
                "GET",
                "/api/reports?from=2026-06-01&to=2026-06-03",
                None,
            )
            .await,
        )["totals"][0]
            .clone()
    };
    // Two calls to the affiliate's static number, one long enough to convert, and a click.
    w.voice("CA7001", NUMBER, "+12125550101").await;
    w.ended("CA7001", "200").await;
    w.voice("CA7002", NUMBER, "+12125550102").await;
    w.ended("CA7002", "30").await;
    let click = async |ip: &str| {
        let path = format!("/c/{}", w.platform.demo.link);
        support::send(w.app(), "GET", &path, ip, &[], None).await
    };
    assert_eq!(click("198.51.100.70").await.status(), 302);
    let totals = report().await;
    assert_eq!(
        (&totals["clicks"], &totals["calls"], &totals["conversions"]),
        (&json!(1), &json!(2), &json!(1)),
        "{totals}"
    );
    assert_eq!(totals["cr"], "33.33", "1 conversion in 3 visits: {totals}");

    // A pool number's call comes from a visitor whose click is counted already.
    w.pool_number_shown_to_visitors().await;
    let location = click("198.51.100.71").await.headers()["location"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(location.ends_with("&phone=%2B14155550199"), "{location}");
    w.voice("CA7003", POOL_NUMBER, "+12125550103").await;
    w.ended("CA7003", "200").await;
    let totals = report().await;
    assert_eq!(
        (&totals["clicks"], &totals["calls"], &totals["conversions"]),
        (&json!(2), &json!(3), &json!(2)),
        "{totals}"
    );
    assert_eq!(totals["cr"], "50.00", "2 conversions in 4 visits: {totals}");
}

/// An offer that transcribes starts Twilio's real-time transcription after the notice and
/// before the call is put through; each final utterance is kept once, in the order it was
/// said whatever order the callbacks come in, under who said it; partial results and the
/// session's other events change nothing, and an error flags the call.
#[tokio::test]
async fn a_transcribed_call_keeps_who_said_what_once_and_in_order() {
    let w = World::new().await;
    let advertiser = w.sign_in("advertiser").await;
    let offer = w.platform.demo.offer_id;
    let settings = w
        .send(
            &advertiser,
            "PUT",
            &format!("/api/offers/{offer}/calls"),
            Some(json!({
                "destination": DESTINATION, "notice": "This call is recorded and transcribed.",
                "transcribe": true
            })),
        )
        .await;
    assert_eq!(settings.status(), 200, "{}", text(&settings));
    assert_eq!(body(&settings)["transcribe"], true);
    let twiml = w.voice("CA6001", NUMBER, "+12125550123").await;
    let start = twiml
        .find("<Start><Transcription statusCallbackUrl=\"https://calls.example.test/twilio/transcription\" track=\"both_tracks\"")
        .unwrap_or_else(|| panic!("{twiml}"));
    assert!(twiml.find("</Say>").unwrap() < start && start < twiml.find("<Dial").unwrap());

    let session = |event: &'static str| {
        [
            ("AccountSid", ACCOUNT_SID),
            ("CallSid", "CA6001"),
            ("TranscriptionSid", "GT8fbf0c4d58d0f4d9a3b8e7c1f2e3d4a5"),
            ("Timestamp", "2026-06-02T12:00:01Z"),
            ("SequenceId", "1"),
            ("TranscriptionEvent", event),
        ]
    };
    assert_eq!(
        w.hook("/twilio/transcription", &session("transcription-started"))
            .await
            .status(),
        204
    );
    // The advertiser's answer arrives before the caller's question, then the question twice;
    // a partial result, then the final one. (track, sequence, time, text, final)
    for (track, sequence, at, text, last) in [
        (
            "outbound_track",
            "1",
            "2026-06-02T12:00:04.250Z",
            "Sure, which size?",
            true,
        ),
        (
            "inbound_track",
            "1",
            "2026-06-02T12:00:02.100Z",
            "Hi, I would like to order.",
            true,
        ),
        (
            "inbound_track",
            "1",
            "2026-06-02T12:00:02.100Z",
            "Hi, I would like to order.",
            true,
        ),
        ("inbound_track", "2", "2026-06-02T12:00:06Z", "Lar", false),
        (
            "inbound_track",
            "2",
            "2026-06-02T12:00:06.500Z",
            "Large, please.",
            true,
        ),
    ] {
        w.utterance("CA6001", track, sequence, at, text, last).await;
    }
    assert_eq!(
        w.hook("/twilio/transcription", &session("transcription-stopped"))
            .await
            .status(),
        204
    );

    let seen = body(&w.send(&advertiser, "GET", "/api/calls", None).await);
    assert_eq!(
        seen["calls"][0]["transcription"],
        "Caller: Hi, I would like to order.\nAdvertiser: Sure, which size?\nCaller: Large, please.",
        "{seen}"
    );
    assert_eq!(
        w.app()
            .store
            .call("CA6001")
            .await
            .unwrap()
            .unwrap()
            .transcript
            .len(),
        3
    );

    let mut failed = session("transcription-error").to_vec();
    failed.extend([
        ("TranscriptionErrorCode", "32655"),
        ("TranscriptionError", "Provider Unavailable"),
    ]);
    assert_eq!(w.hook("/twilio/transcription", &failed).await.status(), 204);
    let call = w.app().store.call("CA6001").await.unwrap().unwrap();
    assert_eq!(call.flags, vec!["transcription_failed".to_string()]);
}
