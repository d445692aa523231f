//! Taskwire: a real-time task dispatcher.
//!
//! Clients submit tasks over Socket.IO or HTTP; one scheduler actor queues
//! them and runs them on a supervised pool of worker processes; status,
//! progress and results are pushed to every socket in the task's room.
//!
//! - [`config`]: `Settings`, from flags and `TASKWIRE_*` variables;
//! - [`startup`]: `Application::build` wires everything on one port;
//! - [`serve`]: the accept loop and the limits of each connection;
//! - [`api`]: Socket.IO handlers and HTTP routes, thin edges;
//! - [`lookup`]: `list` pages and attempts, from wherever tasks are kept;
//! - [`scheduler`]: the actor that owns tasks, queues, slots and timers;
//! - [`schedules`]: recurring schedules: the actor that fires them;
//! - [`pool`]: worker processes: framing, spawning, supervision, the worker side;
//! - [`store`]: the durable SQLite store (group commit, recovery);
//! - [`cluster`]: cluster mode (PostgreSQL, Redis, leases and fencing);
//! - [`health`]: healthy or degraded, for `GET /healthz`;
//! - [`metrics`]: what `GET /metrics` shows (a Prometheus recorder per server);
//! - [`kinds`]: the `Handler` trait, the registry and the built-in kinds;
//! - [`client`]: a Rust Socket.IO client of the protocol (CLI, tests);
//! - [`remote`]: the remote worker SDK (`taskwire remote-worker`);
//! - [`cli`]: the `taskwire` command line, `bench` (the load generator) included;
//! - [`site`]: the Leptos site.
// Leptos view types nest deeply; the default limit is too low for them.
#![recursion_limit = "256"]

pub mod api;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod config;
pub mod health;
pub mod kinds;
pub mod lookup;
pub mod metrics;
pub mod pool;
pub mod remote;
pub mod scheduler;
pub mod schedules;
pub mod serve;
pub mod site;
pub mod startup;
pub mod store;

pub use app::InputError;
pub use config::Settings;
pub use kinds::{Class, Ctx, Handler, HandlerError, Registry};
pub use startup::Application;
