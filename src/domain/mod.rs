//! The branch's vocabulary, shared by every layer: the wall clock and the [`clock::Clock`]
//! port ([`clock`]), identifiers parsed once at the edge ([`names`]), customers'
//! identifiers that print only masked ([`pii`]), masking personal data in text
//! ([`masking`]), and identifiers' check digits ([`ids`]).

pub mod clock;
pub mod ids;
pub mod masking;
pub mod names;
pub mod pii;
