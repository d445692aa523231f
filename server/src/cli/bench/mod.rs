//! `taskwire bench`: a load generator for sizing a deployment. It opens
//! many sockets, keeps a window of tasks in flight on each, verifies every
//! result and reports throughput and ack/result latency percentiles.
//!
//! - [`verify`]: each task's input and the outcome it must have;
//! - [`wire`]: Engine.IO/Socket.IO text frames, read without building trees.

pub mod verify;
pub mod wire;
