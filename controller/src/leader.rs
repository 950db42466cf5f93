//! Leader election on a coordination.k8s.io Lease. Only the leader writes status and
//! provisions; every replica serves config.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;

/// Name of the Lease.
pub const LEASE_NAME: &str = "pylon-controller";
/// How long a lease is valid without renewal.
pub const LEASE_SECONDS: i32 = 15;
/// How often the lease is renewed or tried.
pub const RETRY: Duration = Duration::from_secs(2);

/// Whether a lease held by someone else has expired at `now`.
pub fn expired(spec: &LeaseSpec, now: Timestamp) -> bool {
    let Some(renew) = spec.renew_time.as_ref() else {
        return true;
    };
    let secs = i64::from(spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS));
    renew.0.as_second() + secs < now.as_second()
}

/// One election round; returns whether we lead afterwards.
async fn round(api: &Api<Lease>, identity: &str) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    let mine = |acquire: Option<MicroTime>, transitions: i32| LeaseSpec {
        holder_identity: Some(identity.to_string()),
        lease_duration_seconds: Some(LEASE_SECONDS),
        acquire_time: acquire.or(Some(MicroTime(now))),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..Default::default()
    };
    match api.get_opt(LEASE_NAME).await? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(LEASE_NAME.into()),
                    ..Default::default()
                },
                spec: Some(mine(None, 0)),
            };
            api.create(&PostParams::default(), &lease).await?;
            Ok(true)
        }
        Some(mut lease) => {
            let spec = lease.spec.clone().unwrap_or_default();
            let holder = spec.holder_identity.as_deref();
            let transitions = spec.lease_transitions.unwrap_or(0);
            let new = if holder == Some(identity) {
                mine(spec.acquire_time.clone(), transitions)
            } else if holder.is_none() || expired(&spec, now) {
                mine(None, transitions + 1)
            } else {
                return Ok(false);
            };
            lease.spec = Some(new);
            // replace carries the resourceVersion: a concurrent taker makes this fail (409).
            api.replace(LEASE_NAME, &PostParams::default(), &lease)
                .await?;
            Ok(true)
        }
    }
}

/// Gives up the Lease if `identity` holds it, so another replica takes over within [`RETRY`]
/// instead of waiting for the lease to expire. Call after the election task stopped.
pub async fn release(
    client: kube::Client,
    namespace: &str,
    identity: &str,
) -> Result<bool, kube::Error> {
    let api: Api<Lease> = Api::namespaced(client, namespace);
    let Some(mut lease) = api.get_opt(LEASE_NAME).await? else {
        return Ok(false);
    };
    let Some(spec) = lease.spec.as_mut() else {
        return Ok(false);
    };
    if spec.holder_identity.as_deref() != Some(identity) {
        return Ok(false);
    }
    spec.holder_identity = None;
    spec.renew_time = None;
    // replace carries the resourceVersion: never clobbers a lease someone else took meanwhile.
    api.replace(LEASE_NAME, &PostParams::default(), &lease)
        .await?;
    Ok(true)
}

/// Starts electing; the receiver says whether this replica currently leads. Aborting the task
/// closes the receiver (the leader-only loops then stop).
pub fn start(
    client: kube::Client,
    namespace: &str,
    identity: String,
) -> (watch::Receiver<bool>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(false);
    let api: Api<Lease> = Api::namespaced(client, namespace);
    let task = tokio::spawn(async move {
        loop {
            let leading = match round(&api, &identity).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "leader election round failed");
                    false
                }
            };
            if *tx.borrow() != leading {
                tracing::info!(leading, identity, "leadership changed");
            }
            tx.send_if_modified(|v| std::mem::replace(v, leading) != leading);
            tokio::time::sleep(RETRY).await;
        }
    });
    (rx, task)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry() {
        let t = |s: i64| Timestamp::from_second(s).unwrap();
        let spec = LeaseSpec {
            renew_time: Some(MicroTime(t(1000))),
            lease_duration_seconds: Some(15),
            ..Default::default()
        };
        assert!(!expired(&spec, t(1010)));
        assert!(expired(&spec, t(1016)));
        assert!(expired(&LeaseSpec::default(), t(0)));
    }
}
