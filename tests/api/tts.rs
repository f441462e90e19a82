//! Speech synthesis: real espeak-ng with the project's voice profiles, and the
//! OpenAI-compatible backend against a local fake speech server (good answers, errors,
//! garbage and a server that never answers).
//!
//! The contract every backend meets, and the fake speech server, are in `contracts::tts`.

use std::time::{Duration, Instant};

use concierge::config::{Settings, TtsBackend};
use concierge::content::Content;
use concierge::speech::tts::{self, TtsError};
use serde_json::json;

use crate::contracts::tts::{cloud, espeak, fake_server, peak, project_tts, Behaviour};
use crate::helpers::*;

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
    settings.backend = TtsBackend::Off;
    assert!(tts::build(&settings, &voices).unwrap().is_none());
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
