//! The statement describer: with transaction pooling, statements go unnamed and need their
//! parameters' types sent along; those are learned once per statement text from a session
//! of its own on the primary, and cached.

use std::{collections::HashMap, sync::Arc};

use tokio::sync::Mutex;
use tokio_postgres::{Error, types::Type};

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

    pub(crate) async fn types(&self, sql: &str) -> Result<Arc<[Type]>, Error> {
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
