//! DNSSEC trust anchors: DNSKEY or DS records for any zone, root or not.
//!
//! hickory's validator trusts a DNSKEY RRset only when every key in it is an
//! anchor or when the parent's DS vouches for it; with an anchor holding only
//! a non-root zone's KSK it asks the parent for a DS, which no anchor covers,
//! and every answer comes back bogus. It also has no DS anchors. So before
//! validating, the probe fetches the anchored zone's DNSKEY RRset, checks its
//! signature with a configured key (or a key matching a configured DS), and
//! hands the validator the whole RRset as anchors for that zone: exactly the
//! keys a validator starting from that anchor would accept (RFC 4035 §5).

use std::path::Path;

use hickory_resolver::proto::dnssec::rdata::{DNSKEY, DNSSECRData, DS};
use hickory_resolver::proto::dnssec::{Algorithm, PublicKey, PublicKeyBuf, TrustAnchors, Verifier};
use hickory_resolver::proto::op::DnsResponse;
use hickory_resolver::proto::rr::{DNSClass, Name, RData, Record, RecordType};

/// Why an anchor file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    /// The file could not be read.
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    /// A line is not a DNSKEY or DS record in zone-file form.
    #[error("line {0}: {1}")]
    Line(usize, String),
    /// Nothing usable in the file.
    #[error(
        "no DNSKEY or DS record: an empty anchor file would make every answer bogus; \
         remove the setting to use the built-in root anchors"
    )]
    Empty,
}

#[derive(Debug, Clone)]
enum Data {
    Key(DNSKEY),
    Ds(DS),
}

/// One configured anchor.
#[derive(Debug, Clone)]
struct Anchor {
    zone: Name,
    data: Data,
}

/// The configured trust anchors.
#[derive(Debug, Clone)]
pub struct Anchors {
    anchors: Vec<Anchor>,
}

impl Default for Anchors {
    /// The root zone's KSKs built into hickory.
    fn default() -> Anchors {
        let builtin = TrustAnchors::default();
        let anchors = (0..builtin.len())
            .filter_map(|i| builtin.get(i))
            .map(|k| Anchor {
                zone: Name::root(),
                data: Data::Key(DNSKEY::with_flags(257, k.clone())),
            })
            .collect();
        Anchors { anchors }
    }
}

impl Anchors {
    /// Loads an anchor file: DNSKEY and DS records in zone-file form
    /// (`owner [ttl] [IN] DNSKEY|DS rdata`), `;` comments, blank lines.
    pub fn load(path: &Path) -> Result<Anchors, AnchorError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| AnchorError::Read(path.display().to_string(), e))?;
        Anchors::parse(&text)
    }

    /// Parses the text of an anchor file.
    pub fn parse(text: &str) -> Result<Anchors, AnchorError> {
        let mut anchors = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split(';').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let bad = |why: String| AnchorError::Line(i + 1, why);
            let mut tokens = line.split_whitespace().peekable();
            let owner = tokens.next().unwrap_or_default();
            let mut zone =
                Name::from_ascii(owner).map_err(|e| bad(format!("owner {owner:?}: {e}")))?;
            zone.set_fqdn(true);
            if tokens.peek().is_some_and(|t| t.parse::<u32>().is_ok()) {
                tokens.next();
            }
            if tokens.peek().is_some_and(|t| t.eq_ignore_ascii_case("IN")) {
                tokens.next();
            }
            let rtype = tokens.next().unwrap_or_default().to_ascii_uppercase();
            let rdata = tokens.collect::<Vec<_>>().join(" ");
            let data = match rtype.as_str() {
                "DNSKEY" => {
                    let k = parse_dnskey(&rdata).map_err(bad)?;
                    if !k.zone_key() || k.revoke() {
                        return Err(bad("the DNSKEY is not a zone key or is revoked".into()));
                    }
                    Data::Key(k)
                }
                "DS" => match RData::try_from_str(RecordType::DS, &rdata) {
                    Ok(RData::DNSSEC(DNSSECRData::DS(ds))) => Data::Ds(ds),
                    Ok(_) => return Err(bad("not a DS".into())),
                    Err(e) => return Err(bad(format!("DS rdata: {e}"))),
                },
                other => {
                    return Err(bad(format!(
                        "record type {other:?}: an anchor is a DNSKEY or a DS record"
                    )));
                }
            };
            anchors.push(Anchor { zone, data });
        }
        if anchors.is_empty() {
            return Err(AnchorError::Empty);
        }
        Ok(Anchors { anchors })
    }

    /// The zones that have anchors, deepest first, without repeats.
    pub fn zones(&self) -> Vec<Name> {
        let mut z: Vec<Name> = self.anchors.iter().map(|a| a.zone.clone()).collect();
        z.sort_by_key(|n| std::cmp::Reverse(n.num_labels()));
        z.dedup();
        z
    }

    /// The closest anchored zone at or above `name`, if any.
    pub fn covering(&self, name: &Name) -> Option<Name> {
        self.zones().into_iter().find(|z| z.zone_of(name))
    }

    /// Trust anchors for validating below `zone`: the configured DNSKEYs of
    /// that zone, plus every key of its current DNSKEY RRset when a signature
    /// over that RRset verifies with a configured key (or one a configured DS
    /// matches). `keys` is the zone's DNSKEY response, fetched through the
    /// probe's path so the validator's own fetch is answered from memory.
    pub fn for_zone(&self, zone: &Name, keys: Option<&DnsResponse>, now: u32) -> TrustAnchors {
        let mut out = TrustAnchors::empty();
        let mine: Vec<&Anchor> = self.anchors.iter().filter(|a| &a.zone == zone).collect();
        for a in &mine {
            if let Data::Key(k) = &a.data {
                out.insert_with_name(k.public_key(), zone.into());
            }
        }
        let Some(response) = keys else {
            // The validator asks again and reports what goes wrong.
            return out;
        };
        let keys: Vec<&Record> = response
            .answers
            .iter()
            .filter(|r| r.record_type() == RecordType::DNSKEY && &r.name == zone)
            .collect();
        let trusted = |k: &DNSKEY| {
            mine.iter().any(|a| match &a.data {
                Data::Key(t) => {
                    t.public_key().public_bytes() == k.public_key().public_bytes()
                        && t.algorithm() == k.algorithm()
                }
                Data::Ds(ds) => ds.covers(zone, k).unwrap_or(false),
            })
        };
        let vouched = response.answers.iter().any(|r| {
            let RData::DNSSEC(DNSSECRData::RRSIG(sig)) = &r.data else {
                return false;
            };
            let input = sig.input();
            if input.type_covered != RecordType::DNSKEY
                || &r.name != zone
                || input.sig_inception.get() > now
                || input.sig_expiration.get() < now
            {
                return false;
            }
            keys.iter().any(|kr| {
                let RData::DNSSEC(DNSSECRData::DNSKEY(k)) = &kr.data else {
                    return false;
                };
                !k.revoke()
                    && trusted(k)
                    && k.calculate_key_tag().ok() == Some(input.key_tag)
                    && k.verify_rrsig(zone, DNSClass::IN, sig, keys.iter().copied())
                        .is_ok()
            })
        });
        if vouched {
            for kr in &keys {
                if let RData::DNSSEC(DNSSECRData::DNSKEY(k)) = &kr.data
                    && k.zone_key()
                    && !k.revoke()
                {
                    out.insert_with_name(k.public_key(), zone.into());
                }
            }
        }
        out
    }
}

/// DNSKEY rdata in presentation form: flags, protocol (3), algorithm, key
/// in base64 (hickory parses DNSKEYs only as whole anchor files).
fn parse_dnskey(rdata: &str) -> Result<DNSKEY, String> {
    use base64::Engine;
    let mut t = rdata.split_whitespace();
    let mut num = |what: &str| -> Result<u16, String> {
        t.next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("DNSKEY {what} missing or not a number"))
    };
    let flags = num("flags")?;
    if num("protocol")? != 3 {
        return Err("DNSKEY protocol must be 3".into());
    }
    let algorithm = num("algorithm")?;
    let b64: String = t.collect();
    let key = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map_err(|e| format!("DNSKEY key is not base64: {e}"))?;
    if key.is_empty() {
        return Err("DNSKEY key missing".into());
    }
    let algorithm =
        Algorithm::from_u8(u8::try_from(algorithm).map_err(|_| "DNSKEY algorithm over 255")?);
    Ok(DNSKEY::with_flags(flags, PublicKeyBuf::new(key, algorithm)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KSK: &str = "example. 3600 IN DNSKEY 257 3 13 \
        58pxGmFUHuya6kyQ0QlhqoUNe5Z8ZnRMsKHhEXHJADoO5TRLTugFOmT1fHwf1rje/Nb72wc5VomD2WnPvC2XVQ==";

    #[test]
    fn empty_files_are_refused() {
        assert!(matches!(Anchors::parse(""), Err(AnchorError::Empty)));
        assert!(matches!(
            Anchors::parse("; only a comment\n\n"),
            Err(AnchorError::Empty)
        ));
    }

    #[test]
    fn dnskey_and_ds_anchors_for_any_zone() {
        let a = Anchors::parse(&format!(
            "{KSK}\n. IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D\n"
        ))
        .unwrap();
        assert_eq!(a.zones().len(), 2);
        let www = Name::from_ascii("www.example.").unwrap();
        assert_eq!(
            a.covering(&www),
            Some(Name::from_ascii("example.").unwrap())
        );
        let only = Anchors::parse(KSK).unwrap();
        assert_eq!(
            only.covering(&Name::from_ascii("www.other.").unwrap()),
            None
        );
    }

    #[test]
    fn other_record_types_are_refused_with_the_line() {
        let e = Anchors::parse(&format!("{KSK}\nexample. IN A 192.0.2.1\n")).unwrap_err();
        assert!(matches!(e, AnchorError::Line(2, _)), "{e}");
        let e = Anchors::parse("example. IN DNSKEY 257 3 13 !!notbase64").unwrap_err();
        assert!(matches!(e, AnchorError::Line(1, _)), "{e}");
    }
}
