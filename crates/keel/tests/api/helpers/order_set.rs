//! Jepsen's set workload, for orders: what the clients were told against what the system
//! holds once every saga has ended. Fault tests record each answer, then `check` asserts
//! that no acknowledged order was lost, none appeared that no client may have placed,
//! every order ended, stock is conserved to the unit, and money moved once per order.

use std::{collections::HashMap, time::Duration};

use serde_json::Value;

/// What the clients of one run were told.
#[derive(Debug, Default)]
pub struct OrderSet {
    /// Orders answered with 2xx (a replay of a key repeats its order's id).
    acknowledged: Vec<i64>,
    /// Requests that got no answer: each may or may not have placed an order.
    indeterminate: usize,
    /// The products ordered and their units on hand before the run.
    stock: Vec<(i64, i32)>,
}

/// What `check` found, for the reliability table.
#[derive(Debug, PartialEq, Eq)]
pub struct Verdict {
    pub acknowledged: usize,
    pub orders: usize,
    pub confirmed: usize,
    pub cancelled: usize,
    /// Orders placed by requests that got no answer.
    pub unanswered: usize,
}

impl OrderSet {
    /// A run over `products`, each `(id, units on hand before the run)`.
    pub fn new(products: &[(i64, i32)]) -> Self {
        Self {
            stock: products.to_vec(),
            ..Self::default()
        }
    }

    /// A 2xx answer carrying the order's id.
    pub fn acknowledged(&mut self, id: i64) {
        self.acknowledged.push(id);
    }

    /// A request that got no answer (a reset connection, a timeout).
    pub fn indeterminate(&mut self) {
        self.indeterminate += 1;
    }

    /// Waits up to `within` for every order to end, then checks the run; `provider` is the
    /// payment provider's URL when the run's orders were charged. Panics on any violation.
    pub async fn check(
        &self,
        database_url: &str,
        provider: Option<&str>,
        within: Duration,
    ) -> Verdict {
        let db = connect(database_url).await;
        let unfinished =
            "SELECT count(*) FROM orders.orders WHERE status NOT IN ('confirmed', 'cancelled')";
        super::eventually("every order to end", within, async || {
            db.query_one(unfinished, &[])
                .await
                .unwrap()
                .get::<_, i64>(0)
                == 0
        })
        .await;
        self.verify(&db, provider).await
    }

    /// Checks a run whose orders were placed and not taken further (no worker ran): none
    /// lost, none unexpected, their stock reserved to the unit.
    pub async fn check_placed(&self, database_url: &str) -> Verdict {
        self.verify(&connect(database_url).await, None).await
    }

    async fn verify(&self, db: &tokio_postgres::Client, provider: Option<&str>) -> Verdict {
        let orders: HashMap<i64, String> = db
            .query("SELECT id, status FROM orders.orders", &[])
            .await
            .unwrap()
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        let lost: Vec<i64> = self
            .acknowledged
            .iter()
            .copied()
            .filter(|id| !orders.contains_key(id))
            .collect();
        assert!(lost.is_empty(), "acknowledged orders lost: {lost:?}");
        let mut acknowledged = self.acknowledged.clone();
        acknowledged.sort_unstable();
        acknowledged.dedup();
        let unanswered = orders.len() - acknowledged.len();
        assert!(
            unanswered <= self.indeterminate,
            "{unanswered} orders no client was told of, but only {} requests went unanswered \
             (an order placed twice?)",
            self.indeterminate
        );

        for &(product, before) in &self.stock {
            let row = db
                .query_one(
                    "SELECT s.on_hand::bigint,
                            coalesce((SELECT sum(l.quantity) FROM orders.order_lines l
                                        JOIN orders.orders o ON o.id = l.order_id
                                       WHERE l.product_id = $1 AND o.status <> 'cancelled'), 0)::bigint
                       FROM catalog.stock s WHERE s.product_id = $1",
                    &[&product],
                )
                .await
                .unwrap();
            let (on_hand, sold): (i64, i64) = (row.get(0), row.get(1));
            assert_eq!(
                on_hand + sold,
                i64::from(before),
                "product {product}: {on_hand} on hand and {sold} sold, from {before}"
            );
        }

        if let Some(provider) = provider {
            let charges: Vec<Value> = reqwest::get(format!("{provider}/charges"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let mut captured: HashMap<i64, usize> = HashMap::new();
            for charge in &charges {
                if charge["status"] == "captured" {
                    let reference = charge["reference"].as_str().unwrap().parse().unwrap();
                    *captured.entry(reference).or_default() += 1;
                }
            }
            for (id, status) in &orders {
                let held = captured.get(id).copied().unwrap_or(0);
                let expected = usize::from(status == "confirmed");
                assert_eq!(
                    held, expected,
                    "order {id} ({status}) holds {held} captured charges"
                );
            }
        }

        let count = |status: &str| orders.values().filter(|s| *s == status).count();
        let verdict = Verdict {
            acknowledged: acknowledged.len(),
            orders: orders.len(),
            confirmed: count("confirmed"),
            cancelled: count("cancelled"),
            unanswered,
        };
        eprintln!("order set: {verdict:?}, lost 0, duplicated 0, double charges 0");
        verdict
    }
}

async fn connect(database_url: &str) -> tokio_postgres::Client {
    let (db, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
        .await
        .expect("the checker connects");
    tokio::spawn(connection);
    db
}
