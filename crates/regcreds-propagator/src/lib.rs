//! regcreds-propagator (work in progress).
