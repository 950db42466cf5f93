//! `pylon-dataplane`: serves the traffic of one Gateway, configured from a file (`--config`,
//! reloaded on SIGHUP) or streamed from the controller (`--controller`, `--gateway`).
#![forbid(unsafe_code)]

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use pylon_config as config;
use pylon_dataplane::{admin, client, limits, server, state::Shared};
use tokio::signal::unix::{SignalKind, signal};

/// `System`, but tokio's 128-byte-aligned tasks and I/O registrations (two per connection) are
/// served by `malloc`'s cached path (see the module).
#[global_allocator]
static ALLOCATOR: pylon_dataplane::alloc::Malloc = pylon_dataplane::alloc::Malloc;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Pylon data plane: serves one Gateway's HTTPRoute and GRPCRoute traffic"
)]
struct Args {
    /// Config file (YAML or JSON, apiVersion pylon.dev/dataplane/v1); reloaded on SIGHUP.
    #[arg(long, conflicts_with = "controller")]
    config: Option<PathBuf>,
    /// Controller config server, https://HOST:PORT (verified against --config-ca).
    #[arg(long, requires = "gateway")]
    controller: Option<String>,
    /// PEM bundle of the controller's config CA; the controller's certificate must chain to it.
    #[arg(long, requires = "controller", conflicts_with = "controller_plaintext")]
    config_ca: Option<PathBuf>,
    /// Dial the controller over plain HTTP (tests, local development): the config and the
    /// ServiceAccount token travel unencrypted.
    #[arg(long, requires = "controller")]
    controller_plaintext: bool,
    /// The Gateway served, NAMESPACE/NAME.
    #[arg(long)]
    gateway: Option<String>,
    #[arg(long, env = "POD_NAME", default_value = "pylon-dataplane")]
    pod_name: String,
    /// Bearer token sent to the controller if the file exists.
    #[arg(
        long,
        default_value = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    )]
    token_file: PathBuf,
    #[arg(long, default_value = "0.0.0.0:9901")]
    admin_addr: SocketAddr,
    /// Address the listener ports bind to.
    #[arg(long, default_value = "0.0.0.0")]
    bind_addr: IpAddr,
    #[arg(long, default_value_t = 65536)]
    max_header_bytes: usize,
    #[arg(long, default_value_t = 10_000)]
    header_read_timeout_ms: u64,
    #[arg(long, default_value_t = 60)]
    idle_timeout_secs: u64,
    #[arg(long, default_value_t = 10_000)]
    max_connections: usize,
    /// UDP sessions (client addresses being relayed) open at once; a new client's datagrams
    /// beyond it are dropped.
    #[arg(long, default_value_t = 10_000)]
    max_udp_sessions: usize,
    /// Bytes all unfinished request heads may hold together beyond their first 8 KiB; a head
    /// that needs more while they are spent is answered 503.
    #[arg(long, default_value_t = limits::DEFAULT_PENDING_HEAD_BYTES)]
    max_pending_head_bytes: usize,
    /// Seconds to let in-flight requests finish once draining starts.
    #[arg(long, default_value_t = 30)]
    drain_timeout_secs: u64,
    /// Seconds between SIGTERM and draining: `/ready` fails at once, but new connections are
    /// still accepted and served, since the Service's endpoints and every node's kube-proxy
    /// rules take a moment to stop sending them (a rolling restart lost ~2 % of new
    /// connections without it). The provisioned Deployment's grace period covers this plus
    /// the drain timeout.
    #[arg(long, default_value_t = 5)]
    drain_delay_secs: u64,
    /// Disable the JSON access log on stdout.
    #[arg(long)]
    no_access_log: bool,
    /// Worker threads serving traffic, each a single-threaded runtime with its own
    /// `SO_REUSEPORT` listeners and upstream pools; default `TOKIO_WORKER_THREADS` if set, else
    /// the CPUs available.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    workers: Option<u16>,
    /// What serves HTTP/1.1 client connections: `native` (Pylon's own path, handing what it
    /// does not serve to hyper) or `hyper` (hyper for everything).
    #[arg(long, value_enum, default_value_t = Http1Arg::Native)]
    http1: Http1Arg,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Http1Arg {
    Native,
    Hyper,
}

/// The worker count when `--workers` is not given.
fn default_workers() -> usize {
    std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn main() -> anyhow::Result<()> {
    // The control thread (config stream, SIGHUP reloads, admin, signals) is separate from the
    // traffic workers, which are single-threaded runtimes (nginx's model): no work stealing,
    // no cross-thread wake-ups on the request path.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the control runtime")?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let workers = args.workers.map_or_else(default_workers, usize::from);
    let shared = Shared::with_workers(workers);
    shared
        .access_log
        .store(!args.no_access_log, Ordering::Relaxed);

    // The listener manager exists before the first config so new ports are trial-bound on apply.
    let (drain_tx, drain_rx) = tokio::sync::watch::channel(false);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let limits = limits::Limits {
        max_header_bytes: args.max_header_bytes,
        header_read_timeout: Duration::from_millis(args.header_read_timeout_ms),
        idle_timeout: Duration::from_secs(args.idle_timeout_secs),
        max_connections: args.max_connections,
        max_udp_sessions: args.max_udp_sessions,
        head_budget: pylon_dataplane::head_budget::HeadBudget::new(args.max_pending_head_bytes),
    };
    let managers: Vec<_> = (0..workers)
        .map(|_| {
            server::ListenerManager::new(
                shared.clone(),
                args.bind_addr,
                limits.clone(),
                drain_rx.clone(),
            )
            .stop_accepting_on(stop_rx.clone())
            .reuse_port(workers > 1)
            .http1(match args.http1 {
                Http1Arg::Native => server::Http1::Native,
                Http1Arg::Hyper => server::Http1::Hyper,
            })
        })
        .collect();
    if let Some(path) = &args.config {
        let cfg = config::load_file(path).with_context(|| format!("loading {}", path.display()))?;
        shared
            .apply(&file_version(path), cfg)
            .context("applying config")?;
        let (shared, path) = (shared.clone(), path.clone());
        let mut hup = signal(SignalKind::hangup())?;
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                match config::load_file(&path) {
                    Ok(cfg) => {
                        let _ = shared.apply(&file_version(&path), cfg);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "reload rejected; keeping the previous config");
                        shared
                            .metrics
                            .config_rejections
                            .fetch_add(1, Ordering::Relaxed);
                        *shared.last_error.lock().expect("poisoned") = Some(e.to_string());
                    }
                }
            }
        });
    } else if let Some(url) = &args.controller {
        let gateway = args
            .gateway
            .as_deref()
            .context("--gateway is required with --controller")?;
        let token = args.token_file.exists().then(|| args.token_file.clone());
        let transport = client::Transport::from_flags(
            url,
            args.config_ca.as_deref(),
            args.controller_plaintext,
        )?;
        let c = client::ControllerClient::new(
            url,
            &transport,
            gateway,
            &args.pod_name,
            token,
            shared.clone(),
        )?;
        tokio::spawn(c.run());
    } else {
        bail!("one of --config FILE or --controller URL --gateway NS/NAME is required");
    }

    // Workers stop accepting on `stop` (each drops its `closed` sender once its sockets are
    // closed), then keep serving their open connections until `done`.
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let (closed_tx, mut closed_rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut threads = Vec::with_capacity(workers);
    for (i, manager) in managers.into_iter().enumerate() {
        let mut done = done_rx.clone();
        let closed = closed_tx.clone();
        let thread = std::thread::Builder::new()
            .name(format!("pylon-worker-{i}"))
            .spawn(move || {
                pylon_dataplane::worker::set_worker(i);
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("building a worker runtime");
                rt.block_on(async move {
                    manager.run().await;
                    drop(closed);
                    let _ = done.wait_for(|d| *d).await;
                });
            })
            .context("starting a worker thread")?;
        threads.push(thread);
    }
    tracing::info!(workers, "workers started");

    let admin = tokio::net::TcpListener::bind(args.admin_addr)
        .await
        .with_context(|| format!("binding admin address {}", args.admin_addr))?;
    tracing::info!(addr = %args.admin_addr, "admin listening");
    let router = admin::router(shared.clone());
    tokio::spawn(async move { axum::serve(admin, router).await });

    // Thousands of connections that came and went leave their buffers' memory in glibc's arenas.
    tokio::spawn(pylon_dataplane::memory::trim_after_bursts(shared.clone()));

    // Access-log lines are buffered; written in batches (and at exit, below).
    let flusher = shared.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tick.tick().await;
            flusher.log.flush();
        }
    });

    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    shared.draining.store(true, Ordering::Relaxed);
    let delay = Duration::from_secs(args.drain_delay_secs);
    tracing::info!(
        ?delay,
        "not ready; still serving new connections until the delay is over"
    );
    // A second signal skips the rest of the delay.
    tokio::select! {
        _ = tokio::time::sleep(delay) => {}
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("draining");
    // No socket accepts any more before open connections are told to close: a client whose
    // idle connection was closed must not then reach a listener that is about to go.
    drop(closed_tx);
    let _ = stop_tx.send(true);
    while closed_rx.recv().await.is_some() {}
    let _ = drain_tx.send(true);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.drain_timeout_secs);
    // UDP sessions take no new client once the listeners stop, and end when idle.
    while (shared.metrics.active_connections.load(Ordering::Relaxed) > 0
        || shared.metrics.udp.active() > 0)
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = done_tx.send(true);
    for t in threads {
        let _ = t.join();
    }
    shared.log.flush();
    Ok(())
}

/// A file config's version: its modification time and size, so reloads show up in metrics.
fn file_version(path: &std::path::Path) -> String {
    let meta = std::fs::metadata(path).ok();
    let mtime = meta
        .as_ref()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis());
    format!("file-{mtime}-{}", meta.map_or(0, |m| m.len()))
}
