//! Who may do what: kiosks and their tokens ([`kiosks`]), staff users, sessions and branch
//! scope ([`staff`]), roles ([`roles`]), secret tokens and password hashing ([`tokens`]),
//! login throttling and hashing slots ([`throttle`]), rate limits of open routes ([`rate`]).
//! Masking of personal data is the domain's ([`crate::domain::masking`]), re-exported here
//! for the callers that check access and mask in one place.

pub mod kiosks;
pub mod rate;
pub mod roles;
pub mod staff;
pub mod throttle;
pub mod tokens;

pub use crate::domain::masking;
pub use crate::domain::masking::mask_pii;
pub use roles::Role;
