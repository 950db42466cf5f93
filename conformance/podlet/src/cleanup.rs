//! Removing everything the podlet made: processes (from each Pod's pid record), network
//! namespaces and veths, host paths created as mount points, and the state directory's Pod
//! records. Used at start-up (stale Pods from a previous run) and by `pylon-podlet cleanup`.

use std::path::Path;

use nix::sys::signal::Signal;

use crate::container::signal_group;
use crate::netns::{self, PodNet};

/// An exclusive lock on a state directory, held by a running podlet for its whole life, so
/// `cleanup` (or a second podlet) cannot pull Pods out from under it.
pub struct StateLock {
    _lock: nix::fcntl::Flock<std::fs::File>,
}

/// Errors taking the state directory lock.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("opening {path}: {source}")]
    Open {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(
        "another pylon-podlet is running with state directory {dir} (it holds {path}); stop it first"
    )]
    Busy {
        dir: std::path::PathBuf,
        path: std::path::PathBuf,
    },
}

/// Takes the state directory's lock without waiting.
pub fn lock_state_dir(state_dir: &Path) -> Result<StateLock, LockError> {
    let path = state_dir.join("podlet.lock");
    let open_err = |source| LockError::Open {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(state_dir).map_err(open_err)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(open_err)?;
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(StateLock { _lock: lock }),
        Err(_) => Err(LockError::Busy {
            dir: state_dir.to_owned(),
            path,
        }),
    }
}

/// SIGKILLs every process group recorded in `pod_dir/pids` whose pid still runs the recorded
/// executable (a recycled pid belonging to someone else is left alone).
pub fn kill_recorded(pod_dir: &Path) {
    let Ok(text) = std::fs::read_to_string(pod_dir.join("pids")) else {
        return;
    };
    for line in text.lines() {
        let Some((pid, exe)) = line.split_once(' ') else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        let current = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
        let ours = current.as_ref().is_some_and(|c| {
            c == Path::new(exe) || c.to_string_lossy().trim_end_matches(" (deleted)") == exe
        }) || is_launcher(pid);
        if ours {
            signal_group(pid, Signal::SIGKILL);
        }
    }
}

/// A launcher that had not exec'd yet (`pylon-podlet launch ...`).
fn is_launcher(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
            args.len() > 2 && args[0].ends_with(b"pylon-podlet") && args[1] == b"launch"
        })
        .unwrap_or(false)
}

/// Removes everything a podlet with this state dir made: processes, netns/veths (by record, and
/// by `prefix` for addresses inside `pod_cidr`, so another podlet's Pods on other addresses are
/// left alone), created mount points, Pod records and logs. Returns how many Pods it cleaned.
pub fn cleanup_all(state_dir: &Path, prefix: &str, pod_cidr: crate::ipam::Cidr) -> usize {
    let pods = state_dir.join("pods");
    let mut count = 0;
    for entry in std::fs::read_dir(&pods).into_iter().flatten().flatten() {
        let dir = entry.path();
        kill_recorded(&dir);
        if let Ok(bytes) = std::fs::read(dir.join("net.json"))
            && let Ok(net) = serde_json::from_slice::<PodNet>(&bytes)
        {
            netns::teardown(&net);
        }
        let _ = std::fs::remove_dir_all(&dir);
        count += 1;
    }
    // Anything with our prefix that the records missed (e.g. a crash between steps).
    for ns in netns::list_netns(prefix) {
        if netns::netns_ip(prefix, &ns).is_some_and(|ip| pod_cidr.contains(ip)) {
            let _ = netns::run("ip", &["netns", "del", &ns]);
        }
    }
    crate::hostpaths::cleanup_record(&state_dir.join("created-paths"));
    unmount_netns_dir_if_empty();
    let _ = std::fs::remove_dir_all(state_dir.join("logs"));
    count
}

/// `ip netns add` bind-mounts /run/netns onto itself the first time (so namespace mounts can
/// propagate). Undo that once no namespace is left in it, so nothing of ours stays mounted.
pub fn unmount_netns_dir_if_empty() {
    let dir = Path::new("/run/netns");
    let empty = std::fs::read_dir(dir)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false);
    if !empty {
        return;
    }
    // It may be stacked (several first-time `ip netns add` racing); unmount every layer.
    for _ in 0..8 {
        let mounted = std::fs::read_to_string("/proc/self/mounts")
            .map(|m| {
                m.lines()
                    .any(|l| l.split_whitespace().nth(1) == Some("/run/netns"))
            })
            .unwrap_or(false);
        if !mounted || nix::mount::umount2(dir, nix::mount::MntFlags::MNT_DETACH).is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_lock_is_exclusive() {
        let dir = std::env::temp_dir().join(format!("pyt-lock-{}", std::process::id()));
        let held = lock_state_dir(&dir).unwrap();
        let err = lock_state_dir(&dir).err().expect("second lock must fail");
        assert!(
            err.to_string().contains("another pylon-podlet is running"),
            "{err}"
        );
        drop(held);
        lock_state_dir(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
