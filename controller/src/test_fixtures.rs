//! Snapshot inputs shared by unit tests of several modules (test builds only).

/// One accepted Gateway `gw` with an address and two HTTPRoutes, `a` and `b`, attached to it:
/// the serving-status overlay and the data-plane Pod reports are both tested on it.
pub(crate) const ONE_GATEWAY_TWO_ROUTES: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: pylon}
spec: {controllerName: pylon.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: pylon
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: v1
kind: Service
metadata: {name: pylon-gw}
spec: {type: LoadBalancer, ports: [{port: 80}]}
status: {loadBalancer: {ingress: [{ip: 10.0.0.1}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: a}
spec:
  parentRefs: [{name: gw}]
  hostnames: [a.example.com]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: b}
spec:
  parentRefs: [{name: gw}]
  hostnames: [b.example.com]
"#;
