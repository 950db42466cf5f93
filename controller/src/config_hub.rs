//! The config hub: the state the config server serves, kept apart from the server so the
//! status side (`serving_status`, `dataplane_pods`) and the server both build on it. Per Gateway, the
//! latest config on a `watch` channel (a slow stream only ever sees the newest version), the
//! last [`RECENT`] configs for resuming streams, the ledger of structures published, and the
//! data planes' acks. Pure state: no HTTP, no Kubernetes.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use pylon_config as dp;
use tokio::sync::watch;

use crate::model::ObjectKey;
use crate::serving_status::{Forms, Ledger, Since};

/// The latest config of one Gateway.
#[derive(Clone, Debug, Default)]
pub struct GatewayState {
    /// Version of the config (endpoints included): what is sent and acked.
    pub version: String,
    /// Structure half of the version (config without endpoints): a change sends a snapshot.
    pub snapshot_version: String,
    /// The full config (endpoints included); `None` until the Gateway is translated.
    pub config: Option<Arc<dp::Config>>,
}

/// The last ack of one data-plane pod.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PodAck {
    /// Version acked.
    pub version: String,
    /// Whether it was applied.
    pub accepted: bool,
    /// Why not.
    pub error: Option<String>,
}

/// A config as published: its version and content.
type Published = (String, Arc<dp::Config>);

/// Configs kept per Gateway for resuming streams. Few: a data plane is at most a change or two
/// behind when its stream breaks, and each one holds a Gateway's whole config.
pub const RECENT: usize = 4;

/// All Gateways' channels and the data planes' acks.
#[derive(Default)]
pub struct ConfigHub {
    channels: Mutex<HashMap<ObjectKey, watch::Sender<GatewayState>>>,
    acks: Mutex<BTreeMap<ObjectKey, BTreeMap<String, PodAck>>>,
    /// Per Gateway, the structures published, numbered: lets the leader tell what a data plane
    /// acking an older version serves.
    ledgers: Mutex<HashMap<ObjectKey, Ledger>>,
    /// Per Gateway, the last [`RECENT`] configs published, newest last: what a reconnecting
    /// data plane may resume from.
    recent: Mutex<HashMap<ObjectKey, VecDeque<Published>>>,
    /// Per Gateway and data-plane Pod, the highest [`Ledger`] number of a version it was seen
    /// running ([`ConfigHub::running_number`]).
    ran: Mutex<HashMap<(ObjectKey, String), u64>>,
    /// Per Gateway, the hashes of its last config's routes.
    route_hashes: Mutex<HashMap<ObjectKey, crate::version::RouteHashes>>,
    /// Notified on every ack, so status can follow what data planes really run.
    pub ack_notify: tokio::sync::Notify,
}

impl ConfigHub {
    /// A receiver of `key`'s latest state (its first value is the current one).
    pub fn subscribe(&self, key: &ObjectKey) -> watch::Receiver<GatewayState> {
        self.sender(key).subscribe()
    }

    fn sender(&self, key: &ObjectKey) -> watch::Sender<GatewayState> {
        let mut ch = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        ch.entry(key.clone())
            .or_insert_with(|| watch::channel(GatewayState::default()).0)
            .clone()
    }

    /// Publishes a Gateway's config; returns the version it is served as, derived from its
    /// content: unchanged configs keep their version, endpoint-only changes keep its
    /// structure half (and are streamed as endpoint updates).
    pub fn publish(&self, key: &ObjectKey, config: dp::Config) -> String {
        let tx = self.sender(key);
        let hashed = self
            .route_hashes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_default()
            .of(&config);
        let (structure, version) = crate::version::of_hashed(&config, &hashed);
        let (same, new_structure) = {
            let st = tx.borrow();
            (
                st.version == version && st.config.is_some(),
                st.snapshot_version != structure || st.config.is_none(),
            )
        };
        if same {
            return version;
        }
        // Numbered before it is sent, so no ack can name a structure the ledger lacks.
        if new_structure {
            let forms = Forms::of_hashed(&config, &hashed);
            self.ledgers()
                .entry(key.clone())
                .or_default()
                .record(&structure, &forms);
        }
        let config = Arc::new(config);
        {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            let ring = recent.entry(key.clone()).or_default();
            ring.retain(|(v, _)| *v != version);
            if ring.len() == RECENT {
                ring.pop_front();
            }
            ring.push_back((version.clone(), config.clone()));
        }
        tx.send_modify(|st| {
            st.version = version.clone();
            st.snapshot_version = structure;
            st.config = Some(config);
        });
        version
    }

    /// A recently published config of a Gateway by version, if this replica still holds it.
    pub fn recent(&self, key: &ObjectKey, version: &str) -> Option<Arc<dp::Config>> {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let (_, c) = recent.get(key)?.iter().find(|(v, _)| v == version)?;
        Some(c.clone())
    }

    fn ledgers(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectKey, Ledger>> {
        self.ledgers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The [`Ledger`] number of a version of a Gateway's config, if this replica published it.
    pub fn number(&self, key: &ObjectKey, version: &str) -> Option<u64> {
        let structure = crate::version::structure(version)?;
        self.ledgers().get(key)?.number(structure)
    }

    /// The [`Ledger`] number of what data-plane Pod `pod` of a Gateway runs, `version`: its own
    /// if this replica published it, else the highest this Pod was seen running before. A
    /// Pod's config only moves forward, and a data plane streaming from another replica acks
    /// structures this one may never have published (the replicas translate bursts of changes
    /// at different moments, so their intermediate structures differ; they meet again once the
    /// burst is over). Taking such a version for unknown made every route Pending again until
    /// the two met, rewriting thousands of statuses twice during a burst of creates; what the
    /// Pod ran before it is still what it serves at least.
    pub fn running_number(&self, key: &ObjectKey, pod: &str, version: &str) -> Option<u64> {
        let known = self.number(key, version);
        let mut ran = self.ran.lock().unwrap_or_else(|e| e.into_inner());
        let slot = (key.clone(), pod.to_string());
        match known {
            Some(n) => {
                let best = ran.entry(slot).or_insert(n);
                *best = (*best).max(n);
                Some(*best)
            }
            None => ran.get(&slot).copied(),
        }
    }

    /// Forgets what Pods no longer listed ran.
    pub fn retain_pods(&self, keep: impl Fn(&ObjectKey, &str) -> bool) {
        self.ran
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(key, pod), _| keep(key, pod));
    }

    /// Since when each part of a Gateway's current config has had its form.
    pub fn since(&self, key: &ObjectKey) -> Arc<Since> {
        self.ledgers()
            .get(key)
            .map(Ledger::since)
            .unwrap_or_default()
    }

    /// Forgets Gateways that no longer exist; their streams end.
    pub fn retain(&self, keep: impl Fn(&ObjectKey) -> bool) {
        self.channels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| keep(k));
        self.acks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| keep(k));
        self.ledgers().retain(|k, _| keep(k));
        self.route_hashes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| keep(k));
        self.recent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| keep(k));
    }

    /// The current state of a Gateway.
    pub fn state(&self, key: &ObjectKey) -> GatewayState {
        self.sender(key).borrow().clone()
    }

    /// Acks per pod of a Gateway received by this replica.
    pub fn acks(&self, key: &ObjectKey) -> BTreeMap<String, PodAck> {
        self.acks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
            .unwrap_or_default()
    }

    /// Records a data-plane Pod's ack and wakes whoever waits on acks.
    pub fn record_ack(&self, key: ObjectKey, pod: String, ack: PodAck) {
        self.acks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default()
            .insert(pod, ack);
        self.ack_notify.notify_waiters();
    }
}
