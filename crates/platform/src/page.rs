//! Keyset pagination, shared by every list endpoint: the page size, and where the next
//! page starts.

crate::bounded_int!(
    /// How many items a page holds: 1 to 100, 20 unless asked.
    pub PageSize(i64), 1..=100
);

impl Default for PageSize {
    fn default() -> Self {
        Self(20)
    }
}

/// One keyset page: the items read with `LIMIT size`, and the key to pass as `after` for
/// the next page — absent when the page came back short, which is the last one.
#[derive(Debug)]
pub struct Page<T, K> {
    pub items: Vec<T>,
    pub next_after: Option<K>,
}

impl<T, K> Page<T, K> {
    pub fn keyset(items: Vec<T>, size: PageSize, key: impl Fn(&T) -> K) -> Self {
        let full = i64::try_from(items.len()).is_ok_and(|n| n == size.get());
        let next_after = full.then(|| items.last().map(key)).flatten();
        Self { items, next_after }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_page_has_a_next_one() {
        let size = PageSize::new(2).unwrap();
        let full = Page::keyset(vec![10, 20], size, |n| n + 1);
        assert_eq!(full.next_after, Some(21));
        let short = Page::keyset(vec![10], size, |n| n + 1);
        assert_eq!(short.next_after, None);
        let empty = Page::keyset(Vec::<i64>::new(), size, |n| n + 1);
        assert_eq!(empty.next_after, None);
    }

    #[test]
    fn page_sizes_are_bounded() {
        assert_eq!(PageSize::default().get(), 20);
        assert!(PageSize::new(1).is_ok());
        assert!(PageSize::new(0).is_err());
        assert!(PageSize::new(101).is_err());
    }
}
