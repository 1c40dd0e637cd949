//! Streams (CONTRACT.md, "Streams"): every stored event forwarded to a
//! webhook, in log-position order, at least once, signed; a receiver that
//! fails and comes back misses nothing; a stream failing past its limit is
//! marked failing and audited; a filtered stream gets exactly its events;
//! `auditdesk stream ...` manages them, audited, with one-line errors.
//!
//! The receiver is a real HTTP server on 127.0.0.1 in the test, which can be
//! told to answer 500 and to come back.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auditdesk::audit::filter::RawQuery;
use auditdesk::audit::{NewEvent, store};
use auditdesk::auth::Secret;
use auditdesk::auth::users::ChangedBy;
use auditdesk::db::DbConn;
use auditdesk::db::events::{Criteria, OnConflict};
use auditdesk::streams::deliver::Settings;
use auditdesk::streams::webhook::{Roots, signature};
use auditdesk::streams::{self, Health, NewStream};

use crate::cli::{auditdesk, serve_with};
use crate::helpers::{Backend, TestApp, TestDb, new_event};

/// One request the receiver took.
#[derive(Debug, Clone)]
struct Delivery {
    /// The request's target: path and query.
    target: String,
    content_type: String,
    delivery: String,
    signature: Option<String>,
    body: Vec<u8>,
}

/// A webhook receiver: records what it is sent, answers 200, or 500 while
/// told to fail.
struct Receiver {
    port: u16,
    https: bool,
    got: Arc<Mutex<Vec<Delivery>>>,
    failing: Arc<AtomicBool>,
    refused: Arc<AtomicUsize>,
    knobs: Arc<Knobs>,
}

/// How the receiver answers, and what it saw of concurrent requests.
#[derive(Default)]
struct Knobs {
    /// Milliseconds it takes before answering.
    delay_ms: std::sync::atomic::AtomicU64,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
}

impl Receiver {
    fn start() -> Self {
        Self::start_with(None)
    }

    /// A receiver that speaks HTTPS with `tls`'s certificate.
    fn start_tls(tls: openssl::ssl::SslAcceptor) -> Self {
        Self::start_with(Some(Arc::new(tls)))
    }

    fn start_with(tls: Option<Arc<openssl::ssl::SslAcceptor>>) -> Self {
        let https = tls.is_some();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let failing = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(AtomicUsize::new(0));
        let knobs = Arc::new(Knobs::default());
        let (g, f, r, k) = (got.clone(), failing.clone(), refused.clone(), knobs.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (g, f, r, k) = (g.clone(), f.clone(), r.clone(), k.clone());
                let tls = tls.clone();
                std::thread::spawn(move || {
                    let _ = match tls {
                        None => serve(stream, &g, &f, &r, &k),
                        // A client that gives up in the handshake (a
                        // certificate it does not trust) sends nothing.
                        Some(tls) => match tls.accept(stream) {
                            Ok(stream) => serve(stream, &g, &f, &r, &k),
                            Err(_) => Ok(()),
                        },
                    };
                });
            }
        });
        Self {
            port,
            https,
            got,
            failing,
            refused,
            knobs,
        }
    }

    fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}/hook?x=1", self.port)
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.got.lock().unwrap().clone()
    }

    /// The event ids received, in the order received (repeats included).
    fn ids(&self) -> Vec<String> {
        self.deliveries()
            .iter()
            .flat_map(|d| lines(&d.body))
            .map(|v| v["id"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn lines(body: &[u8]) -> Vec<serde_json::Value> {
    std::str::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

/// Serves one connection's requests (reqwest keeps connections alive).
fn serve(
    stream: impl Read + Write,
    got: &Mutex<Vec<Delivery>>,
    failing: &AtomicBool,
    refused: &AtomicUsize,
    knobs: &Knobs,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let line = line.trim_end().to_owned();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let length: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
        let now = knobs.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        knobs.most_in_flight.fetch_max(now, Ordering::AcqRel);
        std::thread::sleep(Duration::from_millis(
            knobs.delay_ms.load(Ordering::Acquire),
        ));
        knobs.in_flight.fetch_sub(1, Ordering::AcqRel);
        if failing.load(Ordering::Acquire) {
            refused.fetch_add(1, Ordering::AcqRel);
            reader
                .get_mut()
                .write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")?;
            continue;
        }
        got.lock().unwrap().push(Delivery {
            target: request_line
                .split(' ')
                .nth(1)
                .unwrap_or_default()
                .to_owned(),
            content_type: header("content-type").unwrap_or_default(),
            delivery: header("x-auditdesk-delivery").unwrap_or_default(),
            signature: header("x-auditdesk-signature"),
            body,
        });
        reader
            .get_mut()
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")?;
    }
}

/// Quick settings: a stream looks for new events every 50 ms, and retries
/// within 300 ms.
fn quick(fail_after: Duration) -> Settings {
    Settings {
        fail_after,
        timeout: Duration::from_secs(5),
        batch: 100,
        poll: Duration::from_millis(50),
        max_backoff: Duration::from_millis(300),
        webhook_roots: None,
    }
}

async fn app_with(backend: Backend, settings: Settings) -> Option<TestApp> {
    TestApp::spawn_with(backend, move |c| c.streams = settings).await
}

fn event(n: u32, action: &str, target: &str) -> NewEvent {
    new_event(
        &serde_json::json!({
            "id": format!("00000000-0000-4000-8000-{n:012}"),
            "time": "2026-03-01T00:00:00Z",
            "user": {"username": "alice", "email": "alice@example.com"},
            "action": action,
            "resource_type": "workspace",
            "resource_id": format!("ws-{n}"),
            "resource_target": target,
            "ip": "192.0.2.1",
            "user_agent": "test",
            "status_code": 200,
            "request_id": format!("req-{n}"),
            "diff": {"name": {"old": "a", "new": "b"}}
        })
        .to_string(),
    )
}

fn store_events(conn: &mut DbConn, from: u32, n: u32, action: &str, target: &str) {
    let batch: Vec<NewEvent> = (from..from + n).map(|i| event(i, action, target)).collect();
    for chunk in batch.chunks(200) {
        store::store_batch(conn, chunk, OnConflict::RefuseBatch).unwrap();
    }
}

/// Every event of the log, by position: their ids.
fn log_ids(conn: &mut DbConn) -> Vec<String> {
    let entries = auditdesk::db::log::event_ids(conn, 0, 1_000_000).unwrap();
    let ids: Vec<i64> = entries.iter().map(|&(_, id)| id).collect();
    let rows = auditdesk::db::events::among(conn, &Criteria::default(), &ids).unwrap();
    let uuid: std::collections::HashMap<i64, String> =
        rows.into_iter().map(|r| (r.id, r.event_uuid)).collect();
    ids.iter().map(|id| uuid[id].clone()).collect()
}

fn add(conn: &mut DbConn, name: &str, url: &str, secret: Option<&str>, filters: &str) -> i64 {
    let params = auditdesk::audit::filter::QueryParams::parse(filters, &[]);
    let raw: RawQuery = params.raw;
    streams::add(
        conn,
        NewStream {
            name,
            kind: "webhook",
            target: url,
            secret: secret.map(Secret::new),
            filters: &raw,
        },
        &ChangedBy::local_operator(),
    )
    .unwrap()
    .id
}

/// Waits until `done` holds, for at most `within`.
async fn until(within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < within, "not within {within:?}: {what}");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The received ids, first sightings only (a repeat is a redelivery).
fn first_sightings(ids: &[String]) -> Vec<String> {
    let mut seen = HashSet::new();
    ids.iter()
        .filter(|i| seen.insert((*i).clone()))
        .cloned()
        .collect()
}

fn health(conn: &mut DbConn, id: i64) -> Health {
    streams::list(conn)
        .unwrap()
        .into_iter()
        .find(|s| s.id == id)
        .expect("the stream is listed")
        .health
}

async fn a_webhook_gets_every_event_in_order_signed(backend: Backend) {
    let Some(app) = app_with(backend, quick(Duration::from_secs(3600))).await else {
        return;
    };
    let receiver = Receiver::start();
    let mut conn = app.conn();
    // Events before the stream and after it: it starts from the first.
    store_events(&mut conn, 1, 250, "write", "before");
    let id = add(
        &mut conn,
        "siem",
        &receiver.url(),
        Some("s3cret ünïcode"),
        "",
    );
    store_events(&mut conn, 1000, 250, "create", "after");
    let want = log_ids(&mut conn);
    assert_eq!(want.len(), 501, "the events and the stream's own creation");
    until(Duration::from_secs(30), "every event delivered", || {
        first_sightings(&receiver.ids()).len() >= want.len()
    })
    .await;
    assert_eq!(first_sightings(&receiver.ids()), want, "in log order");
    for d in receiver.deliveries() {
        assert_eq!(d.target, "/hook?x=1", "the URL is used whole");
        assert_eq!(d.content_type, "application/x-ndjson");
        assert!(uuid::Uuid::parse_str(&d.delivery).is_ok(), "{}", d.delivery);
        assert_eq!(
            d.signature.as_deref(),
            Some(signature("s3cret ünïcode", &d.body).as_str()),
            "each batch is signed with the stream's secret"
        );
        assert!(
            lines(&d.body).len() <= 100,
            "a batch holds at most the batch size"
        );
    }
    let listed = streams::list(&mut conn).unwrap();
    let s = listed.iter().find(|s| s.id == id).unwrap();
    assert_eq!(s.health, Health::Delivering);
    assert_eq!(s.behind(streams::log_end(&mut conn).unwrap()), 0);
    assert!(s.delivered >= 501);
    // The stream's creation is audited, its secret as a secret.
    let created = receiver
        .deliveries()
        .iter()
        .flat_map(|d| lines(&d.body))
        .find(|e| e["resource_type"] == "stream")
        .expect("the stream's creation is an event");
    assert_eq!(created["action"], "create");
    assert_eq!(created["diff"]["secret"]["secret"], true);
    assert!(!created.to_string().contains("s3cret"), "{created}");
    // A query's values may be the receiver's token: shown and recorded hidden.
    let shown = format!("http://127.0.0.1:{}/hook?x=******", receiver.port);
    assert_eq!(created["diff"]["target"]["new"], shown.as_str());
    assert_eq!(s.destination.shown(), shown);
}

/// A certificate authority of the test's own, and a TLS acceptor with a
/// certificate it signed for 127.0.0.1: (the CA's certificate as PEM, the
/// acceptor).
fn private_ca() -> (Vec<u8>, openssl::ssl::SslAcceptor) {
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::nid::Nid;
    use openssl::pkey::{PKey, Private};
    use openssl::ssl::{SslAcceptor, SslMethod};
    use openssl::x509::extension::{
        AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage,
        SubjectAlternativeName, SubjectKeyIdentifier,
    };
    use openssl::x509::{X509, X509Builder, X509Name, X509NameBuilder};

    let key = || -> PKey<Private> {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
    };
    let name = |cn: &str| -> X509Name {
        let mut n = X509NameBuilder::new().unwrap();
        n.append_entry_by_text("CN", cn).unwrap();
        n.build()
    };
    let builder = |serial: u32, subject: &X509Name, issuer: &X509Name, key: &PKey<Private>| {
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        b.set_serial_number(&BigNum::from_u32(serial).unwrap().to_asn1_integer().unwrap())
            .unwrap();
        b.set_subject_name(subject).unwrap();
        b.set_issuer_name(issuer).unwrap();
        b.set_pubkey(key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(2).unwrap())
            .unwrap();
        b
    };

    let ca_key = key();
    let ca_name = name("Auditdesk test CA");
    let mut b = builder(1, &ca_name, &ca_name, &ca_key);
    b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
        .unwrap();
    b.append_extension(
        KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build()
            .unwrap(),
    )
    .unwrap();
    let ski = SubjectKeyIdentifier::new()
        .build(&b.x509v3_context(None, None))
        .unwrap();
    b.append_extension(ski).unwrap();
    b.sign(&ca_key, MessageDigest::sha256()).unwrap();
    let ca: X509 = b.build();

    let leaf_key = key();
    let mut b = builder(2, &name("127.0.0.1"), &ca_name, &leaf_key);
    b.append_extension(BasicConstraints::new().build().unwrap())
        .unwrap();
    b.append_extension(
        KeyUsage::new()
            .critical()
            .digital_signature()
            .build()
            .unwrap(),
    )
    .unwrap();
    b.append_extension(ExtendedKeyUsage::new().server_auth().build().unwrap())
        .unwrap();
    let san = SubjectAlternativeName::new()
        .ip("127.0.0.1")
        .build(&b.x509v3_context(Some(&ca), None))
        .unwrap();
    b.append_extension(san).unwrap();
    let aki = AuthorityKeyIdentifier::new()
        .keyid(true)
        .build(&b.x509v3_context(Some(&ca), None))
        .unwrap();
    b.append_extension(aki).unwrap();
    b.sign(&ca_key, MessageDigest::sha256()).unwrap();
    let leaf = b.build();

    let mut tls = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
    tls.set_private_key(&leaf_key).unwrap();
    tls.set_certificate(&leaf).unwrap();
    tls.check_private_key().unwrap();
    (ca.to_pem().unwrap(), tls.build())
}

async fn an_https_webhook_is_delivered_when_its_ca_is_trusted(backend: Backend) {
    let (ca_pem, tls) = private_ca();
    let (_, strangers_tls) = private_ca();
    let trusted = Receiver::start_tls(tls);
    let stranger = Receiver::start_tls(strangers_tls);
    let mut settings = quick(Duration::from_secs(3600));
    settings.webhook_roots = Some(Roots::from_pem(&ca_pem).unwrap());
    let Some(app) = app_with(backend, settings).await else {
        return;
    };
    let mut conn = app.conn();
    store_events(&mut conn, 1, 150, "write", "over tls");
    add(&mut conn, "siem", &trusted.url(), Some("k"), "");
    let other = add(&mut conn, "stranger", &stranger.url(), Some("k"), "");
    let want = log_ids(&mut conn);
    until(
        Duration::from_secs(30),
        "every event delivered over HTTPS",
        || first_sightings(&trusted.ids()).len() >= want.len(),
    )
    .await;
    assert_eq!(first_sightings(&trusted.ids()), want, "in log order");
    for d in trusted.deliveries() {
        assert_eq!(d.target, "/hook?x=1");
        assert_eq!(d.signature, Some(signature("k", &d.body)));
    }
    // A certificate no trusted authority signed: never sent to, and the
    // stream says why.
    until(Duration::from_secs(30), "the other stream retries", || {
        matches!(health(&mut conn, other), Health::Retrying { .. })
    })
    .await;
    match health(&mut conn, other) {
        Health::Retrying { error, .. } => {
            assert!(error.contains("certificate verify failed"), "{error}")
        }
        h => panic!("{h:?}"),
    }
    assert!(stranger.deliveries().is_empty());
}

async fn a_receiver_that_fails_and_comes_back_misses_nothing(backend: Backend) {
    let Some(app) = app_with(backend, quick(Duration::from_secs(3600))).await else {
        return;
    };
    let receiver = Receiver::start();
    let mut conn = app.conn();
    receiver.failing.store(true, Ordering::Release);
    let id = add(&mut conn, "flaky", &receiver.url(), None, "");
    store_events(&mut conn, 1, 300, "write", "t");
    until(Duration::from_secs(10), "a failed delivery", || {
        receiver.refused.load(Ordering::Acquire) >= 2
    })
    .await;
    match health(&mut conn, id) {
        Health::Retrying { error, .. } => assert!(error.contains("500"), "{error}"),
        other => panic!("expected retrying, got {other:?}"),
    }
    store_events(&mut conn, 1000, 300, "write", "t");
    receiver.failing.store(false, Ordering::Release);
    let want = log_ids(&mut conn);
    until(Duration::from_secs(30), "every event delivered", || {
        first_sightings(&receiver.ids()).len() >= want.len()
    })
    .await;
    assert_eq!(first_sightings(&receiver.ids()), want);
    until(Duration::from_secs(5), "healthy again", || {
        health(&mut conn, id) == Health::Delivering
    })
    .await;
}

async fn a_stream_failing_past_its_limit_is_marked_failing_and_audited(backend: Backend) {
    let Some(app) = app_with(backend, quick(Duration::from_secs(1))).await else {
        return;
    };
    let receiver = Receiver::start();
    let mut conn = app.conn();
    receiver.failing.store(true, Ordering::Release);
    store_events(&mut conn, 1, 10, "write", "t");
    let id = add(&mut conn, "dead end", &receiver.url(), None, "");
    until(Duration::from_secs(15), "marked failing", || {
        matches!(health(&mut conn, id), Health::Failing { .. })
    })
    .await;
    // Not tried again while failing.
    let tries = receiver.refused.load(Ordering::Acquire);
    actix_web::rt::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(receiver.refused.load(Ordering::Acquire), tries);
    // Recorded as an event of the server's.
    let q = auditdesk::audit::filter::QueryParams::parse("resource_type=stream&action=write", &[]);
    let query = auditdesk::audit::filter::AuditQuery::parse(&q.raw).unwrap();
    let page = auditdesk::audit::query::fetch_page(&mut conn, &query).unwrap();
    let marked = page
        .events
        .iter()
        .find(|e| e.diff.contains_key("failing"))
        .expect("the failure is an event");
    assert_eq!(marked.user.username, "auditdesk");
    assert_eq!(marked.resource_target, "dead end");
    assert!(
        marked.diff["last_error"]
            .new
            .as_ref()
            .unwrap()
            .to_string()
            .contains("500"),
        "{:?}",
        marked.diff
    );
    // Resumed, it delivers everything.
    receiver.failing.store(false, Ordering::Release);
    streams::set_paused(&mut conn, id, false, &ChangedBy::local_operator()).unwrap();
    let want = log_ids(&mut conn);
    until(Duration::from_secs(30), "delivered after resuming", || {
        first_sightings(&receiver.ids()).len() >= want.len()
    })
    .await;
    assert_eq!(first_sightings(&receiver.ids()), want);
}

async fn a_filtered_stream_gets_exactly_its_events(backend: Backend) {
    let Some(app) = app_with(backend, quick(Duration::from_secs(3600))).await else {
        return;
    };
    let receiver = Receiver::start();
    let mut conn = app.conn();
    store_events(&mut conn, 1, 120, "write", "Prod-DB");
    store_events(&mut conn, 200, 120, "delete", "Prod-DB");
    store_events(&mut conn, 400, 120, "delete", "staging");
    add(
        &mut conn,
        "deletes of prod",
        &receiver.url(),
        None,
        "action=delete&q=prod-db",
    );
    store_events(&mut conn, 600, 30, "delete", "prod-db-2");
    let want: Vec<String> = (200..320)
        .chain(600..630)
        .map(|n| format!("00000000-0000-4000-8000-{n:012}"))
        .collect();
    until(
        Duration::from_secs(30),
        "the stream's events delivered",
        || first_sightings(&receiver.ids()).len() >= want.len(),
    )
    .await;
    // The rest of the log passed over, with nothing more sent.
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(first_sightings(&receiver.ids()), want);
}

async fn stream_commands_manage_streams_with_one_line_errors(backend: Backend) {
    let Some(db) = TestDb::new(backend) else {
        return;
    };
    let run = |args: &[&str], stdin: &str| auditdesk(&db, args, stdin);
    let err = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();
    for (args, needle) in [
        (
            vec!["--kind", "webhook", "--url", "ftp://x/"],
            "invalid webhook URL 'ftp://x/'",
        ),
        (vec!["--kind", "webhook"], "a webhook stream takes --url"),
        (
            vec!["--kind", "syslog", "--address", "127.0.0.1:514"],
            "invalid syslog address",
        ),
        (
            vec![
                "--kind",
                "webhook",
                "--url",
                "https://me:hunter2@siem.example/in",
            ],
            "holds a password",
        ),
        (
            vec!["--kind", "pigeon", "--url", "http://x/"],
            "unknown stream kind 'pigeon'",
        ),
        (
            vec!["--kind", "webhook", "--url", "http://x/", "--action", "fly"],
            "--action: ",
        ),
    ] {
        let mut all = vec!["stream", "add", "--name", "n"];
        all.extend(args);
        let o = run(&all, "");
        assert!(!o.status.success(), "{all:?}");
        let e = err(&o);
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(e.contains(needle), "{e:?} should name {needle:?}");
        assert!(!e.contains("hunter2"), "a password is not repeated: {e}");
    }
    let o = run(
        &[
            "stream",
            "add",
            "--name",
            "logs",
            "--kind",
            "syslog",
            "--address",
            "udp://127.0.0.1:5514",
            "--secret-stdin",
        ],
        "x\n",
    );
    assert!(err(&o).contains("syslog stream has none"), "{}", err(&o));
    let o = run(
        &[
            "stream",
            "add",
            "--name",
            "siem\u{202e}",
            "--kind",
            "webhook",
            "--url",
            "https://siem.example/in?token=abc123",
            "--secret-stdin",
            "--resource-type",
            "workspace",
        ],
        "hush\n",
    );
    assert!(o.status.success(), "{}", err(&o));
    let id = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    let o = run(
        &[
            "stream",
            "add",
            "--name",
            "siem\u{202e}",
            "--kind",
            "webhook",
            "--url",
            "http://x/",
        ],
        "",
    );
    assert!(err(&o).contains("exists already"), "{}", err(&o));
    let o = run(&["stream", "list"], "");
    let listed = String::from_utf8_lossy(&o.stdout).into_owned();
    let fields: Vec<&str> = listed.lines().next().unwrap().split('\t').collect();
    assert_eq!(fields[0], id);
    assert!(
        !fields[1].contains('\u{202e}'),
        "the name's bidi control is shown escaped: {:?}",
        fields[1]
    );
    assert_eq!(
        &fields[2..5],
        [
            "webhook",
            "https://siem.example/in?token=******",
            "delivering"
        ]
    );
    assert!(!listed.contains("abc123"), "a query's values are hidden");
    assert_eq!(fields[5], "-", "nothing delivered yet");
    assert!(!listed.contains("hush"), "the secret is never listed");
    assert!(run(&["stream", "pause", &id], "").status.success());
    let o = run(&["stream", "pause", &id], "");
    assert!(err(&o).contains("already paused"), "{}", err(&o));
    assert!(String::from_utf8_lossy(&run(&["stream", "list"], "").stdout).contains("\tpaused\t"));
    assert!(run(&["stream", "resume", &id], "").status.success());
    assert!(run(&["stream", "remove", &id], "").status.success());
    let o = run(&["stream", "remove", &id], "");
    assert!(
        err(&o).contains(&format!("no stream with id {id}")),
        "{}",
        err(&o)
    );
    // A CA file serve cannot use is refused in one line, before it serves.
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("ca.pem");
    std::fs::write(&not_pem, "not a certificate\n").unwrap();
    let missing = dir.path().join("missing.pem");
    for (path, needle) in [
        (&not_pem, "no certificate in it"),
        (&missing, "cannot read"),
    ] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_auditdesk"))
            .args(["serve", "--bind", "127.0.0.1:0", "--stream-ca-file"])
            .arg(path)
            .env("DATABASE_URL", db.url_string())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() > Duration::from_secs(15) {
                let _ = child.kill();
                panic!("serve started with --stream-ca-file {}", path.display());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let o = child.wait_with_output().unwrap();
        assert!(!o.status.success());
        let e = err(&o);
        assert!(e.contains("--stream-ca-file") && e.contains(needle), "{e}");
        assert_eq!(e.trim_end().lines().count(), 1, "{e}");
    }
    // Each change is an event: create, pause, resume, delete.
    let mut conn = db.connect();
    let q = auditdesk::audit::filter::QueryParams::parse("resource_type=stream", &[]);
    let query = auditdesk::audit::filter::AuditQuery::parse(&q.raw).unwrap();
    let page = auditdesk::audit::query::fetch_page(&mut conn, &query).unwrap();
    let actions: Vec<&str> = page
        .events
        .iter()
        .rev()
        .map(|e| e.action.as_str())
        .collect();
    assert_eq!(actions, ["create", "write", "write", "delete"]);
    let created = page.events.last().unwrap();
    assert!(created.diff["secret"].is_secret());
    assert!(!created.to_json().contains("hush"));
    assert!(
        !created.to_json().contains("abc123"),
        "{}",
        created.to_json()
    );
    let removed = &page.events[0];
    assert!(
        !removed.to_json().contains("abc123"),
        "{}",
        removed.to_json()
    );
}

/// Adds a webhook stream from the command line, as an operator would.
fn add_by_cli(db: &TestDb, url: &str) {
    let o = auditdesk(
        db,
        &[
            "stream", "add", "--name", "siem", "--kind", "webhook", "--url", url,
        ],
        "",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn store_many(db: &TestDb, n: u32) {
    let mut conn = db.connect();
    store_events(&mut conn, 1, n, "write", "t");
}

/// How many ids were received more than once.
fn repeats(ids: &[String]) -> usize {
    ids.len() - first_sightings(ids).len()
}

async fn a_server_killed_while_delivering_resumes_and_loses_nothing(backend: Backend) {
    let Some(db) = TestDb::new(backend) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = db.url_string();
    let receiver = Receiver::start();
    receiver.knobs.delay_ms.store(300, Ordering::Release);
    add_by_cli(&db, &receiver.url());
    store_many(&db, 5000);
    let want = log_ids(&mut db.connect());
    let (mut server, _) = serve_with(dir.path(), Some(&url), &[], Stdio::null());
    until(Duration::from_secs(30), "a first batch delivered", || {
        !receiver.deliveries().is_empty()
    })
    .await;
    // SIGKILL: no shutdown hook runs, a batch may be on its way.
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    let before = first_sightings(&receiver.ids()).len();
    assert!(
        before < want.len(),
        "killed in the middle ({before} of {})",
        want.len()
    );
    receiver.knobs.delay_ms.store(0, Ordering::Release);
    let (_server, _) = serve_with(dir.path(), Some(&url), &[], Stdio::null());
    until(
        Duration::from_secs(60),
        "every event delivered after the restart",
        || first_sightings(&receiver.ids()).len() >= want.len(),
    )
    .await;
    let ids = receiver.ids();
    assert_eq!(first_sightings(&ids), want, "nothing missing, in log order");
    // At most the batch cut off by the kill came again.
    assert!(repeats(&ids) <= 1000, "{} repeats", repeats(&ids));
}

/// Two instances on one PostgreSQL: one delivers the stream, never both at
/// once (the receiver, slow, sees one request at a time and no event twice);
/// when it is killed the other takes the stream over once the lease lapses.
async fn two_instances_never_deliver_one_stream_at_once() {
    let Some(db) = TestDb::new(Backend::Postgres) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("signing-key");
    let url = db.url_string();
    let key_arg = key.to_str().unwrap();
    let receiver = Receiver::start();
    receiver.knobs.delay_ms.store(150, Ordering::Release);
    add_by_cli(&db, &receiver.url());
    store_many(&db, 12_000);
    let want = log_ids(&mut db.connect());
    let o = auditdesk(&db, &["key", "public", "--signing-key", key_arg], "");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let extra = ["--signing-key", key_arg];
    let (mut first, _) = serve_with(dir.path(), Some(&url), &extra, Stdio::null());
    let (_second, _) = serve_with(dir.path(), Some(&url), &extra, Stdio::null());
    until(Duration::from_secs(30), "some batches delivered", || {
        receiver.deliveries().len() >= 3
    })
    .await;
    assert_eq!(repeats(&receiver.ids()), 0, "no batch sent by both");
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    let before = first_sightings(&receiver.ids()).len();
    assert!(
        before < want.len(),
        "some left to take over ({before} of {})",
        want.len()
    );
    receiver.knobs.delay_ms.store(0, Ordering::Release);
    until(
        Duration::from_secs(90),
        "the other instance delivered the rest",
        || first_sightings(&receiver.ids()).len() >= want.len(),
    )
    .await;
    assert_eq!(first_sightings(&receiver.ids()), want);
    assert_eq!(
        receiver.knobs.most_in_flight.load(Ordering::Acquire),
        1,
        "never two deliveries at once"
    );
}

const PW: &str = "correct horse battery staple";

/// POSTs the page's form for a webhook stream.
async fn add_by_form(
    app: &TestApp,
    csrf: &str,
    name: &str,
    target: &str,
    secret: &str,
    search: &str,
) -> reqwest::Response {
    let form = [
        ("csrf_token", csrf),
        ("name", name),
        ("kind", "webhook"),
        ("target", target),
        ("secret", secret),
        ("search", search),
    ];
    app.post_form("/manage/streams", &form).await
}

/// Manage > Streams: Site Managers add, pause, resume and remove streams
/// through the page; Auditors see them and cannot change them; members are
/// refused and visitors sent to log in. A stream in trouble is named on
/// Manage > Audit.
async fn the_streams_page_is_for_site_managers_and_auditors_read_it(backend: Backend) {
    let Some(app) = app_with(backend, quick(Duration::from_secs(1))).await else {
        return;
    };
    use auditdesk::auth::Role;
    let r = app.get("/manage/streams").await;
    assert_eq!(r.status(), 303, "a visitor is sent to log in");
    app.add_user("boss", Role::SiteManager, PW);
    app.add_user("ann", Role::Auditor, PW);
    app.add_user("mo", Role::Member, PW);
    let member = app.another_visitor();
    member.login("mo", PW).await;
    assert_eq!(member.get("/manage/streams").await.status(), 403);

    app.login("boss", PW).await;
    let csrf = app.csrf_token("/manage/streams").await;
    // A bad URL: the page again, as a 400 naming it, with what was typed.
    let r = add_by_form(&app, &csrf, "siem", "gopher://x", "", "action:delete").await;
    assert_eq!(r.status(), 400);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("Invalid webhook URL &#39;gopher://x&#39;: use http://"),
        "{page}"
    );
    assert!(
        page.contains("value=\"action:delete\""),
        "the form keeps what was typed"
    );
    // A bad filter names the term.
    let r = add_by_form(&app, &csrf, "siem", "http://127.0.0.1:9/", "", "action:fly").await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("fly"));
    // Without the CSRF token: refused before anything is read.
    let r = app
        .post_form(
            "/manage/streams",
            &[
                ("name", "x"),
                ("kind", "webhook"),
                ("target", "http://127.0.0.1:9/"),
            ],
        )
        .await;
    assert_eq!(r.status(), 403);
    // Added: to a port where nothing listens, so that it fails (its filter
    // matches its own creation).
    let r = add_by_form(
        &app,
        &csrf,
        "dead <end>",
        "http://127.0.0.1:9/",
        "hush",
        "action:create",
    )
    .await;
    assert_eq!(r.status(), 303);
    let page = app.get("/manage/streams").await.text().await.unwrap();
    assert!(page.contains("Added stream dead &#60;end&#62;"), "{page}");
    assert!(
        page.contains("search: action:create"),
        "the filter is shown: {page}"
    );
    assert!(!page.contains("hush"), "the secret is never shown");
    let mut conn = app.conn();
    let id = streams::list(&mut conn).unwrap()[0].id;
    // It fails past its limit of a second: marked failing, named on Manage > Audit.
    until(Duration::from_secs(15), "marked failing", || {
        matches!(health(&mut conn, id), Health::Failing { .. })
    })
    .await;
    let audit = app.get("/manage/audit").await.text().await.unwrap();
    assert!(audit.contains("id=\"stream-alert\""), "{audit}");
    assert!(audit.contains("is failing since"), "{audit}");
    let page = app.get("/manage/streams").await.text().await.unwrap();
    assert!(page.contains(">failing<"), "{page}");

    // An Auditor sees the stream, with no form, and cannot change it.
    let auditor = app.another_visitor();
    auditor.login("ann", PW).await;
    let seen = auditor.get("/manage/streams").await;
    assert_eq!(seen.status(), 200);
    let seen = seen.text().await.unwrap();
    assert!(seen.contains("dead &#60;end&#62;"));
    assert!(
        !seen.contains("Add a stream") && !seen.contains("/pause\""),
        "no changes offered"
    );
    let token = crate::helpers::csrf_in(&seen).unwrap();
    let r = auditor
        .post_form(
            &format!("/manage/streams/{id}/remove"),
            &[("csrf_token", &token)],
        )
        .await;
    assert_eq!(r.status(), 403, "an Auditor's POST is refused");

    // The Site Manager resumes, pauses and removes it.
    for (change, state) in [("resume", "delivering"), ("pause", "paused")] {
        let r = app
            .post_form(
                &format!("/manage/streams/{id}/{change}"),
                &[("csrf_token", &csrf)],
            )
            .await;
        assert_eq!(r.status(), 303, "{change}");
        let page = app.get("/manage/streams").await.text().await.unwrap();
        assert!(page.contains(&format!("is {state}.")), "{change}: {page}");
    }
    let r = app
        .post_form(
            &format!("/manage/streams/{id}/remove"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(r.status(), 303);
    let r = app
        .post_form(
            &format!("/manage/streams/{id}/remove"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(r.status(), 404, "no such stream any more");
    assert!(streams::list(&mut conn).unwrap().is_empty());
}

/// rsyslog's daemon, when installed (`AUDITDESK_TEST_RSYSLOGD` names another).
pub fn rsyslogd() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("AUDITDESK_TEST_RSYSLOGD") {
        return Some(p.into());
    }
    ["/usr/sbin/rsyslogd", "/sbin/rsyslogd", "/usr/bin/rsyslogd"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
}

/// An rsyslogd of the test's own, listening on one TCP and one UDP port of
/// 127.0.0.1 and writing each message's MSG as a line, one file per transport.
struct Rsyslog {
    child: std::process::Child,
    dir: tempfile::TempDir,
    tcp: u16,
    udp: u16,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Rsyslog {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (tcp, udp) = (free_port(), free_port());
        let d = dir.path().display();
        let conf = format!(
            r#"global(workDirectory="{d}" maxMessageSize="64k")
module(load="imtcp")
module(load="imudp")
template(name="msg" type="string" string="%msg%\n")
ruleset(name="tcp") {{ action(type="omfile" file="{d}/tcp.log" template="msg") }}
ruleset(name="udp") {{ action(type="omfile" file="{d}/udp.log" template="msg") }}
input(type="imtcp" address="127.0.0.1" port="{tcp}" ruleset="tcp")
input(type="imudp" address="127.0.0.1" port="{udp}" ruleset="udp")
"#
        );
        std::fs::write(dir.path().join("rsyslog.conf"), conf).unwrap();
        let child = std::process::Command::new(rsyslogd().expect("rsyslogd"))
            .arg("-n")
            .arg("-f")
            .arg(dir.path().join("rsyslog.conf"))
            .arg("-i")
            .arg(dir.path().join("rsyslogd.pid"))
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
            .spawn()
            .expect("rsyslogd starts");
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", tcp)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "rsyslogd does not listen: {}",
                std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            dir,
            tcp,
            udp,
        }
    }

    /// The events received over `transport`, in the order written.
    fn received(&self, transport: &str) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.dir.path().join(format!("{transport}.log")))
            .unwrap_or_default();
        text.lines()
            .map(|l| {
                let json = l.trim_start_matches('\u{feff}');
                serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {l:?}"))
            })
            .collect()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn a_syslog_stream_reaches_rsyslog_over_tcp_and_udp(backend: Backend) {
    let Some(app) = app_with(backend, quick(Duration::from_secs(3600))).await else {
        return;
    };
    let rsyslog = Rsyslog::start();
    let mut conn = app.conn();
    store_events(&mut conn, 1, 150, "write", "Ünïcode \"quoted\" target");
    let mut syslog = |name: &str, address: String| {
        streams::add(
            &mut conn,
            NewStream {
                name,
                kind: "syslog",
                target: &address,
                secret: None,
                filters: &RawQuery::default(),
            },
            &ChangedBy::local_operator(),
        )
        .unwrap()
    };
    syslog("rsyslog tcp", format!("tcp://127.0.0.1:{}", rsyslog.tcp));
    syslog("rsyslog udp", format!("udp://127.0.0.1:{}", rsyslog.udp));
    store_events(&mut conn, 1000, 150, "delete", "after");
    let want = log_ids(&mut conn);
    let ids = |transport: &str| -> Vec<String> {
        rsyslog
            .received(transport)
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect()
    };
    for transport in ["tcp", "udp"] {
        until(Duration::from_secs(30), "rsyslog wrote every event", || {
            first_sightings(&ids(transport)).len() >= want.len()
        })
        .await;
        assert_eq!(
            first_sightings(&ids(transport)),
            want,
            "over {transport}, in log order"
        );
    }
    // The events as sent: the message is the event's NDJSON line.
    let first = &rsyslog.received("tcp")[0];
    assert_eq!(first["resource_target"], "Ünïcode \"quoted\" target");
    assert_eq!(first["diff"]["name"]["new"], "b");
}

/// An event longer than a UDP datagram holds (six diff values of 15,000
/// bytes) does not stop a UDP syslog stream: it is sent cut, saying so and
/// how long it was, and the events after it follow whole.
async fn an_event_too_long_for_udp_is_sent_cut_and_the_stream_goes_on(backend: Backend) {
    let Some(app) = app_with(backend, quick(Duration::from_secs(3600))).await else {
        return;
    };
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let port = socket.local_addr().unwrap().port();
    let mut conn = app.conn();
    store_events(&mut conn, 1, 2, "write", "before");
    let diff: serde_json::Map<String, serde_json::Value> = (0..6)
        .map(|i| {
            let value = format!("{i}").repeat(15_000);
            (
                format!("field{i}"),
                serde_json::json!({"old": null, "new": value}),
            )
        })
        .collect();
    let mut big: serde_json::Value = serde_json::json!({
        "id": "00000000-0000-4000-8000-000000000100", "time": "2026-03-01T00:00:00Z",
        "user": {"username": "alice"}, "action": "write", "resource_type": "workspace",
        "resource_target": "big", "status_code": 200,
    });
    big["diff"] = serde_json::Value::Object(diff);
    let big = new_event(&big.to_string());
    store::store_batch(&mut conn, &[big], OnConflict::RefuseBatch).unwrap();
    store_events(&mut conn, 200, 2, "write", "after");
    streams::add(
        &mut conn,
        NewStream {
            name: "udp",
            kind: "syslog",
            target: &format!("udp://127.0.0.1:{port}"),
            secret: None,
            filters: &RawQuery::default(),
        },
        &ChangedBy::local_operator(),
    )
    .unwrap();
    let want = log_ids(&mut conn);
    let mut got: Vec<String> = Vec::new();
    let start = Instant::now();
    let mut buf = vec![0u8; 70_000];
    while got.len() < want.len() && start.elapsed() < Duration::from_secs(30) {
        let Ok(n) = socket.recv(&mut buf) else {
            continue;
        };
        assert!(n <= 65_507, "a datagram of {n} bytes");
        got.push(String::from_utf8(buf[..n].to_vec()).expect("cut between characters"));
    }
    assert_eq!(got.len(), want.len(), "one datagram per event: {got:?}");
    for (i, (message, id)) in got.iter().zip(&want).enumerate() {
        let (head, msg) = message.split_once('\u{feff}').unwrap();
        assert!(head.contains(&format!("position=\"{i}\"")), "{head}");
        assert!(msg.starts_with(&format!("{{\"id\":\"{id}\"")), "{head}");
        if id.ends_with("100") {
            let whole: usize = head
                .split("truncated=\"")
                .nth(1)
                .and_then(|t| t.split('"').next())
                .and_then(|t| t.parse().ok())
                .unwrap_or_else(|| panic!("says it was cut: {head}"));
            assert!(whole > 90_000 && msg.len() < whole, "{whole}");
            assert_eq!(message.len(), 65_507, "as much as a datagram holds");
        } else {
            assert!(!head.contains("truncated"), "{head}");
            serde_json::from_str::<serde_json::Value>(msg).expect("whole");
        }
    }
}

/// Leases are timed by the database's clock: one instance's lease keeps
/// every other out until it lapses, then another may take it; its holder
/// may renew it at any time; a released lease is free at once.
async fn a_lease_keeps_other_instances_out_until_it_lapses(backend: Backend) {
    use auditdesk::db::streams as rows;
    let Some(db) = TestDb::new(backend) else {
        return;
    };
    let mut conn = db.connect();
    auditdesk::db::run_migrations(&mut conn).unwrap();
    let id = add(&mut conn, "siem", "http://127.0.0.1:9/", None, "");
    let second = chrono::Duration::seconds(1);
    assert!(rows::take_lease(&mut conn, id, "a", second).unwrap());
    assert!(!rows::take_lease(&mut conn, id, "b", second * 30).unwrap());
    assert!(
        rows::take_lease(&mut conn, id, "a", second).unwrap(),
        "renewed"
    );
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(
        rows::take_lease(&mut conn, id, "b", second * 30).unwrap(),
        "lapsed"
    );
    assert!(!rows::take_lease(&mut conn, id, "a", second).unwrap());
    rows::release_lease(&mut conn, id, "b").unwrap();
    assert!(
        rows::take_lease(&mut conn, id, "a", second).unwrap(),
        "released"
    );
    // The database's clock is the one a lease ends by.
    let row = rows::find(&mut conn, id).unwrap().unwrap();
    let ends = row.lease_until.unwrap() - rows::now(&mut conn).unwrap();
    assert!(ends > chrono::Duration::zero() && ends <= second, "{ends}");
}

crate::cases! {
    one(Postgres) => [two_instances_never_deliver_one_stream_at_once];
    both_backends(Rsyslog) => [
        a_syslog_stream_reaches_rsyslog_over_tcp_and_udp,
    ];
    both_backends() => [
        a_webhook_gets_every_event_in_order_signed,
        an_https_webhook_is_delivered_when_its_ca_is_trusted,
        a_receiver_that_fails_and_comes_back_misses_nothing,
        a_stream_failing_past_its_limit_is_marked_failing_and_audited,
        a_filtered_stream_gets_exactly_its_events,
        stream_commands_manage_streams_with_one_line_errors,
        a_server_killed_while_delivering_resumes_and_loses_nothing,
        the_streams_page_is_for_site_managers_and_auditors_read_it,
        an_event_too_long_for_udp_is_sent_cut_and_the_stream_goes_on,
        a_lease_keeps_other_instances_out_until_it_lapses,
    ];
}
