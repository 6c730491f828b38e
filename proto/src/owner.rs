//! The node owner's policy as the network sees it: the digest a node reports
//! in its heartbeat, the special address ranges, and the one predicate that
//! says whether that policy admits a job. The node refuses with it (probe
//! kind, special addresses); the hub uses the same code to skip nodes that
//! would refuse when it picks `limit` nodes, and `vantage check` to predict
//! refusals.

use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

use crate::cidr::Cidr;
use crate::job::{Job, Refusal};
use crate::probe::ProbeKind;

/// Ranges no probe targets unless the owner allows special addresses:
/// private, loopback, link-local, ULA, multicast, shared (CGNAT),
/// documentation, benchmarking and reserved.
const SPECIAL: [(Cidr, &str); 23] = [
    (Cidr::v4([0, 0, 0, 0], 8), "\"this network\""),
    (Cidr::v4([10, 0, 0, 0], 8), "private"),
    (
        Cidr::v4([100, 64, 0, 0], 10),
        "shared address space (CGNAT)",
    ),
    (Cidr::v4([127, 0, 0, 0], 8), "loopback"),
    (Cidr::v4([169, 254, 0, 0], 16), "link-local"),
    (Cidr::v4([172, 16, 0, 0], 12), "private"),
    (Cidr::v4([192, 0, 0, 0], 24), "IETF protocol assignments"),
    (Cidr::v4([192, 0, 2, 0], 24), "documentation"),
    (Cidr::v4([192, 168, 0, 0], 16), "private"),
    (Cidr::v4([198, 18, 0, 0], 15), "benchmarking"),
    (Cidr::v4([198, 51, 100, 0], 24), "documentation"),
    (Cidr::v4([203, 0, 113, 0], 24), "documentation"),
    (Cidr::v4([224, 0, 0, 0], 4), "multicast"),
    (Cidr::v4([240, 0, 0, 0], 4), "reserved"),
    (Cidr::v6(0, 0, 127), "unspecified or loopback"),
    (Cidr::v6(0x0100, 0, 64), "discard-only"),
    (Cidr::v6(0x2001, 0x0db8, 32), "documentation"),
    (Cidr::v6(0xfc00, 0, 7), "unique local (ULA)"),
    (Cidr::v6(0xfe80, 0, 10), "link-local"),
    (Cidr::v6(0xfec0, 0, 10), "site-local"),
    (Cidr::v6(0xff00, 0, 8), "multicast"),
    (Cidr::v6(0x2001, 0x0002, 48), "benchmarking"),
    (Cidr::v6(0x2002, 0, 16), "6to4"),
];

/// Names the special range `ip` lies in, if any. An IPv4-mapped IPv6
/// address is judged as the IPv4 address it reaches.
pub fn special_range(ip: IpAddr) -> Option<&'static str> {
    let ip = unmapped(ip);
    if ip == IpAddr::V4(Ipv4Addr::BROADCAST) {
        return Some("broadcast");
    }
    SPECIAL
        .iter()
        .find(|(c, _)| c.contains(ip))
        .map(|(_, what)| *what)
}

/// The IPv4 address an IPv4-mapped IPv6 address reaches, else `ip`.
pub fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// What a node reports of its owner's policy (`[owner]` and
/// `probes.allowed` of its configuration): enough for the hub to tell,
/// before sending a job, whether the node would refuse it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OwnerDigest {
    /// Probe kinds the owner allows (`probes.allowed`). Strings, so a kind
    /// a newer agent knows does not make its heartbeat unreadable here.
    #[serde(default)]
    pub allowed: Vec<String>,
    /// Whether probes may target special addresses (`owner.allow_special_addresses`).
    #[serde(default)]
    pub allow_special_addresses: bool,
    /// Most probes started per minute (`owner.max_probes_per_minute`).
    #[serde(default)]
    pub max_probes_per_minute: u32,
}

impl OwnerDigest {
    /// Refuses a probe kind the owner does not allow.
    pub fn check_kind(&self, kind: ProbeKind) -> Result<(), Refusal> {
        if self.allowed.iter().any(|k| k == kind.as_str()) {
            Ok(())
        } else {
            Err(Refusal::KindNotOnAllowlist(kind))
        }
    }

    /// Refuses a special address unless the owner allows them; says which range.
    pub fn check_special(&self, ip: IpAddr) -> Result<(), &'static str> {
        match special_range(ip) {
            Some(what) if !self.allow_special_addresses => Err(what),
            _ => Ok(()),
        }
    }

    /// Whether the node would run `job`, as far as the digest tells: its
    /// kind, a target given as an address (a name can resolve anywhere, so
    /// only the node judges it), and whether the job's runs per minute plus
    /// `recent` probes the node started in the last minute stay under its rate cap.
    pub fn admits(&self, job: &Job, recent: u32) -> Result<(), Refusal> {
        self.check_kind(job.probe.kind())?;
        let target = job.probe.target();
        if let Ok(ip) = target.parse::<IpAddr>()
            && let Err(what) = self.check_special(ip)
        {
            return Err(Refusal::OwnerPolicy(format!(
                "target address {ip} is {what}; the owner's policy forbids such targets (owner.allow_special_addresses)"
            )));
        }
        let wanted = runs_per_minute(job).saturating_add(recent);
        if wanted > self.max_probes_per_minute {
            return Err(Refusal::RateLimited(format!(
                "{wanted} probe(s) in a minute, the owner allows {} (owner.max_probes_per_minute)",
                self.max_probes_per_minute
            )));
        }
        Ok(())
    }
}

/// Most runs of `job` that start within one minute.
pub fn runs_per_minute(job: &Job) -> u32 {
    match job.repeat_secs {
        Some(r) if r > 0 && r < 60 => u32::try_from(60u64.div_ceil(r)).unwrap_or(u32::MAX),
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(probe: serde_json::Value, repeat: Option<u64>) -> Job {
        Job::from_value(
            &json!({"v": 1, "id": "j", "probe": probe, "select": "everyone",
            "limit": null, "not_before": 0, "expires": 600, "spread_secs": 0,
            "repeat_secs": repeat, "proposer": "alice"}),
        )
        .unwrap()
    }

    #[test]
    fn special_ranges_include_mapped_addresses() {
        for (a, want) in [
            ("127.0.0.1", Some("loopback")),
            ("::ffff:10.0.0.1", Some("private")),
            ("255.255.255.255", Some("broadcast")),
            ("2001:db8::1", Some("documentation")),
            ("8.8.8.8", None),
            ("2a00:1450::1", None),
        ] {
            assert_eq!(special_range(a.parse().unwrap()), want, "{a}");
        }
    }

    #[test]
    fn the_digest_predicts_each_refusal_with_its_code() {
        let owner = OwnerDigest {
            allowed: vec!["ping".into(), "dns".into()],
            allow_special_addresses: false,
            max_probes_per_minute: 10,
        };
        let ping = |host: &str, repeat| job(json!({"cmd": "ping", "args": {"host": host}}), repeat);
        let code = |j: &Job, recent| owner.admits(j, recent).err().map(|r| r.code());
        let table = [
            (ping("8.8.8.8", None), 0, None),
            (ping("example.com", None), 0, None),
            (ping("127.0.0.1", None), 0, Some("owner-policy")),
            (ping("::ffff:192.168.1.1", None), 0, Some("owner-policy")),
            (
                job(
                    json!({"cmd": "tcp", "args": {"host": "8.8.8.8", "port": 53}}),
                    None,
                ),
                0,
                Some("kind-not-allowed"),
            ),
            (ping("8.8.8.8", Some(5)), 0, Some("rate-limited")),
            (ping("8.8.8.8", Some(6)), 0, None),
            (ping("8.8.8.8", None), 9, None),
            (ping("8.8.8.8", None), 10, Some("rate-limited")),
        ];
        for (j, recent, want) in table {
            assert_eq!(code(&j, recent), want, "{:?} recent {recent}", j.probe);
        }
        let open = OwnerDigest {
            allow_special_addresses: true,
            ..owner.clone()
        };
        assert!(open.admits(&ping("127.0.0.1", None), 0).is_ok());
    }

    #[test]
    fn older_and_newer_digests_parse() {
        let d: OwnerDigest = serde_json::from_value(json!({})).unwrap();
        assert_eq!(d, OwnerDigest::default());
        let d: OwnerDigest = serde_json::from_value(json!({"allowed": ["ping", "quic"]})).unwrap();
        assert!(d.check_kind(ProbeKind::Ping).is_ok());
        assert!(d.check_kind(ProbeKind::Dns).is_err());
    }
}
