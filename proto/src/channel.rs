//! Channel names: where the hub publishes and what a node subscribes to.
//!
//! `all`, `node.<id>`, `cc.<ISO 3166-1 alpha-2>`, `ct.<continent>`,
//! `asn.<number>`, `tag.<tag>`. Names are short and URL-safe so they can be
//! joined with commas into one subscriber URL (the hub's and Nchan's).

use crate::ProtoError;
use serde::{Deserialize, Serialize};

/// Continent codes: Africa, Antarctica, Asia, Europe, North America, Oceania, South America.
pub const CONTINENTS: [&str; 7] = ["AF", "AN", "AS", "EU", "NA", "OC", "SA"];

/// The most channels one subscription may carry (Nchan's multiplexing limit).
pub const MAX_CHANNELS_PER_SUBSCRIPTION: usize = 255;

/// What the network knows about a node, for targeting.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NodeAttrs {
    /// Node id assigned at enrolment.
    pub node_id: String,
    /// ISO 3166-1 alpha-2 country code, upper case.
    pub country: String,
    /// Continent code, one of [`CONTINENTS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continent: Option<String>,
    /// Autonomous system number of the node's uplink, if declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    /// Free tags (`[a-z0-9][a-z0-9-]{0,31}`).
    #[serde(default)]
    pub tags: Vec<String>,
}

impl NodeAttrs {
    /// Validates every attribute.
    pub fn validate(&self) -> Result<(), ProtoError> {
        validate_node_id(&self.node_id)?;
        validate_country(&self.country)?;
        if let Some(c) = &self.continent {
            validate_continent(c)?;
        }
        for t in &self.tags {
            validate_tag(t)?;
        }
        Ok(())
    }

    /// The channels this node subscribes to: `all`, its own, and one per attribute.
    pub fn channels(&self) -> Vec<String> {
        let mut out = vec!["all".to_string(), format!("node.{}", self.node_id)];
        out.push(format!("cc.{}", self.country));
        if let Some(c) = &self.continent {
            out.push(format!("ct.{c}"));
        }
        if let Some(a) = self.asn {
            out.push(format!("asn.{a}"));
        }
        out.extend(self.tags.iter().map(|t| format!("tag.{t}")));
        out
    }
}

/// Checks a node id: `[a-z0-9][a-z0-9-]{0,31}`.
pub fn validate_node_id(id: &str) -> Result<(), ProtoError> {
    if is_slug(id) {
        Ok(())
    } else {
        Err(ProtoError::invalid(
            "node id",
            format!("{id:?} must be 1-32 of a-z, 0-9 and '-', starting with a letter or digit"),
        ))
    }
}

/// Checks a tag: `[a-z0-9][a-z0-9-]{0,31}`.
pub fn validate_tag(tag: &str) -> Result<(), ProtoError> {
    if is_slug(tag) {
        Ok(())
    } else {
        Err(ProtoError::invalid(
            "tag",
            format!("{tag:?} must be 1-32 of a-z, 0-9 and '-', starting with a letter or digit"),
        ))
    }
}

/// Checks an ISO 3166-1 alpha-2 code (two upper-case letters).
pub fn validate_country(cc: &str) -> Result<(), ProtoError> {
    if cc.len() == 2 && cc.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(ProtoError::invalid(
            "country",
            format!("{cc:?} is not a two-letter upper-case ISO 3166 code such as DE"),
        ))
    }
}

/// Checks a continent code.
pub fn validate_continent(ct: &str) -> Result<(), ProtoError> {
    if CONTINENTS.contains(&ct) {
        Ok(())
    } else {
        Err(ProtoError::invalid(
            "continent",
            format!("{ct:?} is not one of {}", CONTINENTS.join(", ")),
        ))
    }
}

fn is_slug(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// Checks a channel name.
pub fn validate_channel(name: &str) -> Result<(), ProtoError> {
    let ok = match name.split_once('.') {
        None => name == "all",
        Some(("node", id)) => validate_node_id(id).is_ok(),
        Some(("cc", cc)) => validate_country(cc).is_ok(),
        Some(("ct", ct)) => validate_continent(ct).is_ok(),
        Some(("asn", n)) => {
            !n.is_empty()
                && n.len() <= 10
                && n.bytes().all(|b| b.is_ascii_digit())
                && n.parse::<u32>().is_ok()
        }
        Some(("tag", t)) => validate_tag(t).is_ok(),
        Some(_) => false,
    };
    if ok {
        Ok(())
    } else {
        Err(ProtoError::invalid(
            "channel",
            format!(
                "{name:?} is not a channel (all, node.<id>, cc.<CC>, ct.<CT>, asn.<n>, tag.<tag>)"
            ),
        ))
    }
}

/// Splits and validates a comma-separated channel list as found in a subscriber URL.
pub fn parse_channel_list(list: &str) -> Result<Vec<String>, ProtoError> {
    let names: Vec<String> = list.split(',').map(str::to_string).collect();
    if names.len() > MAX_CHANNELS_PER_SUBSCRIPTION {
        return Err(ProtoError::invalid(
            "channels",
            format!("at most {MAX_CHANNELS_PER_SUBSCRIPTION} channels in one subscription"),
        ));
    }
    for n in &names {
        validate_channel(n)?;
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_nodes_channels_are_valid() {
        let a = NodeAttrs {
            node_id: "n-0a1b2c3d4e".into(),
            country: "DE".into(),
            continent: Some("EU".into()),
            asn: Some(3320),
            tags: vec!["fiber".into()],
        };
        a.validate().unwrap();
        let ch = a.channels();
        assert_eq!(
            ch,
            [
                "all",
                "node.n-0a1b2c3d4e",
                "cc.DE",
                "ct.EU",
                "asn.3320",
                "tag.fiber"
            ]
        );
        assert_eq!(parse_channel_list(&ch.join(",")).unwrap(), ch);
    }

    #[test]
    fn bad_names_are_refused() {
        for bad in [
            "",
            "cc.de",
            "ct.XX",
            "asn.",
            "asn.99999999999",
            "tag.A",
            "node.",
            "x.y",
            "all,",
            "../etc",
        ] {
            assert!(parse_channel_list(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn validation_never_panics(s in ".{0,80}") {
            let _ = parse_channel_list(&s);
        }
    }
}
