//! The DNSSEC verdict of a `dns` probe: hickory's validator decides, this
//! module only frames the question (is it a DNSSEC question at all? which
//! anchor covers it?) and names the reason, in the spirit of RFC 8914's
//! extended DNS errors, by looking at the records the verdict was made on.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use hickory_resolver::net::dnssec::DnssecDnsHandle;
use hickory_resolver::net::{DnsError, DnsHandle, NetError};
use hickory_resolver::proto::dnssec::Proof;
use hickory_resolver::proto::dnssec::rdata::{DNSSECRData, DS};
use hickory_resolver::proto::op::{DnsRequestOptions, DnsResponse, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use vantage_proto::data::{DnssecVerdict as Verdict, SecurityStatus};

use super::anchors::Anchors;
use super::upstream::Upstream;

/// NSEC3 iterations above which hickory (and RFC 9276 §3.2) treat a denial as
/// insecure.
const NSEC3_ITERATIONS_LIMIT: u16 = 100;

/// A verdict with its stable reason code (docs/agent.md) and one line of detail.
fn verdict(
    status: SecurityStatus,
    reason: impl Into<String>,
    detail: impl Into<String>,
) -> Verdict {
    Verdict {
        verdict: status,
        reason: reason.into(),
        detail: detail.into(),
    }
}

fn now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

/// Whether a NOERROR answer without answer records is a referral: no SOA,
/// NS records of a zone below the question's closest known zone. An
/// authoritative server that is not authoritative for the name, or a lame
/// delegation's server, answers like this; there is nothing to validate.
fn referral(r: &DnsResponse) -> Option<Name> {
    if r.response_code != ResponseCode::NoError
        || !r.answers.is_empty()
        || r.authorities
            .iter()
            .any(|x| x.record_type() == RecordType::SOA)
    {
        return None;
    }
    r.authorities
        .iter()
        .find(|x| x.record_type() == RecordType::NS)
        .map(|x| x.name.clone())
}

/// The combined proof of the records a verdict rests on: the answer section,
/// or for a negative answer the authority section.
fn summary(records: &[Record]) -> Proof {
    let proofs: Vec<Proof> = records
        .iter()
        .filter(|r| r.record_type() != RecordType::RRSIG)
        .map(|r| r.proof)
        .collect();
    if proofs.is_empty() {
        Proof::Indeterminate
    } else if proofs.contains(&Proof::Bogus) {
        Proof::Bogus
    } else if proofs.iter().all(|p| *p == Proof::Secure) {
        Proof::Secure
    } else if proofs.contains(&Proof::Indeterminate) {
        Proof::Indeterminate
    } else {
        Proof::Insecure
    }
}

/// Validates the probe's `response` to `name`/`qtype`, fetching what the
/// chain of trust needs through `upstream`.
pub async fn validate(
    response: &DnsResponse,
    name: &Name,
    qtype: RecordType,
    upstream: &Upstream,
    anchors: &Anchors,
    timeout: Duration,
) -> Verdict {
    if let Some(v) = not_a_dnssec_question(response, name) {
        return v;
    }
    let Some(zone) = anchors.covering(name) else {
        return verdict(
            SecurityStatus::Insecure,
            "no-trust-anchor",
            format!("no trust anchor covers {name}"),
        );
    };
    let now = now();
    let keys = upstream.fetch(&zone, RecordType::DNSKEY).await;
    let trust = anchors.for_zone(&zone, keys.as_ref(), now);
    // Over 100 NSEC3 iterations a denial is insecure (RFC 9276 §3.2), however
    // many: hickory's default calls denials over 500 bogus, where BIND and
    // unbound say insecure.
    let validator = DnssecDnsHandle::with_trust_anchor(upstream.clone(), trust.into())
        .nsec3_iteration_limits(Some(NSEC3_ITERATIONS_LIMIT), Some(u16::MAX));
    let (proof, checked) = match prove(validator, name, qtype, timeout).await {
        Ok(p) => p,
        Err(v) => return v,
    };
    match proof {
        Proof::Secure => verdict(
            SecurityStatus::Secure,
            "validated",
            format!("chain of trust from the anchor for {zone}"),
        ),
        Proof::Insecure => insecure_reason(&checked, upstream).await,
        Proof::Bogus => bogus_reason(response, &zone, upstream, anchors, now).await,
        Proof::Indeterminate => verdict(
            SecurityStatus::Indeterminate,
            "validation-failed",
            "the validator could neither prove nor disprove the answer",
        ),
    }
}

/// Failures that are not DNSSEC failures, reported as what they are: an
/// error rcode, or a referral.
fn not_a_dnssec_question(response: &DnsResponse, name: &Name) -> Option<Verdict> {
    match response.response_code {
        ResponseCode::NoError | ResponseCode::NXDomain => {}
        code => {
            let text = format!("{code:?}").to_lowercase();
            return Some(verdict(
                SecurityStatus::Indeterminate,
                format!("rcode-{text}"),
                format!(
                    "the server answered {}: nothing to validate",
                    text.to_uppercase()
                ),
            ));
        }
    }
    referral(response).map(|zone| {
        verdict(
            SecurityStatus::Indeterminate,
            "referral",
            format!(
                "the server is not authoritative for {name} and does not recurse: it refers to {zone} (a lame delegation if it is listed as a server of the zone)"
            ),
        )
    })
}

/// Asks `validator` the question again: its proof and the response it was
/// made on, or the verdict when it could not decide.
async fn prove(
    validator: DnssecDnsHandle<Upstream>,
    name: &Name,
    qtype: RecordType,
    timeout: Duration,
) -> Result<(Proof, DnsResponse), Verdict> {
    let mut options = DnsRequestOptions::default();
    options.edns_set_dnssec_ok = true;
    options.edns_payload_len = 1232;
    let mut answers = validator.lookup(Query::query(name.clone(), qtype), options);
    // The validator's fetches each have the probe's timeout; a chain of them
    // is bounded by the node's probe time limit around the whole probe.
    let outcome = tokio::time::timeout(timeout * 4, answers.next()).await;
    match outcome {
        Err(_) => Err(verdict(
            SecurityStatus::Indeterminate,
            "validation-timeout",
            format!(
                "the chain of trust could not be fetched within {} ms",
                (timeout * 4).as_millis()
            ),
        )),
        Ok(None) => Err(verdict(
            SecurityStatus::Indeterminate,
            "validation-failed",
            "the validator returned nothing",
        )),
        Ok(Some(Ok(r))) => {
            let section = if r.answers.is_empty() {
                &r.authorities
            } else {
                &r.answers
            };
            Ok((summary(section), r))
        }
        Ok(Some(Err(NetError::Dns(DnsError::Nsec {
            proof, response, ..
        })))) => {
            if proof == Proof::Bogus && wildcard_expansion_proven(&response, name) {
                Ok((Proof::Secure, *response))
            } else {
                Ok((proof, *response))
            }
        }
        Ok(Some(Err(e))) => Err(verdict(
            SecurityStatus::Indeterminate,
            "validation-failed",
            one_line(&e),
        )),
    }
}

/// Works around hickory-net 0.26.3 `verify_nsec` (to report upstream): for
/// a wildcard expansion one label below the wildcard's parent (`a.zone.`
/// from `*.zone.`) it asks for an NSEC *covering* `*.zone.`; the wildcard
/// exists, so its NSEC is owned by it and never covers it, and the answer is
/// called bogus. RFC 4035 §5.3.4 asks for proof that no closer match exists,
/// which for that shape is a secure NSEC covering the query name. Applies
/// only when every answer RRset validated secure and the RRSIG shows the
/// expansion; deeper expansions go through hickory's own check.
fn wildcard_expansion_proven(r: &DnsResponse, qname: &Name) -> bool {
    let mut data = r
        .answers
        .iter()
        .filter(|x| x.record_type() != RecordType::RRSIG)
        .peekable();
    if data.peek().is_none() || data.any(|x| x.proof != Proof::Secure) {
        return false;
    }
    let Some(signer) = r.answers.iter().find_map(|x| match &x.data {
        RData::DNSSEC(DNSSECRData::RRSIG(s))
            if &x.name == qname
                && x.proof == Proof::Secure
                && s.input().num_labels + 1 == qname.num_labels() =>
        {
            Some(s.input().signer_name.clone())
        }
        _ => None,
    }) else {
        return false;
    };
    r.authorities.iter().any(|x| match &x.data {
        RData::DNSSEC(DNSSECRData::NSEC(n))
            if x.proof == Proof::Secure && signer.zone_of(&x.name) =>
        {
            let next = n.next_domain_name();
            &x.name < qname && (qname < next || (next <= &x.name && next.zone_of(qname)))
        }
        _ => false,
    })
}

fn one_line(e: &dyn std::fmt::Display) -> String {
    let s = e.to_string();
    let line = s.lines().next().unwrap_or_default();
    line.chars().take(200).collect()
}

fn rrsigs(
    records: &[Record],
) -> impl Iterator<Item = (&Record, &hickory_resolver::proto::dnssec::rdata::RRSIG)> {
    records.iter().filter_map(|r| match &r.data {
        RData::DNSSEC(DNSSECRData::RRSIG(s)) => Some((r, s)),
        _ => None,
    })
}

/// Names why an answer the validator found insecure is insecure.
/// The DS records of `zone` as upstream answers them; `None` when the fetch failed.
async fn fetch_ds(upstream: &Upstream, zone: &Name) -> Option<Vec<DS>> {
    let answer = upstream.fetch(zone, RecordType::DS).await?;
    Some(
        answer
            .answers
            .iter()
            .filter_map(|x| match &x.data {
                RData::DNSSEC(DNSSECRData::DS(d)) => Some(d.clone()),
                _ => None,
            })
            .collect(),
    )
}

async fn insecure_reason(r: &DnsResponse, upstream: &Upstream) -> Verdict {
    let high = r.authorities.iter().find_map(|x| match &x.data {
        RData::DNSSEC(DNSSECRData::NSEC3(n)) if n.iterations() > NSEC3_ITERATIONS_LIMIT => {
            Some(n.iterations())
        }
        _ => None,
    });
    if let Some(iterations) = high {
        return verdict(
            SecurityStatus::Insecure,
            "nsec3-iterations",
            format!(
                "the denial uses NSEC3 with {iterations} iterations, over the limit of {NSEC3_ITERATIONS_LIMIT} (RFC 9276)"
            ),
        );
    }
    let all: Vec<Record> = r.answers.iter().chain(&r.authorities).cloned().collect();
    if let Some((_, s)) = rrsigs(&all).find(|(_, s)| !s.input().algorithm.is_supported()) {
        return verdict(
            SecurityStatus::Insecure,
            "unsupported-algorithm",
            format!(
                "signed with algorithm {}, which the validator does not implement (RFC 4035 §5.2)",
                s.input().algorithm
            ),
        );
    }
    let signers: HashSet<Name> = rrsigs(&all)
        .map(|(_, s)| s.input().signer_name.clone())
        .collect();
    for signer in signers {
        let Some(sets) = fetch_ds(upstream, &signer).await else {
            continue;
        };
        if !sets.is_empty()
            && sets
                .iter()
                .all(|d| !d.algorithm().is_supported() || !d.digest_type().is_supported())
        {
            return verdict(
                SecurityStatus::Insecure,
                "unsupported-algorithm",
                format!(
                    "every DS of {signer} names an algorithm or digest the validator does not implement (RFC 4035 §5.2)"
                ),
            );
        }
    }
    verdict(
        SecurityStatus::Insecure,
        "unsigned",
        "the answer comes from a zone proven to be unsigned (no DS at its delegation)",
    )
}

/// Names why an answer the validator found bogus is bogus, by looking at the
/// records the probe received and at the chain of trust of their signers.
async fn bogus_reason(
    r: &DnsResponse,
    anchor_zone: &Name,
    upstream: &Upstream,
    anchors: &Anchors,
    now: u32,
) -> Verdict {
    let negative = r.answers.is_empty();
    let section: &[Record] = if negative { &r.authorities } else { &r.answers };
    if let Some(v) = signature_times(section, now) {
        return v;
    }
    let signed: HashSet<(Name, RecordType)> = rrsigs(section)
        .map(|(x, s)| (x.name.clone(), s.input().type_covered))
        .collect();
    if !negative
        && let Some(unsigned) = section.iter().find(|x| {
            x.record_type() != RecordType::RRSIG
                && !signed.contains(&(x.name.clone(), x.record_type()))
        })
    {
        return verdict(
            SecurityStatus::Bogus,
            "rrsigs-missing",
            format!(
                "{} {} has no signature in a zone that must be signed",
                unsigned.name,
                unsigned.record_type()
            ),
        );
    }
    let signers: HashSet<Name> = rrsigs(section)
        .map(|(_, s)| s.input().signer_name.clone())
        .collect();
    let anchored = anchors.zones();
    for signer in signers {
        if let Some(v) = signer_problem(&signer, upstream, &anchored, now).await {
            return v;
        }
    }
    if negative {
        return verdict(
            SecurityStatus::Bogus,
            "nsec-missing",
            "the denial of existence is not proven by valid NSEC or NSEC3 records",
        );
    }
    verdict(
        SecurityStatus::Bogus,
        "signature-invalid",
        format!(
            "no signature over the answer verifies with a key chained to the anchor for {anchor_zone}"
        ),
    )
}

/// What is wrong with the chain of trust of `signer`'s keys, if anything
/// the probe can see: no DNSKEY, keys outside their validity, or a DS that
/// matches none of them (zones with an anchor have no DS to check).
async fn signer_problem(
    signer: &Name,
    upstream: &Upstream,
    anchored: &[Name],
    now: u32,
) -> Option<Verdict> {
    let keys = upstream.fetch(signer, RecordType::DNSKEY).await?;
    let dnskeys: Vec<_> = keys
        .answers
        .iter()
        .filter_map(|x| match &x.data {
            RData::DNSSEC(DNSSECRData::DNSKEY(k)) if x.name == *signer => Some(k),
            _ => None,
        })
        .collect();
    if dnskeys.is_empty() {
        return Some(verdict(
            SecurityStatus::Bogus,
            "dnskey-missing",
            format!("{signer} has signatures but no DNSKEY"),
        ));
    }
    if let Some(v) = signature_times(&keys.answers, now) {
        return Some(v);
    }
    if anchored.contains(signer) {
        return None;
    }
    let dss = fetch_ds(upstream, signer).await?;
    if !dss.is_empty()
        && !dss
            .iter()
            .any(|d| dnskeys.iter().any(|k| d.covers(signer, k).unwrap_or(false)))
    {
        return Some(verdict(
            SecurityStatus::Bogus,
            "ds-mismatch",
            format!("no DS of {signer} matches any of its DNSKEYs"),
        ));
    }
    None
}

/// `signature-expired` or `signature-not-yet-valid` when every signature
/// over some RRset in `records` is outside its validity period.
fn signature_times(records: &[Record], now: u32) -> Option<Verdict> {
    let mut sets: std::collections::HashMap<(Name, RecordType), Vec<(u32, u32)>> =
        Default::default();
    for (x, s) in rrsigs(records) {
        let i = s.input();
        sets.entry((x.name.clone(), i.type_covered))
            .or_default()
            .push((i.sig_inception.get(), i.sig_expiration.get()));
    }
    for ((name, rtype), times) in sets {
        if times.iter().all(|(_, exp)| *exp < now) {
            return Some(verdict(
                SecurityStatus::Bogus,
                "signature-expired",
                format!("every signature over {name} {rtype} has expired"),
            ));
        }
        if times.iter().all(|(inc, _)| *inc > now) {
            return Some(verdict(
                SecurityStatus::Bogus,
                "signature-not-yet-valid",
                format!("every signature over {name} {rtype} is not valid yet"),
            ));
        }
    }
    None
}

/// The RFC 8914 name of an extended DNS error code, as a reason-style code.
pub fn ede_name(code: u16) -> &'static str {
    match code {
        0 => "other",
        1 => "unsupported-dnskey-algorithm",
        2 => "unsupported-ds-digest-type",
        3 => "stale-answer",
        4 => "forged-answer",
        5 => "dnssec-indeterminate",
        6 => "dnssec-bogus",
        7 => "signature-expired",
        8 => "signature-not-yet-valid",
        9 => "dnskey-missing",
        10 => "rrsigs-missing",
        11 => "no-zone-key-bit-set",
        12 => "nsec-missing",
        13 => "cached-error",
        14 => "not-ready",
        15 => "blocked",
        16 => "censored",
        17 => "filtered",
        18 => "prohibited",
        19 => "stale-nxdomain-answer",
        20 => "not-authoritative",
        21 => "not-supported",
        22 => "no-reachable-authority",
        23 => "network-error",
        24 => "invalid-data",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::proto::op::Message;
    use hickory_resolver::proto::rr::rdata::{A, NS, SOA};

    fn rec(p: Proof) -> Record {
        let mut r = Record::from_rdata(Name::root(), 60, RData::A(A::new(192, 0, 2, 1)));
        r.proof = p;
        r
    }

    #[test]
    fn summaries() {
        use Proof::*;
        assert_eq!(summary(&[rec(Secure), rec(Secure)]), Secure);
        assert_eq!(summary(&[rec(Secure), rec(Bogus)]), Bogus);
        assert_eq!(summary(&[rec(Secure), rec(Insecure)]), Insecure);
        assert_eq!(summary(&[rec(Indeterminate)]), Indeterminate);
        assert_eq!(summary(&[]), Indeterminate);
    }

    fn response(authorities: Vec<Record>) -> DnsResponse {
        let mut m = Message::query();
        m.add_query(Query::query(
            Name::from_ascii("www.lame.example.").unwrap(),
            RecordType::A,
        ));
        m.insert_authorities(authorities);
        DnsResponse::from_message(m.into_response()).unwrap()
    }

    /// The shape of hickory-net 0.26.3's wildcard bug (see
    /// `wildcard_expansion_proven`): `a.wild.example. A` expanded from
    /// `*.wild.example.`, proven by the NSEC owned by the wildcard.
    fn wildcard_answer(labels: u8, qname: &str, nsec_owner: &str, next: &str) -> DnsResponse {
        use hickory_resolver::proto::dnssec::Algorithm;
        use hickory_resolver::proto::dnssec::rdata::{NSEC, RRSIG, SigInput};
        use hickory_resolver::proto::rr::SerialNumber;
        let q = Name::from_ascii(qname).unwrap();
        let mut a = Record::from_rdata(q.clone(), 300, RData::A(A::new(192, 0, 2, 7)));
        a.proof = Proof::Secure;
        let input = SigInput {
            type_covered: RecordType::A,
            algorithm: Algorithm::ECDSAP256SHA256,
            num_labels: labels,
            original_ttl: 300,
            sig_expiration: SerialNumber::new(u32::MAX),
            sig_inception: SerialNumber::new(0),
            key_tag: 1,
            signer_name: Name::from_ascii("wild.example.").unwrap(),
        };
        let mut sig = Record::from_rdata(
            q.clone(),
            300,
            RData::DNSSEC(DNSSECRData::RRSIG(RRSIG::from_sig(input, vec![0; 64]))),
        );
        sig.proof = Proof::Secure;
        let mut nsec = Record::from_rdata(
            Name::from_ascii(nsec_owner).unwrap(),
            300,
            RData::DNSSEC(DNSSECRData::NSEC(NSEC::new(
                Name::from_ascii(next).unwrap(),
                [RecordType::A, RecordType::RRSIG, RecordType::NSEC],
            ))),
        );
        nsec.proof = Proof::Secure;
        let mut m = Message::query();
        m.add_query(Query::query(q, RecordType::A));
        m.insert_answers(vec![a, sig]);
        m.insert_authorities(vec![nsec]);
        DnsResponse::from_message(m.into_response()).unwrap()
    }

    #[test]
    fn a_wildcard_expansion_one_label_deep_is_proven_by_the_wildcards_nsec() {
        let q = Name::from_ascii("a.wild.example.").unwrap();
        let r = wildcard_answer(2, "a.wild.example.", "*.wild.example.", "ns.wild.example.");
        assert!(wildcard_expansion_proven(&r, &q));
        // An NSEC that does not cover the name proves nothing.
        let r = wildcard_answer(2, "a.wild.example.", "*.wild.example.", "0.wild.example.");
        assert!(!wildcard_expansion_proven(&r, &q));
        // Not an expansion (RRSIG labels = owner labels): not this workaround's case.
        let r = wildcard_answer(3, "a.wild.example.", "*.wild.example.", "ns.wild.example.");
        assert!(!wildcard_expansion_proven(&r, &q));
        // Deeper expansions are left to hickory.
        let q = Name::from_ascii("a.b.wild.example.").unwrap();
        let r = wildcard_answer(
            2,
            "a.b.wild.example.",
            "*.wild.example.",
            "ns.wild.example.",
        );
        assert!(!wildcard_expansion_proven(&r, &q));
    }

    #[test]
    fn referrals_are_recognised_and_negative_answers_are_not() {
        let zone = Name::from_ascii("lame.example.").unwrap();
        let ns = Record::from_rdata(
            zone.clone(),
            300,
            RData::NS(NS(Name::from_ascii("ns.lame.example.").unwrap())),
        );
        assert_eq!(referral(&response(vec![ns.clone()])), Some(zone.clone()));
        let soa = Record::from_rdata(
            zone.clone(),
            300,
            RData::SOA(SOA::new(
                Name::from_ascii("ns.lame.example.").unwrap(),
                Name::from_ascii("h.lame.example.").unwrap(),
                1,
                3600,
                600,
                86400,
                300,
            )),
        );
        assert_eq!(referral(&response(vec![ns, soa])), None);
    }
}
