//! Identifiers of the branch's things, parsed once at the edge: [`KioskId`], [`BranchId`],
//! [`SessionId`], [`TicketNumber`]. Each derefs to `&str`, so code below the edge reads
//! them as text; a value that got past the edge is known to be well-formed.

use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

/// An identifier that does not have its shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} `{value}` must be 1 to {max} characters of {allowed}")]
pub struct BadName {
    pub what: &'static str,
    /// The value, cut to 80 characters.
    pub value: String,
    pub max: usize,
    pub allowed: &'static str,
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident, $what:literal, $max:literal, $allowed:literal, $ok:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $ty(String);

        impl $ty {
            /// Parses `value`, refusing one without the shape.
            pub fn parse(value: &str) -> Result<$ty, BadName> {
                let ok: fn(u8) -> bool = $ok;
                if !value.is_empty() && value.len() <= $max && value.bytes().all(ok) {
                    Ok($ty(value.to_string()))
                } else {
                    Err(BadName {
                        what: $what,
                        value: value.chars().take(80).collect(),
                        max: $max,
                        allowed: $allowed,
                    })
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Deref for $ty {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = BadName;
            fn try_from(value: String) -> Result<$ty, BadName> {
                $ty::parse(&value)
            }
        }

        impl From<$ty> for String {
            fn from(v: $ty) -> String {
                v.0
            }
        }
    };
}

fn id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

name_type!(
    /// A kiosk, as registered by an operator (`K001`).
    KioskId,
    "kiosk id",
    64,
    "A-Z a-z 0-9 - _",
    id_byte
);
name_type!(
    /// A branch (`B001`).
    BranchId,
    "branch id",
    64,
    "A-Z a-z 0-9 - _",
    id_byte
);
name_type!(
    /// A customer session (a UUID the server issues).
    SessionId,
    "session id",
    64,
    "A-Z a-z 0-9 - _",
    id_byte
);
name_type!(
    /// A ticket's number as staff and customers see it (`T20261203-0001`).
    TicketNumber,
    "ticket number",
    40,
    "A-Z a-z 0-9 -",
    |b| b.is_ascii_alphanumeric() || b == b'-'
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_parsed_once_and_read_as_text() {
        let k = KioskId::parse("K001").unwrap();
        assert_eq!(&*k, "K001");
        assert_eq!(k.to_string(), "K001");
        assert!(k.starts_with('K')); // derefs to str
        for bad in ["", "K 1", "柜台", &"x".repeat(65)] {
            let e = KioskId::parse(bad).unwrap_err();
            assert_eq!(e.what, "kiosk id");
        }
        assert!(TicketNumber::parse("T20261203-0001").is_ok());
        assert!(TicketNumber::parse("T_1").is_err());
    }

    #[test]
    fn names_round_trip_through_json_and_refuse_bad_shapes() {
        let b: BranchId = serde_json::from_str("\"B001\"").unwrap();
        assert_eq!(serde_json::to_string(&b).unwrap(), "\"B001\"");
        assert!(serde_json::from_str::<BranchId>("\"B 001\"").is_err());
    }
}
