//! `pylon-controller check`: the chart's `helm test`. Asks the API server, as the controller's
//! ServiceAccount, whether the installation works: the controller Deployment has every replica
//! available, and the GatewayClass is Accepted by this controller at its current generation.
//! Retries until both hold or the time is up, then says which did not.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use pylon_gateway_types::gatewayclasses::GatewayClass;

/// What to check.
#[derive(Debug, Clone)]
pub struct Check {
    /// Namespace of the controller Deployment.
    pub namespace: String,
    /// The controller Deployment's name.
    pub deployment: String,
    /// The GatewayClass that must be Accepted.
    pub gateway_class: String,
    /// The controllerName the GatewayClass must name.
    pub controller_name: String,
    /// How long to keep trying.
    pub timeout: Duration,
}

/// Why the check failed, as it stood when time ran out.
#[derive(Debug, thiserror::Error)]
#[error("not ready after {waited:?}: {why}")]
pub struct NotReady {
    /// How long was waited.
    pub waited: Duration,
    /// What did not hold.
    pub why: String,
}

/// Checks until both hold; returns what was found.
pub async fn run(client: kube::Client, c: &Check) -> Result<String, NotReady> {
    let start = Instant::now();
    loop {
        let why = match once(&client, c).await {
            Ok(found) => return Ok(found),
            Err(why) => why,
        };
        if start.elapsed() >= c.timeout {
            return Err(NotReady {
                waited: start.elapsed(),
                why,
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn once(client: &kube::Client, c: &Check) -> Result<String, String> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &c.namespace);
    let d = deployments
        .get(&c.deployment)
        .await
        .map_err(|e| format!("Deployment {}/{}: {e}", c.namespace, c.deployment))?;
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let available = d
        .status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0);
    if available < want {
        return Err(format!(
            "Deployment {}/{}: {available} of {want} replicas available",
            c.namespace, c.deployment
        ));
    }
    let classes: Api<GatewayClass> = Api::all(client.clone());
    let gc = classes
        .get(&c.gateway_class)
        .await
        .map_err(|e| format!("GatewayClass {}: {e}", c.gateway_class))?;
    if gc.spec.controller_name != c.controller_name {
        return Err(format!(
            "GatewayClass {} names controller {:?}, not {:?}",
            c.gateway_class, gc.spec.controller_name, c.controller_name
        ));
    }
    let generation = gc.metadata.generation.unwrap_or_default();
    let accepted = gc
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|cond| cond.type_ == "Accepted");
    match accepted {
        Some(a) if a.status == "True" && a.observed_generation == Some(generation) => Ok(format!(
            "Deployment {}/{}: {available}/{want} available; GatewayClass {}: Accepted ({})",
            c.namespace, c.deployment, c.gateway_class, a.reason
        )),
        Some(a) => Err(format!(
            "GatewayClass {}: Accepted={} reason {} (observedGeneration {:?}, generation {generation}): {}",
            c.gateway_class, a.status, a.reason, a.observed_generation, a.message
        )),
        None => Err(format!(
            "GatewayClass {}: no Accepted condition yet",
            c.gateway_class
        )),
    }
}
