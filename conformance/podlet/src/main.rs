//! `pylon-podlet`: the local cluster's node agent.
#![forbid(unsafe_code)]

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use pylon_podlet::context::{Config, Ctx};
use pylon_podlet::images::ImageMap;
use pylon_podlet::ipam::Cidr;
use pylon_podlet::{cleanup, launch, lb, manager, netns, node, server};

/// Runs this machine's Pods as processes, each in its own network and mount namespace.
#[derive(Parser, Debug)]
#[command(
    version,
    subcommand_negates_reqs = true,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// kubeconfig for the API server
    #[arg(long, required = true)]
    kubeconfig: Option<PathBuf>,
    #[arg(long, default_value = "pylon-node")]
    node_name: String,
    /// the Node's InternalIP; must be the bridge's address (Pods' default gateway)
    #[arg(long, default_value = "10.244.0.1")]
    node_ip: Ipv4Addr,
    #[arg(long, default_value = "pylon0")]
    bridge: String,
    /// Pod IPs come from here, skipping the first /24 (the node's)
    #[arg(long, default_value = "10.244.0.0/16")]
    pod_cidr: Cidr,
    /// LoadBalancer Service addresses come from here
    #[arg(long, default_value = "10.245.0.0/24")]
    lb_cidr: Cidr,
    #[arg(long, default_value = "10.96.0.10")]
    cluster_dns: String,
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// image mapping file (YAML: images: {reference: executable})
    #[arg(long, required = true)]
    images: Option<PathBuf>,
    #[arg(long, default_value = "/var/lib/pylon-cluster/podlet")]
    state_dir: PathBuf,
    /// serving certificate for the logs endpoint
    #[arg(long, required = true)]
    tls_cert: Option<PathBuf>,
    #[arg(long, required = true)]
    tls_key: Option<PathBuf>,
    /// CA whose client certificates are accepted (the API server's kubelet client cert)
    #[arg(long, required = true)]
    client_ca: Option<PathBuf>,
    #[arg(long, default_value_t = 10250)]
    port: u16,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Kill every Pod process and remove every netns, veth and mount point the podlet made.
    Cleanup {
        #[arg(long, default_value = "/var/lib/pylon-cluster/podlet")]
        state_dir: PathBuf,
        #[arg(long, default_value = "pylon0")]
        bridge: String,
        /// only network namespaces of Pod IPs in this range are swept (beyond the recorded ones)
        #[arg(long, default_value = "10.244.0.0/16")]
        pod_cidr: Cidr,
    },
    /// (internal) Enter a Pod's namespaces and exec a container; used by the podlet itself.
    #[command(hide = true)]
    Launch { spec: PathBuf },
}

const NET_PREFIX: &str = "pylon";

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        // Must stay single-threaded: unshare(CLONE_NEWNS) fails in a multi-threaded process.
        Some(Cmd::Launch { spec }) => {
            let err = match launch::read_spec(&spec) {
                Ok(spec) => launch::launch(&spec),
                Err(e) => e,
            };
            eprintln!("pylon-podlet launch: {err}");
            std::process::exit(127);
        }
        Some(Cmd::Cleanup {
            state_dir,
            bridge,
            pod_cidr,
        }) => {
            init_tracing();
            // No state directory: nothing recorded, but stray netns/veths may remain; do not
            // create the directory just to lock it.
            let _lock = if state_dir.exists() {
                Some(cleanup::lock_state_dir(&state_dir)?)
            } else {
                None
            };
            let pods = cleanup::cleanup_all(&state_dir, NET_PREFIX, pod_cidr);
            let veths = remove_bridge_veths(&bridge);
            println!(
                "pylon-podlet cleanup: removed {pods} pod(s) and {veths} stray veth(s) from {}",
                state_dir.display()
            );
            Ok(())
        }
        None => {
            init_tracing();
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(run(cli.run))
        }
    }
}

fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube=warn,hyper=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Deletes veths of ours (prefix + 8 hex digits) still attached to the bridge.
fn remove_bridge_veths(bridge: &str) -> usize {
    let out = netns::run(
        "ip",
        &["-o", "link", "show", "master", bridge, "type", "veth"],
    )
    .unwrap_or_default();
    let mut n = 0;
    for line in out.lines() {
        let Some(name) = line
            .split(':')
            .nth(1)
            .map(|s| s.trim().split('@').next().unwrap_or(""))
        else {
            continue;
        };
        let ours = name.len() == NET_PREFIX.len() + 8
            && name.starts_with(NET_PREFIX)
            && name[NET_PREFIX.len()..]
                .chars()
                .all(|c| c.is_ascii_hexdigit());
        if ours && netns::run("ip", &["link", "del", name]).is_ok() {
            n += 1;
        }
    }
    n
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let (Some(kubeconfig), Some(images), Some(cert), Some(key), Some(ca)) = (
        args.kubeconfig,
        args.images,
        args.tls_cert,
        args.tls_key,
        args.client_ca,
    ) else {
        bail!("--kubeconfig, --images, --tls-cert, --tls-key and --client-ca are required");
    };
    if !nix::unistd::geteuid().is_root() {
        bail!("pylon-podlet must run as root (it creates network namespaces and mounts)");
    }
    if !args.pod_cidr.contains(args.node_ip) {
        bail!(
            "--node-ip {} is not inside --pod-cidr {}",
            args.node_ip,
            args.pod_cidr
        );
    }
    netns::check_bridge(&args.bridge, args.node_ip)?;
    let images = ImageMap::load(&images)?;
    let tls = server::tls_config(&cert, &key, &ca)?;
    let cfg = Config {
        node_name: args.node_name,
        node_ip: args.node_ip,
        bridge: args.bridge,
        pod_cidr: args.pod_cidr,
        lb_cidr: args.lb_cidr,
        cluster_dns: args.cluster_dns,
        cluster_domain: args.cluster_domain,
        state_dir: args.state_dir,
        port: args.port,
        net_prefix: NET_PREFIX.into(),
        self_exe: std::env::current_exe().context("locating the podlet's own executable")?,
    };
    std::fs::create_dir_all(cfg.pods_dir())
        .with_context(|| format!("creating {}", cfg.pods_dir().display()))?;
    std::fs::create_dir_all(cfg.logs_dir())?;
    // Held until exit: `cleanup` and a second podlet refuse to touch a live state directory.
    let _lock = cleanup::lock_state_dir(&cfg.state_dir)?;
    let stale = cleanup::cleanup_all(&cfg.state_dir, NET_PREFIX, cfg.pod_cidr);
    if stale > 0 {
        tracing::info!(
            pods = stale,
            "removed pods left by a previous run; they will be started afresh"
        );
    }
    std::fs::create_dir_all(cfg.pods_dir())?;
    std::fs::create_dir_all(cfg.logs_dir())?;

    let kc = kube::config::Kubeconfig::read_from(&kubeconfig)
        .with_context(|| format!("reading kubeconfig {}", kubeconfig.display()))?;
    let kcfg =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .with_context(|| format!("loading kubeconfig {}", kubeconfig.display()))?;
    let client = kube::Client::try_from(kcfg)?;

    let listener = tokio::net::TcpListener::bind((cfg.node_ip, cfg.port))
        .await
        .with_context(|| format!("binding the logs endpoint on {}:{}", cfg.node_ip, cfg.port))?;
    tokio::spawn(server::serve(listener, tls, cfg.logs_dir()));

    // The API server may still be starting; keep trying for a while.
    let mut attempt = 0;
    let node_uid = loop {
        match node::register(&client, &cfg).await {
            Ok(uid) => break uid,
            Err(e) if attempt < 60 => {
                attempt += 1;
                tracing::warn!(error = %e, "registering node; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => return Err(e).context("registering the Node"),
        }
    };
    tracing::info!(node = %cfg.node_name, "node registered");
    tokio::spawn(node::heartbeat_loop(client.clone(), cfg.clone(), node_uid));
    tokio::spawn(lb::run(client.clone(), cfg.lb_cidr));
    let ctx = Arc::new(Ctx::new(cfg, client, images));
    let pods = tokio::spawn(manager::run(ctx));

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = pods => bail!("the pod watch ended unexpectedly"),
    }
    tracing::info!(
        "shutting down; pod processes keep running until `pylon-podlet cleanup` or the next start"
    );
    Ok(())
}
