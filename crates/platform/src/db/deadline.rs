//! Bounded waits on PostgreSQL: every statement has a deadline of its own, enforced here
//! rather than by the server, and a breaker per pool turns a server that stopped answering
//! into an immediate refusal instead of a wait per request. Only silence (no answer within
//! the deadline, a connection attempt that times out) opens it: a refused or closed
//! connection is a fast failure the pools already retry.
//!
//! The server's `statement_timeout` cannot fire on a statement it never received: when the
//! network drops packets or the server hangs, only the client can stop waiting. A statement
//! past its deadline leaves its connection in an unknown state (the answer may still come,
//! or never), so the connection is abandoned: the pool drops it instead of handing it out.

use std::{
    future::Future,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use tokio_postgres::error::{DbError, SqlState};

use crate::breaker::Breaker;

/// How much longer than the server's own `statement_timeout` the client waits: the server's
/// cancellation, when it can send one, arrives first and says what happened.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(500);

/// Failures in a row that open a pool's breaker.
const BREAKER_THRESHOLD: u32 = 3;

/// How long an open breaker refuses before one request probes the server again.
const BREAKER_COOL_DOWN: Duration = Duration::from_secs(1);

/// What a statement can fail with: the server's error (or the connection's), or no answer
/// at all within the deadline.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    #[error("PostgreSQL gave no answer within {0:?}; the connection is abandoned")]
    NoAnswer(Duration),
}

impl QueryError {
    /// The SQLSTATE of the server's error, when the server answered with one.
    pub fn code(&self) -> Option<&SqlState> {
        match self {
            Self::Postgres(e) => e.code(),
            Self::NoAnswer(_) => None,
        }
    }

    /// The server's error, when it answered with one.
    pub fn as_db_error(&self) -> Option<&DbError> {
        match self {
            Self::Postgres(e) => e.as_db_error(),
            Self::NoAnswer(_) => None,
        }
    }
}

/// A pool's deadline for each statement and the breaker its outcomes feed.
#[derive(Debug)]
pub(crate) struct Watch {
    deadline: Duration,
    /// None for replicas: one that fails is taken out of the rotation until its next good
    /// health check, which is a breaker of its own.
    breaker: Option<Breaker>,
}

impl Watch {
    pub(crate) fn new(deadline: Duration, breaker: Option<Breaker>) -> Self {
        Self { deadline, breaker }
    }

    /// The breaker of a pool on the primary, named for its gauge.
    pub(crate) fn breaker(name: &'static str) -> Breaker {
        Breaker::new(name, BREAKER_THRESHOLD, BREAKER_COOL_DOWN)
    }

    /// Whether a connection may be taken now: false while the breaker is open.
    pub(crate) fn allow(&self) -> bool {
        self.breaker.as_ref().is_none_or(Breaker::allow)
    }

    /// Counts a failure to reach the server (a connection that could not be opened).
    pub(crate) fn unreachable(&self) {
        if let Some(breaker) = &self.breaker {
            breaker.record_failure();
        }
    }

    /// Runs `statement` on a connection whose `abandoned` flag it sets if no answer comes
    /// within the deadline.
    pub(crate) async fn bounded<T>(
        &self,
        abandoned: &AtomicBool,
        statement: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, QueryError> {
        let result = match tokio::time::timeout(self.deadline, statement).await {
            Ok(Err(e)) if e.code() == Some(&SqlState::READ_ONLY_SQL_TRANSACTION) => {
                // A server that was the primary and is a standby now (a failover demoted
                // it, or a pooler reconnected to one): the next connection finds the new
                // primary, this one never will.
                abandoned.store(true, Ordering::Release);
                Err(QueryError::Postgres(e))
            }
            Ok(answer) => answer.map_err(QueryError::from),
            Err(_) => {
                abandoned.store(true, Ordering::Release);
                metrics::counter!("keel_db_statement_deadlines_total").increment(1);
                Err(QueryError::NoAnswer(self.deadline))
            }
        };
        // Only silence counts against the breaker: a connection closed under a statement
        // (a pooler or server restarting) fails fast, and the reads' retry and the acquire's
        // retry ride it out; opening the breaker on it would refuse what they can serve.
        if let Some(breaker) = &self.breaker {
            match &result {
                Err(QueryError::NoAnswer(_)) => breaker.record_failure(),
                Err(QueryError::Postgres(e)) if e.as_db_error().is_none() => {}
                _ => breaker.record_success(),
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_statement_without_an_answer_abandons_its_connection_and_opens_the_breaker() {
        let cool_down = Duration::from_millis(50);
        let breaker = Breaker::new("postgres-deadline-test", BREAKER_THRESHOLD, cool_down);
        let watch = Watch::new(Duration::from_millis(20), Some(breaker));
        let abandoned = AtomicBool::new(false);
        let answered = watch.bounded(&abandoned, async { Ok(1) }).await;
        assert_eq!(answered.ok(), Some(1));
        assert!(!abandoned.load(Ordering::Acquire));
        for _ in 0..BREAKER_THRESHOLD {
            assert!(watch.allow());
            let silent = watch
                .bounded(&abandoned, std::future::pending::<Result<(), _>>())
                .await;
            assert!(matches!(silent, Err(QueryError::NoAnswer(_))), "{silent:?}");
        }
        assert!(abandoned.load(Ordering::Acquire));
        assert!(!watch.allow(), "open after {BREAKER_THRESHOLD} silences");
        tokio::time::sleep(cool_down).await;
        assert!(watch.allow(), "one probe after the cool-down");
        assert!(!watch.allow(), "only one");
        let fresh = AtomicBool::new(false);
        assert!(watch.bounded(&fresh, async { Ok(()) }).await.is_ok());
        assert!(
            watch.allow() && watch.allow(),
            "closed by the probe's answer"
        );
    }
}
