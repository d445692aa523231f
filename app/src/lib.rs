//! Taskwire's shared crate: the wire protocol as types ([`protocol`]), used by
//! the server, the CLI and the browser, and the Leptos UI ([`ui`]).
//!
//! It builds for native and `wasm32`: no tokio, no server-only dependencies.
//! The `ssr` and `hydrate` features only switch Leptos's rendering mode.
// Leptos view types nest deeply; the default limit is too low for them.
#![recursion_limit = "256"]

pub mod protocol;
pub mod ui;

pub use protocol::*;
#[cfg(feature = "ssr")]
pub use ui::Backend;
pub use ui::{App, shell};
