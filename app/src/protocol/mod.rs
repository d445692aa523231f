//! The Taskwire wire protocol (v1) as types: event names, ids, the task
//! object, submissions and their validation, acks and pushes.
//!
//! Everything a client or the server puts on the wire is defined here once,
//! so the server, the CLI and the browser can never disagree about a field.
//! One file per concern; everything is re-exported here.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use uuid::Uuid;

mod acks;
pub mod builtin;
mod errors;
pub mod events;
mod ids;
mod json;
mod lookup;
mod pushes;
mod schedule;
mod submit;
mod task;
mod worker;

pub use acks::*;
pub use errors::*;
pub use ids::*;
pub use json::*;
pub use lookup::*;
pub use pushes::*;
pub use schedule::*;
pub use submit::*;
pub use task::*;
pub use worker::*;

#[cfg(test)]
mod lookup_tests;
#[cfg(test)]
mod tests;
