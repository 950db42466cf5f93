//! Root-only integration test: a Pod network namespace on a test bridge, and a container
//! launched into it with bind mounts, reached over the bridge. Skips itself when not root.
//! Uses `pyt*` names and 10.250.0.0/16 so it never clashes with a running podlet.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use pylon_podlet::launch::{BindMount, LaunchSpec};
use pylon_podlet::netns::{self, PodNet};

const BRIDGE: &str = "pytbr0";

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

struct Cleanup {
    net: PodNet,
    dir: PathBuf,
    child: Option<std::process::Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
        netns::teardown(&self.net);
        let _ = netns::run("ip", &["link", "del", BRIDGE]);
        let _ = std::fs::remove_dir_all(&self.dir);
        // `ip netns add` mounted /run/netns on itself; leave no mount behind if we were alone.
        pylon_podlet::cleanup::unmount_netns_dir_if_empty();
    }
}

#[test]
fn pod_network_and_mounts() {
    if !is_root() {
        eprintln!("SKIPPED pod_network_and_mounts: needs root (network namespaces, mounts)");
        return;
    }
    let gateway = Ipv4Addr::new(10, 250, 0, 1);
    let net = PodNet::new("pyt", Ipv4Addr::new(10, 250, 1, 5));
    let dir = std::env::temp_dir().join(format!("pyt-netns-{}", std::process::id()));
    let mut guard = Cleanup {
        net: net.clone(),
        dir: dir.clone(),
        child: None,
    };
    let _ = netns::run("ip", &["link", "del", BRIDGE]);
    netns::run("ip", &["link", "add", BRIDGE, "type", "bridge"]).unwrap();
    netns::run("ip", &["addr", "add", "10.250.0.1/16", "dev", BRIDGE]).unwrap();
    netns::run("ip", &["link", "set", BRIDGE, "up"]).unwrap();
    netns::check_bridge(BRIDGE, gateway).unwrap();
    assert!(netns::check_bridge(BRIDGE, Ipv4Addr::new(10, 251, 0, 1)).is_err());

    netns::setup(&net, BRIDGE, 16, gateway).unwrap();
    let addr = netns::run(
        "ip",
        &["-n", &net.netns, "-o", "-4", "addr", "show", "dev", "eth0"],
    )
    .unwrap();
    assert!(addr.contains("10.250.1.5/16"), "{addr}");
    let route = netns::run("ip", &["-n", &net.netns, "route"]).unwrap();
    assert!(route.contains("default via 10.250.0.1"), "{route}");
    let link = netns::run("ip", &["-d", "link", "show", &net.host_veth]).unwrap();
    assert!(
        link.contains(&format!("master {BRIDGE}")) && link.contains("hairpin on"),
        "{link}"
    );
    assert!(netns::list_netns("pyt").contains(&net.netns));

    // A container: bind-mounted resolv.conf and a volume dir at a path created for the test.
    std::fs::create_dir_all(dir.join("vol")).unwrap();
    std::fs::create_dir_all(dir.join("mnt")).unwrap();
    std::fs::write(dir.join("vol/index.html"), "hello from the volume\n").unwrap();
    std::fs::write(dir.join("resolv.conf"), "nameserver 10.96.0.10\n").unwrap();
    let spec = LaunchSpec {
        netns: Some(PathBuf::from(net.netns_path())),
        hostname: Some("pyt-pod".into()),
        mounts: vec![
            BindMount {
                source: dir.join("resolv.conf"),
                target: "/etc/resolv.conf".into(),
                read_only: false,
            },
            BindMount {
                source: dir.join("vol"),
                target: dir.join("mnt"),
                read_only: true,
            },
        ],
        argv: vec![
            "/bin/sh".into(),
            "-c".into(),
            // Report what the container sees, then serve the mounted directory.
            format!(
                "hostname; cat /etc/resolv.conf; touch {mnt}/x 2>/dev/null || echo read-only; cd {mnt} && exec python3 -m http.server 8080 --bind 10.250.1.5",
                mnt = dir.join("mnt").display()
            ),
        ],
        env: vec![("PATH".into(), std::env::var("PATH").unwrap_or_default())],
        working_dir: Some("/".into()),
    };
    let spec_path = dir.join("spec.json");
    std::fs::write(&spec_path, serde_json::to_vec(&spec).unwrap()).unwrap();
    let out_path = dir.join("out");
    let child = Command::new(env!("CARGO_BIN_EXE_pylon-podlet"))
        .arg("launch")
        .arg(&spec_path)
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(dir.join("err")).unwrap())
        .spawn()
        .unwrap();
    guard.child = Some(child);

    // Reach it over the bridge, from the host.
    let mut body = String::new();
    for _ in 0..100 {
        if let Ok(out) = Command::new("python3")
            .args(["-c", "import urllib.request;print(urllib.request.urlopen('http://10.250.1.5:8080/index.html',timeout=1).read().decode(),end='')"])
            .output()
            && out.status.success()
        {
            body = String::from_utf8_lossy(&out.stdout).into_owned();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let err = std::fs::read_to_string(dir.join("err")).unwrap_or_default();
    assert_eq!(body, "hello from the volume\n", "container stderr: {err}");
    let out = std::fs::read_to_string(&out_path).unwrap();
    assert!(
        out.starts_with("pyt-pod\nnameserver 10.96.0.10\nread-only\n"),
        "{out}"
    );
    // Nothing leaked into the host's mount namespace.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&dir.join("mnt").display().to_string()),
        "bind mount leaked to the host"
    );

    // Cleanup finds the container by its network namespace, with no record at all.
    assert_eq!(
        pylon_podlet::cleanup::kill_netns_processes(std::slice::from_ref(&net.netns)),
        1
    );
    let status = guard.child.as_mut().unwrap().wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    guard.child = None;

    // The executable is opened before mounting, so a volume covering its directory (CoreDNS
    // mounts its ConfigMap at /root) does not hide it.
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::copy("/bin/echo", dir.join("bin/echo")).unwrap();
    let covered = LaunchSpec {
        mounts: vec![BindMount {
            source: dir.join("vol"),
            target: dir.join("bin"),
            read_only: true,
        }],
        argv: vec![
            dir.join("bin/echo").display().to_string(),
            "still runs".into(),
        ],
        ..Default::default()
    };
    std::fs::write(&spec_path, serde_json::to_vec(&covered).unwrap()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pylon-podlet"))
        .arg("launch")
        .arg(&spec_path)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "still runs\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A launch failure is reported clearly and exits 127.
    let bad = LaunchSpec {
        argv: vec!["/nonexistent/exe".into()],
        ..Default::default()
    };
    std::fs::write(&spec_path, serde_json::to_vec(&bad).unwrap()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pylon-podlet"))
        .arg("launch")
        .arg(&spec_path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&out.stderr).contains("executing /nonexistent/exe"));

    drop(guard);
    assert!(!netns::list_netns("pyt").contains(&net.netns));
}
