//! Which nodes a job with `limit` goes to: spread over the places that match
//! (countries, then networks within a country) rather than the N most recently
//! seen, which would often all sit in one country or one ISP.

use crate::db::NodeRow;
use std::collections::{BTreeMap, VecDeque};

/// Picks at most `limit` of `nodes`: one per country in turn; within a
/// country, one per ASN in turn; within an ASN, the most recently seen first.
/// Countries and ASNs whose freshest node was seen most recently go first.
/// Deterministic for the same input.
pub fn pick(nodes: Vec<&NodeRow>, limit: usize) -> Vec<&NodeRow> {
    // country -> asn -> nodes, each list newest first.
    let mut places: BTreeMap<&str, BTreeMap<Option<u32>, Vec<&NodeRow>>> = BTreeMap::new();
    for n in nodes {
        places
            .entry(n.attrs.country.as_str())
            .or_default()
            .entry(n.attrs.asn)
            .or_default()
            .push(n);
    }
    let newest = |list: &[&NodeRow]| list.iter().filter_map(|n| n.last_seen).max();
    let mut countries: Vec<(Option<i64>, VecDeque<VecDeque<&NodeRow>>)> = places
        .into_values()
        .map(|asns| {
            let mut asns: Vec<Vec<&NodeRow>> = asns.into_values().collect();
            for list in &mut asns {
                list.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then(a.id.cmp(&b.id)));
            }
            // Stable sort: equally fresh ASNs keep their numeric order.
            asns.sort_by_key(|l| std::cmp::Reverse(newest(l)));
            let fresh = asns.first().and_then(|l| newest(l));
            (fresh, asns.into_iter().map(VecDeque::from).collect())
        })
        .collect();
    countries.sort_by_key(|(fresh, _)| std::cmp::Reverse(*fresh));
    let mut out = Vec::new();
    while out.len() < limit && !countries.is_empty() {
        for (_, asns) in &mut countries {
            if out.len() == limit {
                break;
            }
            // Take from the ASN at the front, then send it to the back.
            if let Some(mut list) = asns.pop_front() {
                if let Some(n) = list.pop_front() {
                    out.push(n);
                }
                if !list.is_empty() {
                    asns.push_back(list);
                }
            }
        }
        countries.retain(|(_, asns)| !asns.is_empty());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Attrs;

    fn node(id: &str, country: &str, asn: Option<u32>, seen: i64) -> NodeRow {
        NodeRow {
            id: id.into(),
            attrs: Attrs {
                country: country.into(),
                continent: None,
                asn,
                tags: vec![],
            },
            key_fingerprint: String::new(),
            cert_pem: String::new(),
            cert_serial: String::new(),
            cert_not_after: 0,
            enrolled: 0,
            enrolled_via: "token".into(),
            revoked: None,
            last_seen: Some(seen),
            agent_version: None,
            address: None,
            caps: None,
            owner: None,
            release: None,
        }
    }

    fn ids(v: &[&NodeRow]) -> Vec<String> {
        v.iter().map(|n| n.id.clone()).collect()
    }

    #[test]
    fn one_per_country_then_one_per_asn() {
        let all = [
            node("de1", "DE", Some(3320), 100),
            node("de2", "DE", Some(3320), 99),
            node("de3", "DE", Some(3320), 98),
            node("de4", "DE", Some(680), 50),
            node("fr1", "FR", Some(3215), 90),
            node("fr2", "FR", Some(3215), 95),
            node("nl1", "NL", None, 10),
        ];
        let refs: Vec<&NodeRow> = all.iter().collect();
        assert_eq!(ids(&pick(refs.clone(), 3)), ["de1", "fr2", "nl1"]);
        // Second round: DE's other ASN before its second node in AS3320.
        assert_eq!(
            ids(&pick(refs.clone(), 5)),
            ["de1", "fr2", "nl1", "de4", "fr1"]
        );
        assert_eq!(pick(refs.clone(), 100).len(), all.len());
        assert!(pick(refs, 0).is_empty());
    }

    proptest::proptest! {
        #[test]
        fn picks_distinct_nodes_and_covers_countries_first(
            spec in proptest::collection::vec((0u8..4, proptest::option::of(0u32..3), 0i64..50), 0..40),
            limit in 0usize..50,
        ) {
            let all: Vec<NodeRow> = spec.iter().enumerate()
                .map(|(i, (c, a, s))| node(&format!("n{i}"), ["DE", "FR", "NL", "BR"][*c as usize], *a, *s))
                .collect();
            let got = pick(all.iter().collect(), limit);
            proptest::prop_assert_eq!(got.len(), limit.min(all.len()));
            let mut seen = std::collections::BTreeSet::new();
            proptest::prop_assert!(got.iter().all(|n| seen.insert(n.id.clone())));
            let countries: std::collections::BTreeSet<&str> = all.iter().map(|n| n.attrs.country.as_str()).collect();
            let first: std::collections::BTreeSet<&str> = got.iter().take(countries.len()).map(|n| n.attrs.country.as_str()).collect();
            proptest::prop_assert_eq!(first.len(), got.len().min(countries.len()));
        }
    }
}
