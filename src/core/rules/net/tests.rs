#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;

fn inside(addr: &str, cidr: &str) -> bool {
    Cidr::parse(cidr)
        .unwrap()
        .contains(parse_peer(addr).unwrap())
}

#[test]
fn ipv4_blocks() {
    assert!(inside("10.1.2.3:5000", "10.0.0.0/8"));
    assert!(inside("10.255.255.255", "10.0.0.0/8"));
    assert!(!inside("11.0.0.1:1", "10.0.0.0/8"));
    assert!(inside("192.168.1.7:80", "192.168.1.7"));
    assert!(!inside("192.168.1.8:80", "192.168.1.7"));
    assert!(inside("8.8.8.8:53", "0.0.0.0/0"));
    assert!(inside("172.31.0.1:1", "172.16.0.0/12"));
    assert!(!inside("172.32.0.1:1", "172.16.0.0/12"));
}

#[test]
fn ipv6_blocks() {
    assert!(inside("[2001:db8::1]:443", "2001:db8::/32"));
    assert!(!inside("[2001:db9::1]:443", "2001:db8::/32"));
    assert!(inside("::1", "::1/128"));
    assert!(inside("[::1]", "::1"));
    assert!(inside("[fd12:3456::9]:1", "fd00::/8"));
    assert!(inside("[::2]:1", "::/0"));
}

#[test]
fn ipv4_mapped_ipv6_is_the_same_address() {
    assert!(inside("[::ffff:10.1.2.3]:5000", "10.0.0.0/8"));
    assert!(!inside("[::ffff:11.1.2.3]:5000", "10.0.0.0/8"));
    assert!(inside("10.1.2.3:5000", "::ffff:10.0.0.0/104"));
}

#[test]
fn families_do_not_mix_otherwise() {
    assert!(!inside("[2001:db8::1]:1", "0.0.0.0/0"));
    // an IPv4 peer is also its mapped IPv6 form, which every IPv6 block containing
    // ::ffff:0:0/96 (such as ::/0) includes
    assert!(inside("10.0.0.1:1", "::ffff:0:0/96"));
    assert!(!inside("10.0.0.1:1", "2001:db8::/32"));
}

#[test]
fn bad_cidrs_are_refused() {
    assert_eq!(Cidr::parse("10.0.0.0/33"), Err(CidrError::Prefix));
    assert_eq!(Cidr::parse("10.0.0.0/"), Err(CidrError::Prefix));
    assert_eq!(Cidr::parse("10.0.0.0/+8"), Err(CidrError::Prefix));
    assert_eq!(Cidr::parse("10.0.0.0/08a"), Err(CidrError::Prefix));
    assert_eq!(Cidr::parse("::/129"), Err(CidrError::Prefix));
    assert_eq!(Cidr::parse("10.1.0.0/8"), Err(CidrError::HostBits));
    assert_eq!(Cidr::parse("10.0.0/8"), Err(CidrError::Address));
    assert_eq!(Cidr::parse("example.org/8"), Err(CidrError::Address));
    assert_eq!(Cidr::parse(""), Err(CidrError::Address));
}

#[test]
fn bad_peers_are_refused() {
    for bad in [
        "",
        "pipe:/tmp/x",
        "10.0.0",
        "host:80",
        "[fe80::1%eth0]:80",
        "fe80::1%1",
        "[::1",
    ] {
        assert_eq!(parse_peer(bad), None, "{bad}");
    }
}
