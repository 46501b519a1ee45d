//! Tests against real `redis-server` processes.

use std::collections::HashSet;
use std::io::ErrorKind;
use std::net::TcpStream;
use std::process::Command;
use std::thread;

use cache_test_support::{free_port, unused_url, RedisServer, Reply};

fn ok() -> Reply {
    Reply::Status("OK".into())
}

fn panic_message(f: impl FnOnce() + std::panic::UnwindSafe) -> String {
    let payload = std::panic::catch_unwind(f).expect_err("expected a panic");
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// `kill -0 PID`: succeeds while the process exists.
fn process_exists(pid: u32) -> bool {
    Command::new("sh")
        .args(["-c", "kill -0 \"$1\" 2>/dev/null", "sh", &pid.to_string()])
        .status()
        .expect("cannot run sh")
        .success()
}

fn config_get(server: &RedisServer, name: &str) -> String {
    let reply = server.cmd(&["CONFIG", "GET", name]);
    let pair = reply.as_array();
    assert_eq!(pair.len(), 2, "CONFIG GET {name}: {reply:?}");
    pair[1].as_string().expect("config value")
}

fn assert_refused(server: &RedisServer) {
    match TcpStream::connect(server.addr()) {
        Ok(_) => panic!("{} still accepts connections", server.addr()),
        Err(err) => assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}"),
    }
}

#[test]
fn set_get_and_pttl() {
    let server = RedisServer::start();
    assert_eq!(server.cmd(&["PING"]), Reply::Status("PONG".into()));

    assert_eq!(server.cmd(&["SET", "k", "v", "PX", "60000"]), ok());
    assert_eq!(server.cmd(&["GET", "k"]).as_string().as_deref(), Some("v"));
    let pttl = server.cmd(&["PTTL", "k"]).as_int();
    assert!(pttl > 0 && pttl <= 60_000, "PTTL = {pttl}");

    assert_eq!(server.cmd(&["SET", "forever", "v"]), ok());
    assert_eq!(server.cmd(&["PTTL", "forever"]).as_int(), -1);
    assert_eq!(server.cmd(&["PTTL", "missing"]).as_int(), -2);
    assert!(server.cmd(&["GET", "missing"]).is_nil());
    assert_eq!(server.cmd(&["GET", "missing"]).as_bytes(), None);
}

#[test]
fn cmd_bytes_is_binary_safe() {
    let server = RedisServer::start();
    let value: &[u8] = b"\x00\xff\r\n$3\r\n*1";
    assert_eq!(server.cmd_bytes(&[b"SET", b"bin\r\nkey", value]), ok());
    assert_eq!(
        server.cmd_bytes(&[b"GET", b"bin\r\nkey"]).as_bytes(),
        Some(value)
    );
    assert_eq!(
        server.cmd_bytes(&[b"STRLEN", b"bin\r\nkey"]).as_int(),
        value.len() as i64
    );
}

#[test]
fn arrays_and_error_replies() {
    let server = RedisServer::start();
    assert_eq!(server.cmd(&["RPUSH", "list", "a", "b", "c"]).as_int(), 3);
    assert_eq!(
        server.cmd(&["LRANGE", "list", "0", "-1"]),
        Reply::Array(vec![
            Reply::Bulk(b"a".to_vec()),
            Reply::Bulk(b"b".to_vec()),
            Reply::Bulk(b"c".to_vec()),
        ])
    );
    match server.cmd(&["GET", "list"]) {
        Reply::Error(msg) => assert!(msg.starts_with("WRONGTYPE"), "{msg}"),
        other => panic!("expected WRONGTYPE, got {other:?}"),
    }
    match server.cmd(&["NO-SUCH-COMMAND"]) {
        Reply::Error(msg) => assert!(msg.starts_with("ERR unknown command"), "{msg}"),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn runs_isolated_without_persistence() {
    let server = RedisServer::start();
    assert_eq!(config_get(&server, "save"), "");
    assert_eq!(config_get(&server, "appendonly"), "no");
    assert_eq!(config_get(&server, "bind"), "127.0.0.1");
    assert_eq!(config_get(&server, "port"), server.port().to_string());
    let dir = std::path::PathBuf::from(config_get(&server, "dir"));
    assert_eq!(
        dir.canonicalize().unwrap(),
        server.dir().canonicalize().unwrap()
    );
    assert!(server.dir().starts_with(std::env::temp_dir()));
    assert_eq!(server.cmd(&["DBSIZE"]).as_int(), 0);
}

#[test]
fn addresses_agree() {
    let server = RedisServer::start();
    let port = server.port();
    assert_ne!(port, 0);
    assert_eq!(server.url(), format!("redis://127.0.0.1:{port}/0"));
    assert_eq!(server.addr().to_string(), format!("127.0.0.1:{port}"));
    TcpStream::connect(server.addr()).expect("connect to a running server");
}

#[test]
fn pid_is_the_process_that_answers() {
    let server = RedisServer::start();
    let pid = server.pid().expect("running server has a pid");
    let info = server.cmd(&["INFO", "server"]).as_string().unwrap();
    assert!(
        info.lines().any(|line| line == format!("process_id:{pid}")),
        "pid {pid} not in INFO:\n{info}"
    );
}

#[test]
fn log_shows_startup() {
    let server = RedisServer::start();
    let log = server.log();
    assert!(log.contains("Ready to accept connections"), "log:\n{log}");
    assert!(
        log.contains(&format!("port={}", server.port())),
        "log:\n{log}"
    );
}

#[test]
fn start_with_passes_extra_arguments() {
    let server = RedisServer::start_with(&["--maxmemory", "10mb", "--databases", "3"]);
    assert_eq!(config_get(&server, "maxmemory"), "10485760");
    assert_eq!(config_get(&server, "databases"), "3");
    // The defaults still apply.
    assert_eq!(config_get(&server, "save"), "");
}

#[test]
fn rejected_argument_panics_with_redis_error() {
    let msg = panic_message(|| {
        let _ = RedisServer::start_with(&["--no-such-directive", "1"]);
    });
    assert!(msg.contains("exited with"), "{msg}");
    assert!(msg.contains("no-such-directive"), "{msg}");
    assert!(msg.contains("Bad directive"), "{msg}");
}

#[test]
fn kill_refuses_connections_and_is_idempotent() {
    let mut server = RedisServer::start();
    assert!(server.is_running());
    let pid = server.pid().unwrap();
    server.kill();
    assert!(!server.is_running());
    assert_eq!(server.pid(), None);
    assert!(!process_exists(pid), "pid {pid} still exists after kill");
    assert_refused(&server);
    server.kill();
    assert!(!server.is_running());
}

#[test]
fn cmd_on_killed_server_panics_clearly() {
    let mut server = RedisServer::start();
    server.kill();
    let addr = server.addr().to_string();
    let msg = panic_message(std::panic::AssertUnwindSafe(|| {
        server.cmd(&["PING"]);
    }));
    assert!(msg.contains("[\"PING\"]"), "{msg}");
    assert!(msg.contains(&addr), "{msg}");
    assert!(msg.contains("server running: false"), "{msg}");
}

#[test]
fn restart_after_kill_serves_again_on_same_port() {
    let mut server = RedisServer::start();
    let port = server.port();
    let old_pid = server.pid().unwrap();
    assert_eq!(server.cmd(&["SET", "k", "v"]), ok());

    server.kill();
    assert_refused(&server);
    server.restart();

    assert!(server.is_running());
    assert_eq!(server.port(), port);
    assert_ne!(server.pid(), Some(old_pid));
    assert_eq!(server.cmd(&["PING"]), Reply::Status("PONG".into()));
    // Nothing is persisted across restarts.
    assert!(server.cmd(&["GET", "k"]).is_nil());
    // Both runs logged to the same file.
    assert_eq!(
        server.log().matches("Ready to accept connections").count(),
        2,
        "log:\n{}",
        server.log()
    );
}

#[test]
fn restart_of_running_server_and_extra_args_survive() {
    let mut server = RedisServer::start_with(&["--maxmemory", "5mb"]);
    let old_pid = server.pid().unwrap();
    server.restart();
    assert_ne!(server.pid(), Some(old_pid));
    assert!(
        !process_exists(old_pid),
        "old pid {old_pid} survived restart"
    );
    assert_eq!(config_get(&server, "maxmemory"), "5242880");
}

#[test]
fn two_servers_are_independent() {
    let a = RedisServer::start();
    let b = RedisServer::start();
    assert_ne!(a.port(), b.port());
    assert_ne!(a.dir(), b.dir());
    assert_ne!(a.pid(), b.pid());
    assert_eq!(a.cmd(&["SET", "k", "a"]), ok());
    assert!(b.cmd(&["GET", "k"]).is_nil());
    assert_eq!(a.cmd(&["GET", "k"]).as_string().as_deref(), Some("a"));
}

#[test]
fn many_servers_start_concurrently() {
    let servers: Vec<RedisServer> = (0..8)
        .map(|_| thread::spawn(RedisServer::start))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|handle| handle.join().expect("start panicked"))
        .collect();
    let ports: HashSet<u16> = servers.iter().map(RedisServer::port).collect();
    assert_eq!(ports.len(), servers.len());
    for server in &servers {
        assert_eq!(server.cmd(&["PING"]), Reply::Status("PONG".into()));
    }
}

#[test]
fn drop_kills_process_and_removes_dir() {
    let server = RedisServer::start();
    let pid = server.pid().unwrap();
    let dir = server.dir().to_owned();
    let addr = server.addr();
    assert!(process_exists(pid), "probe must see the live server");
    assert!(dir.join("redis.log").is_file());

    drop(server);

    assert!(!process_exists(pid), "pid {pid} still exists after drop");
    assert!(!dir.exists(), "{} still exists after drop", dir.display());
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
fn drop_after_kill_still_removes_dir() {
    let mut server = RedisServer::start();
    let dir = server.dir().to_owned();
    server.kill();
    assert!(dir.exists(), "kill must not remove the directory");
    drop(server);
    assert!(!dir.exists());
}

#[test]
fn free_port_and_unused_url_point_at_nothing() {
    let port = free_port();
    assert_ne!(port, 0);
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("free_port is bindable");

    let url = unused_url();
    let port: u16 = url
        .strip_prefix("redis://127.0.0.1:")
        .and_then(|rest| rest.strip_suffix("/0"))
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("unexpected url {url}"));
    let err = TcpStream::connect(("127.0.0.1", port)).expect_err("nothing should listen");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
}
