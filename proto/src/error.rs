//! The error type of the protocol crate.

use thiserror::Error;

/// Why a message, argument or name is not acceptable.
///
/// Every variant says what was wrong in words meant for the person who sent it.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ProtoError {
    /// The bytes are not the JSON the protocol expects.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A value is present but not allowed.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field, in the protocol's spelling (e.g. `probe.args.port`).
        field: String,
        /// What is wrong and what would be accepted.
        reason: String,
    },
    /// The probe command is not in the catalog.
    #[error(
        "unknown probe command {0:?}: expected one of dns, http, tls, tcp, ping, traceroute (or dnslookup)"
    )]
    UnknownCommand(String),
    /// A JSON value cannot be put in canonical form (floats, huge integers, duplicate keys).
    #[error("cannot form the signed byte form: {0}")]
    NotCanonical(String),
    /// A key or signature is not well-formed.
    #[error("bad key or signature: {0}")]
    Crypto(String),
}

impl ProtoError {
    /// A stable short code for programs (API error bodies, refusals).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::Invalid { .. } => "invalid",
            Self::UnknownCommand(_) => "unknown-command",
            Self::NotCanonical(_) => "not-canonical",
            Self::Crypto(_) => "bad-key-or-signature",
        }
    }

    /// Shorthand for [`ProtoError::Invalid`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<serde_json::Error> for ProtoError {
    fn from(e: serde_json::Error) -> Self {
        Self::Malformed(e.to_string())
    }
}
