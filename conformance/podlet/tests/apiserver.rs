//! Root-only integration test of the whole podlet against a real etcd and kube-apiserver (the
//! local cluster's cached builds): Node registration, a Pod started in its own netns and served
//! over the bridge, readiness, logs through the API server, ErrImagePull, CrashLoopBackOff, a
//! LoadBalancer address, and graceful deletion. Skips itself (with the reason) when not root or
//! when the binaries have not been built (`make tools`). Uses its own bridge `pyt1`, addresses
//! 10.246.0.0/16 and 10.247.0.0/24 and random loopback ports, so it runs beside a live cluster.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::Api;
use kube::api::{DeleteParams, LogParams, PostParams};

const BRIDGE: &str = "pyt1";
const NODE: &str = "pyt-node";
const NODE_IP: &str = "10.246.0.1";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The newest cached build of a tool: `$PYLON_CACHE/tools/<tool>-<version>/bin/<exe>`.
fn cached(tool: &str, exe: &str) -> Option<PathBuf> {
    let cache = std::env::var("PYLON_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/pylon")
        });
    let mut found: Vec<PathBuf> = std::fs::read_dir(cache.join("tools"))
        .ok()?
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{tool}-"))
        })
        .map(|e| e.path().join("bin").join(exe))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop()
}

fn sh(dir: &Path, script: &str) {
    let out = Command::new("bash")
        .arg("-ec")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Everything the test started, stopped in reverse on drop (also when an assertion fails).
struct Env {
    dir: PathBuf,
    children: Vec<(String, Child)>,
    podlet: Option<Child>,
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(mut p) = self.podlet.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = p.wait();
        }
        let _ = Command::new(env!("CARGO_BIN_EXE_pylon-podlet"))
            .args([
                "cleanup",
                "--bridge",
                BRIDGE,
                "--pod-cidr",
                "10.246.0.0/16",
                "--state-dir",
            ])
            .arg(self.dir.join("state"))
            .stdout(Stdio::null())
            .status();
        for (_, c) in self.children.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["link", "del", BRIDGE])
            .stderr(Stdio::null())
            .status();
        if std::env::var_os("PYT_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Env {
    fn log(&self, name: &str) -> String {
        let text =
            std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

async fn eventually<T, F, Fut>(what: &str, env: &Env, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if start.elapsed() > timeout {
            panic!(
                "{what}: not within {timeout:?}\n--- podlet log ---\n{}",
                env.log("podlet")
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn pod(name: &str, image: &str, script: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "nodeName": NODE,
            "terminationGracePeriodSeconds": 5,
            "containers": [{
                "name": "main", "image": image,
                "command": ["/entrypoint", "-c"], "args": [script],
                "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1}
            }]
        }
    }))
    .unwrap()
}

/// Starts the podlet (its log appended to `podlet.log`).
fn start_podlet(dir: &Path, kubelet_port: u16) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("podlet.log"))
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_pylon-podlet"))
        .args([
            "--node-name",
            NODE,
            "--node-ip",
            NODE_IP,
            "--bridge",
            BRIDGE,
        ])
        .args([
            "--pod-cidr",
            "10.246.0.0/16",
            "--lb-cidr",
            "10.247.0.0/24",
            "--port",
            &kubelet_port.to_string(),
        ])
        .args(["--cluster-dns", "10.97.0.10"])
        .arg("--kubeconfig")
        .arg(dir.join("kubeconfig"))
        .arg("--images")
        .arg(dir.join("images.yaml"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--tls-cert")
        .arg(dir.join("podlet.crt"))
        .arg("--tls-key")
        .arg(dir.join("podlet.key"))
        .arg("--client-ca")
        .arg(dir.join("ca.crt"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn podlet_against_a_real_api_server() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "SKIPPED podlet_against_a_real_api_server: needs root (network namespaces, mounts)"
        );
        return;
    }
    let (Some(etcd), Some(apiserver)) = (
        cached("etcd", "etcd"),
        cached("kubernetes", "kube-apiserver"),
    ) else {
        eprintln!(
            "SKIPPED podlet_against_a_real_api_server: etcd/kube-apiserver not built (run `make tools`)"
        );
        return;
    };
    let dir = std::env::temp_dir().join(format!("pyt-apiserver-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut env = Env {
        dir: dir.clone(),
        children: vec![],
        podlet: None,
    };

    // PKI: a CA, the API server's serving cert, an admin client (also the API server's kubelet
    // client), the podlet's serving cert, and the service-account key pair.
    sh(
        &dir,
        r#"
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 1 -subj /CN=pyt-ca 2>/dev/null
        cert() { # name subject extensions
          openssl req -newkey rsa:2048 -nodes -keyout $1.key -out $1.csr -subj "$2" 2>/dev/null
          printf "$3" > $1.ext
          openssl x509 -req -in $1.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out $1.crt -days 1 -extfile $1.ext 2>/dev/null
        }
        cert apiserver /CN=kube-apiserver 'subjectAltName=IP:127.0.0.1,IP:10.246.0.1,IP:10.97.0.1\nextendedKeyUsage=serverAuth'
        cert admin '/O=system:masters/CN=pyt-admin' 'extendedKeyUsage=clientAuth'
        cert podlet /CN=pyt-node 'subjectAltName=IP:10.246.0.1\nextendedKeyUsage=serverAuth'
        openssl genrsa -out sa.key 2048 2>/dev/null && openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    "#,
    );
    let _ = Command::new("ip")
        .args(["link", "del", BRIDGE])
        .stderr(Stdio::null())
        .status();
    sh(
        &dir,
        &format!(
            "ip link add {BRIDGE} type bridge && ip addr add {NODE_IP}/16 dev {BRIDGE} && ip link set {BRIDGE} up"
        ),
    );

    let (client_port, peer_port, api_port, kubelet_port) =
        (free_port(), free_port(), free_port(), free_port());
    let spawn = |env: &mut Env, name: &str, cmd: &mut Command| {
        let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
        let child = cmd
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        env.children.push((name.to_owned(), child));
    };
    spawn(
        &mut env,
        "etcd",
        Command::new(&etcd).args([
            "--name",
            "pyt",
            "--data-dir",
            &dir.join("etcd").display().to_string(),
            "--log-level",
            "error",
            "--listen-client-urls",
            &format!("http://127.0.0.1:{client_port}"),
            "--advertise-client-urls",
            &format!("http://127.0.0.1:{client_port}"),
            "--listen-peer-urls",
            &format!("http://127.0.0.1:{peer_port}"),
            "--initial-advertise-peer-urls",
            &format!("http://127.0.0.1:{peer_port}"),
            "--initial-cluster",
            &format!("pyt=http://127.0.0.1:{peer_port}"),
        ]),
    );
    let p = |f: &str| dir.join(f).display().to_string();
    spawn(
        &mut env,
        "kube-apiserver",
        Command::new(&apiserver).args([
            "--etcd-servers",
            &format!("http://127.0.0.1:{client_port}"),
            "--bind-address",
            "127.0.0.1",
            "--secure-port",
            &api_port.to_string(),
            "--advertise-address",
            NODE_IP,
            "--service-cluster-ip-range",
            "10.97.0.0/24",
            "--cert-dir",
            &p("apiserver-certs"),
            "--client-ca-file",
            &p("ca.crt"),
            "--tls-cert-file",
            &p("apiserver.crt"),
            "--tls-private-key-file",
            &p("apiserver.key"),
            "--kubelet-client-certificate",
            &p("admin.crt"),
            "--kubelet-client-key",
            &p("admin.key"),
            "--kubelet-certificate-authority",
            &p("ca.crt"),
            "--kubelet-preferred-address-types",
            "InternalIP",
            "--service-account-issuer",
            "https://kubernetes.default.svc",
            "--service-account-key-file",
            &p("sa.pub"),
            "--service-account-signing-key-file",
            &p("sa.key"),
            "--authorization-mode",
            "RBAC",
            // No controller-manager here to create ServiceAccounts.
            "--disable-admission-plugins",
            "ServiceAccount",
            "--profiling=false",
        ]),
    );
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters: [{{name: pyt, cluster: {{server: 'https://127.0.0.1:{api_port}', certificate-authority: '{}'}}}}]\n\
         users: [{{name: admin, user: {{client-certificate: '{}', client-key: '{}'}}}}]\n\
         contexts: [{{name: pyt, context: {{cluster: pyt, user: admin}}}}]\ncurrent-context: pyt\n",
        p("ca.crt"),
        p("admin.crt"),
        p("admin.key")
    );
    std::fs::write(dir.join("kubeconfig"), &kubeconfig).unwrap();
    std::fs::write(
        dir.join("images.yaml"),
        "images:\n  pyt.local/sh: /bin/sh\n  pyt.local/missing: /nonexistent/pyt-binary\n",
    )
    .unwrap();

    let kc = kube::config::Kubeconfig::read_from(dir.join("kubeconfig")).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(cfg).unwrap();
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    eventually(
        "API server ready (kubernetes Service exists)",
        &env,
        Duration::from_secs(120),
        || {
            let services = services.clone();
            async move { services.get_opt("kubernetes").await.ok().flatten() }
        },
    )
    .await;

    env.podlet = Some(start_podlet(&dir, kubelet_port));

    // The Node registers and reports Ready.
    let nodes: Api<Node> = Api::all(client.clone());
    eventually("node Ready", &env, Duration::from_secs(60), || {
        let nodes = nodes.clone();
        async move {
            let n = nodes.get_opt(NODE).await.ok().flatten()?;
            let ready = n
                .status?
                .conditions?
                .into_iter()
                .find(|c| c.type_ == "Ready")?;
            (ready.status == "True").then_some(())
        }
    })
    .await;

    // A Pod runs in its own netns, becomes Ready through its probe and serves over the bridge.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let web = pod(
        "web",
        "pyt.local/sh:1",
        "echo hello from $(POD_NAME); exec python3 -m http.server 8080",
    );
    pods.create(&PostParams::default(), &web).await.unwrap();
    let ip: Ipv4Addr = eventually("pod web Ready", &env, Duration::from_secs(60), || {
        let pods = pods.clone();
        async move {
            let st = pods.get("web").await.ok()?.status?;
            let ready = st
                .conditions?
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            if ready { st.pod_ip?.parse().ok() } else { None }
        }
    })
    .await;
    assert!(
        "10.246.0.0/16"
            .parse::<pylon_podlet::ipam::Cidr>()
            .unwrap()
            .contains(ip),
        "{ip}"
    );
    let body = Command::new("python3")
        .args(["-c", &format!("import urllib.request;print(urllib.request.urlopen('http://{ip}:8080/',timeout=3).status)")])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&body.stdout).trim(),
        "200",
        "{}",
        String::from_utf8_lossy(&body.stderr)
    );

    // Logs through the API server (which calls the podlet's HTTPS endpoint with its client cert).
    let logs = pods.logs("web", &LogParams::default()).await.unwrap();
    assert!(logs.contains("hello from web"), "{logs}");

    // Volumes appear at their mountPaths inside the container only; mount points that do not
    // exist on the host are created for it and removed with the Pod.
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), "default");
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), "default");
    let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(client.clone(), "default");
    cms.create(&PostParams::default(), &serde_json::from_value(serde_json::json!({"metadata": {"name": "cfg"}, "data": {"greeting": "hi-from-configmap"}})).unwrap()).await.unwrap();
    cms.create(&PostParams::default(), &serde_json::from_value(serde_json::json!({"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": "pyt-ca"}})).unwrap()).await.unwrap();
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                serde_json::json!({"metadata": {"name": "sec"}, "stringData": {"pw": "hunter2"}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    sas.create(
        &PostParams::default(),
        &serde_json::from_value(serde_json::json!({"metadata": {"name": "pyt-sa"}})).unwrap(),
    )
    .await
    .unwrap();
    let mut vols = pod(
        "vols",
        "pyt.local/sh",
        "cat /pyt-e2e/cfg/greeting /pyt-e2e/sec/pw /pyt-e2e/sa/namespace /pyt-e2e/sa/ca.crt; echo; \
         test -s /pyt-e2e/sa/token && echo token-ok; grep -q 'nameserver 10.97.0.10' /etc/resolv.conf && echo dns-ok; \
         touch /pyt-e2e/scratch/x && echo scratch-ok; hostname; exec python3 -m http.server 8080",
    );
    let vol_spec: k8s_openapi::api::core::v1::PodSpec = serde_json::from_value(serde_json::json!({
        "nodeName": NODE, "serviceAccountName": "pyt-sa", "terminationGracePeriodSeconds": 5,
        "containers": [],
        "volumes": [
            {"name": "cfg", "configMap": {"name": "cfg"}},
            {"name": "sec", "secret": {"secretName": "sec"}},
            {"name": "scratch", "emptyDir": {}},
            {"name": "sa", "projected": {"sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}
            ]}}
        ]
    }))
    .unwrap();
    let mut spec = vols.spec.take().unwrap();
    spec.service_account_name = vol_spec.service_account_name;
    spec.volumes = vol_spec.volumes;
    spec.containers[0].volume_mounts = Some(
        ["cfg", "sec", "scratch", "sa"]
            .iter()
            .map(|v| k8s_openapi::api::core::v1::VolumeMount {
                name: v.to_string(),
                mount_path: format!("/pyt-e2e/{v}"),
                read_only: Some(*v != "scratch"),
                ..Default::default()
            })
            .collect(),
    );
    vols.spec = Some(spec);
    pods.create(&PostParams::default(), &vols).await.unwrap();
    eventually("pod vols Ready", &env, Duration::from_secs(60), || {
        let pods = pods.clone();
        async move {
            let st = pods.get("vols").await.ok()?.status?;
            st.conditions?
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
                .then_some(())
        }
    })
    .await;
    let logs = pods.logs("vols", &LogParams::default()).await.unwrap();
    for want in [
        "hi-from-configmap",
        "hunter2",
        "default",
        "pyt-ca",
        "token-ok",
        "dns-ok",
        "scratch-ok",
        "\nvols\n",
    ] {
        assert!(logs.contains(want), "{want:?} missing from {logs:?}");
    }
    assert!(
        Path::new("/pyt-e2e/cfg").is_dir(),
        "mount point is created on the host"
    );
    assert!(
        !Path::new("/pyt-e2e/cfg/greeting").exists(),
        "but the volume is not mounted on the host"
    );
    pods.delete("vols", &DeleteParams::default()).await.unwrap();
    eventually("pod vols deleted", &env, Duration::from_secs(30), || {
        let pods = pods.clone();
        async move { pods.get_opt("vols").await.ok()?.is_none().then_some(()) }
    })
    .await;
    assert!(
        !Path::new("/pyt-e2e").exists(),
        "created mount points are removed with the Pod"
    );

    // An unmapped image waits with ErrImagePull naming the image and the mapping file; a mapped
    // one whose executable is missing too.
    for (name, image, needle) in [
        ("bad", "example.com/nope:1", "has no mapping"),
        ("gone", "pyt.local/missing", "does not exist"),
    ] {
        pods.create(&PostParams::default(), &pod(name, image, "true"))
            .await
            .unwrap();
        let (reason, message) = eventually(
            &format!("pod {name} ErrImagePull"),
            &env,
            Duration::from_secs(30),
            || {
                let pods = pods.clone();
                async move {
                    let w = pods
                        .get(name)
                        .await
                        .ok()?
                        .status?
                        .container_statuses?
                        .first()?
                        .state
                        .clone()?
                        .waiting?;
                    (w.reason.as_deref() == Some("ErrImagePull"))
                        .then(|| (w.reason.unwrap(), w.message.unwrap_or_default()))
                }
            },
        )
        .await;
        assert_eq!(reason, "ErrImagePull");
        assert!(
            message.contains(image) && message.contains("images.yaml") && message.contains(needle),
            "{message}"
        );
    }

    // A crashing process goes to CrashLoopBackOff and does not disturb the others.
    pods.create(
        &PostParams::default(),
        &pod("crash", "pyt.local/sh", "echo dying; exit 3"),
    )
    .await
    .unwrap();
    eventually(
        "pod crash in CrashLoopBackOff",
        &env,
        Duration::from_secs(30),
        || {
            let pods = pods.clone();
            async move {
                let cs = pods
                    .get("crash")
                    .await
                    .ok()?
                    .status?
                    .container_statuses?
                    .first()?
                    .clone();
                let w = cs.state?.waiting?;
                let last = cs.last_state?.terminated?;
                (w.reason.as_deref() == Some("CrashLoopBackOff")
                    && last.exit_code == 3
                    && cs.restart_count >= 1)
                    .then_some(())
            }
        },
    )
    .await;
    let previous = pods
        .logs(
            "crash",
            &LogParams {
                previous: true,
                ..Default::default()
            },
        )
        .await
        .unwrap_or_default();
    let current = pods
        .logs("crash", &LogParams::default())
        .await
        .unwrap_or_default();
    assert!(
        previous.contains("dying") || current.contains("dying"),
        "previous={previous:?} current={current:?}"
    );

    // A LoadBalancer Service gets an address from the pool.
    let lb: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "lb"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}
    }))
    .unwrap();
    services.create(&PostParams::default(), &lb).await.unwrap();
    let lb_ip: Ipv4Addr = eventually(
        "LoadBalancer address",
        &env,
        Duration::from_secs(30),
        || {
            let services = services.clone();
            async move {
                let ing = services
                    .get("lb")
                    .await
                    .ok()?
                    .status?
                    .load_balancer?
                    .ingress?;
                ing.first()?.ip.as_deref()?.parse().ok()
            }
        },
    )
    .await;
    assert!(
        "10.247.0.0/24"
            .parse::<pylon_podlet::ipam::Cidr>()
            .unwrap()
            .contains(lb_ip),
        "{lb_ip}"
    );

    // An exec readiness probe runs inside the container's namespaces: it sees the Pod's
    // hostname (on the host it would not, and the Pod would never be Ready).
    let mut probed = pod("exec-probe", "pyt.local/sh", "exec sleep 600");
    probed.spec.as_mut().unwrap().containers[0].readiness_probe = Some(
        serde_json::from_value(serde_json::json!({
            "exec": {"command": ["/bin/sh", "-c", "test \"$(hostname)\" = exec-probe"]}, "periodSeconds": 1
        }))
        .unwrap(),
    );
    pods.create(&PostParams::default(), &probed).await.unwrap();
    eventually(
        "exec readiness probe passes",
        &env,
        Duration::from_secs(60),
        || {
            let pods = pods.clone();
            async move {
                let st = pods.get("exec-probe").await.ok()?.status?;
                st.conditions?
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
                    .then_some(())
            }
        },
    )
    .await;

    // A failing liveness probe restarts the container.
    let mut unlive = pod("unlive", "pyt.local/sh", "exec sleep 600");
    let c = &mut unlive.spec.as_mut().unwrap().containers[0];
    c.readiness_probe = None;
    c.liveness_probe = Some(
        serde_json::from_value(serde_json::json!({
            "tcpSocket": {"port": 9}, "periodSeconds": 1, "failureThreshold": 2
        }))
        .unwrap(),
    );
    pods.create(&PostParams::default(), &unlive).await.unwrap();
    eventually(
        "liveness failure restarts the container",
        &env,
        Duration::from_secs(60),
        || {
            let pods = pods.clone();
            async move {
                let cs = pods
                    .get("unlive")
                    .await
                    .ok()?
                    .status?
                    .container_statuses?
                    .first()?
                    .clone();
                (cs.restart_count >= 1 && cs.last_state?.terminated.is_some()).then_some(())
            }
        },
    )
    .await;
    let full_log = std::fs::read_to_string(dir.join("podlet.log")).unwrap();
    assert!(full_log.contains("liveness probe failed"), "{full_log}");

    // A hostNetwork Pod shares the node's network and address.
    let host_port = free_port();
    let mut host = pod(
        "host",
        "pyt.local/sh",
        &format!("exec python3 -m http.server {host_port} --bind {NODE_IP}"),
    );
    let spec = host.spec.as_mut().unwrap();
    spec.host_network = Some(true);
    spec.containers[0]
        .readiness_probe
        .as_mut()
        .unwrap()
        .http_get
        .as_mut()
        .unwrap()
        .port = k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(host_port.into());
    pods.create(&PostParams::default(), &host).await.unwrap();
    let host_ip: String = eventually(
        "hostNetwork pod Ready",
        &env,
        Duration::from_secs(60),
        || {
            let pods = pods.clone();
            async move {
                let st = pods.get("host").await.ok()?.status?;
                let ready = st
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                if ready { st.pod_ip } else { None }
            }
        },
    )
    .await;
    assert_eq!(host_ip, NODE_IP);
    pods.delete("host", &DeleteParams::default()).await.unwrap();

    // A podlet that dies and comes back kills the Pods' old processes and starts them afresh,
    // keeping their addresses.
    let old_pid: i32 = {
        let cs = pods
            .get("web")
            .await
            .unwrap()
            .status
            .unwrap()
            .container_statuses
            .unwrap();
        let id = cs[0].container_id.clone().unwrap();
        id.strip_prefix("pylon://").unwrap().parse().unwrap()
    };
    let mut podlet = env.podlet.take().unwrap();
    podlet.kill().unwrap();
    podlet.wait().unwrap();
    env.podlet = Some(start_podlet(&dir, kubelet_port));
    let new_ip: Ipv4Addr = eventually(
        "pod web restarted by the new podlet",
        &env,
        Duration::from_secs(60),
        || {
            let pods = pods.clone();
            async move {
                let st = pods.get("web").await.ok()?.status?;
                let id = st
                    .container_statuses
                    .as_ref()?
                    .first()?
                    .container_id
                    .clone()?;
                let ready = st
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                (ready && id != format!("pylon://{old_pid}")).then_some(())?;
                st.pod_ip?.parse().ok()
            }
        },
    )
    .await;
    assert_eq!(
        new_ip, ip,
        "the Pod keeps its address across a podlet restart"
    );
    assert!(
        !Path::new(&format!("/proc/{old_pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{old_pid}/stat"))
                .is_ok_and(|s| s.contains(") Z ")),
        "the old process {old_pid} was killed"
    );

    // Deleting a Pod stops it gracefully, finalises the deletion and removes its netns.
    let netns = pylon_podlet::netns::PodNet::new("pylon", ip).netns;
    assert!(pylon_podlet::netns::list_netns("pylon").contains(&netns));
    pods.delete("web", &DeleteParams::default()).await.unwrap();
    eventually("pod web deleted", &env, Duration::from_secs(30), || {
        let pods = pods.clone();
        async move { pods.get_opt("web").await.ok()?.is_none().then_some(()) }
    })
    .await;
    assert!(
        !pylon_podlet::netns::list_netns("pylon").contains(&netns),
        "netns {netns} left behind"
    );
    let log = env.log("podlet");
    assert!(!log.contains("panicked"), "{log}");
}
