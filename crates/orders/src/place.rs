//! Placing an order: stock reserved, prices fixed, the order and its `OrderPlaced` event
//! written in one transaction, at most once per idempotency key; then the saga takes over,
//! in the worker (async mode) or right here (sync mode).

use catalog::ProductCache;
use contract::{OrderPlaced, ProductId, UserId};
use identity::CurrentUser;
use platform::db::Client;
use std::time::Duration;

use axum::http::StatusCode;
use platform::{
    ErrorChain, InfraError,
    bus::outbox,
    db::Db,
    idempotency::{self, Claim, IdempotencyKey, Lease, Pending, StoredResponse},
};
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use utoipa::ToSchema;

use crate::{
    Error, Order, OrderId, OrderLine, OrderStatus,
    lines::{LineRequest, Lines},
    query,
    saga::{OrderMode, Progress, Runner, Saga},
};

/// An order to place. Prices, totals and status are the server's: unknown fields such as
/// `price` or `status` are rejected.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlaceOrder {
    #[schema(value_type = Vec<LineRequest>, min_items = 1, max_items = 50)]
    pub lines: Lines,
}

/// Who places an order: the customer's id, and the name the order's event records (so read
/// models need not ask the accounts module).
#[derive(Debug, Clone)]
pub(crate) struct Customer {
    pub id: UserId,
    pub name: Option<String>,
}

impl From<&CurrentUser> for Customer {
    fn from(user: &CurrentUser) -> Self {
        Self {
            id: user.id,
            name: user.name.clone(),
        }
    }
}

/// The outcome of [`place_order_once`].
#[derive(Debug)]
pub(crate) enum Placed {
    /// A new order and its response, as stored for replays.
    Created(StoredResponse),
    /// The key was used for this request before: its stored response.
    Replayed(StoredResponse),
}

/// Places the order for `customer`, or replays the response of the request that used `key`
/// before. Only a successful order's response is stored: a request that failed changed
/// nothing, and the same key may run it again. After the commit, the ordered products'
/// cached pages (which show stock) are invalidated.
///
/// In async mode the answer is 202 with the order as stored; in sync mode the saga runs
/// first and the answer is 201 with the order as the saga left it (and the stored response
/// is brought up to date, so a replay shows the outcome too).
pub(crate) async fn place_order_once(
    db: &Db,
    products: &ProductCache,
    saga: &Saga,
    customer: &Customer,
    key: Option<(&IdempotencyKey, Lease)>,
    request: &PlaceOrder,
) -> Result<Placed, Error> {
    let mut client = db.write().await?;
    let pending = match key {
        Some((key, lease)) => {
            let fingerprint = idempotency::fingerprint("POST /orders", request)?;
            let scope = format!("user:{}", customer.id);
            match idempotency::claim(&client, &scope, key, &fingerprint, lease).await? {
                Claim::Fresh(pending) => Some(pending),
                Claim::Replay(stored) => return Ok(Placed::Replayed(stored)),
            }
        }
        None => None,
    };
    let sync = saga.config().order_mode == OrderMode::Sync;
    let lease = sync.then_some(saga.config().saga_lease);
    let outcome = async {
        let tx = client.transaction().await?;
        let order = place_order(&tx, customer, request, lease).await?;
        let response = StoredResponse {
            status: if sync {
                StatusCode::CREATED
            } else {
                StatusCode::ACCEPTED
            },
            location: Some(format!("/orders/{}", order.id)),
            body: serde_json::to_vec(&order).map_err(InfraError::unexpected)?,
        };
        if let Some(pending) = &pending {
            pending.complete(&tx, &response).await?;
        }
        tx.commit().await?;
        Ok::<_, Error>((order.id, response))
    }
    .await;
    if outcome.is_ok() {
        let written_at = db.written_at(&client).await;
        products
            .invalidate(
                written_at,
                request.lines.products().iter().map(|l| l.product_id),
            )
            .await;
    }
    if let (Err(_), Some(pending)) = (&outcome, &pending) {
        if let Err(e) = pending.release(&client).await {
            tracing::warn!(error = %ErrorChain(&e), "could not release an idempotency key; it expires on its own");
        }
    }
    let (id, response) = outcome?;
    drop(client);
    if !sync {
        return Ok(Placed::Created(response));
    }
    // The order is committed. A client that hangs up now (or the request timeout) drops
    // this future, so the saga runs on a task of its own: it is never cut off half-way, and
    // a retry with the key replays its outcome.
    let finishing = tokio::spawn(
        run_inline(db.clone(), saga.clone(), id, response, pending)
            .instrument(tracing::Span::current()),
    );
    let response = finishing
        .await
        .map_err(|e| Error::from(InfraError::unexpected(e)))??;
    Ok(Placed::Created(response))
}

/// Sync mode, after the commit: runs the saga and answers with the order as it left it,
/// stored on the idempotency key too so that a replay shows the outcome.
async fn run_inline(
    db: Db,
    saga: Saga,
    id: OrderId,
    placed: StoredResponse,
    pending: Option<Pending>,
) -> Result<StoredResponse, Error> {
    let runner = Runner {
        inline: true,
        delivery: None,
        last_attempt: false,
    };
    // A saga that cannot finish here (a refund the provider cannot take yet, a database
    // hiccup) is finished by the worker once the lease lapses, and the client is shown the
    // order as it stands.
    match saga.run(id, runner).await {
        Ok(Progress::Finished(_)) => {}
        Ok(Progress::Waiting(_)) => {
            tracing::info!(order = %id, "sync saga left the order to the worker")
        }
        Err(e) => {
            tracing::warn!(order = %id, error = %ErrorChain(&e), "sync saga stopped; the worker resumes it")
        }
    }
    let order = query::get_order_by_id(&db, id).await?;
    let response = StoredResponse {
        body: serde_json::to_vec(&order).map_err(InfraError::unexpected)?,
        ..placed
    };
    if let Some(pending) = &pending {
        if let Err(e) = pending.complete(&db.write().await?, &response).await {
            tracing::warn!(error = %ErrorChain(&e), "could not store the final response; replays show the placed order");
        }
    }
    Ok(response)
}

/// Writes the order inside `tx`: reserves the stock, fixes each line's price, inserts the
/// order with its lines and first history, and appends `OrderPlaced` to the outbox. With a
/// `lease`, the caller runs the saga itself and the worker leaves the order alone that long.
pub(crate) async fn place_order(
    tx: &impl Client,
    customer: &Customer,
    request: &PlaceOrder,
    lease: Option<Duration>,
) -> Result<Order, Error> {
    let lines = &request.lines;
    let reserved = catalog::reserve_stock(tx, lines.products())
        .await
        .map_err(|e| lines.as_sent(e))?;

    let total_cents: i64 = reserved
        .iter()
        .map(|r| r.unit_price_cents * i64::from(r.quantity.get()))
        .sum();
    let line_nos: Vec<i16> = (1..).take(reserved.len()).collect();
    let product_ids: Vec<ProductId> = reserved.iter().map(|r| r.product_id).collect();
    let names: Vec<&str> = reserved.iter().map(|r| r.name.as_str()).collect();
    let quantities: Vec<i32> = reserved.iter().map(|r| r.quantity.get()).collect();
    let prices: Vec<i64> = reserved.iter().map(|r| r.unit_price_cents).collect();

    let insert = tx
        .prepare_cached(
            "WITH o AS (
                INSERT INTO orders.orders (user_id, total_cents, status, saga_lease_until)
                VALUES ($1, $2, 'stock_reserved', now() + $8::float8 * interval '1 second')
                RETURNING id, status, created_at
             ), h AS (
                INSERT INTO orders.order_history (order_id, status, at)
                SELECT o.id, s.status, o.created_at FROM o,
                       (VALUES ('placed'), ('stock_reserved')) AS s (status)
             ), l AS (
                INSERT INTO orders.order_lines
                       (order_id, line_no, product_id, product_name, quantity, unit_price_cents)
                SELECT o.id, l.* FROM o,
                       unnest($3::smallint[], $4::bigint[], $5::text[], $6::integer[], $7::bigint[])
                       AS l (line_no, product_id, product_name, quantity, unit_price_cents)
             )
             SELECT id, status, created_at FROM o",
        )
        .await?;
    let row = platform::db::timed(
        "orders.insert_order",
        tx.query_one(
            &insert,
            &[
                &customer.id,
                &total_cents,
                &line_nos,
                &product_ids,
                &names,
                &quantities,
                &prices,
                &lease.map(|l| l.as_secs_f64()),
            ],
        ),
    )
    .await?;
    let order = Order {
        id: row.get(0),
        status: OrderStatus::parse(row.get(1))
            .ok_or_else(|| InfraError::unexpected("new order with an unknown status"))?,
        cancel_reason: None,
        total_cents,
        created_at: row.get(2),
        lines: reserved
            .into_iter()
            .map(|r| OrderLine {
                product_id: r.product_id,
                product_name: r.name,
                quantity: r.quantity.get(),
                unit_price_cents: r.unit_price_cents,
            })
            .collect(),
        history: None,
    };
    outbox::append(
        tx,
        &OrderPlaced {
            order_id: order.id,
            user_id: customer.id,
            customer_name: customer.name.clone(),
            placed_at: Some(order.created_at),
            total_cents,
            lines: order.lines.clone(),
        },
    )
    .await?;
    Ok(order)
}
