//! Pod status computation: the podlet's runtime view of a Pod → `PodStatus`, as the kubelet
//! reports it. Pure (the clock is a parameter) so phases and conditions are tested by tables.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// A container's state as the podlet tracks it.
#[derive(Debug, Clone, PartialEq)]
pub enum CState {
    Waiting {
        reason: String,
        message: Option<String>,
    },
    Running {
        started_at: Timestamp,
    },
    Terminated {
        exit_code: i32,
        signal: Option<i32>,
        reason: String,
        started_at: Timestamp,
        finished_at: Timestamp,
    },
}

impl CState {
    pub fn waiting(reason: &str, message: Option<String>) -> Self {
        CState::Waiting {
            reason: reason.into(),
            message,
        }
    }
}

/// One container's runtime record.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerRt {
    pub name: String,
    pub image: String,
    /// The executable the image maps to (reported as imageID).
    pub image_id: String,
    /// `pylon://<pid>` of the current or last process.
    pub container_id: Option<String>,
    pub state: CState,
    pub last_state: Option<CState>,
    pub ready: bool,
    pub started: bool,
    pub restart_count: i32,
}

impl ContainerRt {
    pub fn new(name: &str, image: &str) -> Self {
        Self {
            name: name.into(),
            image: image.into(),
            image_id: String::new(),
            container_id: None,
            state: CState::waiting("ContainerCreating", None),
            last_state: None,
            ready: false,
            started: false,
            restart_count: 0,
        }
    }
}

/// The runtime view of one Pod.
#[derive(Debug, Clone, PartialEq)]
pub struct PodRt {
    pub pod_ip: Option<Ipv4Addr>,
    pub host_ip: Ipv4Addr,
    pub start_time: Timestamp,
    pub initialized: bool,
    pub init_containers: Vec<ContainerRt>,
    pub containers: Vec<ContainerRt>,
    /// Set when the Pod cannot start at all (e.g. its network could not be set up).
    pub message: Option<String>,
}

fn time(t: Timestamp) -> Time {
    Time(t)
}

fn state(s: &CState) -> ContainerState {
    match s {
        CState::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: message.clone(),
            }),
            ..Default::default()
        },
        CState::Running { started_at } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(time(*started_at)),
            }),
            ..Default::default()
        },
        CState::Terminated {
            exit_code,
            signal,
            reason,
            started_at,
            finished_at,
        } => ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: *exit_code,
                signal: *signal,
                reason: Some(reason.clone()),
                started_at: Some(time(*started_at)),
                finished_at: Some(time(*finished_at)),
                ..Default::default()
            }),
            ..Default::default()
        },
    }
}

fn container_status(c: &ContainerRt) -> ContainerStatus {
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone(),
        image_id: c.image_id.clone(),
        container_id: c.container_id.clone(),
        state: Some(state(&c.state)),
        last_state: Some(c.last_state.as_ref().map(state).unwrap_or_default()),
        ready: c.ready,
        started: Some(c.started),
        restart_count: c.restart_count,
        ..Default::default()
    }
}

/// The Pod phase per the kubelet's rules.
pub fn phase(restart_policy: &str, rt: &PodRt) -> &'static str {
    let cs = &rt.containers;
    let init_failed = rt
        .init_containers
        .iter()
        .any(|c| matches!(c.state, CState::Terminated { exit_code, .. } if exit_code != 0));
    if !rt.initialized && init_failed && restart_policy == "Never" {
        return "Failed"; // an init container failed and will not be retried
    }
    if !rt.initialized || cs.is_empty() {
        return "Pending";
    }
    let running = cs
        .iter()
        .filter(|c| matches!(c.state, CState::Running { .. }))
        .count();
    let terminated: Vec<i32> = cs
        .iter()
        .filter_map(|c| match c.state {
            CState::Terminated { exit_code, .. } => Some(exit_code),
            _ => None,
        })
        .collect();
    let waiting_never_ran = cs
        .iter()
        .any(|c| matches!(c.state, CState::Waiting { .. }) && c.last_state.is_none());
    if waiting_never_ran {
        return "Pending";
    }
    if running > 0 || terminated.len() < cs.len() {
        // Something runs, or is waiting to restart after having run.
        return "Running";
    }
    if terminated.iter().all(|&code| code == 0) {
        if restart_policy == "Always" {
            "Running"
        } else {
            "Succeeded"
        }
    } else if restart_policy == "Never" {
        "Failed"
    } else {
        "Running"
    }
}

fn condition(
    previous: &[PodCondition],
    type_: &str,
    ok: bool,
    reason: Option<&str>,
    now: Timestamp,
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    // Keep the transition time while the status is unchanged, so no-op updates stay no-ops.
    let last = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(time(now));
    PodCondition {
        type_: type_.into(),
        status: status.into(),
        last_transition_time: Some(last),
        reason: if ok { None } else { reason.map(str::to_owned) },
        ..Default::default()
    }
}

/// Computes the Pod's status; `now` stamps conditions whose status changed.
pub fn compute(pod: &Pod, rt: &PodRt, now: Timestamp) -> PodStatus {
    let previous: &[PodCondition] = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or(&[]);
    let restart_policy = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    let phase = phase(restart_policy, rt);
    let containers_ready =
        rt.initialized && !rt.containers.is_empty() && rt.containers.iter().all(|c| c.ready);
    let ready_gates_ok = true; // readinessGates name conditions others set; none are used here.
    let conditions = vec![
        condition(
            previous,
            "PodReadyToStartContainers",
            rt.pod_ip.is_some(),
            None,
            now,
        ),
        condition(
            previous,
            "Initialized",
            rt.initialized,
            Some("ContainersNotInitialized"),
            now,
        ),
        condition(
            previous,
            "Ready",
            containers_ready && ready_gates_ok,
            Some(if phase == "Succeeded" {
                "PodCompleted"
            } else {
                "ContainersNotReady"
            }),
            now,
        ),
        condition(
            previous,
            "ContainersReady",
            containers_ready,
            Some("ContainersNotReady"),
            now,
        ),
        condition(previous, "PodScheduled", true, None, now),
    ];
    let ip = rt.pod_ip.map(|ip| ip.to_string());
    PodStatus {
        phase: Some(phase.into()),
        conditions: Some(conditions),
        host_ip: Some(rt.host_ip.to_string()),
        host_ips: Some(vec![HostIP {
            ip: rt.host_ip.to_string(),
        }]),
        pod_ip: ip.clone(),
        pod_ips: ip.map(|ip| vec![PodIP { ip }]),
        start_time: Some(time(rt.start_time)),
        message: rt.message.clone(),
        qos_class: pod.status.as_ref().and_then(|s| s.qos_class.clone()),
        init_container_statuses: (!rt.init_containers.is_empty())
            .then(|| rt.init_containers.iter().map(container_status).collect()),
        container_statuses: Some(rt.containers.iter().map(container_status).collect()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn rt(states: Vec<(CState, bool)>) -> PodRt {
        PodRt {
            pod_ip: Some(Ipv4Addr::new(10, 244, 1, 1)),
            host_ip: Ipv4Addr::new(10, 244, 0, 1),
            start_time: t("2026-01-01T00:00:00Z"),
            initialized: true,
            init_containers: vec![],
            containers: states
                .into_iter()
                .enumerate()
                .map(|(i, (state, ready))| ContainerRt {
                    state,
                    ready,
                    started: ready,
                    ..ContainerRt::new(&format!("c{i}"), "img")
                })
                .collect(),
            message: None,
        }
    }

    fn running() -> CState {
        CState::Running {
            started_at: t("2026-01-01T00:00:01Z"),
        }
    }

    fn exited(code: i32) -> CState {
        CState::Terminated {
            exit_code: code,
            signal: None,
            reason: if code == 0 { "Completed" } else { "Error" }.into(),
            started_at: t("2026-01-01T00:00:01Z"),
            finished_at: t("2026-01-01T00:00:02Z"),
        }
    }

    #[test]
    fn phases() {
        let waiting = CState::waiting("ErrImagePull", Some("no mapping".into()));
        assert_eq!(
            phase("Always", &rt(vec![(waiting.clone(), false)])),
            "Pending"
        );
        assert_eq!(
            phase("Always", &rt(vec![(running(), true), (waiting, false)])),
            "Pending"
        );
        assert_eq!(phase("Always", &rt(vec![(running(), true)])), "Running");
        assert_eq!(phase("Never", &rt(vec![(exited(0), false)])), "Succeeded");
        assert_eq!(
            phase("Never", &rt(vec![(exited(0), false), (exited(1), false)])),
            "Failed"
        );
        assert_eq!(phase("OnFailure", &rt(vec![(exited(1), false)])), "Running");
        let mut crashing = rt(vec![(CState::waiting("CrashLoopBackOff", None), false)]);
        crashing.containers[0].last_state = Some(exited(1));
        assert_eq!(phase("Always", &crashing), "Running");
        let mut init = rt(vec![(running(), true)]);
        init.initialized = false;
        assert_eq!(phase("Always", &init), "Pending");
        init.init_containers = vec![ContainerRt {
            state: exited(1),
            ..ContainerRt::new("init", "img")
        }];
        assert_eq!(phase("Never", &init), "Failed");
        assert_eq!(phase("OnFailure", &init), "Pending");
    }

    #[test]
    fn readiness_drives_ready_and_transition_times_stick() {
        let pod = Pod::default();
        let now = t("2026-01-01T00:01:00Z");
        let st = compute(&pod, &rt(vec![(running(), true), (running(), false)]), now);
        let cond = |st: &PodStatus, ty: &str| {
            st.conditions
                .as_ref()
                .unwrap()
                .iter()
                .find(|c| c.type_ == ty)
                .cloned()
                .unwrap()
        };
        assert_eq!(cond(&st, "Ready").status, "False");
        assert_eq!(
            cond(&st, "Ready").reason.as_deref(),
            Some("ContainersNotReady")
        );
        assert_eq!(cond(&st, "PodScheduled").status, "True");
        assert_eq!(st.pod_ip.as_deref(), Some("10.244.1.1"));
        assert_eq!(st.phase.as_deref(), Some("Running"));

        let pod = Pod {
            status: Some(st),
            ..Default::default()
        };
        let later = t("2026-01-01T00:02:00Z");
        let st2 = compute(&pod, &rt(vec![(running(), true), (running(), true)]), later);
        assert_eq!(cond(&st2, "Ready").status, "True");
        assert_eq!(cond(&st2, "Ready").last_transition_time, Some(Time(later)));
        assert_eq!(
            cond(&st2, "PodScheduled").last_transition_time,
            Some(Time(now))
        );
        let cs = &st2.container_statuses.unwrap()[0];
        assert!(cs.ready && cs.state.as_ref().unwrap().running.is_some());
    }
}
