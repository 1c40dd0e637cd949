//! `/healthz` and `/readyz`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{Backend, TestApp, TestDb};

async fn healthz_and_readyz_answer_200(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.text().await.unwrap(), "ready\n");
}

/// A TCP relay in front of PostgreSQL that can be cut and restored, so the
/// database can become unreachable without stopping the shared server.
struct Relay {
    port: u16,
    open: Arc<AtomicBool>,
}

impl Relay {
    /// Runs on a thread of its own: the application connects to the database
    /// synchronously while the test's runtime waits for it.
    fn start(target: String) -> Self {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let port = std_listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(true));
        let flag = open.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(relay(std_listener, target, flag));
        });
        Self { port, open }
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

/// Accepts connections and copies bytes to `target` while `flag` is set; cuts
/// every open connection when it is cleared.
async fn relay(listener: std::net::TcpListener, target: String, flag: Arc<AtomicBool>) {
    let listener = TcpListener::from_std(listener).unwrap();
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            return;
        };
        if !flag.load(Ordering::SeqCst) {
            drop(inbound);
            continue;
        }
        let flag = flag.clone();
        let target = target.clone();
        tokio::spawn(async move {
            let Ok(mut outbound) = TcpStream::connect(target).await else {
                return;
            };
            let copy = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
            let watch = async {
                while flag.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            };
            tokio::select! {
                _ = copy => {}
                _ = watch => {}
            }
        });
    }
}

async fn readyz_is_503_while_postgres_is_unreachable_and_200_once_it_is_back() {
    let Some(db) = TestDb::new(Backend::Postgres) else {
        return;
    };
    let auditdesk::db::DatabaseUrl::Postgres(real) = &db.url else {
        unreachable!()
    };
    let mut url = url::Url::parse(real).unwrap();
    let target = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    let relay = Relay::start(target);
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(relay.port)).unwrap();
    let relayed = auditdesk::db::DatabaseUrl::Postgres(url.to_string());
    let Some(app) =
        TestApp::spawn_with(Backend::Sqlite, |c| c.database_url = relayed.clone()).await
    else {
        return;
    };
    assert_eq!(app.get("/readyz").await.status(), 200);

    relay.cut();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let down = app.get("/readyz").await;
    assert_eq!(down.status(), 503);
    // A page that needs the database says so, with the id to quote.
    let page = app.get("/").await;
    assert_eq!(page.status(), 503);
    let id = page.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body = page.text().await.unwrap();
    assert!(
        body.contains(&format!("<code id=\"request-id\">{id}</code>")),
        "{body}"
    );
    assert_eq!(
        app.get("/healthz").await.status(),
        200,
        "the process itself is still up"
    );

    relay.restore();
    let mut status = 0;
    for _ in 0..40 {
        status = app.get("/readyz").await.status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(status, 200, "ready again without a restart");
    drop(db);
}

crate::cases! {
    both_backends() => [
        healthz_and_readyz_answer_200,
    ];
    one(Postgres) => [
        readyz_is_503_while_postgres_is_unreachable_and_200_once_it_is_back,
    ];
}
