//! The vantage hub: TLS pub/sub with client-certificate identity, enrolment CA, job log and results.
