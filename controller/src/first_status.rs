//! A new route's first status waits briefly while it only says Pending.
//!
//! Honest status ([`crate::serving_status`]) marks a route `Accepted=Unknown/Pending` until a data
//! plane has applied it, which usually takes milliseconds. Writing that Pending and then, a
//! moment later, `Accepted=True` costs two writes per route created (thousands when a team
//! applies thousands of routes), where a single write would do. So a route that has no status
//! of ours yet and is only waiting for its data plane gets no status for up to [`HOLD`]: if
//! the data plane acks in time the first write already says Accepted; if not, Pending is
//! written as before. Routes that are rejected, or already carry our status, are never held:
//! a change to them shows at once.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::model::ObjectKey;
use crate::serving_status::PENDING;
use crate::translate::output::{RouteParentStatus, Translation};
use crate::translate::reason::ConditionType;

/// How long a new route's first status waits for its data plane to ack.
pub const HOLD: Duration = Duration::from_millis(1500);

/// Routes whose first status is held back, and since when.
#[derive(Debug, Default)]
pub struct FirstStatus {
    waiting: BTreeMap<(&'static str, ObjectKey), Instant>,
}

fn pending(parents: &[RouteParentStatus]) -> bool {
    parents
        .iter()
        .flat_map(|p| &p.conditions)
        .any(|c| c.kind == ConditionType::Accepted && c.reason == PENDING)
}

impl FirstStatus {
    /// Takes out of `t` the routes to hold back now: Pending ones that `has_status` says carry
    /// no status of ours, for [`HOLD`] since first seen. Returns when the next hold ends.
    pub fn hold(
        &mut self,
        t: &mut Translation,
        now: Instant,
        has_status: impl Fn(&'static str, &ObjectKey) -> bool,
    ) -> Option<Instant> {
        let mut waiting = BTreeMap::new();
        let mut next: Option<Instant> = None;
        for (kind, routes) in t.routes_mut() {
            routes.retain(|key, parents| {
                if !pending(parents) || has_status(kind, key) {
                    return true;
                }
                let id = (kind, key.clone());
                let since = self.waiting.get(&id).copied().unwrap_or(now);
                waiting.insert(id, since);
                let until = since + HOLD;
                if until <= now {
                    return true;
                }
                next = Some(next.map_or(until, |n| n.min(until)));
                false
            });
        }
        self.waiting = waiting;
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::output::Condition;
    use crate::translate::reason::{ConditionStatus, Reason};

    fn route(reason: Reason) -> std::sync::Arc<Vec<RouteParentStatus>> {
        let status = if reason == PENDING {
            ConditionStatus::Unknown
        } else {
            ConditionStatus::True
        };
        let mut accepted = Condition::new(ConditionType::Accepted, true, reason, "", 1);
        accepted.status = status;
        std::sync::Arc::new(vec![RouteParentStatus {
            parent_ref: serde_json::from_value(serde_json::json!({"name": "gw"})).unwrap(),
            conditions: vec![accepted],
        }])
    }

    fn names(t: &Translation) -> Vec<&str> {
        t.http_routes.keys().map(|k| k.name.as_str()).collect()
    }

    #[test]
    fn only_new_pending_routes_wait_and_only_for_the_hold() {
        let key = |n: &str| ObjectKey::new("apps", n);
        let mut t = Translation::default();
        t.http_routes.insert(key("new-pending"), route(PENDING));
        t.http_routes
            .insert(key("new-accepted"), route(Reason::Accepted));
        t.http_routes.insert(key("old-pending"), route(PENDING));
        let has_status = |_: &'static str, k: &ObjectKey| k.name.starts_with("old");
        let mut first = FirstStatus::default();
        let start = Instant::now();

        let mut now = t.clone();
        let wake = first.hold(&mut now, start, has_status);
        assert_eq!(names(&now), ["new-accepted", "old-pending"]);
        assert_eq!(wake, Some(start + HOLD));

        // Still within the hold, seen again: still held, the hold not restarted.
        let mut later = t.clone();
        let wake = first.hold(&mut later, start + HOLD / 2, has_status);
        assert_eq!(names(&later), ["new-accepted", "old-pending"]);
        assert_eq!(wake, Some(start + HOLD));

        // The hold is over: Pending is written after all.
        let mut over = t.clone();
        assert_eq!(first.hold(&mut over, start + HOLD, has_status), None);
        assert_eq!(names(&over), ["new-accepted", "new-pending", "old-pending"]);
    }
}
