//! What a node world could change on the host, captured so a test can compare before and after.
//!
//! Taken outside any world (in the host's namespaces). Everything is text, sorted where order is not
//! meaningful, so a difference prints as a readable diff.
//!
//! Other test runs may have worlds of their own at the same time (several engineers, one machine):
//! cgroups, processes and directories of a world whose launcher is another live process are left out.
//! A world launched by this process, or by a process that is gone, always counts.

use std::{collections::BTreeMap, path::Path, process::Command};

use super::KUBELET_SYSCTLS;

/// Other host-global sysctls a node could touch (kube-proxy, CNI): they must not change either.
const OTHER_SYSCTLS: &[&str] = &[
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/route_localnet",
    "net/bridge/bridge-nf-call-iptables",
    "net/netfilter/nf_conntrack_max",
    "net/netfilter/nf_conntrack_tcp_timeout_established",
    "net/netfilter/nf_conntrack_tcp_timeout_close_wait",
];

/// Fixed paths kubelet, containerd, runc, CNI plugins or iptables write when nothing redirects them.
pub const FIXED_PATHS: &[&str] = &[
    "/var/lib/kubelet",
    "/var/lib/containerd",
    "/var/lib/cni",
    "/var/log/containers",
    "/var/log/pods",
    "/run/containerd",
    "/run/runc",
    "/run/netns",
    "/run/xtables.lock",
    "/etc/cni",
    "/etc/containerd",
    "/opt/cni",
    "/opt/containerd",
];

/// Directories whose entries (one level) must be the same before and after: a world writes below
/// them only through its private overlays.
const LISTED_DIRS: &[&str] = &["/run", "/etc", "/opt", "/var", "/var/lib", "/var/log", "/root"];

/// Named sections of host state; compare two with [`HostState::diff`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostState(BTreeMap<String, String>);

impl HostState {
    /// Captures sysctls, the mount table, cgroups, links/addresses/routes, iptables rules,
    /// `/etc/hosts`, the fixed paths, leftover node processes and world directories.
    pub fn capture() -> Self {
        let mut sections = BTreeMap::new();
        for key in KUBELET_SYSCTLS.iter().chain(OTHER_SYSCTLS) {
            let value = std::fs::read_to_string(Path::new("/proc/sys").join(key));
            sections.insert(
                format!("sysctl {key}"),
                value.map_or_else(|e| format!("<{e}>"), |v| v.trim().to_string()),
            );
        }
        sections.insert("mounts".into(), sorted_lines(&read("/proc/self/mountinfo")));
        sections.insert("cgroups".into(), without_foreign_worlds(&cgroup_dirs()));
        for (name, args) in [
            ("ip link", &["-o", "link"][..]),
            ("ip addr", &["-o", "addr"]),
            ("ip route", &["-o", "route", "show", "table", "all"]),
            ("ip -6 route", &["-o", "-6", "route", "show", "table", "all"]),
            ("ip netns", &["netns", "list"]),
        ] {
            sections.insert(name.into(), output("ip", args));
        }
        // Rule counters and the "Generated on <date>" comments change by themselves.
        let rules: String = output("iptables-save", &[])
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{}\n", strip_counters(l)))
            .collect();
        sections.insert("iptables-save".into(), rules);
        sections.insert("/etc/hosts".into(), read("/etc/hosts"));
        for path in FIXED_PATHS {
            sections.insert(format!("path {path}"), describe_path(Path::new(path)));
        }
        for dir in LISTED_DIRS {
            sections.insert(format!("entries of {dir}"), entries(Path::new(dir)));
        }
        sections.insert("node processes".into(), without_foreign_worlds(&node_processes()));
        sections.insert("world directories".into(), without_foreign_worlds(&world_dirs()));
        Self(sections)
    }

    /// One line per differing section: `name: before → after`; empty when equal.
    pub fn diff(&self, after: &HostState) -> String {
        let mut out = String::new();
        for (name, before) in &self.0 {
            let now = after.0.get(name).map_or("<missing>", String::as_str);
            if before != now {
                out += &format!("--- {name}\nbefore:\n{before}\nafter:\n{now}\n");
            }
        }
        out
    }
}

/// Drops the lines that name a world (`regcreds-node-<launcher pid>-…`) launched by another live
/// process.
fn without_foreign_worlds(text: &str) -> String {
    let foreign = |line: &str| {
        line.split("regcreds-node-").skip(1).any(|rest| {
            let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
            pid.parse::<u32>()
                .is_ok_and(|pid| pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists())
        })
    };
    text.lines()
        .filter(|line| !foreign(line))
        .collect::<Vec<_>>()
        .join("\n")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| format!("<{e}>"))
}

fn sorted_lines(text: &str) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    lines.join("\n")
}

fn output(program: &str, args: &[&str]) -> String {
    match Command::new(program).args(args).output() {
        Ok(out) => format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => format!("<cannot run {program}: {e}>"),
    }
}

/// `[packets:bytes]` counters in `iptables-save` chain lines.
fn strip_counters(line: &str) -> String {
    match (line.starts_with(':'), line.rfind(" [")) {
        (true, Some(i)) => line[..i].to_string(),
        _ => line.to_string(),
    }
}

/// Every cgroup directory, up to three levels below each hierarchy's root.
fn cgroup_dirs() -> String {
    let mut dirs = Vec::new();
    collect_dirs(Path::new("/sys/fs/cgroup"), 4, &mut dirs);
    dirs.sort();
    dirs.join("\n")
}

fn collect_dirs(dir: &Path, depth: usize, out: &mut Vec<String>) {
    if depth == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.push(entry.path().display().to_string());
            collect_dirs(&entry.path(), depth - 1, out);
        }
    }
}

/// Whether `path` exists, and what is below it (two levels).
fn describe_path(path: &Path) -> String {
    if std::fs::symlink_metadata(path).is_err() {
        return "absent".into();
    }
    let mut entries = Vec::new();
    collect_dirs(path, 2, &mut entries);
    if let Ok(listing) = std::fs::read_dir(path) {
        entries.extend(listing.flatten().map(|e| e.path().display().to_string()));
    }
    entries.sort();
    entries.dedup();
    format!("present\n{}", entries.join("\n"))
}

/// The names in `dir`, sorted.
fn entries(dir: &Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names.join("\n")
}

/// Processes of a node world, each with the world it belongs to: named by `$REGCREDS_NODE_WORLD` in
/// its environment (the launcher sets it; every node process inherits it), by its cgroup (container
/// processes live under kubelet's cgroup root), or by its command line. None may outlive a world.
fn node_processes() -> String {
    let mut found = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return "<no /proc>".into();
    };
    for entry in procs.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let read = |file: &str| {
            let bytes = std::fs::read(entry.path().join(file)).unwrap_or_default();
            String::from_utf8_lossy(&bytes).replace('\0', " ")
        };
        let cmdline = read("cmdline");
        let world = [read("environ"), read("cgroup"), cmdline.clone()]
            .iter()
            .find_map(|text| world_name(text));
        if let Some(world) = world {
            found.push(format!("{} [{world}]", cmdline.trim()));
        }
    }
    found.sort();
    found.join("\n")
}

/// The first `regcreds-node-<pid>-<suffix>` in `text`.
fn world_name(text: &str) -> Option<String> {
    text.split("regcreds-node-").skip(1).find_map(|rest| {
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        let (pid, suffix) = name.split_once('-')?;
        (pid.chars().all(|c| c.is_ascii_digit()) && !pid.is_empty() && !suffix.is_empty())
            .then(|| format!("regcreds-node-{name}"))
    })
}

/// `$TMPDIR/regcreds-node-*` directories.
fn world_dirs() -> String {
    let mut dirs: Vec<String> = std::fs::read_dir(std::env::temp_dir())
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("regcreds-node-"))
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs.join("\n")
}
