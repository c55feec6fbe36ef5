//! Keel: the commerce backend assembled from its modules.
//!
//! The binary (`main.rs`) only parses the command line; everything it runs is here, so the
//! integration tests start the very same application on port 0.

mod app;
mod config;
mod consistency;
pub mod dead_letters;
mod features;
pub mod health;
mod limits;
mod openapi;
pub mod seed;
pub mod worker;

pub use app::{Application, StartError, migrate, router};
pub use config::{Config, MaintenanceConfig, WorkerConfig};
