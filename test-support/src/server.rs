//! Spawning and controlling `redis-server` processes.

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::resp::{self, Reply};
use crate::tls::{ClientAuth, TlsFiles};

/// Environment variable naming the `redis-server` binary to run instead of
/// the one found on `PATH`.
const BIN_ENV: &str = "REDIS_SERVER_BIN";
/// How many fresh ports [`RedisServer::start_with`] tries when another
/// process grabs the chosen port first.
const START_ATTEMPTS: usize = 5;
/// How long to wait for a spawned server to answer `PING`.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`RedisServer::restart`] keeps retrying while the old port is
/// still unavailable.
const RESTART_BIND_PATIENCE: Duration = Duration::from_secs(5);
/// Connect, read and write timeout of [`RedisServer::cmd`].
const CMD_TIMEOUT: Duration = Duration::from_secs(5);
/// Connect, read and write timeout of each readiness probe.
const PROBE_TIMEOUT: Duration = Duration::from_millis(250);
const POLL_INTERVAL: Duration = Duration::from_millis(20);
const LOG_FILE: &str = "redis.log";
/// Captures stdout/stderr, where redis reports errors it hits before the log
/// file is open (for example a bad command-line option).
const OUTPUT_FILE: &str = "redis-server.out";
/// The Unix socket of a TLS server, through which [`RedisServer::cmd`] and
/// the readiness probe speak plain RESP.
const SOCKET_FILE: &str = "redis.sock";
/// Longest socket path that fits in `sun_path` on every Unix (104 bytes on
/// macOS and the BSDs, 108 on Linux, each with the terminating NUL).
const MAX_SOCKET_PATH: usize = 103;
const NOT_INSTALLED: &str = "redis-server is not installed: install it with `apt-get install redis-server` (Debian/Ubuntu) or `brew install redis`, then run the tests again";

/// A `redis-server` process owned by a test.
///
/// The server listens on `127.0.0.1` on a free port, keeps its files in a
/// fresh temporary directory and has persistence disabled (`--save ""`,
/// `--appendonly no`). Dropping the value kills the process, prints the
/// server's log to stderr if the thread is panicking, and removes the
/// directory.
///
/// A server started with [`RedisServer::start_tls`] speaks only TLS on its
/// port, with certificates made for it at start; see there.
///
/// ```no_run
/// use cache_test_support::RedisServer;
///
/// let server = RedisServer::start();
/// let url = server.url(); // "redis://127.0.0.1:<port>/0"
/// # let _ = url;
/// ```
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    binary: Binary,
    extra_args: Vec<String>,
    tls: Option<Tls>,
    // Wrapped so `is_running` can reap an exited child through `&self`.
    child: Mutex<Option<Child>>,
    // Declared last so it is removed after `Drop::drop` has killed the child.
    dir: TempDir,
}

impl RedisServer {
    /// Starts a server with the default options and waits until it answers
    /// `PING`.
    ///
    /// # Panics
    ///
    /// Panics if `redis-server` is not installed (or `REDIS_SERVER_BIN`
    /// points nowhere), or if the server exits or does not answer within
    /// about 10 seconds; the message then contains the server's log.
    ///
    /// ```no_run
    /// use cache_test_support::RedisServer;
    ///
    /// let server = RedisServer::start();
    /// assert!(server.is_running());
    /// ```
    #[track_caller]
    #[must_use = "dropping the server kills it immediately"]
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// Like [`RedisServer::start`], with extra command-line arguments
    /// appended after the defaults, one argv entry each.
    ///
    /// # Panics
    ///
    /// As [`RedisServer::start`]; an option `redis-server` rejects makes it
    /// panic with redis's error message.
    ///
    /// ```no_run
    /// use cache_test_support::RedisServer;
    ///
    /// let server = RedisServer::start_with(&["--maxmemory", "10mb"]);
    /// let maxmemory = server.cmd(&["CONFIG", "GET", "maxmemory"]);
    /// assert_eq!(maxmemory.as_array()[1].as_string().as_deref(), Some("10485760"));
    /// ```
    #[track_caller]
    #[must_use = "dropping the server kills it immediately"]
    pub fn start_with(extra_args: &[&str]) -> RedisServer {
        RedisServer::launch_new(extra_args, None, free_port)
    }

    /// A node for a [`RedisCluster`](crate::RedisCluster): cluster mode on,
    /// on a port below 55535 whose bus port (the port + 10000) is free too.
    /// With `tls`, it speaks only TLS, with the cluster's shared
    /// certificates.
    #[track_caller]
    pub(crate) fn start_cluster_node(
        extra_args: &[&str],
        tls: Option<(ClientAuth, &TlsFiles)>,
    ) -> RedisServer {
        let tls = tls.map(|(auth, files)| (auth, Some(files.clone())));
        RedisServer::launch_new(extra_args, tls, cluster_port)
    }

    /// Starts a server that speaks only TLS, on a free port, and waits
    /// until it answers `PING`. Clients need not present a certificate
    /// ([`ClientAuth::No`]); see [`RedisServer::start_tls_with`] for mutual
    /// TLS.
    ///
    /// Certificates are generated for each server, in the `tls/` folder of
    /// its directory: a test CA ([`RedisServer::ca_file`]), a server
    /// certificate for `127.0.0.1` and `localhost` signed by it, a client
    /// certificate and key signed by it, and an unrelated CA with a client
    /// certificate of its own, for tests of untrusted certificates. They
    /// stay the same across [`RedisServer::restart`].
    ///
    /// The plain TCP port is off (`--port 0`). [`RedisServer::cmd`] and its
    /// siblings still work: they use a Unix socket in the server's
    /// directory, which speaks plain RESP.
    ///
    /// # Panics
    ///
    /// As [`RedisServer::start`]; also if the certificates cannot be
    /// written or the temp dir's path is too long for a Unix socket (set
    /// `TMPDIR` to a shorter one).
    ///
    /// ```no_run
    /// use cache_test_support::{RedisServer, Reply};
    ///
    /// let server = RedisServer::start_tls();
    /// assert!(server.url().starts_with("rediss://127.0.0.1:"));
    /// assert_eq!(server.cmd(&["PING"]), Reply::Status("PONG".into()));
    /// // Hand `server.url()` and `server.ca_file()` to the code under test.
    /// ```
    #[track_caller]
    #[must_use = "dropping the server kills it immediately"]
    pub fn start_tls() -> RedisServer {
        RedisServer::start_tls_with(ClientAuth::No, &[])
    }

    /// Like [`RedisServer::start_tls`], asking clients for certificates as
    /// `client_auth` says, with extra command-line arguments appended after
    /// the defaults, one argv entry each.
    ///
    /// # Panics
    ///
    /// As [`RedisServer::start_tls`].
    ///
    /// ```no_run
    /// use cache_test_support::{ClientAuth, RedisServer};
    ///
    /// let server = RedisServer::start_tls_with(ClientAuth::Required, &["--maxmemory", "10mb"]);
    /// assert_eq!(server.client_auth(), Some(ClientAuth::Required));
    /// ```
    #[track_caller]
    #[must_use = "dropping the server kills it immediately"]
    pub fn start_tls_with(client_auth: ClientAuth, extra_args: &[&str]) -> RedisServer {
        RedisServer::launch_new(extra_args, Some((client_auth, None)), free_port)
    }

    #[track_caller]
    /// `tls` says whom to ask for certificates, and which certificates to
    /// use (fresh ones for this server if `None`).
    fn launch_new(
        extra_args: &[&str],
        tls: Option<(ClientAuth, Option<TlsFiles>)>,
        pick_port: fn() -> u16,
    ) -> RedisServer {
        let binary = Binary::from_env();
        let extra_args: Vec<String> = extra_args.iter().map(ToString::to_string).collect();
        let dir = TempDir::create();
        let tls = tls.map(|(client_auth, files)| {
            let socket = dir.path().join(SOCKET_FILE);
            if socket.as_os_str().len() > MAX_SOCKET_PATH {
                panic!(
                    "the Unix socket path {} is longer than {MAX_SOCKET_PATH} bytes: \
                     set TMPDIR to a shorter directory",
                    socket.display()
                );
            }
            Tls {
                files: match files {
                    Some(files) => files,
                    None => TlsFiles::generate(dir.path()),
                },
                client_auth,
                socket,
            }
        });
        let mut last_output = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = pick_port();
            match launch(&binary, port, dir.path(), &extra_args, tls.as_ref()) {
                Launch::Ready(child) => {
                    return RedisServer {
                        port,
                        binary,
                        extra_args,
                        tls,
                        child: Mutex::new(Some(child)),
                        dir,
                    }
                }
                Launch::PortInUse(output) => last_output = output,
            }
        }
        panic!(
            "redis-server could not bind a free loopback port in {START_ATTEMPTS} attempts \
             (another process took each one first); last output:\n{last_output}"
        );
    }

    /// The TCP port the server listens on. It stays the same across
    /// [`RedisServer::restart`].
    ///
    /// ```no_run
    /// use cache_test_support::RedisServer;
    ///
    /// let server = RedisServer::start();
    /// assert_ne!(server.port(), 0);
    /// ```
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for database 0: `redis://127.0.0.1:{port}/0`, or
    /// `rediss://127.0.0.1:{port}/0` for a TLS server.
    ///
    /// ```no_run
    /// use cache_test_support::RedisServer;
    ///
    /// let server = RedisServer::start();
    /// assert_eq!(server.url(), format!("redis://127.0.0.1:{}/0", server.port()));
    /// let tls = RedisServer::start_tls();
    /// assert_eq!(tls.url(), format!("rediss://127.0.0.1:{}/0", tls.port()));
    /// ```
    #[must_use]
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    /// How the server asks clients for certificates, or `None` if it does
    /// not speak TLS.
    ///
    /// ```no_run
    /// use cache_test_support::{ClientAuth, RedisServer};
    ///
    /// assert_eq!(RedisServer::start().client_auth(), None);
    /// assert_eq!(RedisServer::start_tls().client_auth(), Some(ClientAuth::No));
    /// ```
    #[must_use]
    pub fn client_auth(&self) -> Option<ClientAuth> {
        self.tls.as_ref().map(|tls| tls.client_auth)
    }

    /// The PEM file of the test CA that signed the server's certificate and
    /// [`RedisServer::client_cert_file`]: what a client must trust.
    ///
    /// # Panics
    ///
    /// Panics if the server was not started with TLS.
    ///
    /// ```no_run
    /// use cache_test_support::RedisServer;
    ///
    /// let server = RedisServer::start_tls();
    /// let ca = std::fs::read_to_string(server.ca_file()).unwrap();
    /// assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
    /// ```
    #[track_caller]
    #[must_use]
    pub fn ca_file(&self) -> &Path {
        &self.tls_files().ca
    }

    /// The PEM file of a client certificate signed by the test CA, which
    /// the server accepts under [`ClientAuth::Optional`] and
    /// [`ClientAuth::Required`].
    ///
    /// # Panics
    ///
    /// Panics if the server was not started with TLS.
    ///
    /// ```no_run
    /// use cache_test_support::{ClientAuth, RedisServer};
    ///
    /// let server = RedisServer::start_tls_with(ClientAuth::Required, &[]);
    /// assert!(server.client_cert_file().exists());
    /// ```
    #[track_caller]
    #[must_use]
    pub fn client_cert_file(&self) -> &Path {
        &self.tls_files().client_cert
    }

    /// The PEM file of the private key of [`RedisServer::client_cert_file`]
    /// (PKCS#8).
    ///
    /// # Panics
    ///
    /// Panics if the server was not started with TLS.
    ///
    /// ```no_run
    /// use cache_test_support::{ClientAuth, RedisServer};
    ///
    /// let server = RedisServer::start_tls_with(ClientAuth::Required, &[]);
    /// assert!(server.client_key_file().exists());
    /// ```
    #[track_caller]
    #[must_use]
    pub fn client_key_file(&self) -> &Path {
        &self.tls_files().client_key
    }

    /// The PEM file of a CA unrelated to the server: a client that trusts
    /// only this CA must reject the server's certificate.
    ///
    /// # Panics
    ///
    /// Panics if the server was not started with TLS.
    ///
    /// ```no_run
    /// use cache_test_support::RedisServer;
    ///
    /// let server = RedisServer::start_tls();
    /// assert_ne!(
    ///     std::fs::read(server.other_ca_file()).unwrap(),
    ///     std::fs::read(server.ca_file()).unwrap()
    /// );
    /// ```
    #[track_caller]
    #[must_use]
    pub fn other_ca_file(&self) -> &Path {
        &self.tls_files().other_ca
    }

    /// The PEM file of a client certificate signed by
    /// [`RedisServer::other_ca_file`], which the server rejects under
    /// [`ClientAuth::Optional`] and [`ClientAuth::Required`].
    ///
    /// # Panics
    ///
    /// Panics if the server was not started with TLS.
    ///
    /// ```no_run
    /// use cache_test_support::{ClientAuth, RedisServer};
    ///
    /// let server = RedisServer::start_tls_with(ClientAuth::Required, &[]);
    /// assert!(server.other_client_cert_file().exists());
    /// ```
    #[track_caller]
    #[must_use]
    pub fn other_client_cert_file(&self) -> &Path {
        &self.tls_files().other_client_cert
    }

    /// The PEM file of the private key of
    /// [`RedisServer::other_client_cert_file`] (PKCS#8).
    ///
    /// # Panics
    ///
    /// Panics if the server was not started with TLS.
    ///
    /// ```no_run
    /// use cache_test_support::{ClientAuth, RedisServer};
    ///
    /// let server = RedisServer::start_tls_with(ClientAuth::Required, &[]);
    /// assert!(server.other_client_key_file().exists());
    /// ```
    #[track_caller]
    #[must_use]
    pub fn other_client_key_file(&self) -> &Path {
        &self.tls_files().other_client_key
    }

    /// The server's socket address, `127.0.0.1:{port}`.
    ///
    /// ```no_run
    /// use cache_test_support::RedisServer;
    /// use std::net::TcpStream;
    ///
    /// let server = RedisServer::start();
    /// TcpStream::connect(server.addr()).unwrap();
    /// ```
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The server's working directory (`--dir`), which also holds its log.
    /// It is removed when the server is dropped.
    ///
    /// ```no_run
    /// use cache_test_support::RedisServer;
    ///
    /// let server = RedisServer::start();
    /// assert!(server.dir().join("redis.log").exists());
    /// ```
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process id of the running server, or `None` after
    /// [`RedisServer::kill`].
    ///
    /// ```no_run
    /// use cache_test_support::RedisServer;
    ///
    /// let mut server = RedisServer::start();
    /// assert!(server.pid().is_some());
    /// server.kill();
    /// assert_eq!(server.pid(), None);
    /// ```
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.lock_child().as_ref().map(Child::id)
    }

    /// Kills the server with `SIGKILL` and waits for it to exit. Killing an
    /// already killed server does nothing.
    ///
    /// ```no_run
    /// use cache_test_support::RedisServer;
    /// use std::net::TcpStream;
    ///
    /// let mut server = RedisServer::start();
    /// server.kill();
    /// assert!(TcpStream::connect(server.addr()).is_err());
    /// ```
    pub fn kill(&mut self) {
        let child = self
            .child
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(mut child) = child {
            // Fails only if the process has already exited; `wait` reaps it
            // either way.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Returns `true` while the server process is alive: it has not been
    /// killed and has not exited on its own.
    ///
    /// ```no_run
    /// use cache_test_support::RedisServer;
    ///
    /// let mut server = RedisServer::start();
    /// assert!(server.is_running());
    /// server.kill();
    /// assert!(!server.is_running());
    /// ```
    #[must_use]
    pub fn is_running(&self) -> bool {
        match self.lock_child().as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Starts the server again on the same port and directory, with the
    /// same arguments, and waits until it answers `PING`. A running server
    /// is killed first. Data is not kept: persistence is off.
    ///
    /// # Panics
    ///
    /// Panics, with the server's log, if the server cannot be started again
    /// (for example because another process has taken the port for more
    /// than a few seconds).
    ///
    /// ```no_run
    /// use cache_test_support::{RedisServer, Reply};
    ///
    /// let mut server = RedisServer::start();
    /// server.kill();
    /// server.restart();
    /// assert_eq!(server.cmd(&["PING"]), Reply::Status("PONG".into()));
    /// ```
    #[track_caller]
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + RESTART_BIND_PATIENCE;
        loop {
            let (dir, tls) = (self.dir.path(), self.tls.as_ref());
            match launch(&self.binary, self.port, dir, &self.extra_args, tls) {
                Launch::Ready(child) => {
                    *self.child.get_mut().unwrap_or_else(PoisonError::into_inner) = Some(child);
                    return;
                }
                Launch::PortInUse(output) => {
                    if Instant::now() >= deadline {
                        panic!(
                            "redis-server could not be restarted: port {} was still in use \
                             after {RESTART_BIND_PATIENCE:?}; output:\n{output}",
                            self.port
                        );
                    }
                    thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    /// The contents of the server's log file (empty if it does not exist
    /// yet). Restarts append to the same log.
    ///
    /// ```no_run
    /// use cache_test_support::RedisServer;
    ///
    /// let server = RedisServer::start();
    /// assert!(server.log().contains("Ready to accept connections"));
    /// ```
    #[must_use]
    pub fn log(&self) -> String {
        read_lossy(&self.dir.path().join(LOG_FILE), 0)
    }

    /// Sends one command on a fresh connection and returns the reply.
    ///
    /// For a TLS server the connection goes through the server's Unix
    /// socket, in plain RESP, so it works whatever [`ClientAuth`] says.
    ///
    /// Error replies are returned as [`Reply::Error`], not panics. Each call
    /// uses its own connection, so state tied to a connection (`MULTI`,
    /// `SELECT`, `CLIENT SETNAME`, ...) does not carry over between calls.
    ///
    /// # Panics
    ///
    /// Panics if `args` is empty or on any I/O or protocol error, including
    /// a refused connection and a reply taking more than 5 seconds.
    ///
    /// ```no_run
    /// use cache_test_support::{RedisServer, Reply};
    ///
    /// let server = RedisServer::start();
    /// assert_eq!(server.cmd(&["SET", "k", "v", "EX", "60"]), Reply::Status("OK".into()));
    /// let pttl = server.cmd(&["PTTL", "k"]).as_int();
    /// assert!(pttl > 0 && pttl <= 60_000);
    /// ```
    #[track_caller]
    pub fn cmd(&self, args: &[&str]) -> Reply {
        let args: Vec<&[u8]> = args.iter().map(|arg| arg.as_bytes()).collect();
        self.cmd_bytes(&args)
    }

    /// Like [`RedisServer::cmd`], with binary arguments.
    ///
    /// # Panics
    ///
    /// As [`RedisServer::cmd`].
    ///
    /// ```no_run
    /// use cache_test_support::RedisServer;
    ///
    /// let server = RedisServer::start();
    /// server.cmd_bytes(&[b"SET", b"key", b"\x00\x01\r\n"]);
    /// assert_eq!(server.cmd(&["STRLEN", "key"]).as_int(), 4);
    /// ```
    #[track_caller]
    pub fn cmd_bytes(&self, args: &[&[u8]]) -> Reply {
        assert!(!args.is_empty(), "cmd needs at least the command name");
        match round_trip(&self.endpoint(), &[args], CMD_TIMEOUT) {
            Ok(mut replies) => replies.remove(0),
            Err(err) => {
                let shown: Vec<String> = args
                    .iter()
                    .map(|arg| String::from_utf8_lossy(arg).into_owned())
                    .collect();
                panic!(
                    "redis command {shown:?} to {} failed: {err} (server running: {})",
                    self.endpoint(),
                    self.is_running()
                )
            }
        }
    }

    /// Sends several commands on one connection, in order, and returns
    /// their replies: for state tied to a connection, such as `AUTH` or
    /// `SELECT` before the command that needs it.
    ///
    /// # Panics
    ///
    /// As [`RedisServer::cmd`].
    ///
    /// ```no_run
    /// use cache_test_support::RedisServer;
    ///
    /// let server = RedisServer::start();
    /// server.cmd(&["CONFIG", "SET", "requirepass", "pw"]);
    /// let replies = server.cmd_pipeline(&[&["AUTH", "pw"], &["SELECT", "3"], &["DBSIZE"]]);
    /// assert_eq!(replies[2].as_int(), 0);
    /// ```
    #[track_caller]
    pub fn cmd_pipeline(&self, commands: &[&[&str]]) -> Vec<Reply> {
        assert!(
            !commands.is_empty(),
            "cmd_pipeline needs at least one command"
        );
        let owned: Vec<Vec<&[u8]>> = commands
            .iter()
            .map(|args| args.iter().map(|a| a.as_bytes()).collect())
            .collect();
        let borrowed: Vec<&[&[u8]]> = owned.iter().map(Vec::as_slice).collect();
        round_trip(&self.endpoint(), &borrowed, CMD_TIMEOUT).unwrap_or_else(|err| {
            panic!(
                "redis pipeline {commands:?} to {} failed: {err} (server running: {})",
                self.endpoint(),
                self.is_running()
            )
        })
    }

    /// Like [`RedisServer::cmd_pipeline`], with binary arguments.
    ///
    /// # Panics
    ///
    /// As [`RedisServer::cmd`].
    ///
    /// ```no_run
    /// use cache_test_support::RedisServer;
    ///
    /// let server = RedisServer::start();
    /// let replies = server.cmd_pipeline_bytes(&[&[b"SET", b"k", b"\x00"], &[b"STRLEN", b"k"]]);
    /// assert_eq!(replies[1].as_int(), 1);
    /// ```
    #[track_caller]
    pub fn cmd_pipeline_bytes(&self, commands: &[&[&[u8]]]) -> Vec<Reply> {
        assert!(
            !commands.is_empty(),
            "cmd_pipeline_bytes needs at least one command"
        );
        round_trip(&self.endpoint(), commands, CMD_TIMEOUT).unwrap_or_else(|err| {
            panic!(
                "redis pipeline to {} failed: {err} (server running: {})",
                self.endpoint(),
                self.is_running()
            )
        })
    }

    /// Where [`RedisServer::cmd`] connects.
    fn endpoint(&self) -> Endpoint {
        endpoint(self.port, self.tls.as_ref())
    }

    #[track_caller]
    fn tls_files(&self) -> &TlsFiles {
        match &self.tls {
            Some(tls) => &tls.files,
            None => panic!(
                "the server on port {} does not speak TLS: start it with \
                 RedisServer::start_tls to get certificate files",
                self.port
            ),
        }
    }

    fn lock_child(&self) -> std::sync::MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            let mut report = self.log();
            let output = read_lossy(&self.dir.path().join(OUTPUT_FILE), 0);
            if !output.trim().is_empty() {
                report.push_str("---- redis-server stdout/stderr ----\n");
                report.push_str(&output);
            }
            eprintln!(
                "---- redis-server log (port {}) ----\n{}\n---- end of redis-server log ----",
                self.port,
                report.trim_end()
            );
        }
        // `self.dir` removes the directory when it is dropped right after this.
    }
}

/// Returns a loopback port that was free a moment ago: binds
/// `127.0.0.1:0`, reads the port and closes the listener again.
///
/// ```no_run
/// use cache_test_support::free_port;
/// use std::net::TcpListener;
///
/// let port = free_port();
/// TcpListener::bind(("127.0.0.1", port)).unwrap();
/// ```
///
/// # Panics
///
/// Panics if no loopback port can be bound.
#[must_use]
#[track_caller]
pub fn free_port() -> u16 {
    let bound = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr());
    match bound {
        Ok(addr) => addr.port(),
        Err(err) => panic!("cannot bind a free port on 127.0.0.1: {err}"),
    }
}

/// A free loopback port in `[20000, 45535)` whose cluster bus port (the
/// port + 10000) is free as well.
#[track_caller]
fn cluster_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    for attempt in 0u32..1000 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(attempt);
        let port = 20_000 + (h.finish() % 25_535) as u16;
        let free = |p: u16| TcpListener::bind((Ipv4Addr::LOCALHOST, p)).is_ok();
        if free(port) && free(port + 10_000) {
            return port;
        }
    }
    panic!("no free loopback port pair (port, port + 10000) below 55535 in 1000 tries");
}

/// A `redis://127.0.0.1:{port}/0` URL where nothing listens, for testing
/// how code behaves when Redis is unreachable.
///
/// ```no_run
/// use cache_test_support::unused_url;
///
/// let url = unused_url();
/// assert!(url.starts_with("redis://127.0.0.1:"));
/// ```
///
/// # Panics
///
/// As [`free_port`].
#[must_use]
#[track_caller]
pub fn unused_url() -> String {
    format!("redis://127.0.0.1:{}/0", free_port())
}

/// The TLS setup of a server.
#[derive(Debug)]
struct Tls {
    files: TlsFiles,
    client_auth: ClientAuth,
    /// The plain-RESP Unix socket (`--unixsocket`).
    socket: PathBuf,
}

/// Where plain RESP reaches a server.
#[derive(Debug)]
enum Endpoint {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(addr) => write!(f, "{addr}"),
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// The plain port of a plain server, the Unix socket of a TLS one.
fn endpoint(port: u16, tls: Option<&Tls>) -> Endpoint {
    match tls {
        Some(tls) => Endpoint::Unix(tls.socket.clone()),
        None => Endpoint::Tcp(SocketAddr::from((Ipv4Addr::LOCALHOST, port))),
    }
}

/// The program to run, and whether it came from `REDIS_SERVER_BIN`.
#[derive(Debug, Clone)]
struct Binary {
    program: OsString,
    from_env: bool,
}

impl Binary {
    fn from_env() -> Binary {
        match std::env::var_os(BIN_ENV) {
            Some(program) if !program.is_empty() => Binary {
                program,
                from_env: true,
            },
            _ => Binary {
                program: "redis-server".into(),
                from_env: false,
            },
        }
    }

    fn spawn_failure(&self, err: &io::Error) -> String {
        match (err.kind(), self.from_env) {
            (io::ErrorKind::NotFound, false) => NOT_INSTALLED.to_owned(),
            (io::ErrorKind::NotFound, true) => format!(
                "{BIN_ENV} is set to {:?}, but no such program exists ({err}); \
                 fix or unset {BIN_ENV}",
                self.program
            ),
            _ => format!("cannot run {:?}: {err}", self.program),
        }
    }
}

enum Launch {
    Ready(Child),
    /// The server exited because its port was taken; holds its output.
    PortInUse(String),
}

/// Spawns one server on `port` and waits until it answers. Panics on every
/// failure except a port that is already in use.
#[track_caller]
fn launch(
    binary: &Binary,
    port: u16,
    dir: &Path,
    extra_args: &[String],
    tls: Option<&Tls>,
) -> Launch {
    let log_path = dir.join(LOG_FILE);
    let output_path = dir.join(OUTPUT_FILE);
    // Only the output of this attempt matters: the files are appended to.
    let log_start = file_len(&log_path);
    let output_start = file_len(&output_path);
    // `match` rather than `unwrap_or_else`: panics inside closures would
    // lose the caller's location that `#[track_caller]` reports.
    let output = match OpenOptions::new()
        .create(true)
        .append(true)
        .open(&output_path)
    {
        Ok(file) => file,
        Err(err) => panic!("cannot create {}: {err}", output_path.display()),
    };
    let output_clone = match output.try_clone() {
        Ok(file) => file,
        Err(err) => panic!("cannot duplicate a file handle: {err}"),
    };

    let mut command = Command::new(&binary.program);
    match tls {
        None => {
            command.arg("--port").arg(port.to_string());
        }
        Some(tls) => {
            command
                .args(["--port", "0", "--tls-port"])
                .arg(port.to_string())
                .arg("--tls-cert-file")
                .arg(&tls.files.server_cert)
                .arg("--tls-key-file")
                .arg(&tls.files.server_key)
                .arg("--tls-ca-cert-file")
                .arg(&tls.files.ca)
                .args(["--tls-auth-clients", tls.client_auth.arg()])
                .arg("--unixsocket")
                .arg(&tls.socket)
                .args(["--unixsocketperm", "700"]);
        }
    }
    command
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(&log_path)
        .args(extra_args)
        .stdin(Stdio::null())
        .stdout(output)
        .stderr(output_clone);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => panic!("{}", binary.spawn_failure(&err)),
    };

    let this_attempt = || {
        let mut text = read_lossy(&log_path, log_start);
        let output = read_lossy(&output_path, output_start);
        if !output.trim().is_empty() {
            text.push_str("---- stdout/stderr ----\n");
            text.push_str(&output);
        }
        text
    };
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let text = this_attempt();
                if text.contains("Address already in use") {
                    return Launch::PortInUse(text);
                }
                panic!(
                    "redis-server ({}) exited with {status} before it was ready on port {port}; \
                     output:\n{text}",
                    Path::new(&binary.program).display()
                );
            }
            Ok(None) => {}
            Err(err) => panic!("cannot check on redis-server: {err}"),
        }
        if is_ready(&endpoint(port, tls), child.id()) {
            return Launch::Ready(child);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "redis-server on port {port} did not answer PING within {READY_TIMEOUT:?}; \
                 output:\n{}",
                this_attempt()
            );
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Whether the server at `endpoint` answers `PING` and is the process `pid`
/// (and not some other server that grabbed the port first).
fn is_ready(endpoint: &Endpoint, pid: u32) -> bool {
    let probe: [&[&[u8]]; 2] = [&[b"PING"], &[b"INFO", b"server"]];
    let Ok(replies) = round_trip(endpoint, &probe, PROBE_TIMEOUT) else {
        return false;
    };
    replies[0] == Reply::Status("PONG".into()) && info_pid(&replies[1]) == Some(pid)
}

/// The `process_id` field of an `INFO server` reply.
fn info_pid(info: &Reply) -> Option<u32> {
    let Reply::Bulk(text) = info else {
        return None;
    };
    String::from_utf8_lossy(text)
        .lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
}

/// Sends `commands` on one new connection and reads one reply per command.
fn round_trip(
    endpoint: &Endpoint,
    commands: &[&[&[u8]]],
    timeout: Duration,
) -> io::Result<Vec<Reply>> {
    match endpoint {
        Endpoint::Tcp(addr) => {
            let stream = TcpStream::connect_timeout(addr, timeout)?;
            stream.set_read_timeout(Some(timeout))?;
            stream.set_write_timeout(Some(timeout))?;
            exchange(stream, commands)
        }
        #[cfg(unix)]
        Endpoint::Unix(path) => {
            let stream = std::os::unix::net::UnixStream::connect(path)?;
            stream.set_read_timeout(Some(timeout))?;
            stream.set_write_timeout(Some(timeout))?;
            exchange(stream, commands)
        }
        #[cfg(not(unix))]
        Endpoint::Unix(path) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("{}: Unix sockets need a Unix system", path.display()),
        )),
    }
}

fn exchange<S: Read + Write>(mut stream: S, commands: &[&[&[u8]]]) -> io::Result<Vec<Reply>> {
    let mut request = Vec::new();
    for command in commands {
        resp::encode_command(command, &mut request);
    }
    stream.write_all(&request)?;
    let mut reader = BufReader::new(stream);
    commands
        .iter()
        .map(|_| resp::read_reply(&mut reader))
        .collect()
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).map_or(0, |meta| meta.len())
}

/// Reads a file from byte `start` on, replacing invalid UTF-8; a missing file
/// reads as empty.
fn read_lossy(path: &Path, start: u64) -> String {
    let bytes = fs::read(path).unwrap_or_default();
    let start = usize::try_from(start)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// A directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    #[track_caller]
    pub(crate) fn create() -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "cache-test-support-redis-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        // A leftover from an earlier process that had the same pid.
        if path.exists() {
            let _ = fs::remove_dir_all(&path);
        }
        if let Err(err) = fs::create_dir_all(&path) {
            panic!("cannot create {}: {err}", path.display());
        }
        TempDir(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panic_message(f: impl FnOnce() + std::panic::UnwindSafe) -> String {
        let payload = std::panic::catch_unwind(f).expect_err("expected a panic");
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    }

    #[test]
    fn missing_binary_on_path_explains_how_to_install() {
        let binary = Binary {
            program: "redis-server-that-does-not-exist-3f9a".into(),
            from_env: false,
        };
        let dir = TempDir::create();
        let msg = panic_message(|| {
            launch(&binary, free_port(), dir.path(), &[], None);
        });
        assert_eq!(msg, NOT_INSTALLED);
    }

    #[test]
    fn missing_binary_from_env_names_the_variable_and_path() {
        let binary = Binary {
            program: "/nonexistent/redis-server".into(),
            from_env: true,
        };
        let dir = TempDir::create();
        let msg = panic_message(|| {
            launch(&binary, free_port(), dir.path(), &[], None);
        });
        assert!(msg.contains("REDIS_SERVER_BIN"), "{msg}");
        assert!(msg.contains("/nonexistent/redis-server"), "{msg}");
    }

    #[test]
    fn info_pid_reads_process_id() {
        let info = Reply::Bulk(b"# Server\r\nredis_version:7.0.15\r\nprocess_id:4242\r\n".to_vec());
        assert_eq!(info_pid(&info), Some(4242));
        assert_eq!(info_pid(&Reply::Bulk(b"# Server\r\n".to_vec())), None);
        assert_eq!(info_pid(&Reply::Nil), None);
    }

    #[test]
    fn temp_dirs_are_unique_and_removed_on_drop() {
        let a = TempDir::create();
        let b = TempDir::create();
        assert_ne!(a.path(), b.path());
        assert!(a.path().starts_with(std::env::temp_dir()));
        let path = a.path().to_owned();
        fs::write(path.join("file"), b"x").unwrap();
        drop(a);
        assert!(!path.exists());
        assert!(b.path().is_dir());
    }

    #[test]
    fn read_lossy_skips_earlier_output() {
        let dir = TempDir::create();
        let path = dir.path().join("f");
        assert_eq!(read_lossy(&path, 0), "");
        fs::write(&path, b"old\nnew\n").unwrap();
        assert_eq!(read_lossy(&path, 4), "new\n");
        assert_eq!(read_lossy(&path, 100), "");
    }
}
