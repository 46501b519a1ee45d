//! Checks what a dropped server prints, which needs a separate process (the
//! normal test harness captures stderr), hence `harness = false`: the binary
//! re-runs itself with `CHILD_MODE` set and inspects the child's output.

use std::path::Path;
use std::process::{Command, Output};

use cache_test_support::RedisServer;

const CHILD_MODE: &str = "CACHE_TEST_SUPPORT_DROP_REPORT_CHILD";

fn main() {
    match std::env::var(CHILD_MODE).as_deref() {
        Ok("panic") => {
            let server = RedisServer::start();
            println!("{} {}", server.port(), server.dir().display());
            panic!("deliberate panic while the server is alive");
        }
        Ok("quiet") => {
            let server = RedisServer::start();
            println!("{} {}", server.port(), server.dir().display());
        }
        _ => {
            panicking_test_prints_log();
            println!("test panicking_test_prints_log ... ok");
            passing_test_prints_nothing();
            println!("test passing_test_prints_nothing ... ok");
        }
    }
}

/// Runs this binary in `mode`; returns the output, port and directory.
fn run_child(mode: &str) -> (Output, u16, String) {
    let exe = std::env::current_exe().expect("current_exe");
    let output = Command::new(exe)
        .env(CHILD_MODE, mode)
        .output()
        .expect("cannot run the child process");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let (port, dir) = stdout
        .trim()
        .split_once(' ')
        .unwrap_or_else(|| panic!("child printed no port and dir: {output:?}"));
    let port = port.parse().expect("port");
    let dir = dir.to_owned();
    (output, port, dir)
}

fn panicking_test_prints_log() {
    let (output, port, dir) = run_child("panic");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "child should have failed");
    assert!(stderr.contains("deliberate panic"), "stderr:\n{stderr}");
    let header = format!("---- redis-server log (port {port}) ----");
    let at = stderr
        .find(&header)
        .unwrap_or_else(|| panic!("no log header in stderr:\n{stderr}"));
    assert!(
        stderr[at..].contains("Ready to accept connections"),
        "log block lacks the server log:\n{stderr}"
    );
    assert!(!Path::new(&dir).exists(), "{dir} left behind after a panic");
}

fn passing_test_prints_nothing() {
    let (output, _port, dir) = run_child("quiet");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "child failed:\n{stderr}");
    assert!(!stderr.contains("redis-server log"), "stderr:\n{stderr}");
    assert!(!Path::new(&dir).exists(), "{dir} left behind");
}
