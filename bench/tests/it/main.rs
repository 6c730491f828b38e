//! The bench crate's integration tests, one binary: the flood and storm
//! suites' correctness checks and the Nchan integration test (`make test-nchan`).

mod flood;
mod nchan;
mod storm;
