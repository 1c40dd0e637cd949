//! The client's address as the throttle and our own events see it: the
//! peer's, or, behind a proxy named by `--trusted-proxy`, the rightmost
//! untrusted hop of the one forwarding header that proxy writes
//! (`--forwarded-header`). See [`crate::net`] for why.

use std::net::IpAddr;

use actix_web::{HttpRequest, http::header, web};

use super::AppState;
use crate::net::{ForwardedHeader, canonical};

/// The client's address, as text (empty when the peer is unknown).
pub fn client_ip(req: &HttpRequest) -> String {
    let Some(peer) = req.peer_addr().map(|a| canonical(a.ip())) else {
        return String::new();
    };
    let Some(config) = req
        .app_data::<web::Data<AppState>>()
        .map(|s| &s.config)
        .filter(|c| c.trusted_proxies.trusts(peer))
    else {
        return peer.to_string();
    };
    let values = |name: header::HeaderName| -> Vec<&str> {
        req.headers()
            .get_all(name)
            .map(|v| v.to_str().unwrap_or("?"))
            .collect()
    };
    let hops = match config.forwarded_header {
        ForwardedHeader::XForwardedFor => {
            x_forwarded_for(values(header::HeaderName::from_static("x-forwarded-for")))
        }
        ForwardedHeader::Forwarded => forwarded(values(header::FORWARDED)),
    };
    config.trusted_proxies.client(peer, &hops).to_string()
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
    use crate::net::TrustedProxies;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
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
