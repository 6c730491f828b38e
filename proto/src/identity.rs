//! Who a caller is, as written in its certificate's SAN URI.
//!
//! The hub derives identity and role only from the verified client certificate,
//! never from a request body or header.

use crate::ProtoError;
use crate::channel::validate_node_id;
use std::fmt;

/// A caller's role and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Role {
    /// A node, by id.
    Node(String),
    /// An operator, by name.
    Operator(String),
}

const NODE_PREFIX: &str = "vantage:node:";
const OPERATOR_PREFIX: &str = "vantage:operator:";

impl Role {
    /// The SAN URI that encodes this role in a certificate.
    pub fn san_uri(&self) -> String {
        match self {
            Self::Node(id) => format!("{NODE_PREFIX}{id}"),
            Self::Operator(name) => format!("{OPERATOR_PREFIX}{name}"),
        }
    }

    /// Reads a role from a SAN URI.
    pub fn from_san_uri(uri: &str) -> Result<Self, ProtoError> {
        if let Some(id) = uri.strip_prefix(NODE_PREFIX) {
            validate_node_id(id)?;
            Ok(Self::Node(id.to_string()))
        } else if let Some(name) = uri.strip_prefix(OPERATOR_PREFIX) {
            validate_operator_name(name)?;
            Ok(Self::Operator(name.to_string()))
        } else {
            Err(ProtoError::invalid(
                "certificate",
                format!("SAN URI {uri:?} names no vantage role"),
            ))
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Node(id) => write!(f, "node {id}"),
            Self::Operator(n) => write!(f, "operator {n}"),
        }
    }
}

/// Checks an operator name: 1-64 of `a-z A-Z 0-9 . _ -`.
pub fn validate_operator_name(name: &str) -> Result<(), ProtoError> {
    if !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        Ok(())
    } else {
        Err(ProtoError::invalid(
            "operator name",
            format!("{name:?} must be 1-64 of A-Z a-z 0-9 . _ -"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for r in [Role::Node("n-1".into()), Role::Operator("alice".into())] {
            assert_eq!(Role::from_san_uri(&r.san_uri()).unwrap(), r);
        }
        assert!(Role::from_san_uri("vantage:node:N!").is_err());
        assert!(Role::from_san_uri("spiffe://x").is_err());
    }
}
