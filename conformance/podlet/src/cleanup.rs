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

/// A process's start time (clock ticks since boot, field 22 of /proc/<pid>/stat).
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// SIGKILLs every process group recorded in `pod_dir/pids` (`pid starttime exe` lines) whose
/// process is still the one recorded: same pid and same start time. Returns how many it killed.
pub fn kill_recorded(pod_dir: &Path) -> usize {
    let Ok(text) = std::fs::read_to_string(pod_dir.join("pids")) else {
        return 0;
    };
    let mut killed = 0;
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let (Some(Ok(pid)), Some(Ok(start))) = (
            fields.next().map(str::parse::<u32>),
            fields.next().map(str::parse::<u64>),
        ) else {
            continue;
        };
        if start_time(pid) == Some(start) {
            signal_group(pid, Signal::SIGKILL);
            killed += 1;
        }
    }
    killed
}

/// SIGKILLs every process whose network namespace is one of `names` (under /run/netns).
pub fn kill_netns_processes(names: &[String]) -> usize {
    use std::os::unix::fs::MetadataExt;
    let targets: Vec<(u64, u64)> = names
        .iter()
        .filter_map(|n| std::fs::metadata(format!("/run/netns/{n}")).ok())
        .map(|m| (m.dev(), m.ino()))
        .collect();
    if targets.is_empty() {
        return 0;
    }
    let mut killed = 0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(m) = std::fs::metadata(format!("/proc/{pid}/ns/net")) else {
            continue;
        };
        if targets.contains(&(m.dev(), m.ino()))
            && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL).is_ok()
        {
            killed += 1;
        }
    }
    killed
}

/// Removes everything a podlet with this state dir made: processes, netns/veths (by record, and
/// by `prefix` for addresses inside `pod_cidr`, so another podlet's Pods on other addresses are
/// left alone), created mount points, Pod records and logs. Returns how many Pods it cleaned.
pub fn cleanup_all(state_dir: &Path, prefix: &str, pod_cidr: crate::ipam::Cidr) -> usize {
    let pods = state_dir.join("pods");
    let mut count = 0;
    // Whatever still runs inside one of our Pod network namespaces is ours, whatever the
    // records say (a record may be missing, or from an older podlet).
    let ours: Vec<String> = netns::list_netns(prefix)
        .into_iter()
        .filter(|ns| netns::netns_ip(prefix, ns).is_some_and(|ip| pod_cidr.contains(ip)))
        .collect();
    kill_netns_processes(&ours);
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
    for ns in ours {
        let _ = netns::run("ip", &["netns", "del", &ns]);
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
    use std::os::unix::process::CommandExt;

    #[test]
    fn kills_recorded_processes_but_not_reused_pids() {
        let dir = std::env::temp_dir().join(format!("pyt-kill-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id();
        let start = start_time(pid).unwrap();
        // A record with the wrong start time (a reused pid) is left alone.
        std::fs::write(
            dir.join("pids"),
            format!("{pid} {} /bin/sleep\n", start + 1),
        )
        .unwrap();
        assert_eq!(kill_recorded(&dir), 0);
        assert!(child.try_wait().unwrap().is_none(), "still running");
        std::fs::write(dir.join("pids"), format!("{pid} {start} /bin/sleep\n")).unwrap();
        assert_eq!(kill_recorded(&dir), 1);
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

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
