//! regcreds-acr (work in progress).
