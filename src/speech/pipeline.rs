//! One kiosk's microphone, live: audio frames in, [`ListenEvent`]s out.
//!
//! A [`Listener`] runs as a task per `audio.start`. It feeds the [`Segmenter`], and:
//! - at a pause it recognises the utterance so far; unless the text ends in a digit (the
//!   customer may be reading out a number), that is the end of the turn, so a normal turn
//!   costs one recognition after `end_silence_ms`. After digits it waits up to
//!   `digit_silence_ms` for more;
//! - while someone speaks it sends partial transcripts when the recogniser is idle;
//! - when the customer talks over the bot for `barge_in_min_ms` it asks the kiosk to stop
//!   the bot's voice (unless the bot reads something non-interruptible), and a short
//!   backchannel (嗯, 好, 对) said over the bot is noted but taken as no turn;
//! - each utterance is confirmed by Silero (when loaded), recognised and corrected.
//!
//! The bot's side of the conversation is [`VoiceState`]: what it is saying and until when.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::Instrument;

use super::asr::AsrError;
use super::vad::{Segmenter, SegmenterConfig, Utterance, VadEvent, SAMPLE_RATE};
use super::{Heard, Speech};

/// What the bot is saying on one kiosk.
#[derive(Debug, Default)]
pub struct VoiceState {
    playing: Mutex<Option<Playing>>,
}

#[derive(Debug, Clone)]
struct Playing {
    turn_id: String,
    until: Instant,
    interruptible: bool,
}

impl VoiceState {
    /// The bot started a clip of `duration` for `turn_id`.
    pub fn started(&self, turn_id: &str, duration: Duration, interruptible: bool) {
        let mut p = self.playing.lock().unwrap_or_else(|e| e.into_inner());
        *p = Some(Playing {
            turn_id: turn_id.to_string(),
            // The kiosk starts playing a little after we send; allow for it.
            until: Instant::now() + duration + Duration::from_millis(300),
            interruptible,
        });
    }

    /// Whether the bot is talking now.
    pub fn speaking(&self) -> bool {
        let p = self.playing.lock().unwrap_or_else(|e| e.into_inner());
        p.as_ref().is_some_and(|p| p.until > Instant::now())
    }

    /// Stops the bot if it is talking and may be interrupted: the turn to stop.
    pub fn interrupt(&self) -> Option<String> {
        let mut p = self.playing.lock().unwrap_or_else(|e| e.into_inner());
        match p.as_ref() {
            Some(cur) if cur.until > Instant::now() && cur.interruptible => {
                p.take().map(|c| c.turn_id)
            }
            _ => None,
        }
    }
}

/// What the listener tells the connection.
#[derive(Debug, Clone, PartialEq)]
pub enum ListenEvent {
    /// Recognised so far (`asr.partial`).
    Partial(String),
    /// An utterance, recognised: `asr.final`, then a turn.
    Final(Heard),
    /// The customer talked over the bot: tell the kiosk to stop `bot.stop {turn_id}`.
    Stop(String),
    /// A backchannel said over the bot; recorded, not a turn.
    Backchannel(Heard),
    /// The stream ended without any utterance.
    NoSpeech,
    /// Recognition failed (busy, engine error).
    Failed(String),
}

/// Timing of a listener.
#[derive(Debug, Clone, Copy)]
pub struct ListenConfig {
    pub segmenter: SegmenterConfig,
    pub barge_in_min_ms: u64,
    /// Speech between partial transcripts.
    pub partial_every_ms: u64,
}

impl ListenConfig {
    pub fn from_settings(s: &crate::config::SpeechSettings, max_utterance_secs: u64) -> Self {
        ListenConfig {
            segmenter: SegmenterConfig {
                lull_ms: s.end_silence_ms / 2,
                end_silence_ms: s.end_silence_ms,
                hold_ms: s.digit_silence_ms.max(s.end_silence_ms),
                max_ms: max_utterance_secs.clamp(1, 30) * 1000,
                ..SegmenterConfig::default()
            },
            barge_in_min_ms: s.barge_in_min_ms,
            partial_every_ms: 1500,
        }
    }
}

/// The sending half of a running listener.
pub struct Listener {
    frames: mpsc::Sender<Vec<f32>>,
}

impl Listener {
    /// Starts a listener; events go to `events` until the stream ends.
    pub fn start(
        speech: Arc<Speech>,
        config: ListenConfig,
        voice: Arc<VoiceState>,
        events: mpsc::Sender<ListenEvent>,
    ) -> Listener {
        let (tx, rx) = mpsc::channel(64);
        let task = Task {
            speech,
            seg: Segmenter::energy(config.segmenter),
            config,
            voice,
            events,
            job: None,
            pause_result: None,
            early: None,
            stopped: false,
            partial_at_ms: 0,
            finals: 0,
            utterance: tracing::Span::none(),
        };
        tokio::spawn(task.run(rx));
        Listener { frames: tx }
    }

    /// Adds audio (16 kHz, [-1, 1]). Waits when the listener is behind.
    pub async fn push(&self, samples: Vec<f32>) {
        let _ = self.frames.send(samples).await;
    }
}

/// PCM16 little-endian bytes as samples in [-1, 1]; `None` for an odd length.
pub fn pcm16_to_f32(bytes: &[u8]) -> Option<Vec<f32>> {
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0)
            .collect(),
    )
}

/// 嗯, 好, 对…: said over the bot, they mean "go on", not "stop".
pub fn is_backchannel(text: &str) -> bool {
    const WORDS: &[&str] = &[
        "嗯",
        "嗯嗯",
        "嗯哼",
        "好",
        "好的",
        "好好",
        "对",
        "对对",
        "对的",
        "是",
        "是的",
        "哦",
        "噢",
        "喔",
        "啊",
        "行",
        "可以",
        "明白",
        "知道了",
        "OK",
        "ok",
    ];
    let t: String = text
        .chars()
        .filter(|c| {
            !c.is_whitespace() && !c.is_ascii_punctuation() && !"，。！？、…~～".contains(*c)
        })
        .collect();
    !t.is_empty() && WORDS.contains(&t.as_str())
}

/// Whether a transcript ends in the middle of a number (digits or Chinese numerals).
pub fn ends_in_digits(text: &str) -> bool {
    let t = text.trim_end_matches(|c: char| "，。,.、 ".contains(c));
    t.chars()
        .last()
        .is_some_and(|c| c.is_ascii_digit() || "零〇一二三四五六七八九十幺两".contains(c))
}

type Job = Pin<Box<dyn Future<Output = Result<Heard, AsrError>> + Send>>;

#[derive(Debug, Clone, Copy, PartialEq)]
enum JobKind {
    /// A partial transcript of the first `len` samples.
    Partial { len: usize },
    /// The utterance at a pause: `len` samples, speech up to `speech_end`.
    Pause { speech_end: usize },
}

struct Task {
    speech: Arc<Speech>,
    seg: Segmenter,
    config: ListenConfig,
    voice: Arc<VoiceState>,
    events: mpsc::Sender<ListenEvent>,
    job: Option<(JobKind, Job)>,
    /// The recognition made at the last pause (digits: waiting for more), with the speech
    /// it covered.
    pause_result: Option<(usize, Heard)>,
    /// A recognition made during a lull, waiting for the pause to be confirmed.
    early: Option<(usize, Heard)>,
    /// `bot.stop` already sent for the utterance in progress.
    stopped: bool,
    partial_at_ms: u64,
    finals: usize,
    /// The trace span of the utterance in progress (a root: a spoken turn's trace starts
    /// when the customer starts speaking); its recognitions are its children.
    utterance: tracing::Span,
}

impl Task {
    async fn run(mut self, mut frames: mpsc::Receiver<Vec<f32>>) {
        loop {
            tokio::select! {
                // A finished recognition is handled before more audio: its text is due now.
                biased;
                r = async { self.job.as_mut().expect("guarded").1.as_mut().await }, if self.job.is_some() => {
                    let (kind, _) = self.job.take().expect("guarded");
                    self.on_job(kind, r).await;
                }
                f = frames.recv() => match f {
                    Some(samples) => {
                        let events = self.seg.push(&samples);
                        for e in events {
                            self.on_vad(e).await;
                        }
                        self.barge_in().await;
                        self.maybe_partial();
                    }
                    None => break,
                },
            }
        }
        // The stream ended (`audio.end`, or the connection went): finish what was said.
        if let Some((kind, job)) = self.job.take() {
            let r = job.await;
            if let JobKind::Pause { speech_end } = kind {
                if let Ok(h) = r {
                    if self.seg.speech_end() == speech_end {
                        self.pause_result = Some((speech_end, h));
                    }
                }
            }
        }
        let end = self.seg.speech_end();
        if let Some(u) = self.seg.end_now() {
            let reuse = self
                .pause_result
                .take()
                .filter(|(covered, _)| *covered == end)
                .map(|(_, h)| h);
            self.finish(u, reuse).await;
        }
        if self.finals == 0 {
            self.send(ListenEvent::NoSpeech).await;
        }
    }

    async fn send(&mut self, e: ListenEvent) {
        let _ = self.events.send(e).await;
    }

    /// Silero's confirmation (when loaded), then recognition; noise gives an empty text.
    fn recognise(&self, samples: Vec<f32>) -> Job {
        let speech = self.speech.clone();
        Box::pin(
            async move {
                match speech.confirm(samples).await {
                    Some(samples) => speech.hear(samples).await,
                    None => Ok(Heard::nothing()),
                }
            }
            .instrument(self.utterance.clone()),
        )
    }

    async fn on_vad(&mut self, e: VadEvent) {
        match e {
            VadEvent::SpeechStart => {
                self.utterance = tracing::info_span!(parent: None, "utterance");
                self.stopped = false;
                self.partial_at_ms = 0;
                self.pause_result = None;
                self.early = None;
            }
            VadEvent::Lull => {
                // Recognise now, speculatively: if the pause is confirmed the text is ready
                // (or nearly) when it is; if speech goes on, it was a partial.
                if self.job.is_none() {
                    self.start_pause_job();
                }
            }
            VadEvent::Pause => {
                let end = self.seg.speech_end();
                match self.early.take() {
                    Some((covered, heard)) if covered == end => {
                        self.on_pause_result(end, heard).await;
                    }
                    _ if self.job.is_none() => self.start_pause_job(),
                    // else: when the job in flight ends, on_job takes it from there.
                    _ => {}
                }
            }
            VadEvent::End(u) => {
                // The hold after digits ran out, or the utterance hit the maximum length.
                let covered = self.pause_result.take();
                let reuse = match covered {
                    Some((end, h))
                        if !u.cut
                            && end
                                + (self.config.segmenter.tail_ms as usize * SAMPLE_RATE / 1000)
                                >= u.samples.len() =>
                    {
                        Some(h)
                    }
                    _ => None,
                };
                self.job = None;
                self.finish(u, reuse).await;
            }
        }
    }

    fn start_pause_job(&mut self) {
        if let Some(samples) = self.seg.current_samples() {
            let speech_end = self.seg.speech_end();
            let audio = samples[..speech_end.min(samples.len())].to_vec();
            self.job = Some((JobKind::Pause { speech_end }, self.recognise(audio)));
        }
    }

    async fn on_job(&mut self, kind: JobKind, result: Result<Heard, AsrError>) {
        let heard = match result {
            Ok(h) => h,
            Err(AsrError::Busy) => {
                // Partials are best-effort; a pause is retried at the end of the utterance.
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "recognition failed");
                return;
            }
        };
        match kind {
            JobKind::Partial { len } => {
                let paused = self.seg.paused();
                let end = self.seg.speech_end();
                if self.seg.in_speech() && len >= end && self.seg.silent() {
                    // The partial already covers all the speech: it is the pause result.
                    if paused {
                        self.on_pause_result(end, heard).await;
                    } else {
                        self.early = Some((end, heard));
                    }
                    return;
                }
                if !heard.text.is_empty() && self.seg.in_speech() {
                    self.send(ListenEvent::Partial(heard.text)).await;
                }
                if self.seg.silent() {
                    self.start_pause_job();
                }
            }
            JobKind::Pause { speech_end } => {
                if !self.seg.in_speech() || self.seg.speech_end() != speech_end {
                    // Speech resumed meanwhile: it was a partial after all. If the speaker has
                    // since fallen silent again, recognise what they have said by now.
                    if self.seg.in_speech() && !heard.text.is_empty() {
                        self.send(ListenEvent::Partial(heard.text)).await;
                    }
                    if self.seg.silent() {
                        self.start_pause_job();
                    }
                    return;
                }
                if self.seg.paused() {
                    self.on_pause_result(speech_end, heard).await;
                } else {
                    // Still a lull: show it as what was heard so far, and keep it until the
                    // pause is confirmed (or speech resumes).
                    if !heard.text.is_empty() {
                        self.send(ListenEvent::Partial(heard.text.clone())).await;
                    }
                    self.early = Some((speech_end, heard));
                }
            }
        }
    }

    async fn on_pause_result(&mut self, speech_end: usize, heard: Heard) {
        if ends_in_digits(&heard.text) {
            // Wait for the rest of the number (the segmenter ends the utterance after the hold).
            self.send(ListenEvent::Partial(heard.text.clone())).await;
            self.pause_result = Some((speech_end, heard));
            return;
        }
        if let Some(u) = self.seg.end_now() {
            self.finish(u, Some(heard)).await;
        }
    }

    fn maybe_partial(&mut self) {
        if self.job.is_some() || !self.seg.in_speech() || self.seg.silent() {
            return;
        }
        let voiced = self.seg.voiced_ms();
        if voiced >= self.partial_at_ms + self.config.partial_every_ms {
            self.partial_at_ms = voiced;
            if let Some(samples) = self.seg.current_samples() {
                let len = samples.len();
                self.job = Some((JobKind::Partial { len }, self.recognise(samples.to_vec())));
            }
        }
    }

    async fn barge_in(&mut self) {
        if self.stopped || !self.seg.in_speech() {
            return;
        }
        if self.seg.voiced_ms() >= self.config.barge_in_min_ms {
            if let Some(turn) = self.voice.interrupt() {
                self.stopped = true;
                self.send(ListenEvent::Stop(turn)).await;
            }
        }
    }

    async fn finish(&mut self, u: Utterance, heard: Option<Heard>) {
        self.pause_result = None;
        let over_bot = self.voice.speaking();
        let short = u.voiced_ms < self.config.barge_in_min_ms;
        let utterance = std::mem::replace(&mut self.utterance, tracing::Span::none());
        let heard = match heard {
            Some(h) => Some(h),
            None => match self.speech.confirm(u.samples).await {
                None => None, // Silero: no speech in it (a cough, a door, noise)
                Some(samples) => match self
                    .speech
                    .hear(samples)
                    .instrument(utterance.clone())
                    .await
                {
                    Ok(h) => Some(h),
                    Err(e) => {
                        self.send(ListenEvent::Failed(e.to_string())).await;
                        return;
                    }
                },
            },
        };
        let Some(mut heard) = heard.filter(|h| !h.text.is_empty()) else {
            return;
        };
        heard.span = super::UtteranceSpan(utterance);
        self.finals += 1;
        if over_bot && short && is_backchannel(&heard.text) {
            self.send(ListenEvent::Backchannel(heard)).await;
        } else {
            self.send(ListenEvent::Final(heard)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::speech::asr::{BoxFuture, Recognizer, Transcript};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Answers each recognition with the next scripted text (the last one repeats) and
    /// remembers how long each audio was. Tests the listener's logic, not whisper (the
    /// speech integration tests run the real model).
    struct Scripted {
        texts: Vec<&'static str>,
        calls: AtomicUsize,
        lengths: Mutex<Vec<usize>>,
    }

    impl Recognizer for Scripted {
        fn name(&self) -> &'static str {
            "scripted"
        }
        fn transcribe(&self, audio: Vec<f32>) -> BoxFuture<'_, Result<Transcript, AsrError>> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            self.lengths.lock().unwrap().push(audio.len());
            let text = self.texts[n.min(self.texts.len() - 1)].to_string();
            Box::pin(async move {
                Ok(Transcript {
                    text,
                    no_speech_prob: 0.0,
                    processing: Duration::ZERO,
                })
            })
        }
    }

    fn speech(texts: Vec<&'static str>) -> (Arc<Speech>, Arc<Scripted>) {
        let settings = crate::config::Settings::load_with_env(&Default::default(), false)
            .expect("defaults")
            .speech;
        let asr = Arc::new(Scripted {
            texts,
            calls: AtomicUsize::new(0),
            lengths: Mutex::new(Vec::new()),
        });
        let mut s = Speech::off(&settings);
        s.asr = Some(asr.clone());
        (Arc::new(s), asr)
    }

    fn tone(ms: u64) -> Vec<f32> {
        (0..ms as usize * 16)
            .map(|i| 0.3 * (i as f32 * 2.0 * std::f32::consts::PI * 200.0 / 16_000.0).sin())
            .collect()
    }

    fn quiet(ms: u64) -> Vec<f32> {
        vec![0.0; ms as usize * 16]
    }

    fn config(max_ms: u64) -> ListenConfig {
        ListenConfig {
            segmenter: SegmenterConfig {
                max_ms,
                ..SegmenterConfig::default()
            },
            barge_in_min_ms: 600,
            partial_every_ms: 100_000,
        }
    }

    /// Streams `audio` in 100 ms frames, ends the stream, returns every event.
    async fn listen(
        speech: Arc<Speech>,
        config: ListenConfig,
        voice: Arc<VoiceState>,
        audio: Vec<f32>,
    ) -> Vec<ListenEvent> {
        let (tx, mut rx) = mpsc::channel(1024);
        let listener = Listener::start(speech, config, voice, tx);
        for chunk in audio.chunks(1600) {
            listener.push(chunk.to_vec()).await;
        }
        drop(listener);
        let mut events = Vec::new();
        while let Some(e) = rx.recv().await {
            events.push(e);
        }
        events
    }

    fn finals(events: &[ListenEvent]) -> Vec<String> {
        events
            .iter()
            .filter_map(|e| match e {
                ListenEvent::Final(h) => Some(h.text.clone()),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn one_utterance_costs_one_recognition_at_the_pause() {
        let (speech, asr) = speech(vec!["我要挂失"]);
        let mut audio = quiet(500);
        audio.extend(tone(1500));
        audio.extend(quiet(1500));
        let events = listen(speech, config(30_000), Default::default(), audio).await;
        assert_eq!(finals(&events), vec!["我要挂失"]);
        assert_eq!(asr.calls.load(Ordering::SeqCst), 1, "{events:?}");
    }

    #[tokio::test]
    async fn a_lull_is_recognised_early_and_becomes_a_partial_when_speech_goes_on() {
        let (speech, asr) = speech(vec!["我要", "我要挂失"]);
        let mut audio = tone(1000);
        audio.extend(quiet(400)); // a lull (300 ms), not a pause (600 ms)
        audio.extend(tone(1000));
        audio.extend(quiet(1500));
        let events = listen(speech, config(30_000), Default::default(), audio).await;
        assert!(
            events.contains(&ListenEvent::Partial("我要".into())),
            "{events:?}"
        );
        assert_eq!(finals(&events), vec!["我要挂失"]);
        assert_eq!(asr.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_number_read_out_with_pauses_stays_one_utterance() {
        let (speech, asr) = speech(vec!["我的手机号是138", "我的手机号是13812345678"]);
        let mut audio = tone(1200);
        audio.extend(quiet(800)); // longer than the 600 ms end silence, shorter than the hold
        audio.extend(tone(1200));
        audio.extend(quiet(2000));
        let events = listen(speech, config(30_000), Default::default(), audio).await;
        assert_eq!(
            finals(&events),
            vec!["我的手机号是13812345678"],
            "{events:?}"
        );
        assert!(events.contains(&ListenEvent::Partial("我的手机号是138".into())));
        let lengths = asr.lengths.lock().unwrap().clone();
        assert!(
            lengths[1] > lengths[0],
            "the second recognition hears both parts: {lengths:?}"
        );
    }

    #[tokio::test]
    async fn ten_minutes_without_a_pause_are_cut_at_the_maximum_and_all_processed() {
        let (speech, asr) = speech(vec!["一段很长的话"]);
        let audio = tone(600_000);
        let events = listen(speech, config(30_000), Default::default(), audio).await;
        let n = finals(&events).len();
        assert!((20..=21).contains(&n), "600 s in 30 s pieces: {n}");
        let lengths = asr.lengths.lock().unwrap().clone();
        assert!(
            lengths.iter().all(|l| *l <= 30 * SAMPLE_RATE),
            "{lengths:?}"
        );
        let heard: usize = lengths.iter().sum();
        assert!(
            heard >= 600 * SAMPLE_RATE - 4 * 512,
            "nothing lost: {heard}"
        );
    }

    #[tokio::test]
    async fn silence_only_is_no_speech_and_costs_nothing() {
        let (speech, asr) = speech(vec!["不该出现"]);
        let events = listen(speech, config(30_000), Default::default(), quiet(5000)).await;
        assert_eq!(events, vec![ListenEvent::NoSpeech]);
        assert_eq!(asr.calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn talking_over_the_bot_stops_it_but_a_backchannel_does_not() {
        // Long speech over an interruptible reply: bot.stop, then the turn.
        let (s, _) = speech(vec!["等一下我要转人工"]);
        let voice = Arc::new(VoiceState::default());
        voice.started("t1", Duration::from_secs(60), true);
        let mut audio = tone(1500);
        audio.extend(quiet(1000));
        let events = listen(s, config(30_000), voice.clone(), audio).await;
        assert_eq!(events[0], ListenEvent::Stop("t1".into()), "{events:?}");
        assert_eq!(finals(&events), vec!["等一下我要转人工"]);

        // A short 嗯 over the bot: no stop, no turn, only a note.
        let (s, _) = speech(vec!["嗯"]);
        let voice = Arc::new(VoiceState::default());
        voice.started("t2", Duration::from_secs(60), true);
        let mut audio = tone(300);
        audio.extend(quiet(1000));
        let events = listen(s, config(30_000), voice.clone(), audio).await;
        let heard: Vec<_> = events
            .iter()
            .filter(|e| !matches!(e, ListenEvent::Partial(_)))
            .collect();
        assert!(
            matches!(&heard[..], [ListenEvent::Backchannel(h)] if h.text == "嗯"),
            "{events:?}"
        );
        assert!(voice.speaking(), "the bot goes on");

        // A risk disclosure is not cut off, and what was said is still taken.
        let (s, _) = speech(vec!["我要买理财"]);
        let voice = Arc::new(VoiceState::default());
        voice.started("t3", Duration::from_secs(60), false);
        let mut audio = tone(1500);
        audio.extend(quiet(1000));
        let events = listen(s, config(30_000), voice.clone(), audio).await;
        assert!(
            !events.iter().any(|e| matches!(e, ListenEvent::Stop(_))),
            "{events:?}"
        );
        assert_eq!(finals(&events), vec!["我要买理财"]);
    }

    #[test]
    fn backchannels_are_short_acknowledgements_only() {
        for t in ["嗯", "嗯嗯。", "好的", "对对", "好！", " 是的 "] {
            assert!(is_backchannel(t), "{t}");
        }
        for t in ["好的我要挂失", "不对", "等一下", "", "。"] {
            assert!(!is_backchannel(t), "{t}");
        }
    }

    #[test]
    fn a_number_being_read_out_holds_the_turn() {
        assert!(ends_in_digits("我的手机号是138"));
        assert!(ends_in_digits("尾号幺二三，"));
        assert!(!ends_in_digits("我要挂失。"));
        assert!(!ends_in_digits(""));
    }

    #[test]
    fn pcm16_is_decoded_little_endian_and_odd_lengths_refused() {
        assert_eq!(
            pcm16_to_f32(&[0x00, 0x80, 0xff, 0x7f]).unwrap(),
            vec![-1.0, 32767.0 / 32768.0]
        );
        assert!(pcm16_to_f32(&[1, 2, 3]).is_none());
    }

    #[test]
    fn the_bot_can_be_interrupted_only_while_talking_and_interruptible() {
        let v = VoiceState::default();
        assert_eq!(v.interrupt(), None);
        v.started("t1", Duration::from_secs(5), false);
        assert!(v.speaking());
        assert_eq!(v.interrupt(), None);
        v.started("t2", Duration::from_secs(5), true);
        assert_eq!(v.interrupt().as_deref(), Some("t2"));
        assert!(!v.speaking());
    }
}
