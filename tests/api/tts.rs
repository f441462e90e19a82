//! Speech synthesis: real espeak-ng with the project's voice profiles, and the
//! OpenAI-compatible backend against a local fake speech server (good answers, errors,
//! garbage and a server that never answers).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use concierge::config::Settings;
use concierge::config::TtsSettings;
use concierge::content::{Content, VoiceProfile};
use concierge::speech::tts::{self, Pcm, Tts, TtsError};
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::helpers::*;

/// The project's `[speech.tts]` settings and voices/ profiles.
fn project_tts() -> (TtsSettings, BTreeMap<String, VoiceProfile>) {
    let settings = Settings::for_tests("sqlite::memory:", &project_root());
    let content = Content::load(&settings.data, &concierge::actions::Registry::standard())
        .expect("project data loads");
    (settings.speech.tts, content.voices)
}

fn espeak() -> Tts {
    let (settings, voices) = project_tts();
    tts::build(&settings, &voices)
        .expect("the default voice exists")
        .expect("tts is on by default")
}

/// Peak amplitude, to tell speech from silence.
fn peak(pcm: &Pcm) -> i32 {
    pcm.samples
        .iter()
        .map(|s| i32::from(*s).abs())
        .max()
        .unwrap_or(0)
}

/// What every backend must do, checked against each (espeak-ng, and the OpenAI backend on
/// the fake server).
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
    tts_contract(&espeak()).await;
}

#[tokio::test]
async fn the_openai_backend_meets_the_tts_contract() {
    let (url, _) = fake_server(Behaviour::Wav).await;
    tts_contract(&cloud(&url, "k")).await;
}

#[tokio::test]
async fn espeak_reads_numbers_as_words() {
    let tts = espeak();
    let text = "您尾号6789的卡已冻结，请于2026-11-26 10:30前到柜台，手续费5,000.50元。";
    let reading = tts.reading(text, false);
    assert!(!reading.bytes().any(|b| b.is_ascii_digit()), "{reading}");
    assert!(reading.contains("尾号六七八九"), "{reading}");
    assert!(reading.contains("十点三十分"), "{reading}");
    assert!(reading.contains("五千元五角"), "{reading}");
    let pcm = tts.speak(text, false).await.unwrap();
    assert!(peak(&pcm) > 1000);
    // The words take longer to say than the digits would: several seconds.
    assert!(pcm.duration_ms() > 4000, "{} ms", pcm.duration_ms());
}

#[tokio::test]
async fn the_elder_voice_speaks_the_same_text_more_slowly() {
    let tts = espeak();
    assert_eq!(tts.voice(true).name, "xiaoan-elder");
    let text = "请您带好身份证，到三号窗口办理业务。";
    let normal = tts.speak(text, false).await.unwrap();
    let elder = tts.speak(text, true).await.unwrap();
    assert!(
        elder.duration_ms() as f64 > normal.duration_ms() as f64 * 1.15,
        "elder {} ms, normal {} ms",
        elder.duration_ms(),
        normal.duration_ms()
    );
}

#[tokio::test]
async fn text_that_looks_like_options_is_spoken_not_obeyed() {
    let tts = espeak();
    // On the command line this would be a flag; on stdin it is just text.
    let pcm = tts
        .speak("--version -w /tmp/x.wav 好的", false)
        .await
        .unwrap();
    assert!(peak(&pcm) > 1000);
}

#[tokio::test]
async fn nothing_to_say_is_a_clean_error() {
    let err = espeak()
        .speak("😊🎉 https://bank.example", false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "tts_empty_text");
}

#[tokio::test]
async fn a_default_voice_without_a_profile_is_reported_with_the_voices_available() {
    let (mut settings, voices) = project_tts();
    settings.voice = "xiaoming".into();
    let err = tts::build(&settings, &voices).unwrap_err();
    assert_eq!(err.code(), "tts_config");
    let message = err.to_string();
    assert!(message.contains("voices/xiaoming.yaml"), "{message}");
    assert!(message.contains("xiaoan, xiaoan-elder"), "{message}");
    settings.backend = concierge::config::TtsBackend::Off;
    assert!(tts::build(&settings, &voices).unwrap().is_none());
}

// ---------------------------------------------------------------------------------------
// OpenAI-compatible backend against a fake speech server.

/// How the fake speech server answers.
#[derive(Clone, Copy)]
enum Behaviour {
    Wav,
    ServerError,
    Garbage,
    Hang,
}

/// The requests the fake saw: the Authorization header and the JSON body.
type Seen = Arc<Mutex<Vec<(Option<String>, Value)>>>;

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
async fn fake_server(behaviour: Behaviour) -> (String, Seen) {
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

fn cloud_voices() -> BTreeMap<String, VoiceProfile> {
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

fn cloud(base_url: &str, key: &str) -> Tts {
    let (mut settings, _) = project_tts();
    settings.backend = concierge::config::TtsBackend::OpenAi;
    settings.voice = "cloud".into();
    settings.openai_base_url = base_url.into();
    settings.openai_api_key = SecretString::from(key.to_string());
    settings.openai_model = "cosyvoice-2".into();
    settings.timeout_ms = 1500;
    tts::build(&settings, &cloud_voices()).unwrap().unwrap()
}

#[tokio::test]
async fn the_openai_backend_posts_the_reading_with_the_key_and_parses_the_wav() {
    let (url, seen) = fake_server(Behaviour::Wav).await;
    let tts = cloud(&url, "sk-test-123");
    let pcm = tts.speak("请**行长**确认5000元。", false).await.unwrap();
    assert_eq!(pcm.sample_rate, 24_000);
    assert!(peak(&pcm) > 5000);
    let elder = tts.speak("请稍等。", true).await.unwrap();
    assert_eq!(elder.duration_ms(), 500, "four characters at speed 0.8");

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let (auth, body) = &seen[0];
    assert_eq!(auth.as_deref(), Some("Bearer sk-test-123"));
    assert_eq!(
        body,
        &json!({
            "model": "cosyvoice-2",
            "input": "请航长确认五千元。",
            "voice": "xiaoan-zh",
            "response_format": "wav",
        })
    );
    // The duration follows the text: nine characters, 0.9 s.
    assert_eq!(pcm.duration_ms(), 900);
    assert_eq!(seen[1].1["speed"], json!(0.8));
}

#[tokio::test]
async fn the_openai_backend_sends_no_authorization_without_a_key() {
    let (url, seen) = fake_server(Behaviour::Wav).await;
    cloud(&url, "").speak("您好", false).await.unwrap();
    assert_eq!(seen.lock().unwrap()[0].0, None);
}

#[tokio::test]
async fn openai_failures_are_clean_errors() {
    let (url, _) = fake_server(Behaviour::ServerError).await;
    let err = cloud(&url, "k").speak("您好", false).await.unwrap_err();
    assert_eq!(err.code(), "tts_failed", "{err}");
    assert!(err.to_string().contains("500"), "{err}");
    assert!(err.to_string().contains("model overloaded"), "{err}");
    assert!(!err.to_string().contains("sk-"), "{err}");

    let (url, _) = fake_server(Behaviour::Garbage).await;
    let err = cloud(&url, "k").speak("您好", false).await.unwrap_err();
    assert!(matches!(err, TtsError::BadAudio(_)), "{err}");

    let (url, _) = fake_server(Behaviour::Hang).await;
    let started = Instant::now();
    let err = cloud(&url, "k").speak("您好", false).await.unwrap_err();
    assert_eq!(err.code(), "tts_timeout", "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // Nothing listens on a port just freed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tts = cloud(&format!("http://127.0.0.1:{port}/v1"), "k");
    let err = tts.check().await.unwrap_err();
    assert_eq!(err.code(), "tts_unavailable", "{err}");
}

#[test]
fn a_voice_profile_with_bad_fields_is_reported_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "name: bad\nengine: espeak-ng\nvoice: cmn\nrate: 165\npitch: 50\nspeed: 9\nlexicon:\n  行长: 航长\n  \"95588\": 九五五八八\n",
    )
    .unwrap();
    let mut settings = Settings::for_tests("sqlite::memory:", &project_root());
    settings.data.voices_dir = dir.path().to_path_buf();
    let errors: Vec<String> =
        Content::load(&settings.data, &concierge::actions::Registry::standard())
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
    let file = dir.path().join("bad.yaml").display().to_string();
    assert!(
        errors.contains(&format!("{file}:6: speed 9 must be between 0.25 and 4.0")),
        "{errors:#?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with(&format!("{file}:9: lexicon word `95588` has digits"))),
        "{errors:#?}"
    );
}
