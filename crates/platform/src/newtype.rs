//! Macros for the checked newtypes every module parses its input into ("parse, don't
//! validate"): a value of the type exists only if its constructor accepted it, and serde
//! deserializes through that constructor, so a bad field is rejected where it is read and
//! named in the error.

/// A string newtype whose constructor `parse` runs `check`, which returns the normalised
/// text or the reason it is invalid.
///
/// ```
/// platform::checked_string!(
///     /// A colour name.
///     pub Colour,
///     |text| if text.is_empty() { Err("must not be empty".into()) } else { Ok(text.to_owned()) }
/// );
/// assert!(Colour::parse("red").is_ok());
/// assert!(Colour::parse("").is_err());
/// ```
#[macro_export]
macro_rules! checked_string {
    ($(#[$attr:meta])* $vis:vis $name:ident, $check:expr) => {
        $(#[$attr])*
        #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        $vis struct $name(String);

        impl $name {
            pub fn parse(text: &str) -> Result<Self, String> {
                let check: fn(&str) -> Result<String, String> = $check;
                check(text).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(text: String) -> Result<Self, String> {
                Self::parse(&text)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }
    };
}

/// An integer newtype over `$int` accepting only `$min..=$max`; it deserializes from any
/// JSON integer, so an out-of-range one gets this type's message rather than serde's.
///
/// ```
/// platform::bounded_int!(
///     /// Seats in a row.
///     pub Seats(i32), 1..=40
/// );
/// assert_eq!(Seats::new(3).unwrap().get(), 3);
/// assert!(Seats::new(41).is_err());
/// ```
#[macro_export]
macro_rules! bounded_int {
    ($(#[$attr:meta])* $vis:vis $name:ident($int:ty), $min:literal ..= $max:literal) => {
        $(#[$attr])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "i64", into = "i64")]
        $vis struct $name($int);

        impl $name {
            pub const MIN: $int = $min;
            pub const MAX: $int = $max;

            pub fn new(n: i64) -> Result<Self, String> {
                match <$int>::try_from(n) {
                    Ok(n) if (Self::MIN..=Self::MAX).contains(&n) => Ok(Self(n)),
                    _ => Err(format!("must be a whole number from {} to {}", Self::MIN, Self::MAX)),
                }
            }

            pub fn get(self) -> $int {
                self.0
            }
        }

        impl TryFrom<i64> for $name {
            type Error = String;
            fn try_from(n: i64) -> Result<Self, String> {
                Self::new(n)
            }
        }

        impl From<$name> for i64 {
            fn from(value: $name) -> i64 {
                i64::from(value.0)
            }
        }
    };
}
