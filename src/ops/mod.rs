//! Operators' offline tools that sit above the serving layers: `concierge transcribe` and
//! `concierge bench asr` ([`asr`]).

pub mod asr;
