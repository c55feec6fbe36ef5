//! The event bus: domain events leave PostgreSQL through a transactional outbox, travel on
//! NATS JetStream, and reach durable consumers that process each one once.
//!
//! - [`outbox::append`] writes an event in the caller's transaction (and into the
//!   month-partitioned event log), so an event exists if and only if its change committed.
//! - [`relay::run`] publishes the outbox in order, with the outbox id as `Nats-Msg-Id`.
//! - [`consumer::run`] feeds a durable pull consumer to a handler, with explicit acks,
//!   bounded redelivery and a dead-letter stream.

pub mod consumer;
pub mod dlq;
pub mod event_log;
pub mod outbox;
pub mod partitions;
pub mod relay;

use std::time::Duration;

use async_nats::jetstream::{self, stream};

use crate::{InfraError, config::parse_duration};

/// NATS JetStream and how Keel uses it.
#[derive(Debug, Clone, clap::Args)]
pub struct BusConfig {
    /// NATS server URL, or every node's of a cluster, comma-separated: the client connects to
    /// one and moves to another when it goes.
    #[arg(long, env = "KEEL_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,

    /// Copies JetStream keeps of each stream: 0 asks for 3 and takes 1 where the server is
    /// not clustered. A stream's replicas are fixed when it is created.
    #[arg(long, env = "KEEL_NATS_REPLICAS", default_value_t = 0)]
    pub nats_replicas: usize,

    /// Prefix of every subject and stream name, so deployments (and tests) can share a server.
    #[arg(long, env = "KEEL_NATS_PREFIX", default_value = "keel")]
    pub nats_prefix: String,

    /// How long a consumer may hold a message before JetStream redelivers it.
    #[arg(long, env = "KEEL_BUS_ACK_WAIT", default_value = "30s", value_parser = parse_duration)]
    pub ack_wait: Duration,

    /// Deliveries of one message before it goes to the dead-letter stream.
    #[arg(long, env = "KEEL_BUS_MAX_DELIVER", default_value_t = 10)]
    pub max_deliver: i64,

    /// Messages one consumer processes at once.
    #[arg(long, env = "KEEL_BUS_CONCURRENCY", default_value_t = 64)]
    pub concurrency: usize,

    /// How often an idle relay looks for new outbox rows: the most an event waits to be
    /// published, and one indexed `EXISTS` a poll on the primary.
    #[arg(long, env = "KEEL_OUTBOX_POLL", default_value = "10ms", value_parser = parse_duration)]
    pub outbox_poll: Duration,
}

impl BusConfig {
    /// The servers of `nats_url`.
    pub fn servers(&self) -> Vec<&str> {
        self.nats_url
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .collect()
    }
}

/// A connection to JetStream with Keel's stream names.
#[derive(Clone, Debug)]
pub struct Bus {
    jetstream: jetstream::Context,
    config: BusConfig,
}

impl Bus {
    /// Connects to NATS. It does not wait for the server: the client keeps reconnecting in
    /// the background, and the relay and consumers retry until it answers.
    pub async fn connect(config: &BusConfig) -> Result<Self, InfraError> {
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(2))
            .event_callback(|event| async move {
                tracing::info!(event = %event, "nats connection event");
            })
            .connect(config.servers().as_slice())
            .await
            .map_err(|e| InfraError::unavailable("nats", e))?;
        Ok(Self {
            jetstream: jetstream::new(client),
            config: config.clone(),
        })
    }

    pub fn config(&self) -> &BusConfig {
        &self.config
    }

    /// Creates a stream, or finds it. Asked for no particular number of replicas, it asks
    /// for three (a cluster's quorum survives one node lost) and, if the server is not
    /// clustered, settles for one.
    async fn stream(&self, config: stream::Config) -> Result<stream::Stream, InfraError> {
        let unavailable = |e| InfraError::unavailable("nats", e);
        if self.config.nats_replicas > 0 {
            let config = stream::Config {
                num_replicas: self.config.nats_replicas,
                ..config
            };
            return self
                .jetstream
                .get_or_create_stream(config)
                .await
                .map_err(unavailable);
        }
        let replicated = stream::Config {
            num_replicas: 3,
            ..config.clone()
        };
        match self.jetstream.get_or_create_stream(replicated).await {
            Ok(stream) => Ok(stream),
            // JetStream's "replicas > 1 not supported in non-clustered mode" (10074).
            Err(e)
                if e.to_string().contains("10074") || e.to_string().contains("non-clustered") =>
            {
                self.jetstream
                    .get_or_create_stream(config)
                    .await
                    .map_err(unavailable)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    pub(crate) fn jetstream(&self) -> &jetstream::Context {
        &self.jetstream
    }

    /// The full subject of an event subject such as `orders.placed`.
    pub fn subject(&self, event: &str) -> String {
        format!("{}.events.{event}", self.config.nats_prefix)
    }

    fn dead_letter_subject(&self, event: &str) -> String {
        format!("{}.dlq.{event}", self.config.nats_prefix)
    }

    fn stream_name(&self, suffix: &str) -> String {
        let prefix: String = self
            .config
            .nats_prefix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        format!("{prefix}_{suffix}")
    }

    /// The events stream, created if missing. Files on disk; a two-minute de-duplication
    /// window covers a relay that crashed between publishing and deleting its batch.
    pub async fn events_stream(&self) -> Result<stream::Stream, InfraError> {
        self.stream(stream::Config {
            name: self.stream_name("EVENTS"),
            subjects: vec![format!("{}.events.>", self.config.nats_prefix)],
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(120),
            max_age: Duration::from_secs(7 * 86_400),
            ..Default::default()
        })
        .await
    }

    /// The dead-letter stream: messages that kept failing, with the reason in a header.
    pub async fn dead_letter_stream(&self) -> Result<stream::Stream, InfraError> {
        self.stream(stream::Config {
            name: self.stream_name("DLQ"),
            subjects: vec![format!("{}.dlq.>", self.config.nats_prefix)],
            storage: stream::StorageType::File,
            max_age: Duration::from_secs(30 * 86_400),
            ..Default::default()
        })
        .await
    }
}
