//! `spawn_app()` and the requests every test makes.

mod cluster;
mod formation;
mod order_set;
pub mod relay;
mod setup;
pub mod shoppers;

pub use cluster::{Cluster, execute, text};
pub use formation::Formation;
pub use order_set::OrderSet;
pub use setup::*;

use std::time::Duration;

use keel::{Application, Config};
use platform::db::Db;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use uuid::Uuid;

pub struct TestApp {
    pub address: String,
    pub config: Config,
    pub cache: platform::cache::Cache,
    pub client: reqwest::Client,
    pub db: Db,
    database_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    pub served: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// Starts the very application `keel serve` runs, on a random port, with its own database.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(test_config(create_database().await)).await
}

/// Starts the application with a configuration of the test's own.
pub async fn spawn_app_with(config: Config) -> TestApp {
    let app = Application::build(&config)
        .await
        .expect("application starts");
    let address = format!("http://{}", app.local_addr());
    let cache = app.cache().clone();
    let (shutdown, signal) = oneshot::channel();
    let served = tokio::spawn(app.run_until(async {
        let _ = signal.await;
    }));
    TestApp {
        address,
        config: config.clone(),
        cache,
        client: reqwest::Client::new(),
        db: Db::connect(&config.db).expect("test pool"),
        database_url: config
            .db
            .direct_url
            .clone()
            .unwrap_or_else(|| config.db.url.clone()),
        shutdown: Some(shutdown),
        served: Some(served),
    }
}

impl TestApp {
    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Sends SIGTERM's equivalent: the server stops accepting and drains.
    pub fn shut_down(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request sent")
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        let mut request = self.client.post(self.url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request sent")
    }

    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: &Value,
    ) -> Response {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// Registers a customer with a unique email; returns the email.
    pub async fn register(&self) -> String {
        let email = format!("{}@example.com", Uuid::new_v4().simple());
        let response = self
            .post(
                "/accounts",
                None,
                &json!({ "email": email, "name": "Test Customer", "password": "correct horse battery" }),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        email
    }

    pub async fn login(&self, email: &str) -> String {
        let response = self
            .post(
                "/sessions",
                None,
                &json!({ "email": email, "password": "correct horse battery" }),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        body(response).await["token"].as_str().unwrap().to_owned()
    }

    /// A logged-in customer's token.
    pub async fn customer(&self) -> String {
        let email = self.register().await;
        self.login(&email).await
    }

    /// A logged-in admin's token.
    pub async fn admin(&self) -> String {
        let email = self.register().await;
        let email_parsed = accounts::Email::parse(&email).unwrap();
        accounts::promote_to_admin(&self.db, &email_parsed)
            .await
            .unwrap();
        self.login(&email).await
    }

    /// Creates a product through the API; returns its id.
    pub async fn product(&self, admin: &str, price_cents: i64, stock: i32) -> i64 {
        let sku = format!("T-{}", &Uuid::new_v4().simple().to_string()[..12]);
        let response = self
            .post(
                "/products",
                Some(admin),
                &json!({ "sku": sku, "name": "Test product", "category": "tests",
                          "price_cents": price_cents, "stock": stock }),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        body(response).await["id"].as_i64().unwrap()
    }

    /// Stock on hand, read straight from the database.
    pub async fn stock(&self, product_id: i64) -> i32 {
        let client = self.db.write().await.unwrap();
        client
            .query_one(
                "SELECT on_hand FROM catalog.stock WHERE product_id = $1",
                &[&product_id],
            )
            .await
            .unwrap()
            .get(0)
    }

    pub async fn count(&self, sql: &str) -> i64 {
        let client = self.db.write().await.unwrap();
        client.query_one(sql, &[]).await.unwrap().get(0)
    }
}

/// A stock row held `FOR UPDATE` by a transaction of the test's own, so that a request
/// touching it waits inside its own transaction until [`StockLock::release`].
pub struct StockLock(tokio_postgres::Client);

impl StockLock {
    pub async fn release(self) {
        self.0.batch_execute("ROLLBACK").await.unwrap();
    }
}

impl TestApp {
    pub async fn lock_stock(&self, product_id: i64) -> StockLock {
        let (client, connection) =
            tokio_postgres::connect(&self.database_url, tokio_postgres::NoTls)
                .await
                .unwrap();
        tokio::spawn(connection);
        client
            .batch_execute(&format!(
                "BEGIN; SELECT 1 FROM catalog.stock WHERE product_id = {product_id} FOR UPDATE"
            ))
            .await
            .unwrap();
        StockLock(client)
    }
}

impl TestApp {
    /// Statements of the app's that wait on a lock now.
    pub async fn lock_waiters(&self) -> i64 {
        self.count(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .await
    }

    /// Sessions other than the asker's that are running a statement or hold a transaction
    /// open: none means nothing of the app's can still write.
    pub async fn busy_sessions(&self) -> i64 {
        self.count(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND pid <> pg_backend_pid()
                AND backend_type = 'client backend' AND state <> 'idle'",
        )
        .await
    }
}

pub async fn body(response: Response) -> Value {
    response.json().await.expect("JSON body")
}

/// Asserts `response` is a problem with `status`; returns the problem.
pub async fn problem(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json",
        "errors are problem+json"
    );
    let problem = body(response).await;
    assert_eq!(problem["status"], status.as_u16());
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .starts_with("urn:keel:problem:")
    );
    problem
}

/// The `field` of the problem's first field error.
pub fn field(problem: &Value) -> &str {
    problem["errors"][0]["field"].as_str().unwrap_or_default()
}

impl TestApp {
    /// Polls the order until its saga ends (confirmed or cancelled); returns it.
    pub async fn wait_for_final(&self, token: &str, id: i64, within: Duration) -> Value {
        let deadline = std::time::Instant::now() + within;
        loop {
            let order = body(self.get(&format!("/orders/{id}"), Some(token)).await).await;
            let status = order["status"].as_str().unwrap_or_default().to_owned();
            if status == "confirmed" || status == "cancelled" {
                return order;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "order {id} still {status} after {within:?}: {order}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Places an order of `quantity` of `product`; returns the response.
    pub async fn order(&self, token: &str, product: i64, quantity: i32) -> Response {
        self.post(
            "/orders",
            Some(token),
            &json!({ "lines": [ { "product_id": product, "quantity": quantity } ] }),
        )
        .await
    }
}

/// Runs `check` every 50 ms until it holds; fails with `what` once `within` has passed.
pub async fn eventually(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + within;
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A port nothing listens on now, for a server a test starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something listens on `port` (a server the test started).
pub async fn wait_for_port(port: u16, what: &str) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what} did not start on {port}");
}

/// The machine the tests share: tests that measure where time goes (`keel diagnose`) hold it
/// exclusively, tests that load it hard (their own PostgreSQL clusters, order bursts, killed
/// processes) hold it shared, so on a two-core CI machine the two never overlap.
pub static MACHINE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());
