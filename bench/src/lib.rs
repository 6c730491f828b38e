//! Scale-out harness for vantage: the fan-out benchmark (the hub alone, nginx +
//! Nchan fed by the hub, Mosquitto) and the pieces the Nchan integration test
//! shares with it (network PKI, server processes, TLS clients); the flood
//! (hostile), result-ingest and reconnect-storm benchmarks.
pub mod client;
pub mod fanout;
pub mod hostile;
pub mod ingest;
pub mod mqtt;
pub mod pki;
pub mod procs;
pub mod servers;
pub mod storm;
