//! Keyset pagination's page size, shared by every list endpoint.

crate::bounded_int!(
    /// How many items a page holds: 1 to 100, 20 unless asked.
    pub PageSize(i64), 1..=100
);

impl Default for PageSize {
    fn default() -> Self {
        Self(20)
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
