//! The orders routes: thin handlers over the service functions.

use axum::{
    extract::{FromRef, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use contract::OrderPageRequest;
use identity::{CurrentUser, ReadToken, Sessions};
use platform::{
    http::{IdPath, Json, Path, Policy, Problem, Query, Routes},
    idempotency::{IdempotencyKey, IdempotencyKeyHeader},
};
use utoipa::OpenApi;

use crate::{
    Error, HistoryEntry, LineRequest, Order, OrderId, OrderLine, OrderPage, OrderStatus, Orders,
    PlaceOrder, Placed, place, query,
};

/// The orders routes: a customer's own orders.
pub fn routes<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    Orders: FromRef<S>,
    Sessions: FromRef<S>,
{
    Routes::new()
        .get("/orders", list, Policy::READ)
        .post("/orders", place_order, Policy::WRITE)
        .get("/orders/{id}", show, Policy::READ)
        .post("/orders/{id}/cancel", cancel, Policy::WRITE)
}

#[derive(Debug, OpenApi)]
#[openapi(
    paths(place_order, list, show, cancel),
    components(schemas(
        Order,
        OrderLine,
        OrderStatus,
        HistoryEntry,
        OrderPage,
        PlaceOrder,
        LineRequest
    ))
)]
pub struct ApiDoc;

/// Place an order for the current user: its stock is reserved at once, then the saga takes
/// it through payment and shipment. Lines of one product are ordered as one line with their
/// total. Send an `Idempotency-Key` header to retry safely.
#[utoipa::path(post, path = "/orders", tag = "orders", request_body = PlaceOrder,
    params(IdempotencyKeyHeader),
    security(("session" = [])),
    responses((status = 202, description = "async mode: placed; follow Location for its progress", body = Order),
              (status = 201, description = "sync mode: the saga ran; the order is confirmed or cancelled", body = Order),
              (status = 401, body = Problem),
              (status = 409, description = "not enough stock, a product the catalog does not hold, or the same key in flight", body = Problem),
              (status = 422, description = "invalid field, or the key reused with another body", body = Problem)))]
async fn place_order(
    State(orders): State<Orders>,
    user: CurrentUser,
    headers: HeaderMap,
    Json(request): Json<PlaceOrder>,
) -> Result<Response, Problem> {
    let key = IdempotencyKey::from_headers(&headers)?;
    let placed = place::place_order_once(
        &orders.db,
        &orders.products,
        &orders.saga,
        &(&user).into(),
        key.as_ref().map(|key| (key, orders.claims)),
        &request,
    )
    .await?;
    match placed {
        Placed::Created(response) => Ok(response.into_response()),
        Placed::Replayed(stored) => Ok(stored.replayed()),
    }
}

/// The current user's orders, newest first.
#[utoipa::path(get, path = "/orders", tag = "orders", params(OrderPageRequest),
    security(("session" = [])),
    responses((status = 200, body = OrderPage), (status = 401, body = Problem)))]
async fn list(
    State(orders): State<Orders>,
    user: CurrentUser,
    ReadToken(token): ReadToken,
    Query(page): Query<OrderPageRequest>,
) -> Result<axum::Json<OrderPage>, Error> {
    Ok(axum::Json(
        query::list_orders(&orders.db, token, user.id, &page).await?,
    ))
}

/// One of the current user's orders, with its history.
#[utoipa::path(get, path = "/orders/{id}", tag = "orders", params(("id" = i64, Path)),
    security(("session" = [])),
    responses((status = 200, body = Order), (status = 404, body = Problem)))]
async fn show(
    State(orders): State<Orders>,
    user: CurrentUser,
    ReadToken(token): ReadToken,
    Path(IdPath { id }): Path<IdPath<OrderId>>,
) -> Result<axum::Json<Order>, Error> {
    Ok(axum::Json(
        query::get_order(&orders.db, token, user.id, id).await?,
    ))
}

/// Cancel one of the current user's orders, until it ships. The saga refunds the payment and
/// releases the stock; follow the order for the outcome.
#[utoipa::path(post, path = "/orders/{id}/cancel", tag = "orders", params(("id" = i64, Path)),
    security(("session" = [])),
    responses((status = 202, body = Order), (status = 404, body = Problem),
              (status = 409, description = "already shipped", body = Problem)))]
async fn cancel(
    State(orders): State<Orders>,
    user: CurrentUser,
    Path(IdPath { id }): Path<IdPath<OrderId>>,
) -> Result<(axum::http::StatusCode, axum::Json<Order>), Error> {
    let order = crate::request_cancellation(&orders.db, user.id, id).await?;
    Ok((axum::http::StatusCode::ACCEPTED, axum::Json(order)))
}
