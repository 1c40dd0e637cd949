//! Who the client is when the server sits behind a reverse proxy.
//!
//! Anyone can send `X-Forwarded-For` or `Forwarded`, so they are believed only
//! when the peer is a proxy the operator named (`serve --trusted-proxy`), and
//! then only as far back as the hops are trusted: the client is the rightmost
//! address that is not a trusted proxy. Everything to its left was written by
//! the client itself and could be anything.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

/// A `--trusted-proxy` entry that is not an address or a CIDR block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IP address or a CIDR block (e.g. 10.0.0.0/8, 192.0.2.7, ::1)")]
pub struct BadProxy(pub String);

impl FromStr for TrustedProxies {
    type Err = BadProxy;

    /// A comma-separated list of CIDR blocks or single addresses; empty means none.
    fn from_str(s: &str) -> Result<Self, BadProxy> {
        let mut nets = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let net = match part.parse::<IpNet>() {
                Ok(net) => net,
                Err(_) => part
                    .parse::<IpAddr>()
                    .map(IpNet::from)
                    .map_err(|_| BadProxy(part.to_owned()))?,
            };
            nets.push(net);
        }
        Ok(Self(nets))
    }
}

impl TrustedProxies {
    /// Whether `ip` is one of the trusted proxies (an IPv4-mapped IPv6
    /// address counts as its IPv4 address).
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// Whether any proxy is trusted at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The client's address: the peer itself unless it is a trusted proxy;
    /// then the rightmost hop of `hops` (the forwarding headers' addresses,
    /// oldest first) that is not trusted. When every hop is trusted, or a hop
    /// cannot be read, the last address that could be read stands.
    pub fn client(&self, peer: IpAddr, hops: &[Option<IpAddr>]) -> IpAddr {
        let mut client = canonical(peer);
        if !self.trusts(client) {
            return client;
        }
        for hop in hops.iter().rev() {
            let Some(hop) = hop else {
                break;
            };
            client = canonical(*hop);
            if !self.trusts(client) {
                break;
            }
        }
        client
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The addresses of `X-Forwarded-For` header values, oldest first; an entry
/// that is not an address is `None`.
pub fn x_forwarded_for<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Option<IpAddr>> {
    values
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(|hop| parse_hop(hop.trim()))
        .collect()
}

/// The `for=` addresses of RFC 7239 `Forwarded` header values, oldest first;
/// an element without a readable `for=` (an obfuscated or unknown node) is `None`.
pub fn forwarded<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Option<IpAddr>> {
    values
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(|element| {
            element
                .split(';')
                .filter_map(|pair| pair.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
                .and_then(|(_, v)| parse_hop(v.trim().trim_matches('"')))
        })
        .collect()
}

/// One hop: `192.0.2.1`, `192.0.2.1:443`, `2001:db8::1` or `[2001:db8::1]:443`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let (host, port) = hop.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn lists_of_blocks_and_addresses_parse_and_bad_ones_are_named() {
        let t: TrustedProxies = "10.0.0.0/8, 192.0.2.7,::1".parse().unwrap();
        assert!(t.trusts(ip("10.1.2.3")));
        assert!(t.trusts(ip("192.0.2.7")));
        assert!(!t.trusts(ip("192.0.2.8")));
        assert!(t.trusts(ip("::1")));
        assert!(t.trusts(ip("::ffff:10.0.0.1")), "IPv4-mapped");
        assert!("".parse::<TrustedProxies>().unwrap().is_empty());
        assert_eq!(
            "10.0.0.0/8,proxy.local".parse::<TrustedProxies>(),
            Err(BadProxy("proxy.local".into()))
        );
        assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop() {
        let t: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        let hops = x_forwarded_for(["203.0.113.9, 198.51.100.4", "10.0.0.5"]);
        assert_eq!(t.client(ip("10.0.0.1"), &hops), ip("198.51.100.4"));
        // An untrusted peer's headers are not read at all.
        assert_eq!(t.client(ip("198.51.100.1"), &hops), ip("198.51.100.1"));
        // Nothing trusted: the peer.
        let none = TrustedProxies::default();
        assert_eq!(none.client(ip("10.0.0.1"), &hops), ip("10.0.0.1"));
        // Only trusted hops: the oldest of them.
        let inner = x_forwarded_for(["10.0.0.9"]);
        assert_eq!(t.client(ip("10.0.0.1"), &inner), ip("10.0.0.9"));
        // A hop that is not an address stops the walk at the last one read.
        let junk = x_forwarded_for(["evil, 10.0.0.7"]);
        assert_eq!(t.client(ip("10.0.0.1"), &junk), ip("10.0.0.7"));
        // No header: the proxy itself.
        assert_eq!(t.client(ip("10.0.0.1"), &[]), ip("10.0.0.1"));
    }

    #[test]
    fn forwarded_elements_give_their_for_addresses() {
        let hops = forwarded([
            "for=192.0.2.60;proto=http;by=203.0.113.43",
            r#"For="[2001:db8:cafe::17]:4711", for=unknown"#,
            "for=198.51.100.17:8080",
        ]);
        assert_eq!(
            hops,
            vec![
                Some(ip("192.0.2.60")),
                Some(ip("2001:db8:cafe::17")),
                None,
                Some(ip("198.51.100.17")),
            ]
        );
    }
}
