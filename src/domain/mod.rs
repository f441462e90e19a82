//! The branch's vocabulary, shared by every layer: the branch's wall clock ([`clock`]) and
//! the check digits of customers' identifiers ([`ids`]).

pub mod clock;
pub mod ids;
