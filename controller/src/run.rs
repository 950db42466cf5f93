//! The controller's loops, wired together by `main`: translate on change, publish configs,
//! write statuses (leader only), provision data planes (leader only).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::config_hub::ConfigHub;
use crate::dataplane_pods::{self, PodWatch};
use crate::first_status::FirstStatus;
use crate::provision::apply::Provisioner;
use crate::serving_status;
use crate::snapshot::{Options, Snapshot};
use crate::status_writer::StatusWriter;
use crate::translate::config::{resolve_endpoints, with_backends};
use crate::translate::incremental::Incremental;
use crate::translate::output::Translation;
use crate::watch::{Changes, KINDS, Stores};

/// Debounce after a change: coalesces a burst of watch events into one translation while
/// keeping propagation within a few milliseconds.
pub const DEBOUNCE: Duration = Duration::from_millis(3);

/// How long to wait for every kind's initial list before translating anyway (an optional CRD
/// that is not installed never lists).
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(10);

/// Channels the translate loop publishes on.
pub struct Outputs {
    /// Every translation, endpoint updates included (admin /config_dump).
    pub latest: watch::Sender<Option<Arc<Translation>>>,
    /// Full translations only, with their snapshot (status writer, provisioner).
    pub full: watch::Sender<Option<(Arc<Snapshot>, Arc<Translation>)>>,
}

async fn wait_for_sync(changes: &Changes) {
    let deadline = Instant::now() + SYNC_TIMEOUT;
    while changes.synced.load(Ordering::SeqCst) < KINDS && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let synced = changes.synced.load(Ordering::SeqCst);
    if synced < KINDS {
        tracing::warn!(
            synced,
            of = KINDS,
            "not every watch listed in time (missing CRD?); translating anyway"
        );
    }
}

/// Translates on every change and publishes configs to the hub.
pub async fn translate_loop(
    stores: Stores,
    changes: Arc<Changes>,
    options: Options,
    hub: Arc<ConfigHub>,
    out: Outputs,
) {
    wait_for_sync(&changes).await;
    let mut last: Option<Arc<Translation>> = None;
    // Re-attaches only the routes a change reaches; equal to `translate` by construction and
    // by property test.
    let mut engine = Incremental::default();
    loop {
        if last.is_some() {
            changes.notify.notified().await;
            tokio::time::sleep(DEBOUNCE).await;
        }
        let full = changes.full.swap(false, Ordering::SeqCst);
        let endpoints = changes.endpoints.swap(false, Ordering::SeqCst);
        match &last {
            Some(prev) if !full => {
                if endpoints {
                    let t = Arc::new(endpoint_update(&stores, &options, &hub, prev));
                    crate::metrics::ENDPOINT_UPDATES.fetch_add(1, Ordering::Relaxed);
                    out.latest.send_replace(Some(t.clone()));
                    last = Some(t);
                }
            }
            _ => {
                let started = Instant::now();
                let snapshot = Arc::new(stores.snapshot(&options));
                let t = Arc::new(engine.translate(&snapshot));
                let stats = engine.stats();
                crate::metrics::ROUTES_ATTACHED.fetch_add(stats.attached as u64, Ordering::Relaxed);
                crate::metrics::ROUTES_REUSED.fetch_add(stats.reused as u64, Ordering::Relaxed);
                crate::metrics::TRANSLATIONS.fetch_add(1, Ordering::Relaxed);
                crate::metrics::LAST_TRANSLATE_MICROS
                    .store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                for (key, config) in &t.configs {
                    hub.publish(key, config.clone());
                }
                hub.retain(|k| t.configs.contains_key(k));
                out.latest.send_replace(Some(t.clone()));
                out.full.send_replace(Some((snapshot, t.clone())));
                last = Some(t);
            }
        }
    }
}

/// Re-resolves endpoints of the last translation's backends and publishes them (no translate).
fn endpoint_update(
    stores: &Stores,
    options: &Options,
    hub: &ConfigHub,
    prev: &Translation,
) -> Translation {
    let snapshot = stores.endpoints_snapshot(options);
    let mut t = prev.clone();
    for (key, clusters) in &prev.clusters {
        let Some(config) = prev.configs.get(key) else {
            continue;
        };
        let endpoints = resolve_endpoints(&snapshot, clusters);
        let config = with_backends(config.clone(), clusters, &endpoints);
        hub.publish(key, config.clone());
        t.configs.insert(key.clone(), config);
    }
    t
}

/// Delay before retrying failed status writes or provisioning.
pub const RETRY_AFTER: Duration = Duration::from_secs(2);

/// Sleeps until `at`, or never.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending::<()>().await,
    }
}

/// Sleeps for [`RETRY_AFTER`] when `retry`, otherwise never completes.
async fn retry_timer(retry: bool) {
    sleep_until(retry.then(|| Instant::now() + RETRY_AFTER)).await
}

/// Writes statuses whenever a translation, a data-plane Pod (its acks, its readiness) or
/// leadership changes (leader only); failed writes are retried after [`RETRY_AFTER`]. Nothing
/// is written before the Pods are listed (at most [`SYNC_TIMEOUT`] after start), so a new
/// leader does not flap statuses to Pending. A new route's first status may wait a moment for
/// its data plane ([`FirstStatus`]).
pub async fn status_loop(
    mut writer: StatusWriter,
    mut full: watch::Receiver<Option<(Arc<Snapshot>, Arc<Translation>)>>,
    hub: Arc<ConfigHub>,
    pods: PodWatch,
    mut leader: watch::Receiver<bool>,
) {
    let started = Instant::now();
    let mut first = FirstStatus::default();
    loop {
        let current = full.borrow_and_update().clone();
        let is_leader = *leader.borrow_and_update();
        let acked = hub.ack_notify.notified();
        // Without the Pods listed every Gateway would look unserved; wait for them, but not
        // forever (e.g. no RBAC for Pods: the watch logs why, and status is still written).
        let pods_known = pods.synced() || started.elapsed() >= SYNC_TIMEOUT;
        let mut retry = is_leader && !pods_known;
        let mut held_until = None;
        if let (Some((_, t)), true, true) = (current, is_leader, pods_known) {
            let served = dataplane_pods::served(&hub, &pods.pods(), &t);
            let mut honest = serving_status::apply(&t, &served);
            held_until = first.hold(&mut honest, Instant::now(), |kind, key| {
                writer.has_status(kind, key)
            });
            let n = writer.write(&honest).await;
            crate::metrics::STATUS_WRITES.fetch_add(n as u64, Ordering::Relaxed);
            retry = writer.failed();
        }
        tokio::select! {
            _ = retry_timer(retry) => {}
            _ = sleep_until(held_until) => {}
            r = full.changed() => if r.is_err() { return },
            r = leader.changed() => if r.is_err() { return },
            _ = acked => {}
        }
    }
}

/// Provisions data planes for every full translation (leader only).
pub async fn provision_loop(
    mut provisioner: Provisioner,
    mut full: watch::Receiver<Option<(Arc<Snapshot>, Arc<Translation>)>>,
    mut leader: watch::Receiver<bool>,
) {
    loop {
        let current = full.borrow_and_update().clone();
        let is_leader = *leader.borrow_and_update();
        let mut retry = false;
        if let (Some((s, t)), true) = (current, is_leader) {
            retry = !provisioner.sync(&s, &t).await;
        }
        tokio::select! {
            _ = retry_timer(retry) => {}
            r = full.changed() => if r.is_err() { return },
            r = leader.changed() => if r.is_err() { return },
        }
    }
}
