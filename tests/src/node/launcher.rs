//! The host side of a node world: fresh namespaces around a program, and cleaning up after it.
//!
//! ```text
//! run_in_world(program, args)                          host namespaces, root
//!   ├─ world dir  $TMPDIR/regcreds-node-<pid>-<rand>   (logs, etcd, containerd, kubelet data)
//!   ├─ janitor    sh: waits for this process to vanish, then runs CLEANUP (for SIGKILL / Ctrl-C)
//!   ├─ unshare --net --mount --pid --fork --mount-proc --propagation private --kill-child
//!   │    └─ bash (PID 1 of the world: reaps orphans such as containerd shims)
//!   │         └─ program args     $REGCREDS_NODE_WORLD=<world dir> $REGCREDS_NODE_CGROUP=<name>
//!   │                             $TMPDIR=<world dir>/tmp
//!   └─ CLEANUP    rmdir /sys/fs/cgroup/*/<name> depth first (cgroups are not namespaced), rm -rf world dir
//! ```
//!
//! When PID 1 of a PID namespace exits, the kernel kills every other process in it and waits for them,
//! so by the time `unshare` returns nothing of the world runs any more: no kubelet, no shim, no
//! container. Its mounts vanish with the mount namespace, its links and routes with the network
//! namespace. `unshare` itself dies with this process (`PR_SET_PDEATHSIG`) and `--kill-child` then
//! takes PID 1 with it, so even a SIGKILLed test run leaves nothing running; the janitor removes the
//! two things that live on the host's file systems.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Output, Stdio},
};

use anyhow::{Context, Result, bail};
use rand::distr::{Alphanumeric, SampleString};

use crate::child;

/// Set inside a world: its directory.
pub(crate) const WORLD_DIR_ENV: &str = "REGCREDS_NODE_WORLD";
/// Set inside a world: the name of its private cgroup root (`/sys/fs/cgroup/<controller>/<name>`).
pub(crate) const CGROUP_ENV: &str = "REGCREDS_NODE_CGROUP";
/// Set (to anything) to keep the world directory after the run, for its logs.
pub const KEEP_ENV: &str = "REGCREDS_NODE_KEEP";

/// Removes the world's cgroups (children first; a cgroup holds no files, only control knobs) and,
/// unless told to keep it, its directory. `$1` cgroup name, `$2` world dir, `$3` keep (empty = no).
const CLEANUP: &str = r#"i=0
while [ $i -lt 40 ]; do
  left=
  for h in /sys/fs/cgroup/*/"$1"; do
    [ -d "$h" ] || continue
    find "$h" -depth -type d -exec rmdir {} + 2>/dev/null
    [ -d "$h" ] && left=1
  done
  [ -z "$left" ] && break
  i=$((i+1)); sleep 0.25
done
[ -n "$3" ] || rm -rf -- "$2""#;

/// Whether this process runs inside a node world (started by [`run_in_world`]).
pub fn inside_world() -> bool {
    std::env::var_os(WORLD_DIR_ENV).is_some()
}

/// Runs `program args` inside a new node world and returns its exit status, after cleaning up.
///
/// Needs root (namespaces, mounts, cgroups) and util-linux `unshare`. stdout and stderr are inherited.
pub fn run_in_world(program: &Path, args: &[OsString]) -> Result<ExitStatus> {
    Ok(run_in_world_with(program, args, |_| {})?.status)
}

/// [`run_in_world`], letting `configure` set environment variables or pipe stdout/stderr of the
/// world (the `unshare` command) first; returns its output (empty for inherited streams).
pub fn run_in_world_with(
    program: &Path,
    args: &[OsString],
    configure: impl FnOnce(&mut Command),
) -> Result<Output> {
    require_root()?;
    let suffix = Alphanumeric.sample_string(&mut rand::rng(), 4).to_lowercase();
    let name = format!("regcreds-node-{}-{suffix}", std::process::id());
    let dir = std::env::temp_dir().join(&name);
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let keep = std::env::var_os(KEEP_ENV).is_some();
    let mut janitor = spawn_janitor(&name, &dir, keep)?;

    let mut cmd = Command::new("unshare");
    cmd.args([
        "--net",
        "--mount",
        "--pid",
        "--fork",
        "--mount-proc",
        "--propagation",
        "private",
        "--kill-child",
        "--",
        "bash",
        "-c",
        // Not `exec`: bash stays PID 1 and reaps re-parented orphans while it waits.
        r#""$@"; exit $?"#,
        "regcreds-node-init",
    ])
    .arg(program)
    .args(args)
    .env(WORLD_DIR_ENV, &dir)
    .env(CGROUP_ENV, &name)
    // Temporary files of everything inside (control plane, registries) go into the world directory:
    // their own janitors die with the world, this launcher's cleanup removes them.
    .env("TMPDIR", &tmp)
    .stdin(Stdio::null());
    configure(&mut cmd);
    let output = child::spawn_tied(cmd)
        .context("starting `unshare` (util-linux)")?
        .wait_with_output()
        .context("waiting for the node world")?;

    let cleaned = cleanup(&name, &dir, keep);
    let _ = janitor.kill();
    let _ = janitor.wait();
    if keep {
        eprintln!(
            "regcreds-testkit: kept the node world's directory {}",
            dir.display()
        );
    }
    cleaned?;
    Ok(output)
}

/// The world's name for its directory and cgroup root, as the world sees them.
pub(crate) fn world_from_env() -> Option<(PathBuf, String)> {
    let dir = std::env::var_os(WORLD_DIR_ENV)?;
    let cgroup = std::env::var(CGROUP_ENV).ok()?;
    Some((PathBuf::from(dir), cgroup))
}

fn cleanup(name: &str, dir: &Path, keep: bool) -> Result<()> {
    let status = Command::new("sh")
        .args(["-c", CLEANUP, "regcreds-node-cleanup", name])
        .arg(dir)
        .arg(if keep { "keep" } else { "" })
        .status()
        .context("running the node world's cleanup")?;
    let leftovers: Vec<_> = cgroup_dirs(name).into_iter().filter(|p| p.exists()).collect();
    if !status.success() || !leftovers.is_empty() {
        bail!("node world cleanup left cgroups behind: {leftovers:?}");
    }
    Ok(())
}

/// `/sys/fs/cgroup/<hierarchy>/<name>` for every hierarchy.
fn cgroup_dirs(name: &str) -> Vec<PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup")
        .map(|entries| entries.flatten().map(|e| e.path().join(name)).collect())
        .unwrap_or_default()
}

/// A shell that runs [`CLEANUP`] once this process is gone; ignores the terminal's signals.
fn spawn_janitor(name: &str, dir: &Path, keep: bool) -> Result<std::process::Child> {
    let script =
        format!("trap '' INT TERM HUP\nwhile kill -0 \"$4\" 2>/dev/null; do sleep 1; done\n{CLEANUP}");
    Command::new("sh")
        .args(["-c", &script, "regcreds-node-janitor", name])
        .arg(dir)
        .arg(if keep { "keep" } else { "" })
        .arg(std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the node world's janitor")
}

fn require_root() -> Result<()> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1));
    if uid != Some("0") {
        bail!(
            "a node world needs root (network, mount and PID namespaces, mounts, cgroups); run the node \
             tests as root, as CI does (`cargo xtask test`)"
        );
    }
    Ok(())
}
