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
