//! The `taskwire` command line: `serve`, the internal `worker`, the
//! client commands `submit`, `status`, `cancel`, `retry`, `watch` and
//! `schedule`, and `bench`. Errors end it with one line (see [`report`]).

pub mod bench;
pub mod list;
pub mod report;
pub mod schedule;
mod table;
pub mod watch;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use app::{TaskId, TaskSpec, TaskStatus};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use crate::client::Client;
use crate::config::Settings;
use crate::kinds::Registry;
use crate::pool::{child, spawn};
use crate::startup::Application;

/// Taskwire: a real-time task dispatcher.
#[derive(Debug, Parser)]
#[command(name = "taskwire", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (API, Socket.IO, worker pool, web UI).
    Serve(Box<Settings>),
    /// Run as a worker process of a server (internal: the server spawns it).
    #[command(hide = true)]
    Worker,
    /// Submit a task; print its id (and with --wait, its result).
    Submit(SubmitArgs),
    /// Print a task as JSON.
    Status(TaskArgs),
    /// Cancel a task and print it as JSON.
    Cancel(TaskArgs),
    /// Run a failed, cancelled or timed-out task again: print the new task
    /// as JSON.
    Retry(TaskArgs),
    /// A live view of the queue: per kind queued, running, paused and
    /// latencies, the workers, the throughput.
    Watch(watch::WatchArgs),
    /// Recurring schedules: add (or replace), list, rm.
    Schedule(schedule::ScheduleArgs),
    /// List every client's tasks, newest first, with filters.
    List(list::ListArgs),
    /// Run this binary's kinds for a server, connected over Socket.IO.
    RemoteWorker(RemoteArgs),
    /// Load a server with many sockets and tasks in flight; verify every
    /// result; report throughput and latency.
    Bench(bench::BenchArgs),
}

#[derive(Debug, clap::Args)]
pub struct RemoteArgs {
    #[command(flatten)]
    pub server: Server,
    /// Name shown on the dashboard.
    #[arg(long, env = "TASKWIRE_WORKER_NAME", default_value = "remote")]
    pub name: String,
    /// Kinds to offer (comma-separated) [default: all of this binary's].
    #[arg(long, value_delimiter = ',')]
    pub kinds: Vec<String>,
    /// Jobs run at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: u32,
}

#[derive(Debug, clap::Args)]
pub struct Server {
    /// Server URL.
    #[arg(long, env = "TASKWIRE_URL", default_value = "http://127.0.0.1:3000")]
    pub url: String,
    /// Access token, if the server requires one (`serve --token`).
    #[arg(long, env = "TASKWIRE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    pub server: Server,
    /// Kind of task (echo, sleep, primes, sha256, fail, or your own).
    #[arg(long)]
    pub kind: String,
    /// Input as JSON text.
    #[arg(long, default_value = "null")]
    pub input: String,
    /// Higher runs first.
    #[arg(long, allow_hyphen_values = true)]
    pub priority: Option<i32>,
    /// Per-attempt timeout in milliseconds.
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Runs allowed when workers are lost.
    #[arg(long)]
    pub max_attempts: Option<u32>,
    /// Wait for the result, showing progress; exit non-zero unless it succeeded.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, clap::Args)]
pub struct TaskArgs {
    #[command(flatten)]
    pub server: Server,
    /// Task id.
    pub id: TaskId,
}

/// Targets whose debug logs print what clients send verbatim, handshake
/// `auth` (so the access token) included: held at `info` unless
/// `TASKWIRE_LOG` names them itself.
const VERBATIM_TARGETS: [&str; 2] = ["socketioxide", "engineioxide"];

fn init_tracing(default: &str) {
    use std::io::IsTerminal as _;
    let spec = std::env::var("TASKWIRE_LOG").unwrap_or_default();
    let mut filter = EnvFilter::try_new(&spec).unwrap_or_else(|_| EnvFilter::new(default));
    if spec.trim().is_empty() {
        filter = EnvFilter::new(default);
    }
    let verbose = filter
        .max_level_hint()
        .is_none_or(|max| max > tracing_subscriber::filter::LevelFilter::INFO);
    for target in VERBATIM_TARGETS {
        if verbose
            && !spec.contains(target)
            && let Ok(directive) = format!("{target}=info").parse()
        {
            filter = filter.add_directive(directive);
        }
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes are noise (and a way to hide text) in a log file.
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Runs the command line with the kinds of `registry`: a binary that adds
/// its own kinds calls this from `main`, and its workers run them too.
pub fn main_with(registry: Registry) -> anyhow::Result<ExitCode> {
    // Without a command, `taskwire` serves (with its `TASKWIRE_*` settings):
    // that is how `cargo leptos serve` starts it.
    let cli = if std::env::args_os().len() > 1 {
        Cli::parse()
    } else {
        Cli::parse_from(["taskwire", "serve"])
    };
    if let Command::Worker = cli.command {
        init_tracing("warn");
        return run_worker(registry);
    }
    init_tracing(if matches!(cli.command, Command::Serve(_)) {
        "info"
    } else {
        "warn"
    });
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    match &cli.command {
        Command::Serve(settings) => {
            rt.worker_threads(settings.io_threads());
        }
        Command::Bench(args) => {
            rt.worker_threads(args.threads());
        }
        _ => {}
    }
    let rt = rt
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        match cli.command {
            Command::Serve(settings) => serve(*settings, registry).await,
            Command::Submit(args) => submit(args).await,
            Command::Status(args) => status(args).await,
            Command::Cancel(args) => cancel(args).await,
            Command::Retry(args) => retry(args).await,
            Command::Watch(args) => watch::run(args).await,
            Command::Schedule(args) => Ok(schedule::run(args).await),
            Command::List(args) => Ok(list::run(args).await),
            Command::Bench(args) => run_bench(args).await,
            Command::RemoteWorker(args) => {
                let config = crate::remote::RemoteConfig {
                    url: args.server.url,
                    name: args.name,
                    token: args.server.token,
                    kinds: args.kinds,
                    concurrency: args.concurrency,
                };
                crate::remote::run(config, registry).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Worker => unreachable!("handled above"),
        }
    })
}

fn run_worker(registry: Registry) -> anyhow::Result<ExitCode> {
    if !spawn::parent_alive() {
        anyhow::bail!("the server that started this worker is gone");
    }
    // One thread for frames and I/O-bound kinds; CPU-bound kinds get
    // blocking threads of their own.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the worker runtime")?;
    rt.block_on(async {
        // The server talks to us over pipes: use them as non-blocking pipes
        // on the event loop. tokio's stdin/stdout would hop through a
        // blocking thread for every read and write.
        match worker_pipes() {
            Ok((rx, tx)) => child::serve(registry, rx, tx).await,
            Err(_) => child::serve(registry, tokio::io::stdin(), tokio::io::stdout()).await,
        }
    })
    .context("worker pipe failed")?;
    // Blocking threads may still be computing for a server that is gone.
    std::process::exit(0);
}

/// Stdin and stdout as async pipes (they are pipes when a server spawned us).
fn worker_pipes() -> std::io::Result<(
    tokio::net::unix::pipe::Receiver,
    tokio::net::unix::pipe::Sender,
)> {
    use std::os::fd::AsFd;
    use tokio::net::unix::pipe;
    let stdin = std::io::stdin().as_fd().try_clone_to_owned()?;
    let stdout = std::io::stdout().as_fd().try_clone_to_owned()?;
    Ok((
        pipe::Receiver::from_owned_fd(stdin)?,
        pipe::Sender::from_owned_fd(stdout)?,
    ))
}

async fn serve(settings: Settings, registry: Registry) -> anyhow::Result<ExitCode> {
    let app = Application::build(settings, registry).await?;
    let addr = app.local_addr()?;
    // Listening for signals before the line below: a script that sends
    // SIGTERM as soon as it reads the line gets a graceful stop.
    let mut signals = StopSignals::listen().context("cannot listen for signals")?;
    // One line on stdout that scripts and tests can wait for.
    println!("taskwire listening on http://{addr}");
    tracing::info!(%addr, "listening");
    let graceful = app.graceful();
    let now = app.shutdown_token();
    tokio::spawn(async move {
        signals.next().await;
        tracing::info!("shutting down: finishing running tasks (signal again to stop at once)");
        tokio::select! {
            () = graceful.run() => {}
            () = signals.next() => now.cancel(),
        }
    });
    app.run_until_stopped().await?;
    Ok(ExitCode::SUCCESS)
}

/// SIGINT (ctrl-c) and SIGTERM, caught from the moment this is created.
struct StopSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn listen() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Resolves at the next SIGINT or SIGTERM.
    async fn next(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

async fn submit(args: SubmitArgs) -> anyhow::Result<ExitCode> {
    let input: Value = serde_json::from_str(&args.input).context("--input is not valid JSON")?;
    let mut spec = TaskSpec::new(args.kind, input);
    if let Some(p) = args.priority {
        spec.priority = p;
    }
    spec.timeout_ms = args.timeout_ms;
    if let Some(n) = args.max_attempts {
        spec.max_attempts = n;
    }
    let mut client = connect(&args.server).await?;
    let task = client.submit(&spec).await.context("task refused")?;
    println!("{}", task.id);
    if !args.wait {
        return Ok(ExitCode::SUCCESS);
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {bar:40} {pos}/{len} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(task.kind.clone());
    bar.enable_steady_tick(SPINNER_TICK);
    let done = client
        .wait_result(task.id, |p| {
            bar.set_length(p.total);
            bar.set_position(p.done);
            if let Some(m) = &p.message {
                bar.set_message(m.clone());
            }
        })
        .await?;
    bar.finish_and_clear();
    print_task(&done)?;
    Ok(exit_for(&done))
}

async fn status(args: TaskArgs) -> anyhow::Result<ExitCode> {
    let client = connect(&args.server).await?;
    let task = client.subscribe(args.id).await?;
    print_task(&task)?;
    Ok(ExitCode::SUCCESS)
}

async fn cancel(args: TaskArgs) -> anyhow::Result<ExitCode> {
    let client = connect(&args.server).await?;
    let task = client.cancel(args.id).await?;
    print_task(&task)?;
    Ok(ExitCode::SUCCESS)
}

async fn retry(args: TaskArgs) -> anyhow::Result<ExitCode> {
    let client = connect(&args.server).await?;
    let payload = serde_json::json!({ "task_id": args.id });
    let ack = client.ack(app::events::RETRY, payload).await?;
    let task = ack.task.context("the server's answer has no task")?;
    print_task(&task)?;
    Ok(ExitCode::SUCCESS)
}

/// `taskwire bench`: exits non-zero unless every task came back as expected.
async fn run_bench(args: bench::BenchArgs) -> anyhow::Result<ExitCode> {
    let config = args.into_config()?;
    // Raises the soft open-file limit to the hard one, as `serve` does.
    let room = crate::serve::default_max_connections();
    if config.clients > room {
        tracing::warn!(
            clients = config.clients,
            room,
            "bench: more sockets than open files allow"
        );
    }
    let json = config.json;
    let stop = CancellationToken::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.cancel();
            // A second ctrl-c does not wait for the tasks in flight.
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    let report = bench::run(config, stop).await?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{report}");
    }
    Ok(if report.all_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// How often the spinner of a waiting `run` turns.
const SPINNER_TICK: Duration = Duration::from_millis(120);

async fn connect(server: &Server) -> anyhow::Result<Client> {
    Client::connect_with_token(
        &server.url,
        server.token.as_deref(),
        crate::client::DEFAULT_TIMEOUT,
    )
    .await
    .with_context(|| format!("cannot connect to {}", server.url))
}

fn print_task(task: &app::Task) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(task)?);
    Ok(())
}

fn exit_for(task: &app::Task) -> ExitCode {
    if task.status == TaskStatus::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
