//! regcreds-gcr (work in progress).
