//! Connections and transactions whose statements survive a transaction-mode pooler.
//!
//! Directly connected, a statement is prepared once per connection and reused (a named
//! prepared statement). Through PgBouncer in transaction mode that breaks: consecutive
//! statements may run on different server connections, where the name means nothing (and
//! PgBouncer 1.18, Debian 12's, does not track prepared statements). There each statement
//! is sent with its text and its parameters' types in one unnamed round trip
//! (`query_typed`); the types are learned once per statement text from a session of its
//! own on the primary, and cached.

use std::{
    collections::HashMap,
    future::Future,
    ops::{Deref, DerefMut},
    sync::Arc,
};

use deadpool_postgres::GenericClient as _;
use tokio::sync::Mutex;
use tokio_postgres::{
    Error, Row, Statement,
    types::{ToSql, Type},
};

/// How statements reach PostgreSQL (`KEEL_DATABASE_POOLING`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, strum::IntoStaticStr)]
#[strum(serialize_all = "kebab-case")]
pub enum Pooling {
    /// Straight to PostgreSQL, or through a session-mode pooler: statements prepared once
    /// per connection.
    #[default]
    Direct,
    /// Through a transaction-mode pooler (PgBouncer's `pool_mode = transaction`): unnamed
    /// statements, and the statement timeout set in each transaction.
    Transaction,
}

/// A statement ready to run on one connection.
#[derive(Debug, Clone)]
pub enum Prepared {
    /// Prepared on this connection, cached by it.
    Named(Statement),
    /// Sent with its text each time.
    Unnamed { sql: Arc<str>, types: Arc<[Type]> },
}

/// Learns statements' parameter types on a session of its own, once per text.
#[derive(Debug)]
pub(crate) struct Describer {
    config: tokio_postgres::Config,
    session: Mutex<Option<tokio_postgres::Client>>,
    known: std::sync::RwLock<HashMap<String, Arc<[Type]>>>,
}

impl Describer {
    pub(crate) fn new(config: tokio_postgres::Config) -> Self {
        Self {
            config,
            session: Mutex::new(None),
            known: std::sync::RwLock::new(HashMap::new()),
        }
    }

    async fn types(&self, sql: &str) -> Result<Arc<[Type]>, Error> {
        if let Some(types) = self
            .known
            .read()
            .ok()
            .and_then(|known| known.get(sql).cloned())
        {
            return Ok(types);
        }
        let mut session = self.session.lock().await;
        if session
            .as_ref()
            .is_none_or(tokio_postgres::Client::is_closed)
        {
            let (client, connection) = self.config.connect(tokio_postgres::NoTls).await?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "statement describer's session ended");
                }
            });
            *session = Some(client);
        }
        let Some(client) = session.as_ref() else {
            unreachable!("connected above");
        };
        let types: Arc<[Type]> = client.prepare(sql).await?.params().into();
        if let Ok(mut known) = self.known.write() {
            known.insert(sql.to_owned(), types.clone());
        }
        Ok(types)
    }
}

/// A statement to run: its text, or one [`Client::prepare_cached`] returned.
pub trait Query: Sync {
    fn as_query(&self) -> QueryRef<'_>;
}

/// What a [`Query`] is.
#[derive(Debug, Clone, Copy)]
pub enum QueryRef<'a> {
    Text(&'a str),
    Prepared(&'a Prepared),
}

impl Query for str {
    fn as_query(&self) -> QueryRef<'_> {
        QueryRef::Text(self)
    }
}

impl Query for String {
    fn as_query(&self) -> QueryRef<'_> {
        QueryRef::Text(self)
    }
}

impl Query for Prepared {
    fn as_query(&self) -> QueryRef<'_> {
        QueryRef::Prepared(self)
    }
}

/// What runs statements: a pooled connection or a transaction on one. Written like
/// `deadpool_postgres::GenericClient`, so code reads the same whichever way it reaches the
/// server.
pub trait Client: Sync {
    /// Prepares `sql` once per connection (direct), or learns its parameter types once per
    /// process (transaction pooling).
    fn prepare_cached(&self, sql: &str) -> impl Future<Output = Result<Prepared, Error>> + Send;

    fn query(
        &self,
        statement: &(impl Query + ?Sized),
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Vec<Row>, Error>> + Send;

    fn query_one(
        &self,
        statement: &(impl Query + ?Sized),
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Row, Error>> + Send;

    fn query_opt(
        &self,
        statement: &(impl Query + ?Sized),
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Option<Row>, Error>> + Send;

    fn execute(
        &self,
        statement: &(impl Query + ?Sized),
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<u64, Error>> + Send;

    /// Statements without parameters, in the simple protocol (no statement is named).
    fn batch_execute(&self, sql: &str) -> impl Future<Output = Result<(), Error>> + Send;
}

fn typed<'a>(
    params: &'a [&'a (dyn ToSql + Sync)],
    types: &[Type],
) -> Vec<(&'a (dyn ToSql + Sync), Type)> {
    params.iter().copied().zip(types.iter().cloned()).collect()
}

/// What a statement is sent as on a connection with (or without) a describer.
enum Sending<'a> {
    Named(&'a Statement),
    Text(&'a str),
    Unnamed(&'a str, Arc<[Type]>),
}

async fn resolve<'a>(
    describer: Option<&Describer>,
    statement: QueryRef<'a>,
) -> Result<Sending<'a>, Error> {
    Ok(match (statement, describer) {
        (QueryRef::Prepared(Prepared::Named(statement)), _) => Sending::Named(statement),
        (QueryRef::Prepared(Prepared::Unnamed { sql, types }), _) => {
            Sending::Unnamed(sql, types.clone())
        }
        (QueryRef::Text(sql), None) => Sending::Text(sql),
        (QueryRef::Text(sql), Some(describer)) => {
            Sending::Unnamed(sql, describer.types(sql).await?)
        }
    })
}

/// The [`Client`] methods of a wrapper whose `inner` is a `deadpool_postgres` client or
/// transaction (both offer the same methods, named and `_typed`), inherent so that code
/// holding the concrete type needs no import, and the trait on top.
macro_rules! client {
    ($type:ty) => {
        impl $type {
            pub async fn prepare_cached(&self, sql: &str) -> Result<Prepared, Error> {
                match &self.describer {
                    None => Ok(Prepared::Named(self.inner.prepare_cached(sql).await?)),
                    Some(describer) => Ok(Prepared::Unnamed {
                        sql: sql.into(),
                        types: describer.types(sql).await?,
                    }),
                }
            }

            pub async fn query(
                &self,
                statement: &(impl Query + ?Sized),
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Vec<Row>, Error> {
                match resolve(self.describer.as_deref(), statement.as_query()).await? {
                    Sending::Named(statement) => self.inner.query(statement, params).await,
                    Sending::Text(sql) => self.inner.query(sql, params).await,
                    Sending::Unnamed(sql, types) => {
                        self.inner.query_typed(sql, &typed(params, &types)).await
                    }
                }
            }

            pub async fn query_one(
                &self,
                statement: &(impl Query + ?Sized),
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Row, Error> {
                match resolve(self.describer.as_deref(), statement.as_query()).await? {
                    Sending::Named(statement) => self.inner.query_one(statement, params).await,
                    Sending::Text(sql) => self.inner.query_one(sql, params).await,
                    Sending::Unnamed(sql, types) => {
                        self.inner
                            .query_typed_one(sql, &typed(params, &types))
                            .await
                    }
                }
            }

            pub async fn query_opt(
                &self,
                statement: &(impl Query + ?Sized),
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Option<Row>, Error> {
                match resolve(self.describer.as_deref(), statement.as_query()).await? {
                    Sending::Named(statement) => self.inner.query_opt(statement, params).await,
                    Sending::Text(sql) => self.inner.query_opt(sql, params).await,
                    Sending::Unnamed(sql, types) => {
                        self.inner
                            .query_typed_opt(sql, &typed(params, &types))
                            .await
                    }
                }
            }

            pub async fn execute(
                &self,
                statement: &(impl Query + ?Sized),
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<u64, Error> {
                match resolve(self.describer.as_deref(), statement.as_query()).await? {
                    Sending::Named(statement) => self.inner.execute(statement, params).await,
                    Sending::Text(sql) => self.inner.execute(sql, params).await,
                    Sending::Unnamed(sql, types) => {
                        self.inner.execute_typed(sql, &typed(params, &types)).await
                    }
                }
            }

            pub async fn batch_execute(&self, sql: &str) -> Result<(), Error> {
                self.inner.batch_execute(sql).await
            }
        }

        impl Client for $type {
            fn prepare_cached(
                &self,
                sql: &str,
            ) -> impl Future<Output = Result<Prepared, Error>> + Send {
                <$type>::prepare_cached(self, sql)
            }

            fn query(
                &self,
                statement: &(impl Query + ?Sized),
                params: &[&(dyn ToSql + Sync)],
            ) -> impl Future<Output = Result<Vec<Row>, Error>> + Send {
                <$type>::query(self, statement, params)
            }

            fn query_one(
                &self,
                statement: &(impl Query + ?Sized),
                params: &[&(dyn ToSql + Sync)],
            ) -> impl Future<Output = Result<Row, Error>> + Send {
                <$type>::query_one(self, statement, params)
            }

            fn query_opt(
                &self,
                statement: &(impl Query + ?Sized),
                params: &[&(dyn ToSql + Sync)],
            ) -> impl Future<Output = Result<Option<Row>, Error>> + Send {
                <$type>::query_opt(self, statement, params)
            }

            fn execute(
                &self,
                statement: &(impl Query + ?Sized),
                params: &[&(dyn ToSql + Sync)],
            ) -> impl Future<Output = Result<u64, Error>> + Send {
                <$type>::execute(self, statement, params)
            }

            fn batch_execute(&self, sql: &str) -> impl Future<Output = Result<(), Error>> + Send {
                <$type>::batch_execute(self, sql)
            }
        }
    };
}

/// A connection from a pool, to the primary, a replica or a pooler.
#[derive(Debug)]
pub struct Connection {
    pub(crate) inner: deadpool_postgres::Object,
    /// Set when statements go unnamed (transaction pooling).
    pub(crate) describer: Option<Arc<Describer>>,
    /// The statement timeout each transaction sets for itself (transaction pooling).
    pub(crate) statement_timeout_ms: u128,
}

client!(Connection);

impl Connection {
    /// Starts a transaction. Through a transaction-mode pooler its first statement sets the
    /// statement timeout (a session setting would stay on the server connection, not with
    /// this client).
    pub async fn transaction(&mut self) -> Result<Transaction<'_>, Error> {
        let describer = self.describer.clone();
        let timeout = self.statement_timeout_ms;
        let inner = self.inner.transaction().await?;
        if describer.is_some() {
            inner
                .batch_execute(&format!("SET LOCAL statement_timeout = {timeout}"))
                .await?;
        }
        Ok(Transaction { inner, describer })
    }

    /// Whether the server connection is gone.
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// The connection as tokio-postgres has it, for what only a session can do (`COPY`,
    /// advisory locks, migrations): on a connection from [`super::Db::session`] only.
    pub fn raw(&self) -> &tokio_postgres::Client {
        self.inner.deref()
    }

    /// [`Connection::raw`], mutably (for its own transactions).
    pub fn raw_mut(&mut self) -> &mut tokio_postgres::Client {
        self.inner.deref_mut()
    }
}

/// A transaction on a [`Connection`]; rolled back if dropped uncommitted.
#[derive(Debug)]
pub struct Transaction<'a> {
    inner: deadpool_postgres::Transaction<'a>,
    describer: Option<Arc<Describer>>,
}

client!(Transaction<'_>);

impl Transaction<'_> {
    pub async fn commit(self) -> Result<(), Error> {
        self.inner.commit().await
    }

    pub async fn rollback(self) -> Result<(), Error> {
        self.inner.rollback().await
    }
}
