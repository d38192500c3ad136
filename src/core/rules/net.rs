//! IP addresses and CIDR blocks for the `inCidr()` rule function. Pure parsing with `std::net`
//! (works on every target).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// An address block such as `10.0.0.0/8` or `2001:db8::/32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// Why a CIDR string was refused (never includes the text itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CidrError {
    /// Not an IP address before the `/`.
    Address,
    /// Prefix length missing its digits, not a number, or too long for the family.
    Prefix,
    /// Bits set after the prefix, e.g. `10.1.0.0/8` (write `10.0.0.0/8`).
    HostBits,
}

impl CidrError {
    /// Human-readable reason.
    pub fn reason(self) -> &'static str {
        match self {
            CidrError::Address => "not an IP address or CIDR block",
            CidrError::Prefix => "prefix length is invalid for the address family",
            CidrError::HostBits => "address has bits set after the prefix length",
        }
    }
}

impl Cidr {
    /// Parses `addr/prefix`, or a bare address (a single host). Host bits must be zero.
    pub fn parse(s: &str) -> Result<Cidr, CidrError> {
        let (addr_text, prefix_text) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr_text.parse().map_err(|_| CidrError::Address)?;
        let max = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let prefix = match prefix_text {
            None => max,
            Some(p) => {
                if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(CidrError::Prefix);
                }
                let n: u8 = p.parse().map_err(|_| CidrError::Prefix)?;
                if n > max {
                    return Err(CidrError::Prefix);
                }
                n
            }
        };
        let cidr = Cidr { addr, prefix };
        if mask(addr, prefix) != bits(addr) {
            return Err(CidrError::HostBits);
        }
        Ok(cidr)
    }

    /// True when `ip` lies in the block. IPv4 addresses and their IPv4-mapped IPv6 form
    /// (`::ffff:a.b.c.d`) are treated as the same address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        if self.contains_same_family(ip) {
            return true;
        }
        match alternate(ip) {
            Some(other) => self.contains_same_family(other),
            None => false,
        }
    }

    fn contains_same_family(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                mask(ip, self.prefix) == bits(self.addr)
            }
            _ => false,
        }
    }
}

/// The address as an integer, IPv4 in the low 32 bits.
fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address with everything after `prefix` bits cleared.
fn mask(ip: IpAddr, prefix: u8) -> u128 {
    let width: u32 = match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    };
    let prefix = u32::from(prefix).min(width);
    if prefix == 0 {
        return 0;
    }
    let host_bits = width - prefix;
    let m = u128::MAX.checked_shl(host_bits).unwrap_or(0);
    bits(ip) & m
}

/// IPv4 <-> IPv4-mapped IPv6.
fn alternate(ip: IpAddr) -> Option<IpAddr> {
    match ip {
        IpAddr::V4(v4) => Some(IpAddr::V6(v4.to_ipv6_mapped())),
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
    }
}

/// Parses a peer address as Envoy reports it: `ip:port`, `[v6]:port`, a bare IPv4 or IPv6
/// address, or `[v6]`. Zone identifiers and anything else are refused.
pub fn parse_peer(s: &str) -> Option<IpAddr> {
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return match sa {
            SocketAddr::V6(v6) if v6.scope_id() != 0 => None,
            other => Some(other.ip()),
        };
    }
    if let Ok(v4) = s.parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(v4));
    }
    let inner = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

#[cfg(test)]
mod tests;
