//! The reports routes: thin handlers over the read-model queries.

use axum::extract::{FromRef, State};
use contract::OrderPageRequest;
use identity::{CurrentUser, ReadToken, Sessions};
use platform::http::{Feature, Policy, Problem, Query, Routes};
use utoipa::OpenApi;

use crate::{
    CustomerStats, DailySales, Error, OrderHistory, OrderSummary, Reports, SalesFilter,
    SalesReport, query,
};

/// The read models (`/reports/*`): an operator can switch them off under load.
pub(crate) static REPORTS: Feature = Feature { name: "reports" };

/// The reports routes.
pub fn routes<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    Reports: FromRef<S>,
    Sessions: FromRef<S>,
{
    let policy = Policy::READ.switched_by(&REPORTS);
    Routes::new()
        .get("/reports/my-orders", my_orders, policy)
        .get("/reports/my-stats", my_stats, policy)
        .get("/reports/sales", sales, policy)
}

#[derive(Debug, OpenApi)]
#[openapi(
    paths(my_orders, my_stats, sales),
    components(schemas(OrderHistory, OrderSummary, CustomerStats, SalesReport, DailySales))
)]
pub struct ApiDoc;

/// The current user's order history from the read model, newest first, in keyset pages.
/// It trails the orders by the projection's lag; `GET /orders` reads the orders themselves.
#[utoipa::path(get, path = "/reports/my-orders", tag = "reports", params(OrderPageRequest),
    security(("session" = [])),
    responses((status = 200, body = OrderHistory), (status = 401, body = Problem)))]
async fn my_orders(
    State(reports): State<Reports>,
    user: CurrentUser,
    ReadToken(token): ReadToken,
    Query(page): Query<OrderPageRequest>,
) -> Result<axum::Json<OrderHistory>, Error> {
    Ok(axum::Json(
        query::order_history(&reports.db, token, user.id, &page).await?,
    ))
}

/// The current user's order totals.
#[utoipa::path(get, path = "/reports/my-stats", tag = "reports", security(("session" = [])),
    responses((status = 200, body = CustomerStats), (status = 401, body = Problem)))]
async fn my_stats(
    State(reports): State<Reports>,
    user: CurrentUser,
    ReadToken(token): ReadToken,
) -> Result<axum::Json<CustomerStats>, Error> {
    Ok(axum::Json(
        query::customer_stats(&reports.db, token, user.id).await?,
    ))
}

/// Confirmed sales by day (of placing, UTC) and product (admin).
#[utoipa::path(get, path = "/reports/sales", tag = "reports", params(SalesFilter),
    security(("session" = [])),
    responses((status = 200, body = SalesReport), (status = 400, body = Problem),
              (status = 403, body = Problem)))]
async fn sales(
    State(reports): State<Reports>,
    user: CurrentUser,
    ReadToken(token): ReadToken,
    Query(filter): Query<SalesFilter>,
) -> Result<axum::Json<SalesReport>, Problem> {
    user.require_admin()?;
    Ok(axum::Json(
        query::sales_report(&reports.db, token, &filter).await?,
    ))
}
