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
use std::time::{Duration, Instant};

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
    message_within(event, position, hostname, usize::MAX).0
}

/// The most a UDP datagram carries: 65,535 bytes less the IPv4 and UDP
/// headers (IPv6 allows 20 more; the smaller is used for both).
pub const UDP_MAX: usize = 65_507;

/// [`message`], at most `max` bytes long: a message too long keeps its
/// header and position, says in its structured data how long its whole MSG
/// was (`truncated="BYTES"`), and carries as much of the MSG as fits, cut at
/// a character's boundary (RFC 5424 6.1 lets a receiver truncate a message
/// too long for it; over UDP the sender must). The event stays whole in the
/// log, where its position finds it. Whether it was cut comes with it.
pub fn message_within(event: &Event, position: i64, hostname: &str, max: usize) -> (String, bool) {
    let head = |extra: &str| {
        format!(
            "<{PRI}>1 {} {hostname} auditdesk - {} [{SD_ID} position=\"{position}\"{extra}] \u{feff}",
            crate::audit::event::format_time(event.time),
            event.action.as_str(),
        )
    };
    let line = event.to_json();
    let whole = head("");
    if whole.len() + line.len() <= max {
        return (whole + &line, false);
    }
    let mut cut = head(&format!(" truncated=\"{}\"", line.len()));
    let mut room = max.saturating_sub(cut.len()).min(line.len());
    while !line.is_char_boundary(room) {
        room -= 1;
    }
    cut.push_str(&line[..room]);
    (cut, true)
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
    hostname: String,
    tcp: Option<TcpStream>,
}

impl Sender {
    pub fn new(address: Address, timeout: Duration) -> Self {
        Self {
            address,
            timeout,
            hostname: hostname(),
            tcp: None,
        }
    }

    /// Sends the events (with their log positions) in order, one message
    /// each: `Err` names what failed.
    pub fn send(&mut self, events: &[(i64, Event)]) -> Result<(), String> {
        let result = match self.address.transport {
            Transport::Tcp => {
                let messages: Vec<String> = events
                    .iter()
                    .map(|(position, event)| message(event, *position, &self.hostname))
                    .collect();
                self.send_tcp(&messages)
            }
            Transport::Udp => self.send_udp(events),
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
        // The whole batch, connecting included, within one timeout: a
        // receiver reading slowly cannot hold the stream (and its lease) for
        // longer, as a timeout per write would let it.
        let deadline = Instant::now() + self.timeout;
        // A connection the receiver closed while idle is opened again.
        if self.tcp.as_ref().is_some_and(closed) {
            self.tcp = None;
        }
        if self.tcp.is_none() {
            let to = self.resolve()?;
            let stream = TcpStream::connect_timeout(&to, self.timeout)
                .map_err(|e| format!("cannot connect to {}: {e}", self.address))?;
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
        let timed_out = || {
            format!(
                "timed out after {} s writing to {}",
                self.timeout.as_secs_f64(),
                self.address
            )
        };
        let mut written = 0;
        while written < framed.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(timed_out());
            }
            stream
                .set_write_timeout(Some(left))
                .map_err(|e| e.to_string())?;
            match stream.write(&framed[written..]) {
                Ok(0) => return Err(format!("{} closed the connection", self.address)),
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(timed_out());
                }
                Err(e) => return Err(format!("cannot write to {}: {e}", self.address)),
            }
        }
        stream
            .flush()
            .map_err(|e| format!("cannot write to {}: {e}", self.address))?;
        // A receiver that closed the connection shows only at the next write,
        // when what this one wrote may be lost: look for its end now.
        if closed(stream) {
            return Err(format!("{} closed the connection", self.address));
        }
        Ok(())
    }

    fn send_udp(&mut self, events: &[(i64, Event)]) -> Result<(), String> {
        let to = self.resolve()?;
        let bind = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
        let socket = UdpSocket::bind(bind).map_err(|e| format!("cannot open a UDP socket: {e}"))?;
        for (position, event) in events {
            let (m, cut) = message_within(event, *position, &self.hostname, UDP_MAX);
            if cut {
                tracing::warn!(
                    position,
                    address = %self.address,
                    "an event too long for a UDP datagram was sent cut to {UDP_MAX} bytes"
                );
            }
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
    use crate::audit::EventInput;

    fn event(target: &str) -> Event {
        let json = serde_json::json!({
            "time": "2026-12-04T10:00:00Z", "action": "write", "resource_type": "workspace",
            "resource_target": target, "user": {"username": "alice"}, "status_code": 200,
        });
        EventInput::from_json(&json.to_string())
            .unwrap()
            .validate(chrono::Utc::now())
            .unwrap()
            .event
    }

    #[test]
    fn a_batch_to_a_slow_reader_fails_within_one_timeout() {
        use std::io::Read;
        // A receiver that reads 64 KiB every 200 ms: each write makes progress,
        // but 8 MiB would take half a minute.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = vec![0u8; 64 * 1024];
            while conn.read(&mut buf).is_ok_and(|n| n > 0) {
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        let address: Address = format!("tcp://127.0.0.1:{port}").parse().unwrap();
        let mut sender = Sender::new(address, Duration::from_secs(1));
        let messages = vec!["x".repeat(1024 * 1024); 8];
        let start = std::time::Instant::now();
        let e = sender.send_tcp(&messages).unwrap_err();
        assert!(e.contains("timed out after 1 s"), "{e}");
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn a_message_too_long_keeps_its_header_and_says_how_long_it_was() {
        let small = event("db");
        let (whole, cut) = message_within(&small, 7, "host", UDP_MAX);
        assert!(!cut);
        assert_eq!(whole, message(&small, 7, "host"));
        assert!(whole.ends_with(&small.to_json()), "{whole}");

        // A target of 300 three-byte characters: a line of 900 bytes and more.
        let big = event(&"€".repeat(300));
        let line = big.to_json();
        for max in [500, 501, 502] {
            let (m, cut) = message_within(&big, 7, "host", max);
            assert!(cut);
            assert!(m.len() <= max && m.len() > max - 3, "{} for {max}", m.len());
            let (head, msg) = m.split_once('\u{feff}').unwrap();
            assert!(
                head.ends_with(&format!("position=\"7\" truncated=\"{}\"] ", line.len())),
                "{head}"
            );
            assert!(
                line.starts_with(msg),
                "a prefix of the line, cut between characters"
            );
        }
    }

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
