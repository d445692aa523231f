//! Building and running the whole server: scheduler, schedules, worker pool,
//! Socket.IO, HTTP API and (when built) the Leptos site, on one port,
//! behind the origin guard and the security headers. Socket.IO's rooms are
//! this process's own, or shared by every node through Redis ([`Rooms`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, header};
use socketioxide::adapter::Adapter;
use socketioxide::layer::SocketIoLayer;
use socketioxide::{SocketIo, SocketIoBuilder};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::Layer as _;
use tower::ServiceBuilder;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::api::auth::AccessToken;
use crate::api::origin::{self, OriginPolicy};
use crate::api::publish::RoomPublisher;
use crate::api::schedules::RoomAnnouncer;
use crate::api::{AppState, RemoteKinds, http};
use crate::cluster::bus::Bus;
use crate::cluster::db::Db;
use crate::cluster::link::{Link, QueuedPublisher};
use crate::cluster::redis::{self, RedisHealth};
use crate::cluster::{NodeId, NodeInfo};
use crate::config::{DataDir, Settings};
use crate::health::Health;
use crate::kinds::{Class, Registry};
use crate::scheduler::{Backing, ClusterSide, Command, Publisher, SchedulerConfig};
use crate::schedules::{Announce, Clock, Keep};
use crate::store::Store;
use crate::{api, pool, scheduler, schedules, site};

/// Read buffer of one websocket. Idle sockets are the common case; a small
/// buffer keeps them cheap (frames larger than it still arrive whole).
const WS_READ_BUFFER: usize = 1024;

/// Where Socket.IO's rooms live, so where pushes to them reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rooms {
    /// In this process (socketioxide's LocalAdapter): a single server.
    Local,
    /// Shared by every node on this Redis under this prefix (cluster mode,
    /// socketioxide-redis's fred adapter): a push to a task's room reaches
    /// its sockets on every node.
    Redis { url: String, prefix: String },
}

/// The Socket.IO server, with its adapter.
enum Io {
    Local(SocketIo),
    Redis(SocketIo<redis::Adapter>, RedisHealth),
}

impl Io {
    async fn close(&self) {
        match self {
            Self::Local(io) => io.close().await,
            Self::Redis(io, health) => {
                io.close().await;
                health.close().await;
            }
        }
    }
}

/// A server bound to its address, ready to run.
pub struct Application {
    listener: TcpListener,
    service: Router,
    shutdown: CancellationToken,
    pool: JoinSet<()>,
    io: Io,
    publisher: Arc<dyn Publisher>,
    dispatcher: scheduler::Dispatcher,
    shutdown_grace: Duration,
    limits: crate::serve::Limits,
    /// A port-0 server's data directory, removed when the server is dropped.
    _temporary_dir: Option<tempfile::TempDir>,
}

impl Application {
    /// Binds the address, starts the scheduler and the worker pool; rooms
    /// are this process's own.
    /// In cluster mode (`--cluster`), rooms are shared through Redis and
    /// the queue is the cluster's database.
    pub async fn build(settings: Settings, registry: Registry) -> anyhow::Result<Self> {
        let rooms = match (&settings.cluster, &settings.redis_url) {
            (true, Some(url)) => Rooms::Redis {
                url: url.clone(),
                prefix: settings.redis_prefix.clone(),
            },
            (true, None) => anyhow::bail!("--cluster needs --redis-url"),
            (false, _) => Rooms::Local,
        };
        Self::build_with(settings, registry, rooms).await
    }

    /// Like [`Application::build`], with Socket.IO's rooms where `rooms`
    /// says. With [`Rooms::Redis`], fails if Redis cannot be reached now.
    pub async fn build_with(
        settings: Settings,
        registry: Registry,
        rooms: Rooms,
    ) -> anyhow::Result<Self> {
        let shutdown = CancellationToken::new();
        let listener = TcpListener::bind(settings.addr)
            .await
            .with_context(|| format!("cannot listen on {}", settings.addr))?;
        let addr = listener.local_addr()?;

        let site_root = settings.site_root();
        let site = site::options(&site_root, addr);
        let (dispatcher, commands) = scheduler::channel();
        let (schedules, schedules_mailbox) = schedules::channel();
        let health = Health::default();
        let mut pool_config = settings.pool().context("cannot find the worker binary")?;
        pool_config.kinds = registry.kinds();
        let metrics = crate::metrics::Metrics::new();
        metrics.spawn_upkeep(shutdown.clone());
        pool_config.metrics = metrics.clone();
        let state = AppState {
            dispatcher: dispatcher.clone(),
            health: health.clone(),
            registry,
            remote_kinds: RemoteKinds::default(),
            token: AccessToken::new(settings.token.as_deref()),
            events_per_sec: settings.max_events_per_sec,
            local_workers: pool_config.workers > 0,
            task_page: site.clone().map(site::task_pages),
            schedules_page: site.clone().map(site::schedules_pages),
            tasks_page: site.clone().map(site::tasks_pages),
            schedules,
            lookup: Default::default(),
            metrics: metrics.clone(),
        };
        let api = http::routes(&state)
            .with_state(state.clone())
            .layer(DefaultBodyLimit::max(settings.max_message_bytes));
        let api = http::with_content_length_limit(api, settings.max_message_bytes);
        let router = match site {
            Some(options) => site::router(options, &state).merge(api),
            None => {
                tracing::info!(site_root = %site_root.display(), "no built site; serving the API only");
                api.fallback(site::not_built)
            }
        };
        let builder = socket_io(&settings).with_state(state.clone());
        let (service, io, publisher): (_, _, Arc<dyn Publisher>) = match rooms {
            Rooms::Local => {
                let (layer, io) = builder.build_layer();
                let [(), ()] = api::register_namespaces(&io);
                let publisher = Arc::new(RoomPublisher::local(io.clone()));
                let service = guarded(router, layer, &settings, addr);
                (service, Io::Local(io), publisher)
            }
            Rooms::Redis { url, prefix } => {
                let (adapter, redis_health) = redis::adapter(&url, &prefix).await?;
                let (layer, io) = builder
                    .with_adapter::<redis::Adapter>(adapter)
                    .build_layer();
                for init in api::register_namespaces(&io) {
                    init.await.map_err(|e| {
                        anyhow::anyhow!("cannot subscribe to the rooms' Redis channels: {e}")
                    })?;
                }
                tracing::info!(redis = %redis::redacted(&url), prefix, "rooms shared through Redis");
                let publisher = Arc::new(RoomPublisher::shared(io.clone()));
                let service = guarded(router, layer, &settings, addr);
                (service, Io::Redis(io, redis_health), publisher)
            }
        };
        let node = NodeInfo {
            id: NodeId::fresh(),
            addr: addr.to_string(),
            started_at: app::Timestamp::now(),
        };
        let mut schedules_kept = Keep::Memory;
        let (backing, temporary_dir, publisher) = match (&io, settings.cluster) {
            (Io::Redis(_, rooms_health), true) => {
                pool_config.id_prefix = format!("{}/", node.id);
                let (side, publisher, db) = join_cluster(
                    &settings,
                    &node,
                    &state,
                    rooms_health,
                    publisher,
                    &dispatcher,
                )
                .await?;
                let backing = Backing::Cluster {
                    side,
                    health: health.clone(),
                };
                state.lookup.from_cluster(db.clone());
                schedules_kept = Keep::Cluster(db);
                (backing, None, publisher)
            }
            _ => {
                let (durable, dir) = open_store(&settings, addr, &state.registry, health)?;
                let backing = match durable {
                    Some(durable) => {
                        schedules_kept = Keep::Store(durable.store.clone());
                        Backing::Durable(durable)
                    }
                    None => Backing::Memory,
                };
                (backing, dir, publisher)
            }
        };
        let scheduler_config = SchedulerConfig {
            // Rooms in Redis are how other processes' pushes reach a socket.
            submitters_follow: matches!(io, Io::Local(_)),
            ..settings.scheduler()
        };
        scheduler::spawn(
            commands,
            scheduler_config,
            publisher.clone(),
            node,
            backing,
            metrics,
            shutdown.clone(),
        );
        let announce: Arc<dyn Announce> = match &io {
            Io::Local(io) => Arc::new(RoomAnnouncer::new(io.clone())),
            Io::Redis(io, _) => Arc::new(RoomAnnouncer::new(io.clone())),
        };
        let setup = schedules::Setup {
            keep: schedules_kept,
            submit: Arc::new(state.clone()),
            announce,
            clock: Clock::system(),
        };
        schedules::spawn(schedules_mailbox, setup, shutdown.clone())
            .await
            .map_err(|e| anyhow::anyhow!("cannot read the schedules back: {e}"))?;
        let pool = pool::start(&pool_config, &dispatcher, &shutdown);
        Ok(Self {
            listener,
            service,
            shutdown,
            pool,
            io,
            publisher,
            dispatcher,
            shutdown_grace: Duration::from_millis(settings.shutdown_grace_ms),
            limits: settings.limits(),
            _temporary_dir: temporary_dir,
        })
    }

    /// Where the scheduler's pushes go (the rooms, on every node in cluster
    /// mode).
    pub fn publisher(&self) -> Arc<dyn Publisher> {
        self.publisher.clone()
    }

    /// Whether Redis is reachable now, with [`Rooms::Redis`].
    pub fn redis_health(&self) -> Option<RedisHealth> {
        match &self.io {
            Io::Local(_) => None,
            Io::Redis(_, health) => Some(health.clone()),
        }
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Cancel it to stop the server at once (running tasks are recovered
    /// at the next start, attempt counted, as after a crash).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// A handle for a graceful stop (see [`Shutdown::run`]).
    pub fn graceful(&self) -> Shutdown {
        Shutdown {
            dispatcher: self.dispatcher.clone(),
            token: self.shutdown.clone(),
            grace: self.shutdown_grace,
        }
    }

    /// Serves until the shutdown token is cancelled, then stops the workers.
    pub async fn run_until_stopped(mut self) -> anyhow::Result<()> {
        crate::serve::serve(
            self.listener,
            self.service,
            self.limits,
            self.shutdown.clone(),
        )
        .await;
        self.shutdown.cancel();
        self.io.close().await;
        while self.pool.join_next().await.is_some() {}
        Ok(())
    }
}

/// Joins the cluster as `node`: connects to its database (bringing the
/// schema up to date) and to the node bus, registers the node, and hands
/// the bus's signals to the scheduler. Pushes go through a queue, since
/// each crosses Redis. Redis's connections count in `GET /healthz`. The
/// database is answered too, for the schedules.
async fn join_cluster(
    settings: &Settings,
    node: &NodeInfo,
    state: &AppState,
    rooms_health: &RedisHealth,
    rooms: Arc<dyn Publisher>,
    dispatcher: &scheduler::Dispatcher,
) -> anyhow::Result<(ClusterSide, Arc<dyn Publisher>, Db)> {
    let db_url = settings
        .database_url
        .as_deref()
        .context("--cluster needs --database-url")?;
    let redis_url = settings
        .redis_url
        .as_deref()
        .context("--cluster needs --redis-url")?;
    let db = Db::connect(db_url)
        .await
        .context("cannot use the cluster's database")?;
    db.register(node)
        .await
        .context("cannot register this node in the cluster's database")?;
    let (bus, mut signals) = Bus::connect(redis_url, &settings.redis_prefix)
        .await
        .context("cannot connect to the node bus")?;
    let redis_health = rooms_health.and(bus.health());
    let probe = redis_health.clone();
    state.health.set_probe(Arc::new(move || probe.problem()));
    let forward = dispatcher.clone();
    tokio::spawn(async move {
        while let Some(signal) = signals.recv().await {
            if forward.send(Command::Signal(signal)).await.is_err() {
                break;
            }
        }
    });
    let lease = Duration::from_millis(settings.lease_ms);
    tracing::info!(node = %node.id, lease_ms = settings.lease_ms, prefix = %settings.redis_prefix, "joined the cluster");
    let kept = db.clone();
    let link = Link::new(db, bus, node.clone(), lease, redis_health);
    let registry = state.registry.clone();
    let classify = move |kind: &str| registry.get(kind).map_or(Class::Cpu, |h| h.class());
    let side = ClusterSide::new(
        Arc::new(link),
        Box::new(classify),
        state.registry.kinds(),
        lease,
    );
    Ok((side, Arc::new(QueuedPublisher::new(rooms)), kept))
}

/// The Socket.IO server's limits and heartbeat (its adapter, state and
/// namespaces come next).
fn socket_io(settings: &Settings) -> SocketIoBuilder {
    SocketIo::builder()
        .max_buffer_size(settings.socket_buffer)
        .max_payload(settings.max_message_bytes as u64)
        .ping_interval(Duration::from_millis(settings.ping_interval_ms))
        .ping_timeout(Duration::from_millis(settings.ping_timeout_ms))
        .ws_max_message_size(settings.max_message_bytes)
        .ws_max_frame_size(settings.max_message_bytes)
        .ws_read_buffer_size(WS_READ_BUFFER)
}

/// Opens the durable store the settings ask for (none with `--memory`),
/// and a port-0 server's temporary data directory, which lives as long as
/// the returned guard.
fn open_store(
    settings: &Settings,
    addr: SocketAddr,
    registry: &Registry,
    health: Health,
) -> anyhow::Result<(Option<scheduler::Durable>, Option<tempfile::TempDir>)> {
    let (dir, temporary) = match settings.data_dir(addr) {
        Some(DataDir::Kept(dir)) => (dir, None),
        Some(DataDir::Temporary) => {
            let temporary = tempfile::Builder::new()
                .prefix("taskwire-")
                .tempdir()
                .context("cannot create a temporary data directory")?;
            (temporary.path().to_owned(), Some(temporary))
        }
        None => return Ok((None, None)),
    };
    let (store, recovered) = Store::open(&dir)?;
    tracing::info!(data_dir = %dir.display(), "durable task store");
    let paused = store
        .load_paused()
        .context("cannot read the paused kinds back")?;
    let registry = registry.clone();
    let durable = scheduler::Durable {
        store,
        recovered,
        paused,
        health,
        classify: Box::new(move |kind| registry.get(kind).map_or(Class::Cpu, |h| h.class())),
    };
    Ok((Some(durable), temporary))
}

/// The whole service, outermost first: security headers on every answer
/// (refusals too), the origin guard before anything (Socket.IO included)
/// sees the request, CORS for the allowed origins, and the router wrapped
/// by Socket.IO.
///
/// Socket.IO wraps the whole router as one service. `Router::layer` would
/// wrap each route apart, and socketioxide makes one engine (one session
/// table) per wrapped service: a polling handshake answered by one route
/// would be "Session ID unknown" to the next request.
fn guarded<A: Adapter>(
    router: Router,
    io_layer: SocketIoLayer<A>,
    settings: &Settings,
    addr: SocketAddr,
) -> Router {
    let mut service = Router::new()
        .fallback_service(io_layer.layer(router))
        .layer(axum::middleware::map_request(detach_from_read_buffer));
    let origins = Arc::new(OriginPolicy::new(&settings.allowed_origins, addr));
    if let Some(cors) = origins.cors() {
        service = service.layer(cors);
    }
    with_security_headers(
        service.layer(axum::middleware::from_fn_with_state(origins, origin::guard)),
    )
}

/// Headers every response carries. Pages set their own
/// Content-Security-Policy (with their nonce); the rest get the default.
fn with_security_headers(service: Router) -> Router {
    let fixed = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value))
    };
    service.layer(
        ServiceBuilder::new()
            .layer(fixed(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .layer(fixed(header::X_FRAME_OPTIONS, "DENY"))
            // Not `no-referrer`: under it browsers send `Origin: null` with
            // the page's own form posts, which the origin guard refuses.
            .layer(fixed(header::REFERRER_POLICY, "same-origin"))
            .layer(fixed(
                HeaderName::from_static("cross-origin-resource-policy"),
                "same-origin",
            ))
            .layer(SetResponseHeaderLayer::if_not_present(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(site::DEFAULT_POLICY),
            )),
    )
}

/// Copies a request's URI and header values out of hyper's connection read
/// buffer. They are slices of it, and engineioxide keeps each socket's
/// request parts for the socket's lifetime, which would keep a 16 KiB buffer
/// alive per connected socket (over half its memory when idle).
async fn detach_from_read_buffer(mut req: axum::extract::Request) -> axum::extract::Request {
    if !req.uri().path().starts_with("/socket.io") {
        return req;
    }
    if let Ok(uri) = req.uri().to_string().parse::<axum::http::Uri>() {
        req.extensions_mut()
            .insert(axum::extract::OriginalUri(uri.clone()));
        *req.uri_mut() = uri;
    }
    for value in req.headers_mut().values_mut() {
        if let Ok(copy) = axum::http::HeaderValue::from_bytes(value.as_bytes()) {
            *value = copy;
        }
    }
    req
}

/// Stops a server gracefully.
pub struct Shutdown {
    dispatcher: scheduler::Dispatcher,
    token: CancellationToken,
    grace: Duration,
}

impl Shutdown {
    /// Refuses new tasks, lets running ones finish within the grace period,
    /// puts the rest back in the (stored) queue, then stops the server and
    /// its workers. Sockets stay connected meanwhile, so results still
    /// reach their subscribers.
    pub async fn run(self) {
        if let Err(e) = self.dispatcher.drain(self.grace).await {
            tracing::error!(error = %e, "drain failed; stopping anyway");
        }
        self.token.cancel();
    }
}
