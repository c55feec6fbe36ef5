//! Keyset pagination's page size, shared by every list endpoint.

use serde::{Deserialize, Serialize};

/// How many items a page holds: 1 to 100, 20 unless asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct PageSize(i64);

impl PageSize {
    pub const MAX: i64 = 100;

    pub fn new(n: i64) -> Result<Self, String> {
        if (1..=Self::MAX).contains(&n) {
            Ok(Self(n))
        } else {
            Err(format!("must be a whole number from 1 to {}", Self::MAX))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl Default for PageSize {
    fn default() -> Self {
        Self(20)
    }
}

impl TryFrom<i64> for PageSize {
    type Error = String;
    fn try_from(n: i64) -> Result<Self, String> {
        Self::new(n)
    }
}

impl From<PageSize> for i64 {
    fn from(size: PageSize) -> i64 {
        size.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_are_bounded() {
        assert_eq!(PageSize::default().get(), 20);
        assert!(PageSize::new(1).is_ok());
        assert!(PageSize::new(0).is_err());
        assert!(PageSize::new(101).is_err());
    }
}
