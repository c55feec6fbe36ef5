//! The reports routes: thin handlers over the read-model queries.

use accounts::{CurrentUser, ReadToken, Sessions};
use axum::{Router, extract::FromRef, extract::State, routing::get};
use platform::http::{Problem, Query};
use utoipa::OpenApi;

use crate::{
    CustomerStats, DailySales, Error, HistoryPageRequest, OrderHistory, OrderSummary, Reports,
    SalesFilter, SalesReport, query,
};

impl FromRef<Reports> for Sessions {
    fn from_ref(reports: &Reports) -> Sessions {
        reports.sessions.clone()
    }
}

pub fn router() -> Router<Reports> {
    Router::new()
        .route("/reports/my-orders", get(my_orders))
        .route("/reports/my-stats", get(my_stats))
        .route("/reports/sales", get(sales))
}

#[derive(Debug, OpenApi)]
#[openapi(
    paths(my_orders, my_stats, sales),
    components(schemas(OrderHistory, OrderSummary, CustomerStats, SalesReport, DailySales))
)]
pub struct ApiDoc;

/// The current user's order history from the read model, newest first, in keyset pages.
/// It trails the orders by the projection's lag; `GET /orders` reads the orders themselves.
#[utoipa::path(get, path = "/reports/my-orders", tag = "reports", params(HistoryPageRequest),
    security(("session" = [])),
    responses((status = 200, body = OrderHistory), (status = 401, body = Problem)))]
async fn my_orders(
    State(reports): State<Reports>,
    user: CurrentUser,
    ReadToken(token): ReadToken,
    Query(page): Query<HistoryPageRequest>,
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
