//! The speech synthesis ports: `TtsBackend` (one engine) and `Tts` (what the rest of
//! Concierge uses), with the same contract for espeak-ng (the real program) and for the
//! OpenAI-compatible backend against a fake speech server on loopback. Each implementation
//! says how its engine works, fails, hangs and goes missing; the assertions are shared.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use concierge::config::{Settings, TtsBackend, TtsSettings};
use concierge::content::{Content, VoiceProfile};
use concierge::speech::tts::{self, EspeakBackend, OpenAiBackend, Pcm, Tts, TtsError};
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::helpers::project_root;

/// The project's `[speech.tts]` settings and voices/ profiles.
pub fn project_tts() -> (TtsSettings, BTreeMap<String, VoiceProfile>) {
    let settings = Settings::for_tests("sqlite::memory:", &project_root());
    let content = Content::load(&settings.data, &concierge::actions::Registry::standard())
        .expect("project data loads");
    (settings.speech.tts, content.voices)
}

/// The project's default voices on espeak-ng.
pub fn espeak() -> Tts {
    let (settings, voices) = project_tts();
    tts::build(&settings, &voices)
        .expect("the default voice exists")
        .expect("tts is on by default")
}

/// Peak amplitude, to tell speech from silence.
pub fn peak(pcm: &Pcm) -> i32 {
    pcm.samples
        .iter()
        .map(|s| i32::from(*s).abs())
        .max()
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------
// The contract of one engine (`TtsBackend`).

/// How the contract reaches one implementation of `TtsBackend`.
trait Subject {
    /// The backend with its engine working, within these limits.
    fn working(&self, timeout: Duration, max_bytes: usize) -> Arc<dyn tts::TtsBackend>;
    /// The backend with its engine running and failing.
    fn failing(&self) -> Arc<dyn tts::TtsBackend>;
    /// The backend with its engine answering later than the backend waits (or never), and
    /// how long it waits.
    fn stalled(&self) -> (Arc<dyn tts::TtsBackend>, Duration);
    /// The backend with its engine nowhere to be found.
    fn missing(&self) -> Arc<dyn tts::TtsBackend>;
    /// A voice profile the engine speaks.
    fn voice(&self) -> VoiceProfile;
}

const SHORT: &str = "您好，请问办理什么业务？";
const LONG: &str = "您好，请问办理什么业务？您可以说取号、预约、挂失，或者找大堂经理。";
const PLENTY: usize = 16 << 20;

/// What every synthesis engine does: a sentence gives speech of plausible length at the
/// sample rate it reports, a longer one longer speech; every failure is its `TtsError`.
async fn backend_contract(subject: &dyn Subject) {
    let voice = subject.voice();
    let backend = subject.working(Duration::from_secs(15), PLENTY);
    assert_eq!(
        TtsBackend::for_voice_engine(&voice.engine),
        Some(backend.backend()),
        "the backend speaks the voices of its engine"
    );
    let short = backend.synthesize(SHORT, &voice).await.unwrap();
    assert!(
        (8_000..=48_000).contains(&short.sample_rate),
        "{} Hz",
        short.sample_rate
    );
    let chars = SHORT.chars().count() as u64;
    let ms = short.duration_ms();
    assert!(
        (chars * 50..chars * 1_000).contains(&ms),
        "{ms} ms for {chars} characters"
    );
    assert!(
        peak(&short) > 1000 && short.rms() > 100.0,
        "speech, not silence"
    );
    let long = backend.synthesize(LONG, &voice).await.unwrap();
    assert_eq!(long.sample_rate, short.sample_rate);
    assert!(long.duration_ms() > ms * 3 / 2, "{} ms", long.duration_ms());

    let failed = subject.failing().synthesize(SHORT, &voice).await;
    assert!(matches!(failed, Err(TtsError::Backend(_))), "{failed:?}");
    let missing = subject.missing().synthesize(SHORT, &voice).await;
    assert!(
        matches!(missing, Err(TtsError::Unavailable(_))),
        "{missing:?}"
    );
    let small = subject.working(Duration::from_secs(15), 1_000);
    let large = small.synthesize(LONG, &voice).await;
    assert!(matches!(large, Err(TtsError::TooLarge(1_000))), "{large:?}");

    let (stalled, limit) = subject.stalled();
    let started = Instant::now();
    let late = stalled.synthesize(LONG, &voice).await;
    assert!(
        matches!(late, Err(TtsError::Timeout(t)) if t == limit),
        "{late:?}"
    );
    let took = started.elapsed();
    assert!(
        took < limit + Duration::from_secs(2),
        "{took:?}: the wait is cut"
    );
}

/// espeak-ng, the program installed on this machine.
struct Espeak;

impl Espeak {
    fn with(binary: &str, timeout: Duration, max_bytes: usize) -> Arc<dyn tts::TtsBackend> {
        Arc::new(EspeakBackend {
            binary: binary.into(),
            timeout,
            max_bytes,
        })
    }
}

impl Subject for Espeak {
    fn working(&self, timeout: Duration, max_bytes: usize) -> Arc<dyn tts::TtsBackend> {
        Espeak::with("espeak-ng", timeout, max_bytes)
    }

    fn failing(&self) -> Arc<dyn tts::TtsBackend> {
        // A program that runs and exits 1 (espeak-ng itself takes any voice name).
        Espeak::with("false", Duration::from_secs(15), PLENTY)
    }

    fn stalled(&self) -> (Arc<dyn tts::TtsBackend>, Duration) {
        // espeak-ng cannot start, let alone speak a sentence, within a millisecond.
        let limit = Duration::from_millis(1);
        (Espeak::with("espeak-ng", limit, PLENTY), limit)
    }

    fn missing(&self) -> Arc<dyn tts::TtsBackend> {
        Espeak::with("/nonexistent/espeak-ng", Duration::from_secs(15), PLENTY)
    }

    fn voice(&self) -> VoiceProfile {
        project_tts().1["xiaoan"].clone()
    }
}

/// The OpenAI-compatible backend against fake servers (base URLs, …/v1).
struct Cloud {
    speaking: String,
    failing: String,
    hanging: String,
}

impl Cloud {
    fn at(base_url: &str, timeout: Duration, max_bytes: usize) -> Arc<dyn tts::TtsBackend> {
        Arc::new(OpenAiBackend {
            base_url: base_url.into(),
            api_key: SecretString::from("k".to_string()),
            model: "cosyvoice-2".into(),
            timeout,
            max_bytes,
            client: reqwest::Client::new(),
        })
    }
}

impl Subject for Cloud {
    fn working(&self, timeout: Duration, max_bytes: usize) -> Arc<dyn tts::TtsBackend> {
        Cloud::at(&self.speaking, timeout, max_bytes)
    }

    fn failing(&self) -> Arc<dyn tts::TtsBackend> {
        Cloud::at(&self.failing, Duration::from_secs(15), PLENTY)
    }

    fn stalled(&self) -> (Arc<dyn tts::TtsBackend>, Duration) {
        let limit = Duration::from_millis(300);
        (Cloud::at(&self.hanging, limit, PLENTY), limit)
    }

    fn missing(&self) -> Arc<dyn tts::TtsBackend> {
        // Nothing listens on a port just freed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Cloud::at(
            &format!("http://127.0.0.1:{port}/v1"),
            Duration::from_secs(15),
            PLENTY,
        )
    }

    fn voice(&self) -> VoiceProfile {
        cloud_voices()["cloud"].clone()
    }
}

// ---------------------------------------------------------------------------------------
// The contract of the port (`Tts`), and both implementations held to both contracts.

/// What the `Tts` port does on every backend: the voices in use speak, the elder one more
/// slowly; nothing to say is a clean error.
async fn tts_contract(tts: &Tts) {
    tts.check().await.expect("check passes");
    let text = "您好，请问办理什么业务？";
    let normal = tts.speak(text, false).await.unwrap();
    assert!(normal.sample_rate >= 8000, "{}", normal.sample_rate);
    let ms = normal.duration_ms();
    assert!((700..15_000).contains(&ms), "{ms} ms");
    assert!(peak(&normal) > 1000, "peak {}", peak(&normal));
    assert!(normal.rms() > 100.0, "rms {}", normal.rms());
    assert_ne!(tts.voice(true).name, tts.voice(false).name);
    let elder = tts.speak(text, true).await.unwrap();
    assert!(
        elder.duration_ms() as f64 > ms as f64 * 1.15,
        "elder {} ms, normal {ms} ms",
        elder.duration_ms()
    );
    let err = tts.speak("😊", false).await.unwrap_err();
    assert_eq!(err.code(), "tts_empty_text");
}

#[tokio::test]
async fn espeak_meets_the_tts_contract() {
    // espeak-ng must be installed: apt-get install espeak-ng.
    backend_contract(&Espeak).await;
    tts_contract(&espeak()).await;
}

#[tokio::test]
async fn the_openai_backend_meets_the_tts_contract() {
    let subject = Cloud {
        speaking: fake_server(Behaviour::Wav).await.0,
        failing: fake_server(Behaviour::ServerError).await.0,
        hanging: fake_server(Behaviour::Hang).await.0,
    };
    backend_contract(&subject).await;
    tts_contract(&cloud(&subject.speaking, "k")).await;
}

// ---------------------------------------------------------------------------------------
// The fake OpenAI-compatible speech server.

/// How the fake speech server answers.
#[derive(Clone, Copy)]
pub enum Behaviour {
    /// A tone whose length follows the text (and the speed).
    Wav,
    /// 500 with an error message.
    ServerError,
    /// 200 with HTML.
    Garbage,
    /// Nothing for 60 s.
    Hang,
}

/// The requests the fake saw: the Authorization header and the JSON body.
pub type Seen = Arc<Mutex<Vec<(Option<String>, Value)>>>;

#[derive(Clone)]
struct Fake {
    behaviour: Behaviour,
    seen: Seen,
}

async fn fake_speech(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> axum::response::Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    fake.seen.lock().unwrap().push((auth, body.clone()));
    match fake.behaviour {
        Behaviour::Wav => {
            // One second of a 440 Hz tone per ten input characters, 24 kHz like OpenAI.
            // Slower speeds take proportionally longer, like a real server.
            let chars = body["input"].as_str().unwrap_or("").chars().count();
            let speed = body["speed"].as_f64().unwrap_or(1.0);
            let n = (2400.0 * chars.max(1) as f64 / speed) as usize;
            let pcm = Pcm {
                sample_rate: 24_000,
                samples: (0..n)
                    .map(|i| {
                        ((i as f64 * 440.0 * std::f64::consts::TAU / 24_000.0).sin() * 10_000.0)
                            as i16
                    })
                    .collect(),
            };
            ([("content-type", "audio/wav")], pcm.to_wav_bytes()).into_response()
        }
        Behaviour::ServerError => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": {"message": "model overloaded"}})),
        )
            .into_response(),
        Behaviour::Garbage => {
            ([("content-type", "audio/wav")], "<html>not audio</html>").into_response()
        }
        Behaviour::Hang => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            StatusCode::OK.into_response()
        }
    }
}

/// Starts a fake speech server on 127.0.0.1:0; returns its base URL (…/v1) and what it saw.
pub async fn fake_server(behaviour: Behaviour) -> (String, Seen) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new()
        .route("/v1/audio/speech", post(fake_speech))
        .with_state(Fake {
            behaviour,
            seen: seen.clone(),
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}/v1"), seen)
}

/// Two voices of the OpenAI engine: `cloud` and a slower `cloud-elder`.
pub fn cloud_voices() -> BTreeMap<String, VoiceProfile> {
    let voice = |name: &str, speed: Option<f64>| VoiceProfile {
        name: name.into(),
        engine: "openai".into(),
        voice: "xiaoan-zh".into(),
        rate: 165,
        pitch: 50,
        speed,
        lexicon: [("行长".to_string(), "航长".to_string())].into(),
    };
    [voice("cloud", None), voice("cloud-elder", Some(0.8))]
        .into_iter()
        .map(|v| (v.name.clone(), v))
        .collect()
}

/// The `Tts` port on the OpenAI backend at `base_url` with the [`cloud_voices`].
pub fn cloud(base_url: &str, key: &str) -> Tts {
    let (mut settings, _) = project_tts();
    settings.backend = TtsBackend::OpenAi;
    settings.voice = "cloud".into();
    settings.openai_base_url = base_url.into();
    settings.openai_api_key = SecretString::from(key.to_string());
    settings.openai_model = "cosyvoice-2".into();
    settings.timeout_ms = 1500;
    tts::build(&settings, &cloud_voices()).unwrap().unwrap()
}
