//! Readiness and liveness probes: httpGet, tcpSocket and exec (run inside the container's
//! namespaces with nsenter), with the kubelet's thresholds.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use http_body_util::Empty;
use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Resolves a probe port (number or named container port).
pub fn resolve_port(port: &IntOrString, container: &Container) -> Option<u16> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .or_else(|| name.parse().ok()),
    }
}

/// Runs one probe attempt; `Err` carries why it failed (logged at debug level).
pub async fn run_once(
    probe: &Probe,
    container: &Container,
    pod_ip: Ipv4Addr,
    pid: Option<u32>,
) -> Result<(), String> {
    let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
    let attempt = async {
        if let Some(h) = &probe.http_get {
            let port = resolve_port(&h.port, container).ok_or("unknown port")?;
            let host: IpAddr = match h.host.as_deref() {
                Some(host) if !host.is_empty() => host.parse().map_err(|_| "bad host")?,
                _ => IpAddr::V4(pod_ip),
            };
            let addr = SocketAddr::new(host, port);
            if h.scheme.as_deref() == Some("HTTPS") {
                // Certificates are not verified by the kubelet either; reaching the port is the
                // signal we can give without a TLS client here.
                tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(|e| e.to_string())?;
                return Ok(());
            }
            http_get(
                addr,
                h.path.as_deref().unwrap_or("/"),
                h.http_headers.as_deref(),
            )
            .await
        } else if let Some(t) = &probe.tcp_socket {
            let port = resolve_port(&t.port, container).ok_or("unknown port")?;
            let host: IpAddr = match t.host.as_deref() {
                Some(host) if !host.is_empty() => host.parse().map_err(|_| "bad host")?,
                _ => IpAddr::V4(pod_ip),
            };
            tokio::net::TcpStream::connect(SocketAddr::new(host, port))
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        } else if let Some(e) = &probe.exec {
            let pid = pid.ok_or("container is not running")?;
            let command = e.command.clone().unwrap_or_default();
            if command.is_empty() {
                return Err("exec probe has no command".into());
            }
            let status = tokio::process::Command::new("nsenter")
                .args(["-t", &pid.to_string(), "-n", "-m", "-u", "--"])
                .args(&command)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .status()
                .await
                .map_err(|e| e.to_string())?;
            if status.success() {
                Ok(())
            } else {
                Err(format!("exec probe exited with {status}"))
            }
        } else if let Some(g) = &probe.grpc {
            // No gRPC health client here; a listening port is the closest honest signal.
            let port = u16::try_from(g.port).map_err(|_| "bad port")?;
            tokio::net::TcpStream::connect(SocketAddr::new(IpAddr::V4(pod_ip), port))
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        } else {
            Err("probe has no handler".into())
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(format!("timed out after {timeout:?}")),
    }
}

async fn http_get(
    addr: SocketAddr,
    path: &str,
    headers: Option<&[k8s_openapi::api::core::v1::HTTPHeader]>,
) -> Result<(), String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(conn);
    let mut req = http::Request::get(path)
        .header("host", addr.to_string())
        .header("user-agent", "kube-probe/1.35");
    for h in headers.into_iter().flatten() {
        req = req.header(h.name.as_str(), h.value.as_str());
    }
    let req = req
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string());
    driver.abort();
    let status = resp?.status();
    if (200..400).contains(&status.as_u16()) {
        Ok(())
    } else {
        Err(format!("HTTP probe failed with status {status}"))
    }
}

/// Tracks consecutive results against a probe's thresholds.
#[derive(Debug, Clone)]
pub struct Thresholds {
    success_threshold: i32,
    failure_threshold: i32,
    successes: i32,
    failures: i32,
}

impl Thresholds {
    pub fn new(probe: &Probe) -> Self {
        Self {
            success_threshold: probe.success_threshold.unwrap_or(1).max(1),
            failure_threshold: probe.failure_threshold.unwrap_or(3).max(1),
            successes: 0,
            failures: 0,
        }
    }

    /// Feeds one result; returns the new verdict when it changes (`Some(true)` = passing).
    pub fn observe(&mut self, ok: bool) -> Option<bool> {
        if ok {
            self.failures = 0;
            self.successes += 1;
            (self.successes == self.success_threshold).then_some(true)
        } else {
            self.successes = 0;
            self.failures += 1;
            (self.failures == self.failure_threshold).then_some(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        let probe = Probe {
            success_threshold: Some(2),
            failure_threshold: Some(2),
            ..Default::default()
        };
        let mut t = Thresholds::new(&probe);
        assert_eq!(t.observe(true), None);
        assert_eq!(t.observe(true), Some(true));
        assert_eq!(t.observe(true), None);
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(true), None);
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(false), Some(false));
    }

    #[tokio::test]
    async fn http_and_tcp_probes_against_loopback() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut buf = vec![0u8; 1024];
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    let req = String::from_utf8_lossy(&buf[..n]);
                    let code = if req.starts_with("GET /ok ") {
                        "200 OK"
                    } else {
                        "503 No"
                    };
                    let _ = s
                        .write_all(
                            format!("HTTP/1.1 {code}\r\ncontent-length: 0\r\n\r\n").as_bytes(),
                        )
                        .await;
                });
            }
        });
        let c = Container::default();
        let lo = Ipv4Addr::LOCALHOST;
        let http = |path: &str| -> Probe {
            serde_json::from_value(serde_json::json!({"httpGet": {"path": path, "port": port}}))
                .unwrap()
        };
        run_once(&http("/ok"), &c, lo, None).await.unwrap();
        let err = run_once(&http("/bad"), &c, lo, None).await.unwrap_err();
        assert!(err.contains("503"), "{err}");
        let tcp: Probe =
            serde_json::from_value(serde_json::json!({"tcpSocket": {"port": port}})).unwrap();
        run_once(&tcp, &c, lo, None).await.unwrap();
        let closed: Probe =
            serde_json::from_value(serde_json::json!({"tcpSocket": {"port": 1}})).unwrap();
        assert!(run_once(&closed, &c, lo, None).await.is_err());
    }
}
