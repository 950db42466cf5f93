//! Request matching, exactly per Gateway API v1.5.1, and the precedence between matches.
//!
//! Pure: no I/O. Precedence is encoded once, in [`Precedence`]'s `Ord` (smaller = wins);
//! hostname precedence is applied by the route table's host groups (exact, then longer
//! wildcards, then routes without hostnames) before this ordering.

use std::borrow::Cow;
use std::cmp::Ordering;

use http::{HeaderMap, HeaderName, Method};
use regex::Regex;

use pylon_config::{self as config, MatchType, PathMatch, RouteKind, RouteMatch};

/// Normalises a Host / :authority value: lowercase, port and trailing dot removed. Borrowed
/// when already normal (the usual case: no copy per request).
pub fn normalize_host(authority: &str) -> Cow<'_, str> {
    let host = if authority.starts_with('[') {
        authority.split_inclusive(']').next().unwrap_or(authority)
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    let host = host.trim_end_matches('.');
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

/// A string condition: exact or a regex that must match the whole value.
#[derive(Debug, Clone)]
pub enum ValueMatch {
    Exact(String),
    Regex(Regex),
}

impl ValueMatch {
    fn new(t: MatchType, v: &str) -> Result<Self, regex::Error> {
        Ok(match t {
            MatchType::Exact => ValueMatch::Exact(v.to_string()),
            MatchType::RegularExpression => ValueMatch::Regex(Regex::new(&format!("^(?:{v})$"))?),
        })
    }

    pub fn matches(&self, s: &str) -> bool {
        match self {
            ValueMatch::Exact(e) => e == s,
            ValueMatch::Regex(r) => r.is_match(s),
        }
    }

    fn exact_len(&self) -> usize {
        match self {
            ValueMatch::Exact(e) => e.len(),
            ValueMatch::Regex(_) => 0,
        }
    }
}

#[derive(Debug, Clone)]
pub enum PathCond {
    Exact(String),
    /// Stored without trailing slash; empty = `/` (matches everything).
    Prefix(String),
    Regex(Regex, usize),
}

impl PathCond {
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathCond::Exact(e) => e == path,
            PathCond::Prefix(p) => {
                p.is_empty()
                    || (path.starts_with(p.as_str())
                        && matches!(path.as_bytes().get(p.len()), None | Some(b'/')))
            }
            PathCond::Regex(r, _) => r.is_match(path),
        }
    }
}

/// One compiled match of a rule.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub path: Option<PathCond>,
    pub method: Option<Method>,
    pub headers: Vec<(HeaderName, ValueMatch)>,
    pub query: Vec<(String, ValueMatch)>,
    /// gRPC service and method conditions.
    pub grpc: Option<(Option<ValueMatch>, Option<ValueMatch>)>,
}

/// The parts of a request matching looks at.
pub struct RequestView<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
}

impl Matcher {
    /// Compiles a config match (already validated). An absent match = match everything.
    pub fn compile(kind: RouteKind, m: Option<&RouteMatch>) -> Result<Self, regex::Error> {
        let default = RouteMatch::default();
        let m = m.unwrap_or(&default);
        let path = match (&m.path, kind) {
            (Some(PathMatch::Exact { value }), _) => Some(PathCond::Exact(value.clone())),
            (Some(PathMatch::PathPrefix { value }), _) => {
                Some(PathCond::Prefix(value.trim_end_matches('/').to_string()))
            }
            (Some(PathMatch::RegularExpression { value }), _) => Some(PathCond::Regex(
                Regex::new(&format!("^(?:{value})$"))?,
                value.len(),
            )),
            (None, RouteKind::Http) => Some(PathCond::Prefix(String::new())),
            // An L4 route's connection never reaches request matching (its listener relays bytes).
            (None, RouteKind::Grpc | RouteKind::Tls | RouteKind::Tcp | RouteKind::Udp) => None,
        };
        let headers = m
            .headers
            .iter()
            .map(|h| {
                let name =
                    HeaderName::from_bytes(h.name.as_bytes()).expect("validated header name");
                Ok((name, ValueMatch::new(h.match_type, &h.value)?))
            })
            .collect::<Result<_, regex::Error>>()?;
        let query = m
            .query_params
            .iter()
            .map(|q| Ok((q.name.clone(), ValueMatch::new(q.match_type, &q.value)?)))
            .collect::<Result<_, regex::Error>>()?;
        let grpc = match &m.grpc {
            Some(g) => Some((
                g.service
                    .as_deref()
                    .map(|s| ValueMatch::new(g.match_type, s))
                    .transpose()?,
                g.method
                    .as_deref()
                    .map(|s| ValueMatch::new(g.match_type, s))
                    .transpose()?,
            )),
            None => None,
        };
        let method = m
            .method
            .as_deref()
            .map(|s| Method::from_bytes(s.as_bytes()).expect("validated method"));
        Ok(Matcher {
            path,
            method,
            headers,
            query,
            grpc,
        })
    }

    pub fn matches(&self, r: &RequestView<'_>) -> bool {
        if let Some(p) = &self.path
            && !p.matches(r.path)
        {
            return false;
        }
        if let Some(m) = &self.method
            && m != r.method
        {
            return false;
        }
        if let Some((svc, meth)) = &self.grpc {
            let Some((s, m)) = r.path.strip_prefix('/').and_then(|p| p.split_once('/')) else {
                return false;
            };
            if svc.as_ref().is_some_and(|c| !c.matches(s))
                || meth.as_ref().is_some_and(|c| !c.matches(m))
            {
                return false;
            }
        }
        let header_ok = |(name, cond): &(HeaderName, ValueMatch)| {
            r.headers
                .get_all(name)
                .iter()
                .any(|v| v.to_str().is_ok_and(|v| cond.matches(v)))
        };
        if !self.headers.iter().all(header_ok) {
            return false;
        }
        self.query.iter().all(|(name, cond)| {
            query_param(r.query.unwrap_or(""), name).is_some_and(|v| cond.matches(&v))
        })
    }

    /// The matched path prefix (for ReplacePrefixMatch), if this is a prefix match.
    pub fn prefix(&self) -> Option<&str> {
        match &self.path {
            Some(PathCond::Prefix(p)) => Some(p),
            _ => None,
        }
    }
}

/// The first value of query parameter `name`, percent-decoded.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Path specificity: Exact beats RegularExpression beats PathPrefix; longer beats shorter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum PathRank {
    None,
    Prefix(usize),
    Regex(usize),
    Exact(usize),
}

/// The precedence of one match among all matches of a listener's host group.
/// `a < b` means `a` wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Precedence {
    kind: RouteKind,
    path: PathRank,
    method: bool,
    grpc_service: usize,
    grpc_method: usize,
    headers: usize,
    query: usize,
    created: i128,
    namespace: String,
    name: String,
    rule: usize,
    index: usize,
}

impl Precedence {
    pub fn new(route: &config::Route, m: &Matcher, rule: usize, index: usize) -> Self {
        let path = match &m.path {
            None => PathRank::None,
            Some(PathCond::Exact(e)) => PathRank::Exact(e.len()),
            Some(PathCond::Prefix(p)) => PathRank::Prefix(p.len()),
            Some(PathCond::Regex(_, n)) => PathRank::Regex(*n),
        };
        let (grpc_service, grpc_method) = m.grpc.as_ref().map_or((0, 0), |(s, me)| {
            (
                s.as_ref().map_or(0, ValueMatch::exact_len),
                me.as_ref().map_or(0, ValueMatch::exact_len),
            )
        });
        Precedence {
            kind: route.kind,
            path,
            method: m.method.is_some(),
            grpc_service,
            grpc_method,
            headers: m.headers.len(),
            query: m.query.len(),
            created: config::timestamp::parse_timestamp(&route.creation_timestamp)
                .unwrap_or(i128::MAX),
            namespace: route.namespace.clone(),
            name: route.name.clone(),
            rule,
            index,
        }
    }
}

impl Ord for Precedence {
    fn cmp(&self, o: &Self) -> Ordering {
        let kind_rank = |k: RouteKind| match k {
            RouteKind::Grpc => 0,
            RouteKind::Http => 1,
            // Never beside HTTP kinds on a listener: any rank would do.
            RouteKind::Tls | RouteKind::Tcp | RouteKind::Udp => 2,
        };
        kind_rank(self.kind)
            .cmp(&kind_rank(o.kind))
            .then(o.path.cmp(&self.path))
            .then(o.method.cmp(&self.method))
            .then(o.grpc_service.cmp(&self.grpc_service))
            .then(o.grpc_method.cmp(&self.grpc_method))
            .then(o.headers.cmp(&self.headers))
            .then(o.query.cmp(&self.query))
            .then(self.created.cmp(&o.created))
            .then_with(|| self.namespace.cmp(&o.namespace))
            .then_with(|| self.name.cmp(&o.name))
            .then(self.rule.cmp(&o.rule))
            .then(self.index.cmp(&o.index))
    }
}

impl PartialOrd for Precedence {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

#[cfg(test)]
#[path = "matching_tests.rs"]
mod tests;
