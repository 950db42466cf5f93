//! `apply(old, diff(old, new)) == new` over random configs, and the errors of deltas that do not
//! fit.

use super::random::{config, route, step};
use super::*;
use crate::{BackendProtocol, ListenerProtocol};

/// Every (listener, host group) whose routes differ between `a` and `b`.
fn changed_groups(a: &Config, b: &Config) -> BTreeSet<(String, HostKey)> {
    let groups = |c: &Config| {
        let mut m: BTreeMap<(String, HostKey), Vec<Arc<Route>>> = BTreeMap::new();
        for l in &c.listeners {
            for r in &l.routes {
                for h in HostKey::of(r) {
                    m.entry((l.name.clone(), h)).or_default().push(r.clone());
                }
            }
        }
        m
    };
    let (ga, gb) = (groups(a), groups(b));
    ga.keys()
        .chain(gb.keys())
        .filter(|k| ga.get(*k) != gb.get(*k))
        .cloned()
        .collect()
}

#[test]
fn apply_of_diff_is_the_new_config() {
    for seed in 0..3000 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let (old, new) = (config(&mut rng), config(&mut rng));
        let delta = diff(&old, &new).expect("same apiVersion");
        // The wire form carries it whole.
        let wire: Delta = serde_json::from_str(&serde_json::to_string(&delta).unwrap()).unwrap();
        assert_eq!(wire, delta, "seed {seed}");
        let (got, touched) = apply(&old, &wire).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(got, new, "seed {seed}");
        // Every host group that changed is touched, on a listener patched, sent whole or gone.
        let has = |c: &Config, name: &str| c.listeners.iter().any(|l| l.name == name);
        for (listener, host) in changed_groups(&old, &new) {
            let whole =
                touched.listeners.contains(&listener) || (touched.order && !has(&new, &listener));
            let patched = touched
                .hosts
                .get(&listener)
                .is_some_and(|h| h.contains(&host));
            assert!(
                whole || patched,
                "seed {seed}: {listener} {host:?} not touched"
            );
        }
        let changed_backends: BTreeSet<String> = old
            .backends
            .keys()
            .chain(new.backends.keys())
            .filter(|k| old.backends.get(*k) != new.backends.get(*k))
            .cloned()
            .collect();
        assert_eq!(touched.backends, changed_backends, "seed {seed}");
    }
}

/// On a valid base, checking what a delta touched finds what checking everything finds.
#[test]
fn validating_what_a_delta_touched_finds_every_error() {
    let (mut checked, mut found) = (0, 0);
    for seed in 0..3000 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let (old, new) = (config(&mut rng), config(&mut rng));
        if !crate::validate(&old).is_empty() {
            continue;
        }
        checked += 1;
        let (got, touched) = apply(&old, &diff(&old, &new).unwrap()).unwrap();
        let want = crate::validate(&new);
        found += usize::from(!want.is_empty());
        assert_eq!(crate::validate_touched(&got, &touched), want, "seed {seed}");
    }
    assert!(
        checked > 300 && found > 30,
        "{checked} valid bases, {found} invalid results"
    );
}

#[test]
fn chained_deltas_follow_a_sequence() {
    let mut rng = fastrand::Rng::with_seed(7);
    let mut running = config(&mut rng);
    for n in 0..1000 {
        let next = if n % 2 == 0 {
            config(&mut rng)
        } else {
            step(&mut rng, &running)
        };
        let delta = diff(&running, &next).unwrap();
        running = apply(&running, &delta).unwrap().0;
        assert_eq!(running, next, "step {n}");
    }
}

#[test]
fn unchanged_config_gives_an_empty_delta() {
    let mut rng = fastrand::Rng::with_seed(1);
    let c = config(&mut rng);
    let d = diff(&c, &c).unwrap();
    assert!(d.is_empty(), "{d:?}");
    assert_eq!(serde_json::to_string(&d).unwrap(), "{}");
    let (same, touched) = apply(&c, &d).unwrap();
    assert_eq!(same, c);
    assert_eq!(touched, Touched::default());
}

#[test]
fn another_api_version_needs_a_snapshot() {
    let mut rng = fastrand::Rng::with_seed(2);
    let a = config(&mut rng);
    let mut b = a.clone();
    b.api_version = "pylon.dev/dataplane/v2".into();
    assert_eq!(diff(&a, &b), None);
}

/// A route in a file-loaded config, out of canonical order, is still replaced, not duplicated.
#[test]
fn replaces_routes_out_of_canonical_order() {
    let mut rng = fastrand::Rng::with_seed(3);
    let backends = vec!["b0".to_string()];
    let mut a = config(&mut rng);
    a.backends = [(
        "b0".to_string(),
        Backend {
            protocol: BackendProtocol::Http1,
            ..Default::default()
        },
    )]
    .into();
    let mut r1 = route(&mut rng, &backends);
    let mut r2 = r1.clone();
    (r1.namespace, r1.name, r2.namespace, r2.name) =
        ("z".into(), "z".into(), "a".into(), "a".into());
    a.listeners = vec![Listener {
        name: "l".into(),
        port: 80,
        protocol: ListenerProtocol::Http,
        hostname: None,
        tls: None,
        routes: vec![Arc::new(r1.clone()), Arc::new(r2.clone())],
    }];
    let mut changed = r1.clone();
    changed.hostnames = vec!["new.example".into()];
    let delta = Delta {
        routes: vec![RouteSet {
            listener: "l".into(),
            kind: r1.kind,
            namespace: "z".into(),
            name: "z".into(),
            routes: vec![Arc::new(changed.clone())],
        }],
        ..Delta::default()
    };
    let (got, touched) = apply(&a, &delta).unwrap();
    assert_eq!(
        got.listeners[0].routes,
        vec![Arc::new(r2), Arc::new(changed.clone())]
    );
    let hosts = &touched.hosts["l"];
    assert!(hosts.contains(&HostKey::Exact("new.example".into())));
    assert!(HostKey::of(&r1).iter().all(|h| hosts.contains(h)));
    assert!(touched.rebuilds("l", &changed) && touched.rebuilds("l", &r1));
}

#[test]
fn deltas_that_do_not_fit_are_refused() {
    let mut rng = fastrand::Rng::with_seed(4);
    let mut base = config(&mut rng);
    while base.listeners.is_empty() {
        base = config(&mut rng);
    }
    let l = base.listeners[0].clone();
    let r = route(&mut rng, &["b0".into()]);
    let set = |listener: &str, namespace: &str| RouteSet {
        listener: listener.into(),
        kind: r.kind,
        namespace: namespace.into(),
        name: r.name.clone(),
        routes: vec![Arc::new(r.clone())],
    };
    let cases = [
        (
            Delta {
                listener_order: Some(vec!["nope".into()]),
                ..Delta::default()
            },
            DeltaError::UnknownListener("nope".into()),
        ),
        (
            Delta {
                listener_order: Some(vec![l.name.clone(), l.name.clone()]),
                ..Delta::default()
            },
            DeltaError::DuplicateListener(l.name.clone()),
        ),
        (
            Delta {
                listener_order: Some(vec![]),
                listeners: vec![l.clone()],
                ..Delta::default()
            },
            DeltaError::Unordered(l.name.clone()),
        ),
        (
            Delta {
                routes: vec![set("nope", &r.namespace)],
                ..Delta::default()
            },
            DeltaError::NoListener("nope".into()),
        ),
        (
            Delta {
                listeners: vec![l.clone()],
                routes: vec![set(&l.name, &r.namespace)],
                ..Delta::default()
            },
            DeltaError::WholeAndPatched(l.name.clone()),
        ),
        (
            Delta {
                routes: vec![set(&l.name, "elsewhere")],
                ..Delta::default()
            },
            DeltaError::Mismatch {
                listener: l.name.clone(),
                kind: r.kind,
                namespace: "elsewhere".into(),
                name: r.name.clone(),
            },
        ),
        (
            Delta {
                removed_backends: vec!["nope".into()],
                ..Delta::default()
            },
            DeltaError::NoBackend("nope".into()),
        ),
    ];
    for (delta, want) in cases {
        assert_eq!(apply(&base, &delta).unwrap_err(), want, "{delta:?}");
    }
}
