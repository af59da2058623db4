//! `main` of a node test binary: libtest's command line and output, one shared world.
//!
//! Outside a world it re-runs its own binary inside a new one ([`super::run_in_world`]) with the same
//! arguments and exits with its status, so `cargo test --test node [FILTER] [-- --nocapture …]` works as
//! usual. Inside, every selected test runs on its own Tokio runtime against [`NodeWorld::shared`],
//! one test at a time by default (they share cluster-wide state); the world starts with the first
//! test and ends with the process.

use std::{ffi::OsString, future::Future, pin::Pin, process::ExitCode};

use libtest_mimic::{Arguments, Failed, Trial};

use super::{NodeWorld, inside_world, run_in_world};

/// What a node test returns: a future borrowing the world.
pub type NodeTestFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<()>> + 'a>>;

/// One node test: a name and an `async fn(&NodeWorld) -> anyhow::Result<()>`.
#[derive(Clone, Copy)]
pub struct NodeTest {
    name: &'static str,
    body: for<'a> fn(&'a NodeWorld) -> NodeTestFuture<'a>,
}

impl NodeTest {
    /// A test; use [`node_tests!`](crate::node_tests) rather than calling this.
    pub fn new(name: &'static str, body: for<'a> fn(&'a NodeWorld) -> NodeTestFuture<'a>) -> Self {
        Self { name, body }
    }
}

/// The list of node tests for [`harness`]: `node_tests![first_test, second_test]`, each an
/// `async fn(&NodeWorld) -> anyhow::Result<()>`.
#[macro_export]
macro_rules! node_tests {
    ($($test:ident),* $(,)?) => {
        vec![$($crate::node::NodeTest::new(stringify!($test), |world| Box::pin($test(world)))),*]
    };
}

/// Runs `tests` as described in the module docs; returns the process exit code.
pub fn harness(tests: Vec<NodeTest>) -> ExitCode {
    let mut args = Arguments::from_args();
    // Tests on one node share cluster-wide state (regcreds writes to every namespace): one at a time
    // unless `--test-threads` says otherwise.
    args.test_threads.get_or_insert(1);
    if inside_world() || args.list {
        return run_here(&args, tests);
    }
    let program = match std::env::current_exe() {
        Ok(program) => program,
        Err(e) => {
            eprintln!("cannot find this test binary: {e}");
            return ExitCode::FAILURE;
        }
    };
    let forwarded: Vec<OsString> = std::env::args_os().skip(1).collect();
    match run_in_world(&program, &forwarded) {
        Ok(status) => match status.code() {
            Some(0) => ExitCode::SUCCESS,
            Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            None => {
                eprintln!("the node world ended by a signal: {status}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("cannot run the node tests: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_here(args: &Arguments, tests: Vec<NodeTest>) -> ExitCode {
    let trials = tests
        .into_iter()
        .map(|test| Trial::test(test.name, move || run_one(test)))
        .collect();
    let conclusion = libtest_mimic::run(args, trials);
    if conclusion.has_failed() {
        eprintln!(
            "node world logs: $TMPDIR/regcreds-node-*/logs and .../tmp/regcreds-cp-*/logs; set {}=1 to keep them",
            super::KEEP_ENV
        );
    }
    conclusion.exit_code()
}

/// One test on its own runtime, like `#[tokio::test]`; errors and panics fail it.
fn run_one(test: NodeTest) -> Result<(), Failed> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failed::from(format!("building a Tokio runtime: {e}")))?;
    runtime.block_on(async {
        let world = NodeWorld::shared().await;
        let started = std::time::Instant::now();
        let outcome = (test.body)(world).await;
        // Printed before libtest's "ok": how long each test takes on the node, world start excluded.
        eprint!("[{:.1}s] ", started.elapsed().as_secs_f64());
        outcome.map_err(|e| Failed::from(format!("{e:?}")))
    })
}
