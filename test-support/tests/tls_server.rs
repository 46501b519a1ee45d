//! Tests of TLS servers, with `redis-cli --tls` as the TLS client.

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use cache_test_support::{ClientAuth, RedisServer, Reply};

/// What one `redis-cli` run printed.
#[derive(Debug)]
struct Cli {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs `redis-cli --tls` against `server` with the given CA file and
/// client certificate and key, if any.
fn redis_cli(
    server: &RedisServer,
    ca: Option<&Path>,
    client: Option<(&Path, &Path)>,
    args: &[&str],
) -> Cli {
    let mut command = Command::new("redis-cli");
    command
        .args(["-h", "127.0.0.1", "-p", &server.port().to_string(), "--tls"])
        .stdin(Stdio::null());
    if let Some(ca) = ca {
        command.arg("--cacert").arg(ca);
    }
    if let Some((cert, key)) = client {
        command.arg("--cert").arg(cert).arg("--key").arg(key);
    }
    let output = match command.args(args).output() {
        Ok(output) => output,
        Err(err) if err.kind() == ErrorKind::NotFound => panic!(
            "redis-cli is not installed: it comes with redis-server \
             (`apt-get install redis-server` installs redis-tools too)"
        ),
        Err(err) => panic!("cannot run redis-cli: {err}"),
    };
    Cli {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    }
}

#[track_caller]
fn assert_pong(cli: Cli) {
    assert!(cli.success && cli.stdout == "PONG", "{cli:?}");
}

/// The server rejected the handshake, or the client rejected the server.
#[track_caller]
fn assert_rejected(cli: Cli, because: &str) {
    assert!(!cli.success, "{cli:?}");
    assert!(!cli.stdout.contains("PONG"), "{cli:?}");
    assert!(cli.stderr.contains(because), "{cli:?}");
}

/// Waits until the server's log says `what`, which it does once it has
/// handled the handshake that the client gave up on.
#[track_caller]
fn assert_logs(server: &RedisServer, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.log().contains(what) {
        assert!(
            Instant::now() < deadline,
            "the log never said {what:?}:\n{}",
            server.log()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

fn panic_message(f: impl FnOnce() + std::panic::UnwindSafe) -> String {
    let payload = std::panic::catch_unwind(f).expect_err("expected a panic");
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn redis_cli_trusting_the_ca_gets_pong_and_shares_data_with_cmd() {
    let server = RedisServer::start_tls();
    assert_eq!(server.client_auth(), Some(ClientAuth::No));
    assert_eq!(
        server.url(),
        format!("rediss://127.0.0.1:{}/0", server.port())
    );
    assert_pong(redis_cli(&server, Some(server.ca_file()), None, &["PING"]));

    let set = redis_cli(
        &server,
        Some(server.ca_file()),
        None,
        &["SET", "k", "over tls"],
    );
    assert!(set.success && set.stdout == "OK", "{set:?}");
    assert_eq!(
        server.cmd(&["GET", "k"]).as_string().as_deref(),
        Some("over tls")
    );
}

#[test]
fn redis_cli_without_the_ca_fails_verification() {
    let server = RedisServer::start_tls();
    let verify_failed = "certificate verify failed";
    assert_rejected(redis_cli(&server, None, None, &["PING"]), verify_failed);
    assert_rejected(
        redis_cli(&server, Some(server.other_ca_file()), None, &["PING"]),
        verify_failed,
    );
    // A client certificate does not make up for an untrusted server.
    let client = (server.client_cert_file(), server.client_key_file());
    assert_rejected(
        redis_cli(
            &server,
            Some(server.other_ca_file()),
            Some(client),
            &["PING"],
        ),
        verify_failed,
    );
}

#[test]
fn tls_port_does_not_answer_plain_resp_and_plain_port_is_off() {
    let server = RedisServer::start_tls();
    let mut stream = TcpStream::connect(server.addr()).expect("connect to the TLS port");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // The server may close before or after the write lands.
    let _ = stream.write_all(b"*1\r\n$4\r\nPING\r\n");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"+PONG"), "{answer:?}");

    let config = |name: &str| server.cmd(&["CONFIG", "GET", name]).as_array()[1].as_string();
    assert_eq!(config("port").as_deref(), Some("0"));
    assert_eq!(config("tls-port"), Some(server.port().to_string()));
    assert_eq!(config("tls-auth-clients").as_deref(), Some("no"));
}

#[test]
fn cmd_and_pipelines_go_through_the_unix_socket() {
    let server = RedisServer::start_tls_with(ClientAuth::Required, &["--databases", "4"]);
    assert_eq!(server.cmd(&["PING"]), Reply::Status("PONG".into()));
    let replies = server.cmd_pipeline(&[&["SELECT", "3"], &["SET", "k", "v"], &["DBSIZE"]]);
    assert_eq!(replies[2].as_int(), 1);
    let pid = server.pid().unwrap();
    let info = server.cmd(&["INFO", "server"]).as_string().unwrap();
    assert!(info.contains(&format!("process_id:{pid}")), "{info}");
    assert!(server.dir().join("redis.sock").exists());
}

#[test]
fn required_client_auth_wants_a_certificate_signed_by_the_ca() {
    let server = RedisServer::start_tls_with(ClientAuth::Required, &[]);
    assert_eq!(server.client_auth(), Some(ClientAuth::Required));
    let ca = Some(server.ca_file());
    let trusted = (server.client_cert_file(), server.client_key_file());
    let untrusted = (
        server.other_client_cert_file(),
        server.other_client_key_file(),
    );
    assert_pong(redis_cli(&server, ca, Some(trusted), &["PING"]));
    // The server ends the handshake; the client sees its connection reset
    // and the server logs why.
    assert_rejected(redis_cli(&server, ca, None, &["PING"]), "");
    assert_logs(&server, "peer did not return a certificate");
    assert_rejected(redis_cli(&server, ca, Some(untrusted), &["PING"]), "");
    assert_logs(&server, "certificate verify failed");
}

#[test]
fn optional_client_auth_serves_clients_without_a_certificate_only() {
    let server = RedisServer::start_tls_with(ClientAuth::Optional, &[]);
    let ca = Some(server.ca_file());
    let trusted = (server.client_cert_file(), server.client_key_file());
    let untrusted = (
        server.other_client_cert_file(),
        server.other_client_key_file(),
    );
    assert_pong(redis_cli(&server, ca, None, &["PING"]));
    assert_pong(redis_cli(&server, ca, Some(trusted), &["PING"]));
    assert_rejected(redis_cli(&server, ca, Some(untrusted), &["PING"]), "");
    assert_logs(&server, "certificate verify failed");
}

#[test]
fn restart_keeps_tls_and_the_certificates() {
    let mut server = RedisServer::start_tls();
    let ca_before = fs::read(server.ca_file()).unwrap();
    let port = server.port();
    server.kill();
    assert_rejected(
        redis_cli(&server, Some(server.ca_file()), None, &["PING"]),
        "Could not connect",
    );
    server.restart();
    assert_eq!(server.port(), port);
    assert_eq!(fs::read(server.ca_file()).unwrap(), ca_before);
    assert_pong(redis_cli(&server, Some(server.ca_file()), None, &["PING"]));
    assert_eq!(server.cmd(&["PING"]), Reply::Status("PONG".into()));
}

#[test]
fn each_server_gets_its_own_certificates() {
    let a = RedisServer::start_tls();
    let b = RedisServer::start_tls();
    assert_ne!(
        fs::read(a.ca_file()).unwrap(),
        fs::read(b.ca_file()).unwrap()
    );
    // `a` does not trust `b`'s CA.
    assert_rejected(
        redis_cli(&a, Some(b.ca_file()), None, &["PING"]),
        "certificate verify failed",
    );
}

#[test]
fn certificate_files_of_a_plain_server_panic_clearly() {
    let server = RedisServer::start();
    assert_eq!(server.client_auth(), None);
    assert!(server.url().starts_with("redis://"));
    let msg = panic_message(|| {
        let _ = server.ca_file();
    });
    assert!(msg.contains("does not speak TLS"), "{msg}");
    assert!(msg.contains("start_tls"), "{msg}");
}
