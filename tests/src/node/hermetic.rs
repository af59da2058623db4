//! Inside a node world, before anything starts: make every host-global thing the node touches private.
//!
//! The world already has its own network, mount and PID namespaces ([`super::launcher`]). Here:
//!
//! | what the node writes | made private by |
//! |---|---|
//! | `/etc` (`/etc/hosts`, `/etc/cni`), `/opt` (containerd's `/opt/containerd`), `/var` (`/var/lib/kubelet`, `/var/lib/cni`, `/var/log/containers`, `/var/log/pods`), `/run` (`/run/containerd/s` shim sockets, `/run/xtables.lock`, …) | an overlay over each, whose upper layer is a tmpfs: the host's files stay visible, writes stay in memory |
//! | `vm.overcommit_memory`, `vm.panic_on_oom`, `kernel.panic`, `kernel.panic_on_oops`, `kernel.keys.root_max{keys,bytes}` (kubelet sets them; they are not namespaced) | a plain file holding the current value, bind-mounted over each `/proc/sys` entry |
//! | cgroups (not namespaced) | the private cgroup root `/<name>` the launcher removes afterwards |
//! | links, addresses, routes, iptables rules | the network namespace: `lo` up, the node address on `lo` |
//!
//! Everything else the node needs (etcd and containerd data, kubelet's root, logs) lives in the world
//! directory. All of it is undone by the kernel when the world's last process exits.

use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use anyhow::{Context, Result, bail};

/// Directories overlaid with a private, in-memory upper layer. `/run` first: from then on even the
/// `mount` command's own bookkeeping (`/run/mount`) stays private.
const OVERLAID: &[&str] = &["/run", "/etc", "/opt", "/var"];

/// Host-global sysctls kubelet writes (`setupKernelTunables`), replaced by private files.
pub const KUBELET_SYSCTLS: &[&str] = &[
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
];

/// What [`prepare`] set up.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    /// The world directory.
    pub(crate) dir: PathBuf,
    /// The cgroup root name (kubelet's `cgroupRoot` is `/<name>`).
    pub(crate) cgroup: String,
}

/// Prepares the world's namespaces once per process; later calls return the first outcome.
pub(crate) fn prepare(node_ip: Ipv4Addr, node_name: &str) -> Result<Prepared> {
    static PREPARED: OnceLock<Result<Prepared, String>> = OnceLock::new();
    PREPARED
        .get_or_init(|| prepare_once(node_ip, node_name).map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn prepare_once(node_ip: Ipv4Addr, node_name: &str) -> Result<Prepared> {
    let Some((dir, cgroup)) = super::launcher::world_from_env() else {
        bail!("not inside a node world: start node tests through `regcreds_testkit::node::harness`");
    };
    refuse_host_namespaces()?;
    let scratch = dir.join("private");
    std::fs::create_dir_all(&scratch)?;
    // `-n`: no mtab/utab bookkeeping, which would land in the host's /run before it is overlaid.
    sh(&format!(
        "mount -n -t tmpfs -o mode=0700 regcreds-world {}",
        q(&scratch)
    ))?;
    for (i, target) in OVERLAID.iter().enumerate() {
        let (upper, work) = (
            scratch.join(format!("{i}/upper")),
            scratch.join(format!("{i}/work")),
        );
        std::fs::create_dir_all(&upper)?;
        std::fs::create_dir_all(&work)?;
        sh(&format!(
            "mount -n -t overlay regcreds-world -o lowerdir={target},upperdir={},workdir={} {target}",
            q(&upper),
            q(&work)
        ))?;
    }
    for key in KUBELET_SYSCTLS {
        let proc_path = Path::new("/proc/sys").join(key);
        let Ok(value) = std::fs::read_to_string(&proc_path) else {
            continue; // not in this kernel
        };
        let file = scratch.join(format!("sysctl-{}", key.replace('/', ".")));
        std::fs::write(&file, value)?;
        sh(&format!("mount -n --bind {} {}", q(&file), q(&proc_path)))?;
    }
    // Inside the /etc overlay: the host's file is untouched.
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    std::fs::write("/etc/hosts", format!("{hosts}{node_ip} {node_name}\n"))?;
    sh(&format!("ip link set lo up && ip addr add {node_ip}/32 dev lo"))?;
    create_cgroup_root(&cgroup)?;
    Ok(Prepared { dir, cgroup })
}

/// A last guard against mounting over the host's directories: the world's PID 1 is bash, and this
/// process is its child, so we are PID 2 in a fresh PID namespace.
fn refuse_host_namespaces() -> Result<()> {
    if std::process::id() > 10 {
        bail!(
            "this process has pid {} — not the fresh PID namespace of a node world; refusing to mount",
            std::process::id()
        );
    }
    Ok(())
}

/// `/sys/fs/cgroup/<controller>/<name>` in every cgroup v1 hierarchy (kubelet requires it to exist);
/// cpuset needs its CPUs and memory nodes copied from the parent before tasks can join.
fn create_cgroup_root(name: &str) -> Result<()> {
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        bail!("this host runs cgroup v2 only; the test node is set up for cgroup v1 hierarchies");
    }
    let mut created = 0;
    for entry in std::fs::read_dir("/sys/fs/cgroup").context("reading /sys/fs/cgroup")? {
        let hierarchy = entry?.path();
        if hierarchy.file_name().is_some_and(|n| n == "unified") || !hierarchy.is_dir() {
            continue;
        }
        let dir = hierarchy.join(name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        created += 1;
        if hierarchy.file_name().is_some_and(|n| n == "cpuset") {
            for knob in ["cpuset.cpus", "cpuset.mems"] {
                let value = std::fs::read_to_string(hierarchy.join(knob))?;
                std::fs::write(dir.join(knob), value)?;
            }
        }
    }
    if created == 0 {
        bail!("no cgroup v1 hierarchy under /sys/fs/cgroup; the test node is set up for cgroup v1");
    }
    Ok(())
}

/// Runs a shell command line, failing with its output.
fn sh(line: &str) -> Result<()> {
    let output = Command::new("sh")
        .args(["-c", line])
        .output()
        .with_context(|| format!("running `{line}`"))?;
    if !output.status.success() {
        bail!(
            "`{line}` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Single-quotes a path for `sh`.
fn q(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}
