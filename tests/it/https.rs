//! The HTTPS API (issue 14 §2, first part) through a real vrd: TLS with a certificate vrd's CA
//! signed, JSON-RPC at POST /rpc, each call as the user of its API token. No token, a wrong one,
//! a revoked one: 401 and nothing runs. Each role is allowed and refused what the socket's
//! access table says, and the audit log names the user.

use std::process::Command;
use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

use crate::harness::{free_port, text, wait_for_port, TestDaemon};
use crate::require_root;

/// One HTTPS request to vrd on `port`, trusting only `ca` (PEM), as `localhost`; (status, body).
fn request(port: u16, ca: &str, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    try_request(port, ca, method, path, token, body).unwrap()
}

/// [`request`], or the error that ended it.
fn try_request(
    port: u16,
    ca: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> Result<(u16, String), String> {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    exchange(port, ca, method, path, &headers, body).map(|(status, _, body)| (status, body))
}

/// One HTTPS request with `headers`; (status, response headers, body), or the error.
type Exchanged = (u16, Vec<(String, String)>, String);
fn exchange(
    port: u16,
    ca: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Exchanged, String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut sender = connect(port, ca).await;
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .header("content-type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let response = sender
            .send_request(req.body(Full::new(Bytes::from(body.to_string()))).unwrap())
            .await
            .map_err(|e| format!("{e:?}"))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect();
        let body = response.into_body().collect().await.map_err(|e| format!("{e:?}"))?.to_bytes();
        Ok((status, headers, String::from_utf8_lossy(&body).into_owned()))
    })
}

/// An HTTP/1.1 connection over TLS to vrd on `port`, trusting only `ca`, as `localhost`.
async fn connect(port: u16, ca: &str) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    sender
}

/// A vrd with its HTTPS listener on a free port.
fn https_daemon() -> (TestDaemon, u16) {
    let port = free_port();
    let d = TestDaemon::start_with_config(&format!("http_listen = \"127.0.0.1:{port}\"\n"), &[]);
    assert!(wait_for_port(port, std::time::Duration::from_secs(5)), "no HTTPS listener on {port}");
    (d, port)
}

fn call(method: &str, params: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{params}}}"#)
}

fn vr_stdin(d: &TestDaemon, args: &[&str], input: &str) -> String {
    let out = d.run_vr_with_input(args, input);
    assert!(out.status.success(), "vr {args:?}: {:?}", text(&out));
    text(&out).0
}

/// A user with `role` and a token of it.
fn token_of(d: &TestDaemon, user: &str, role: &str) -> String {
    vr_stdin(d, &["users", "create", user, "--role", role, "--password-stdin"], "a long enough password\n");
    vr_stdin(d, &["tokens", "create", "--user", user], "").trim().to_string()
}

#[test]
fn the_https_api_serves_each_user_what_its_role_allows_and_nothing_without_a_live_token() {
    require_root!("the_https_api_serves_each_user_what_its_role_allows_and_nothing_without_a_live_token");
    let (d, port) = https_daemon();
    let ca = std::fs::read_to_string(d.data().join("pki/ca.pem")).expect("vrd's CA signed the certificate");
    let viewer = token_of(&d, "vera", "viewer");
    let deployer = token_of(&d, "dora", "deployer");
    let list = call("procs.list", "[]");

    // Without a token, with a made-up one: 401, and the body says what to do.
    let (status, body) = request(port, &ca, "POST", "/rpc", None, &list);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("vr tokens create"), "{body}");
    let (status, _) = request(port, &ca, "POST", "/rpc", Some("vrt_00"), &list);
    assert_eq!(status, 401);

    // A viewer reads; a viewer may not act on procs; a deployer may (here: no such proc).
    let (status, body) = request(port, &ca, "POST", "/rpc", Some(&viewer), &list);
    assert_eq!((status, body.contains("\"result\":[]")), (200, true), "{body}");
    let stop = call("procs.act", r#"["nope-1-prod-abcdef12-web-1","stop"]"#);
    let (_, body) = request(port, &ca, "POST", "/rpc", Some(&viewer), &stop);
    assert!(body.contains("\"error\"") && body.contains("deployer"), "a viewer is refused: {body}");
    let (_, body) = request(port, &ca, "POST", "/rpc", Some(&deployer), &stop);
    assert!(
        body.contains("\"error\"") && body.contains("no proc"),
        "a deployer gets past the role check: {body}"
    );
    let (_, body) = request(port, &ca, "POST", "/rpc", Some(&deployer), &call("users.list", "[]"));
    assert!(body.contains("\"error\"") && body.contains("admin"), "users are the admins' business: {body}");

    // Bad requests: clear 4xx or a JSON-RPC parse error, nothing runs.
    let (status, _) = request(port, &ca, "GET", "/rpc", Some(&viewer), "");
    assert_eq!(status, 405);
    let (status, _) = request(port, &ca, "POST", "/elsewhere", Some(&viewer), &list);
    assert_eq!(status, 404);
    let (status, body) = request(port, &ca, "POST", "/rpc", Some(&viewer), "{not json");
    assert!(status == 400 || body.contains("Parse error"), "{status} {body}");
    let huge =
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"procs.list","params":["{}"]}}"#, "x".repeat(9 << 20));
    // vrd answers 413 and closes without reading the rest: the client may see either.
    match try_request(port, &ca, "POST", "/rpc", Some(&viewer), &huge) {
        Ok((status, _)) => assert_eq!(status, 413),
        Err(e) => assert!(e.contains("BrokenPipe") || e.contains("ConnectionReset"), "{e}"),
    }

    // A revoked token stops working at once.
    let id = vr_stdin(&d, &["tokens", "list", "--user", "vera"], "");
    let id = id.lines().nth(1).and_then(|l| l.split_whitespace().next()).unwrap().to_string();
    vr_stdin(&d, &["tokens", "revoke", &id], "");
    let (status, _) = request(port, &ca, "POST", "/rpc", Some(&viewer), &list);
    assert_eq!(status, 401);

    // The audit log names the user behind the HTTPS calls.
    let audit = vr_stdin(&d, &["audit", "--json"], "");
    assert!(audit.contains("\"user\": \"dora\"") || audit.contains("\"user\":\"dora\""), "{audit}");
}

/// `vr --url URL --ca CA ARGS` with `$VR_TOKEN` = `token`.
fn vr_remote(port: u16, ca: &std::path::Path, token: Option<&str>, args: &[&str]) -> std::process::Output {
    let url = format!("https://localhost:{port}");
    let mut cmd = Command::new(crate::harness::vr_client());
    cmd.args(["--url", &url, "--ca"])
        .arg(ca)
        .args(args)
        .env_remove("VR_SOCKET")
        .env("VR_SOCKET", "/nonexistent");
    match token {
        Some(t) => cmd.env("VR_TOKEN", t),
        None => cmd.env_remove("VR_TOKEN"),
    };
    cmd.output().unwrap()
}

#[test]
fn vr_with_a_url_works_against_a_remote_vrd_as_it_does_on_the_socket() {
    require_root!("vr_with_a_url_works_against_a_remote_vrd_as_it_does_on_the_socket");
    let (d, port) = https_daemon();
    let ca = d.data().join("pki/ca.pem");
    let admin = token_of(&d, "ada", "admin");
    let viewer = token_of(&d, "vic", "viewer");
    let file = d.write("sleep.yaml", &crate::harness::proc_yaml("remote", 0, "cmd: sleep 600"));
    let deployed = d.run_vr(&["proc", "deploy", file.to_str().unwrap()]);
    assert!(deployed.status.success(), "{:?}", text(&deployed));

    // Plain calls (one POST each): the same listing as on the socket, the same --json.
    let local = text(&d.run_vr(&["procs", "list", "--json"])).0;
    let out = vr_remote(port, &ca, Some(&viewer), &["procs", "list", "--json"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let names = |json: &str| -> Vec<String> {
        let v: Vec<serde_json::Value> = serde_json::from_str(json).unwrap();
        v.iter().map(|p| p["name"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(names(&text(&out).0), names(&local), "the same procs, remote and local");
    // WebSocket calls (users list uses the subscription client): allowed for an admin only.
    let out = vr_remote(port, &ca, Some(&admin), &["users", "list"]);
    assert!(out.status.success() && text(&out).0.contains("vic"), "{:?}", text(&out));
    let out = vr_remote(port, &ca, Some(&viewer), &["users", "list"]);
    assert!(!out.status.success() && text(&out).1.contains("admin"), "{:?}", text(&out));
    // A viewer may not stop the proc; the exit code says it failed.
    let name = names(&local).pop().unwrap();
    let out = vr_remote(port, &ca, Some(&viewer), &["procs", "stop", &name]);
    assert!(!out.status.success() && text(&out).1.contains("deployer"), "{:?}", text(&out));

    // What goes wrong says what to do.
    let out = vr_remote(port, &ca, None, &["procs", "list"]);
    assert!(!out.status.success() && text(&out).1.contains("VR_TOKEN"), "{:?}", text(&out));
    let out = vr_remote(port, &ca, Some("vrt_nothing"), &["procs", "list"]);
    assert!(!out.status.success() && text(&out).1.contains("401"), "{:?}", text(&out));
    let other_ca = d.dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, vr::services::peer::pki::new_ca("other").unwrap().cert_pem).unwrap();
    let out = vr_remote(port, &other_ca, Some(&viewer), &["procs", "list"]);
    assert!(!out.status.success() && text(&out).1.contains("--ca"), "{:?}", text(&out));
    let destroyed = d.run_vr(&["procs", "destroy", &name]);
    assert!(destroyed.status.success(), "{:?}", text(&destroyed));
}

#[test]
fn a_browser_session_needs_the_password_its_csrf_token_and_this_origin_and_ends_at_logout() {
    require_root!("a_browser_session_needs_the_password_its_csrf_token_and_this_origin_and_ends_at_logout");
    let (d, port) = https_daemon();
    let ca = std::fs::read_to_string(d.data().join("pki/ca.pem")).unwrap();
    token_of(&d, "wendy", "deployer");
    let json = [("content-type", "application/json")];
    let go = |method: &str, path: &str, headers: &[(&str, &str)], body: &str| {
        exchange(port, &ca, method, path, headers, body).unwrap()
    };

    let (status, _, body) = go("POST", "/login", &json, r#"{"name":"wendy","password":"not the password"}"#);
    assert_eq!(status, 401, "{body}");
    let (status, headers, body) =
        go("POST", "/login", &json, r#"{"name":"wendy","password":"a long enough password"}"#);
    assert_eq!(status, 200, "{body}");
    let set = headers.iter().find(|(k, _)| k == "set-cookie").map(|(_, v)| v.clone()).unwrap_or_default();
    for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attribute), "the session cookie is {attribute}: {set}");
    }
    let cookie = set.split(';').next().unwrap().to_string();
    let csrf =
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["csrf"].as_str().unwrap().to_string();
    let list = call("procs.list", "[]");

    let (status, _, body) = go("POST", "/rpc", &[("cookie", &cookie), json[0]], &list);
    assert_eq!(status, 403, "no CSRF token: {body}");
    let with_csrf = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str()), json[0]];
    let (status, _, body) = go("POST", "/rpc", &with_csrf, &list);
    assert_eq!((status, body.contains("\"result\"")), (200, true), "{body}");
    let evil = [with_csrf[0], with_csrf[1], json[0], ("origin", "https://evil.example")];
    let (status, _, _) = go("POST", "/rpc", &evil, &list);
    assert_eq!(status, 403, "another site's page is refused");
    let (status, _, _) = go("POST", "/login", &[json[0], ("origin", "https://evil.example")], "{}");
    assert_eq!(status, 403, "so is a login from it");

    // A reloaded page gets the session's CSRF token back; the dashboard's files are served.
    let (status, _, body) = go("GET", "/session", &[("cookie", &cookie)], "");
    assert!(status == 200 && body.contains(&csrf), "{status} {body}");
    assert_eq!(go("GET", "/session", &[], "").0, 401);
    let (status, headers, page) = go("GET", "/", &[], "");
    assert!(status == 200 && page.contains("<script type=\"module\" src=\"/app.js\""), "{status} {page}");
    let csp = headers.iter().find(|(k, _)| k == "content-security-policy").map(|(_, v)| v.clone());
    assert!(csp.is_some_and(|c| c.contains("default-src 'self'") && c.contains("frame-ancestors 'none'")));
    let (status, _, script) = go("GET", "/ui.js", &[], "");
    assert!(status == 200 && script.contains("EventSource"), "{status}");
    // Every module a page imports is served.
    for module in ["app.js", "ui.js", "procs.js", "swarms.js", "objects.js", "activity.js"] {
        let (status, headers, _) = go("GET", &format!("/{module}"), &[], "");
        let kind = headers.iter().find(|(k, _)| k == "content-type").map(|(_, v)| v.clone());
        assert!(
            status == 200 && kind.is_some_and(|k| k.starts_with("text/javascript")),
            "{module}: {status}"
        );
    }

    let (status, _, _) = go("POST", "/logout", &[("cookie", &cookie)], "");
    assert_eq!(status, 403, "logout needs the CSRF token too");
    let (status, headers, _) = go("POST", "/logout", &with_csrf[..2], "");
    assert_eq!(status, 200);
    assert!(headers.iter().any(|(k, v)| k == "set-cookie" && v.contains("Max-Age=0")));
    let (status, _, _) = go("POST", "/rpc", &with_csrf, &list);
    assert_eq!(status, 401, "the session ended");

    // Failed logins are throttled (per address and name), with how long to wait.
    for _ in 0..10 {
        go("POST", "/login", &json, r#"{"name":"wendy","password":"wrong wrong wrong"}"#);
    }
    let (status, headers, body) =
        go("POST", "/login", &json, r#"{"name":"wendy","password":"a long enough password"}"#);
    assert_eq!(status, 429, "{body}");
    assert!(headers.iter().any(|(k, _)| k == "retry-after"), "{headers:?}");
    let (status, _, _) = go("POST", "/login", &json, r#"{"name":"wendy"}"#);
    assert!(status == 400 || status == 429);
}

/// Reads server-sent events from `path` until `count` have come (at most 20 s): (id, event, data).
fn sse(
    port: u16,
    ca: &str,
    path: &str,
    headers: &[(&str, &str)],
    count: usize,
) -> (u16, Vec<(String, String, String)>) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut sender = connect(port, ca).await;
        let mut req = hyper::Request::builder().method("GET").uri(path).header("host", "localhost");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut response = sender.send_request(req.body(Full::new(Bytes::new())).unwrap()).await.unwrap();
        let status = response.status().as_u16();
        let mut text = String::new();
        let mut events = Vec::new();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        while status == 200 && events.len() < count {
            let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, response.body_mut().frame()).await
            else {
                break;
            };
            text.push_str(&String::from_utf8_lossy(&frame.into_data().unwrap_or_default()));
            while let Some(end) = text.find("\n\n") {
                let block: String = text.drain(..end + 2).collect();
                let field = |k: &str| {
                    block
                        .lines()
                        .find_map(|l| l.strip_prefix(&format!("{k}: ")))
                        .unwrap_or_default()
                        .to_string()
                };
                if !block.starts_with(':') {
                    events.push((field("id"), field("event"), field("data")));
                }
            }
        }
        (status, events)
    })
}

#[test]
fn event_streams_resume_after_the_last_event_id_without_loss_or_repeat() {
    require_root!("event_streams_resume_after_the_last_event_id_without_loss_or_repeat");
    let (d, port) = https_daemon();
    let ca = std::fs::read_to_string(d.data().join("pki/ca.pem")).unwrap();
    let token = token_of(&d, "sam", "viewer");
    let auth = format!("Bearer {token}");
    let file = d.write("s.yaml", &crate::harness::proc_yaml("sse", 0, "cmd: sleep 600"));
    let out = d.run_vr(&["proc", "deploy", file.to_str().unwrap()]);
    assert!(out.status.success(), "{:?}", text(&out));
    let name = "sse-1.0-rc1-test-abcd1234-web-0";
    let out = d.run_vr(&["procs", "restart", name]);
    assert!(out.status.success(), "{:?}", text(&out));

    let (status, first) = sse(port, &ca, "/api/v1/streams/events", &[("authorization", &auth)], 4);
    assert_eq!(status, 200);
    assert!(first.len() >= 4, "the proc's events: {first:?}");
    assert!(first.iter().all(|(_, event, data)| event == "proc" && data.contains(name)), "{first:?}");
    // Reconnect after the second: the third comes next, then the fourth, as before.
    let (_, resumed) = sse(
        port,
        &ca,
        "/api/v1/streams/events",
        &[("authorization", &auth), ("last-event-id", &first[1].0)],
        2,
    );
    let ids = |events: &[(String, String, String)]| events.iter().map(|e| e.0.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&resumed), ids(&first[2..4]), "no loss, no repeat");
    // Live: a change made now arrives on an open stream.
    let last = first.last().unwrap().0.clone();
    let waiter = std::thread::spawn({
        let (ca, auth) = (ca.clone(), auth.clone());
        move || {
            sse(port, &ca, "/api/v1/streams/events", &[("authorization", &auth), ("last-event-id", &last)], 1)
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = d.run_vr(&["procs", "stop", name]);
    assert!(out.status.success(), "{:?}", text(&out));
    let (_, live) = waiter.join().unwrap();
    assert!(
        live.first().is_some_and(|(_, _, data)| data.contains("STOPPING") || data.contains("STOPPED")),
        "{live:?}"
    );

    // A proc's log: the last lines, then a resume from the second's id goes on from the third.
    let counter = d.write(
        "c.yaml",
        &crate::harness::proc_yaml(
            "count",
            0,
            "cmd: \"i=0; while true; do echo n=$i; i=$((i+1)); usleep 5000; done\"",
        ),
    );
    let out = d.run_vr(&["proc", "deploy", counter.to_str().unwrap()]);
    assert!(out.status.success(), "{:?}", text(&out));
    std::thread::sleep(std::time::Duration::from_millis(500));
    let log = "/api/v1/streams/logs/count-1.0-rc1-test-abcd1234-web-0?tail=3";
    let (status, lines) = sse(port, &ca, log, &[("authorization", &auth)], 6);
    assert_eq!((status, lines.len()), (200, 6), "{lines:?}");
    let n = |data: &str| {
        data.rsplit("n=").next().and_then(|v| v.trim_end_matches(['"', '}']).parse::<u64>().ok())
    };
    let first: Vec<u64> = lines.iter().filter_map(|l| n(&l.2)).collect();
    assert_eq!(first.len(), 6, "{lines:?}");
    assert!(first.windows(2).all(|w| w[1] == w[0] + 1), "consecutive: {first:?}");
    let (_, resumed) = sse(port, &ca, log, &[("authorization", &auth), ("last-event-id", &lines[1].0)], 3);
    let after: Vec<u64> = resumed.iter().filter_map(|l| n(&l.2)).collect();
    assert_eq!(after, first[2..5].to_vec(), "the log resumes after the last line seen: {resumed:?}");
    let out = d.run_vr(&["procs", "destroy", "count-1.0-rc1-test-abcd1234-web-0"]);
    assert!(out.status.success(), "{:?}", text(&out));

    // Refusals: no token, an unknown stream, a build that does not exist.
    assert_eq!(sse(port, &ca, "/api/v1/streams/events", &[], 1).0, 401);
    assert_eq!(sse(port, &ca, "/api/v1/streams/nothing", &[("authorization", &auth)], 1).0, 404);
    assert_eq!(sse(port, &ca, "/api/v1/streams/builds/999", &[("authorization", &auth)], 1).0, 404);
    let out = d.run_vr(&["procs", "destroy", name]);
    assert!(out.status.success(), "{:?}", text(&out));
}

#[test]
fn the_rest_api_serves_every_route_it_describes_and_objects_round_trip() {
    require_root!("the_rest_api_serves_every_route_it_describes_and_objects_round_trip");
    let (d, port) = https_daemon();
    let ca = std::fs::read_to_string(d.data().join("pki/ca.pem")).unwrap();
    let admin = token_of(&d, "root2", "admin");
    let viewer = token_of(&d, "view", "viewer");
    let go = |method: &str, path: &str, token: &str, body: &str| {
        request(port, &ca, method, path, Some(token), body)
    };

    // The description lists the routes, and each one is served (no "no such route").
    let (status, doc) = go("GET", "/api/v1/openapi.json", &viewer, "");
    assert_eq!(status, 200, "{doc}");
    let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(
        paths.values().map(|p| p.as_object().unwrap().len()).sum::<usize>(),
        vr::daemon::https::rest::ROUTES.len()
    );
    for (path, methods) in paths {
        let concrete = path
            .replace("{kind}", "squads")
            .replace("{name}/{action}", "nope-1-prod-abcdef12-web-1/stop")
            .replace("{name}", "nothing")
            .replace("{id}", "999");
        for method in methods.as_object().unwrap().keys() {
            let (status, body) = go(&method.to_uppercase(), &concrete, &admin, "{}");
            assert!(
                !body.contains("no such route") && status != 405 && status != 501,
                "{method} {concrete}: {status} {body}"
            );
        }
    }

    // An object's round trip, with paging and filtering; the viewer only reads.
    let (status, body) = go("POST", "/api/v1/squads", &admin, r#"{"name":"eu"}"#);
    assert_eq!(status, 201, "{body}");
    go("POST", "/api/v1/squads", &admin, r#"{"name":"us"}"#);
    let (status, body) = go("GET", "/api/v1/squads?filter=u&limit=1&offset=1", &viewer, "");
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status, 200, "{body}");
    // "eu" and "us" hold a "u" ("default" too): the second of the three, one per page.
    assert_eq!((listed["total"].as_u64(), listed["limit"].as_u64()), (Some(3), Some(1)), "{body}");
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1), "{body}");
    let (status, body) = go("GET", "/api/v1/squads/eu", &viewer, "");
    assert!(status == 200 && body.contains("\"eu\""), "{status} {body}");
    let (status, _) = go("POST", "/api/v1/squads", &viewer, r#"{"name":"asia"}"#);
    assert_eq!(status, 403, "a viewer may not create");
    let (status, body) = go("PUT", "/api/v1/squads/eu", &admin, r#"{"name":"other"}"#);
    assert_eq!(status, 400, "{body}");
    let (status, body) = go("POST", "/api/v1/squads", &admin, "{not json");
    assert!(status == 400 && body.contains("not JSON"), "{status} {body}");
    let (status, _) = go("GET", "/api/v1/cats", &admin, "");
    assert_eq!(status, 404);
    let (status, _) = go("DELETE", "/api/v1/squads/eu", &admin, "");
    assert_eq!(status, 200);
    let (status, _) = go("GET", "/api/v1/squads/eu", &viewer, "");
    assert_eq!(status, 404);
    // Bad bodies get a clear 4xx and change nothing: too big, an unknown field, a wrong type.
    // 4 MiB: far more than the socket buffers hold, so the client is still sending when vrd has
    // its answer; vrd reads the rest (up to 16 MiB) so the client gets the 413, not a broken pipe.
    let huge = format!(r#"{{"name":"big","desc":"{}"}}"#, "x".repeat(4 << 20));
    let (status, body) = go("POST", "/api/v1/squads", &admin, &huge);
    assert!(status == 413 && body.contains("at most 1 MiB"), "{status} {body}");
    let (status, body) = go("POST", "/api/v1/squads", &admin, r#"{"name":"x1","colour":"red"}"#);
    assert!(status == 400 && body.contains("unknown field `colour`"), "{status} {body}");
    let (status, body) = go("POST", "/api/v1/squads", &admin, r#"{"name":42}"#);
    assert!(status == 400 && body.contains("invalid type"), "{status} {body}");
    let (status, body) = go("POST", "/api/v1/swarms/ghost/swarm", &admin, r#"{"version":1}"#);
    assert!(status == 400 && body.contains("invalid type") && body.contains("version"), "{status} {body}");
    let (status, body) = go("POST", "/api/v1/swarms/ghost/rollback", &admin, r#"{"numbr":1}"#);
    assert!(status == 400 && body.contains("unknown field `numbr`"), "{status} {body}");
    for gone in ["big", "x1", "42"] {
        assert_eq!(go("GET", &format!("/api/v1/squads/{gone}"), &viewer, "").0, 404, "{gone} was made");
    }
    // YAML as the CLI reads it, for the dashboard's forms: the value, or where it is wrong.
    let (status, body) =
        go("POST", "/api/v1/yaml", &viewer, r#"{"text":"a: 1\nb: [x, y]\n","mapping":true}"#);
    assert!(status == 200 && body.contains(r#""b":["x","y"]"#), "{status} {body}");
    let (status, body) = go("POST", "/api/v1/yaml", &viewer, r#"{"text":"a: [1, 2\n","mapping":true}"#);
    assert!(status == 400 && body.contains("line"), "{status} {body}");
    let (status, body) = go("POST", "/api/v1/yaml", &viewer, r#"{"text":"- 1\n","mapping":true}"#);
    assert!(status == 400 && body.contains("expected `key: value` lines"), "{status} {body}");
    // Fleet and audit.
    let (status, body) = go("GET", "/api/v1/fleet", &viewer, "");
    assert!(status == 200 && body.contains(r#""state":"local""#), "{status} {body}");
    let (status, body) = go("GET", "/api/v1/leader", &viewer, "");
    assert!(
        status == 200 && body.contains(r#""model":"sqlite""#) && body.contains(r#""leads":true"#),
        "{status} {body}"
    );
    assert_eq!(go("GET", "/api/v1/audit", &viewer, "").0, 403);

    // A dispatch of a swarm that does not exist says so, as JSON.
    let (status, body) = go("POST", "/api/v1/swarms/ghost/swarm", &admin, r#"{"version":"v1"}"#);
    assert!(status >= 400 && body.contains("\"error\"") && body.contains("ghost"), "{status} {body}");
    // Users over REST, admins only; the password never comes back.
    let made = r#"{"name":"rest1","role":"deployer","password":"a long enough password"}"#;
    assert_eq!(go("POST", "/api/v1/users", &viewer, made).0, 403);
    let (status, body) = go("POST", "/api/v1/users", &admin, made);
    assert!(status == 201 && body.contains("deployer") && !body.contains("enough"), "{status} {body}");
    let (status, body) = go("PUT", "/api/v1/users/rest1", &admin, r#"{"role":"viewer"}"#);
    assert!(status == 200 && body.contains("viewer"), "{status} {body}");
    assert_eq!(go("DELETE", "/api/v1/users/rest1", &admin, "").0, 200);

    // /metrics is on this listener too, for any user (Prometheus' bearer_token).
    let (status, text) = go("GET", "/metrics", &viewer, "");
    assert!(status == 200 && text.ends_with("# EOF\n"), "{status} {text}");
    assert_eq!(request(port, &ca, "GET", "/metrics", None, "").0, 401);

    // The audit log has the REST calls under the user.
    let audit = vr_stdin(&d, &["audit", "--json"], "");
    assert!(audit.contains("objects.create") && audit.contains("root2"), "{audit}");
}

/// The least role each REST route needs, as the issue's roles say (independent of vrd's table).
fn least_role(method: &str, path: &str) -> usize {
    let (viewer, deployer, admin) = (0, 1, 2);
    match (method, path) {
        (_, p) if p.starts_with("/api/v1/users") || p == "/api/v1/audit" => admin,
        (_, "/api/v1/yaml") => viewer,
        ("GET", _) => viewer,
        (_, "/api/v1/{kind}") | (_, "/api/v1/{kind}/{name}") => deployer,
        _ => deployer,
    }
}

#[test]
fn every_rest_route_allows_and_refuses_each_role_as_its_role_says() {
    require_root!("every_rest_route_allows_and_refuses_each_role_as_its_role_says");
    let (d, port) = https_daemon();
    let ca = std::fs::read_to_string(d.data().join("pki/ca.pem")).unwrap();
    let tokens = [
        token_of(&d, "t-viewer", "viewer"),
        token_of(&d, "t-deployer", "deployer"),
        token_of(&d, "t-admin", "admin"),
    ];
    for route in vr::daemon::https::rest::ROUTES {
        // Squads need no other object; a made-up name is refused after the role check, never before.
        let path = route
            .path
            .replace("{kind}", "squads")
            .replace("{name}/{action}", "nope-1-prod-abcdef12-web-1/stop")
            .replace("{name}", "nothing")
            .replace("{id}", "999");
        for (role, token) in tokens.iter().enumerate() {
            let (status, body) =
                request(port, &ca, route.method, &path, Some(token), r#"{"name":"nothing"}"#);
            let refused = status == 403 && body.contains("needs");
            let allowed = role >= least_role(route.method, route.path);
            assert_eq!(!refused, allowed, "{} {} as role {role}: {status} {body}", route.method, path);
        }
    }
}

#[test]
fn a_stack_image_is_built_followed_and_activated_over_rest() {
    require_root!("a_stack_image_is_built_followed_and_activated_over_rest");
    let (d, port) = https_daemon();
    let ca = std::fs::read_to_string(d.data().join("pki/ca.pem")).unwrap();
    let deployer = token_of(&d, "stacker", "deployer");
    let go = |method: &str, path: &str, body: &str| request(port, &ca, method, path, Some(&deployer), body);
    let base = crate::harness::busybox_image().display().to_string();
    let script = d.write("provision.sh", "#!/bin/sh\necho provisioning\necho made > /etc/made-here\n");
    let made = serde_json::json!({ "name": "bb", "base_image_url": base, "provisioning_script": script })
        .to_string();
    let (status, body) = go("POST", "/api/v1/stacks", &made);
    assert_eq!(status, 201, "{body}");
    // Two builds: the first becomes active by itself, the second is activated by hand.
    let mut images = Vec::new();
    for _ in 0..2 {
        let (status, body) = go("POST", "/api/v1/stacks/bb/build", "{}");
        assert_eq!(status, 202, "{body}");
        let image: serde_json::Value = serde_json::from_str(&body).unwrap();
        let name = image["name"].as_str().unwrap().to_string();
        // Its build log, live until the build ends (the stream then closes).
        let auth = format!("Bearer {deployer}");
        let (status, lines) =
            sse(port, &ca, &format!("/api/v1/streams/stacks/bb/{name}"), &[("authorization", &auth)], 1000);
        assert_eq!(status, 200);
        assert!(
            lines.iter().any(|(_, event, data)| event == "line" && data.contains("provisioning")),
            "{lines:?}"
        );
        images.push(name);
    }
    let listed = |name: &str| -> serde_json::Value {
        let (_, body) = go("GET", "/api/v1/stacks/bb/images", "");
        let all: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
        all.into_iter().find(|i| i["name"] == name).unwrap_or_else(|| panic!("{name} not in {body}"))
    };
    assert!(images.iter().all(|i| listed(i)["status"] != "started"), "the builds ended");
    let (status, body) = go("POST", "/api/v1/stacks/bb/activate", &format!(r#"{{"image":"{}"}}"#, images[0]));
    assert_eq!(status, 200, "{body}");
    assert_eq!(listed(&images[0])["active"], true);
    assert_eq!(listed(&images[1])["active"], false);
    let (status, body) = go("POST", "/api/v1/stacks/bb/activate", r#"{"image":"no-such-image"}"#);
    assert!((400..500).contains(&status) && body.contains("no-such-image"), "{status} {body}");
    assert_eq!(listed(&images[0])["active"], true, "a refused activation changes nothing");
}
