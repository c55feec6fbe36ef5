//! Demo users for `keel seed`, written with binary COPY.
//!
//! Hashing 10k passwords with argon2id would take minutes, so every seeded customer shares
//! one hash of [`DEMO_PASSWORD`]: acceptable for demo data, never for real accounts.

use futures_util::pin_mut;
use platform::InfraError;
use tokio_postgres::{Client, binary_copy::BinaryCopyInWriter, types::Type};

use crate::password;

/// The password of every seeded user.
pub const DEMO_PASSWORD: &str = "keel-demo-password";

/// The email of the `n`th seeded customer (1-based).
pub fn demo_email(n: u64) -> String {
    format!("user{n}@demo.keel")
}

/// Adds `count` customers (and the admin `admin@demo.keel`, if missing); `progress` is called
/// with the running total.
pub async fn users(client: &Client, count: u64, progress: impl Fn(u64)) -> Result<(), InfraError> {
    let hash = password::hash(DEMO_PASSWORD.to_owned()).await?;
    client
        .execute(
            "INSERT INTO accounts.users (email, name, password_hash, role)
             VALUES ('admin@demo.keel', 'Demo Admin', $1, 'admin') ON CONFLICT (email) DO NOTHING",
            &[&hash],
        )
        .await?;
    let start: i64 = client
        .query_one(
            "SELECT count(*) FROM accounts.users WHERE email LIKE 'user%@demo.keel'",
            &[],
        )
        .await?
        .get(0);
    let start = u64::try_from(start).unwrap_or(0);
    let sink = client
        .copy_in("COPY accounts.users (email, name, password_hash) FROM STDIN (FORMAT binary)")
        .await?;
    let writer = BinaryCopyInWriter::new(sink, &[Type::TEXT, Type::TEXT, Type::TEXT]);
    pin_mut!(writer);
    for n in start + 1..=start + count {
        let email = demo_email(n);
        let name = format!("Demo Customer {n}");
        writer.as_mut().write(&[&email, &name, &hash]).await?;
        if n % 1000 == 0 {
            progress(n - start);
        }
    }
    writer.finish().await?;
    progress(count);
    Ok(())
}
