//! regcreds-ecr (work in progress).
