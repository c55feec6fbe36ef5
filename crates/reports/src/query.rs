//! Reading the read models: one indexed query each, on a replica that has the caller's
//! newest write (or the primary). What they show lags the writes by the projection's lag.

use platform::{
    db::{Db, Lsn},
    page::{Page, PageSize},
};
use serde::{Deserialize, Serialize};
use time::{Date, Duration, OffsetDateTime};
use utoipa::{IntoParams, ToSchema};

use contract::{OrderId, OrderPageRequest, ProductId, UserId};

use crate::{Error, day::Day};

/// One order in a customer's history, as the read model keeps it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct OrderSummary {
    #[schema(value_type = i64)]
    pub order_id: OrderId,
    pub status: String,
    pub total_cents: i64,
    /// Lines on the order, and units over all of them.
    pub line_count: i32,
    pub item_count: i32,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub placed_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

/// A page of a customer's orders, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OrderHistory {
    pub items: Vec<OrderSummary>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i64>)]
    pub next_after: Option<OrderId>,
}

/// A customer's order history from `reports.order_summaries`, in keyset pages over
/// `(customer_id, order_id DESC)`.
pub(crate) async fn order_history(
    db: &Db,
    token: Option<Lsn>,
    customer_id: UserId,
    page: &OrderPageRequest,
) -> Result<OrderHistory, Error> {
    let (size, before) = page.keyset();
    let limit = size.get();
    let rows = db
        .with_read(token, |client| async move {
            let statement = client
                .prepare_cached(
                    "SELECT order_id, status, total_cents, line_count, item_count, placed_at,
                            updated_at
                       FROM reports.order_summaries
                      WHERE customer_id = $1 AND order_id < $2
                      ORDER BY order_id DESC LIMIT $3",
                )
                .await?;
            Ok::<_, Error>(
                platform::db::timed(
                    "reports.order_history",
                    client.query(&statement, &[&customer_id, &before, &limit]),
                )
                .await?,
            )
        })
        .await?;
    let items: Vec<OrderSummary> = rows
        .iter()
        .map(|row| OrderSummary {
            order_id: row.get(0),
            status: row.get(1),
            total_cents: row.get(2),
            line_count: row.get(3),
            item_count: row.get(4),
            placed_at: row.get(5),
            updated_at: row.get(6),
        })
        .collect();
    let Page { items, next_after } = Page::keyset(items, size, |o| o.order_id);
    Ok(OrderHistory { items, next_after })
}

/// A customer's totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub(crate) struct CustomerStats {
    pub orders_placed: i32,
    pub orders_confirmed: i32,
    pub orders_cancelled: i32,
    /// Over confirmed orders.
    pub spent_cents: i64,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_order_at: Option<OffsetDateTime>,
}

/// A customer's totals from `reports.customer_stats` (zeros before their first order).
pub(crate) async fn customer_stats(
    db: &Db,
    token: Option<Lsn>,
    customer_id: UserId,
) -> Result<CustomerStats, Error> {
    let row = db
        .with_read(token, |client| async move {
            let statement = client
                .prepare_cached(
                    "SELECT orders_placed, orders_confirmed, orders_cancelled, spent_cents,
                            last_order_at
                       FROM reports.customer_stats WHERE customer_id = $1",
                )
                .await?;
            Ok::<_, Error>(
                platform::db::timed(
                    "reports.customer_stats",
                    client.query_opt(&statement, &[&customer_id]),
                )
                .await?,
            )
        })
        .await?;
    Ok(
        row.map_or_else(CustomerStats::default, |row| CustomerStats {
            orders_placed: row.get(0),
            orders_confirmed: row.get(1),
            orders_cancelled: row.get(2),
            spent_cents: row.get(3),
            last_order_at: row.get(4),
        }),
    )
}

/// Which sales to report.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct SalesFilter {
    /// First day, inclusive (`YYYY-MM-DD`, UTC); default 30 days before `to`. After `to`,
    /// the report is empty.
    #[param(value_type = Option<String>, format = Date)]
    pub from: Option<Day>,
    /// Last day, inclusive; default today.
    #[param(value_type = Option<String>, format = Date)]
    pub to: Option<Day>,
    /// Only this product.
    #[param(value_type = Option<i64>)]
    pub product_id: Option<ProductId>,
    /// The `next_after_day` of the previous page. Alone, the page starts after that day.
    #[param(value_type = Option<String>, format = Date)]
    pub after_day: Option<Day>,
    /// The `next_after_product_id` of the previous page. Alone, the page starts after that
    /// product on the first day.
    #[param(value_type = Option<i64>)]
    pub after_product_id: Option<ProductId>,
    /// Page size (default 20).
    #[param(schema_with = PageSize::schema)]
    pub limit: Option<PageSize>,
}

/// One product's confirmed sales on one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub(crate) struct DailySales {
    #[schema(value_type = String)]
    pub day: Day,
    #[schema(value_type = i64)]
    pub product_id: ProductId,
    pub product_name: String,
    pub units: i64,
    pub revenue_cents: i64,
    pub orders: i32,
}

/// A page of the sales report, by day then product.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SalesReport {
    pub items: Vec<DailySales>,
    /// Pass both as `after_day` and `after_product_id` for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub next_after_day: Option<Day>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<i64>)]
    pub next_after_product_id: Option<ProductId>,
}

/// Confirmed sales by day and product from `reports.product_sales_daily`, in keyset pages over
/// its `(day, product_id)` key.
pub(crate) async fn sales_report(
    db: &Db,
    token: Option<Lsn>,
    filter: &SalesFilter,
) -> Result<SalesReport, Error> {
    let to = filter
        .to
        .map_or_else(|| OffsetDateTime::now_utc().date(), |d| d.0);
    let from = filter.from.map_or_else(
        || to.checked_sub(Duration::days(30)).unwrap_or(Date::MIN),
        |d| d.0,
    );
    // The page starts after a position (day, product): the cursor's, where a missing half
    // means the whole day or the first day, and never before the range's first day. Pages
    // are keyset scans of `(day, product_id)` (or `(product_id, day)` for one product), so
    // a long range costs no more per page than a short one.
    let first = ProductId::new(i64::MIN);
    let cursor = match (filter.after_day, filter.after_product_id) {
        (Some(day), Some(product)) => (day.0, product),
        (Some(day), None) => (day.0, ProductId::new(i64::MAX)),
        (None, Some(product)) => (from, product),
        (None, None) => (from, first),
    };
    let after = cursor.max((from, first));
    let size = filter.limit.unwrap_or_default();
    let limit = size.get();
    let product = filter.product_id;
    // One row comparison, so an index is scanned from the page's start and stops at the
    // limit: the key `(day, product_id)` for every product, `(product_id, day)` for one.
    let sql = if product.is_some() {
        "SELECT day, product_id, product_name, units, revenue_cents, orders
           FROM reports.product_sales_daily
          WHERE product_id = $4 AND (day, product_id) > ($1, $2) AND day <= $3
          ORDER BY day LIMIT $5"
    } else {
        "SELECT day, product_id, product_name, units, revenue_cents, orders
           FROM reports.product_sales_daily
          WHERE (day, product_id) > ($1, $2) AND day <= $3 AND $4::bigint IS NULL
          ORDER BY day, product_id LIMIT $5"
    };
    let rows = db
        .with_read(token, |client| async move {
            let statement = client.prepare_cached(sql).await?;
            Ok::<_, Error>(
                platform::db::timed(
                    "reports.sales_report",
                    client.query(&statement, &[&after.0, &after.1, &to, &product, &limit]),
                )
                .await?,
            )
        })
        .await?;
    let items: Vec<DailySales> = rows
        .iter()
        .map(|row| DailySales {
            day: Day(row.get(0)),
            product_id: row.get(1),
            product_name: row.get(2),
            units: row.get(3),
            revenue_cents: row.get(4),
            orders: row.get(5),
        })
        .collect();
    let Page {
        items,
        next_after: last,
    } = Page::keyset(items, size, |s| (s.day, s.product_id));
    Ok(SalesReport {
        items,
        next_after_day: last.map(|(day, _)| day),
        next_after_product_id: last.map(|(_, product)| product),
    })
}
