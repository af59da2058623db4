//! Running commands and timing sections: the plumbing every task shares.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

/// The workspace root (xtask's manifest lives one level below it).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_path_buf()
}

/// `cargo`, the same one that runs xtask.
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(repo_root());
    cmd
}

/// Prints `cmd`, runs it with inherited output, and fails unless it succeeds.
pub fn run(cmd: &mut Command) -> Result<()> {
    println!("$ {}", display(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("starting `{}`", display(cmd)))?;
    if !status.success() {
        bail!("`{}` failed ({status})", display(cmd));
    }
    Ok(())
}

/// Runs `body` under a `==> title` header and reports how long it took (also when it fails).
pub fn section<T>(title: &str, body: impl FnOnce() -> Result<T>) -> (Result<T>, Duration) {
    println!("\n==> {title}");
    let started = Instant::now();
    let result = body();
    let elapsed = started.elapsed();
    let outcome = if result.is_ok() { "done" } else { "FAILED" };
    println!("<== {title}: {outcome} in {}", human(elapsed));
    (result, elapsed)
}

/// `1m 02s` / `4.2s`.
pub fn human(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 60 {
        format!("{}m {:02}s", secs / 60, secs % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

fn display(cmd: &Command) -> String {
    let envs = cmd
        .get_envs()
        .filter_map(|(k, v)| Some(format!("{}={}", k.to_string_lossy(), v?.to_string_lossy())));
    // `cargo`, not the toolchain's full path: shorter, and what a human would type.
    let program = Path::new(cmd.get_program())
        .file_name()
        .unwrap_or(cmd.get_program());
    let words = std::iter::once(program)
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned());
    envs.chain(words).collect::<Vec<_>>().join(" ")
}
