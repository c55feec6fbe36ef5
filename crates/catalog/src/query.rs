//! Reading products: one by id (for the cache's loads), or a keyset page filtered by
//! category and price.

use platform::{
    db::{Connection, Db, Lsn},
    page::{Page, PageSize},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{Category, Error, Money, Product, ProductId, product::COLUMNS};

/// The product `id` with its stock, on `client`.
pub(crate) async fn fetch_product(client: &Connection, id: ProductId) -> Result<Product, Error> {
    let statement = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM catalog.products p JOIN catalog.stock s ON s.product_id = p.id
              WHERE p.id = $1"
        ))
        .await?;
    let row = platform::db::timed(
        "catalog.product_by_id",
        client.query_opt(&statement, &[&id]),
    )
    .await?
    .ok_or(Error::NotFound)?;
    Ok(Product::from_row(&row))
}

/// Which products to list, and from where.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ProductFilter {
    /// Only this category.
    #[param(schema_with = Category::schema)]
    pub category: Option<Category>,
    /// Lowest price, in cents, inclusive.
    #[param(schema_with = Money::schema)]
    pub min_price: Option<Money>,
    /// Highest price, in cents, inclusive; below `min_price` the page is empty.
    #[param(schema_with = Money::schema)]
    pub max_price: Option<Money>,
    /// The `next_after` of the previous page.
    #[param(value_type = Option<i64>)]
    pub after: Option<ProductId>,
    /// Page size (default 20).
    #[param(schema_with = PageSize::schema)]
    pub limit: Option<PageSize>,
}

/// A page of products in id order.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProductPage {
    pub items: Vec<Product>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i64>)]
    pub next_after: Option<ProductId>,
}

/// A keyset page of products. Each filter combination gets its own SQL text, so each gets a
/// prepared plan that uses the index made for it: `(category, id)` or `(price_cents, id)`.
pub(crate) async fn list_products(
    db: &Db,
    token: Option<Lsn>,
    filter: &ProductFilter,
) -> Result<ProductPage, Error> {
    if let (Some(min), Some(max)) = (filter.min_price, filter.max_price) {
        // No price lies in an empty range: the answer is known without asking.
        if min > max {
            return Ok(ProductPage {
                items: Vec::new(),
                next_after: None,
            });
        }
    }
    let size = filter.limit.unwrap_or_default();
    let limit = size.get();
    let category = filter.category.as_ref().map(Category::as_str);
    let min = filter.min_price.map(Money::cents);
    let max = filter.max_price.map(Money::cents);
    let after = filter.after.unwrap_or(ProductId::new(0));

    let mut sql = format!(
        "SELECT {COLUMNS} FROM catalog.products p JOIN catalog.stock s ON s.product_id = p.id
          WHERE p.id > $1"
    );
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&after, &limit];
    for (column, op, value) in [
        (
            "category",
            "=",
            category
                .as_ref()
                .map(|c| c as &(dyn tokio_postgres::types::ToSql + Sync)),
        ),
        ("price_cents", ">=", min.as_ref().map(|m| m as _)),
        ("price_cents", "<=", max.as_ref().map(|m| m as _)),
    ] {
        if let Some(value) = value {
            params.push(value);
            sql.push_str(&format!(" AND p.{column} {op} ${}", params.len()));
        }
    }
    sql.push_str(" ORDER BY p.id LIMIT $2");

    let (sql, params) = (&sql, &params);
    let rows = db
        .with_read(token, |client| async move {
            let statement = client.prepare_cached(sql).await?;
            Ok::<_, Error>(
                platform::db::timed("catalog.products_page", client.query(&statement, params))
                    .await?,
            )
        })
        .await?;
    let items: Vec<Product> = rows.iter().map(Product::from_row).collect();
    let Page { items, next_after } = Page::keyset(items, size, |p| p.id);
    Ok(ProductPage { items, next_after })
}
