//! One Pod's worker: sets up its sandbox (IP, netns, volumes, /etc files), runs its init
//! containers then its containers, keeps its status current, and on deletion stops everything,
//! tears the sandbox down and finalises the deletion so its namespace can terminate.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use tokio::sync::{Notify, watch};

use crate::container::{self, Outcome, PodEnv, Slot};
use crate::context::Ctx;
use crate::environ::PodFacts;
use crate::netns::{self, PodNet};
use crate::status::{self, CState, ContainerRt, PodRt};

/// The manager's handle on a running Pod worker.
pub struct PodHandle {
    /// The latest version of the Pod object.
    pub pod: watch::Sender<Pod>,
    /// Set when the Pod object disappeared from the API server (e.g. force-deleted).
    pub gone: watch::Sender<bool>,
}

/// Starts a worker for `pod`; `on_exit` runs when it has cleaned up.
pub fn spawn(ctx: Arc<Ctx>, pod: Pod, on_exit: impl FnOnce() + Send + 'static) -> PodHandle {
    let (pod_tx, pod_rx) = watch::channel(pod);
    let (gone_tx, gone_rx) = watch::channel(false);
    tokio::spawn(async move {
        run(ctx, pod_rx, gone_rx).await;
        on_exit();
    });
    PodHandle {
        pod: pod_tx,
        gone: gone_tx,
    }
}

fn is_deleting(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Grace period for stopping: the deletion's, else the spec's, else 30s.
fn grace(pod: &Pod) -> Duration {
    let secs = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30);
    Duration::from_secs(secs.max(0) as u64)
}

async fn run(ctx: Arc<Ctx>, mut pod_rx: watch::Receiver<Pod>, mut gone_rx: watch::Receiver<bool>) {
    let pod = pod_rx.borrow().clone();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let spec = pod.spec.clone().unwrap_or_default();
    let restart_policy = spec
        .restart_policy
        .clone()
        .unwrap_or_else(|| "Always".into());
    tracing::info!(pod = %name, namespace = %ns, %uid, "starting pod");

    let rt = Arc::new(Mutex::new(PodRt {
        pod_ip: None,
        host_ip: ctx.cfg.node_ip,
        start_time: Timestamp::now(),
        initialized: spec.init_containers.as_ref().is_none_or(Vec::is_empty),
        init_containers: spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| ContainerRt::new(&c.name, c.image.as_deref().unwrap_or("")))
            .collect(),
        containers: spec
            .containers
            .iter()
            .map(|c| ContainerRt::new(&c.name, c.image.as_deref().unwrap_or("")))
            .collect(),
        message: None,
    }));
    let notify = Arc::new(Notify::new());
    let writer = tokio::spawn(status_writer(
        api.clone(),
        pod_rx.clone(),
        rt.clone(),
        notify.clone(),
    ));
    notify.notify_one();

    let pod_dir = ctx.cfg.pods_dir().join(&uid);
    let log_dir = crate::logquery::pod_log_dir(&ctx.cfg.logs_dir(), &ns, &name, &uid);
    let mut net: Option<PodNet> = None;

    // Stopped before it ever ran (deleted while pending): skip straight to teardown.
    let (stop_tx, stop_rx) = watch::channel::<Option<Duration>>(None);
    let mut stopping = false;
    let mut last_problem = String::new();

    // 1. Sandbox: IP, netns, /etc files, volumes. Retried until it works or the Pod goes away.
    let penv = loop {
        if is_deleting(&pod_rx.borrow()) || *gone_rx.borrow() {
            stopping = true;
            break None;
        }
        match sandbox(&ctx, &pod, &uid, &ns, &name, &pod_dir, &log_dir, &mut net).await {
            Ok(env) => {
                let mut r = rt.lock().unwrap_or_else(|e| e.into_inner());
                r.pod_ip = Some(env.pod_ip);
                r.message = None;
                drop(r);
                notify.notify_one();
                break Some(Arc::new(env));
            }
            Err(message) => {
                if message != last_problem {
                    tracing::warn!(pod = %name, namespace = %ns, %message, "pod sandbox not ready");
                    last_problem = message.clone();
                }
                {
                    let mut r = rt.lock().unwrap_or_else(|e| e.into_inner());
                    r.message = Some(message.clone());
                    let r = &mut *r;
                    for c in r.containers.iter_mut().chain(r.init_containers.iter_mut()) {
                        c.state =
                            CState::waiting("CreateContainerConfigError", Some(message.clone()));
                    }
                }
                notify.notify_one();
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    _ = pod_rx.changed() => {}
                    _ = gone_rx.changed() => {}
                }
            }
        }
    };

    if let Some(penv) = penv {
        let refresher = tokio::spawn(refresh_volumes(ctx.clone(), penv.clone()));
        let default_grace = grace(&pod);
        // 2. Init containers, in order, each to success.
        let mut init_ok = true;
        for (idx, c) in spec.init_containers.iter().flatten().enumerate() {
            let slot = Slot {
                rt: rt.clone(),
                notify: notify.clone(),
                init: true,
                idx,
            };
            let task = container::run(
                ctx.clone(),
                penv.clone(),
                c.clone(),
                slot,
                restart_policy.clone(),
                default_grace,
                stop_rx.clone(),
            );
            let outcome = watch_for_stop(task, &mut pod_rx, &mut gone_rx, &stop_tx).await;
            if outcome != Outcome::Succeeded {
                init_ok = false;
                break;
            }
        }
        if init_ok {
            {
                rt.lock().unwrap_or_else(|e| e.into_inner()).initialized = true;
            }
            notify.notify_one();
            // 3. Containers, concurrently.
            let tasks: Vec<_> = spec
                .containers
                .iter()
                .enumerate()
                .map(|(idx, c)| {
                    let slot = Slot {
                        rt: rt.clone(),
                        notify: notify.clone(),
                        init: false,
                        idx,
                    };
                    tokio::spawn(container::run(
                        ctx.clone(),
                        penv.clone(),
                        c.clone(),
                        slot,
                        restart_policy.clone(),
                        default_grace,
                        stop_rx.clone(),
                    ))
                })
                .collect();
            let all = futures::future::join_all(tasks);
            watch_for_stop(
                async {
                    all.await;
                    Outcome::Stopped
                },
                &mut pod_rx,
                &mut gone_rx,
                &stop_tx,
            )
            .await;
        }
        stopping = stopping || stop_tx.borrow().is_some();
        refresher.abort();
    }

    // 4. Teardown. A finished (Succeeded/Failed) Pod keeps its status; its sandbox goes now.
    teardown(&ctx, &uid, &pod_dir, net.as_ref());
    notify.notify_one();
    if !stopping {
        // Completed on its own: wait for the deletion before finalising.
        loop {
            if is_deleting(&pod_rx.borrow()) || *gone_rx.borrow() {
                break;
            }
            tokio::select! {
                r = pod_rx.changed() => if r.is_err() { break },
                r = gone_rx.changed() => if r.is_err() { break },
            }
        }
    }
    // Give the status writer a moment to publish the final container states.
    tokio::time::sleep(Duration::from_millis(300)).await;
    writer.abort();
    let _ = std::fs::remove_dir_all(&log_dir);
    if !*gone_rx.borrow() {
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&name, &dp).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => {
                tracing::warn!(pod = %name, namespace = %ns, error = %e, "finalising pod deletion")
            }
        }
    }
    tracing::info!(pod = %name, namespace = %ns, %uid, "pod removed");
}

/// Runs `task` while watching for the Pod's deletion; on deletion, signals `stop` with the
/// grace period and keeps waiting for `task` to wind down.
async fn watch_for_stop(
    task: impl std::future::Future<Output = Outcome>,
    pod_rx: &mut watch::Receiver<Pod>,
    gone_rx: &mut watch::Receiver<bool>,
    stop_tx: &watch::Sender<Option<Duration>>,
) -> Outcome {
    tokio::pin!(task);
    loop {
        {
            let pod = pod_rx.borrow();
            if *gone_rx.borrow() {
                stop_tx.send_replace(Some(Duration::ZERO));
            } else if is_deleting(&pod) && stop_tx.borrow().is_none() {
                stop_tx.send_replace(Some(grace(&pod)));
            }
        }
        tokio::select! {
            outcome = &mut task => return outcome,
            r = pod_rx.changed() => if r.is_err() { stop_tx.send_replace(Some(Duration::ZERO)); },
            r = gone_rx.changed() => if r.is_err() { stop_tx.send_replace(Some(Duration::ZERO)); },
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn sandbox(
    ctx: &Ctx,
    pod: &Pod,
    uid: &str,
    ns: &str,
    name: &str,
    pod_dir: &std::path::Path,
    log_dir: &std::path::Path,
    net: &mut Option<PodNet>,
) -> Result<PodEnv, String> {
    std::fs::create_dir_all(pod_dir).map_err(|e| format!("creating {}: {e}", pod_dir.display()))?;
    std::fs::create_dir_all(log_dir).map_err(|e| format!("creating {}: {e}", log_dir.display()))?;
    let host_network = pod.spec.as_ref().and_then(|s| s.host_network) == Some(true);
    if net.is_none() && !host_network {
        // After a podlet restart, keep the address the Pod already reports, so its endpoints
        // do not change under running clients.
        let previous: Option<std::net::Ipv4Addr> = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse().ok());
        let ip = match previous.filter(|ip| ctx.claim_ip(*ip)) {
            Some(ip) => ip,
            None => ctx.allocate_ip().map_err(|e| e.to_string())?,
        };
        let n = PodNet::new(&ctx.cfg.net_prefix, ip);
        // Record the network first, so a crash mid-setup is still cleaned up.
        let _ = std::fs::write(
            pod_dir.join("net.json"),
            serde_json::to_vec(&n).unwrap_or_default(),
        );
        if let Err(e) = netns::setup(&n, &ctx.cfg.bridge, ctx.cfg.pod_cidr.len, ctx.cfg.node_ip) {
            ctx.release_ip(ip);
            return Err(format!("setting up pod network: {e}"));
        }
        *net = Some(n);
    }
    // hostNetwork Pods share the node's network (and address).
    let pod_ip = net.as_ref().map_or(ctx.cfg.node_ip, |n| n.ip);
    let etc = pod_dir.join("etc");
    std::fs::create_dir_all(&etc).map_err(|e| e.to_string())?;
    let resolv = etc.join("resolv.conf");
    let hosts = etc.join("hosts");
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let resolv_text = crate::dns::resolv_conf(
        pod.spec.as_ref(),
        &host_resolv,
        ns,
        &ctx.cfg.cluster_dns,
        &ctx.cfg.cluster_domain,
    );
    std::fs::write(&resolv, resolv_text).map_err(|e| e.to_string())?;
    std::fs::write(
        &hosts,
        crate::dns::hosts_file(pod, &pod_ip.to_string(), name, &ctx.cfg.cluster_domain),
    )
    .map_err(|e| e.to_string())?;
    let facts = PodFacts {
        pod_ip: pod_ip.to_string(),
        host_ip: ctx.cfg.node_ip.to_string(),
        node_name: ctx.cfg.node_name.clone(),
    };
    let volumes: BTreeMap<String, PathBuf> =
        crate::volumes::materialize(&ctx.client, pod, &facts, &pod_dir.join("volumes"), true)
            .await
            .map_err(|e| e.to_string())?;
    Ok(PodEnv {
        pod: pod.clone(),
        uid: uid.into(),
        namespace: ns.into(),
        name: name.into(),
        pod_ip,
        net: net.clone(),
        net_lock: tokio::sync::Mutex::new(()),
        volumes,
        etc_files: vec![
            (resolv, PathBuf::from("/etc/resolv.conf")),
            (hosts, PathBuf::from("/etc/hosts")),
        ],
        pod_dir: pod_dir.to_owned(),
        log_dir: log_dir.to_owned(),
    })
}

/// Keeps Secret, ConfigMap and downward API volume contents current, as the kubelet does
/// (it syncs about once a minute).
async fn refresh_volumes(ctx: Arc<Ctx>, penv: Arc<PodEnv>) {
    let facts = PodFacts {
        pod_ip: penv.pod_ip.to_string(),
        host_ip: ctx.cfg.node_ip.to_string(),
        node_name: ctx.cfg.node_name.clone(),
    };
    let root = penv.pod_dir.join("volumes");
    loop {
        tokio::time::sleep(Duration::from_secs(30)).await;
        if let Err(e) =
            crate::volumes::materialize(&ctx.client, &penv.pod, &facts, &root, false).await
        {
            tracing::debug!(pod = %penv.name, namespace = %penv.namespace, error = %e, "refreshing volumes");
        }
    }
}

/// Removes the Pod's processes (already stopped), network, host paths and state.
fn teardown(ctx: &Ctx, uid: &str, pod_dir: &std::path::Path, net: Option<&PodNet>) {
    crate::cleanup::kill_recorded(pod_dir);
    if let Some(n) = net {
        // Anything that escaped its process group (daemonised) still lives in the netns.
        crate::cleanup::kill_netns_processes(std::slice::from_ref(&n.netns));
        netns::teardown(n);
        ctx.release_ip(n.ip);
    }
    ctx.host_paths.release(uid);
    let _ = std::fs::remove_dir_all(pod_dir);
}

/// Publishes the Pod's status whenever the runtime view changes, skipping no-op writes.
async fn status_writer(
    api: Api<Pod>,
    pod_rx: watch::Receiver<Pod>,
    rt: Arc<Mutex<PodRt>>,
    notify: Arc<Notify>,
) {
    let mut last: Option<serde_json::Value> = None;
    loop {
        notify.notified().await;
        // Coalesce bursts (several containers starting at once).
        tokio::time::sleep(Duration::from_millis(100)).await;
        let pod = pod_rx.borrow().clone();
        let snapshot = rt.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let status = status::compute(&pod, &snapshot, Timestamp::now());
        let value = serde_json::json!({ "status": status });
        if last.as_ref() == Some(&value) {
            continue;
        }
        let name = pod.metadata.name.clone().unwrap_or_default();
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&value))
            .await
        {
            Ok(updated) => {
                last = Some(value);
                // Keep our copy's conditions current so transition times stay put.
                let _ = updated;
            }
            Err(kube::Error::Api(e)) if e.code == 404 => return,
            Err(e) => {
                tracing::warn!(pod = %name, error = %e, "writing pod status; will retry");
                tokio::time::sleep(Duration::from_secs(1)).await;
                notify.notify_one();
            }
        }
    }
}
