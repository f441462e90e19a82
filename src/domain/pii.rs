//! Customers' identifiers that mask themselves: a [`Phone`], an [`IdNumber`] or a
//! [`CardNumber`] prints (`Display`, `Debug`, so in logs and `{:?}` of any struct holding
//! one) only in its masked form; the raw value is read on purpose with `expose()`, where a
//! journey truly needs it (hashing, the bank call).

use std::fmt;

use super::masking::mask_pii;

macro_rules! pii_type {
    ($(#[$doc:meta])* $ty:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $ty(String);

        impl $ty {
            pub fn new(raw: impl Into<String>) -> $ty {
                $ty(raw.into())
            }

            /// The raw value. Never log or store it: hash, mask or encrypt it.
            pub fn expose(&self) -> &str {
                &self.0
            }

            /// The masked form (`138****5678`).
            pub fn masked(&self) -> String {
                mask_pii(&self.0)
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.masked())
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($ty), self.masked())
            }
        }
    };
}

pii_type!(
    /// A mobile phone number.
    Phone
);
pii_type!(
    /// A resident ID number (GB 11643).
    IdNumber
);
pii_type!(
    /// A bank card number.
    CardNumber
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_print_only_masked() {
        let p = Phone::new("13812345678");
        assert_eq!(p.expose(), "13812345678");
        assert!(!format!("{p}").contains("12345678"), "{p}");
        assert!(!format!("{p:?}").contains("12345678"), "{p:?}");
        let id = IdNumber::new("11010519491231002X");
        assert!(!format!("{:?}", Some(&id)).contains("19491231"));
        let c = CardNumber::new("6222021001123456780");
        assert!(format!("{c}").ends_with("6780"), "{c}");
        assert!(!format!("{c}").contains("1001123456"), "{c}");
    }
}
