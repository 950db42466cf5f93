//! ListenerSets: which ones a Gateway admits (its `allowedListeners`), in what order their
//! listeners join it, and their status.

use crate::model::ObjectKey;
use crate::model::gateway::{Gateway, ListenerSet};
use crate::snapshot::Snapshot;

use super::gateway::{ListenerInfo, Owner, listener_status};
use super::output::{Condition, ListenerSetStatus};
use crate::translate::reason::{ConditionType, Reason};

/// The Gateway a ListenerSet names, if its parentRef is a Gateway.
pub fn parent(set: &ListenerSet) -> Option<ObjectKey> {
    let p = &set.spec.parent_ref;
    (p.group == crate::model::GATEWAY_GROUP && p.kind == "Gateway").then(|| {
        ObjectKey::new(
            p.namespace
                .clone()
                .unwrap_or_else(|| set.meta.namespace.clone()),
            p.name.clone(),
        )
    })
}

/// The ListenerSets naming `gw`: those it admits, in precedence order (oldest first, then by
/// namespace/name), and those it refuses, with why.
pub fn for_gateway<'a>(
    s: &'a Snapshot,
    gw: &Gateway,
) -> (Vec<&'a ListenerSet>, Vec<(&'a ListenerSet, String)>) {
    let key = gw.meta.key();
    let mut admitted = vec![];
    let mut refused = vec![];
    let allowed = gw
        .spec
        .allowed_listeners
        .as_ref()
        .map(|a| &a.namespaces)
        .cloned()
        .unwrap_or_default();
    for set in s.listener_sets.values().map(|s| &**s) {
        if parent(set).as_ref() != Some(&key) {
            continue;
        }
        let ns = &set.meta.namespace;
        let ok = match allowed.from.as_str() {
            "All" => true,
            "Same" => *ns == gw.meta.namespace,
            "Selector" => allowed
                .selector
                .as_ref()
                .is_some_and(|sel| sel.matches(&s.namespace_labels(ns))),
            _ => false,
        };
        if ok {
            admitted.push(set);
        } else {
            refused.push((
                set,
                format!(
                    "Gateway {key} does not allow ListenerSets from namespace {ns} (allowedListeners.namespaces.from: {})",
                    allowed.from
                ),
            ));
        }
    }
    admitted.sort_by(|a, b| {
        (&a.meta.creation_timestamp, &a.meta.namespace, &a.meta.name).cmp(&(
            &b.meta.creation_timestamp,
            &b.meta.namespace,
            &b.meta.name,
        ))
    });
    (admitted, refused)
}

/// Status of an admitted ListenerSet from its listeners (`attached`: routes per listener of
/// the Gateway's combined list).
pub fn admitted_status(
    set: &ListenerSet,
    gateway: &ObjectKey,
    listeners: &[ListenerInfo<'_>],
    attached: &[i32],
) -> ListenerSetStatus {
    let g = set.meta.generation;
    let owner = Owner::ListenerSet(set.meta.key());
    let mine: Vec<(&ListenerInfo<'_>, i32)> = listeners
        .iter()
        .zip(attached)
        .filter(|(l, _)| l.owner == owner)
        .map(|(l, n)| (l, *n))
        .collect();
    let programmed = mine.iter().filter(|(l, _)| l.programmed).count();
    let conditions = if programmed > 0 {
        vec![
            Condition::new(
                ConditionType::Accepted,
                true,
                Reason::Accepted,
                "ListenerSet is accepted",
                g,
            ),
            Condition::new(
                ConditionType::Programmed,
                true,
                Reason::Programmed,
                format!("{programmed} of {} listeners are programmed", mine.len()),
                g,
            ),
        ]
    } else {
        let why = "no listener of the ListenerSet is valid";
        vec![
            Condition::new(
                ConditionType::Accepted,
                false,
                Reason::ListenersNotValid,
                why,
                g,
            ),
            Condition::new(
                ConditionType::Programmed,
                false,
                Reason::ListenersNotValid,
                why,
                g,
            ),
        ]
    };
    ListenerSetStatus {
        gateway: gateway.clone(),
        conditions,
        listeners: mine
            .iter()
            .map(|(l, n)| listener_status(l, *n, g))
            .collect(),
    }
}

/// Status of a ListenerSet its Gateway does not admit.
pub fn refused_status(set: &ListenerSet, gateway: &ObjectKey, why: &str) -> ListenerSetStatus {
    let g = set.meta.generation;
    ListenerSetStatus {
        gateway: gateway.clone(),
        conditions: vec![
            Condition::new(ConditionType::Accepted, false, Reason::NotAllowed, why, g),
            Condition::new(ConditionType::Programmed, false, Reason::NotAllowed, why, g),
        ],
        listeners: vec![],
    }
}
