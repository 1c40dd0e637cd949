//! Syslog streams: each event an RFC 5424 message whose MSG is its NDJSON
//! line, sent over TCP with octet-counted framing (RFC 6587: `LEN SP MSG`)
//! or over UDP, one datagram each.
//!
//! Over TCP a batch is delivered once every byte of it was written and
//! flushed on a connection that is still open: syslog has no answer of its
//! own, so an event may be lost with a receiver that fails after reading it
//! and before keeping it (RELP would close that gap). Over UDP nothing is
//! acknowledged at all: a datagram sent is taken as delivered.

use std::fmt;
use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::str::FromStr;
use std::time::Duration;

use crate::audit::Event;

/// How messages travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Udp,
}

/// A syslog server: `tcp://HOST:PORT` or `udp://HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub transport: Transport,
    /// `HOST:PORT` as given (a name, an IPv4 address, or `[IPv6]`).
    pub host_port: String,
}

impl FromStr for Address {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |why: &str| format!("invalid syslog address '{s}': {why}");
        let (transport, rest) = if let Some(rest) = s.strip_prefix("tcp://") {
            (Transport::Tcp, rest)
        } else if let Some(rest) = s.strip_prefix("udp://") {
            (Transport::Udp, rest)
        } else {
            return Err(invalid("use tcp://HOST:PORT or udp://HOST:PORT"));
        };
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| invalid("the port is missing"))?;
        if host.is_empty()
            || host.contains(['/', '?', '#', '@'])
            || host.chars().any(char::is_whitespace)
        {
            return Err(invalid("the host is missing or malformed"));
        }
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => return Err(invalid("the port must be a number from 1 to 65535")),
        }
        Ok(Self {
            transport,
            host_port: rest.to_owned(),
        })
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.transport {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        };
        write!(f, "{scheme}://{}", self.host_port)
    }
}

/// Facility 13 (log audit), severity 6 (informational): `<110>`.
const PRI: u8 = 13 * 8 + 6;
/// RFC 5612's number for documentation, until Auditdesk has its own.
const SD_ID: &str = "auditdesk@32473";

/// One event as an RFC 5424 message: its time, this host, `auditdesk`, the
/// action as MSGID, its log position as structured data, and its NDJSON
/// line as MSG (after the BOM that says it is UTF-8).
pub fn message(event: &Event, position: i64, hostname: &str) -> String {
    format!(
        "<{PRI}>1 {} {hostname} auditdesk - {} [{SD_ID} position=\"{position}\"] \u{feff}{}",
        crate::audit::event::format_time(event.time),
        event.action.as_str(),
        event.to_json()
    )
}

/// This machine's name as RFC 5424 wants it: printable ASCII, at most 255
/// characters, `-` when unknown.
pub fn hostname() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    if name.is_empty() || name.len() > 255 || !name.bytes().all(|b| (33..=126).contains(&b)) {
        "-".to_owned()
    } else {
        name
    }
}

/// A connection to a syslog server, opened when first needed and again
/// after a failure.
pub struct Sender {
    address: Address,
    timeout: Duration,
    tcp: Option<TcpStream>,
}

impl Sender {
    pub fn new(address: Address, timeout: Duration) -> Self {
        Self {
            address,
            timeout,
            tcp: None,
        }
    }

    /// Sends the messages, in order: `Err` names what failed.
    pub fn send(&mut self, messages: &[String]) -> Result<(), String> {
        let result = match self.address.transport {
            Transport::Tcp => self.send_tcp(messages),
            Transport::Udp => self.send_udp(messages),
        };
        if result.is_err() {
            self.tcp = None;
        }
        result
    }

    fn resolve(&self) -> Result<std::net::SocketAddr, String> {
        self.address
            .host_port
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {}: {e}", self.address.host_port))?
            .next()
            .ok_or_else(|| format!("{} has no address", self.address.host_port))
    }

    fn send_tcp(&mut self, messages: &[String]) -> Result<(), String> {
        // A connection the receiver closed while idle is opened again.
        if self.tcp.as_ref().is_some_and(closed) {
            self.tcp = None;
        }
        if self.tcp.is_none() {
            let to = self.resolve()?;
            let stream = TcpStream::connect_timeout(&to, self.timeout)
                .map_err(|e| format!("cannot connect to {}: {e}", self.address))?;
            stream
                .set_write_timeout(Some(self.timeout))
                .map_err(|e| e.to_string())?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            self.tcp = Some(stream);
        }
        let Some(stream) = self.tcp.as_mut() else {
            return Err("no connection".into());
        };
        let mut framed = Vec::with_capacity(messages.iter().map(|m| m.len() + 8).sum());
        for m in messages {
            framed.extend_from_slice(format!("{} ", m.len()).as_bytes());
            framed.extend_from_slice(m.as_bytes());
        }
        stream
            .write_all(&framed)
            .and_then(|()| stream.flush())
            .map_err(|e| format!("cannot write to {}: {e}", self.address))?;
        // A receiver that closed the connection shows only at the next write,
        // when what this one wrote may be lost: look for its end now.
        if closed(stream) {
            return Err(format!("{} closed the connection", self.address));
        }
        Ok(())
    }

    fn send_udp(&mut self, messages: &[String]) -> Result<(), String> {
        let to = self.resolve()?;
        let bind = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
        let socket = UdpSocket::bind(bind).map_err(|e| format!("cannot open a UDP socket: {e}"))?;
        for m in messages {
            socket
                .send_to(m.as_bytes(), to)
                .map_err(|e| format!("cannot send to {}: {e}", self.address))?;
        }
        Ok(())
    }
}

/// Whether the peer has closed or reset the connection (it sends nothing
/// otherwise): any answer but "nothing to read yet" means what was written
/// may be lost.
fn closed(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    if stream.set_nonblocking(true).is_err() {
        return true;
    }
    let gone = match stream.peek(&mut byte) {
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        Ok(n) => n == 0,
    };
    let _ = stream.set_nonblocking(false);
    gone
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_name_their_transport_host_and_port() {
        let a: Address = "tcp://127.0.0.1:6514".parse().unwrap();
        assert_eq!(a.transport, Transport::Tcp);
        assert_eq!(a.to_string(), "tcp://127.0.0.1:6514");
        let a: Address = "udp://[::1]:514".parse().unwrap();
        assert_eq!(a.transport, Transport::Udp);
        for bad in [
            "127.0.0.1:514",
            "tcp://127.0.0.1",
            "tcp://:514",
            "udp://h:0",
            "udp://h:x",
            "http://h:1",
        ] {
            let e = bad.parse::<Address>().unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }
}
