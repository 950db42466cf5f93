//! `pylon-controller`: the Gateway API controller.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use pylon_controller::auth::Authenticator;
use pylon_controller::config_ca::{self, ConfigCa};
use pylon_controller::config_hub::ConfigHub;
use pylon_controller::config_server;
use pylon_controller::config_tls::{self, ServingKey};
use pylon_controller::dataplane_pods::{PodReporter, PodWatch};
use pylon_controller::install_check;
use pylon_controller::provision::apply::Provisioner;
use pylon_controller::run::{self, Outputs};
use pylon_controller::snapshot::Options;
use pylon_controller::status_writer::StatusWriter;
use pylon_controller::watch::{Changes, Stores};
use pylon_controller::{DEFAULT_CONTROLLER_NAME, admin, leader};
use tokio::sync::watch;

/// Pylon's controller: reconciles Gateway API objects, writes status, provisions data planes
/// and streams them their configuration.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// The GatewayClass controllerName this controller owns.
    #[arg(long, env = "PYLON_CONTROLLER_NAME", default_value = DEFAULT_CONTROLLER_NAME)]
    controller_name: String,
    /// Where the config server (data planes' streams) listens: HTTPS (h2 or HTTP/1.1 by ALPN)
    /// with a certificate issued by the config CA.
    #[arg(long, env = "PYLON_CONFIG_ADDR", default_value = "0.0.0.0:18000")]
    config_addr: SocketAddr,
    /// Serve the config server over plain HTTP (HTTP/1.1 and h2c) instead of TLS: for tests
    /// and local development only, data planes' configs and tokens travel unencrypted.
    #[arg(long, env = "PYLON_CONFIG_PLAINTEXT")]
    config_plaintext: bool,
    /// Secret (in --namespace) holding the config CA; created with a new CA if absent.
    #[arg(long, env = "PYLON_CONFIG_CA_SECRET", default_value = config_ca::DEFAULT_SECRET)]
    config_ca_secret: String,
    /// Where the admin server (/ready, /healthz, /metrics, /config_dump) listens.
    #[arg(long, env = "PYLON_ADMIN_ADDR", default_value = "0.0.0.0:9090")]
    admin_addr: SocketAddr,
    /// The config server URL data planes are told to dial.
    #[arg(
        long,
        env = "PYLON_CONFIG_URL",
        default_value = "https://pylon-controller.pylon-system.svc:18000"
    )]
    config_url: String,
    /// Image of provisioned data planes.
    #[arg(long, env = "PYLON_DATAPLANE_IMAGE", default_value = concat!("ghcr.io/pylon-dev/pylon-dataplane:", env!("CARGO_PKG_VERSION")))]
    dataplane_image: String,
    /// Elect a leader on a Lease; only the leader writes status and provisions.
    #[arg(long, env = "PYLON_LEADER_ELECT")]
    leader_elect: bool,
    /// Namespace of the controller (holds the Lease).
    #[arg(long, env = "POD_NAMESPACE", default_value = "pylon-system")]
    namespace: String,
    /// Require data planes to present their ServiceAccount token (checked with TokenReview;
    /// only the Gateway's own data-plane ServiceAccount may read its config). On by default;
    /// `--dataplane-auth=false` lets anyone who reaches the config server read every config.
    #[arg(
        long,
        env = "PYLON_DATAPLANE_AUTH",
        default_value_t = true,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    dataplane_auth: bool,
    /// Kubeconfig to use (default: in-cluster, or KUBECONFIG / ~/.kube/config).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Checks an installation and exits (the chart's `helm test`): the controller Deployment has
    /// every replica available and the GatewayClass is Accepted by --controller-name.
    Check {
        /// The GatewayClass that must be Accepted.
        #[arg(long, default_value = "pylon")]
        gateway_class: String,
        /// The controller Deployment, in --namespace.
        #[arg(long, default_value = "pylon-controller")]
        deployment: String,
        /// How long to keep trying, in seconds.
        #[arg(long, default_value_t = 60)]
        timeout_secs: u64,
    },
}

async fn client(kubeconfig: Option<&PathBuf>) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .with_context(|| format!("loading kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("no in-cluster config and no kubeconfig")?,
    };
    kube::Client::try_from(config).context("building the Kubernetes client")
}

/// How long a terminating replica keeps serving (streams and acks) before it ends its streams:
/// time for the Service to stop sending it new connections, so data planes reconnect to a
/// replica that stays.
const DRAIN: Duration = Duration::from_secs(3);
/// How long to wait for connections to close after the streams ended.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves until `stop` turns true, then stops accepting and closes connections gracefully.
async fn serve(
    name: &'static str,
    addr: SocketAddr,
    router: axum::Router,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {name} on {addr}"))?;
    tracing::info!(%addr, "{name} listening");
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await
        .with_context(|| format!("{name} failed"))
}

/// Like [`serve`], over TLS.
async fn serve_tls(
    addr: SocketAddr,
    router: axum::Router,
    tls: Arc<rustls::ServerConfig>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding config server on {addr}"))?;
    tracing::info!(%addr, "config server listening (TLS)");
    config_tls::serve(listener, router, tls, stop).await;
    Ok(())
}

/// SIGTERM (what Kubernetes sends) or SIGINT.
async fn terminated() -> anyhow::Result<&'static str> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => Ok("SIGTERM"),
        r = tokio::signal::ctrl_c() => r.map(|_| "SIGINT").context("waiting for SIGINT"),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    // One crypto provider for the process: kube's client and the config server both use ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    config_tls::check_config_url(&cli.config_url, cli.config_plaintext)?;
    let client = client(cli.kubeconfig.as_ref()).await?;
    if let Some(Command::Check {
        gateway_class,
        deployment,
        timeout_secs,
    }) = &cli.command
    {
        let check = install_check::Check {
            namespace: cli.namespace.clone(),
            deployment: deployment.clone(),
            gateway_class: gateway_class.clone(),
            controller_name: cli.controller_name.clone(),
            timeout: Duration::from_secs(*timeout_secs),
        };
        let found = install_check::run(client, &check).await?;
        println!("check: ok: {found}");
        return Ok(());
    }
    // Before anything is served or provisioned: data planes are given this CA.
    let tls = if cli.config_plaintext {
        tracing::warn!(
            "config server is plain HTTP (--config-plaintext): configs and data-plane tokens travel unencrypted"
        );
        None
    } else {
        let ca = config_ca::ensure(&client, &cli.namespace, &cli.config_ca_secret).await?;
        let names = config_ca::serving_names(&cli.config_url)?;
        let key = ServingKey::issue(&ca, &names)?;
        tracing::info!(?names, "config server certificate issued");
        tokio::spawn(key.clone().renew_loop(ca.clone(), names));
        Some((ca, key))
    };
    let options = Options {
        controller_name: cli.controller_name.clone(),
        dataplane_image: cli.dataplane_image.clone(),
        config_url: cli.config_url.clone(),
        config_ca: tls
            .as_ref()
            .map(|(ca, _): &(ConfigCa, _)| ca.cert_pem.clone()),
    };
    let changes = Arc::new(Changes::default());
    let stores = Stores::start(&client, &changes);
    let hub = Arc::new(ConfigHub::default());
    let (latest_tx, latest_rx) = watch::channel(None);
    let (full_tx, full_rx) = watch::channel(None);
    // Without election this replica always leads; the sender lives as long as main so the
    // loops never see the channel close.
    let (_always_leader, always) = watch::channel(true);
    let identity = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| format!("pylon-controller-{}", std::process::id()));
    let (leading, election) = if cli.leader_elect {
        let (rx, task) = leader::start(client.clone(), &cli.namespace, identity.clone());
        (rx, Some(task))
    } else {
        (always, None)
    };
    let auth = if cli.dataplane_auth {
        Authenticator::token_review(client.clone())
    } else {
        tracing::warn!(
            "data-plane authentication is off (--dataplane-auth=false): anyone reaching the config server can read every Gateway's config"
        );
        Authenticator::Open
    };
    tokio::spawn(run::translate_loop(
        stores.clone(),
        changes,
        options,
        hub.clone(),
        Outputs {
            latest: latest_tx,
            full: full_tx,
        },
    ));
    let pods = PodWatch::start(&client, hub.clone());
    tokio::spawn(run::status_loop(
        StatusWriter::new(
            client.clone(),
            cli.controller_name.clone(),
            Some(stores.clone()),
        ),
        full_rx.clone(),
        hub.clone(),
        pods,
        leading.clone(),
    ));
    tokio::spawn(run::provision_loop(
        Provisioner::new(client.clone()),
        full_rx,
        leading,
    ));
    let (stop_tx, stop) = watch::channel(false);
    let config_router = config_server::router_with(
        hub.clone(),
        Duration::from_secs(15),
        auth,
        Some(PodReporter::new(client.clone())),
    );
    let mut config = match tls {
        None => tokio::spawn(serve(
            "config server",
            cli.config_addr,
            config_router,
            stop.clone(),
        )),
        Some((_, key)) => tokio::spawn(serve_tls(
            cli.config_addr,
            config_router,
            key.server_config(),
            stop.clone(),
        )),
    };
    let mut admin = tokio::spawn(serve(
        "admin server",
        cli.admin_addr,
        admin::router(latest_rx),
        stop,
    ));
    let signal = tokio::select! {
        r = &mut config => return r.context("config server panicked")?,
        r = &mut admin => return r.context("admin server panicked")?,
        s = terminated() => s?,
    };
    // Hand over leadership at once, keep serving streams and recording acks while the Service
    // drops this replica, then end the streams (data planes reconnect to another replica) and
    // close connections properly so no data plane keeps a half-dead one.
    tracing::info!(signal, drain = ?DRAIN, "terminating");
    if let Some(task) = election {
        task.abort();
        match leader::release(client.clone(), &cli.namespace, &identity).await {
            Ok(true) => tracing::info!("leadership released"),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "releasing leadership failed; it expires"),
        }
    }
    tokio::time::sleep(DRAIN).await;
    let _ = stop_tx.send(true);
    hub.retain(|_| false);
    let closed = tokio::time::timeout(CLOSE_TIMEOUT, async {
        let _ = config.await;
        let _ = admin.await;
    })
    .await;
    if closed.is_err() {
        tracing::warn!(timeout = ?CLOSE_TIMEOUT, "connections still open; exiting anyway");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Security defaults: TLS and data-plane authentication are on unless turned off by name.
    #[test]
    fn tls_and_dataplane_auth_are_on_by_default() {
        let cli = Cli::try_parse_from(["pylon-controller"]).unwrap();
        assert!(cli.dataplane_auth);
        assert!(!cli.config_plaintext);
        assert!(cli.config_url.starts_with("https://"));
        assert_eq!(cli.config_ca_secret, "pylon-config-ca");
        let off = Cli::try_parse_from(["pylon-controller", "--dataplane-auth=false"]).unwrap();
        assert!(!off.dataplane_auth);
        let on = Cli::try_parse_from(["pylon-controller", "--dataplane-auth"]).unwrap();
        assert!(on.dataplane_auth);
    }

    #[test]
    fn check_is_a_subcommand_with_the_charts_names_by_default() {
        let cli = Cli::try_parse_from(["pylon-controller", "check"]).unwrap();
        let Some(Command::Check {
            gateway_class,
            deployment,
            timeout_secs,
        }) = cli.command
        else {
            panic!("no check: {:?}", cli.command)
        };
        assert_eq!(
            (gateway_class.as_str(), deployment.as_str()),
            ("pylon", "pylon-controller")
        );
        assert_eq!(timeout_secs, 60);
        assert!(
            Cli::try_parse_from(["pylon-controller"])
                .unwrap()
                .command
                .is_none()
        );
    }
}
