//! The C ABI. Opaque handles, `wtd_result` codes with a thread-local last error, a panic
//! boundary on every export, and events by callback or pull. No protocol logic lives
//! here: every call maps onto the Rust API in `wtdatagram::transport`.
//!
//! cbindgen generates `include/wtdatagram.h` from this module.

#![allow(non_camel_case_types, clippy::missing_safety_doc)]

mod blocking;
pub mod broadcast;
pub(crate) mod callback;
pub mod client;
pub mod cluster;
pub mod config;
pub mod error;
pub mod events;
mod handle;
pub mod logging;
pub mod monitor;
mod queue;
pub mod reliability;
pub mod runtime;
pub mod server;
pub mod session;
pub mod stream;
pub mod structured;
pub mod transcode;
pub mod types;
pub mod version;
mod versioned;
