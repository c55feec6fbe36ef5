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
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use deadpool_postgres::GenericClient as _;
use tokio_postgres::{
    Error, Row, Statement,
    types::{ToSql, Type},
};

use super::{
    deadline::{QueryError, Watch},
    describer::Describer,
    pool::{Conn, Manager},
    statement::{Prepared, Query, QueryRef},
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

/// What runs statements: a pooled connection or a transaction on one. Written like
/// `deadpool_postgres::GenericClient`, so code reads the same whichever way it reaches the
/// server.
pub trait Client: Sync {
    /// Prepares `sql` once per connection (direct), or learns its parameter types once per
    /// process (transaction pooling).
    fn prepare_cached(
        &self,
        sql: &str,
    ) -> impl Future<Output = Result<Prepared, QueryError>> + Send;

    fn query(
        &self,
        statement: &(impl Query + ?Sized),
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Vec<Row>, QueryError>> + Send;

    fn query_one(
        &self,
        statement: &(impl Query + ?Sized),
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Row, QueryError>> + Send;

    fn query_opt(
        &self,
        statement: &(impl Query + ?Sized),
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Option<Row>, QueryError>> + Send;

    fn execute(
        &self,
        statement: &(impl Query + ?Sized),
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<u64, QueryError>> + Send;

    /// Statements without parameters, in the simple protocol (no statement is named).
    fn batch_execute(&self, sql: &str) -> impl Future<Output = Result<(), QueryError>> + Send;
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
            pub async fn prepare_cached(&self, sql: &str) -> Result<Prepared, QueryError> {
                let (watch, abandoned) = self.watch();
                watch
                    .bounded(abandoned, async {
                        match &self.describer {
                            None => Ok(Prepared::Named(self.pg().prepare_cached(sql).await?)),
                            Some(describer) => Ok(Prepared::Unnamed {
                                sql: sql.into(),
                                types: describer.types(sql).await?,
                            }),
                        }
                    })
                    .await
            }

            pub async fn query(
                &self,
                statement: &(impl Query + ?Sized),
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Vec<Row>, QueryError> {
                let (watch, abandoned) = self.watch();
                watch
                    .bounded(abandoned, async {
                        match resolve(self.describer.as_deref(), statement.as_query()).await? {
                            Sending::Named(statement) => self.pg().query(statement, params).await,
                            Sending::Text(sql) => self.pg().query(sql, params).await,
                            Sending::Unnamed(sql, types) => {
                                self.pg().query_typed(sql, &typed(params, &types)).await
                            }
                        }
                    })
                    .await
            }

            pub async fn query_one(
                &self,
                statement: &(impl Query + ?Sized),
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Row, QueryError> {
                let (watch, abandoned) = self.watch();
                watch
                    .bounded(abandoned, async {
                        match resolve(self.describer.as_deref(), statement.as_query()).await? {
                            Sending::Named(statement) => {
                                self.pg().query_one(statement, params).await
                            }
                            Sending::Text(sql) => self.pg().query_one(sql, params).await,
                            Sending::Unnamed(sql, types) => {
                                self.pg().query_typed_one(sql, &typed(params, &types)).await
                            }
                        }
                    })
                    .await
            }

            pub async fn query_opt(
                &self,
                statement: &(impl Query + ?Sized),
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Option<Row>, QueryError> {
                let (watch, abandoned) = self.watch();
                watch
                    .bounded(abandoned, async {
                        match resolve(self.describer.as_deref(), statement.as_query()).await? {
                            Sending::Named(statement) => {
                                self.pg().query_opt(statement, params).await
                            }
                            Sending::Text(sql) => self.pg().query_opt(sql, params).await,
                            Sending::Unnamed(sql, types) => {
                                self.pg().query_typed_opt(sql, &typed(params, &types)).await
                            }
                        }
                    })
                    .await
            }

            pub async fn execute(
                &self,
                statement: &(impl Query + ?Sized),
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<u64, QueryError> {
                let (watch, abandoned) = self.watch();
                watch
                    .bounded(abandoned, async {
                        match resolve(self.describer.as_deref(), statement.as_query()).await? {
                            Sending::Named(statement) => self.pg().execute(statement, params).await,
                            Sending::Text(sql) => self.pg().execute(sql, params).await,
                            Sending::Unnamed(sql, types) => {
                                self.pg().execute_typed(sql, &typed(params, &types)).await
                            }
                        }
                    })
                    .await
            }

            pub async fn batch_execute(&self, sql: &str) -> Result<(), QueryError> {
                let (watch, abandoned) = self.watch();
                watch.bounded(abandoned, self.pg().batch_execute(sql)).await
            }
        }

        impl Client for $type {
            fn prepare_cached(
                &self,
                sql: &str,
            ) -> impl Future<Output = Result<Prepared, QueryError>> + Send {
                <$type>::prepare_cached(self, sql)
            }

            fn query(
                &self,
                statement: &(impl Query + ?Sized),
                params: &[&(dyn ToSql + Sync)],
            ) -> impl Future<Output = Result<Vec<Row>, QueryError>> + Send {
                <$type>::query(self, statement, params)
            }

            fn query_one(
                &self,
                statement: &(impl Query + ?Sized),
                params: &[&(dyn ToSql + Sync)],
            ) -> impl Future<Output = Result<Row, QueryError>> + Send {
                <$type>::query_one(self, statement, params)
            }

            fn query_opt(
                &self,
                statement: &(impl Query + ?Sized),
                params: &[&(dyn ToSql + Sync)],
            ) -> impl Future<Output = Result<Option<Row>, QueryError>> + Send {
                <$type>::query_opt(self, statement, params)
            }

            fn execute(
                &self,
                statement: &(impl Query + ?Sized),
                params: &[&(dyn ToSql + Sync)],
            ) -> impl Future<Output = Result<u64, QueryError>> + Send {
                <$type>::execute(self, statement, params)
            }

            fn batch_execute(
                &self,
                sql: &str,
            ) -> impl Future<Output = Result<(), QueryError>> + Send {
                <$type>::batch_execute(self, sql)
            }
        }
    };
}

/// A connection from a pool, to the primary, a replica or a pooler.
#[derive(Debug)]
pub struct Connection {
    inner: deadpool::managed::Object<Manager>,
    /// Set when statements go unnamed (transaction pooling).
    describer: Option<Arc<Describer>>,
    /// The statement timeout each transaction sets for itself (transaction pooling).
    statement_timeout_ms: u128,
    /// The pool's deadline and breaker.
    watch: Arc<Watch>,
}

client!(Connection);

impl Connection {
    pub(super) fn new(
        inner: deadpool::managed::Object<Manager>,
        describer: Option<Arc<Describer>>,
        statement_timeout_ms: u128,
        watch: Arc<Watch>,
    ) -> Self {
        Self {
            inner,
            describer,
            statement_timeout_ms,
            watch,
        }
    }

    fn pg(&self) -> &deadpool_postgres::ClientWrapper {
        &self.inner.client
    }

    fn watch(&self) -> (&Watch, &AtomicBool) {
        (&self.watch, &self.inner.abandoned)
    }

    /// Starts a transaction. Through a transaction-mode pooler its first statement sets the
    /// statement timeout (a session setting would stay on the server connection, not with
    /// this client).
    pub async fn transaction(&mut self) -> Result<Transaction<'_>, QueryError> {
        let timeout = self.statement_timeout_ms;
        let describer = self.describer.clone();
        let watch: &Watch = &self.watch;
        let Conn { client, abandoned } = &mut *self.inner;
        let abandoned: &AtomicBool = abandoned;
        let inner = watch.bounded(abandoned, client.transaction()).await?;
        if describer.is_some() {
            let set = format!("SET LOCAL statement_timeout = {timeout}");
            watch.bounded(abandoned, inner.batch_execute(&set)).await?;
        }
        Ok(Transaction {
            inner,
            describer,
            watch,
            abandoned,
        })
    }

    /// Whether the server connection is gone.
    pub fn is_closed(&self) -> bool {
        self.inner.client.is_closed()
    }

    /// Whether a statement on this connection went unanswered past its deadline: the pool
    /// drops it when it comes back, and nothing more should be sent on it.
    pub fn is_abandoned(&self) -> bool {
        self.inner.abandoned.load(Ordering::Acquire)
    }

    /// The connection as tokio-postgres has it, for what only a session can do (`COPY`,
    /// advisory locks, migrations): on a connection from [`super::Db::session`] only. Its
    /// statements have no deadline but the server's.
    pub fn raw(&self) -> &tokio_postgres::Client {
        &self.inner.client
    }

    /// [`Connection::raw`], mutably (for its own transactions).
    pub fn raw_mut(&mut self) -> &mut tokio_postgres::Client {
        &mut self.inner.client
    }
}

/// A transaction on a [`Connection`]; rolled back if dropped uncommitted.
#[derive(Debug)]
pub struct Transaction<'a> {
    inner: deadpool_postgres::Transaction<'a>,
    describer: Option<Arc<Describer>>,
    watch: &'a Watch,
    abandoned: &'a AtomicBool,
}

client!(Transaction<'_>);

impl<'a> Transaction<'a> {
    fn pg(&self) -> &deadpool_postgres::Transaction<'a> {
        &self.inner
    }

    fn watch(&self) -> (&Watch, &AtomicBool) {
        (self.watch, self.abandoned)
    }

    pub async fn commit(self) -> Result<(), QueryError> {
        self.watch
            .bounded(self.abandoned, self.inner.commit())
            .await
    }

    pub async fn rollback(self) -> Result<(), QueryError> {
        self.watch
            .bounded(self.abandoned, self.inner.rollback())
            .await
    }
}
