//! The datagram feature layer on top of sessions (pywebtransport's datagram package):
//! the duplex stream with priority/TTL queues, message formats, and utilities.

pub mod broadcast;
pub mod json;
pub mod message;
pub mod monitor;
pub mod msgpack;
pub mod queue;
pub mod registry;
pub mod reliability;
pub mod serializer;
pub mod stream;
pub mod structured;
pub mod throughput;
pub mod value;
mod wait;

pub use message::{create_heartbeat_datagram, is_heartbeat};
pub use queue::Overflow;
pub use stream::{
    DatagramMessage, DatagramStream, QueueStats, StreamConfig, StreamStats, Thresholds,
};
pub use throughput::{datagram_throughput_test, ThroughputResult};
