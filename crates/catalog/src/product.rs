//! A product and the checked values it is made of.

use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use contract::ProductId;

/// A product as the API shows it, with its stock on hand.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct Product {
    #[schema(value_type = i64)]
    pub id: ProductId,
    pub sku: String,
    pub name: String,
    pub description: String,
    pub category: String,
    /// Price in cents.
    pub price_cents: i64,
    /// Units in stock.
    pub stock: i32,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

/// The columns every product query selects, in [`Product::from_row`]'s order.
pub(crate) const COLUMNS: &str = "p.id, p.sku, p.name, p.description, p.category, p.price_cents, \
     s.on_hand, p.created_at, p.updated_at";

impl Product {
    pub(crate) fn from_row(row: &tokio_postgres::Row) -> Self {
        Self {
            id: row.get(0),
            sku: row.get(1),
            name: row.get(2),
            description: row.get(3),
            category: row.get(4),
            price_cents: row.get(5),
            stock: row.get(6),
            created_at: row.get(7),
            updated_at: row.get(8),
        }
    }
}

platform::checked_string!(
    /// A stock-keeping unit: 1 to 64 letters, digits, `-` or `_`.
    pub Sku,
    schema: |s| s.pattern(Some("^[A-Za-z0-9_-]{1,64}$")).examples(["LAMP-001"]),
    |sku| {
        let ok = (1..=64).contains(&sku.len())
            && sku.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| sku.to_owned())
            .ok_or_else(|| "must be 1 to 64 letters, digits, '-' or '_'".into())
    }
);

platform::checked_string!(
    /// A product name: 1 to 200 characters, no control characters.
    pub ProductName,
    schema: |s| s
        .pattern(Some(platform::newtype::DISPLAY_TEXT_PATTERN))
        .max_length(Some(200))
        .examples(["Desk lamp"]),
    |text| platform::newtype::display_text(text, 200)
);

platform::checked_string!(
    /// A description: at most 4000 characters; empty by default.
    #[derive(Default)]
    pub Description,
    schema: |s| s.max_length(Some(4000)).pattern(Some("^[^\\x00]*$")),
    |text| {
        // PostgreSQL's text cannot hold NUL; every other character may describe.
        (text.chars().count() <= 4000 && !text.contains('\0'))
            .then(|| text.trim().to_owned())
            .ok_or_else(|| "must be at most 4000 characters, none of them NUL".into())
    }
);

platform::checked_string!(
    /// A category slug: 1 to 64 lower-case letters, digits or `-`.
    pub Category,
    schema: |s| s.pattern(Some("^[a-z0-9-]{1,64}$")).examples(["lighting"]),
    |text| {
        let ok = (1..=64).contains(&text.len())
            && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        ok.then(|| text.to_owned())
            .ok_or_else(|| "must be 1 to 64 lower-case letters, digits or '-'".into())
    }
);

platform::bounded_int!(
    /// An amount of money in cents: 0 to 100 000 000 (one million in major units).
    pub Money(i64), 0..=100_000_000
);

impl Money {
    pub fn cents(self) -> i64 {
        self.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skus_are_restricted() {
        assert_eq!(Sku::parse("SKU-1_a").unwrap().as_str(), "SKU-1_a");
        // As the schema's pattern says: spaces are not part of a SKU, even around it.
        assert!(Sku::parse(" SKU-1_a ").is_err());
        assert!(Sku::parse("").is_err());
        assert!(Sku::parse("has space").is_err());
        assert!(Sku::parse(&"x".repeat(65)).is_err());
    }

    #[test]
    fn categories_are_slugs() {
        assert!(Category::parse("garden-tools").is_ok());
        assert!(Category::parse("Garden").is_err());
        assert!(Category::parse("").is_err());
    }

    #[test]
    fn names_and_descriptions_are_bounded() {
        assert!(ProductName::parse("Lamp").is_ok());
        assert!(ProductName::parse(" ").is_err());
        assert!(ProductName::parse(&"x".repeat(201)).is_err());
        assert!(Description::parse("").is_ok());
        assert!(Description::parse(&"x".repeat(4001)).is_err());
        assert!(Description::parse("line\nbreak").is_ok());
        assert!(Description::parse("nul\0").is_err());
    }

    #[test]
    fn money_is_bounded_cents() {
        assert_eq!(Money::new(0).unwrap().cents(), 0);
        assert!(Money::new(-1).is_err());
        assert!(Money::new(Money::MAX + 1).is_err());
    }
}
