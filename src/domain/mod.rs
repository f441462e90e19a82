//! The branch's vocabulary, shared by every layer: the wall clock and the [`clock::Clock`]
//! port ([`clock`]), identifiers parsed once at the edge ([`names`]), customers'
//! identifiers that print only masked ([`pii`]), masking personal data in text
//! ([`masking`]), identifiers' check digits ([`ids`]), and encryption at rest with keyed
//! lookup hashes ([`vault`]).

pub mod clock;
pub mod ids;
pub mod masking;
pub mod names;
pub mod pii;
pub mod vault;
