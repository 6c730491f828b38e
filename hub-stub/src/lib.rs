//! The vantage hub: TLS pub/sub with client-certificate identity, enrolment CA, job log and results.
pub mod api;
pub mod cli;
pub mod datadir;
pub mod db;
pub mod governance;
pub mod limits;
pub mod nchan;
pub mod pki;
pub mod server;
pub mod spread;
pub mod stream;
pub mod tokens;
