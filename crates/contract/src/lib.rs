//! The contract between the modules: the ids they pass each other, the states of an order,
//! and the events the orders module publishes. A module that reacts to orders (the read
//! models) depends on this crate, not on the orders module and what it builds.

mod events;
mod id;
mod page;
mod status;

pub use events::{
    OrderCancelled, OrderConfirmed, OrderEvent, OrderLine, OrderPlaced, PaymentCaptured,
    ShipmentCreated, UnknownEvent,
};
pub use id::{OrderId, ProductId, UserId};
pub use page::OrderPageRequest;
pub use status::OrderStatus;
