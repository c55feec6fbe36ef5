//! Writing products: creating one with its initial stock, and changing its fields.

use platform::db::Client;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::{
    Category, Description, Error, Money, Product, ProductId, ProductName, Sku, StockLevel,
    product::COLUMNS,
};

/// A new product. Ids and timestamps are the server's: unknown fields are rejected.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewProduct {
    #[schema(schema_with = Sku::schema)]
    pub sku: Sku,
    #[schema(schema_with = ProductName::schema)]
    pub name: ProductName,
    #[serde(default)]
    #[schema(schema_with = Description::schema, required = false)]
    pub description: Description,
    #[schema(schema_with = Category::schema)]
    pub category: Category,
    #[schema(schema_with = Money::schema)]
    pub price_cents: Money,
    #[serde(default)]
    #[schema(schema_with = StockLevel::schema, required = false)]
    pub stock: StockLevel,
}

/// Changes to a product; absent fields stay as they are (`null` is not a value).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProductChanges {
    #[serde(default, deserialize_with = "platform::newtype::present")]
    #[schema(schema_with = ProductName::schema)]
    pub name: Option<ProductName>,
    #[serde(default, deserialize_with = "platform::newtype::present")]
    #[schema(schema_with = Description::schema)]
    pub description: Option<Description>,
    #[serde(default, deserialize_with = "platform::newtype::present")]
    #[schema(schema_with = Category::schema)]
    pub category: Option<Category>,
    #[serde(default, deserialize_with = "platform::newtype::present")]
    #[schema(schema_with = Money::schema)]
    pub price_cents: Option<Money>,
}

/// Creates a product and its stock row in one statement.
pub(crate) async fn create_product(db: &impl Client, new: &NewProduct) -> Result<Product, Error> {
    let statement = db
        .prepare_cached(&format!(
            "WITH p AS (
                INSERT INTO catalog.products (sku, name, description, category, price_cents)
                VALUES ($1, $2, $3, $4, $5)
                RETURNING *
             ), s AS (
                INSERT INTO catalog.stock (product_id, on_hand) SELECT id, $6 FROM p
                RETURNING *
             )
             SELECT {COLUMNS} FROM p JOIN s ON s.product_id = p.id"
        ))
        .await?;
    let row = platform::db::timed(
        "catalog.insert_product",
        db.query_one(
            &statement,
            &[
                &new.sku.as_str(),
                &new.name.as_str(),
                &new.description.as_str(),
                &new.category.as_str(),
                &new.price_cents.cents(),
                &new.stock.get(),
            ],
        ),
    )
    .await?;
    Ok(Product::from_row(&row))
}

/// Applies `changes` to the product `id`.
pub(crate) async fn update_product(
    db: &impl Client,
    id: ProductId,
    changes: &ProductChanges,
) -> Result<Product, Error> {
    let statement = db
        .prepare_cached(&format!(
            "WITH p AS (
                UPDATE catalog.products SET
                    name = COALESCE($2, name),
                    description = COALESCE($3, description),
                    category = COALESCE($4, category),
                    price_cents = COALESCE($5, price_cents),
                    updated_at = now()
                 WHERE id = $1
                RETURNING *
             )
             SELECT {COLUMNS} FROM p JOIN catalog.stock s ON s.product_id = p.id"
        ))
        .await?;
    let row = platform::db::timed(
        "catalog.update_product",
        db.query_opt(
            &statement,
            &[
                &id,
                &changes.name.as_ref().map(ProductName::as_str),
                &changes.description.as_ref().map(Description::as_str),
                &changes.category.as_ref().map(Category::as_str),
                &changes.price_cents.map(Money::cents),
            ],
        ),
    )
    .await?
    .ok_or(Error::NotFound)?;
    Ok(Product::from_row(&row))
}
