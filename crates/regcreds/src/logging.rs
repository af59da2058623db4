//! Tracing setup: plain or JSON lines on stderr, filtered by `--log-level`.

use tracing_subscriber::{EnvFilter, filter::Directive, fmt};

use crate::cli::{LogArgs, LogFormat};

/// kube-client logs an ERROR for every failed request (`failed with error client error (Connect)`), which
/// floods the log while the API server is away. regcreds reports those failures itself, with the server
/// and what happens next (`kube_client`), so this target is off unless the filter names kube_client.
const KUBE_CLIENT_REQUEST_ERRORS: &str = "kube_client::client::builder=off";

/// Installs the global subscriber. A bad filter falls back to `info` with a warning, never a crash.
pub fn init(args: &LogArgs) {
    let level = if args.debug() && args.log_level == "info" {
        "debug"
    } else {
        args.log_level.as_str()
    };
    let (mut filter, bad_filter) = match EnvFilter::try_new(level) {
        Ok(filter) => (filter, None),
        Err(error) => (EnvFilter::new("info"), Some(error)),
    };
    if !level.contains("kube_client")
        && let Ok(directive) = KUBE_CLIENT_REQUEST_ERRORS.parse::<Directive>()
    {
        filter = filter.add_directive(directive);
    }
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // NB: colour codes only on a terminal; `kubectl logs` and log shippers would store them verbatim.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    match args.log_format {
        LogFormat::Plain => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).init(),
    }
    if let Some(error) = bad_filter {
        tracing::warn!(%error, filter = %args.log_level, "invalid REGCREDS_LOG filter, using info");
    }
}
