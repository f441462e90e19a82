//! A screen's microphone stream on one connection: `audio.start` opens it, binary frames of
//! 16 kHz PCM16 feed it, `audio.end` closes it. With recognition on, frames go to a
//! [`Listener`] (VAD, recognition, barge-in) whose events come back on a channel; with it
//! off, bytes are only counted, so the customer can be told to tap instead. Every limit
//! (frame size, PCM16 shape, utterance length, audio rate) is checked here.

use std::sync::Arc;

use kiosk_protocol::{ErrorCode, AUDIO_SAMPLE_RATE};
use tokio::sync::mpsc;

use super::rate::TokenBucket;
use crate::config::KioskSettings;
use crate::live::Input;
use crate::speech::pipeline::{ListenConfig, ListenEvent, Listener, VoiceState};
use crate::speech::Speech;

/// A refusal: the stable code and what the screen is told.
pub type Refusal = (ErrorCode, &'static str);

/// The audio stream in progress on a screen.
enum Stream {
    /// Recognition is on: frames go to a listener.
    Live(Listener),
    /// Recognition is off: bytes are only counted (the customer is told to tap instead).
    Buffered(usize),
}

/// The audio input of one connection.
pub struct AudioInput {
    stream: Option<Stream>,
    /// Where the listener reports what it heard.
    heard: mpsc::Sender<ListenEvent>,
    /// Largest utterance with recognition off, in bytes.
    max_bytes: usize,
    max_utterance_secs: u64,
    max_binary_frame_bytes: usize,
    /// Audio time allowed: a multiple of real time (a frame counts as at least 10 ms, so a
    /// flood of tiny frames is refused too).
    rate: TokenBucket,
}

impl AudioInput {
    /// Audio input under `limits`; the listener's events arrive on the returned receiver.
    pub fn new(limits: &KioskSettings) -> (AudioInput, mpsc::Receiver<ListenEvent>) {
        let (heard, events) = mpsc::channel::<ListenEvent>(16);
        let per_sec = AUDIO_SAMPLE_RATE * 2 * limits.max_audio_speed;
        let input = AudioInput {
            stream: None,
            heard,
            max_bytes: (limits.max_utterance_secs as usize) * (AUDIO_SAMPLE_RATE as usize) * 2,
            max_utterance_secs: limits.max_utterance_secs,
            max_binary_frame_bytes: limits.max_binary_frame_bytes,
            rate: TokenBucket::new(per_sec, per_sec * 10),
        };
        (input, events)
    }

    /// Whether a frame of `len` bytes fits the audio rate.
    pub fn allow(&mut self, len: usize) -> bool {
        self.rate.take_n(len.clamp(320, u32::MAX as usize) as u32)
    }

    /// `audio.start`: a new stream ends the previous one (its last utterance is kept). It
    /// is heard when the screen has a voice state and recognition is on.
    pub fn start(
        &mut self,
        sample_rate: u32,
        speech: &Arc<Speech>,
        voice: Option<&Arc<VoiceState>>,
    ) -> Result<(), Refusal> {
        if sample_rate != AUDIO_SAMPLE_RATE {
            return Err((ErrorCode::InvalidAudio, "音频须为 16 kHz 单声道 PCM16。"));
        }
        self.stream = Some(match (voice, speech.asr.is_some()) {
            (Some(voice), true) => Stream::Live(Listener::start(
                speech.clone(),
                ListenConfig::from_settings(&speech.settings, self.max_utterance_secs),
                voice.clone(),
                self.heard.clone(),
            )),
            _ => Stream::Buffered(0),
        });
        Ok(())
    }

    /// A binary frame of the stream.
    pub async fn frame(&mut self, bytes: &[u8]) -> Result<(), Refusal> {
        if bytes.len() > self.max_binary_frame_bytes {
            return Err((ErrorCode::BinaryFrameTooLarge, "音频帧过大。"));
        }
        if !bytes.len().is_multiple_of(2) && self.stream.is_some() {
            return Err((
                ErrorCode::InvalidAudio,
                "音频帧须为 PCM16（每个采样两个字节），这一帧已丢弃。",
            ));
        }
        match self.stream.as_mut() {
            Some(Stream::Live(listener)) => {
                if let Some(samples) = crate::speech::pipeline::pcm16_to_f32(bytes) {
                    listener.push(samples).await;
                }
                Ok(())
            }
            Some(Stream::Buffered(total)) => {
                *total += bytes.len();
                if *total > self.max_bytes {
                    self.stream = None;
                    return Err((ErrorCode::AudioTooLong, "这段话太长了，请说得简短一些。"));
                }
                Ok(())
            }
            None => Err((ErrorCode::InvalidAudio, "发送音频前请先发送 audio.start。")),
        }
    }

    /// `audio.end`: with recognition off, the utterance's size becomes an input (the
    /// listener finishes its last utterance by itself when it is dropped).
    pub fn end(&mut self) -> Result<Option<Input>, Refusal> {
        match self.stream.take() {
            Some(Stream::Live(_)) => Ok(None),
            Some(Stream::Buffered(bytes)) => Ok(Some(Input::Audio { bytes })),
            None => Err((ErrorCode::InvalidAudio, "没有进行中的语音。")),
        }
    }
}
