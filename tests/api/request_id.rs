//! A request id in every answer, in problem+json, on error pages and in the
//! server's log lines.

/// Every response names its request; problem+json and the log lines carry the
/// same id; an id a proxy gave is kept when it is a plain token.
async fn every_request_has_an_id_in_its_answer_and_its_log_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, port, log) =
        crate::cli::serve_logged(dir.path(), None, &[], std::process::Stdio::null());
    let http = crate::helpers::client();
    let r = http
        .get(format!("http://127.0.0.1:{port}/api/v1/audit-logs"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 32, "{id}");
    let problem: serde_json::Value = r.json().await.unwrap();
    assert_eq!(problem["request_id"], id.as_str());
    let line = (0..50)
        .filter_map(|_| log.recv_timeout(std::time::Duration::from_millis(200)).ok())
        .find(|l| l.contains(&id))
        .expect("a log line names the request");
    assert!(
        line.contains("/api/v1/audit-logs") && line.contains("status=401"),
        "{line}"
    );

    for (given, kept) in [
        ("lb-7f3a.1", true),
        ("has space", false),
        ("<script>", false),
    ] {
        let r = http
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .header("x-request-id", given)
            .send()
            .await
            .unwrap();
        let answered = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_eq!(answered == given, kept, "{given:?} -> {answered:?}");
    }
}

crate::cases! {
    one() => [
        every_request_has_an_id_in_its_answer_and_its_log_lines,
    ];
}
