//! Security primitives: staff roles, secret tokens (random, stored only as hashes),
//! password hashing (argon2) and masking of personal data in text.

pub mod masking;
pub mod roles;
pub mod tokens;

pub use masking::mask_pii;
pub use roles::Role;
