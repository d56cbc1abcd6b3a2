//! End to end over a real socket: replay a scenario into a database, start
//! `remedy serve` on a loopback port it picks, ask it over HTTP, stop it
//! with SIGTERM.

use crate::cli::remedy;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::Duration;

/// A `remedy serve` child process, killed if the test fails before it
/// stops it.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `remedy serve` on a port it picks; its address from stderr.
fn start(
    db: &std::path::Path,
    token: Option<&str>,
    extra: &[&std::ffi::OsStr],
) -> (Server, String) {
    let mut cmd = remedy();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(db)
        .args(extra)
        .env_remove("REMEDY_API_TOKENS");
    if let Some(t) = token {
        cmd.env("REMEDY_API_TOKENS", t);
    }
    spawn_serve(cmd)
}

/// Spawn `cmd` (a `remedy serve --listen 127.0.0.1:0 ...`) and wait for
/// the address it prints on stderr. Its stderr is drained from then on, so
/// later log lines neither block it nor fail on a closed pipe.
pub fn spawn_serve(mut cmd: std::process::Command) -> (Server, String) {
    let mut child = cmd
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let server = Server(child);
    let mut line = String::new();
    while !line.contains("listening on") {
        line.clear();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "serve exited before listening"
        );
    }
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    (server, addr)
}

/// One HTTP/1.1 exchange with `Connection: close`: status and body.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    // Bodies here are small and sent with a length, not chunked.
    (status, body.to_string())
}

#[test]
fn serve_answers_over_a_socket_after_a_replay() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("scenario");
    let db = dir.path().join("remedy.db");
    let out = remedy()
        .args(["generate", "--duration", "4h", "--services", "3"])
        .args(["--scenario", "memory_leak", "--rate", "1", "--out"])
        .arg(&scenario)
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = remedy()
        .arg("replay")
        .arg(&scenario)
        .arg("--out")
        .arg(dir.path().join("out"))
        .arg("--db")
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (mut server, addr) = start(&db, Some("e2e-token"), &[]);

    let (status, body) = http(&addr, "GET", "/readyz", None, "");
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(
        &addr,
        "GET",
        "/api/v1/incidents?class=memory_leak",
        None,
        "",
    );
    assert_eq!(status, 200, "{body}");
    let list: Value = serde_json::from_str(&body).unwrap();
    let id = list["items"][0]["id"].as_str().unwrap().to_string();
    let (status, body) = http(&addr, "GET", &format!("/api/v1/incidents/{id}"), None, "");
    assert_eq!(status, 200);
    let detail: Value = serde_json::from_str(&body).unwrap();
    let action = detail["actions"][0]["id"].as_str().unwrap().to_string();
    let approve = format!("/api/v1/actions/{action}/approve");
    assert_eq!(http(&addr, "POST", &approve, None, "").0, 401);
    let (status, body) = http(&addr, "POST", &approve, Some("e2e-token"), "");
    assert_eq!(status, 200, "{body}");
    let (_, body) = http(&addr, "GET", &format!("/api/v1/incidents/{id}"), None, "");
    let detail: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(detail["actions"][0]["status"]["state"], "approved");
    let (status, body) = http(&addr, "GET", "/metrics", None, "");
    assert_eq!(status, 200);
    assert!(
        body.contains("remedy_actions{status=\"approved\"} 1"),
        "{body}"
    );

    // SIGTERM: a graceful stop with a clean exit.
    let pid = server.0.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "serve did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The approval is in the file: a new server (without tokens) sees it.
    let (again, addr) = start(&db, None, &[]);
    let (_, body) = http(&addr, "GET", &format!("/api/v1/incidents/{id}"), None, "");
    let detail: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(detail["actions"][0]["status"]["state"], "approved");
    drop(again);

    // Tokens from a file (a mounted secret): accepted like the others. The
    // action is decided already, so a valid token gets 409, a wrong one 401.
    let file = dir.path().join("tokens");
    std::fs::write(&file, "# on-call\n\n  file-token  \n").unwrap();
    let (_third, addr) = start(&db, None, &["--api-token-file".as_ref(), file.as_os_str()]);
    let reject = format!("/api/v1/actions/{action}/reject");
    assert_eq!(http(&addr, "POST", &reject, Some("file-token"), "").0, 409);
    assert_eq!(http(&addr, "POST", &reject, Some("# on-call"), "").0, 401);
    let out = remedy()
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(&db)
        .args(["--api-token-file", "/no/such/tokens"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/no/such/tokens"), "{err}");
}

/// Issue #21, finding 2: 260 POSTs sending their bodies at one byte a
/// second took every request slot (every route, probes included, answered
/// 503 for the whole timeout), trickled heads were held for minutes and
/// idle connections never closed. Here, at a small scale (8 request slots,
/// 2 s header and body timeouts): 40 slow bodies, 20 trickled heads and 60
/// idle connections, while `/healthz` is asked every 250 ms on a new
/// connection and must answer within 1 s each time.
#[test]
fn slow_and_idle_clients_cost_a_bounded_share() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Instant;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("remedy.db");
    let (_server, addr) = start(
        &db,
        Some("t0ken"),
        &[
            "--concurrency",
            "8",
            "--header-timeout",
            "2",
            "--body-timeout",
            "2",
            "--max-connections",
            "400",
        ]
        .map(std::ffi::OsStr::new),
    );
    let connect = || {
        let s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s
    };
    let mut slow = Vec::new();
    for _ in 0..40 {
        let mut s = connect();
        write!(
            s,
            "POST /api/v1/analyze HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t0ken\r\n\
             Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
        )
        .unwrap();
        slow.push(s);
    }
    for _ in 0..20 {
        let mut s = connect();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHo").unwrap();
        slow.push(s);
    }
    let idle: Vec<TcpStream> = (0..60).map(|_| connect()).collect();
    // One byte every 500 ms on every slow connection, until told to stop
    // (writes fail once the server has closed them).
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<TcpStream> = slow.iter().map(|s| s.try_clone().unwrap()).collect();
    let trickle = std::thread::spawn({
        let stop = stop.clone();
        move || {
            let mut writers = writers;
            while !stop.load(Ordering::SeqCst) {
                for w in &mut writers {
                    let _ = w.write_all(b" ");
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    });
    let probe = |path: &str| {
        let start = Instant::now();
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        let read = s.read_to_string(&mut text);
        (read.is_ok(), text, start.elapsed())
    };
    let until = Instant::now() + Duration::from_secs(6);
    let mut probes = 0;
    while Instant::now() < until {
        for path in ["/healthz", "/metrics"] {
            let (ok, text, took) = probe(path);
            assert!(
                ok && text.starts_with("HTTP/1.1 200") && took < Duration::from_secs(1),
                "{path} after {took:?}: {text:?}"
            );
            probes += 1;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(probes >= 20, "{probes}");
    // The request slots were never the slow clients': a read answers.
    let (status, body) = http(&addr, "GET", "/api/v1/incidents", None, "");
    assert_eq!(status, 200, "{body}");
    stop.store(true, Ordering::SeqCst);
    trickle.join().unwrap();
    // Every slow and idle connection has been closed by the server by now
    // (the slow bodies with a 408): reading reaches the end.
    let mut timeouts = 0;
    for mut s in slow.into_iter().chain(idle) {
        let mut text = Vec::new();
        match s.read_to_end(&mut text) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("a slow or idle connection is still open: {e}"),
        }
        if text.starts_with(b"HTTP/1.1 408") {
            timeouts += 1;
        }
    }
    assert_eq!(timeouts, 40, "every slow body is answered 408");
    let (_, metrics) = http(&addr, "GET", "/metrics", None, "");
    assert!(
        metrics.contains("remedy_http_requests_shed_total{reason=\"body_timeout\"} 40"),
        "{metrics}"
    );
}
