//! Demo products for `keel seed`, written with binary COPY: realistic names, categories,
//! prices and stock, the same for the same count (a fixed pseudo-random sequence).

use futures_util::pin_mut;
use platform::InfraError;
use tokio_postgres::{Client, binary_copy::BinaryCopyInWriter, types::Type};

const CATEGORIES: [&str; 16] = [
    "books", "garden", "kitchen", "lighting", "office", "outdoor", "audio", "toys", "sports",
    "bath", "bedding", "tools", "pets", "games", "travel", "beauty",
];
const ADJECTIVES: [&str; 12] = [
    "Classic",
    "Compact",
    "Deluxe",
    "Eco",
    "Ergonomic",
    "Handmade",
    "Modern",
    "Portable",
    "Rugged",
    "Smart",
    "Vintage",
    "Wireless",
];
const NOUNS: [&str; 12] = [
    "Lamp", "Kettle", "Backpack", "Speaker", "Chair", "Notebook", "Planter", "Blanket", "Toolkit",
    "Bottle", "Puzzle", "Towel",
];

/// A small, fast, deterministic generator (SplitMix64): demo data needs spread, not secrecy.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

/// Whether the catalog has any product yet.
pub async fn has_products(client: &Client) -> Result<bool, InfraError> {
    let row = client
        .query_one("SELECT EXISTS (SELECT 1 FROM catalog.products)", &[])
        .await?;
    Ok(row.get(0))
}

/// Adds `count` products with stock; `progress` is called with the running total.
pub async fn products(
    client: &Client,
    count: u64,
    progress: impl Fn(u64),
) -> Result<(), InfraError> {
    let start: i64 = client
        .query_one(
            "SELECT count(*) FROM catalog.products WHERE sku LIKE 'DEMO-%'",
            &[],
        )
        .await?
        .get(0);
    let start = u64::try_from(start).unwrap_or(0);
    let sink = client
        .copy_in(
            "COPY catalog.products (sku, name, description, category, price_cents)
             FROM STDIN (FORMAT binary)",
        )
        .await?;
    let types = [Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT, Type::INT8];
    let writer = BinaryCopyInWriter::new(sink, &types);
    pin_mut!(writer);
    let mut rng = SplitMix(start);
    for n in start + 1..=start + count {
        let sku = format!("DEMO-{n:08}");
        let (adjective, noun) = (rng.pick(&ADJECTIVES), rng.pick(&NOUNS));
        let name = format!("{adjective} {noun} {n}");
        let description = format!(
            "A {} {} for everyday use.",
            adjective.to_lowercase(),
            noun.to_lowercase()
        );
        let category = rng.pick(&CATEGORIES);
        // Log-spread prices from 1.00 to about 1000.00.
        let price_cents =
            (100.0 * 10f64.powf(3.0 * (rng.next() % 10_000) as f64 / 10_000.0)) as i64;
        writer
            .as_mut()
            .write(&[&sku, &name, &description, &category, &price_cents])
            .await?;
        if n % 5000 == 0 {
            progress(n - start);
        }
    }
    writer.finish().await?;
    client
        .execute(
            "INSERT INTO catalog.stock (product_id, on_hand)
             SELECT p.id, 50 + (p.id * 7919) % 450 FROM catalog.products p
              WHERE NOT EXISTS (SELECT 1 FROM catalog.stock s WHERE s.product_id = p.id)",
            &[],
        )
        .await?;
    progress(count);
    Ok(())
}
