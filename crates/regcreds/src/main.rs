//! `regcreds`: wires providers, the refresh scheduler and the propagator together.
#![forbid(unsafe_code)]

mod admin;
mod cli;
mod commands;
mod config;
mod events;
mod healing;
mod kube_client;
mod leader;
mod logging;
mod metrics;
mod rbac;
mod refresh;
mod stop;

use std::process::ExitCode;

/// Exit code for invalid configuration (nothing was written anywhere).
const EXIT_CONFIG: u8 = 2;

// NB: one thread. regcreds needs a fraction of a core even while fanning a rotation out to 10,000
// namespaces. With a worker per core every HTTP response crossed threads: on 2 cores, futex and
// scheduler work in the kernel was 37% of regcreds' CPU during a rotation (perf). One worker still left
// the controller and the watches on the main thread and the reconciles and connections on the worker,
// handing every response and watch event across. Same build, back to back (`cargo xtask bench
// --namespaces 2000`): regcreds' CPU per rotation 0.33 s with one worker, 0.22 s on one thread; CPU the
// apiserver gets instead. Blocking work (DNS, file reads) still goes to tokio's blocking pool.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = cli::parse();
    let log_problems = cli.log.problems();
    if !log_problems.is_empty() {
        return commands::config_failure(&log_problems);
    }
    logging::init(&cli.log);
    commands::dispatch(cli.command).await
}
