//! Address ranges in CIDR notation, as a node's owner writes them
//! (`owner.deny_cidrs`) and as the special ranges are listed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address range in CIDR notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    len: u8,
}

/// A malformed CIDR.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}; write an address range like 192.0.2.0/24 or 2001:db8::/32")]
pub struct CidrError(String);

impl Cidr {
    /// Parses `addr/len` (or a bare address, meaning one host).
    pub fn parse(s: &str) -> Result<Cidr, CidrError> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let net: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| CidrError(format!("{a:?} is not an IP address")))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let len = match l {
            Some(l) => l
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&n| n <= max)
                .ok_or_else(|| CidrError(format!("prefix length {l:?} is not in 0..={max}")))?,
            None => max,
        };
        Ok(Cidr { net, len })
    }

    pub(crate) const fn v4(a: [u8; 4], len: u8) -> Cidr {
        Cidr {
            net: IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])),
            len,
        }
    }

    pub(crate) const fn v6(seg0: u16, seg1: u16, len: u8) -> Cidr {
        Cidr {
            net: IpAddr::V6(Ipv6Addr::new(seg0, seg1, 0, 0, 0, 0, 0, 0)),
            len,
        }
    }

    /// Whether `ip` lies inside this range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), self.len),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), self.len),
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], len: u8) -> bool {
    let full = usize::from(len / 8);
    if a[..full] != b[..full] {
        return false;
    }
    let rest = len % 8;
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    a[full] & mask == b[full] & mask
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cidr_parse_errors() {
        assert!(Cidr::parse("1.2.3.4/33").is_err());
        assert!(Cidr::parse("::/129").is_err());
        assert!(Cidr::parse("host/8").is_err());
        assert_eq!(Cidr::parse("1.2.3.4").unwrap().len, 32);
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("9.9.9.9".parse().unwrap())
        );
    }

    proptest! {
        #[test]
        fn cidr_contains_its_network(a: [u8; 4], len in 0u8..=32) {
            let s = format!("{}.{}.{}.{}/{len}", a[0], a[1], a[2], a[3]);
            let c = Cidr::parse(&s).unwrap();
            prop_assert!(c.contains(IpAddr::V4(Ipv4Addr::from(a))));
        }

        #[test]
        fn cidr_parse_never_panics(s in "\\PC{0,40}") {
            let _ = Cidr::parse(&s);
        }
    }
}
