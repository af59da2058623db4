//! Test harness (work in progress).
