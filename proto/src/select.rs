//! Target selection: which nodes a job is for.
//!
//! JSON form (signed as part of the job): `"everyone"`, `{"node": id}`,
//! `{"country": "DE"}`, `{"continent": "EU"}`, `{"asn": 3320}`,
//! `{"tag": "fiber"}`, `{"cap": "ipv6"}`, `{"and": [...]}`, `{"or": [...]}`.
//! Text form for people: `country=DE or (continent=SA and tag=fiber)`;
//! `and` binds tighter than `or`. `cap=ipv4` / `cap=ipv6` select nodes by
//! what they measured and reported in their heartbeat, not by what they declared.

use crate::ProtoError;
use crate::channel::{self, NodeAttrs};
use crate::node::{Capabilities, Capability};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A target selection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Selection {
    /// Every node.
    Everyone,
    /// One node by id.
    Node(String),
    /// Nodes in a country.
    Country(String),
    /// Nodes on a continent.
    Continent(String),
    /// Nodes in an autonomous system.
    Asn(u32),
    /// Nodes with a tag.
    Tag(String),
    /// Nodes that reported this capability.
    Cap(Capability),
    /// Nodes matching all of these.
    And(Vec<Selection>),
    /// Nodes matching any of these.
    Or(Vec<Selection>),
}

/// Deepest nesting accepted, so a hostile selection cannot exhaust the stack.
const MAX_DEPTH: usize = 8;
/// Most atoms in one selection.
const MAX_ATOMS: usize = 64;

impl Selection {
    /// Whether a node with these attributes and capabilities is targeted.
    /// A node whose capabilities are unknown (`None`: not measured yet, or
    /// an agent from before them) has none.
    pub fn matches(&self, node: &NodeAttrs, caps: Option<&Capabilities>) -> bool {
        match self {
            Self::Everyone => true,
            Self::Node(id) => node.node_id == *id,
            Self::Country(c) => node.country == *c,
            Self::Continent(c) => node.continent.as_deref() == Some(c.as_str()),
            Self::Asn(a) => node.asn == Some(*a),
            Self::Tag(t) => node.tags.iter().any(|x| x == t),
            Self::Cap(c) => caps.is_some_and(|k| k.has(*c)),
            Self::And(all) => all.iter().all(|s| s.matches(node, caps)),
            Self::Or(any) => any.iter().any(|s| s.matches(node, caps)),
        }
    }

    /// Validates names, codes, size and depth.
    pub fn validate(&self) -> Result<(), ProtoError> {
        let mut atoms = 0;
        self.validate_inner(0, &mut atoms)
    }

    fn validate_inner(&self, depth: usize, atoms: &mut usize) -> Result<(), ProtoError> {
        if depth > MAX_DEPTH {
            return Err(ProtoError::invalid(
                "select",
                format!("nested deeper than {MAX_DEPTH}"),
            ));
        }
        match self {
            Self::And(v) | Self::Or(v) => {
                if v.is_empty() {
                    return Err(ProtoError::invalid(
                        "select",
                        "and/or need at least one member",
                    ));
                }
                v.iter()
                    .try_for_each(|s| s.validate_inner(depth + 1, atoms))
            }
            atom => {
                *atoms += 1;
                if *atoms > MAX_ATOMS {
                    return Err(ProtoError::invalid(
                        "select",
                        format!("more than {MAX_ATOMS} terms"),
                    ));
                }
                match atom {
                    Self::Node(id) => channel::validate_node_id(id),
                    Self::Country(c) => channel::validate_country(c),
                    Self::Continent(c) => channel::validate_continent(c),
                    Self::Tag(t) => channel::validate_tag(t),
                    _ => Ok(()),
                }
            }
        }
    }

    /// Channels on which publishing reaches every targeted node (and perhaps others,
    /// who refuse by evaluating [`Selection::matches`] themselves).
    pub fn channels(&self) -> Vec<String> {
        let mut out = match self {
            Self::Everyone => vec!["all".to_string()],
            Self::Node(id) => vec![format!("node.{id}")],
            Self::Country(c) => vec![format!("cc.{c}")],
            Self::Continent(c) => vec![format!("ct.{c}")],
            Self::Asn(a) => vec![format!("asn.{a}")],
            Self::Tag(t) => vec![format!("tag.{t}")],
            // No channel per capability: capabilities change without a new subscription.
            Self::Cap(_) => vec!["all".to_string()],
            Self::Or(v) => v.iter().flat_map(Selection::channels).collect(),
            // Any one member's channels cover the intersection; the narrowest is cheapest.
            Self::And(v) => v
                .iter()
                .map(Selection::channels)
                .min_by_key(|c| (c.contains(&"all".to_string()), c.len()))
                .unwrap_or_else(|| vec!["all".to_string()]),
        };
        out.sort();
        out.dedup();
        if out.len() > 1 && out.iter().any(|c| c == "all") {
            return vec!["all".to_string()];
        }
        out
    }

    /// Parses the text form.
    pub fn parse(text: &str) -> Result<Self, ProtoError> {
        let tokens = tokenize(text)?;
        let mut p = Parser {
            tokens,
            pos: 0,
            depth: 0,
        };
        let sel = p.or_expr()?;
        if p.pos != p.tokens.len() {
            return Err(ProtoError::invalid(
                "selection",
                format!(
                    "unexpected {:?} after a complete expression",
                    p.tokens[p.pos]
                ),
            ));
        }
        sel.validate()?;
        Ok(sel)
    }
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Everyone => f.write_str("everyone"),
            Self::Node(x) => write!(f, "node={x}"),
            Self::Country(x) => write!(f, "country={x}"),
            Self::Continent(x) => write!(f, "continent={x}"),
            Self::Asn(x) => write!(f, "asn={x}"),
            Self::Tag(x) => write!(f, "tag={x}"),
            Self::Cap(x) => write!(f, "cap={x}"),
            Self::And(v) | Self::Or(v) => {
                let sep = if matches!(self, Self::And(_)) {
                    " and "
                } else {
                    " or "
                };
                for (i, s) in v.iter().enumerate() {
                    if i > 0 {
                        f.write_str(sep)?;
                    }
                    if matches!(s, Self::And(_) | Self::Or(_)) {
                        write!(f, "({s})")?;
                    } else {
                        write!(f, "{s}")?;
                    }
                }
                Ok(())
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    And,
    Or,
    Everyone,
    Term(String, String),
}

fn tokenize(text: &str) -> Result<Vec<Token>, ProtoError> {
    let spaced = text.replace('(', " ( ").replace(')', " ) ");
    spaced
        .split_whitespace()
        .map(|w| {
            Ok(match w.to_ascii_lowercase().as_str() {
                "(" => Token::Open,
                ")" => Token::Close,
                "and" | "&&" => Token::And,
                "or" | "||" => Token::Or,
                "everyone" | "all" => Token::Everyone,
                _ => {
                    let (k, v) = w.split_once('=').ok_or_else(|| {
                        ProtoError::invalid(
                            "selection",
                            format!(
                                "{w:?} is not key=value (keys: node, country, continent, asn, tag, cap)"
                            ),
                        )
                    })?;
                    Token::Term(k.to_ascii_lowercase(), v.to_string())
                }
            })
        })
        .collect()
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn or_expr(&mut self) -> Result<Selection, ProtoError> {
        let mut items = vec![self.and_expr()?];
        while self.peek() == Some(&Token::Or) {
            self.pos += 1;
            items.push(self.and_expr()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Selection::Or(items)
        })
    }

    fn and_expr(&mut self) -> Result<Selection, ProtoError> {
        let mut items = vec![self.atom()?];
        while self.peek() == Some(&Token::And) {
            self.pos += 1;
            items.push(self.atom()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Selection::And(items)
        })
    }

    fn atom(&mut self) -> Result<Selection, ProtoError> {
        let tok = self.tokens.get(self.pos).cloned().ok_or_else(|| {
            ProtoError::invalid(
                "selection",
                "ends where a term such as country=DE was expected",
            )
        })?;
        self.pos += 1;
        match tok {
            Token::Everyone => Ok(Selection::Everyone),
            Token::Open => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(ProtoError::invalid("selection", "too deeply nested"));
                }
                let inner = self.or_expr()?;
                if self.peek() != Some(&Token::Close) {
                    return Err(ProtoError::invalid("selection", "a '(' is not closed"));
                }
                self.pos += 1;
                self.depth -= 1;
                Ok(inner)
            }
            Token::Term(k, v) => match k.as_str() {
                "node" => Ok(Selection::Node(v)),
                "country" | "cc" => Ok(Selection::Country(v.to_ascii_uppercase())),
                "continent" | "ct" => Ok(Selection::Continent(v.to_ascii_uppercase())),
                "asn" | "as" => v
                    .trim_start_matches(['A', 'S', 'a', 's'])
                    .parse()
                    .map(Selection::Asn)
                    .map_err(|_| {
                        ProtoError::invalid("selection", format!("asn={v} is not a number"))
                    }),
                "tag" => Ok(Selection::Tag(v)),
                "cap" => Capability::parse(&v).map(Selection::Cap).ok_or_else(|| {
                    ProtoError::invalid(
                        "selection",
                        format!("cap={v} is not a capability (ipv4, ipv6)"),
                    )
                }),
                other => Err(ProtoError::invalid(
                    "selection",
                    format!(
                        "unknown key {other:?} (keys: node, country, continent, asn, tag, cap)"
                    ),
                )),
            },
            other => Err(ProtoError::invalid(
                "selection",
                format!("unexpected {other:?}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn node(id: &str, cc: &str, ct: &str, asn: u32, tags: &[&str]) -> NodeAttrs {
        NodeAttrs {
            node_id: id.into(),
            country: cc.into(),
            continent: Some(ct.into()),
            asn: Some(asn),
            tags: tags.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn parses_with_precedence() {
        let s = Selection::parse("country=DE or continent=sa and tag=fiber").unwrap();
        assert_eq!(
            s,
            Selection::Or(vec![
                Selection::Country("DE".into()),
                Selection::And(vec![
                    Selection::Continent("SA".into()),
                    Selection::Tag("fiber".into())
                ]),
            ])
        );
        assert_eq!(Selection::parse(&s.to_string()).unwrap(), s);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(
            json,
            json!({"or": [{"country": "DE"}, {"and": [{"continent": "SA"}, {"tag": "fiber"}]}]})
        );
        assert_eq!(
            serde_json::to_value(Selection::Everyone).unwrap(),
            json!("everyone")
        );
    }

    #[test]
    fn matches_nodes() {
        let de = node("n-1", "DE", "EU", 3320, &["fiber"]);
        let br = node("n-2", "BR", "SA", 28573, &[]);
        let s = Selection::parse("(country=DE and asn=3320) or node=n-2").unwrap();
        assert!(s.matches(&de, None) && s.matches(&br, None));
        let s = Selection::parse("continent=EU and tag=dsl").unwrap();
        assert!(!s.matches(&de, None));
        assert_eq!(s.channels(), ["ct.EU"]);
        assert_eq!(
            Selection::parse("cc=DE or everyone").unwrap().channels(),
            ["all"]
        );
    }

    #[test]
    fn capabilities_select_by_what_nodes_reported() {
        let de = node("n-1", "DE", "EU", 3320, &[]);
        let v4 = Capabilities {
            ipv4: true,
            ipv6: false,
        };
        let both = Capabilities {
            ipv4: true,
            ipv6: true,
        };
        let s = Selection::parse("country=DE and CAP=IPv6").unwrap();
        assert_eq!(
            s,
            Selection::And(vec![
                Selection::Country("DE".into()),
                Selection::Cap(Capability::Ipv6)
            ])
        );
        assert_eq!(s.to_string(), "country=DE and cap=ipv6");
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            json!({"and": [{"country": "DE"}, {"cap": "ipv6"}]})
        );
        assert_eq!(s.channels(), ["cc.DE"]);
        assert_eq!(Selection::parse("cap=ipv4").unwrap().channels(), ["all"]);
        for (caps, want) in [(None, false), (Some(&v4), false), (Some(&both), true)] {
            assert_eq!(s.matches(&de, caps), want, "{caps:?}");
        }
        assert!(
            Selection::parse("cap=ipv4")
                .unwrap()
                .matches(&de, Some(&v4))
        );
    }

    #[test]
    fn errors_are_clear() {
        for (text, want) in [
            ("country=Germany", "not a two-letter"),
            ("(country=DE", "not closed"),
            ("planet=mars", "unknown key"),
            ("country=DE or", "ends where"),
            ("asn=x", "not a number"),
            ("cap=ipx", "not a capability"),
            ("country=DE)", "unexpected"),
        ] {
            let e = Selection::parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    proptest! {
        #[test]
        fn parser_never_panics(s in "[a-z=() A-Z0-9]{0,60}") {
            let _ = Selection::parse(&s);
        }
    }
}
