//! The owner's local policy: which addresses and names a probe may target, and how often probes start.
//!
//! Checked on the resolved address, never only on the name, so a name that
//! points into a private range is refused like the address itself.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use vantage_proto::cidr::Cidr;
use vantage_proto::owner::{OwnerDigest, special_range, unmapped};

use crate::config::{Config, Owner};

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

/// What the node reports of its owner's policy: the probe kinds allowed
/// and the `[owner]` settings the hub can judge jobs by.
pub fn digest(cfg: &Config) -> OwnerDigest {
    OwnerDigest {
        allowed: cfg.probes.allowed.clone(),
        allow_special_addresses: cfg.owner.allow_special_addresses,
        max_probes_per_minute: cfg.owner.max_probes_per_minute,
    }
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
    pub fn new(owner: &Owner) -> OwnerPolicy {
        OwnerPolicy {
            allow_special: owner.allow_special_addresses,
            deny: owner
                .deny_cidrs
                .iter()
                .filter_map(|c| Cidr::parse(c).ok())
                .collect(),
            deny_names: owner
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
        let ip = unmapped(ip);
        // The ranges the hub judges jobs by too (`OwnerDigest::admits`).
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
