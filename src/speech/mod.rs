//! Speech: what the kiosk hears and says. Model files (`models`), voice activity (`vad`),
//! recognition (`asr`), domain correction (`correct`), reading normalisation (`reading`)
//! and synthesis (`tts`, with the voice profiles of `voices/` loaded by `content`), tied
//! together per connection by `pipeline`.

pub mod correct;
pub mod models;
pub mod reading;
pub mod tts;
