//! The `callcenter` binary as a process: startup validation, `config check`, graceful
//! shutdown on SIGTERM with a request in flight.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_callcenter");

fn command(dir: &std::path::Path) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TELNYX_VERIFY_SIGNATURES", "false")
        .env("CALL_CENTER_ADMIN_TOKEN", "process-test-admin-token")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/db/cc.db", dir.display()),
        );
    c
}

fn run(dir: &std::path::Path, vars: &[(&str, &str)], args: &[&str]) -> Output {
    let mut c = command(dir);
    for (k, v) in vars {
        c.env(k, v);
    }
    c.args(args).output().unwrap()
}

#[test]
fn invalid_configuration_stops_startup_with_one_line_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("CALL_CENTER_DIAL_TIMEOUT", "500", "5..=120"),
        ("DATABASE_URL", "mysql://x", "sqlite:"),
        ("BIND_ADDR", "nonsense", "host:port"),
    ];
    for (name, value, accepted) in cases {
        let out = run(dir.path(), &[(name, value)], &[]);
        assert!(!out.status.success(), "{name}={value} must stop startup");
        let stderr = String::from_utf8(out.stderr).unwrap();
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(
            lines[0].contains(name) && lines[0].contains(accepted),
            "{stderr}"
        );
    }
}

#[test]
fn config_check_prints_the_effective_configuration_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &[
            ("DATABASE_URL", "postgres://app:hunter2@db.internal/cc"),
            ("TELNYX_API_KEY", "KEYsecret"),
        ],
        &["config", "check"],
    );
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("DATABASE_URL=postgres://app:***@db.internal/cc"),
        "{stdout}"
    );
    assert!(stdout.contains("CALL_CENTER_DIAL_TIMEOUT=30"));
    assert!(
        !stdout.contains("hunter2")
            && !stdout.contains("KEYsecret")
            && !stdout.contains("process-test-admin-token")
    );
    let bad = run(
        dir.path(),
        &[
            ("CALL_CENTER_MAX_DIAL_ATTEMPTS", "0"),
            ("CALL_CENTER_AGENT_HEARTBEAT_TTL", "x"),
        ],
        &["config", "check"],
    );
    assert!(!bad.status.success());
    assert_eq!(
        String::from_utf8(bad.stderr).unwrap().lines().count(),
        2,
        "each problem named"
    );
}

#[test]
fn migrate_creates_the_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &[], &["migrate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("db/cc.db").exists());
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_until_serving(port: u16, child: &mut Child) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(child.try_wait().unwrap().is_none(), "server exited early");
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_lets_the_request_in_flight_finish_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = command(dir.path())
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until_serving(port, &mut child);
    // A request in flight: headers and half of the body sent.
    let body = "CallSid=v3%3Ainflight&From=%2B13125550100&To=%2B13125550199";
    let (first, rest) = body.split_at(20);
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "POST /api/call-center/inbound HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{first}",
        body.len()
    )
    .unwrap();
    stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "still finishing the request"
    );
    stream.write_all(rest.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("Thank you for calling"));
    let start = Instant::now();
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "did not exit");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(exit.code(), Some(0));
}

#[test]
fn without_a_key_and_with_verification_on_the_server_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = command(dir.path());
    c.env_remove("TELNYX_VERIFY_SIGNATURES");
    let out = c.output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("TELNYX_PUBLIC_KEY")
    );
}

#[test]
fn logs_carry_no_tokens_keys_or_phone_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let key = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=";
    let mut child = command(dir.path())
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "debug")
        .env("TELNYX_API_KEY", "KEY-very-secret-api-key")
        .env("TELNYX_PUBLIC_KEY", key)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read the logs while the server runs: a debug log fills the pipe's buffer long before
    // the end, and a server blocked writing to it would never answer.
    let mut stderr = child.stderr.take().unwrap();
    let logs = std::thread::spawn(move || {
        let mut logs = String::new();
        stderr.read_to_string(&mut logs).unwrap();
        logs
    });
    wait_until_serving(port, &mut child);
    let http = |req: String| {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    let register = r#"{"name":"Alice","sip_uri":"sip:alice@example.com","status":"available"}"#;
    let reply = http(format!(
        "POST /api/call-center/agents/register HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer process-test-admin-token\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{register}",
        register.len()
    ));
    let token = reply
        .split("\"heartbeat_token\":\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    http(format!(
        "GET /api/call-center/agents/list HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    ));
    http("GET /api/call-center/agents/list HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong-guess-token\r\nConnection: close\r\n\r\n".into());
    // Webhooks with caller numbers (verification off, so they are processed), POST and GET.
    let form = "CallSid=v3%3Alog&From=%2B13125550100&To=%2B13125550199";
    http(format!(
        "POST /api/call-center/inbound HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
        form.len()
    ));
    http(format!(
        "GET /api/call-center/inbound?{form} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    ));
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    child.wait().unwrap();
    let logs = logs.join().unwrap();
    assert!(logs.lines().count() > 5, "the server logged: {logs}");
    assert!(
        logs.contains("request_id"),
        "JSON lines carry the request id"
    );
    assert!(
        logs.contains("/api/call-center/inbound") && logs.contains("\"status\":200"),
        "the webhooks were processed: {logs}"
    );
    for secret in [
        "process-test-admin-token",
        token.as_str(),
        "wrong-guess-token",
        "KEY-very-secret-api-key",
        key,
        "13125550100",
        "13125550199",
    ] {
        assert!(!logs.contains(secret), "{secret} appears in the logs");
    }
}
