//! `regcreds_fakes`: what regcreds' tests talk to instead of the real services, in one place for the
//! provider crates' tests and the end-to-end suites alike.
//!
//! ```text
//!  process      python tests/fixtures/<fake>.py ──READY <port>──▶ FixtureProcess (request log, stop on drop)
//!  github_quay  fake_github_quay.py (HTTPS): GitHub installation tokens, Quay robot federation
//!  ports        free loopback ports (the e2e kit and xtask use them too)
//!  registry     distribution (Debian docker-registry) + htpasswd or a token server, TLS, demo/hello:v1
//!  tokens       ServiceAccount tokens as the kubelet passes them to a credential provider plugin
//! ```
//!
//! The Python fakes themselves stay in `tests/fixtures/`, next to the ones moto and the cloud fakes use.

pub mod github_quay;
pub mod ports;
pub mod process;
pub mod registry;
pub mod tokens;
