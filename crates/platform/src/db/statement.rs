//! What a statement is when it is sent: its text, or one prepared for a connection (named,
//! or unnamed with its parameters' types for a transaction-mode pooler).

use std::sync::Arc;

use tokio_postgres::{Statement, types::Type};

/// A statement ready to run on one connection.
#[derive(Debug, Clone)]
pub enum Prepared {
    /// Prepared on this connection, cached by it.
    Named(Statement),
    /// Sent with its text each time.
    Unnamed { sql: Arc<str>, types: Arc<[Type]> },
}

/// A statement to run: its text, or one [`super::Client::prepare_cached`] returned.
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
