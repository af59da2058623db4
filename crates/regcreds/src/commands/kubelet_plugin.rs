//! `regcreds kubelet-plugin install | pause`: what the chart's DaemonSet (`kubeletPlugin.enabled`) runs on
//! every node, from the regcreds image alone.
//!
//! ```text
//!  init container  install ── PLUGIN_SOURCE (/regcreds) ─copy─▶ <bin dir>/.<name>.<pid>.tmp ─rename─▶ <bin dir>/<name>   0755
//!                           ── config head (ConfigMap) + env list (RC_ENV_<NAME> of each name in PLUGIN_ENV)
//!                                        ─write─▶ <config dir>/.<file>.<pid>.tmp ─rename─▶ <config dir>/<file>   0600
//!  container       pause ── until SIGTERM: the pod is Ready once install succeeded
//! ```
//!
//! rename(2) is atomic within a filesystem, so the kubelet never execs or reads a half-written file; the
//! temporary names do not end in .json, .yaml or .yml, which a kubelet reading the whole directory skips
//! (k8s.io/kubernetes pkg/credentialprovider/plugin/config.go, readCredentialProviderConfig). A file that
//! already holds the same bytes is left alone (its mode is set), so a restarted pod changes nothing. The
//! kubelet execs `<bin dir>/<name>` for every matching pull (exec.LookPath in
//! RegisterCredentialProviderPlugins): a new binary takes effect at once, a new config at the kubelet's
//! next start.

use std::{
    fs::{self, File, OpenOptions, Permissions},
    io::{BufRead, Write},
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, bail};

/// `regcreds kubelet-plugin ...`
#[derive(clap::Subcommand, Debug)]
pub enum KubeletPluginCommand {
    /// Install this binary and its CredentialProviderConfig into the kubelet's host directories (the
    /// DaemonSet's init container).
    Install(InstallArgs),
    /// Wait until terminated (the DaemonSet's container: its pod is Ready once the install succeeded).
    Pause,
}

/// Arguments of `regcreds kubelet-plugin install`, set by the chart as variables.
#[derive(clap::Args, Debug)]
pub struct InstallArgs {
    /// The provider's name: the executable's name in the bin directory.
    #[arg(long, env = "PLUGIN_NAME", default_value = "regcreds")]
    pub name: String,
    /// The binary to install; default: this one.
    #[arg(long, env = "PLUGIN_SOURCE")]
    pub source: Option<PathBuf>,
    /// The kubelet's --image-credential-provider-bin-dir, mounted from the host.
    #[arg(long, env = "PLUGIN_BIN_DIR")]
    pub bin_dir: PathBuf,
    /// The directory of the config file, mounted from the host.
    #[arg(long, env = "PLUGIN_CONFIG_DIR")]
    pub config_dir: PathBuf,
    /// The config file's name in it.
    #[arg(long, env = "PLUGIN_CONFIG_FILE")]
    pub config_file: String,
    /// The rendered config up to the provider's env list (a file of the chart's ConfigMap).
    #[arg(long, env = "PLUGIN_CONFIG_HEAD")]
    pub config_head: PathBuf,
    /// Names of the variables for the provider's env list, separated by spaces; the value of NAME is in
    /// RC_ENV_NAME, so that PATH or HOME in the list cannot change this process.
    #[arg(long, env = "PLUGIN_ENV", default_value = "")]
    pub env: String,
}

/// Runs `regcreds kubelet-plugin ...`.
pub async fn kubelet_plugin(command: KubeletPluginCommand) -> ExitCode {
    match command {
        KubeletPluginCommand::Install(args) => match install(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("regcreds kubelet plugin: {error:#}");
                ExitCode::FAILURE
            }
        },
        KubeletPluginCommand::Pause => pause().await,
    }
}

fn install(args: &InstallArgs) -> anyhow::Result<()> {
    let source = match &args.source {
        Some(source) => source.clone(),
        None => std::env::current_exe().context("finding this binary (set PLUGIN_SOURCE)")?,
    };
    if !source.is_file() {
        bail!("PLUGIN_SOURCE {} does not exist", source.display());
    }
    if args.name.is_empty() || args.name.contains(['/', ' ']) || args.name.starts_with('.') {
        bail!(
            "PLUGIN_NAME {:?} is not a file name the kubelet can look up",
            args.name
        );
    }
    let head = fs::read_to_string(&args.config_head)
        .with_context(|| format!("PLUGIN_CONFIG_HEAD {} cannot be read", args.config_head.display()))?;
    let config = head + &env_list(&args.env)?;
    for dir in [&args.bin_dir, &args.config_dir] {
        if !dir.is_dir() {
            bail!("{} is not a directory (the hostPath mount?)", dir.display());
        }
    }
    // NB: the binary is streamed, never held in memory: the container's limit is 64 MiB.
    place(
        &args.bin_dir.join(&args.name),
        0o755,
        "binary",
        |target| same_files(&source, target),
        |file| {
            let mut from = File::open(&source)?;
            std::io::copy(&mut from, file).map(drop)
        },
    )?;
    place(
        &args.config_dir.join(&args.config_file),
        0o600,
        "config",
        |target| Ok(fs::read(target)? == config.as_bytes()),
        |file| file.write_all(config.as_bytes()),
    )?;
    println!(
        "installed: the kubelet reads {} only when it starts; restart it after a change of the config",
        args.config_dir.join(&args.config_file).display()
    );
    Ok(())
}

/// The env list of the variables `names` (PLUGIN_ENV) names, each from RC_ENV_<NAME>.
fn env_list(names: &str) -> anyhow::Result<String> {
    let mut env = Vec::new();
    for name in names.split_whitespace() {
        let holder = format!("RC_ENV_{name}");
        let value =
            std::env::var(&holder).with_context(|| format!("{holder} (the value of {name}) is not set"))?;
        env.push((name.to_string(), value));
    }
    regcreds_kubelet_plugin::env_list_yaml(env.iter().map(|(n, v)| (n.as_str(), v.as_str())))
        .context("PLUGIN_ENV")
}

/// `target` with `mode`, written by `write` into a temporary file in its directory that is then renamed over
/// it; nothing is written when `same` finds that `target` already holds those contents.
fn place(
    target: &Path,
    mode: u32,
    what: &str,
    same: impl FnOnce(&Path) -> std::io::Result<bool>,
    write: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    if same(target).unwrap_or(false) {
        fs::set_permissions(target, Permissions::from_mode(mode))
            .with_context(|| format!("setting the mode of {}", target.display()))?;
        println!("{what} {} is up to date", target.display());
        return Ok(());
    }
    let dir = target.parent().context("a target has a directory")?;
    let name = target
        .file_name()
        .context("a target has a name")?
        .to_string_lossy();
    let temporary = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = write_synced(&temporary, mode, write).and_then(|()| {
        fs::rename(&temporary, target).with_context(|| format!("renaming over {}", target.display()))
    });
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written?;
    println!("{what} {} written", target.display());
    Ok(())
}

/// A new file with `mode` from the start (never readable by others, even briefly), filled by `write`, then
/// flushed to disk.
fn write_synced(
    path: &Path,
    mode: u32,
    write: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let mut file: File = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode & 0o700)
        .open(path)
        .with_context(|| {
            format!(
                "creating {} (a writable hostPath mount? its SELinux label?)",
                path.display()
            )
        })?;
    write(&mut file)
        .and_then(|()| file.set_permissions(Permissions::from_mode(mode)))
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// Whether two files hold the same bytes, read a block at a time.
fn same_files(a: &Path, b: &Path) -> std::io::Result<bool> {
    let (a, b) = (File::open(a)?, File::open(b)?);
    if a.metadata()?.len() != b.metadata()?.len() {
        return Ok(false);
    }
    let (mut a, mut b) = (std::io::BufReader::new(a), std::io::BufReader::new(b));
    loop {
        let (chunk_a, chunk_b) = (a.fill_buf()?, b.fill_buf()?);
        let n = chunk_a.len().min(chunk_b.len());
        if n == 0 {
            return Ok(chunk_a.len() == chunk_b.len());
        }
        if chunk_a[..n] != chunk_b[..n] {
            return Ok(false);
        }
        a.consume(n);
        b.consume(n);
    }
}

/// Waits for SIGTERM or SIGINT, then exits 0.
async fn pause() -> ExitCode {
    let Ok(mut terminate) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
        return ExitCode::FAILURE;
    };
    let interrupt = tokio::signal::ctrl_c();
    // NB: printed once both handlers are in place: from here a SIGTERM ends the wait with 0.
    println!("regcreds kubelet plugin: pausing until SIGTERM");
    tokio::select! {
        _ = terminate.recv() => {},
        _ = interrupt => {},
    }
    ExitCode::SUCCESS
}
