//! The speech recognition port (`Recognizer`): one contract for whisper (with the fetched
//! model files; skipped with a printed reason without them, unless
//! `CONCIERGE_REQUIRE_MODELS=1`) and for the OpenAI-compatible backend against a fake
//! transcription server on loopback, which knows the fixture clips by their audio.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use concierge::config::{AsrBackend, Settings};
use concierge::ops::asr::nlu_cer;
use concierge::speech::asr::{AsrError, OpenAiAsr, Recognizer, WhisperAsr, WhisperOptions};
use concierge::speech::tts::Pcm;
use concierge::speech::vad::SAMPLE_RATE;
use concierge::speech::wav::read_wav;
use serde_json::json;

use crate::helpers::{models_dir, project_root};
use crate::speech::{expected_texts, fixture};

/// Clips the contract recognises (the ones whisper base gets right to the character).
const CLIPS: [&str; 2] = ["p_2.16k.wav", "p_4.16k.wav"];

/// What every recogniser does: names its `asr_backend`, hears the fixture clips as their
/// transcripts say, refuses audio it cannot take with an error.
async fn recognizer_contract(asr: &dyn Recognizer, backend: AsrBackend) {
    assert_eq!(asr.name(), backend.as_str());
    let expected = expected_texts();
    for clip in CLIPS {
        let heard = asr
            .transcribe(read_wav(&fixture(clip)).unwrap())
            .await
            .unwrap();
        let want = &expected[clip];
        let cer = nlu_cer(want, &heard.text);
        assert!(
            cer == 0.0,
            "{clip}: heard {:?}, expected {want:?}",
            heard.text
        );
    }
    let empty = asr.transcribe(Vec::new()).await;
    assert!(matches!(empty, Err(AsrError::InvalidAudio(_))), "{empty:?}");
    let too_long = asr.transcribe(vec![0.0; 31 * SAMPLE_RATE]).await;
    assert!(
        matches!(too_long, Err(AsrError::InvalidAudio(_))),
        "{too_long:?}"
    );
}

fn test_settings() -> Settings {
    Settings::for_tests("sqlite::memory:", &project_root())
}

#[tokio::test]
async fn whisper_meets_the_asr_contract() {
    let Some(models) = models_dir("whisper_meets_the_asr_contract") else {
        return;
    };
    let mut settings = test_settings();
    settings.speech.models_dir = models;
    let options = WhisperOptions::from_settings(&settings.speech);
    let asr = tokio::task::spawn_blocking(move || WhisperAsr::load(options))
        .await
        .unwrap()
        .expect("the fetched model loads");
    recognizer_contract(&asr, AsrBackend::Whisper).await;
}

#[test]
fn a_model_file_that_is_not_a_model_is_an_engine_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings();
    settings.speech.models_dir = dir.path().to_path_buf();
    let options = WhisperOptions::from_settings(&settings.speech);
    assert!(matches!(
        WhisperAsr::load(options.clone()),
        Err(AsrError::Engine(_))
    ));
    std::fs::write(&options.model, b"not a model at all").unwrap();
    assert!(matches!(
        WhisperAsr::load(options),
        Err(AsrError::Engine(_))
    ));
}

/// The OpenAI-compatible backend at `base_url`.
fn openai(base_url: &str) -> OpenAiAsr {
    let mut settings = test_settings();
    settings.speech.openai_base_url = base_url.into();
    OpenAiAsr::new(&settings.speech)
}

#[tokio::test]
async fn the_openai_backend_meets_the_asr_contract() {
    let url = fake_transcriber(Behaviour::Transcribe).await;
    recognizer_contract(&openai(&url), AsrBackend::OpenAi).await;
}

#[tokio::test]
async fn openai_service_failures_are_service_errors() {
    let clip = || read_wav(&fixture(CLIPS[0])).unwrap();
    for behaviour in [Behaviour::Fail, Behaviour::Garbage] {
        let url = fake_transcriber(behaviour).await;
        let err = openai(&url).transcribe(clip()).await;
        assert!(matches!(err, Err(AsrError::Service(_))), "{err:?}");
    }
    // Nothing listens on a port just freed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = openai(&format!("http://127.0.0.1:{port}/v1"))
        .transcribe(clip())
        .await;
    assert!(matches!(err, Err(AsrError::Service(_))), "{err:?}");
}

// ---------------------------------------------------------------------------------------
// The fake transcription server.

/// How the fake transcription server answers.
#[derive(Clone, Copy)]
pub enum Behaviour {
    /// The transcript of the fixture clip uploaded (empty text for other audio).
    Transcribe,
    /// 500.
    Fail,
    /// 200 with HTML.
    Garbage,
}

/// The fixture clips the fake knows: samples and transcript.
struct Known {
    behaviour: Behaviour,
    clips: Vec<(Vec<i16>, String)>,
}

/// The PCM16 samples of the WAV file in a multipart upload.
fn uploaded_samples(body: &[u8]) -> Option<Vec<i16>> {
    let at = body.windows(4).position(|w| w == b"RIFF")?;
    Pcm::from_wav_bytes(&body[at..]).ok().map(|p| p.samples)
}

async fn transcribe(State(known): State<Arc<Known>>, body: Bytes) -> Response {
    match known.behaviour {
        Behaviour::Fail => return (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        Behaviour::Garbage => return "<html>not json</html>".into_response(),
        Behaviour::Transcribe => {}
    }
    let Some(heard) = uploaded_samples(&body) else {
        return (StatusCode::BAD_REQUEST, "no WAV in the upload").into_response();
    };
    // The same audio, give or take the rounding of PCM16 → float → PCM16.
    let same = |clip: &[i16]| {
        clip.len() == heard.len()
            && clip
                .iter()
                .zip(&heard)
                .all(|(a, b)| (i32::from(*a) - i32::from(*b)).abs() <= 1)
    };
    let text = known
        .clips
        .iter()
        .find(|(clip, _)| same(clip))
        .map_or("", |(_, text)| text.as_str());
    Json(json!({ "text": text })).into_response()
}

/// Starts a fake OpenAI-compatible transcription server on 127.0.0.1:0; its base URL (…/v1).
pub async fn fake_transcriber(behaviour: Behaviour) -> String {
    let clips = expected_texts()
        .into_iter()
        .map(|(file, text)| {
            let bytes = std::fs::read(fixture(&file)).unwrap();
            (Pcm::from_wav_bytes(&bytes).unwrap().samples, text)
        })
        .collect();
    let app = Router::new()
        .route("/v1/audio/transcriptions", post(transcribe))
        .with_state(Arc::new(Known { behaviour, clips }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/v1")
}
