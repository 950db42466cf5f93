//! Random configs for property tests (this crate's, and the data plane's through the `random`
//! feature): small pools of names, hosts and backends, so that two consecutive configs overlap
//! and a diff between them has a bit of everything. Listeners are plain HTTP; some configs are
//! invalid (an uppercase hostname, listeners clashing on a port), as data planes must face.

use std::sync::Arc;

use crate::delta::route_order;
use crate::{
    API_VERSION, Backend, BackendProtocol, BackendRef, BackendTarget, Config, Endpoint,
    EndpointState, Filter, Listener, ListenerProtocol, Mirror, Route, RouteKind, Rule,
};

/// `Upper.example` is invalid (hostnames are lowercase): some routes are, to be found.
const HOSTS: &[&str] = &[
    "a.example",
    "b.example",
    "*.example",
    "*.b.example",
    "Upper.example",
];

fn pick<'a, T>(rng: &mut fastrand::Rng, xs: &'a [T]) -> &'a T {
    &xs[rng.usize(..xs.len())]
}

/// A route referring to some of `backends`.
pub fn route(rng: &mut fastrand::Rng, backends: &[String]) -> Route {
    let hostnames = (0..rng.usize(..3))
        .map(|_| pick(rng, HOSTS).to_string())
        .collect();
    let target = |rng: &mut fastrand::Rng| {
        BackendRef::Backend(BackendTarget {
            name: pick(rng, backends).clone(),
            weight: rng.u32(0..3),
            filters: vec![],
        })
    };
    let rules = (0..rng.usize(1..3))
        .map(|_| Rule {
            name: None,
            matches: vec![],
            filters: if rng.bool() {
                vec![Filter::RequestMirror(Mirror {
                    backend: pick(rng, backends).clone(),
                    percent: 100.0,
                })]
            } else {
                vec![]
            },
            backend_refs: (0..rng.usize(..3)).map(|_| target(rng)).collect(),
            timeouts: None,
            retry: None,
        })
        .collect();
    Route {
        kind: if rng.bool() {
            RouteKind::Http
        } else {
            RouteKind::Grpc
        },
        namespace: pick(rng, &["ns1", "ns2"]).to_string(),
        name: format!("r{}", rng.u8(..6)),
        creation_timestamp: "2024-01-02T03:04:05Z".into(),
        hostnames,
        rules,
    }
}

/// A config in canonical order; small pools so that consecutive configs overlap.
pub fn config(rng: &mut fastrand::Rng) -> Config {
    let backends: Vec<String> = (0..rng.usize(1..4)).map(|i| format!("b{i}")).collect();
    let mut names = vec!["http", "alt", "other"];
    rng.shuffle(&mut names);
    let listeners = names[..rng.usize(..=3)]
        .iter()
        .map(|name| {
            let mut routes: Vec<Arc<Route>> = (0..rng.usize(..8))
                .map(|_| Arc::new(route(rng, &backends)))
                .collect();
            routes.sort_by(|a, b| route_order(a, b));
            Listener {
                name: name.to_string(),
                port: *pick(rng, &[80, 8080]),
                protocol: ListenerProtocol::Http,
                hostname: rng.bool().then(|| pick(rng, HOSTS).to_string()),
                tls: None,
                routes,
            }
        })
        .collect();
    let backends = backends
        .into_iter()
        .map(|name| {
            let endpoints = (0..rng.u8(..3))
                .map(|i| Endpoint {
                    address: format!("10.0.0.{i}:80").parse().unwrap(),
                    state: *pick(
                        rng,
                        &[
                            EndpointState::Ready,
                            EndpointState::Terminating,
                            EndpointState::NotServing,
                        ],
                    ),
                })
                .collect();
            let protocol = *pick(rng, &[BackendProtocol::Http1, BackendProtocol::H2c]);
            (
                name,
                Backend {
                    protocol,
                    endpoints,
                    tls: None,
                    connect_timeout: None,
                },
            )
        })
        .collect();
    Config {
        api_version: API_VERSION.into(),
        listeners,
        backends,
    }
}

/// A small change to `c`, as one watch event makes: one backend's endpoints, or one route
/// added, replaced or removed (canonical order kept).
pub fn step(rng: &mut fastrand::Rng, c: &Config) -> Config {
    let mut c = c.clone();
    let backends: Vec<String> = c.backends.keys().cloned().collect();
    let n = c.listeners.len();
    match rng.u8(..4) {
        0 | 1 if !backends.is_empty() => {
            let b = c.backends.get_mut(pick(rng, &backends)).expect("listed");
            b.endpoints = vec![Endpoint::ready(
                format!("10.1.{}.{}:80", rng.u8(..), rng.u8(..))
                    .parse()
                    .unwrap(),
            )];
        }
        _ if n > 0 && !backends.is_empty() => {
            let l = &mut c.listeners[rng.usize(..n)];
            if !l.routes.is_empty() && rng.bool() {
                l.routes.remove(rng.usize(..l.routes.len()));
            }
            if rng.bool() {
                l.routes.push(Arc::new(route(rng, &backends)));
                l.routes.sort_by(|a, b| route_order(a, b));
            }
        }
        _ => {}
    }
    c
}
