//! The immutable route table built from a validated [`Config`]: per port, the listeners
//! (most specific hostname first), per listener the matches grouped by route hostname and
//! sorted by [`Precedence`]. Built off the request path and swapped atomically on reload.

use std::collections::BTreeMap;

// Hostnames and path segments are looked up per request: foldhash, not SipHash. Safe against
// flooding: the maps are built from the config, requests only look up.
use foldhash::{HashMap, HashMapExt};
use std::sync::Arc;
use std::time::Duration;

use crate::backend::{BackendRt, Clients};
use crate::matching::{Matcher, PathCond, Precedence, RequestView};
use crate::tls::SniResolver;
use pylon_config::host::host_matches;
use pylon_config::{self as config, Config, Filter, ListenerProtocol, RouteKind};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{path}: regex: {source}")]
    Regex {
        path: String,
        #[source]
        source: regex::Error,
    },
    #[error("{path}: {source}")]
    Tls {
        path: String,
        #[source]
        source: pylon_config::pem::PemError,
    },
}

/// Filters of a rule or of one backendRef, by kind.
#[derive(Debug, Default)]
pub struct Filters {
    pub request_headers: Option<config::HeaderModifier>,
    pub response_headers: Option<config::HeaderModifier>,
    pub redirect: Option<config::Redirect>,
    pub rewrite: Option<config::UrlRewrite>,
    pub mirrors: Vec<(Arc<BackendRt>, f64)>,
    pub cors: Option<config::Cors>,
}

impl Filters {
    fn build(filters: &[Filter], backends: &HashMap<String, Arc<BackendRt>>) -> Self {
        let mut f = Filters::default();
        for filter in filters {
            match filter {
                Filter::RequestHeaderModifier(m) => f.request_headers = Some(m.clone()),
                Filter::ResponseHeaderModifier(m) => f.response_headers = Some(m.clone()),
                Filter::RequestRedirect(r) => f.redirect = Some(r.clone()),
                Filter::UrlRewrite(u) => f.rewrite = Some(u.clone()),
                Filter::RequestMirror(m) => {
                    f.mirrors.push((backends[&m.backend].clone(), m.percent));
                }
                Filter::Cors(c) => f.cors = Some(c.clone()),
            }
        }
        f
    }
}

/// Where a share of a rule's traffic goes.
#[derive(Debug)]
pub enum Target {
    Backend {
        backend: Arc<BackendRt>,
        filters: Box<Filters>,
    },
    /// The controller found the reference invalid: answer 500.
    Invalid,
}

#[derive(Debug)]
pub struct CompiledRule {
    /// `namespace/name` of the route (bounded metric label).
    pub route: Arc<str>,
    /// Index of the rule in its route.
    pub rule: usize,
    pub kind: RouteKind,
    pub filters: Filters,
    /// (cumulative weight, target); weight-0 targets are left out.
    pub targets: Vec<(u64, Target)>,
    pub request_timeout: Option<Duration>,
    pub backend_timeout: Option<Duration>,
    pub retry: Option<config::Retry>,
    /// Whether the native HTTP/1.1 exchange (`crate::h1`) can serve this rule: no retries or
    /// mirrors (they resend a buffered body) and only plain HTTP/1.1 backends. Other rules are
    /// served by the hyper path.
    pub native_h1: bool,
}

impl CompiledRule {
    /// Total weight; 0 = no usable backendRef (answer 500).
    pub fn total_weight(&self) -> u64 {
        self.targets.last().map_or(0, |(w, _)| *w)
    }

    /// Picks a target by weight with `r` uniform in `0..total_weight()`.
    pub fn pick(&self, r: u64) -> Option<&Target> {
        self.targets
            .iter()
            .find(|(cum, _)| r < *cum)
            .map(|(_, t)| t)
    }
}

#[derive(Debug)]
struct Entry {
    prec: Precedence,
    matcher: Matcher,
    rule: Arc<CompiledRule>,
}

/// The matches of one host group, in precedence order, indexed by the first path segment so
/// thousands of routes on one hostname are not scanned linearly.
#[derive(Debug, Default)]
struct HostGroup {
    entries: Vec<Entry>,
    /// First path segment → indices of Exact / PathPrefix entries that can only match paths
    /// starting with it (ascending = precedence order).
    by_segment: HashMap<String, Vec<usize>>,
    /// Indices of entries that can match any first segment (prefix `/`, regex, gRPC).
    unsegmented: Vec<usize>,
}

/// The first segment of a path (`/a/b` → `a`, `/` → ``).
fn first_segment(path: &str) -> &str {
    let rest = path.strip_prefix('/').unwrap_or(path);
    rest.split('/').next().unwrap_or("")
}

impl HostGroup {
    fn index(&mut self) {
        self.entries.sort_by(|a, b| a.prec.cmp(&b.prec));
        for (i, e) in self.entries.iter().enumerate() {
            let segment = match &e.matcher.path {
                Some(PathCond::Exact(p)) => Some(first_segment(p)),
                Some(PathCond::Prefix(p)) if !p.is_empty() => Some(first_segment(p)),
                _ => None,
            };
            match segment {
                Some(s) => self.by_segment.entry(s.to_string()).or_default().push(i),
                None => self.unsegmented.push(i),
            }
        }
    }

    fn find(&self, req: &RequestView<'_>, grpc: bool) -> Option<&Entry> {
        let bucket = self
            .by_segment
            .get(first_segment(req.path))
            .map_or(&[][..], Vec::as_slice);
        let (mut a, mut b) = (bucket.iter().peekable(), self.unsegmented.iter().peekable());
        // Merge the two ascending index lists: the first entry that matches wins.
        loop {
            let i = match (a.peek(), b.peek()) {
                (Some(&&x), Some(&&y)) if x < y => a.next(),
                (Some(_), Some(_)) => b.next(),
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (None, None) => return None,
            };
            let e = &self.entries[*i.expect("peeked")];
            if (grpc || e.rule.kind == RouteKind::Http) && e.matcher.matches(req) {
                return Some(e);
            }
        }
    }
}

#[derive(Debug)]
pub struct ListenerTable {
    pub name: String,
    pub hostname: Option<String>,
    exact: HashMap<String, HostGroup>,
    /// (`*.suffix` pattern, group), longest first.
    wildcard: Vec<(String, HostGroup)>,
    any: HostGroup,
}

/// A successful route lookup.
pub struct Found<'a> {
    pub rule: &'a Arc<CompiledRule>,
    pub matcher: &'a Matcher,
}

impl ListenerTable {
    /// The winning rule for a request to `host` (normalised), if any.
    pub fn lookup(&self, host: &str, req: &RequestView<'_>, grpc: bool) -> Option<Found<'_>> {
        let groups = self
            .exact
            .get(host)
            .into_iter()
            .chain(
                self.wildcard
                    .iter()
                    .filter(|(p, _)| host_matches(p, host))
                    .map(|(_, g)| g),
            )
            .chain(std::iter::once(&self.any));
        groups
            .filter_map(|g| g.find(req, grpc))
            .map(|e| Found {
                rule: &e.rule,
                matcher: &e.matcher,
            })
            .next()
    }
}

#[derive(Debug)]
pub struct PortTable {
    pub protocol: ListenerProtocol,
    /// Most specific hostname first (exact, longer wildcard, none).
    pub listeners: Vec<ListenerTable>,
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl PortTable {
    /// The listener that serves `host`.
    pub fn listener_for(&self, host: &str) -> Option<&ListenerTable> {
        self.listeners
            .iter()
            .find(|l| l.hostname.as_deref().is_none_or(|h| host_matches(h, host)))
    }
}

/// Everything the request path needs, immutable once built.
#[derive(Debug)]
pub struct RouteTable {
    pub version: String,
    pub config: Arc<Config>,
    pub ports: BTreeMap<u16, PortTable>,
    pub backends: HashMap<String, Arc<BackendRt>>,
}

fn hostname_rank(h: Option<&str>) -> (u8, usize) {
    match h {
        Some(h) if !h.starts_with('*') => (0, 0),
        Some(h) => (1, usize::MAX - h.len()),
        None => (2, 0),
    }
}

impl RouteTable {
    /// Builds the table from a validated config, reusing connection pools from `clients`.
    pub fn build(
        version: String,
        config: Arc<Config>,
        clients: &Clients,
    ) -> Result<Self, BuildError> {
        let backends: HashMap<String, Arc<BackendRt>> = config
            .backends
            .iter()
            .map(|(name, b)| {
                let rt = BackendRt::new(name, b, clients).map_err(|source| BuildError::Tls {
                    path: format!("backends.{name}.tls"),
                    source,
                })?;
                Ok((name.clone(), Arc::new(rt)))
            })
            .collect::<Result<_, BuildError>>()?;
        let mut ports: BTreeMap<u16, PortTable> = BTreeMap::new();
        for (li, l) in config.listeners.iter().enumerate() {
            let lt = build_listener(&format!("listeners[{li}]"), l, &backends)?;
            let port = ports.entry(l.port).or_insert_with(|| PortTable {
                protocol: l.protocol,
                listeners: Vec::new(),
                tls: None,
            });
            port.listeners.push(lt);
        }
        for (port, pt) in ports.iter_mut() {
            pt.listeners
                .sort_by_key(|l| hostname_rank(l.hostname.as_deref()));
            if pt.protocol == ListenerProtocol::Https {
                let listeners: Vec<_> = config
                    .listeners
                    .iter()
                    .filter(|l| l.port == *port)
                    .collect();
                let tls_err = |source| BuildError::Tls {
                    path: format!("port {port}"),
                    source,
                };
                let clients = listeners
                    .iter()
                    .find_map(|l| l.tls.as_ref())
                    .and_then(|t| t.client_validation.as_ref());
                let resolver = SniResolver::build(&listeners).map_err(tls_err)?;
                pt.tls = Some(resolver.server_config(clients).map_err(tls_err)?);
            }
        }
        Ok(RouteTable {
            version,
            config,
            ports,
            backends,
        })
    }
}

fn build_listener(
    path: &str,
    l: &config::Listener,
    backends: &HashMap<String, Arc<BackendRt>>,
) -> Result<ListenerTable, BuildError> {
    let mut exact: HashMap<String, HostGroup> = HashMap::new();
    let mut wildcard: BTreeMap<(usize, String), HostGroup> = BTreeMap::new();
    let mut any = HostGroup::default();
    for (ri, route) in l.routes.iter().enumerate() {
        let rp = format!("{path}.routes[{ri}]");
        let label = format!("{}/{}", route.namespace, route.name);
        for (ui, rule) in route.rules.iter().enumerate() {
            let compiled = Arc::new(compile_rule(&label, ui, route.kind, rule, backends));
            let matches: Vec<Option<&config::RouteMatch>> = if rule.matches.is_empty() {
                vec![None]
            } else {
                rule.matches.iter().map(Some).collect()
            };
            for (mi, m) in matches.into_iter().enumerate() {
                let matcher =
                    Matcher::compile(route.kind, m).map_err(|source| BuildError::Regex {
                        path: format!("{rp}.rules[{ui}].matches[{mi}]"),
                        source,
                    })?;
                let prec = Precedence::new(route, &matcher, ui, mi);
                let add = |g: &mut HostGroup| {
                    g.entries.push(Entry {
                        prec: prec.clone(),
                        matcher: matcher.clone(),
                        rule: compiled.clone(),
                    })
                };
                if route.hostnames.is_empty() {
                    add(&mut any);
                }
                for h in &route.hostnames {
                    if h.starts_with('*') {
                        add(wildcard
                            .entry((usize::MAX - h.len(), h.clone()))
                            .or_default());
                    } else {
                        add(exact.entry(h.clone()).or_default());
                    }
                }
            }
        }
    }
    exact.values_mut().for_each(HostGroup::index);
    wildcard.values_mut().for_each(HostGroup::index);
    any.index();
    Ok(ListenerTable {
        name: l.name.clone(),
        hostname: l.hostname.clone(),
        exact,
        wildcard: wildcard.into_iter().map(|((_, h), g)| (h, g)).collect(),
        any,
    })
}

fn compile_rule(
    label: &str,
    index: usize,
    kind: RouteKind,
    rule: &config::Rule,
    backends: &HashMap<String, Arc<BackendRt>>,
) -> CompiledRule {
    let mut cum = 0u64;
    let mut targets = Vec::new();
    for b in &rule.backend_refs {
        if b.weight() == 0 {
            continue;
        }
        cum += u64::from(b.weight());
        let t = match b {
            config::BackendRef::Backend(t) => Target::Backend {
                backend: backends[&t.name].clone(),
                filters: Box::new(Filters::build(&t.filters, backends)),
            },
            config::BackendRef::Invalid(_) => Target::Invalid,
        };
        targets.push((cum, t));
    }
    let nonzero = |d: Option<config::Duration>| d.map(|d| d.0).filter(|d| !d.is_zero());
    let filters = Filters::build(&rule.filters, backends);
    let retry = rule.retry.clone().filter(|r| r.attempts > 0);
    let native_h1 = kind == RouteKind::Http
        && retry.is_none()
        && filters.mirrors.is_empty()
        && targets.iter().all(|(_, t)| match t {
            Target::Backend { backend, filters } => {
                backend.is_plain_h1() && filters.mirrors.is_empty()
            }
            Target::Invalid => true,
        });
    CompiledRule {
        route: Arc::from(label),
        rule: index,
        kind,
        filters,
        targets,
        request_timeout: nonzero(rule.timeouts.as_ref().and_then(|t| t.request)),
        backend_timeout: nonzero(rule.timeouts.as_ref().and_then(|t| t.backend_request)),
        retry,
        native_h1,
    }
}
