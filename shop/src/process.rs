//! The shop as a child process, for the load tool and the end-to-end tests:
//! started on a free port, its address read from what it prints, its log
//! kept, killed when dropped.

use std::io::{BufRead as _, BufReader, Read as _};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// A running shop process.
pub struct ShopProcess {
    child: Child,
    addr: String,
    log: Arc<Mutex<String>>,
}

impl ShopProcess {
    /// Starts `command` (the shop binary, with its environment set) on a
    /// free port unless `SHOP_ADDR` is set, and waits until it listens.
    ///
    /// # Errors
    ///
    /// If it cannot start, exits, or prints no address within 60 s; the
    /// error holds what it wrote to stderr.
    pub fn start(mut command: Command) -> Result<ShopProcess, String> {
        if !command.get_envs().any(|(k, _)| k == "SHOP_ADDR") {
            command.env("SHOP_ADDR", "127.0.0.1:0");
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {:?}: {e}", command.get_program()))?;
        let log = Arc::new(Mutex::new(String::new()));
        let mut stderr = child.stderr.take().expect("piped");
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut buf = [0; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&buf[..n]);
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_str(&text);
            }
        });
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("shop listening on http://") {
                    let addr = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    let _ = tx.send(addr);
                }
            }
        });
        let mut shop = ShopProcess {
            child,
            addr: String::new(),
            log,
        };
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => {
                shop.addr = addr;
                Ok(shop)
            }
            Err(_) => {
                shop.kill();
                Err(format!("the shop did not start; its log:\n{}", shop.log()))
            }
        }
    }

    /// Where it listens, `host:port`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// What it wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Kills it at once (SIGKILL): nothing it holds in memory survives.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops it as an operator would (SIGTERM) and waits for it to exit:
    /// it delivers the orders still on their way first.
    pub fn stop(&mut self) -> std::io::Result<std::process::ExitStatus> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        self.child.wait()
    }
}

impl Drop for ShopProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
