//! `keel seed`: realistic demo data through binary COPY, with progress bars.

use indicatif::{ProgressBar, ProgressStyle};
use platform::{InfraError, db::Db};

/// How much demo data to add.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct SeedSizes {
    /// Products to add (each with stock).
    #[arg(long, env = "KEEL_SEED_PRODUCTS", default_value_t = 100_000)]
    pub products: u64,
    /// Customers to add; all share the password `keel-demo-password`.
    #[arg(long, env = "KEEL_SEED_USERS", default_value_t = 10_000)]
    pub users: u64,
    /// Seed only if the catalog has no products yet (what the run script uses).
    #[arg(long)]
    pub if_empty: bool,
}

/// Adds the demo data; running it again adds more, never duplicates. Returns whether it
/// seeded (with `if_empty`, a catalog that has products is left alone).
pub async fn seed(db: &Db, sizes: SeedSizes) -> Result<bool, InfraError> {
    // Binary COPY: a session on the primary itself.
    let session = db.session().await?;
    let client = session.raw();
    if sizes.if_empty && catalog::seed::has_products(client).await? {
        return Ok(false);
    }

    let bar = progress(sizes.users, "users");
    accounts::seed::users(client, sizes.users, |n| bar.set_position(n)).await?;
    bar.finish();

    let bar = progress(sizes.products, "products");
    catalog::seed::products(client, sizes.products, |n| bar.set_position(n)).await?;
    bar.finish();

    client
        .batch_execute("ANALYZE accounts.users; ANALYZE catalog.products; ANALYZE catalog.stock")
        .await?;
    Ok(true)
}

fn progress(total: u64, what: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg:>9} [{bar:40}] {pos}/{len} ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what);
    bar
}
