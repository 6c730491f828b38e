//! The vantage hub: TLS pub/sub with client-certificate identity, enrolment CA, job log and results.
pub mod datadir;
pub mod db;
pub mod pki;
pub mod tokens;
