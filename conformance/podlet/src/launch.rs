//! The container launcher: the podlet re-executes itself as `pylon-podlet launch SPEC.json`,
//! and this code then enters the Pod's network namespace, makes a private mount namespace
//! (and UTS namespace for the Pod's hostname), bind-mounts the volumes, and `exec`s the
//! container's executable. Doing this in a fresh process keeps namespace changes out of the
//! multi-threaded podlet, and the bind mounts never touch the host's mount namespace.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, setns, unshare};

/// One bind mount made inside the container's mount namespace.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BindMount {
    pub source: PathBuf,
    pub target: PathBuf,
    pub read_only: bool,
}

/// Everything the launcher needs; written as JSON by the podlet.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct LaunchSpec {
    /// `/run/netns/<name>`; `None` runs in the caller's network namespace.
    pub netns: Option<PathBuf>,
    pub hostname: Option<String>,
    pub mounts: Vec<BindMount>,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<PathBuf>,
}

/// Errors setting up a container; printed to the container's stderr (so they appear in its
/// log) and turned into a non-zero exit.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("reading launch spec {path}: {reason}")]
    Spec { path: PathBuf, reason: String },
    #[error("{what}: {source}")]
    Sys {
        what: String,
        source: nix::errno::Errno,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("argv or env contains a NUL byte")]
    Nul,
    #[error("empty argv")]
    EmptyArgv,
}

fn sys(what: impl Into<String>) -> impl FnOnce(nix::errno::Errno) -> LaunchError {
    let what = what.into();
    move |source| LaunchError::Sys { what, source }
}

/// Reads a launch spec file.
pub fn read_spec(path: &Path) -> Result<LaunchSpec, LaunchError> {
    let text = std::fs::read(path).map_err(|e| LaunchError::Spec {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    serde_json::from_slice(&text).map_err(|e| LaunchError::Spec {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// Sets up the namespaces and mounts, then execs. Returns only on failure.
pub fn launch(spec: &LaunchSpec) -> LaunchError {
    match try_launch(spec) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

fn try_launch(spec: &LaunchSpec) -> Result<std::convert::Infallible, LaunchError> {
    if let Some(netns) = &spec.netns {
        let file = std::fs::File::open(netns).map_err(|source| LaunchError::Io {
            what: format!("opening network namespace {}", netns.display()),
            source,
        })?;
        setns(&file, CloneFlags::CLONE_NEWNET).map_err(sys("entering network namespace"))?;
    }
    unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS)
        .map_err(sys("creating mount and UTS namespaces"))?;
    // Make every mount private so nothing done here propagates back to the host.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(sys("making / private"))?;
    if let Some(name) = &spec.hostname {
        nix::unistd::sethostname(name).map_err(sys("setting hostname"))?;
    }
    // Open the executable before mounting: a volume may cover the directory it lives in
    // (CoreDNS mounts its ConfigMap at /root, and the binaries may live under /root/.cache).
    // Not close-on-exec, so a `#!` script still finds itself through /dev/fd.
    let exe_path = spec.argv.first().ok_or(LaunchError::EmptyArgv)?;
    let exe = nix::fcntl::open(
        exe_path.as_str(),
        nix::fcntl::OFlag::O_RDONLY,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(sys(format!("executing {exe_path}")))?;
    for m in &spec.mounts {
        let what = format!(
            "bind-mounting {} on {}",
            m.source.display(),
            m.target.display()
        );
        mount(
            Some(&m.source),
            &m.target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(sys(what.clone()))?;
        if m.read_only {
            mount(
                None::<&str>,
                &m.target,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                None::<&str>,
            )
            .map_err(sys(format!("{what} (read-only)")))?;
        }
    }
    if let Some(dir) = &spec.working_dir {
        nix::unistd::chdir(dir).map_err(sys(format!("changing to {}", dir.display())))?;
    }
    let argv: Vec<CString> = spec
        .argv
        .iter()
        .map(|a| CString::new(a.as_str()))
        .collect::<Result<_, _>>()
        .map_err(|_| LaunchError::Nul)?;
    let env: Vec<CString> = spec
        .env
        .iter()
        .map(|(k, v)| CString::new(format!("{k}={v}")))
        .collect::<Result<_, _>>()
        .map_err(|_| LaunchError::Nul)?;
    match nix::unistd::fexecve(&exe, &argv, &env) {
        Ok(never) => match never {},
        Err(e) => Err(sys(format!("executing {}", spec.argv[0]))(e)),
    }
}
