//! regcreds-verify (work in progress).
