//! TLS: certificates by SNI, ALPN h2, listener isolation on one port, misdirected requests,
//! and TLS to backends (CA, SNI, subject alt names, client certificate).

mod common;

use common::*;

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

#[tokio::test]
async fn https_listeners_pick_certificates_by_sni_and_isolate_hosts() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let port = free_port();
    let route = |name: &str, backend: &str| {
        format!(
            "[{{kind: HTTPRoute, namespace: d, name: {name}, creationTimestamp: '2024-01-01T00:00:00Z', rules: [{{backendRefs: [{{type: Backend, name: {backend}}}]}}]}}]"
        )
    };
    let yaml = format!(
        "apiVersion: pylon.dev/dataplane/v1
listeners:
- name: example
  port: {port}
  protocol: HTTPS
  hostname: '*.example.com'
  tls: {{certificates: [{{certPem: {ec}, keyPem: {ek}}}]}}
  routes: {ra}
- name: other
  port: {port}
  protocol: HTTPS
  hostname: www.other.org
  tls: {{certificates: [{{certPem: {oc}, keyPem: {ok}}}]}}
  routes: {rb}
backends:
  a: {{endpoints: [{{address: '{}'}}]}}
  b: {{endpoints: [{{address: '{}'}}]}}
",
        a.addr,
        b.addr,
        ec = json_str(&pem("example.pem")),
        ek = json_str(&pem("example.key")),
        oc = json_str(&pem("other.pem")),
        ok = json_str(&pem("other.key")),
        ra = route("ra", "a"),
        rb = route("rb", "b"),
    );
    let _p = Proxy::start(&yaml).await;
    // The client verifies the certificate against the SNI name, so success proves the choice.
    let got = tls_get(port, "app.example.com", "app.example.com", "/", false)
        .await
        .unwrap();
    assert_eq!(got.backend(), "a");
    assert_eq!(got.json()["headers"]["x-forwarded-proto"], "https");
    let got = tls_get(port, "www.other.org", "www.other.org", "/", true)
        .await
        .unwrap();
    assert_eq!(got.backend(), "b");
    // SNI selects one listener, Host another: 421.
    let got = tls_get(port, "app.example.com", "www.other.org", "/", true)
        .await
        .unwrap();
    assert_eq!(got.status, 421);
    // Host matching no listener on the port: 404.
    let got = tls_get(port, "app.example.com", "unknown.net", "/", false)
        .await
        .unwrap();
    assert_eq!(got.status, 404);
}

#[tokio::test]
async fn backend_tls_verifies_ca_san_and_presents_client_cert() {
    let plain_tls = Backend::start_tls("secure", false).await;
    let mtls = Backend::start_tls("mtls", true).await;
    let port = free_port();
    let ca = json_str(&pem("ca.pem"));
    let wrong_ca = json_str(&pem("example.pem")); // a leaf, not the CA that signed backend.pem
    let yaml = format!(
        "apiVersion: pylon.dev/dataplane/v1
listeners:
- name: http
  port: {port}
  protocol: HTTP
  routes:
  - kind: HTTPRoute
    namespace: d
    name: r
    creationTimestamp: '2024-01-01T00:00:00Z'
    rules:
    - matches: [{{path: {{type: Exact, value: /sni}}}}]
      backendRefs: [{{type: Backend, name: sni}}]
    - matches: [{{path: {{type: Exact, value: /san}}}}]
      backendRefs: [{{type: Backend, name: san}}]
    - matches: [{{path: {{type: Exact, value: /uri-san}}}}]
      backendRefs: [{{type: Backend, name: urisan}}]
    - matches: [{{path: {{type: Exact, value: /wrong-uri-san}}}}]
      backendRefs: [{{type: Backend, name: wrongurisan}}]
    - matches: [{{path: {{type: Exact, value: /uri-san-wrong-ca}}}}]
      backendRefs: [{{type: Backend, name: urisanwrongca}}]
    - matches: [{{path: {{type: Exact, value: /wrong-name}}}}]
      backendRefs: [{{type: Backend, name: wrongname}}]
    - matches: [{{path: {{type: Exact, value: /wrong-ca}}}}]
      backendRefs: [{{type: Backend, name: wrongca}}]
    - matches: [{{path: {{type: Exact, value: /mtls}}}}]
      backendRefs: [{{type: Backend, name: mtls}}]
    - matches: [{{path: {{type: Exact, value: /mtls-nocert}}}}]
      backendRefs: [{{type: Backend, name: mtlsnocert}}]
backends:
  sni: {{tls: {{caPem: {ca}, hostname: backend.internal}}, endpoints: [{{address: '{s}'}}]}}
  san: {{tls: {{caPem: {ca}, hostname: sni-only.test, subjectAltNames: [{{type: Hostname, value: alt.internal}}]}}, endpoints: [{{address: '{s}'}}]}}
  urisan: {{tls: {{caPem: {ca}, hostname: sni-only.test, subjectAltNames: [{{type: Hostname, value: nope.internal}}, {{type: URI, value: 'spiffe://cluster.local/ns/app/sa/backend'}}]}}, endpoints: [{{address: '{s}'}}]}}
  wrongurisan: {{tls: {{caPem: {ca}, hostname: backend.internal, subjectAltNames: [{{type: URI, value: 'spiffe://cluster.local/ns/app/sa/other'}}]}}, endpoints: [{{address: '{s}'}}]}}
  urisanwrongca: {{tls: {{caPem: {wrong_ca}, hostname: backend.internal, subjectAltNames: [{{type: URI, value: 'spiffe://cluster.local/ns/app/sa/backend'}}]}}, endpoints: [{{address: '{s}'}}]}}
  wrongname: {{tls: {{caPem: {ca}, hostname: nope.internal}}, endpoints: [{{address: '{s}'}}]}}
  wrongca: {{tls: {{caPem: {wrong_ca}, hostname: backend.internal}}, endpoints: [{{address: '{s}'}}]}}
  mtls: {{tls: {{caPem: {ca}, hostname: backend.internal, clientCertPem: {cc}, clientKeyPem: {ck}}}, endpoints: [{{address: '{m}'}}]}}
  mtlsnocert: {{tls: {{caPem: {ca}, hostname: backend.internal}}, endpoints: [{{address: '{m}'}}]}}
",
        s = plain_tls.addr,
        m = mtls.addr,
        cc = json_str(&pem("client.pem")),
        ck = json_str(&pem("client.key")),
    );
    let _p = Proxy::start(&yaml).await;
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(get(&format!("{base}/sni"), &[]).await.backend(), "secure");
    assert_eq!(get(&format!("{base}/san"), &[]).await.backend(), "secure");
    // URI SANs (e.g. SPIFFE IDs): matched exactly, and only on a certificate the CA signed.
    // With subjectAltNames the hostname is the SNI only, not what is verified.
    assert_eq!(
        get(&format!("{base}/uri-san"), &[]).await.backend(),
        "secure"
    );
    assert_eq!(get(&format!("{base}/wrong-uri-san"), &[]).await.status, 503);
    assert_eq!(
        get(&format!("{base}/uri-san-wrong-ca"), &[]).await.status,
        503
    );
    assert_eq!(get(&format!("{base}/wrong-name"), &[]).await.status, 503);
    assert_eq!(get(&format!("{base}/wrong-ca"), &[]).await.status, 503);
    assert_eq!(get(&format!("{base}/mtls"), &[]).await.backend(), "mtls");
    assert_ne!(get(&format!("{base}/mtls-nocert"), &[]).await.status, 200);
}

#[tokio::test]
async fn https_ports_validate_client_certificates() {
    let a = Backend::start("a").await;
    let (strict, fallback) = (free_port(), free_port());
    let listener = |name: &str, port: u16, mode: &str, ca: &str| {
        format!(
            "- name: {name}
  port: {port}
  protocol: HTTPS
  tls:
    certificates: [{{certPem: {ec}, keyPem: {ek}}}]
    clientValidation: {{caPem: {ca}, mode: {mode}}}
  routes: [{{kind: HTTPRoute, namespace: d, name: {name}, creationTimestamp: '2024-01-01T00:00:00Z', rules: [{{backendRefs: [{{type: Backend, name: a}}]}}]}}]
",
            ec = json_str(&pem("example.pem")),
            ek = json_str(&pem("example.key")),
            ca = json_str(&pem(ca)),
        )
    };
    let yaml = format!(
        "apiVersion: pylon.dev/dataplane/v1
listeners:
{}{}backends:
  a: {{endpoints: [{{address: '{}'}}]}}
",
        listener("strict", strict, "AllowValidOnly", "ca.pem"),
        // A bundle that did not sign client.pem: every client certificate is invalid here.
        listener("fallback", fallback, "AllowInsecureFallback", "other.pem"),
        a.addr,
    );
    let _p = Proxy::start(&yaml).await;
    let get = |port, client| {
        tls_get_as(
            port,
            "app.example.com",
            "app.example.com",
            "/",
            false,
            client,
        )
    };
    // AllowValidOnly: a certificate the CA signed gets through; none at all does not.
    assert_eq!(get(strict, Some("client")).await.unwrap().backend(), "a");
    assert!(
        get(strict, None).await.is_err(),
        "no client certificate must be refused"
    );
    // AllowInsecureFallback: invalid and missing certificates are served too.
    assert_eq!(get(fallback, Some("client")).await.unwrap().backend(), "a");
    assert_eq!(get(fallback, None).await.unwrap().backend(), "a");
}

#[tokio::test]
async fn listeners_sharing_a_port_must_agree_on_client_validation() {
    let port = free_port();
    let yaml = format!(
        "apiVersion: pylon.dev/dataplane/v1
listeners:
- name: one
  port: {port}
  protocol: HTTPS
  hostname: one.example.com
  tls: {{certificates: [{{certPem: {ec}, keyPem: {ek}}}], clientValidation: {{caPem: {ca}}}}}
- name: two
  port: {port}
  protocol: HTTPS
  hostname: two.example.com
  tls: {{certificates: [{{certPem: {ec}, keyPem: {ek}}}]}}
",
        ec = json_str(&pem("example.pem")),
        ek = json_str(&pem("example.key")),
        ca = json_str(&pem("ca.pem")),
    );
    let err = pylon_config::parse_str(&yaml).unwrap_err().to_string();
    assert!(
        err.contains("listeners[1].tls.clientValidation") && err.contains("\"one\""),
        "{err}"
    );
}
