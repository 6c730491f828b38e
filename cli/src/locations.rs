//! `from LOCATIONS` of the one-line measurements, in Globalping's habit:
//! `,` is "or", `+` is "and"; each term is a country (code or English name),
//! a continent (code or name), `AS3320`, a tag, a node id, `world`, or a
//! capability the nodes measured (`ipv4`, `ipv6`: `DE+IPv6`). It
//! compiles to our selection language ([`Selection`]), so what runs is what
//! `-v` prints. A term that could mean two things is refused with the
//! candidates, each in the selection language, which is also accepted as a
//! term (`country=AS`, `continent=AS`) to say which one is meant.

use crate::error::{CliError, CliResult};
use std::collections::BTreeSet;
use vantage_proto::api::NodeEntry;
use vantage_proto::channel::CONTINENTS;
use vantage_proto::country;
use vantage_proto::node::Capability;
use vantage_proto::select::Selection;

/// Continent names as people write them, with the hub's codes.
const CONTINENT_NAMES: [(&str, &str); 7] = [
    ("africa", "AF"),
    ("antarctica", "AN"),
    ("asia", "AS"),
    ("europe", "EU"),
    ("northamerica", "NA"),
    ("oceania", "OC"),
    ("southamerica", "SA"),
];

/// The tags and node ids of the network, which terms may name.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// Every tag some node carries.
    pub tags: BTreeSet<String>,
    /// Every node id.
    pub nodes: BTreeSet<String>,
}

impl Known {
    /// From the hub's node list.
    pub fn from_nodes(nodes: &[NodeEntry]) -> Self {
        Self {
            tags: nodes.iter().flat_map(|n| n.tags.iter().cloned()).collect(),
            nodes: nodes.iter().filter_map(|n| n.id.clone()).collect(),
        }
    }
}

/// Compiles `LOCATIONS` (the words after `from`, joined by spaces).
pub fn compile(text: &str, known: &Known) -> CliResult<Selection> {
    let any = text
        .split(',')
        .map(|alt| {
            let all = alt
                .split('+')
                .map(|t| term(t.trim(), known))
                .collect::<CliResult<Vec<_>>>()?;
            Ok(one_or(all, Selection::And))
        })
        .collect::<CliResult<Vec<_>>>()?;
    let sel = one_or(any, Selection::Or);
    sel.validate()
        .map_err(|e| CliError::usage(format!("from {text}: {e}")))?;
    Ok(sel)
}

fn one_or(mut v: Vec<Selection>, many: fn(Vec<Selection>) -> Selection) -> Selection {
    if v.len() == 1 { v.remove(0) } else { many(v) }
}

/// Lower case without spaces, dashes, underscores and dots: how names compare.
fn squash(text: &str) -> String {
    text.chars()
        .filter(|c| !matches!(c, ' ' | '-' | '_' | '.'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// One term: exactly one meaning, or an error naming none or all of them.
fn term(text: &str, known: &Known) -> CliResult<Selection> {
    if text.is_empty() {
        return Err(CliError::usage(
            "from: an empty location (two separators in a row, or one at an end?)",
        ));
    }
    if text.contains('=') {
        return Selection::parse(text).map_err(|e| CliError::usage(format!("from {text}: {e}")));
    }
    let mut found = meanings(text, known);
    found.dedup();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(CliError::usage(format!(
            "from: {text:?} is no country, continent, AS number, capability, tag or node of this network{}",
            country::hint(&text.to_ascii_uppercase())
                .map(|h| format!(" ({h})"))
                .unwrap_or_default()
        ))),
        _ => Err(CliError::usage(format!(
            "from: {text:?} is ambiguous; write one of: {}",
            found
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Everything `text` can mean, most specific last.
fn meanings(text: &str, known: &Known) -> Vec<Selection> {
    let word = squash(text);
    if matches!(word.as_str(), "world" | "everyone" | "all") {
        return vec![Selection::Everyone];
    }
    let mut out = Vec::new();
    if let Some(n) = word.strip_prefix("as").and_then(|n| n.parse().ok()) {
        out.push(Selection::Asn(n));
    }
    let upper = word.to_ascii_uppercase();
    if upper.len() == 2 && country::is_assigned(&upper) {
        out.push(Selection::Country(upper.clone()));
    } else if let Some(cc) = country_by_name(&word) {
        out.push(Selection::Country(cc));
    }
    if CONTINENTS.contains(&upper.as_str()) {
        out.push(Selection::Continent(upper));
    } else if let Some((_, ct)) = CONTINENT_NAMES.iter().find(|(n, _)| *n == word) {
        out.push(Selection::Continent(ct.to_string()));
    }
    if let Some(c) = Capability::parse(&word) {
        out.push(Selection::Cap(c));
    }
    if known.tags.contains(text) {
        out.push(Selection::Tag(text.to_string()));
    }
    if known.nodes.contains(text) {
        out.push(Selection::Node(text.to_string()));
    }
    out
}

/// The ISO code of a country's English name, short name or common alias
/// (`Germany`, `United Kingdom`, `USA`), or of its three-letter code.
fn country_by_name(word: &str) -> Option<String> {
    let c = celes::Country::from_name(word)
        .or_else(|_| celes::Country::from_alias(word))
        .or_else(|_| celes::Country::from_alpha3(word))
        .ok()?;
    // celes may know codes ISO withdrew; only what nodes can declare counts.
    country::is_assigned(c.alpha2).then(|| c.alpha2.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Known {
        Known {
            tags: ["fiber", "germany", "na", "ipv4"].map(String::from).into(),
            nodes: ["n-de1", "fiber"].map(String::from).into(),
        }
    }

    #[test]
    fn locations_compile_to_selections() {
        for (from, selection) in [
            ("DE", "country=DE"),
            ("de", "country=DE"),
            ("Germany", "country=DE"),
            ("united kingdom", "country=GB"),
            ("USA", "country=US"),
            ("EU", "continent=EU"),
            ("Europe", "continent=EU"),
            ("South America", "continent=SA"),
            ("AS3320", "asn=3320"),
            ("as3320", "asn=3320"),
            ("n-de1", "node=n-de1"),
            ("world", "everyone"),
            ("IPv6", "cap=ipv6"),
            ("DE+ipv6", "country=DE and cap=ipv6"),
            ("cap=ipv4", "cap=ipv4"),
            ("DE,FR", "country=DE or country=FR"),
            ("DE+AS3320", "country=DE and asn=3320"),
            (
                "Germany+AS3320, Europe+AS3209",
                "(country=DE and asn=3320) or (continent=EU and asn=3209)",
            ),
            ("continent=AS", "continent=AS"),
            ("country=NA+AS3320", "country=NA and asn=3320"),
        ] {
            let got = compile(from, &known()).unwrap_or_else(|e| panic!("{from}: {e}"));
            assert_eq!(got.to_string(), selection, "{from}");
        }
    }

    #[test]
    fn ambiguous_and_unknown_terms_are_refused_with_the_candidates() {
        for (from, words) in [
            // A country code and a continent code.
            ("AS", &["country=AS", "continent=AS"][..]),
            ("SA", &["country=SA", "continent=SA"]),
            // A country code, a continent code and a tag.
            ("na", &["country=NA", "continent=NA", "tag=na"]),
            // A country name that is also a tag.
            ("germany", &["country=DE", "tag=germany"]),
            // A tag that is also a node id.
            ("fiber", &["tag=fiber", "node=fiber"]),
            // A capability that is also a tag.
            ("ipv4", &["cap=ipv4", "tag=ipv4"]),
            // Unknown words, with a hint where one is known.
            ("Atlantis", &["no country, continent"]),
            ("GER", &["Germany's code is \"DE\""]),
            ("UK", &["the United Kingdom's ISO code is \"GB\""]),
            ("DE,", &["empty location"]),
            ("DE++FR", &["empty location"]),
            ("country=", &["country"]),
        ] {
            let e = compile(from, &known()).unwrap_err();
            assert!(matches!(e, CliError::Usage(_)), "{from}");
            let text = e.to_string();
            for w in words {
                assert!(text.contains(w), "{from}: {text}");
            }
        }
    }
}
