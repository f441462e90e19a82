//! Who may do what: kiosks and their tokens ([`kiosks`]), staff users, sessions and branch
//! scope ([`staff`]), roles ([`roles`]), secret tokens and password hashing ([`tokens`]),
//! and masking of personal data in text ([`masking`]).

pub mod kiosks;
pub mod masking;
pub mod roles;
pub mod staff;
pub mod tokens;

pub use masking::mask_pii;
pub use roles::Role;
