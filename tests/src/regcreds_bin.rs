//! The regcreds binary that end-to-end tests run as a child process.
//!
//! Cargo builds binaries only for integration tests of their own package, so this test kit builds it:
//! once per test process, `cargo build -p regcreds --bin regcreds` into the target directory and
//! profile of the running test binary. That is a sub-second no-op when up to date and means a test
//! never runs a stale binary. `$REGCREDS_BINARY` skips the build and uses the given file.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

/// Environment variable naming a prebuilt regcreds binary to use instead of building one.
pub const REGCREDS_BINARY_ENV: &str = "REGCREDS_BINARY";

/// Path of the regcreds binary, built (or rebuilt) on first call; panics if the build fails.
pub fn regcreds_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(locate_or_build).clone()
}

fn locate_or_build() -> PathBuf {
    if let Some(path) = std::env::var_os(REGCREDS_BINARY_ENV) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "${REGCREDS_BINARY_ENV} = {} is not a file",
            path.display()
        );
        return path;
    }
    let profile_dir = profile_dir();
    build(&profile_dir);
    let path = profile_dir.join("regcreds");
    assert!(
        path.is_file(),
        "cargo built regcreds but {} does not exist",
        path.display()
    );
    path
}

/// `regcreds` (the binary under test) with a clean environment but for `KUBECONFIG`: add the
/// subcommand, its flags and variables. `regcreds run` as a process: [`crate::Regcreds`].
pub fn regcreds_command(kubeconfig: &Path) -> Command {
    let mut cmd = regcreds_clean_command();
    cmd.env("KUBECONFIG", kubeconfig);
    cmd
}

/// `regcreds` with an empty environment, for what needs no cluster (`mint`, `check`, `--help`: clap
/// prints the value of a set variable in the help, so none may leak in from the test's environment).
pub fn regcreds_clean_command() -> Command {
    let mut cmd = Command::new(regcreds_binary());
    cmd.env_clear();
    cmd
}

/// `target/<profile>` of the running executable (a test in `deps/`, or xtask itself).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("path of the running executable");
    let dir = exe.parent().expect("executable has a directory");
    let dir = if dir.ends_with("deps") {
        dir.parent().expect("deps has a parent")
    } else {
        dir
    };
    dir.to_path_buf()
}

fn build(profile_dir: &Path) {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev",
        Some(other) => other,
    };
    let target_dir = profile_dir
        .parent()
        .expect("profile dir is inside the target dir");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "-p",
            "regcreds",
            "--bin",
            "regcreds",
            "--profile",
            profile,
        ])
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(workspace)
        .status()
        .expect("running cargo to build regcreds");
    assert!(
        status.success(),
        "`cargo build -p regcreds` failed ({status}); see its output above"
    );
}
