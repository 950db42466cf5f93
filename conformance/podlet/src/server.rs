//! The kubelet-style HTTPS endpoint the API server calls for `kubectl logs`:
//! `GET /containerLogs/{namespace}/{pod}/{container}` (follow, sinceTime, sinceSeconds,
//! timestamps, tailLines, limitBytes, previous) and `GET /healthz`.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::StreamBody;
use hyper::body::Frame;
use k8s_openapi::jiff::Timestamp;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::logquery::{self, LogQuery};

/// Errors loading TLS material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {what}")]
    Pem { path: PathBuf, what: String },
    #[error("TLS configuration: {0}")]
    Rustls(String),
}

fn read_pem(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Builds the server TLS config: our cert/key; client certificates signed by `client_ca` are
/// verified when presented (the API server presents one), anonymous clients are allowed.
pub fn tls_config(
    cert: &Path,
    key: &Path,
    client_ca: &Path,
) -> Result<rustls::ServerConfig, TlsError> {
    let pem_err = |path: &Path, what: String| TlsError::Pem {
        path: path.to_owned(),
        what,
    };
    let certs: Vec<_> = rustls_pemfile::certs(&mut read_pem(cert)?.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| pem_err(cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_err(cert, "no certificate found".into()));
    }
    let key_der = rustls_pemfile::private_key(&mut read_pem(key)?.as_slice())
        .map_err(|e| pem_err(key, e.to_string()))?
        .ok_or_else(|| pem_err(key, "no private key found".into()))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in rustls_pemfile::certs(&mut read_pem(client_ca)?.as_slice()) {
        let ca = ca.map_err(|e| pem_err(client_ca, e.to_string()))?;
        roots
            .add(ca)
            .map_err(|e| pem_err(client_ca, e.to_string()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key_der)
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

type Body = StreamBody<ReceiverStream<Result<Frame<Bytes>, Infallible>>>;

fn body_with(text: impl Into<Bytes>) -> Body {
    let (tx, rx) = mpsc::channel(1);
    let _ = tx.try_send(Ok(Frame::data(text.into())));
    StreamBody::new(ReceiverStream::new(rx))
}

fn respond(status: StatusCode, text: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(body_with(text));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    r
}

/// Serves connections until the listener fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: rustls::ServerConfig,
    logs_root: PathBuf,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let logs_root = Arc::new(logs_root);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let logs_root = logs_root.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            let svc = hyper::service::service_fn(move |req| {
                let logs_root = logs_root.clone();
                async move { Ok::<_, Infallible>(handle(req, &logs_root).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                .await;
        });
    }
}

/// Routes one request.
pub async fn handle<B>(req: Request<B>, logs_root: &Path) -> Response<Body> {
    if req.method() != Method::GET {
        return respond(StatusCode::METHOD_NOT_ALLOWED, "only GET is supported\n");
    }
    let path = req.uri().path().to_owned();
    if path == "/healthz" {
        return respond(StatusCode::OK, "ok");
    }
    let Some(rest) = path.strip_prefix("/containerLogs/") else {
        return respond(StatusCode::NOT_FOUND, format!("no such endpoint {path}\n"));
    };
    let parts: Vec<String> = rest.split('/').map(logquery::percent_decode).collect();
    let [ns, pod, container] = parts.as_slice() else {
        return respond(
            StatusCode::BAD_REQUEST,
            "want /containerLogs/{namespace}/{pod}/{container}\n",
        );
    };
    let query = match LogQuery::parse(req.uri().query().unwrap_or(""), Timestamp::now()) {
        Ok(q) => q,
        Err(e) => return respond(StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    let files = logquery::container_logs(logs_root, ns, pod, container);
    let file = if query.previous {
        files.len().checked_sub(2).map(|i| files[i].clone())
    } else {
        files.last().cloned()
    };
    let Some(file) = file else {
        let what = if query.previous {
            "previous terminated container"
        } else {
            "container"
        };
        return respond(
            StatusCode::NOT_FOUND,
            format!("{what} {container:?} in pod {pod:?} in namespace {ns:?} has no logs\n"),
        );
    };
    let text = match tokio::fs::read(&file).await {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => {
            return respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("reading logs: {e}\n"),
            );
        }
    };
    // Only whole lines count; a line still being written is picked up by follow.
    let consumed = text.rfind('\n').map_or(0, |i| i + 1);
    let initial = logquery::render(&text[..consumed], &query);
    if !query.follow || query.previous {
        return respond(StatusCode::OK, initial);
    }
    let (tx, rx) = mpsc::channel(16);
    let sent = initial.len();
    let _ = tx.send(Ok(Frame::data(Bytes::from(initial)))).await;
    tokio::spawn(follow(tx, file, consumed as u64, query, sent));
    let mut r = Response::new(StreamBody::new(ReceiverStream::new(rx)));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    r
}

/// Streams lines appended to `file` until the client goes away, `limitBytes` is reached, or
/// the container restarts (a newer log file appears) or its Pod is removed.
async fn follow(
    tx: mpsc::Sender<Result<Frame<Bytes>, Infallible>>,
    file: PathBuf,
    mut offset: u64,
    query: LogQuery,
    mut sent: usize,
) {
    let dir = file.parent().map(Path::to_owned).unwrap_or_default();
    let mut pending = String::new();
    loop {
        if query.limit_bytes.is_some_and(|l| sent >= l) || tx.is_closed() {
            return;
        }
        // Checked before reading, so the last lines written before the exit are still sent.
        let exited = file.with_extension("exited").exists();
        let Ok(mut f) = tokio::fs::File::open(&file).await else {
            return;
        };
        let mut buf = Vec::new();
        if f.seek(std::io::SeekFrom::Start(offset)).await.is_ok()
            && f.read_to_end(&mut buf).await.is_ok()
        {
            offset += buf.len() as u64;
            pending.push_str(&String::from_utf8_lossy(&buf));
        }
        let mut out = String::new();
        while let Some(nl) = pending.find('\n') {
            let line: String = pending.drain(..=nl).collect();
            if let Some(e) = logquery::parse_line(line.trim_end_matches('\n'))
                && query.since.is_none_or(|s| e.time >= s)
            {
                out.push_str(&logquery::render_entry(&e, query.timestamps));
            }
        }
        if !out.is_empty() {
            let remaining = query.limit_bytes.map(|l| l.saturating_sub(sent));
            logquery::truncate(&mut out, remaining);
            sent += out.len();
            if tx.send(Ok(Frame::data(Bytes::from(out)))).await.is_err() {
                return;
            }
        }
        if exited {
            return; // everything up to the exit has been sent
        }
        let restarted = std::fs::read_dir(&dir)
            .map(|d| {
                d.flatten()
                    .any(|e| log_number(&e.path()) > log_number(&file))
            })
            .unwrap_or(true);
        if restarted || !dir.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The restart number of a `<n>.log` file.
fn log_number(path: &Path) -> Option<u64> {
    path.file_name()?
        .to_str()?
        .strip_suffix(".log")?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn get(root: &Path, uri: &str) -> (StatusCode, String) {
        let req = Request::get(uri).body(()).unwrap();
        let resp = handle(req, root).await;
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn serves_current_and_previous_logs() {
        let root = std::env::temp_dir().join(format!("pyt-logs-{}", std::process::id()));
        let dir = logquery::pod_log_dir(&root, "ns", "p", "uid1").join("c");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("0.log"), "2026-01-01T00:00:00Z stdout F old\n").unwrap();
        std::fs::write(
            dir.join("1.log"),
            "2026-01-01T00:01:00Z stdout F new1\n2026-01-01T00:02:00Z stderr F new2\n",
        )
        .unwrap();
        assert_eq!(
            get(&root, "/containerLogs/ns/p/c").await,
            (StatusCode::OK, "new1\nnew2\n".into())
        );
        assert_eq!(
            get(&root, "/containerLogs/ns/p/c?previous=true").await.1,
            "old\n"
        );
        assert_eq!(
            get(
                &root,
                "/containerLogs/ns/p/c?sinceTime=2026-01-01T00:01:30Z&timestamps=true"
            )
            .await
            .1,
            "2026-01-01T00:02:00Z new2\n"
        );
        assert_eq!(
            get(&root, "/containerLogs/ns/p/c?tailLines=1").await.1,
            "new2\n"
        );
        assert_eq!(
            get(&root, "/containerLogs/ns/p/nope").await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get(&root, "/containerLogs/ns/p/c?tailLines=x").await.0,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(get(&root, "/healthz").await, (StatusCode::OK, "ok".into()));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[tokio::test]
    async fn follow_streams_appended_lines_until_the_container_exits() {
        let root = std::env::temp_dir().join(format!("pyt-follow-{}", std::process::id()));
        let dir = logquery::pod_log_dir(&root, "ns", "p", "uid1").join("c");
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("0.log");
        std::fs::write(&log, "2026-01-01T00:00:00Z stdout F first\n").unwrap();
        let req = Request::get("/containerLogs/ns/p/c?follow=true")
            .body(())
            .unwrap();
        let resp = handle(req, &root).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let writer = {
            let log = log.clone();
            let dir = dir.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(400)).await;
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
                f.write_all(b"2026-01-01T00:00:01Z stderr F second\n")
                    .unwrap();
                std::fs::write(logquery::exited_marker(&dir, 0), b"").unwrap();
            })
        };
        let body = tokio::time::timeout(Duration::from_secs(10), resp.into_body().collect())
            .await
            .expect("follow ends once the container has exited")
            .unwrap()
            .to_bytes();
        writer.await.unwrap();
        assert_eq!(String::from_utf8_lossy(&body), "first\nsecond\n");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
