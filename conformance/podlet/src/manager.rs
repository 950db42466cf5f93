//! Watches the Pods bound to this node and keeps one worker per Pod (by uid).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::DeleteParams;
use kube::runtime::{WatchStreamExt, watcher};

use crate::context::Ctx;
use crate::pod::{self, PodHandle};

type Workers = Arc<Mutex<BTreeMap<String, PodHandle>>>;

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Runs until the watch stream ends (it retries with back-off, so effectively forever).
pub async fn run(ctx: Arc<Ctx>) {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let selector = format!("spec.nodeName={}", ctx.cfg.node_name);
    let workers: Workers = Arc::new(Mutex::new(BTreeMap::new()));
    let mut seen = BTreeSet::new();
    let mut stream = watcher(api, watcher::Config::default().fields(&selector))
        .default_backoff()
        .boxed();
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Init) => seen.clear(),
            Ok(watcher::Event::InitApply(pod)) => {
                seen.insert(uid(&pod));
                apply(&ctx, &workers, pod).await;
            }
            Ok(watcher::Event::Apply(pod)) => apply(&ctx, &workers, pod).await,
            Ok(watcher::Event::Delete(pod)) => gone(&workers, &uid(&pod)),
            Ok(watcher::Event::InitDone) => {
                // Pods deleted while the watch was down.
                let known: Vec<String> = workers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .keys()
                    .cloned()
                    .collect();
                for u in known.iter().filter(|u| !seen.contains(*u)) {
                    gone(&workers, u);
                }
            }
            Err(e) => tracing::warn!(error = %e, "pod watch error; retrying"),
        }
    }
}

fn gone(workers: &Workers, uid: &str) {
    if let Some(h) = workers.lock().unwrap_or_else(|e| e.into_inner()).get(uid) {
        h.gone.send_replace(true);
    }
}

async fn apply(ctx: &Arc<Ctx>, workers: &Workers, pod: Pod) {
    let uid = uid(&pod);
    if uid.is_empty() {
        return;
    }
    {
        let map = workers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = map.get(&uid) {
            h.pod.send_replace(pod);
            return;
        }
    }
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    if pod.metadata.deletion_timestamp.is_some() {
        // Not ours to stop (nothing of it runs: start-up cleanup removed stale Pods), but it
        // still needs its deletion finalised.
        let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(kube::api::Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..Default::default()
        };
        if let Err(e) = api.delete(&name, &dp).await {
            tracing::debug!(pod = %name, error = %e, "finalising deletion of unknown pod");
        }
        return;
    }
    if is_terminal(&pod) {
        return; // finished before this podlet started; its status stays as it was
    }
    let done = workers.clone();
    let key = uid.clone();
    let handle = pod::spawn(ctx.clone(), pod, move || {
        done.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
    });
    workers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(uid, handle);
}
