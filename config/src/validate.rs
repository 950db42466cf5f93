//! Semantic validation of a parsed [`Config`]: everything serde cannot check. Each error names
//! the field path (`listeners[0].routes[2].rules[0].matches[1].path.value`) and what is wrong.
//! A config with any error is rejected whole.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::*;
use crate::host::check_hostname;
use crate::timestamp::parse_timestamp;

/// One problem in a config, at a field path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ValidationError {
    pub path: String,
    pub message: String,
}

/// Every problem found (empty = valid), in document order.
pub fn validate(config: &Config) -> Vec<ValidationError> {
    let mut v = Validator::default();
    v.config(config, None);
    v.errors
}

/// The problems of a config a delta produced from a valid one, checking only what the delta
/// could have made wrong: the listener set (names, ports, protocols, shared TLS settings), the
/// TLS material of listeners sent whole, the routes it rebuilds ([`Touched::rebuilds`]: every
/// route naming a removed backend among them) and the backends it sent. On a valid base this
/// finds exactly what [`validate`] finds.
pub fn validate_touched(config: &Config, touched: &crate::delta::Touched) -> Vec<ValidationError> {
    let mut v = Validator::default();
    v.config(config, Some(touched));
    v.errors
}

/// The problems of one rule of a `kind` route on its own, paths relative to the rule
/// (`filters[0].path`); `backend_exists` says which names `backends` would hold. The controller
/// checks each rule with this before sending it, so one bad rule is dropped instead of making
/// the data plane reject the whole config; [`validate`] runs the same checks on every rule.
pub fn validate_rule(
    kind: RouteKind,
    rule: &Rule,
    backend_exists: &dyn Fn(&str) -> bool,
) -> Vec<ValidationError> {
    let mut v = Validator::default();
    v.rule("", kind, rule, backend_exists);
    for e in &mut v.errors {
        if let Some(relative) = e.path.strip_prefix('.') {
            e.path = relative.to_string();
        }
    }
    v.errors
}

#[derive(Default)]
struct Validator {
    errors: Vec<ValidationError>,
}

impl Validator {
    fn err(&mut self, path: impl fmt::Display, message: impl Into<String>) {
        self.errors.push(ValidationError {
            path: path.to_string(),
            message: message.into(),
        });
    }

    /// `scope`: only what a delta touched (see [`validate_touched`]); `None`: everything.
    fn config(&mut self, c: &Config, scope: Option<&crate::delta::Touched>) {
        if c.api_version != API_VERSION {
            self.err(
                "apiVersion",
                format!("unsupported {:?}, expected {API_VERSION:?}", c.api_version),
            );
        }
        let mut names = BTreeSet::new();
        // Per (UDP?, port): the port's protocol and its listeners' hostnames.
        type PortUse<'c> = (ListenerProtocol, BTreeSet<Option<&'c str>>);
        let mut by_port: BTreeMap<(bool, u16), PortUse<'_>> = BTreeMap::new();
        // One TLS handshake serves every listener of a port, so they share client validation.
        let mut validation_by_port = BTreeMap::new();
        for (i, l) in c.listeners.iter().enumerate() {
            let p = format!("listeners[{i}]");
            if l.name.is_empty() {
                self.err(format!("{p}.name"), "must not be empty");
            } else if !names.insert(l.name.as_str()) {
                self.err(
                    format!("{p}.name"),
                    format!("duplicate listener name {:?}", l.name),
                );
            }
            if l.port == 0 {
                self.err(format!("{p}.port"), "must be 1-65535");
            }
            let bare = matches!(l.protocol, ListenerProtocol::Tcp | ListenerProtocol::Udp);
            match &l.hostname {
                // Nothing in a TCP segment or UDP datagram names a host to choose by.
                Some(_) if bare => self.err(
                    format!("{p}.hostname"),
                    format!("not allowed for {:?} (nothing names a host)", l.protocol),
                ),
                Some(h) => self.hostname(format!("{p}.hostname"), h),
                None => {}
            }
            // UDP ports are a space of their own: TCP and UDP listeners may share a number.
            let entry = by_port
                .entry((l.protocol == ListenerProtocol::Udp, l.port))
                .or_insert_with(|| (l.protocol, BTreeSet::new()));
            if entry.0 != l.protocol {
                self.err(
                    format!("{p}.protocol"),
                    format!(
                        "port {} is already used with protocol {:?}",
                        l.port, entry.0
                    ),
                );
            }
            if !entry.1.insert(l.hostname.as_deref()) {
                self.err(
                    format!("{p}.hostname"),
                    format!("another listener on port {} has the same hostname", l.port),
                );
            }
            match (l.protocol, &l.tls) {
                (ListenerProtocol::Https, None) => {
                    self.err(format!("{p}.tls"), "required for HTTPS")
                }
                (
                    ListenerProtocol::Http | ListenerProtocol::Tcp | ListenerProtocol::Udp,
                    Some(_),
                ) => self.err(
                    format!("{p}.tls"),
                    format!("not allowed for {:?}", l.protocol),
                ),
                (_, Some(tls)) => {
                    if scope.is_none_or(|t| t.listeners.contains(&l.name)) {
                        self.listener_tls(&format!("{p}.tls"), tls);
                    }
                    let (first, validation) = validation_by_port
                        .entry(l.port)
                        .or_insert((l.name.as_str(), &tls.client_validation));
                    if *validation != &tls.client_validation {
                        self.err(
                            format!("{p}.tls.clientValidation"),
                            format!(
                                "differs from listener {first:?} on the same port {}",
                                l.port
                            ),
                        );
                    }
                }
                _ => {}
            }
            for (j, r) in l.routes.iter().enumerate() {
                if scope.is_some_and(|t| !t.rebuilds(&l.name, r)) {
                    continue;
                }
                if !l.protocol.takes(r.kind) {
                    self.err(
                        format!("{p}.routes[{j}].kind"),
                        format!(
                            "{} cannot attach to a {:?} listener",
                            r.kind.as_str(),
                            l.protocol
                        ),
                    );
                }
                self.route(&format!("{p}.routes[{j}]"), r, &|name| {
                    c.backends.contains_key(name)
                });
            }
        }
        for (name, b) in &c.backends {
            if scope.is_none_or(|t| t.backends.contains(name)) {
                self.backend(&format!("backends.{name}"), b);
            }
        }
    }

    fn listener_tls(&mut self, p: &str, tls: &ListenerTls) {
        if tls.certificates.is_empty() {
            self.err(
                format!("{p}.certificates"),
                "at least one certificate is required",
            );
        }
        for (i, cert) in tls.certificates.iter().enumerate() {
            let cp = format!("{p}.certificates[{i}]");
            for (k, h) in cert.hostnames.iter().enumerate() {
                self.hostname(format!("{cp}.hostnames[{k}]"), h);
            }
            if let Err(e) = crate::pem::parse_certs(&cert.cert_pem) {
                self.err(format!("{cp}.certPem"), e.to_string());
            }
            if let Err(e) = crate::pem::parse_key(&cert.key_pem) {
                self.err(format!("{cp}.keyPem"), e.to_string());
            }
        }
        if let Some(v) = &tls.client_validation
            && let Err(e) = crate::pem::client_verifier(&v.ca_pem)
        {
            self.err(format!("{p}.clientValidation.caPem"), e.to_string());
        }
    }

    fn hostname(&mut self, p: String, h: &str) {
        if let Err(m) = check_hostname(h) {
            self.err(p, m);
        }
    }

    fn route(&mut self, p: &str, r: &Route, backend_exists: &dyn Fn(&str) -> bool) {
        if r.namespace.is_empty() {
            self.err(format!("{p}.namespace"), "must not be empty");
        }
        if r.name.is_empty() {
            self.err(format!("{p}.name"), "must not be empty");
        }
        if parse_timestamp(&r.creation_timestamp).is_none() {
            self.err(
                format!("{p}.creationTimestamp"),
                format!(
                    "{:?} is not RFC 3339 (e.g. 2024-01-02T03:04:05Z)",
                    r.creation_timestamp
                ),
            );
        }
        for (i, h) in r.hostnames.iter().enumerate() {
            self.hostname(format!("{p}.hostnames[{i}]"), h);
        }
        if r.kind.is_l4() && r.rules.len() != 1 {
            self.err(
                format!("{p}.rules"),
                format!("a {} has exactly one rule", r.kind.as_str()),
            );
        }
        if matches!(r.kind, RouteKind::Tcp | RouteKind::Udp) && !r.hostnames.is_empty() {
            self.err(
                format!("{p}.hostnames"),
                format!("not allowed in a {}", r.kind.as_str()),
            );
        }
        for (i, rule) in r.rules.iter().enumerate() {
            self.rule(&format!("{p}.rules[{i}]"), r.kind, rule, backend_exists);
        }
    }

    fn rule(
        &mut self,
        p: &str,
        kind: RouteKind,
        rule: &Rule,
        backend_exists: &dyn Fn(&str) -> bool,
    ) {
        if kind.is_l4() {
            let backend_filters = rule
                .backend_refs
                .iter()
                .any(|b| matches!(b, BackendRef::Backend(t) if !t.filters.is_empty()));
            for (set, field) in [
                (!rule.matches.is_empty(), "matches"),
                (!rule.filters.is_empty(), "filters"),
                (backend_filters, "backendRefs[].filters"),
                (rule.timeouts.is_some(), "timeouts"),
                (rule.retry.is_some(), "retry"),
            ] {
                if set {
                    self.err(
                        format!("{p}.{field}"),
                        format!(
                            "not allowed in a {} rule (it relays bytes, not requests)",
                            kind.as_str()
                        ),
                    );
                }
            }
            // Nothing below applies to a rule without matches and filters but its backends.
        }
        for (i, m) in rule.matches.iter().enumerate() {
            self.route_match(&format!("{p}.matches[{i}]"), kind, m);
        }
        let has = |f: fn(&Filter) -> bool| rule.filters.iter().filter(|x| f(x)).count();
        if has(|f| matches!(f, Filter::RequestRedirect(_))) > 0
            && has(|f| matches!(f, Filter::UrlRewrite(_))) > 0
        {
            self.err(
                format!("{p}.filters"),
                "RequestRedirect and URLRewrite cannot be combined",
            );
        }
        for (kind_name, n) in [
            (
                "RequestRedirect",
                has(|f| matches!(f, Filter::RequestRedirect(_))),
            ),
            ("URLRewrite", has(|f| matches!(f, Filter::UrlRewrite(_)))),
            (
                "RequestHeaderModifier",
                has(|f| matches!(f, Filter::RequestHeaderModifier(_))),
            ),
            (
                "ResponseHeaderModifier",
                has(|f| matches!(f, Filter::ResponseHeaderModifier(_))),
            ),
            ("CORS", has(|f| matches!(f, Filter::Cors(_)))),
        ] {
            if n > 1 {
                self.err(
                    format!("{p}.filters"),
                    format!("{kind_name} may appear at most once"),
                );
            }
        }
        let prefix_only = !rule.matches.is_empty()
            && rule
                .matches
                .iter()
                .all(|m| matches!(m.path, Some(PathMatch::PathPrefix { .. })));
        for (i, f) in rule.filters.iter().enumerate() {
            self.filter(
                &format!("{p}.filters[{i}]"),
                f,
                backend_exists,
                prefix_only || rule.matches.is_empty(),
                false,
            );
        }
        for (i, b) in rule.backend_refs.iter().enumerate() {
            let bp = format!("{p}.backendRefs[{i}]");
            match b {
                BackendRef::Backend(t) => {
                    if !backend_exists(&t.name) {
                        self.err(
                            format!("{bp}.name"),
                            format!("unknown backend {:?}", t.name),
                        );
                    }
                    for (j, f) in t.filters.iter().enumerate() {
                        self.filter(
                            &format!("{bp}.filters[{j}]"),
                            f,
                            backend_exists,
                            prefix_only,
                            true,
                        );
                    }
                }
                BackendRef::Invalid(inv) => {
                    if inv.reason.is_empty() {
                        self.err(format!("{bp}.reason"), "must not be empty");
                    }
                }
            }
        }
        if let Some(retry) = &rule.retry {
            for (i, code) in retry.codes.iter().enumerate() {
                if !(400..=599).contains(code) {
                    self.err(
                        format!("{p}.retry.codes[{i}]"),
                        format!("{code} is not in 400-599"),
                    );
                }
            }
        }
        if let Some(Timeouts {
            request: Some(r),
            backend_request: Some(b),
        }) = &rule.timeouts
            && r.0 != std::time::Duration::ZERO
            && b.0 > r.0
        {
            self.err(
                format!("{p}.timeouts.backendRequest"),
                "must not exceed timeouts.request",
            );
        }
    }

    fn route_match(&mut self, p: &str, kind: RouteKind, m: &RouteMatch) {
        match kind {
            RouteKind::Http => {
                if m.grpc.is_some() {
                    self.err(format!("{p}.grpc"), "only allowed in GRPCRoute rules");
                }
            }
            // Reported by `rule`: an L4 rule has no matches at all.
            RouteKind::Tls | RouteKind::Tcp | RouteKind::Udp => {}
            RouteKind::Grpc => {
                for (set, field) in [
                    (m.path.is_some(), "path"),
                    (m.method.is_some(), "method"),
                    (!m.query_params.is_empty(), "queryParams"),
                ] {
                    if set {
                        self.err(format!("{p}.{field}"), "only allowed in HTTPRoute rules");
                    }
                }
            }
        }
        match &m.path {
            Some(PathMatch::Exact { value } | PathMatch::PathPrefix { value }) => {
                if !value.starts_with('/') {
                    self.err(format!("{p}.path.value"), "must start with '/'");
                } else if value.contains("//") || value.contains('?') || value.contains('#') {
                    self.err(
                        format!("{p}.path.value"),
                        "must not contain '//', '?' or '#'",
                    );
                }
            }
            Some(PathMatch::RegularExpression { value }) => {
                self.regex(&format!("{p}.path.value"), value)
            }
            None => {}
        }
        if let Some(method) = &m.method
            && http::Method::from_bytes(method.as_bytes()).is_err()
        {
            self.err(
                format!("{p}.method"),
                format!("{method:?} is not an HTTP method"),
            );
        }
        for (i, h) in m.headers.iter().enumerate() {
            let hp = format!("{p}.headers[{i}]");
            if http::HeaderName::from_bytes(h.name.as_bytes()).is_err() {
                self.err(
                    format!("{hp}.name"),
                    format!("{:?} is not a header name", h.name),
                );
            }
            if h.match_type == MatchType::RegularExpression {
                self.regex(&format!("{hp}.value"), &h.value);
            }
        }
        for (i, q) in m.query_params.iter().enumerate() {
            let qp = format!("{p}.queryParams[{i}]");
            if q.name.is_empty() {
                self.err(format!("{qp}.name"), "must not be empty");
            }
            if q.match_type == MatchType::RegularExpression {
                self.regex(&format!("{qp}.value"), &q.value);
            }
        }
        if let Some(g) = &m.grpc {
            if g.service.is_none() && g.method.is_none() {
                self.err(format!("{p}.grpc"), "one of service and method is required");
            }
            if g.match_type == MatchType::RegularExpression {
                for (field, val) in [("service", &g.service), ("method", &g.method)] {
                    if let Some(v) = val {
                        self.regex(&format!("{p}.grpc.{field}"), v);
                    }
                }
            } else {
                for (field, val) in [("service", &g.service), ("method", &g.method)] {
                    if let Some(v) = val
                        && (v.is_empty() || v.contains('/'))
                    {
                        self.err(format!("{p}.grpc.{field}"), "must be non-empty without '/'");
                    }
                }
            }
        }
    }

    fn regex(&mut self, p: &str, re: &str) {
        if let Err(e) = regex::Regex::new(re) {
            // The regex crate's message spans lines and repeats its own prefix; flatten it.
            let text = e.to_string();
            let msg = text
                .trim_start_matches("regex parse error:")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            self.err(p, format!("regex parse error: {msg}"));
        }
    }

    fn filter(
        &mut self,
        p: &str,
        f: &Filter,
        backend_exists: &dyn Fn(&str) -> bool,
        prefix_ok: bool,
        per_backend: bool,
    ) {
        let header_list = |v: &mut Self, fp: &str, m: &HeaderModifier| {
            let names = m
                .set
                .iter()
                .map(|h| (&h.name, &h.value, "set"))
                .chain(m.add.iter().map(|h| (&h.name, &h.value, "add")));
            for (i, (name, value, field)) in names.enumerate() {
                if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    v.err(
                        format!("{fp}.{field}"),
                        format!("{name:?} is not a header name (entry {i})"),
                    );
                }
                if http::HeaderValue::from_str(value).is_err() {
                    v.err(
                        format!("{fp}.{field}"),
                        format!("invalid value for header {name:?}"),
                    );
                }
            }
            for (i, name) in m.remove.iter().enumerate() {
                if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    v.err(
                        format!("{fp}.remove[{i}]"),
                        format!("{name:?} is not a header name"),
                    );
                }
            }
        };
        match f {
            Filter::RequestHeaderModifier(m) => header_list(self, p, m),
            Filter::ResponseHeaderModifier(m) => header_list(self, p, m),
            Filter::RequestRedirect(r) => {
                let rp = p.to_string();
                if per_backend {
                    self.err(&rp, "not allowed as a per-backend filter");
                }
                if ![301, 302, 303, 307, 308].contains(&r.status_code) {
                    self.err(
                        format!("{rp}.statusCode"),
                        format!("{} is not 301, 302, 303, 307 or 308", r.status_code),
                    );
                }
                if let Some(h) = &r.hostname {
                    self.hostname(format!("{rp}.hostname"), h);
                }
                self.path_modifier(&format!("{rp}.path"), r.path.as_ref(), prefix_ok);
            }
            Filter::UrlRewrite(u) => {
                let up = p;
                if let Some(h) = &u.hostname {
                    self.hostname(format!("{up}.hostname"), h);
                }
                self.path_modifier(&format!("{up}.path"), u.path.as_ref(), prefix_ok);
            }
            Filter::RequestMirror(m) => {
                let mp = p;
                if !backend_exists(&m.backend) {
                    self.err(
                        format!("{mp}.backend"),
                        format!("unknown backend {:?}", m.backend),
                    );
                }
                if !(0.0..=100.0).contains(&m.percent) {
                    self.err(
                        format!("{mp}.percent"),
                        format!("{} is not in 0-100", m.percent),
                    );
                }
            }
            Filter::Cors(cors) => {
                for (i, o) in cors.allow_origins.iter().enumerate() {
                    if o != "*" && !(o.starts_with("http://") || o.starts_with("https://")) {
                        self.err(
                            format!("{p}.allowOrigins[{i}]"),
                            format!("{o:?} is not '*' or a http(s) origin"),
                        );
                    }
                }
            }
        }
    }

    fn path_modifier(&mut self, p: &str, m: Option<&PathModifier>, prefix_ok: bool) {
        match m {
            Some(PathModifier::ReplaceFullPath { value })
            | Some(PathModifier::ReplacePrefixMatch { value })
                if !value.starts_with('/') =>
            {
                self.err(format!("{p}.value"), "must start with '/'");
            }
            Some(PathModifier::ReplacePrefixMatch { .. }) if !prefix_ok => {
                self.err(
                    p,
                    "ReplacePrefixMatch requires every match of the rule to be a PathPrefix match",
                );
            }
            _ => {}
        }
    }

    fn backend(&mut self, p: &str, b: &Backend) {
        if let Some(Err(e)) = b.connect_timeout.map(check_connect_timeout) {
            self.err(format!("{p}.connectTimeout"), e.to_string());
        }
        if let Some(tls) = &b.tls {
            let tp = format!("{p}.tls");
            match crate::pem::parse_certs(&tls.ca_pem) {
                Ok(c) if c.is_empty() => self.err(format!("{tp}.caPem"), "no certificate found"),
                Ok(_) => {}
                Err(e) => self.err(format!("{tp}.caPem"), e.to_string()),
            }
            if rustls::pki_types::ServerName::try_from(tls.hostname.as_str()).is_err() {
                self.err(
                    format!("{tp}.hostname"),
                    format!("{:?} is not a valid SNI name", tls.hostname),
                );
            }
            match (&tls.client_cert_pem, &tls.client_key_pem) {
                (Some(c), Some(k)) => {
                    if let Err(e) = crate::pem::parse_certs(c) {
                        self.err(format!("{tp}.clientCertPem"), e.to_string());
                    }
                    if let Err(e) = crate::pem::parse_key(k) {
                        self.err(format!("{tp}.clientKeyPem"), e.to_string());
                    }
                }
                (None, None) => {}
                _ => self.err(&tp, "clientCertPem and clientKeyPem go together"),
            }
            for (i, san) in tls.subject_alt_names.iter().enumerate() {
                if let SubjectAltName::Hostname { value } = san
                    && rustls::pki_types::ServerName::try_from(value.as_str()).is_err()
                {
                    self.err(
                        format!("{tp}.subjectAltNames[{i}].value"),
                        "not a valid hostname",
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connect_timeout_is_more_than_0_and_at_most_60s() {
        let errors = |timeout: &str| {
            let config: Config = serde_yaml::from_str(&format!(
                "{{apiVersion: {API_VERSION}, backends: {{web: {{connectTimeout: {timeout}}}}}}}"
            ))
            .unwrap();
            validate(&config)
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
        };
        assert!(errors("1ms").is_empty());
        assert!(errors("60s").is_empty());
        assert_eq!(
            errors("0s"),
            ["backends.web.connectTimeout: must be more than 0"]
        );
        assert_eq!(
            errors("1m1s"),
            ["backends.web.connectTimeout: 61s is more than the maximum of 60s"]
        );
    }

    #[test]
    fn endpoint_conditions_read_as_kubernetes_writes_them() {
        let read = |yaml: &str| serde_yaml::from_str::<Endpoint>(yaml).map(|e| e.state);
        assert_eq!(
            read("{address: '10.0.0.1:80'}").unwrap(),
            EndpointState::Ready
        );
        assert_eq!(
            read("{address: '10.0.0.1:80', ready: false}").unwrap(),
            EndpointState::NotServing,
            "serving absent is the same as ready"
        );
        assert_eq!(
            read("{address: '10.0.0.1:80', ready: false, serving: true}").unwrap(),
            EndpointState::Terminating
        );
        assert_eq!(
            read("{address: '10.0.0.1:80', ready: false, serving: false}").unwrap(),
            EndpointState::NotServing
        );
        let err = read("{address: '10.0.0.1:80', ready: true, serving: false}").unwrap_err();
        assert!(err.to_string().contains("ready but not serving"), "{err}");
        assert!(read("{address: '10.0.0.1:80', terminating: true}").is_err());
        // Written back as read; `serving` only where it says something `ready` does not.
        for (state, json) in [
            (
                EndpointState::Ready,
                r#"{"address":"10.0.0.1:80","ready":true}"#,
            ),
            (
                EndpointState::Terminating,
                r#"{"address":"10.0.0.1:80","ready":false,"serving":true}"#,
            ),
            (
                EndpointState::NotServing,
                r#"{"address":"10.0.0.1:80","ready":false}"#,
            ),
        ] {
            let e = Endpoint {
                address: "10.0.0.1:80".parse().unwrap(),
                state,
            };
            assert_eq!(serde_json::to_string(&e).unwrap(), json);
            assert_eq!(serde_json::from_str::<Endpoint>(json).unwrap(), e);
        }
    }

    #[test]
    fn a_rule_alone_is_checked_as_in_a_config() {
        let rule: Rule = serde_yaml::from_str(
            "{matches: [{path: {type: RegularExpression, value: '('}}], \
             backendRefs: [{type: Backend, name: web}, {type: Backend, name: gone}]}",
        )
        .unwrap();
        let errors = validate_rule(RouteKind::Http, &rule, &|name| name == "web");
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["matches[0].path.value", "backendRefs[1].name"]);
        assert_eq!(
            errors[1].to_string(),
            "backendRefs[1].name: unknown backend \"gone\""
        );
        let config: Config = serde_yaml::from_str(&format!(
            "{{apiVersion: {API_VERSION}, backends: {{web: {{}}}}, listeners: [{{name: l, port: 80, \
             protocol: HTTP, routes: [{{kind: HTTPRoute, namespace: n, name: r, \
             creationTimestamp: '2024-01-01T00:00:00Z', rules: [{}]}}]}}]}}",
            serde_json::to_string(&rule).unwrap()
        ))
        .unwrap();
        let whole: Vec<String> = validate(&config).iter().map(|e| e.to_string()).collect();
        let prefixed: Vec<String> = errors
            .iter()
            .map(|e| format!("listeners[0].routes[0].rules[0].{e}"))
            .collect();
        assert_eq!(whole, prefixed);
    }

    #[test]
    fn a_tls_passthrough_listener_takes_only_tls_routes_of_one_plain_rule() {
        let errors = |listener: &str| {
            let config: Config = serde_yaml::from_str(&format!(
                "{{apiVersion: {API_VERSION}, backends: {{web: {{}}}}, listeners: [{listener}]}}"
            ))
            .unwrap();
            validate(&config)
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
        };
        let route = |kind: &str, rules: &str| {
            format!(
                "{{kind: {kind}, namespace: n, name: r, creationTimestamp: '2024-01-01T00:00:00Z', \
                 hostnames: ['*.example.com'], rules: {rules}}}"
            )
        };
        let plain = "[{backendRefs: [{type: Backend, name: web, weight: 2}]}]";
        let tls = route("TLSRoute", plain);
        assert_eq!(
            errors(&format!(
                "{{name: l, port: 443, protocol: TLS, routes: [{tls}]}}"
            )),
            Vec::<String>::new()
        );
        assert_eq!(
            errors(&format!(
                "{{name: l, port: 443, protocol: TLS, routes: [{}]}}",
                route("HTTPRoute", plain)
            )),
            ["listeners[0].routes[0].kind: HTTPRoute cannot attach to a Tls listener"]
        );
        assert_eq!(
            errors(&format!(
                "{{name: l, port: 80, protocol: HTTP, routes: [{tls}]}}"
            )),
            ["listeners[0].routes[0].kind: TLSRoute cannot attach to a Http listener"]
        );
        assert_eq!(
            errors(&format!(
                "{{name: l, port: 443, protocol: TLS, routes: [{}]}}",
                route(
                    "TLSRoute",
                    &format!("{}, {}", &plain[..plain.len() - 1], &plain[1..])
                )
            )),
            ["listeners[0].routes[0].rules: a TLSRoute has exactly one rule"]
        );
        let busy = "[{matches: [{method: GET}], filters: [{type: RequestHeaderModifier}], \
                    timeouts: {request: 1s}, retry: {attempts: 1}, \
                    backendRefs: [{type: Backend, name: web, filters: [{type: RequestHeaderModifier}]}]}]";
        let found = errors(&format!(
            "{{name: l, port: 443, protocol: TLS, routes: [{}]}}",
            route("TLSRoute", busy)
        ));
        for field in [
            "matches",
            "filters",
            "backendRefs[].filters",
            "timeouts",
            "retry",
        ] {
            let want = format!(
                "listeners[0].routes[0].rules[0].{field}: not allowed in a TLSRoute rule (it relays bytes, not requests)"
            );
            assert!(found.contains(&want), "{want} missing from {found:?}");
        }
        // A terminating TLS listener's certificates are checked as an HTTPS listener's are, and
        // it shares a port with passthrough ones.
        assert!(
            errors("{name: l, port: 443, protocol: TLS, tls: {certificates: []}}")
                .iter()
                .any(|e| e.starts_with("listeners[0].tls.certificates: ")),
        );
        // TCP and UDP: one rule, no hostnames anywhere, and a TCP and a UDP listener may share
        // a port number.
        let tcp = |hostnames: &str| {
            format!(
                "{{kind: TCPRoute, namespace: n, name: t, creationTimestamp: '2024-01-01T00:00:00Z', \
                 hostnames: [{hostnames}], rules: {plain}}}"
            )
        };
        let udp = tcp("").replace("TCPRoute", "UDPRoute");
        assert_eq!(
            errors(&format!(
                "{{name: t, port: 53, protocol: TCP, routes: [{}]}}, \
                 {{name: u, port: 53, protocol: UDP, routes: [{udp}]}}",
                tcp("")
            )),
            Vec::<String>::new()
        );
        assert_eq!(
            errors(&format!(
                "{{name: t, port: 53, protocol: TCP, hostname: a.example.com, routes: [{}]}}, \
                 {{name: u, port: 53, protocol: UDP, routes: [{}]}}",
                tcp("a.example.com"),
                tcp("")
            )),
            [
                "listeners[0].hostname: not allowed for Tcp (nothing names a host)",
                "listeners[0].routes[0].hostnames: not allowed in a TCPRoute",
                "listeners[1].routes[0].kind: TCPRoute cannot attach to a Udp listener",
            ]
        );
        // Only the (dummy) certificate is refused: nothing about mixing modes on a port.
        let mixed = errors(&format!(
            "{{name: t, port: 443, protocol: TLS, hostname: t.example.com, \
             tls: {{certificates: [{{certPem: x, keyPem: y}}]}}, routes: [{tls}]}}, \
             {{name: p, port: 443, protocol: TLS, hostname: p.example.com, routes: [{tls}]}}"
        ));
        assert!(!mixed.is_empty());
        assert!(
            mixed
                .iter()
                .all(|e| e.starts_with("listeners[0].tls.certificates[0].")),
            "{mixed:?}"
        );
    }
}
