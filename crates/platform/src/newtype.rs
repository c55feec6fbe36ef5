//! Macros for the checked newtypes every module parses its input into ("parse, don't
//! validate"): a value of the type exists only if its constructor accepted it, and serde
//! deserializes through that constructor, so a bad field is rejected where it is read and
//! named in the error.

/// A string newtype whose constructor `parse` runs `check`, which returns the normalised
/// text or the reason it is invalid. `schema` states the same rule for the API document
/// (pattern, lengths) next to the check, where a change to one shows the other; the contract
/// tests hold the running server to it.
///
/// ```
/// platform::checked_string!(
///     /// A colour name.
///     pub Colour,
///     schema: |s| s.min_length(Some(1)),
///     |text| if text.is_empty() { Err("must not be empty".into()) } else { Ok(text.to_owned()) }
/// );
/// assert!(Colour::parse("red").is_ok());
/// assert!(Colour::parse("").is_err());
/// ```
/// Reads a whole number as JSON Schema's `integer` means it: `2` and `2.0` alike; `2.5`, a
/// string and numbers past `i64` are refused. (Query and path text is parsed by its own
/// deserializer before this sees it.)
pub fn whole_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    struct Whole;

    impl serde::de::Visitor<'_> for Whole {
        type Value = i64;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a whole number")
        }

        fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<i64, E> {
            Ok(n)
        }

        fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<i64, E> {
            i64::try_from(n)
                .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(n), &self))
        }

        fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<i64, E> {
            // i64::MAX as f64 rounds up to 2^63, which is out of range: hence `<`.
            const LIMIT: f64 = 9_223_372_036_854_775_808.0;
            if n.fract() == 0.0 && (-LIMIT..LIMIT).contains(&n) {
                #[allow(clippy::cast_possible_truncation)]
                Ok(n as i64)
            } else {
                Err(E::invalid_value(serde::de::Unexpected::Float(n), &self))
            }
        }
    }

    deserializer.deserialize_i64(Whole)
}

/// For a field that may be left out but, when sent, is a value: `null` is refused rather
/// than read as "left out" (`#[serde(default, deserialize_with = "platform::newtype::present")]`).
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// The pattern of [`display_text`]: no control character, and something besides spaces.
pub const DISPLAY_TEXT_PATTERN: &str =
    "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\x00-\\x20\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$";

/// A name people read (of a product, of a person): 1 to `max` characters as sent, none a
/// control character, not only spaces; stored without its leading and trailing spaces.
pub fn display_text(text: &str, max: usize) -> Result<String, String> {
    let valid = text.chars().count() <= max
        && !text.chars().any(char::is_control)
        && text.chars().any(|c| c != ' ');
    valid
        .then(|| text.trim_matches(' ').to_owned())
        .ok_or_else(|| format!("must be 1 to {max} characters without control characters"))
}

#[macro_export]
macro_rules! checked_string {
    ($(#[$attr:meta])* $vis:vis $name:ident, schema: $schema:expr, $check:expr) => {
        $(#[$attr])*
        #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        $vis struct $name(String);

        impl $name {
            pub fn parse(text: &str) -> Result<Self, String> {
                let check: fn(&str) -> Result<String, String> = $check;
                check(text).map(Self)
            }

            /// The JSON schema of the text `parse` accepts (`#[schema(schema_with = ...)]`).
            pub fn schema() -> $crate::__macro::Schema {
                use $crate::__macro::{ObjectBuilder, Type};
                let describe: fn(ObjectBuilder) -> ObjectBuilder = $schema;
                $crate::__macro::Schema::Object(
                    describe(ObjectBuilder::new().schema_type(Type::String)).build(),
                )
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
/// whole number ([`whole_number`]), so an out-of-range one gets this type's message rather
/// than serde's.
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
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
        #[serde(into = "i64")]
        $vis struct $name($int);

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let n = $crate::newtype::whole_number(deserializer)?;
                Self::new(n).map_err(serde::de::Error::custom)
            }
        }

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

            /// The JSON schema of the numbers `new` accepts (`#[schema(schema_with = ...)]`).
            pub fn schema() -> $crate::__macro::Schema {
                use $crate::__macro::{ObjectBuilder, Type};
                $crate::__macro::Schema::Object(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(Self::MIN))
                        .maximum(Some(Self::MAX))
                        .build(),
                )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers_are_read_as_json_schema_means_them() {
        let read = |json: &str| whole_number(&mut serde_json::Deserializer::from_str(json));
        assert_eq!(read("2").unwrap(), 2);
        assert_eq!(read("2.0").unwrap(), 2);
        assert_eq!(read("-7e2").unwrap(), -700);
        assert_eq!(read("9223372036854775807").unwrap(), i64::MAX);
        for bad in [
            "2.5",
            "9223372036854775808",
            "1e19",
            "\"42\"",
            "true",
            "null",
        ] {
            assert!(read(bad).is_err(), "{bad} was read");
        }
    }

    #[test]
    fn display_text_is_bounded_and_trimmed() {
        assert_eq!(display_text(" Ada ", 10).unwrap(), "Ada");
        assert_eq!(display_text("\u{a0}", 10).unwrap(), "\u{a0}");
        assert!(display_text("   ", 10).is_err());
        assert!(display_text("", 10).is_err());
        assert!(display_text("Ada\u{0}", 10).is_err());
        assert!(display_text("Ada\u{85}", 10).is_err());
        // The length is of the text as sent, as the schema's `maxLength` counts it.
        assert!(display_text(&format!("{} ", "x".repeat(10)), 10).is_err());
    }
}
