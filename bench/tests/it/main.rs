//! The bench crate's integration tests, one binary: the flood suite's
//! correctness check and the Nchan integration test (`make test-nchan`).

mod flood;
mod nchan;
