//! The shared state of a running data plane: the current route table (swapped atomically),
//! metrics, upstream pools and the last config error. Applying a config builds the new table
//! off the request path; a bad config is rejected whole and the old one keeps serving.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use tokio::sync::watch;

use crate::backend::Clients;
use crate::metrics::Metrics;
use crate::table::RouteTable;
use pylon_config::delta::{self, Delta};
use pylon_config::{self as config, Config};

#[derive(Debug, Default)]
pub struct Shared {
    table: ArcSwapOption<RouteTable>,
    pub metrics: Metrics,
    pub clients: Clients,
    /// The last rejection's message; cleared by a successful apply.
    pub last_error: Mutex<Option<String>>,
    /// Bumped on every swap; the listener manager watches it.
    changed: Option<watch::Sender<u64>>,
    pub access_log: AtomicBool,
    /// Buffered access-log lines (written when `access_log` is on).
    pub log: crate::accesslog::AccessLog,
    pub draining: AtomicBool,
    /// Where listener sockets bind and which ports are bound (kept by the listener manager), so
    /// a config with a port that cannot be bound is rejected before it is swapped in.
    pub(crate) sockets: Mutex<Sockets>,
}

#[derive(Debug, Default)]
pub(crate) struct Sockets {
    pub bind: Option<std::net::IpAddr>,
    pub bound: std::collections::BTreeSet<u16>,
    /// UDP ports bound: another space of numbers.
    pub udp_bound: std::collections::BTreeSet<u16>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Invalid(#[from] config::LoadError),
    #[error("building route table: {0}")]
    Build(#[from] crate::table::BuildError),
    #[error("delta before any snapshot")]
    NoConfig,
    /// The stream and the data plane disagree on what runs: only a new stream (a snapshot, or
    /// a delta from what runs) can fix it.
    #[error("delta from version {base:?}, but {running:?} is running")]
    Base { base: String, running: String },
    #[error("invalid delta: {0}")]
    Delta(#[from] delta::DeltaError),
    #[error("invalid config: {path}: cannot bind {addr}: {error}")]
    Bind {
        path: String,
        addr: std::net::SocketAddr,
        error: std::io::Error,
    },
}

impl Shared {
    pub fn new() -> Arc<Self> {
        Self::with_workers(1)
    }

    /// State for `workers` worker threads (one upstream pool set each).
    pub fn with_workers(workers: usize) -> Arc<Self> {
        let (tx, _) = watch::channel(0);
        Arc::new(Shared {
            changed: Some(tx),
            clients: Clients::per_worker(workers),
            ..Default::default()
        })
    }

    pub fn table(&self) -> Option<Arc<RouteTable>> {
        self.table.load_full()
    }

    /// The current table for the request path: an arc-swap guard, which (unlike
    /// [`table`](Self::table)) does not touch the shared reference count on every request.
    pub fn table_guard(&self) -> arc_swap::Guard<Option<Arc<RouteTable>>> {
        self.table.load()
    }

    pub fn ready(&self) -> bool {
        self.table.load().is_some() && !self.draining.load(Ordering::Relaxed)
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed
            .as_ref()
            .expect("created by Shared::new")
            .subscribe()
    }

    /// Validates `config`, builds its table, checks that new listener ports can be bound, and
    /// swaps it in; on error nothing changes.
    pub fn apply(&self, version: &str, config: Config) -> Result<(), ApplyError> {
        let result = config::load::check(config)
            .map_err(ApplyError::from)
            .and_then(|c| {
                // A snapshot (a reconnect's, say) keeps what the running table learnt of the
                // endpoints that stay.
                Ok(RouteTable::build_after(
                    self.table().as_deref(),
                    version.to_string(),
                    Arc::new(c),
                    &self.clients,
                )?)
            })
            .and_then(|t| self.check_ports(&t).map(|()| t));
        self.finish(version, result)
    }

    /// Trial-binds the ports the new table adds (ports already ours are skipped).
    fn check_ports(&self, table: &RouteTable) -> Result<(), ApplyError> {
        let sockets = self.sockets.lock().expect("poisoned");
        let Some(bind) = sockets.bind else {
            return Ok(());
        };
        let current = self.table();
        // TCP and UDP ports are numbered apart.
        let ours = |udp: bool, port: u16| {
            let bound = if udp {
                &sockets.udp_bound
            } else {
                &sockets.bound
            };
            bound.contains(&port)
                || current.as_ref().is_some_and(|t| {
                    if udp {
                        t.udp_ports.contains_key(&port)
                    } else {
                        t.ports.contains_key(&port)
                    }
                })
        };
        let mut checked = std::collections::BTreeSet::new();
        for (i, l) in table.config.listeners.iter().enumerate() {
            let udp = l.protocol == config::ListenerProtocol::Udp;
            if ours(udp, l.port) || !checked.insert((udp, l.port)) {
                continue;
            }
            let addr = std::net::SocketAddr::new(bind, l.port);
            let trial = if udp {
                std::net::UdpSocket::bind(addr).map(drop)
            } else {
                std::net::TcpListener::bind(addr).map(drop)
            };
            if let Err(error) = trial {
                return Err(ApplyError::Bind {
                    path: format!("listeners[{i}].port"),
                    addr,
                    error,
                });
            }
        }
        Ok(())
    }

    /// Applies a delta from version `base`, which must be the one running: builds the new
    /// config, validates what the delta touched, rebuilds only those parts of the table (the
    /// rest is shared with the running one) and swaps it in; on error nothing changes. A delta
    /// from another version ([`ApplyError::Base`]) says nothing about the config: it is not
    /// counted as a rejection.
    pub fn apply_delta(&self, version: &str, base: &str, delta: &Delta) -> Result<(), ApplyError> {
        let current = self.table();
        if let Some(running) = current.as_ref().map(|t| &t.version)
            && running != base
        {
            return Err(ApplyError::Base {
                base: base.to_string(),
                running: running.clone(),
            });
        }
        let result = (|| {
            let current = current.ok_or(ApplyError::NoConfig)?;
            let (config, touched) = delta::apply(&current.config, delta)?;
            let errors = config::validate_touched(&config, &touched);
            if !errors.is_empty() {
                return Err(config::LoadError::Invalid(errors).into());
            }
            let table = current.update(
                version.to_string(),
                Arc::new(config),
                &touched,
                &self.clients,
            )?;
            self.check_ports(&table)?;
            Ok(table)
        })();
        self.finish(version, result)
    }

    fn finish(
        &self,
        version: &str,
        result: Result<RouteTable, ApplyError>,
    ) -> Result<(), ApplyError> {
        match result {
            Ok(table) => {
                self.table.store(Some(Arc::new(table)));
                *self.metrics.config_version.lock().expect("poisoned") = version.to_string();
                self.metrics.config_reloads.fetch_add(1, Ordering::Relaxed);
                *self.last_error.lock().expect("poisoned") = None;
                if let Some(tx) = &self.changed {
                    tx.send_modify(|v| *v += 1);
                }
                tracing::info!(version, "config applied");
                Ok(())
            }
            Err(e) => {
                self.metrics
                    .config_rejections
                    .fetch_add(1, Ordering::Relaxed);
                *self.last_error.lock().expect("poisoned") = Some(e.to_string());
                tracing::warn!(version, error = %e, "config rejected; keeping the previous one");
                Err(e)
            }
        }
    }
}
