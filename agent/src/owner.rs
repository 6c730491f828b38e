//! The owner's local policy: which addresses and names a probe may target, and how often probes start.
//!
//! Checked on the resolved address, never only on the name, so a name that
//! points into a private range is refused like the address itself.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use crate::cidr::Cidr;
use crate::config::Owner;

/// Ranges no probe targets by default: private, loopback, link-local, ULA,
/// multicast, shared (CGNAT), documentation, benchmarking and reserved.
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

/// Why the owner's policy refuses a target.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Denied {
    /// The address lies in a special range and the owner did not allow those.
    #[error(
        "target address {ip} is {what}; the owner's policy forbids such targets (owner.allow_special_addresses)"
    )]
    Special {
        /// The resolved address.
        ip: IpAddr,
        /// Which kind of range.
        what: &'static str,
    },
    /// The address is in one of the owner's denied ranges.
    #[error("target address {0} is in a range the owner denies (owner.deny_cidrs)")]
    DeniedRange(IpAddr),
    /// The name is on the owner's deny list.
    #[error("target name {0} is denied by the owner (owner.deny_names)")]
    DeniedName(String),
    /// Too many probes in the last minute.
    #[error("rate cap reached: at most {0} probes per minute (owner.max_probes_per_minute)")]
    RateCap(u32),
}

/// The owner's policy, ready to check targets.
#[derive(Debug, Clone)]
pub struct OwnerPolicy {
    allow_special: bool,
    deny: Vec<Cidr>,
    deny_names: Vec<String>,
}

impl OwnerPolicy {
    /// Builds the policy from the validated `[owner]` section.
    pub fn new(cfg: &Owner) -> OwnerPolicy {
        OwnerPolicy {
            allow_special: cfg.allow_special_addresses,
            deny: cfg
                .deny_cidrs
                .iter()
                .filter_map(|c| Cidr::parse(c).ok())
                .collect(),
            deny_names: cfg
                .deny_names
                .iter()
                .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
                .collect(),
        }
    }

    /// Checks a host name before resolution (the deny list only).
    pub fn check_name(&self, name: &str) -> Result<(), Denied> {
        let n = name.trim_end_matches('.').to_ascii_lowercase();
        for d in &self.deny_names {
            if n == *d || n.ends_with(&format!(".{d}")) {
                return Err(Denied::DeniedName(name.to_string()));
            }
        }
        Ok(())
    }

    /// Checks a resolved target address.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Denied> {
        // An IPv4-mapped IPv6 address reaches the IPv4 host: judge that one.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        if !self.allow_special
            && let Some(what) = special_range(ip)
        {
            return Err(Denied::Special { ip, what });
        }
        if self.deny.iter().any(|c| c.contains(ip)) {
            return Err(Denied::DeniedRange(ip));
        }
        Ok(())
    }
}

/// Names the special range `ip` lies in, if any.
pub fn special_range(ip: IpAddr) -> Option<&'static str> {
    if ip == IpAddr::V4(Ipv4Addr::BROADCAST) {
        return Some("broadcast");
    }
    SPECIAL
        .iter()
        .find(|(c, _)| c.contains(ip))
        .map(|(_, what)| *what)
}

/// A sliding one-minute window capping how many probes start.
#[derive(Debug)]
pub struct RateCap {
    max: u32,
    starts: VecDeque<Instant>,
}

impl RateCap {
    /// A cap of `max` starts in any 60 seconds.
    pub fn new(max: u32) -> RateCap {
        RateCap {
            max,
            starts: VecDeque::new(),
        }
    }

    /// Takes one start at `now`, or refuses when the window is full.
    pub fn take(&mut self, now: Instant) -> Result<(), Denied> {
        while let Some(&t) = self.starts.front() {
            if now.duration_since(t) >= Duration::from_secs(60) {
                self.starts.pop_front();
            } else {
                break;
            }
        }
        if self.starts.len() >= self.max as usize {
            return Err(Denied::RateCap(self.max));
        }
        self.starts.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_policy() -> OwnerPolicy {
        OwnerPolicy::new(&Owner::default())
    }

    #[test]
    fn default_forbids_special_ranges() {
        let p = default_policy();
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "0.0.0.0",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "fc12::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "2001:db8::1",
        ] {
            let ip: IpAddr = a.parse().unwrap();
            assert!(p.check_ip(ip).is_err(), "{a} must be refused");
        }
        for a in ["8.8.8.8", "172.32.0.1", "2a00:1450::1", "1.1.1.1"] {
            let ip: IpAddr = a.parse().unwrap();
            assert!(p.check_ip(ip).is_ok(), "{a} must be allowed");
        }
        let e = p.check_ip("127.0.0.1".parse().unwrap()).unwrap_err();
        assert!(e.to_string().contains("loopback"), "{e}");
    }

    #[test]
    fn owner_can_allow_special_and_deny_more() {
        let p = OwnerPolicy::new(&Owner {
            allow_special_addresses: true,
            deny_cidrs: vec!["8.8.0.0/16".into(), "2a00::/16".into()],
            deny_names: vec!["Example.org.".into()],
            max_probes_per_minute: 5,
        });
        assert!(p.check_ip("127.0.0.1".parse().unwrap()).is_ok());
        assert_eq!(
            p.check_ip("8.8.4.4".parse().unwrap()),
            Err(Denied::DeniedRange("8.8.4.4".parse().unwrap()))
        );
        assert!(p.check_ip("2a00:1450::1".parse().unwrap()).is_err());
        assert!(p.check_ip("8.9.0.1".parse().unwrap()).is_ok());
        assert!(p.check_name("www.example.org").is_err());
        assert!(p.check_name("EXAMPLE.ORG.").is_err());
        assert!(p.check_name("notexample.org").is_ok());
    }

    #[test]
    fn rate_cap_slides() {
        let mut r = RateCap::new(2);
        let t0 = Instant::now();
        r.take(t0).unwrap();
        r.take(t0 + Duration::from_secs(10)).unwrap();
        assert_eq!(
            r.take(t0 + Duration::from_secs(59)),
            Err(Denied::RateCap(2))
        );
        r.take(t0 + Duration::from_secs(60)).unwrap();
    }
}
