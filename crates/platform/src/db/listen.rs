//! LISTEN/NOTIFY on a dedicated connection (a pooled one would hand the subscription to
//! whoever borrows it next), so background workers wake on a commit instead of polling.

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::InfraError;

use super::Db;

/// Notifications on one channel. `recv` returns `None` once the connection is gone; the
/// caller reconnects with [`Db::listen`] when it wants to go on.
#[derive(Debug)]
pub struct Notifications {
    received: mpsc::Receiver<String>,
    // Dropping the client closes the connection; it has to live as long as the receiver.
    _client: tokio_postgres::Client,
}

impl Notifications {
    /// The next notification's payload.
    pub async fn recv(&mut self) -> Option<String> {
        self.received.recv().await
    }
}

impl Db {
    /// Opens a connection to the primary that listens on `channel`.
    pub async fn listen(&self, channel: &str) -> Result<Notifications, InfraError> {
        let (client, mut connection) = self.inner.primary.connect(NoTls).await?;
        let (tx, received) = mpsc::channel(64);
        tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(n)) => {
                        // A full queue already holds a wake-up; dropping this one loses nothing.
                        let _ = tx.try_send(n.payload().to_owned());
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "listening connection lost");
                        break;
                    }
                }
            }
        });
        client
            .batch_execute(&format!("LISTEN \"{}\"", channel.replace('"', "")))
            .await?;
        Ok(Notifications {
            received,
            _client: client,
        })
    }
}
