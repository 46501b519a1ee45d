//! A loopback TCP proxy that injects network faults between a client and a
//! server.
//!
//! Every accepted connection gets its own upstream connection and two pump
//! threads, one per direction. The pumps read with a short timeout and look
//! at the proxy's mode for every chunk, so a mode change applies to the
//! connections already open as well as to new ones. Closing a connection
//! shuts both sockets down, which wakes any pump blocked on them.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long a pump blocks in one read or write before it looks at the mode
/// and the stop flag again.
const TICK: Duration = Duration::from_millis(20);
/// How often the listener is polled for new connections.
const ACCEPT_POLL: Duration = Duration::from_millis(5);
/// Connect timeout for the upstream side of a new connection.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest chunk read (and then forwarded or held) at once.
const CHUNK_SIZE: usize = 16 * 1024;

/// What a [`FaultProxy`] does with the bytes of its connections.
///
/// ```no_run
/// use cache_test_support::{FaultProxy, ProxyMode, RedisServer};
/// use std::time::Duration;
///
/// let server = RedisServer::start();
/// let proxy = FaultProxy::start(server.addr());
/// proxy.set_mode(ProxyMode::Delay(Duration::from_millis(50)));
/// assert_eq!(proxy.mode(), ProxyMode::Delay(Duration::from_millis(50)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// Forwards bytes both ways as soon as they arrive.
    Pass,
    /// Keeps connections open and accepts new ones, and forwards nothing,
    /// not even a side closing its connection: each side sees silence, as
    /// with a network path that drops every packet. What a side sent is
    /// held, not lost (as TCP keeps it for retransmission), and arrives in
    /// order once the mode forwards again; a stream is never cut short in
    /// the middle.
    Blackhole,
    /// Closes every connection, and each new one right after accepting it:
    /// a client's connect succeeds and its next read sees end of file (or a
    /// reset, if it had sent bytes).
    Refuse,
    /// Forwards bytes both ways, holding each chunk it reads for the given
    /// time before writing it: a request and its reply are each held, so a
    /// round trip takes at least twice the delay.
    Delay(Duration),
}

impl ProxyMode {
    fn forwards(self) -> bool {
        matches!(self, ProxyMode::Pass | ProxyMode::Delay(_))
    }
}

/// A TCP proxy on a free `127.0.0.1` port in front of an upstream address,
/// whose [mode](ProxyMode) can be switched at any time to inject faults:
/// silence, closed connections or latency.
///
/// It starts in [`ProxyMode::Pass`]. A mode change applies at once to the
/// connections already open and to new ones. Dropping the proxy closes its
/// listener and every connection and waits for its threads to finish.
///
/// Each accepted connection opens its own connection to the upstream; if
/// that fails the client's connection is closed right away (in
/// [`ProxyMode::Blackhole`] it is kept open and silent instead).
///
/// ```no_run
/// use cache_test_support::{FaultProxy, RedisServer};
///
/// let server = RedisServer::start();
/// let proxy = FaultProxy::start(server.addr());
/// // Hand `proxy.url()` to the code under test, then cut the network:
/// proxy.blackhole();
/// // ... and restore it.
/// proxy.pass();
/// ```
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy listening on `127.0.0.1` on a free port, forwarding
    /// to `upstream` in [`ProxyMode::Pass`].
    ///
    /// The upstream does not need to be listening yet: it is connected to
    /// once for each accepted connection.
    ///
    /// # Panics
    ///
    /// Panics if no loopback port can be bound or no thread can be spawned.
    ///
    /// ```no_run
    /// use cache_test_support::{FaultProxy, RedisServer};
    /// use std::net::TcpStream;
    ///
    /// let server = RedisServer::start();
    /// let proxy = FaultProxy::start(server.addr());
    /// TcpStream::connect(proxy.addr()).unwrap();
    /// ```
    #[track_caller]
    #[must_use = "dropping the proxy closes it immediately"]
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = match TcpListener::bind((Ipv4Addr::LOCALHOST, 0)) {
            Ok(listener) => listener,
            Err(err) => panic!("cannot bind a free port on 127.0.0.1 for the proxy: {err}"),
        };
        let addr = match listener.local_addr() {
            Ok(addr) => addr,
            Err(err) => panic!("cannot read the proxy's listening address: {err}"),
        };
        // Polled, so the acceptor notices the stop flag without a wake-up
        // connection.
        if let Err(err) = listener.set_nonblocking(true) {
            panic!("cannot make the proxy's listener non-blocking: {err}");
        }
        let shared = Arc::new(Shared {
            upstream,
            state: Mutex::new(State {
                mode: ProxyMode::Pass,
                conns: Vec::new(),
                threads: Vec::new(),
            }),
            stop: AtomicBool::new(false),
            accepted: AtomicU64::new(0),
            open: AtomicUsize::new(0),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("fault-proxy-accept-{}", addr.port()))
                .spawn(move || accept_loop(&listener, &shared))
        };
        let acceptor = match acceptor {
            Ok(handle) => handle,
            Err(err) => panic!("cannot spawn the proxy's accept thread: {err}"),
        };
        FaultProxy {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// The port the proxy listens on.
    ///
    /// ```no_run
    /// use cache_test_support::{FaultProxy, RedisServer};
    ///
    /// let server = RedisServer::start();
    /// let proxy = FaultProxy::start(server.addr());
    /// assert_ne!(proxy.port(), server.port());
    /// ```
    #[must_use]
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The proxy's listening address, `127.0.0.1:{port}`.
    ///
    /// ```no_run
    /// use cache_test_support::{FaultProxy, RedisServer};
    ///
    /// let server = RedisServer::start();
    /// let proxy = FaultProxy::start(server.addr());
    /// assert_eq!(proxy.addr().to_string(), format!("127.0.0.1:{}", proxy.port()));
    /// ```
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A Redis connection URL for database 0 through the proxy:
    /// `redis://127.0.0.1:{port}/0`, like [`RedisServer::url`].
    ///
    /// [`RedisServer::url`]: crate::RedisServer::url
    ///
    /// ```no_run
    /// use cache_test_support::{FaultProxy, RedisServer};
    ///
    /// let server = RedisServer::start();
    /// let proxy = FaultProxy::start(server.addr());
    /// assert_eq!(proxy.url(), format!("redis://127.0.0.1:{}/0", proxy.port()));
    /// ```
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.addr.port())
    }

    /// The address the proxy forwards to.
    ///
    /// ```no_run
    /// use cache_test_support::{FaultProxy, RedisServer};
    ///
    /// let server = RedisServer::start();
    /// let proxy = FaultProxy::start(server.addr());
    /// assert_eq!(proxy.upstream(), server.addr());
    /// ```
    #[must_use]
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// The current mode.
    ///
    /// ```no_run
    /// use cache_test_support::{FaultProxy, ProxyMode, RedisServer};
    ///
    /// let server = RedisServer::start();
    /// let proxy = FaultProxy::start(server.addr());
    /// assert_eq!(proxy.mode(), ProxyMode::Pass);
    /// ```
    #[must_use]
    pub fn mode(&self) -> ProxyMode {
        self.shared.mode()
    }

    /// Switches to `mode`, for the open connections and new ones alike.
    /// Switching to [`ProxyMode::Refuse`] closes every open connection
    /// before this returns.
    ///
    /// ```no_run
    /// use cache_test_support::{FaultProxy, ProxyMode, RedisServer};
    ///
    /// let server = RedisServer::start();
    /// let proxy = FaultProxy::start(server.addr());
    /// proxy.set_mode(ProxyMode::Blackhole);
    /// assert_eq!(proxy.mode(), ProxyMode::Blackhole);
    /// ```
    pub fn set_mode(&self, mode: ProxyMode) {
        let mut state = self.shared.lock();
        state.mode = mode;
        if mode == ProxyMode::Refuse {
            for conn in state.conns.drain(..) {
                conn.close(&self.shared);
            }
        }
    }

    /// Forwards both ways again: [`ProxyMode::Pass`]. Connections that were
    /// closed stay closed; clients reconnect.
    ///
    /// ```no_run
    /// use cache_test_support::{FaultProxy, ProxyMode, RedisServer};
    ///
    /// let server = RedisServer::start();
    /// let proxy = FaultProxy::start(server.addr());
    /// proxy.blackhole();
    /// proxy.pass();
    /// assert_eq!(proxy.mode(), ProxyMode::Pass);
    /// ```
    pub fn pass(&self) {
        self.set_mode(ProxyMode::Pass);
    }

    /// Keeps every connection open but forwards nothing:
    /// [`ProxyMode::Blackhole`]. A client's requests go unanswered until it
    /// times out.
    ///
    /// ```no_run
    /// use cache_test_support::{FaultProxy, RedisServer};
    /// use std::io::{Read, Write};
    /// use std::net::TcpStream;
    /// use std::time::Duration;
    ///
    /// let server = RedisServer::start();
    /// let proxy = FaultProxy::start(server.addr());
    /// proxy.blackhole();
    /// let mut client = TcpStream::connect(proxy.addr()).unwrap();
    /// client.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    /// client.write_all(b"PING\r\n").unwrap();
    /// assert!(client.read(&mut [0; 16]).is_err()); // timed out
    /// ```
    pub fn blackhole(&self) {
        self.set_mode(ProxyMode::Blackhole);
    }

    /// Closes every open connection now and each new one right after it
    /// is accepted: [`ProxyMode::Refuse`]. Clients see end of file (or a
    /// reset) on their next read; [`FaultProxy::pass`] lets new connections
    /// through again.
    ///
    /// ```no_run
    /// use cache_test_support::{FaultProxy, RedisServer};
    ///
    /// let server = RedisServer::start();
    /// let proxy = FaultProxy::start(server.addr());
    /// proxy.drop_all();
    /// assert_eq!(proxy.open_connections(), 0);
    /// ```
    pub fn drop_all(&self) {
        self.set_mode(ProxyMode::Refuse);
    }

    /// Forwards both ways, holding each chunk for `delay` before writing
    /// it: [`ProxyMode::Delay`]. A request and its reply are each held, so
    /// a round trip takes at least `2 * delay`.
    ///
    /// ```no_run
    /// use cache_test_support::{FaultProxy, RedisServer};
    /// use std::time::Duration;
    ///
    /// let server = RedisServer::start();
    /// let proxy = FaultProxy::start(server.addr());
    /// proxy.delay(Duration::from_millis(100));
    /// ```
    pub fn delay(&self, delay: Duration) {
        self.set_mode(ProxyMode::Delay(delay));
    }

    /// Closes every open connection now but keeps the mode, so new
    /// connections are served as before: a server-side disconnect that the
    /// client recovers from by reconnecting.
    ///
    /// ```no_run
    /// use cache_test_support::{FaultProxy, ProxyMode, RedisServer};
    ///
    /// let server = RedisServer::start();
    /// let proxy = FaultProxy::start(server.addr());
    /// proxy.close_connections();
    /// assert_eq!(proxy.mode(), ProxyMode::Pass);
    /// assert_eq!(proxy.open_connections(), 0);
    /// ```
    pub fn close_connections(&self) {
        let mut state = self.shared.lock();
        for conn in state.conns.drain(..) {
            conn.close(&self.shared);
        }
    }

    /// How many client connections the proxy has accepted so far,
    /// including those it closed right away.
    ///
    /// ```no_run
    /// use cache_test_support::{FaultProxy, RedisServer};
    ///
    /// let server = RedisServer::start();
    /// let proxy = FaultProxy::start(server.addr());
    /// assert_eq!(proxy.accepted_connections(), 0);
    /// ```
    #[must_use]
    pub fn accepted_connections(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// How many client connections are open through the proxy now. A
    /// connection counts from the moment it is set up (shortly after the
    /// client's connect returns) until either side closes it or the proxy
    /// does.
    ///
    /// ```no_run
    /// use cache_test_support::{FaultProxy, RedisServer};
    ///
    /// let server = RedisServer::start();
    /// let proxy = FaultProxy::start(server.addr());
    /// assert_eq!(proxy.open_connections(), 0);
    /// ```
    #[must_use]
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .field("mode", &self.mode())
            .field("accepted_connections", &self.accepted_connections())
            .field("open_connections", &self.open_connections())
            .finish()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // The acceptor owns the listener: once it has returned, the port is
        // closed and no connection can be added behind our back.
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let threads = {
            let mut state = self.shared.lock();
            for conn in state.conns.drain(..) {
                conn.close(&self.shared);
            }
            std::mem::take(&mut state.threads)
        };
        // Every pump returns within a tick: its sockets are shut down and
        // it checks the stop flag between blocking calls.
        for pump in threads {
            let _ = pump.join();
        }
    }
}

/// State shared by the proxy handle, its acceptor and its pumps.
struct Shared {
    upstream: SocketAddr,
    state: Mutex<State>,
    stop: AtomicBool,
    accepted: AtomicU64,
    open: AtomicUsize,
}

struct State {
    mode: ProxyMode,
    /// Open connections; closed ones are pruned when a connection is added.
    conns: Vec<Arc<Conn>>,
    /// Pump threads, joined on drop; finished ones are pruned as above.
    threads: Vec<JoinHandle<()>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn mode(&self) -> ProxyMode {
        self.lock().mode
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// One client connection and its upstream connection, if that could be
/// opened.
struct Conn {
    client: TcpStream,
    upstream: Option<TcpStream>,
    closed: AtomicBool,
}

impl Conn {
    /// Shuts both sockets down (waking pumps blocked on them) and counts
    /// the connection as closed; later calls do nothing.
    fn close(&self, shared: &Shared) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            let _ = self.client.shutdown(Shutdown::Both);
            if let Some(upstream) = &self.upstream {
                let _ = upstream.shutdown(Shutdown::Both);
            }
            shared.open.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn is_closed(&self, shared: &Shared) -> bool {
        self.closed.load(Ordering::SeqCst) || shared.stopped()
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    while !shared.stopped() {
        match listener.accept() {
            Ok((client, _)) => {
                shared.accepted.fetch_add(1, Ordering::SeqCst);
                admit(client, shared);
            }
            // `WouldBlock` when nobody is waiting; other errors (such as
            // running out of file descriptors) are retried the same way.
            Err(_) => thread::sleep(ACCEPT_POLL),
        }
    }
}

/// Sets up one accepted connection, or closes it if the mode says so.
fn admit(client: TcpStream, shared: &Arc<Shared>) {
    if shared.mode() == ProxyMode::Refuse {
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let upstream = TcpStream::connect_timeout(&shared.upstream, UPSTREAM_CONNECT_TIMEOUT).ok();
    let configured = configure(&client).and_then(|()| match &upstream {
        Some(upstream) => configure(upstream),
        None => Ok(()),
    });
    let close_now = |client: &TcpStream, upstream: &Option<TcpStream>| {
        let _ = client.shutdown(Shutdown::Both);
        if let Some(upstream) = upstream {
            let _ = upstream.shutdown(Shutdown::Both);
        }
    };
    if configured.is_err() {
        close_now(&client, &upstream);
        return;
    }

    // Under the lock, so that a concurrent switch to `Refuse` either sees
    // this connection in the list or is seen here.
    let mut state = shared.lock();
    let keep = match state.mode {
        ProxyMode::Refuse => false,
        ProxyMode::Blackhole => true,
        ProxyMode::Pass | ProxyMode::Delay(_) => upstream.is_some(),
    };
    if !keep {
        drop(state);
        close_now(&client, &upstream);
        return;
    }
    let conn = Arc::new(Conn {
        client,
        upstream,
        closed: AtomicBool::new(false),
    });
    shared.open.fetch_add(1, Ordering::SeqCst);
    state.conns.retain(|c| !c.closed.load(Ordering::SeqCst));
    state.threads.retain(|t| !t.is_finished());
    state.conns.push(Arc::clone(&conn));
    for direction in [Direction::ToUpstream, Direction::ToClient] {
        let (pump_conn, pump_shared) = (Arc::clone(&conn), Arc::clone(shared));
        let spawned = thread::Builder::new()
            .name(format!("fault-proxy-{direction:?}"))
            .spawn(move || pump(&pump_conn, &pump_shared, direction));
        match spawned {
            Ok(handle) => state.threads.push(handle),
            Err(_) => conn.close(shared),
        }
    }
}

fn configure(stream: &TcpStream) -> io::Result<()> {
    // Accepted sockets may inherit the listener's non-blocking flag.
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(TICK))?;
    stream.set_write_timeout(Some(TICK))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// Client to upstream.
    ToUpstream,
    /// Upstream to client.
    ToClient,
}

/// Moves the bytes of one direction of `conn` until it is closed.
fn pump(conn: &Conn, shared: &Shared, direction: Direction) {
    let (from, to) = match direction {
        Direction::ToUpstream => (Some(&conn.client), conn.upstream.as_ref()),
        Direction::ToClient => (conn.upstream.as_ref(), Some(&conn.client)),
    };
    let Some(mut from) = from else {
        // No upstream connection: nothing to read, but the client must be
        // closed once the mode asks for forwarding.
        upstream_gone(conn, shared);
        return;
    };
    let mut buf = vec![0; CHUNK_SIZE];
    while !conn.is_closed(shared) {
        let n = match from.read(&mut buf) {
            Ok(0) => 0,
            Ok(n) => n,
            Err(err) if is_timeout(&err) => continue,
            Err(_) => 0,
        };
        if n == 0 {
            if direction == Direction::ToClient && shared.mode() == ProxyMode::Blackhole {
                // The server went away; in a blackhole the client must not
                // hear of it.
                upstream_gone(conn, shared);
            } else {
                conn.close(shared);
            }
            return;
        }
        let Some(mut mode) = out_of_blackhole(conn, shared) else {
            return;
        };
        if let ProxyMode::Delay(delay) = mode {
            if !hold(conn, shared, delay) {
                return;
            }
            // The mode may have changed while the chunk was held.
            let Some(now) = out_of_blackhole(conn, shared) else {
                return;
            };
            mode = now;
        }
        match mode {
            ProxyMode::Blackhole => unreachable!("waited out above"),
            ProxyMode::Refuse => {
                conn.close(shared);
                return;
            }
            ProxyMode::Pass | ProxyMode::Delay(_) => {
                let Some(to) = to else {
                    conn.close(shared);
                    return;
                };
                if write_all(to, &buf[..n], conn, shared).is_err() {
                    conn.close(shared);
                    return;
                }
            }
        }
    }
}

/// The mode once it is not [`ProxyMode::Blackhole`]: a chunk read in a
/// blackhole is held, not dropped, as TCP keeps unacknowledged bytes for
/// retransmission, and it is delivered in order if the path comes back
/// (reading stops meanwhile, so the sender's buffers fill up as they would).
/// `None` if the connection closed meanwhile.
fn out_of_blackhole(conn: &Conn, shared: &Shared) -> Option<ProxyMode> {
    loop {
        if conn.is_closed(shared) {
            return None;
        }
        let mode = shared.mode();
        if mode != ProxyMode::Blackhole {
            return Some(mode);
        }
        thread::sleep(TICK);
    }
}

/// Keeps a connection whose upstream side is gone open while the proxy is
/// a blackhole, and closes it as soon as the mode forwards again.
fn upstream_gone(conn: &Conn, shared: &Shared) {
    while !conn.is_closed(shared) {
        if shared.mode().forwards() {
            conn.close(shared);
            return;
        }
        thread::sleep(TICK);
    }
}

/// Sleeps for `delay` in ticks; `false` if the connection closed meanwhile.
fn hold(conn: &Conn, shared: &Shared, delay: Duration) -> bool {
    let deadline = Instant::now() + delay;
    loop {
        if conn.is_closed(shared) {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        thread::sleep(TICK.min(deadline - now));
    }
}

/// Writes all of `data`, retrying after write timeouts (a slow reader)
/// until the connection is closed.
fn write_all(mut to: &TcpStream, mut data: &[u8], conn: &Conn, shared: &Shared) -> io::Result<()> {
    while !data.is_empty() {
        if conn.is_closed(shared) {
            return Err(io::ErrorKind::NotConnected.into());
        }
        match to.write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(err) if is_timeout(&err) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

#[cfg(test)]
mod tests {
    use std::io::BufReader;
    use std::sync::mpsc;

    use super::*;
    use crate::resp::{self, Reply};
    use crate::server::RedisServer;

    /// Generous: these waits only guard against a hang.
    const PATIENCE: Duration = Duration::from_secs(5);
    /// How long a blackholed request is waited on before calling it lost.
    const SILENCE: Duration = Duration::from_millis(300);

    fn pong() -> Reply {
        Reply::Status("PONG".into())
    }

    /// A raw RESP connection, to see exactly what the proxy does to it.
    struct Client {
        writer: TcpStream,
        reader: BufReader<TcpStream>,
    }

    impl Client {
        fn connect(proxy: &FaultProxy) -> Client {
            let stream = TcpStream::connect(proxy.addr()).expect("connect to the proxy");
            stream.set_write_timeout(Some(PATIENCE)).unwrap();
            Client {
                writer: stream.try_clone().unwrap(),
                reader: BufReader::new(stream),
            }
        }

        fn send(&mut self, args: &[&str]) -> io::Result<()> {
            let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
            let mut request = Vec::new();
            resp::encode_command(&args, &mut request);
            self.writer.write_all(&request)
        }

        fn read(&mut self, timeout: Duration) -> io::Result<Reply> {
            self.writer.set_read_timeout(Some(timeout)).unwrap();
            resp::read_reply(&mut self.reader)
        }

        fn cmd(&mut self, args: &[&str], timeout: Duration) -> io::Result<Reply> {
            self.send(args)?;
            self.read(timeout)
        }
    }

    fn assert_times_out(result: io::Result<Reply>) {
        match result {
            Err(err) if is_timeout(&err) => {}
            other => panic!("expected a read timeout (silence), got {other:?}"),
        }
    }

    fn assert_closed(result: io::Result<Reply>) {
        match result {
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::UnexpectedEof
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::BrokenPipe
                ) => {}
            other => panic!("expected end of file or a reset, got {other:?}"),
        }
    }

    /// A new connection's PING, or the first error on the way.
    fn ping_new(proxy: &FaultProxy, timeout: Duration) -> io::Result<Reply> {
        Client::connect(proxy).cmd(&["PING"], timeout)
    }

    #[track_caller]
    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done() {
            assert!(
                Instant::now() < deadline,
                "still not {what} after {PATIENCE:?}"
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn pass_forwards_commands_and_replies() {
        let server = RedisServer::start();
        let proxy = FaultProxy::start(server.addr());
        assert_eq!(proxy.mode(), ProxyMode::Pass);
        assert_eq!(proxy.upstream(), server.addr());
        assert_eq!(proxy.url(), format!("redis://127.0.0.1:{}/0", proxy.port()));
        assert_eq!(
            proxy.addr(),
            SocketAddr::from(([127, 0, 0, 1], proxy.port()))
        );

        let mut client = Client::connect(&proxy);
        assert_eq!(client.cmd(&["PING"], PATIENCE).unwrap(), pong());
        assert_eq!(
            client
                .cmd(&["SET", "k", "through the proxy"], PATIENCE)
                .unwrap(),
            Reply::Status("OK".into())
        );
        // The write reached the real server.
        assert_eq!(
            server.cmd(&["GET", "k"]).as_string().as_deref(),
            Some("through the proxy")
        );
        // A reply larger than one chunk arrives whole.
        let big = "x".repeat(3 * CHUNK_SIZE + 7);
        client.cmd(&["SET", "big", &big], PATIENCE).unwrap();
        assert_eq!(
            client.cmd(&["GET", "big"], PATIENCE).unwrap(),
            Reply::Bulk(big.into_bytes())
        );
    }

    #[test]
    fn blackhole_silences_open_and_new_connections_and_forwards_nothing() {
        let server = RedisServer::start();
        let proxy = FaultProxy::start(server.addr());
        let mut open = Client::connect(&proxy);
        assert_eq!(open.cmd(&["PING"], PATIENCE).unwrap(), pong());

        proxy.blackhole();
        assert_eq!(proxy.mode(), ProxyMode::Blackhole);
        assert_times_out(open.cmd(&["SET", "lost", "1"], SILENCE));
        let mut new = Client::connect(&proxy);
        assert_times_out(new.cmd(&["PING"], SILENCE));
        // The SET is held on its way, not delivered.
        assert!(server.cmd(&["GET", "lost"]).is_nil());
        // Silence is not a closed connection: both are still open.
        wait_until("2 connections open", || proxy.open_connections() == 2);
        assert_eq!(proxy.accepted_connections(), 2);

        // Back to pass: what was held arrives in order, as TCP would
        // retransmit it. The SET reaches the server, and its late reply is
        // the first one the open connection reads.
        proxy.pass();
        wait_until("the held SET delivered", || {
            server.cmd(&["GET", "lost"]).as_string().as_deref() == Some("1")
        });
        assert_eq!(
            open.cmd(&["PING"], PATIENCE).unwrap(),
            Reply::Status("OK".into())
        );
        assert_eq!(new.cmd(&["PING"], PATIENCE).unwrap(), pong());
        assert_eq!(ping_new(&proxy, PATIENCE).unwrap(), pong());
    }

    #[test]
    fn drop_all_closes_open_connections_and_new_ones_until_pass() {
        let server = RedisServer::start();
        let proxy = FaultProxy::start(server.addr());
        let mut open = Client::connect(&proxy);
        assert_eq!(open.cmd(&["PING"], PATIENCE).unwrap(), pong());
        assert_eq!(proxy.open_connections(), 1);

        proxy.drop_all();
        assert_eq!(proxy.mode(), ProxyMode::Refuse);
        assert_eq!(proxy.open_connections(), 0);
        assert_closed(open.read(PATIENCE));

        // A new connection is accepted and closed at once.
        let accepted = proxy.accepted_connections();
        let mut refused = Client::connect(&proxy);
        // The write may already fail if the close arrived first.
        let result = refused
            .send(&["PING"])
            .and_then(|()| refused.read(PATIENCE));
        assert_closed(result);
        assert_eq!(proxy.accepted_connections(), accepted + 1);
        assert_eq!(proxy.open_connections(), 0);

        proxy.pass();
        assert_eq!(ping_new(&proxy, PATIENCE).unwrap(), pong());
    }

    #[test]
    fn close_connections_keeps_serving_new_ones() {
        let server = RedisServer::start();
        let proxy = FaultProxy::start(server.addr());
        let mut open = Client::connect(&proxy);
        assert_eq!(open.cmd(&["PING"], PATIENCE).unwrap(), pong());

        proxy.close_connections();
        assert_eq!(proxy.mode(), ProxyMode::Pass);
        assert_closed(open.read(PATIENCE));
        assert_eq!(ping_new(&proxy, PATIENCE).unwrap(), pong());
    }

    #[test]
    fn delay_holds_each_direction_of_open_connections() {
        let server = RedisServer::start();
        let proxy = FaultProxy::start(server.addr());
        let mut client = Client::connect(&proxy);
        assert_eq!(client.cmd(&["PING"], PATIENCE).unwrap(), pong());

        let delay = Duration::from_millis(200);
        proxy.delay(delay);
        assert_eq!(proxy.mode(), ProxyMode::Delay(delay));
        let started = Instant::now();
        assert_eq!(client.cmd(&["PING"], PATIENCE).unwrap(), pong());
        let elapsed = started.elapsed();
        // The request and the reply are each held.
        assert!(elapsed >= 2 * delay, "round trip took {elapsed:?}");

        let started = Instant::now();
        assert_eq!(ping_new(&proxy, PATIENCE).unwrap(), pong());
        assert!(started.elapsed() >= 2 * delay);

        proxy.pass();
        assert_eq!(client.cmd(&["PING"], PATIENCE).unwrap(), pong());
    }

    #[test]
    fn counts_accepted_and_open_connections() {
        let server = RedisServer::start();
        let proxy = FaultProxy::start(server.addr());
        assert_eq!(proxy.accepted_connections(), 0);
        assert_eq!(proxy.open_connections(), 0);

        let mut a = Client::connect(&proxy);
        let mut b = Client::connect(&proxy);
        assert_eq!(a.cmd(&["PING"], PATIENCE).unwrap(), pong());
        assert_eq!(b.cmd(&["PING"], PATIENCE).unwrap(), pong());
        assert_eq!(proxy.accepted_connections(), 2);
        assert_eq!(proxy.open_connections(), 2);

        drop(a);
        wait_until("1 connection open", || proxy.open_connections() == 1);
        assert_eq!(b.cmd(&["PING"], PATIENCE).unwrap(), pong());
        // The server closing its side closes the client's too.
        b.send(&["QUIT"]).unwrap();
        assert_eq!(b.read(PATIENCE).unwrap(), Reply::Status("OK".into()));
        assert_closed(b.read(PATIENCE));
        wait_until("0 connections open", || proxy.open_connections() == 0);
        assert_eq!(proxy.accepted_connections(), 2);
    }

    #[test]
    fn server_going_away_is_hidden_by_a_blackhole_until_pass() {
        let mut server = RedisServer::start();
        let proxy = FaultProxy::start(server.addr());
        let mut client = Client::connect(&proxy);
        assert_eq!(client.cmd(&["PING"], PATIENCE).unwrap(), pong());

        proxy.blackhole();
        server.kill();
        assert_times_out(client.cmd(&["PING"], SILENCE));
        // A new connection, whose upstream connect fails, is silent too.
        assert_times_out(ping_new(&proxy, SILENCE));

        proxy.pass();
        assert_closed(client.read(PATIENCE));
        // With nothing upstream, new connections are closed at once.
        assert_closed(ping_new(&proxy, PATIENCE));
        wait_until("0 connections open", || proxy.open_connections() == 0);
    }

    #[test]
    fn drop_closes_listener_and_connections_without_waiting_for_held_chunks() {
        let server = RedisServer::start();
        let proxy = FaultProxy::start(server.addr());
        let addr = proxy.addr();
        let mut client = Client::connect(&proxy);
        assert_eq!(client.cmd(&["PING"], PATIENCE).unwrap(), pong());
        proxy.delay(Duration::from_secs(3600));
        client.send(&["PING"]).unwrap();
        wait_until("an open connection", || proxy.open_connections() == 1);

        let (done, dropped) = mpsc::channel();
        thread::spawn(move || {
            drop(proxy);
            let _ = done.send(());
        });
        dropped
            .recv_timeout(PATIENCE)
            .expect("dropping the proxy hung on a held chunk");
        assert_closed(client.read(PATIENCE));
        let err = TcpStream::connect(addr).expect_err("the proxy's port still accepts");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
    }

    #[test]
    fn debug_shows_mode_and_counters() {
        let server = RedisServer::start();
        let proxy = FaultProxy::start(server.addr());
        proxy.blackhole();
        let shown = format!("{proxy:?}");
        assert!(shown.contains("mode: Blackhole"), "{shown}");
        assert!(shown.contains("open_connections: 0"), "{shown}");
        assert!(shown.contains(&server.addr().to_string()), "{shown}");
    }
}
