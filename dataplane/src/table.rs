//! The immutable route table built from a validated [`Config`]: per port, the listeners
//! (most specific hostname first), per listener the matches grouped by route hostname and
//! sorted by [`Precedence`]; UDP ports apart ([`udp`]). Built off the request path and
//! swapped atomically on reload.

mod udp;
pub use udp::UdpPort;

use std::collections::BTreeMap;

// Hostnames and path segments are looked up per request: foldhash, not SipHash. Safe against
// flooding: the maps are built from the config, requests only look up.
use foldhash::{HashMap, HashMapExt};
use std::sync::Arc;
use std::time::Duration;

use crate::backend::{BackendRt, Clients};
use crate::matching::{Matcher, PathCond, Precedence, RequestView};
use crate::tls::SniResolver;
use pylon_config::delta::{HostKey, Hosts, Touched, route_backends};
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
    /// Whether the native HTTP/1.1 exchange (`crate::native`) can serve this rule: no retries or
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

    /// A target drawn by weight; `None` if no target has weight.
    pub fn pick_random(&self) -> Option<&Target> {
        let total = self.total_weight();
        (total > 0)
            .then(|| self.pick(crate::random::random() % total))
            .flatten()
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

/// The route table of one listener. Host groups are shared (`Arc`) between table versions:
/// a delta rebuilds only the groups it touched ([`RouteTable::update`]).
#[derive(Debug)]
pub struct ListenerTable {
    pub name: String,
    pub hostname: Option<String>,
    /// A TLS listener's server config if it terminates TLS (it has `tls`); `None` for one that
    /// passes TLS through, and for HTTP and HTTPS listeners (HTTPS ports handshake before a
    /// listener is chosen: their config is the port's). Built with the table so a connection
    /// parses no PEM.
    pub terminate: Option<Arc<rustls::ServerConfig>>,
    exact: HashMap<String, Arc<HostGroup>>,
    /// (`*.suffix` pattern, group), longest first.
    wildcard: Vec<(String, Arc<HostGroup>)>,
    any: Arc<HostGroup>,
}

/// A successful route lookup.
pub struct Found<'a> {
    pub rule: &'a Arc<CompiledRule>,
    pub matcher: &'a Matcher,
}

impl ListenerTable {
    /// The host groups that may take `host`, in hostname precedence: exact, longer wildcards,
    /// routes without hostnames.
    fn groups(&self, host: &str) -> impl Iterator<Item = &HostGroup> {
        self.exact
            .get(host)
            .map(|g| &**g)
            .into_iter()
            .chain(
                self.wildcard
                    .iter()
                    .filter(move |(p, _)| host_matches(p, host))
                    .map(|(_, g)| &**g),
            )
            .chain(std::iter::once(&*self.any))
    }

    /// The winning rule for a request to `host` (normalised), if any.
    pub fn lookup(&self, host: &str, req: &RequestView<'_>, grpc: bool) -> Option<Found<'_>> {
        self.groups(host)
            .filter_map(|g| g.find(req, grpc))
            .map(|e| Found {
                rule: &e.rule,
                matcher: &e.matcher,
            })
            .next()
    }

    /// The rule of the L4 route (TLSRoute, TCPRoute) that takes a connection whose
    /// ClientHello named `sni` (lowercase; `""` without SNI, and for TCP, which only routes
    /// without hostnames take): the same hostname precedence as [`lookup`](Self::lookup), then
    /// within a host group the oldest route, then `namespace/name` (an L4 rule has no matches
    /// to rank).
    pub fn lookup_l4(&self, sni: &str) -> Option<&Arc<CompiledRule>> {
        self.groups(sni)
            .find_map(|g| g.entries.iter().find(|e| e.rule.kind.is_l4()))
            .map(|e| &e.rule)
    }

    fn build(
        path: &str,
        l: &config::Listener,
        backends: &HashMap<String, Arc<BackendRt>>,
    ) -> Result<Self, BuildError> {
        let mut t = ListenerTable {
            name: l.name.clone(),
            hostname: l.hostname.clone(),
            terminate: terminate_config(path, l)?,
            exact: HashMap::new(),
            wildcard: Vec::new(),
            any: Arc::default(),
        };
        t.replace(build_groups(path, l, None, backends)?);
        Ok(t)
    }

    /// A copy of this table with the groups in `dirty` rebuilt from `l` (groups left empty
    /// are dropped); the other groups are shared with `self`.
    fn rebuilt(
        &self,
        path: &str,
        l: &config::Listener,
        dirty: &Hosts,
        backends: &HashMap<String, Arc<BackendRt>>,
    ) -> Result<Self, BuildError> {
        let mut groups = build_groups(path, l, Some(dirty), backends)?;
        // A listener whose settings changed is sent whole and built anew: its TLS is as before.
        let mut t = ListenerTable {
            name: l.name.clone(),
            hostname: l.hostname.clone(),
            terminate: self.terminate.clone(),
            exact: self.exact.clone(),
            wildcard: self.wildcard.clone(),
            any: self.any.clone(),
        };
        if dirty.any && !groups.contains_key(&HostKey::Any) {
            groups.insert(HostKey::Any, HostGroup::default());
        }
        for h in &dirty.names {
            t.exact.remove(h);
            t.wildcard.retain(|(p, _)| p != h);
        }
        t.replace(groups);
        Ok(t)
    }

    /// Puts `groups` in, replacing groups of the same key.
    fn replace(&mut self, groups: BTreeMap<HostKey, HostGroup>) {
        let mut wild = false;
        for (k, mut g) in groups {
            g.index();
            let g = Arc::new(g);
            match k {
                HostKey::Any => self.any = g,
                HostKey::Exact(h) => {
                    self.exact.insert(h, g);
                }
                HostKey::Wildcard(h) => {
                    self.wildcard.retain(|(p, _)| *p != h);
                    self.wildcard.push((h, g));
                    wild = true;
                }
            }
        }
        if wild {
            // Longest suffix first; equal lengths by name, so the order is one value.
            self.wildcard
                .sort_by(|(a, _), (b, _)| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        }
    }
}

/// The server config of `l` if it is a terminating TLS listener.
fn terminate_config(
    path: &str,
    l: &config::Listener,
) -> Result<Option<Arc<rustls::ServerConfig>>, BuildError> {
    let (ListenerProtocol::Tls, Some(tls)) = (l.protocol, &l.tls) else {
        return Ok(None);
    };
    let err = |source| BuildError::Tls {
        path: format!("{path}.tls"),
        source,
    };
    let resolver = SniResolver::build(&[l]).map_err(err)?;
    Ok(Some(
        resolver
            .relay_config(tls.client_validation.as_ref())
            .map_err(err)?,
    ))
}

#[derive(Debug)]
pub struct PortTable {
    pub protocol: ListenerProtocol,
    /// Most specific hostname first (exact, longer wildcard, none).
    pub listeners: Vec<Arc<ListenerTable>>,
    /// An HTTPS port's server config (TLS ports: see [`ListenerTable::terminate`]).
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl PortTable {
    /// The listener that serves `host`.
    pub fn listener_for(&self, host: &str) -> Option<&ListenerTable> {
        self.listeners
            .iter()
            .map(|l| &**l)
            .find(|l| l.hostname.as_deref().is_none_or(|h| host_matches(h, host)))
    }
}

/// Everything the request path needs, immutable once built.
#[derive(Debug)]
pub struct RouteTable {
    pub version: String,
    pub config: Arc<Config>,
    pub ports: BTreeMap<u16, PortTable>,
    /// UDP listeners by port: numbers apart from `ports` (TCP).
    pub udp_ports: BTreeMap<u16, UdpPort>,
    pub backends: HashMap<String, Arc<BackendRt>>,
}

fn hostname_rank(h: Option<&str>) -> (u8, usize) {
    match h {
        Some(h) if !h.starts_with('*') => (0, 0),
        Some(h) => (1, usize::MAX - h.len()),
        None => (2, 0),
    }
}

fn backend_rt(
    name: &str,
    b: &config::Backend,
    clients: &Clients,
    previous: Option<&RouteTable>,
) -> Result<Arc<BackendRt>, BuildError> {
    let previous = previous.and_then(|t| t.backends.get(name)).map(|b| &**b);
    let rt = BackendRt::new(name, b, clients, previous).map_err(|source| BuildError::Tls {
        path: format!("backends.{name}.tls"),
        source,
    })?;
    Ok(Arc::new(rt))
}

impl RouteTable {
    /// Builds the table from a validated config, reusing connection pools from `clients`.
    pub fn build(
        version: String,
        config: Arc<Config>,
        clients: &Clients,
    ) -> Result<Self, BuildError> {
        Self::build_after(None, version, config, clients)
    }

    /// [`build`](Self::build), keeping the endpoint health of `previous` (the table running
    /// until now, if any) for the backends and addresses that stay.
    pub fn build_after(
        previous: Option<&RouteTable>,
        version: String,
        config: Arc<Config>,
        clients: &Clients,
    ) -> Result<Self, BuildError> {
        let backends: HashMap<String, Arc<BackendRt>> = config
            .backends
            .iter()
            .map(|(name, b)| Ok((name.clone(), backend_rt(name, b, clients, previous)?)))
            .collect::<Result<_, BuildError>>()?;
        let listeners = config
            .listeners
            .iter()
            .enumerate()
            .map(|(li, l)| {
                Ok(Arc::new(ListenerTable::build(
                    &format!("listeners[{li}]"),
                    l,
                    &backends,
                )?))
            })
            .collect::<Result<Vec<_>, BuildError>>()?;
        let ports = assemble(&config, listeners, None)?;
        Ok(RouteTable {
            version,
            udp_ports: udp::ports(&config, &backends),
            config,
            ports,
            backends,
        })
    }

    /// The table of `config`, which a delta that `touched` these parts made from `self`'s:
    /// only the touched backends, listeners and host groups are rebuilt (and the TLS of ports
    /// whose listeners changed); the rest is shared with `self`, connection health included
    /// (and a rebuilt backend keeps the health of the endpoints that stay).
    pub fn update(
        &self,
        version: String,
        config: Arc<Config>,
        touched: &Touched,
        clients: &Clients,
    ) -> Result<Self, BuildError> {
        let mut backends = self.backends.clone();
        for name in &touched.backends {
            match config.backends.get(name) {
                Some(b) => {
                    backends.insert(name.clone(), backend_rt(name, b, clients, Some(self))?);
                }
                None => {
                    backends.remove(name);
                }
            }
        }
        let previous: HashMap<&str, &Arc<ListenerTable>> = self
            .ports
            .values()
            .flat_map(|p| &p.listeners)
            .map(|l| (l.name.as_str(), l))
            .collect();
        let mut listeners = Vec::with_capacity(config.listeners.len());
        for (li, l) in config.listeners.iter().enumerate() {
            let path = format!("listeners[{li}]");
            let table = match previous.get(l.name.as_str()) {
                Some(prev) if !touched.listeners.contains(&l.name) => {
                    let dirty = dirty_groups(l, touched);
                    if dirty.any || !dirty.names.is_empty() {
                        Arc::new(prev.rebuilt(&path, l, &dirty, &backends)?)
                    } else {
                        Arc::clone(prev)
                    }
                }
                _ => Arc::new(ListenerTable::build(&path, l, &backends)?),
            };
            listeners.push(table);
        }
        let ports = assemble(&config, listeners, Some((self, touched)))?;
        Ok(RouteTable {
            version,
            udp_ports: udp::ports(&config, &backends),
            config,
            ports,
            backends,
        })
    }
}

/// The host groups of `l` a delta dirtied: those whose routes changed, and those holding a
/// route that refers to a changed backend (its rules hold the old one).
fn dirty_groups(l: &config::Listener, touched: &Touched) -> Hosts {
    let mut dirty = touched.hosts.get(&l.name).cloned().unwrap_or_default();
    if !touched.backends.is_empty() {
        for r in &l.routes {
            if route_backends(r).any(|b| touched.backends.contains(b)) {
                dirty.insert(r);
            }
        }
    }
    dirty
}

/// Groups `config`'s listener tables (in config order) by port, with each HTTPS port's TLS;
/// with `reuse`, a port keeps its TLS when the delta sent none of its listeners whole and the
/// listener set did not change. UDP listeners are left out: their ports are another space.
fn assemble(
    config: &Config,
    listeners: Vec<Arc<ListenerTable>>,
    reuse: Option<(&RouteTable, &Touched)>,
) -> Result<BTreeMap<u16, PortTable>, BuildError> {
    let mut ports: BTreeMap<u16, PortTable> = BTreeMap::new();
    for (l, lt) in config.listeners.iter().zip(listeners) {
        // UDP ports are numbered apart (`udp_ports`).
        if l.protocol == ListenerProtocol::Udp {
            continue;
        }
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
        if pt.protocol != ListenerProtocol::Https {
            continue;
        }
        let listeners: Vec<_> = config
            .listeners
            .iter()
            .filter(|l| l.port == *port)
            .collect();
        let kept = reuse.and_then(|(prev, touched)| {
            let unchanged = !touched.order
                && listeners
                    .iter()
                    .all(|l| !touched.listeners.contains(&l.name));
            unchanged.then(|| prev.ports.get(port)?.tls.clone())?
        });
        if kept.is_some() {
            pt.tls = kept;
            continue;
        }
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
    Ok(ports)
}

/// Compiles the host groups of `l`'s routes (only those in `only`, if given), keyed by host.
fn build_groups(
    path: &str,
    l: &config::Listener,
    only: Option<&Hosts>,
    backends: &HashMap<String, Arc<BackendRt>>,
) -> Result<BTreeMap<HostKey, HostGroup>, BuildError> {
    let mut groups: BTreeMap<HostKey, HostGroup> = BTreeMap::new();
    for (ri, route) in l.routes.iter().enumerate() {
        if only.is_some_and(|h| !h.holds(route)) {
            continue;
        }
        let rp = format!("{path}.routes[{ri}]");
        let label = format!("{}/{}", route.namespace, route.name);
        let keys: Vec<HostKey> = HostKey::of(route)
            .into_iter()
            .filter(|k| only.is_none_or(|h| h.contains(k)))
            .collect();
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
                for k in &keys {
                    groups.entry(k.clone()).or_default().entries.push(Entry {
                        prec: prec.clone(),
                        matcher: matcher.clone(),
                        rule: compiled.clone(),
                    });
                }
            }
        }
    }
    Ok(groups)
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

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
