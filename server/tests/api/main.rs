//! Integration tests: each starts a server on `127.0.0.1:0` (in this
//! process, or as a `taskwire serve` process when the process itself is
//! under test) and drives it over Socket.IO (rust_socketio) and HTTP.

mod helpers;

mod auth;
mod batch_and_load;
mod bench;
mod bounds;
mod cli;
mod cluster;
mod cluster_faults;
mod cluster_pauses;
mod cluster_redis;
mod cluster_scheduling;
mod dispatch;
mod durability;
mod errors;
mod http;
mod kinds;
mod lifecycle;
mod lookup;
mod net;
mod origin;
mod pauses;
mod pool;
mod remote;
mod remote_hardening;
mod schedules;
mod scheduling;
mod site;
mod store_faults;
