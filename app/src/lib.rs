//! Taskwire's shared crate: the wire protocol as types ([`protocol`]), used by
//! the server, the CLI and the browser, and the Leptos UI ([`ui`]).
//!
//! It builds for native and `wasm32`: no tokio, no server-only dependencies.
//! The `ssr` and `hydrate` features only switch Leptos's rendering mode.

pub mod protocol;
pub mod ui;

pub use protocol::*;
pub use ui::{App, shell};
