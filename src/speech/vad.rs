//! Voice activity: where utterances start and end in a stream of 16 kHz mono audio.
//!
//! Endpointing runs in real time on 32 ms frames with an energy detector that follows the
//! room's noise floor ([`EnergyDetector`]); the [`Segmenter`] turns its frame decisions
//! into utterances (start after a short run of speech, a pause after `end_silence_ms`, an end
//! after the hold the caller chose, a cut at the maximum length). Each utterance is then
//! confirmed and trimmed by Silero ([`Silero`], whisper.cpp's VAD through whisper-rs) when
//! its model is installed, so a cough, a slammed door or clipped noise is not sent to the
//! recogniser.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Mutex;

/// Samples per second of every buffer in this module.
pub const SAMPLE_RATE: usize = 16_000;
/// Samples per detector frame (32 ms, Silero's window).
pub const FRAME: usize = 512;
/// Milliseconds per detector frame.
pub const FRAME_MS: u64 = 32;

/// Decides, frame by frame, whether someone is speaking.
pub trait SpeechDetector: Send {
    /// `frame` has exactly [`FRAME`] samples in [-1, 1].
    fn is_speech(&mut self, frame: &[f32]) -> bool;
}

/// Energy against an adaptive noise floor: speech is a frame clearly louder than the room.
#[derive(Debug, Clone)]
pub struct EnergyDetector {
    floor_db: f32,
    /// How far above the floor a frame must be to count as speech.
    margin_db: f32,
    /// Frames quieter than this are never speech, whatever the floor.
    min_db: f32,
}

impl Default for EnergyDetector {
    fn default() -> Self {
        EnergyDetector {
            floor_db: -60.0,
            margin_db: 12.0,
            min_db: -42.0,
        }
    }
}

/// The level of a frame in dBFS (−100 for digital silence).
pub fn level_db(frame: &[f32]) -> f32 {
    if frame.is_empty() {
        return -100.0;
    }
    let energy = frame.iter().map(|s| s * s).sum::<f32>() / frame.len() as f32;
    (10.0 * energy.max(1e-10).log10()).max(-100.0)
}

impl SpeechDetector for EnergyDetector {
    fn is_speech(&mut self, frame: &[f32]) -> bool {
        let db = level_db(frame);
        let speech = db > self.min_db && db > self.floor_db + self.margin_db;
        if db < self.floor_db {
            // The floor follows quiet frames down at once...
            self.floor_db = db.max(-90.0);
        } else if !speech {
            // ...and rises slowly (about 3 dB a second) while nobody speaks, so a noisier
            // lobby raises the bar without speech itself ever doing so.
            self.floor_db = (self.floor_db + 0.1).min(db);
        }
        speech
    }
}

/// What the segmenter found in the audio pushed so far.
#[derive(Debug, Clone, PartialEq)]
pub enum VadEvent {
    /// Someone started speaking (after [`SegmenterConfig::start_ms`] of speech).
    SpeechStart,
    /// The speaker has been silent for `lull_ms`: the utterance may be about to end. A
    /// caller may start recognising now, so the text is ready when the pause is confirmed.
    Lull,
    /// The speaker has been silent for `end_silence_ms`: the utterance may be over. The
    /// caller decides: [`Segmenter::end_now`], or wait (the utterance then ends on its own
    /// after `hold_ms`, or goes on if speech resumes).
    Pause,
    /// An utterance ended; `cut` when it hit the maximum length.
    End(Utterance),
}

/// One utterance: its samples (with a little silence either side) and how much of it was
/// speech.
#[derive(Debug, Clone, PartialEq)]
pub struct Utterance {
    pub samples: Vec<f32>,
    pub voiced_ms: u64,
    pub cut: bool,
}

impl Utterance {
    pub fn duration_ms(&self) -> u64 {
        (self.samples.len() as u64 * 1000) / SAMPLE_RATE as u64
    }
}

/// Timing of the segmenter.
#[derive(Debug, Clone, Copy)]
pub struct SegmenterConfig {
    /// Speech needed before an utterance starts.
    pub start_ms: u64,
    /// Silence after which a [`VadEvent::Lull`] is reported.
    pub lull_ms: u64,
    /// Silence after which a [`VadEvent::Pause`] is reported.
    pub end_silence_ms: u64,
    /// Silence after which the utterance ends without being asked.
    pub hold_ms: u64,
    /// Audio kept from before the start, so the first syllable is not clipped.
    pub pre_roll_ms: u64,
    /// Silence kept after the last speech frame.
    pub tail_ms: u64,
    /// The longest utterance; longer speech is cut here and processed.
    pub max_ms: u64,
}

impl Default for SegmenterConfig {
    fn default() -> Self {
        SegmenterConfig {
            start_ms: 96,
            lull_ms: 300,
            end_silence_ms: 600,
            hold_ms: 1200,
            pre_roll_ms: 320,
            tail_ms: 256,
            max_ms: 30_000,
        }
    }
}

#[derive(Debug)]
struct Current {
    samples: Vec<f32>,
    voiced_ms: u64,
    silence_ms: u64,
    lulled: bool,
    paused: bool,
    /// Samples up to the end of the last speech frame.
    speech_end: usize,
}

/// Turns a stream of samples into utterances. Feed it any chunk size.
pub struct Segmenter {
    config: SegmenterConfig,
    detector: Box<dyn SpeechDetector>,
    partial: Vec<f32>,
    pre_roll: VecDeque<f32>,
    run_ms: u64,
    current: Option<Current>,
    heard_speech: bool,
}

impl Segmenter {
    pub fn new(config: SegmenterConfig, detector: Box<dyn SpeechDetector>) -> Segmenter {
        Segmenter {
            config,
            detector,
            partial: Vec::with_capacity(FRAME),
            pre_roll: VecDeque::new(),
            run_ms: 0,
            current: None,
            heard_speech: false,
        }
    }

    /// An energy-based segmenter.
    pub fn energy(config: SegmenterConfig) -> Segmenter {
        Segmenter::new(config, Box::new(EnergyDetector::default()))
    }

    /// Whether an utterance is in progress.
    pub fn in_speech(&self) -> bool {
        self.current.is_some()
    }

    /// Speech heard in the utterance in progress, in milliseconds.
    pub fn voiced_ms(&self) -> u64 {
        self.current.as_ref().map_or(0, |c| c.voiced_ms)
    }

    /// Whether any utterance started since this segmenter was made.
    pub fn heard_speech(&self) -> bool {
        self.heard_speech
    }

    /// Whether the utterance in progress is in a pause (reported by [`VadEvent::Pause`]).
    pub fn paused(&self) -> bool {
        self.current.as_ref().is_some_and(|c| c.paused)
    }

    /// Whether the utterance in progress is in a lull or a pause (no speech for `lull_ms`).
    pub fn silent(&self) -> bool {
        self.current.as_ref().is_some_and(|c| c.lulled || c.paused)
    }

    /// Samples of the utterance in progress up to its last speech frame.
    pub fn speech_end(&self) -> usize {
        self.current.as_ref().map_or(0, |c| c.speech_end)
    }

    /// The samples of the utterance in progress (for a partial transcript).
    pub fn current_samples(&self) -> Option<&[f32]> {
        self.current.as_ref().map(|c| c.samples.as_slice())
    }

    /// Adds samples; returns what happened, in order.
    pub fn push(&mut self, samples: &[f32]) -> Vec<VadEvent> {
        let mut events = Vec::new();
        let mut rest = samples;
        while !rest.is_empty() {
            let take = (FRAME - self.partial.len()).min(rest.len());
            self.partial.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.partial.len() == FRAME {
                let frame = std::mem::take(&mut self.partial);
                self.frame(&frame, &mut events);
                self.partial = frame;
                self.partial.clear();
            }
        }
        events
    }

    fn frame(&mut self, frame: &[f32], events: &mut Vec<VadEvent>) {
        let speech = self.detector.is_speech(frame);
        let c = &self.config;
        match self.current.as_mut() {
            None => {
                self.pre_roll.extend(frame.iter().copied());
                let keep = (c.pre_roll_ms as usize * SAMPLE_RATE / 1000).max(FRAME);
                while self.pre_roll.len() > keep {
                    self.pre_roll.pop_front();
                }
                self.run_ms = if speech { self.run_ms + FRAME_MS } else { 0 };
                if self.run_ms >= c.start_ms {
                    self.current = Some(Current {
                        samples: self.pre_roll.drain(..).collect(),
                        voiced_ms: self.run_ms,
                        silence_ms: 0,
                        lulled: false,
                        paused: false,
                        speech_end: 0,
                    });
                    let cur = self.current.as_mut().expect("just set");
                    cur.speech_end = cur.samples.len();
                    self.run_ms = 0;
                    self.heard_speech = true;
                    events.push(VadEvent::SpeechStart);
                }
            }
            Some(cur) => {
                let max_samples = c.max_ms as usize * SAMPLE_RATE / 1000;
                if cur.samples.len() + frame.len() > max_samples {
                    // The longest utterance: cut here and go on with a new one, so
                    // nothing said is lost and no buffer grows past the maximum.
                    events.push(VadEvent::End(self.finish(true)));
                    if speech {
                        self.current = Some(Current {
                            samples: frame.to_vec(),
                            voiced_ms: FRAME_MS,
                            silence_ms: 0,
                            lulled: false,
                            paused: false,
                            speech_end: frame.len(),
                        });
                        events.push(VadEvent::SpeechStart);
                    }
                    return;
                }
                cur.samples.extend_from_slice(frame);
                if speech {
                    cur.voiced_ms += FRAME_MS;
                    cur.silence_ms = 0;
                    cur.lulled = false;
                    cur.paused = false;
                    cur.speech_end = cur.samples.len();
                } else {
                    cur.silence_ms += FRAME_MS;
                }
                if cur.silence_ms >= c.hold_ms.max(c.end_silence_ms) {
                    events.push(VadEvent::End(self.finish(false)));
                } else if cur.silence_ms >= c.end_silence_ms && !cur.paused {
                    cur.paused = true;
                    events.push(VadEvent::Pause);
                } else if cur.silence_ms >= c.lull_ms && !cur.lulled && !cur.paused {
                    cur.lulled = true;
                    events.push(VadEvent::Lull);
                }
            }
        }
    }

    fn finish(&mut self, cut: bool) -> Utterance {
        let cur = self.current.take().expect("an utterance in progress");
        let mut samples = cur.samples;
        let trailing =
            cur.silence_ms.saturating_sub(self.config.tail_ms) as usize * SAMPLE_RATE / 1000;
        samples.truncate(samples.len().saturating_sub(trailing));
        Utterance {
            samples,
            voiced_ms: cur.voiced_ms,
            cut,
        }
    }

    /// Ends the utterance in progress now (after a [`VadEvent::Pause`], or at the end of the
    /// stream). `None` when nobody is speaking.
    pub fn end_now(&mut self) -> Option<Utterance> {
        let c = self.current.as_mut()?;
        if !self.partial.is_empty() {
            c.samples.extend_from_slice(&self.partial);
            self.partial.clear();
        }
        Some(self.finish(false))
    }
}

/// Silero VAD (whisper.cpp's implementation through whisper-rs): speech probabilities per
/// 32 ms window, used to confirm and trim an utterance the energy detector found.
pub struct Silero {
    ctx: Mutex<whisper_rs::WhisperVadContext>,
}

/// What Silero made of an utterance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// Windows with speech probability ≥ 0.5, in milliseconds.
    pub speech_ms: u64,
    /// The first and last sample of speech (with a little padding), when there is any.
    pub span: Option<(usize, usize)>,
}

impl Silero {
    /// Loads the ggml Silero model (see `concierge models fetch`).
    pub fn load(path: &Path) -> Result<Silero, String> {
        let Some(p) = path.to_str().filter(|p| !p.contains('\0')) else {
            return Err(format!("{}: not a usable path", path.display()));
        };
        if !path.is_file() {
            return Err(format!("{}: no such file", path.display()));
        }
        let mut params = whisper_rs::WhisperVadContextParams::new();
        params.set_n_threads(1);
        params.set_use_gpu(false);
        let ctx = whisper_rs::WhisperVadContext::new(p, params)
            .map_err(|e| format!("{}: not a Silero VAD model ({e})", path.display()))?;
        Ok(Silero {
            ctx: Mutex::new(ctx),
        })
    }

    /// Speech probabilities over `samples`; blocking (call from a worker thread).
    pub fn judge(&self, samples: &[f32]) -> Result<Verdict, String> {
        if samples.len() < FRAME {
            return Ok(Verdict {
                speech_ms: 0,
                span: None,
            });
        }
        let mut ctx = self.ctx.lock().unwrap_or_else(|e| e.into_inner());
        ctx.detect_speech(samples)
            .map_err(|e| format!("VAD failed: {e}"))?;
        let probs = ctx.probabilities();
        let speech: Vec<usize> = probs
            .iter()
            .enumerate()
            .filter(|(_, p)| **p >= 0.5)
            .map(|(i, _)| i)
            .collect();
        let pad = 6 * FRAME; // about 200 ms either side
        let span = match (speech.first(), speech.last()) {
            (Some(&a), Some(&b)) => Some((
                (a * FRAME).saturating_sub(pad),
                ((b + 1) * FRAME + pad).min(samples.len()),
            )),
            _ => None,
        };
        Ok(Verdict {
            speech_ms: speech.len() as u64 * FRAME_MS,
            span,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(ms: u64, amp: f32) -> Vec<f32> {
        (0..ms as usize * 16)
            .map(|i| amp * (i as f32 * 2.0 * std::f32::consts::PI * 220.0 / 16_000.0).sin())
            .collect()
    }

    fn silence(ms: u64) -> Vec<f32> {
        vec![0.0; ms as usize * 16]
    }

    fn run(seg: &mut Segmenter, audio: &[f32]) -> Vec<VadEvent> {
        // 100 ms chunks, as kiosks send them.
        audio.chunks(1600).flat_map(|c| seg.push(c)).collect()
    }

    #[test]
    fn finds_an_utterance_between_silences_and_pauses_before_ending() {
        let mut seg = Segmenter::energy(SegmenterConfig::default());
        let mut audio = silence(1000);
        audio.extend(tone(1500, 0.3));
        audio.extend(silence(2000));
        let events = run(&mut seg, &audio);
        assert_eq!(events[0], VadEvent::SpeechStart);
        assert_eq!(events[1], VadEvent::Lull);
        assert_eq!(events[2], VadEvent::Pause);
        let VadEvent::End(u) = &events[3] else {
            panic!("{events:?}")
        };
        assert!(!u.cut);
        assert!((1400..=1600).contains(&u.voiced_ms), "{}", u.voiced_ms);
        // pre-roll + speech + a short tail, never the whole 1.2 s hold
        assert!(
            (1500..=2200).contains(&u.duration_ms()),
            "{}",
            u.duration_ms()
        );
        assert_eq!(events.len(), 4);
    }

    #[test]
    fn a_short_click_does_not_start_an_utterance() {
        let mut seg = Segmenter::energy(SegmenterConfig::default());
        let mut audio = silence(500);
        audio.extend(tone(30, 0.8));
        audio.extend(silence(500));
        assert!(run(&mut seg, &audio).is_empty());
        assert!(!seg.heard_speech());
    }

    #[test]
    fn a_pause_shorter_than_the_silence_keeps_one_utterance() {
        let mut seg = Segmenter::energy(SegmenterConfig::default());
        let mut audio = tone(800, 0.3);
        audio.extend(silence(400));
        audio.extend(tone(800, 0.3));
        let events = run(&mut seg, &audio);
        assert_eq!(events, vec![VadEvent::SpeechStart, VadEvent::Lull]);
        let u = seg.end_now().expect("in speech");
        assert!(u.voiced_ms >= 1500);
    }

    #[test]
    fn speech_without_a_pause_is_cut_at_the_maximum() {
        let config = SegmenterConfig {
            max_ms: 5_000,
            ..SegmenterConfig::default()
        };
        let mut seg = Segmenter::energy(config);
        let events = run(&mut seg, &tone(12_000, 0.3));
        let ends: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                VadEvent::End(u) => Some(u),
                _ => None,
            })
            .collect();
        assert_eq!(ends.len(), 2, "{events:?}");
        assert!(ends.iter().all(|u| u.cut && u.duration_ms() <= 5_000));
        // Nothing is lost: the rest is the utterance in progress.
        let rest = seg.end_now().expect("still speaking");
        let total: usize = ends.iter().map(|u| u.samples.len()).sum::<usize>() + rest.samples.len();
        assert!(total >= 12_000 * 16 - 3 * FRAME, "{total}");
    }

    #[test]
    fn a_steady_hum_raises_the_floor_but_speech_over_it_is_found() {
        let mut seg = Segmenter::energy(SegmenterConfig::default());
        // A quiet hum below the absolute minimum, then speech much louder.
        let mut audio = tone(2000, 0.005);
        audio.extend(tone(1000, 0.3));
        let events = run(&mut seg, &audio);
        assert_eq!(events, vec![VadEvent::SpeechStart]);
    }

    #[test]
    fn level_of_silence_and_full_scale() {
        assert_eq!(level_db(&[0.0; 512]), -100.0);
        assert!(level_db(&[1.0; 512]).abs() < 0.01);
        assert_eq!(level_db(&[]), -100.0);
    }
}
