//! A calendar day (UTC) as the sales report takes and shows it: `2026-11-23`.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::{Date, macros::format_description};

/// A day, parsed from `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Day(pub Date);

/// Text that is not a `YYYY-MM-DD` day.
#[derive(Debug, thiserror::Error)]
#[error("must be a day like 2026-11-23")]
pub(crate) struct InvalidDay;

impl FromStr for Day {
    type Err = InvalidDay;

    fn from_str(text: &str) -> Result<Self, InvalidDay> {
        Date::parse(text, format_description!("[year]-[month]-[day]"))
            .map(Day)
            .map_err(|_| InvalidDay)
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (year, month, day) = (self.0.year(), u8::from(self.0.month()), self.0.day());
        write!(f, "{year:04}-{month:02}-{day:02}")
    }
}

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for Day {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_trip() {
        let day: Day = "2026-02-03".parse().unwrap();
        assert_eq!(day.to_string(), "2026-02-03");
    }

    #[test]
    fn what_is_not_a_day_is_refused() {
        for bad in [
            "",
            "2026-02-30",
            "2026-2-3",
            "03/02/2026",
            "2026-02-03T00:00:00Z",
        ] {
            assert!(bad.parse::<Day>().is_err(), "{bad}");
        }
    }
}
