//! One container's life: build its environment, start it through the launcher, capture its
//! output to a log file, probe it, restart it per restartPolicy with exponential back-off, and
//! stop it gracefully (SIGTERM to its process group, grace period, SIGKILL).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::sync::{Notify, watch};

use crate::context::Ctx;
use crate::environ::{self, PodFacts, Refs};
use crate::launch::LaunchSpec;
use crate::logquery::format_line;
use crate::probe::{self, Thresholds};
use crate::status::{CState, ContainerRt, PodRt};

/// What all containers of one Pod share once its sandbox (network, volumes) is ready.
pub struct PodEnv {
    pub pod: Pod,
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub pod_ip: Ipv4Addr,
    /// The Pod's network, recreated if its namespace disappears (e.g. removed by hand);
    /// `None` for hostNetwork Pods.
    pub net: Option<crate::netns::PodNet>,
    pub net_lock: tokio::sync::Mutex<()>,
    pub volumes: BTreeMap<String, PathBuf>,
    /// (host file, target) pairs for /etc/resolv.conf and /etc/hosts.
    pub etc_files: Vec<(PathBuf, PathBuf)>,
    pub pod_dir: PathBuf,
    pub log_dir: PathBuf,
}

/// Where a container's record lives in the Pod's runtime view.
#[derive(Clone)]
pub struct Slot {
    pub rt: Arc<Mutex<PodRt>>,
    pub notify: Arc<Notify>,
    pub init: bool,
    pub idx: usize,
}

impl Slot {
    pub fn update(&self, f: impl FnOnce(&mut ContainerRt)) {
        {
            let mut rt = self.rt.lock().unwrap_or_else(|e| e.into_inner());
            let list = if self.init {
                &mut rt.init_containers
            } else {
                &mut rt.containers
            };
            if let Some(c) = list.get_mut(self.idx) {
                f(c);
            }
        }
        self.notify.notify_one();
    }
}

/// How a container's run loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed,
    Stopped,
}

/// `Some(grace)` once the Pod is being stopped.
pub type StopRx = watch::Receiver<Option<Duration>>;

async fn stop_requested(stop: &mut StopRx) -> Duration {
    match stop.wait_for(Option::is_some).await {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => Duration::ZERO, // the Pod worker is gone: stop now
    }
}

/// Fetches the Secrets and ConfigMaps a container's env/envFrom reference.
async fn fetch_refs(
    client: &kube::Client,
    ns: &str,
    c: &Container,
    pod_spec_links: bool,
) -> Result<Refs, kube::Error> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let mut refs = Refs::default();
    // The API server's Service is always exposed (in-cluster clients need KUBERNETES_SERVICE_*).
    let default_services: Api<Service> = Api::namespaced(client.clone(), "default");
    refs.services
        .extend(default_services.get_opt("kubernetes").await?);
    if pod_spec_links {
        let services: Api<Service> = Api::namespaced(client.clone(), ns);
        refs.services
            .extend(services.list(&Default::default()).await?.items);
    }
    let mut secret_names = vec![];
    let mut cm_names = vec![];
    for e in c.env.iter().flatten() {
        if let Some(from) = &e.value_from {
            if let Some(s) = &from.secret_key_ref {
                secret_names.push(s.name.clone());
            }
            if let Some(m) = &from.config_map_key_ref {
                cm_names.push(m.name.clone());
            }
        }
    }
    for from in c.env_from.iter().flatten() {
        if let Some(s) = &from.secret_ref {
            secret_names.push(s.name.clone());
        }
        if let Some(m) = &from.config_map_ref {
            cm_names.push(m.name.clone());
        }
    }
    for name in secret_names {
        let s = secrets.get_opt(&name).await?;
        let data = s.map(|s| {
            s.data
                .into_iter()
                .flatten()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                .collect()
        });
        refs.secrets.insert(name, data);
    }
    for name in cm_names {
        let m = cms.get_opt(&name).await?;
        refs.config_maps
            .insert(name, m.map(|m| m.data.unwrap_or_default()));
    }
    Ok(refs)
}

struct Running {
    child: tokio::process::Child,
    pid: u32,
    started_at: Timestamp,
    pumps: Vec<tokio::task::JoinHandle<()>>,
}

/// Builds everything and starts the process; `Err((reason, message))` is a Waiting state.
async fn start(
    ctx: &Ctx,
    penv: &PodEnv,
    c: &Container,
    restart: i32,
) -> Result<Running, (&'static str, String)> {
    let exe = ctx
        .images
        .resolve(c.image.as_deref().unwrap_or(""))
        .map_err(|e| ("ErrImagePull", e.to_string()))?
        .to_owned();
    if !exe.is_file() {
        return Err((
            "ErrImagePull",
            format!(
                "image {:?} maps to {} in {}, which does not exist",
                c.image.as_deref().unwrap_or(""),
                exe.display(),
                ctx.images.path().display()
            ),
        ));
    }
    let config_err = |m: String| ("CreateContainerConfigError", m);
    if let Some(net) = &penv.net
        && !Path::new(&net.netns_path()).exists()
    {
        let _guard = penv.net_lock.lock().await;
        if !Path::new(&net.netns_path()).exists() {
            tracing::warn!(pod = %penv.name, namespace = %penv.namespace, netns = %net.netns, "pod network namespace vanished; recreating it");
            crate::netns::setup(net, &ctx.cfg.bridge, ctx.cfg.pod_cidr.len, ctx.cfg.node_ip)
                .map_err(|e| ("RunContainerError", format!("recreating pod network: {e}")))?;
        }
    }
    let links = penv
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    let refs = fetch_refs(&ctx.client, &penv.namespace, c, links)
        .await
        .map_err(|e| config_err(format!("reading env references: {e}")))?;
    let facts = PodFacts {
        pod_ip: penv.pod_ip.to_string(),
        host_ip: ctx.cfg.node_ip.to_string(),
        node_name: ctx.cfg.node_name.clone(),
    };
    let env =
        environ::build_env(&penv.pod, c, &facts, &refs).map_err(|e| config_err(e.to_string()))?;
    let argv = environ::build_argv(&exe, c, &env);
    let mounts = crate::volumes::container_mounts(c, &penv.volumes, &penv.etc_files)
        .map_err(|e| config_err(e.to_string()))?;
    for m in &mounts {
        // The mount point must match the source's type; a source that vanished (its state
        // removed under us) must not turn a directory mount point into a file.
        let dir = match std::fs::metadata(&m.source) {
            Ok(meta) => meta.is_dir(),
            Err(e) => {
                return Err(config_err(format!(
                    "volume source {} for {}: {e}",
                    m.source.display(),
                    m.target.display()
                )));
            }
        };
        ctx.host_paths
            .ensure(&penv.uid, &m.target, dir)
            .map_err(|e| config_err(format!("creating mount point {}: {e}", m.target.display())))?;
    }
    let spec = LaunchSpec {
        netns: penv.net.as_ref().map(|n| PathBuf::from(n.netns_path())),
        // hostNetwork Pods see the node's hostname, as with the kubelet.
        hostname: penv.net.as_ref().map(|_| {
            penv.pod
                .spec
                .as_ref()
                .and_then(|s| s.hostname.clone())
                .unwrap_or_else(|| penv.name.clone())
                .chars()
                .take(63)
                .collect()
        }),
        mounts,
        argv,
        env,
        // Images usually default to `/`; never inherit the podlet's own directory.
        working_dir: Some(PathBuf::from(c.working_dir.as_deref().unwrap_or("/"))),
    };
    let spec_path = penv.pod_dir.join(format!("{}.launch.json", c.name));
    let spec_json = serde_json::to_vec_pretty(&spec).map_err(|e| config_err(e.to_string()))?;
    std::fs::write(&spec_path, spec_json)
        .map_err(|e| config_err(format!("writing {}: {e}", spec_path.display())))?;

    let log_dir = penv.log_dir.join(&c.name);
    std::fs::create_dir_all(&log_dir).map_err(|e| config_err(e.to_string()))?;
    // Keep the current and the previous run's log (for `previous=true`).
    let _ = std::fs::remove_file(log_dir.join(format!("{}.log", restart - 2)));
    let _ = std::fs::remove_file(crate::logquery::exited_marker(&log_dir, restart - 2));
    let log_path = log_dir.join(format!("{restart}.log"));
    let log = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .await
        .map_err(|e| config_err(format!("opening {}: {e}", log_path.display())))?;
    let log = Arc::new(tokio::sync::Mutex::new(log));

    let mut child = tokio::process::Command::new(&ctx.cfg.self_exe)
        .arg("launch")
        .arg(&spec_path)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            (
                "RunContainerError",
                format!("starting {}: {e}", ctx.cfg.self_exe.display()),
            )
        })?;
    let pid = child.id().unwrap_or(0);
    record_pid(&penv.pod_dir, pid, &exe);
    let mut pumps = vec![];
    if let Some(out) = child.stdout.take() {
        pumps.push(tokio::spawn(pump(out, "stdout", log.clone())));
    }
    if let Some(err) = child.stderr.take() {
        pumps.push(tokio::spawn(pump(err, "stderr", log)));
    }
    Ok(Running {
        child,
        pid,
        started_at: Timestamp::now(),
        pumps,
    })
}

/// Appends `pid starttime exe` to the Pod's pid record, so `cleanup` can kill stale processes.
/// A pid alone may be reused; pid and start time identify one process for the machine's uptime.
fn record_pid(pod_dir: &Path, pid: u32, exe: &Path) {
    use std::io::Write;
    let Some(start) = crate::cleanup::start_time(pid) else {
        return; // already gone
    };
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(pod_dir.join("pids"))
    {
        let _ = writeln!(f, "{pid} {start} {}", exe.display());
    }
}

/// Copies a process's output into the log file, one timestamped CRI line per output line.
async fn pump<R: AsyncRead + Unpin>(
    r: R,
    stream: &'static str,
    log: Arc<tokio::sync::Mutex<tokio::fs::File>>,
) {
    let mut reader = BufReader::new(r);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
        }
        let line = format_line(Timestamp::now(), stream, &String::from_utf8_lossy(&buf));
        let mut f = log.lock().await;
        let _ = f.write_all(line.as_bytes()).await;
        let _ = f.flush().await;
    }
}

/// Sends `sig` to a process group, ignoring "no such process".
pub fn signal_group(pid: u32, sig: Signal) {
    if pid > 1 {
        let _ = killpg(Pid::from_raw(pid as i32), sig);
    }
}

/// The restart back-off after `restarts` restarts: 10s doubling to 5 minutes (the kubelet's).
pub fn backoff(restarts: i32) -> Duration {
    let exp = restarts.clamp(0, 5) as u32;
    Duration::from_secs((10u64 << exp).min(300))
}

/// Probes a running container; readiness results update the slot, a failed liveness probe
/// notifies `liveness_failed`.
async fn probe_loop(
    c: Container,
    pod_ip: Ipv4Addr,
    pid: u32,
    slot: Slot,
    liveness_failed: Arc<Notify>,
) {
    let readiness = c.readiness_probe.clone();
    let liveness = c.liveness_probe.clone();
    let ready_task = async {
        let Some(p) = readiness else {
            slot.update(|rt| rt.ready = true);
            return;
        };
        tokio::time::sleep(Duration::from_secs(
            p.initial_delay_seconds.unwrap_or(0).max(0) as u64,
        ))
        .await;
        let mut t = Thresholds::new(&p);
        let period = Duration::from_secs(p.period_seconds.unwrap_or(10).max(1) as u64);
        loop {
            let result = probe::run_once(&p, &c, pod_ip, Some(pid)).await;
            if let Err(e) = &result {
                tracing::debug!(container = %c.name, error = %e, "readiness probe failed");
            }
            if let Some(ready) = t.observe(result.is_ok()) {
                slot.update(|rt| rt.ready = ready);
            }
            tokio::time::sleep(period).await;
        }
    };
    let live_task = async {
        let Some(p) = liveness else {
            return std::future::pending::<()>().await;
        };
        tokio::time::sleep(Duration::from_secs(
            p.initial_delay_seconds.unwrap_or(0).max(0) as u64,
        ))
        .await;
        let mut t = Thresholds::new(&p);
        let period = Duration::from_secs(p.period_seconds.unwrap_or(10).max(1) as u64);
        loop {
            let result = probe::run_once(&p, &c, pod_ip, Some(pid)).await;
            if let Some(false) = t.observe(result.is_ok()) {
                tracing::info!(container = %c.name, error = ?result.err(), "liveness probe failed; restarting");
                liveness_failed.notify_one();
                return std::future::pending::<()>().await;
            }
            tokio::time::sleep(period).await;
        }
    };
    tokio::join!(ready_task, live_task);
}

/// Waits for exit; on stop or liveness failure, terminates the process group gracefully.
async fn supervise(
    run: &mut Running,
    stop: &mut StopRx,
    liveness_failed: &Notify,
    default_grace: Duration,
) -> (std::process::ExitStatus, bool) {
    let grace = tokio::select! {
        status = run.child.wait() => {
            // The main process is gone; nothing else of its group may linger.
            signal_group(run.pid, Signal::SIGKILL);
            return (status.unwrap_or_else(|_| std::process::ExitStatus::from_raw(1 << 8)), false);
        }
        grace = stop_requested(stop) => grace,
        _ = liveness_failed.notified() => default_grace,
    };
    signal_group(run.pid, Signal::SIGTERM);
    let status = match tokio::time::timeout(grace, run.child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            signal_group(run.pid, Signal::SIGKILL);
            run.child.wait().await
        }
    };
    signal_group(run.pid, Signal::SIGKILL);
    (
        status.unwrap_or_else(|_| std::process::ExitStatus::from_raw(9)),
        true,
    )
}

/// Runs a container until it is done per `restart_policy` or the Pod stops.
pub async fn run(
    ctx: Arc<Ctx>,
    penv: Arc<PodEnv>,
    c: Container,
    slot: Slot,
    restart_policy: String,
    default_grace: Duration,
    mut stop: StopRx,
) -> Outcome {
    let mut restarts = 0;
    let mut backoff_level = 0;
    let mut last_problem = String::new();
    loop {
        if stop.borrow().is_some() {
            return Outcome::Stopped;
        }
        let mut running = match start(&ctx, &penv, &c, restarts).await {
            Ok(r) => r,
            Err((reason, message)) => {
                // Retries repeat the same problem; log it once, not every 5 seconds.
                if message != last_problem {
                    tracing::warn!(pod = %penv.name, namespace = %penv.namespace, container = %c.name, %reason, %message, "container cannot start");
                    last_problem = message.clone();
                }
                slot.update(|rt| rt.state = CState::waiting(reason, Some(message)));
                // Config errors may fix themselves (a Secret appears); retry until stopped.
                tokio::select! {
                    _ = stop_requested(&mut stop) => return Outcome::Stopped,
                    _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                }
            }
        };
        let started_at = running.started_at;
        let ran_since = Instant::now();
        let image_id = ctx
            .images
            .resolve(c.image.as_deref().unwrap_or(""))
            .map(|p| format!("file://{}", p.display()))
            .unwrap_or_default();
        slot.update(|rt| {
            rt.state = CState::Running { started_at };
            rt.started = true;
            rt.container_id = Some(format!("pylon://{}", running.pid));
            rt.image_id = image_id;
            rt.restart_count = restarts;
        });
        let liveness_failed = Arc::new(Notify::new());
        let probes = (!slot.init).then(|| {
            tokio::spawn(probe_loop(
                c.clone(),
                penv.pod_ip,
                running.pid,
                slot.clone(),
                liveness_failed.clone(),
            ))
        });
        let (status, killed) =
            supervise(&mut running, &mut stop, &liveness_failed, default_grace).await;
        if let Some(p) = probes {
            p.abort();
        }
        for p in running.pumps.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(2), p).await;
        }
        let exit_code = status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        let terminated = CState::Terminated {
            exit_code,
            signal: status.signal(),
            reason: if exit_code == 0 { "Completed" } else { "Error" }.into(),
            started_at,
            finished_at: Timestamp::now(),
        };
        tracing::info!(pod = %penv.name, container = %c.name, exit_code, "container exited");
        // Tells `follow` readers that this log is complete.
        let _ = std::fs::write(
            crate::logquery::exited_marker(&penv.log_dir.join(&c.name), restarts),
            b"",
        );
        slot.update(|rt| {
            rt.ready = false;
            rt.state = terminated.clone();
        });
        if stop.borrow().is_some() {
            return Outcome::Stopped;
        }
        let restart = match restart_policy.as_str() {
            "Never" => false,
            "OnFailure" => exit_code != 0,
            _ if slot.init => exit_code != 0,
            _ => true,
        } || (killed && restart_policy != "Never");
        if !restart {
            return if exit_code == 0 {
                Outcome::Succeeded
            } else {
                Outcome::Failed
            };
        }
        // A container that ran for 10 minutes starts its back-off afresh, as the kubelet does.
        if ran_since.elapsed() > Duration::from_secs(600) {
            backoff_level = 0;
        }
        let delay = backoff(backoff_level);
        backoff_level += 1;
        restarts += 1;
        let message = format!(
            "back-off {}s restarting failed container={} pod={}_{}({})",
            delay.as_secs(),
            c.name,
            penv.name,
            penv.namespace,
            penv.uid
        );
        slot.update(|rt| {
            rt.last_state = Some(terminated);
            rt.state = CState::waiting("CrashLoopBackOff", Some(message));
            rt.restart_count = restarts;
        });
        tokio::select! {
            _ = stop_requested(&mut stop) => return Outcome::Stopped,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_five_minutes() {
        let secs: Vec<u64> = (0..8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [10, 20, 40, 80, 160, 300, 300, 300]);
    }
}
