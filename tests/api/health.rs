//! `/healthz` and `/readyz`.

use std::time::Duration;

use crate::helpers::{Backend, TestApp};
use crate::relay::relayed_postgres;

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

async fn readyz_is_503_while_postgres_is_unreachable_and_200_once_it_is_back() {
    let Some((db, relay)) = relayed_postgres() else {
        return;
    };
    let relayed = relay.database_url();
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
    assert!(down.headers().contains_key("retry-after"));
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
