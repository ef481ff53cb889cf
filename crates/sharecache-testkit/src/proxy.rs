//! A TCP fault proxy: put it between the code under test and a [`RedisServer`](crate::RedisServer)
//! and break the network at run time.
//!
//! ```no_run
//! use std::time::Duration;
//! let server = sharecache_testkit::RedisServer::start();
//! let proxy = sharecache_testkit::FaultProxy::to(&server);
//! let url = proxy.url();               // redis://127.0.0.1:<proxy port>
//! proxy.latency(Duration::from_millis(50)); // every chunk, each direction
//! proxy.stall();                       // hold every byte, keep connections open
//! proxy.drop_connections();            // close them all and every new one
//! proxy.reset_mid_reply(100);          // next reply: 100 bytes, then a TCP RST
//! proxy.slow_reads(1, Duration::from_millis(1)); // trickle replies
//! proxy.heal();                        // back to a plain pipe
//! ```
//!
//! Std threads only: one accept thread, two pump threads per connection. Every blocking
//! call has a short timeout (`TICK`) so each thread sees a fault change, a dropped
//! connection or the proxy's shutdown within milliseconds; `Drop` closes every socket and
//! joins every thread.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long any blocking read, write or wait lasts before a thread looks at its flags.
const TICK: Duration = Duration::from_millis(5);

/// The faults in force, read by the pumps for every chunk.
#[derive(Debug, Clone, Default)]
struct Faults {
    /// Added before each chunk is forwarded client -> server.
    latency_up: Duration,
    /// Added before each chunk is forwarded server -> client.
    latency_down: Duration,
    /// Hold every byte (both directions) until healed.
    stalled: bool,
    /// Close every connection, and each new one at once.
    dropped: bool,
    /// Armed: the next connection the server sends bytes to gets this many of them,
    /// then an RST. One-shot.
    reset_after: Option<usize>,
    /// Server -> client: `n` bytes, then a pause of `every`.
    slow: Option<(usize, Duration)>,
}

#[derive(Debug)]
struct Conn {
    client: TcpStream,
    server: TcpStream,
    /// Set when either side ends or the proxy kills the connection.
    dead: AtomicBool,
}

impl Conn {
    fn kill(&self) {
        self.dead.store(true, Ordering::SeqCst);
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.server.shutdown(Shutdown::Both);
    }

    /// Linger 0, so the last close of the client socket sends an RST instead of a FIN;
    /// then wake the other pump (SHUT_RD sends nothing) so it lets go of the socket.
    fn reset(&self) {
        self.dead.store(true, Ordering::SeqCst);
        let _ = socket2::SockRef::from(&self.client).set_linger(Some(Duration::ZERO));
        let _ = self.client.shutdown(Shutdown::Read);
        let _ = self.server.shutdown(Shutdown::Both);
    }
}

#[derive(Debug, Default)]
struct Shared {
    faults: Mutex<Faults>,
    shutdown: AtomicBool,
    conns: Mutex<Vec<Weak<Conn>>>,
    pumps: Mutex<Vec<JoinHandle<()>>>,
    accepted: AtomicU64,
    resets: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn faults(&self) -> Faults {
        lock(&self.faults).clone()
    }

    fn live(&self) -> Vec<Arc<Conn>> {
        let mut conns = lock(&self.conns);
        conns.retain(|w| w.strong_count() > 0);
        conns.iter().filter_map(Weak::upgrade).collect()
    }

    fn kill_all(&self) {
        for c in self.live() {
            c.kill();
        }
    }
}

/// Which way bytes flow through a pump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Up,
    Down,
}

/// A loopback TCP proxy to one target address, with faults switched at run time.
///
/// Faults apply to connections already open and to new ones. Latency, stall and slow
/// reads delay bytes, never lose them: on [`heal`](Self::heal) what was held is forwarded,
/// as a network that comes back delivers what TCP kept retransmitting.
#[derive(Debug)]
pub struct FaultProxy {
    port: u16,
    target: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// A proxy on a free loopback port to `127.0.0.1:target_port`.
    pub fn start(target_port: u16) -> Self {
        Self::start_to(SocketAddr::from(([127, 0, 0, 1], target_port)))
    }

    /// A proxy to `server`.
    pub fn to(server: &crate::RedisServer) -> Self {
        Self::start(server.port())
    }

    /// A proxy on a free loopback port to `target`.
    pub fn start_to(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy's port");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name(format!("fault-proxy-{port}"))
            .spawn(move || accept_loop(listener, target, s))
            .expect("spawn the proxy's accept thread");
        Self {
            port,
            target,
            shared,
            accept: Some(accept),
        }
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where it forwards to.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// `redis://127.0.0.1:<proxy port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Connections accepted so far (dropped ones included).
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.shared
            .live()
            .iter()
            .filter(|c| !c.dead.load(Ordering::SeqCst))
            .count()
    }

    /// How many connections a [`reset_mid_reply`](Self::reset_mid_reply) has reset.
    pub fn resets(&self) -> u64 {
        self.shared.resets.load(Ordering::SeqCst)
    }

    fn set(&self, f: impl FnOnce(&mut Faults)) {
        f(&mut lock(&self.shared.faults));
    }

    /// Adds `d` before every chunk in each direction (a round trip gains `2 * d`).
    pub fn latency(&self, d: Duration) {
        self.latency_each(d, d);
    }

    /// Adds `up` before every chunk to the server and `down` before every chunk back.
    pub fn latency_each(&self, up: Duration, down: Duration) {
        self.set(|f| {
            f.latency_up = up;
            f.latency_down = down;
        });
    }

    /// Holds every byte in both directions; connections stay open (and new ones are
    /// accepted and held too) until [`heal`](Self::heal).
    pub fn stall(&self) {
        self.set(|f| f.stalled = true);
    }

    /// Closes every open connection now (FIN to both sides) and every new one as soon as
    /// it is accepted, until [`heal`](Self::heal).
    pub fn drop_connections(&self) {
        self.set(|f| f.dropped = true);
        self.shared.kill_all();
    }

    /// The next connection the server sends bytes to gets `bytes` of them, then an RST
    /// (SO_LINGER 0); the server side is closed too. One-shot.
    pub fn reset_mid_reply(&self, bytes: usize) {
        self.set(|f| f.reset_after = Some(bytes));
    }

    /// Forwards server -> client bytes `bytes` at a time with a pause of `every` after
    /// each, until [`heal`](Self::heal) (then the rest goes at once).
    pub fn slow_reads(&self, bytes: usize, every: Duration) {
        self.set(|f| f.slow = Some((bytes.max(1), every)));
    }

    /// Clears every fault (an armed reset included); held bytes flow again.
    pub fn heal(&self) {
        self.set(|f| *f = Faults::default());
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        self.shared.kill_all();
        if let Some(a) = self.accept.take() {
            let _ = a.join();
        }
        let pumps = std::mem::take(&mut *lock(&self.shared.pumps));
        for p in pumps {
            let _ = p.join();
        }
    }
}

fn accept_loop(listener: TcpListener, target: SocketAddr, shared: Arc<Shared>) {
    while !shared.shutdown.load(Ordering::SeqCst) {
        let client = match listener.accept() {
            Ok((c, _)) => c,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(TICK);
                continue;
            }
            Err(_) => {
                std::thread::sleep(TICK);
                continue;
            }
        };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        if shared.faults().dropped {
            drop(client);
            continue;
        }
        let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(1)) else {
            drop(client); // the target is down: the client sees its connection closed
            continue;
        };
        let setup = |s: &TcpStream| -> std::io::Result<()> {
            s.set_nonblocking(false)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(TICK))?;
            s.set_write_timeout(Some(TICK))
        };
        if setup(&client).is_err() || setup(&server).is_err() {
            continue;
        }
        let conn = Arc::new(Conn {
            client,
            server,
            dead: AtomicBool::new(false),
        });
        lock(&shared.conns).push(Arc::downgrade(&conn));
        let mut pumps = lock(&shared.pumps);
        pumps.retain(|p| !p.is_finished());
        for dir in [Dir::Up, Dir::Down] {
            let (c, s) = (conn.clone(), shared.clone());
            if let Ok(h) = std::thread::Builder::new()
                .name("fault-proxy-pump".into())
                .spawn(move || pump(&c, &s, dir))
            {
                pumps.push(h);
            }
        }
        drop(pumps);
        // A drop switched on while this connection was being set up.
        if shared.faults().dropped {
            conn.kill();
        }
    }
}

/// Whether the pump must stop: the connection is dead or the proxy shuts down.
fn stop(conn: &Conn, shared: &Shared) -> bool {
    conn.dead.load(Ordering::SeqCst) || shared.shutdown.load(Ordering::SeqCst)
}

/// Sleeps `d` in ticks; false if the pump must stop meanwhile.
fn wait(d: Duration, conn: &Conn, shared: &Shared) -> bool {
    let until = Instant::now() + d;
    loop {
        if stop(conn, shared) {
            return false;
        }
        let now = Instant::now();
        if now >= until {
            return true;
        }
        std::thread::sleep((until - now).min(TICK));
    }
}

/// Writes all of `buf`, in ticks; false if the connection ended.
fn write_all(dst: &TcpStream, mut buf: &[u8], conn: &Conn, shared: &Shared) -> bool {
    while !buf.is_empty() {
        if stop(conn, shared) {
            return false;
        }
        match (&*dst).write(buf) {
            Ok(0) => return false,
            Ok(n) => buf = &buf[n..],
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

fn pump(conn: &Conn, shared: &Shared, dir: Dir) {
    let (src, dst) = match dir {
        Dir::Up => (&conn.client, &conn.server),
        Dir::Down => (&conn.server, &conn.client),
    };
    let mut buf = vec![0u8; 64 * 1024];
    // Bytes this connection may still forward before its RST, once it claimed the reset.
    let mut reset_budget: Option<usize> = None;
    loop {
        if stop(conn, shared) {
            break;
        }
        let n = match (&*src).read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let mut chunk = &buf[..n];
        // Stall: hold the chunk until healed.
        while shared.faults().stalled {
            if !wait(TICK, conn, shared) {
                return finish(conn);
            }
        }
        let faults = shared.faults();
        let delay = match dir {
            Dir::Up => faults.latency_up,
            Dir::Down => faults.latency_down,
        };
        if !delay.is_zero() && !wait(delay, conn, shared) {
            break;
        }
        if dir == Dir::Down {
            if reset_budget.is_none() {
                let mut f = lock(&shared.faults);
                reset_budget = f.reset_after.take();
            }
            if let Some(left) = reset_budget {
                let now = left.min(chunk.len());
                if !write_all(dst, &chunk[..now], conn, shared) {
                    break;
                }
                if now == left {
                    shared.resets.fetch_add(1, Ordering::SeqCst);
                    conn.reset();
                    return;
                }
                reset_budget = Some(left - now);
                continue;
            }
        }
        let ok = loop {
            let slow = match dir {
                Dir::Down => shared.faults().slow,
                Dir::Up => None,
            };
            match slow {
                Some((bytes, every)) if !chunk.is_empty() => {
                    let now = bytes.min(chunk.len());
                    if !write_all(dst, &chunk[..now], conn, shared) {
                        break false;
                    }
                    chunk = &chunk[now..];
                    if !wait(every, conn, shared) {
                        break false;
                    }
                }
                _ => break write_all(dst, chunk, conn, shared),
            }
        };
        if !ok {
            break;
        }
    }
    finish(conn);
}

/// One side ended: end the whole connection (the other pump stops within a tick).
fn finish(conn: &Conn) {
    if !conn.dead.load(Ordering::SeqCst) {
        conn.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RedisServer, RespReply};
    use std::io::{BufRead, BufReader};

    /// A raw RESP exchange through the proxy: `PING` and the reply's first line.
    fn ping(port: u16, timeout: Duration) -> std::io::Result<String> {
        let s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(timeout))?;
        (&s).write_all(b"*1\r\n$4\r\nPING\r\n")?;
        let mut line = String::new();
        let n = BufReader::new(&s).read_line(&mut line)?;
        if n == 0 {
            return Err(std::io::Error::new(ErrorKind::UnexpectedEof, "closed"));
        }
        Ok(line)
    }

    #[test]
    fn forwards_and_applies_each_fault() {
        let server = RedisServer::start();
        let proxy = FaultProxy::to(&server);
        assert_eq!(proxy.url(), format!("redis://127.0.0.1:{}", proxy.port()));
        assert_eq!(ping(proxy.port(), TICK * 200).unwrap(), "+PONG\r\n");
        assert_eq!(
            crate::command(proxy.port(), &["SET", "k", "v"]).unwrap(),
            RespReply::Value("OK".into())
        );
        assert_eq!(server.cmd(&["GET", "k"]).text(), Some("v"));

        // Latency: each direction, per chunk.
        proxy.latency(Duration::from_millis(100));
        let t = Instant::now();
        assert_eq!(
            ping(proxy.port(), Duration::from_secs(2)).unwrap(),
            "+PONG\r\n"
        );
        assert!(
            t.elapsed() >= Duration::from_millis(200),
            "{:?}",
            t.elapsed()
        );
        proxy.heal();

        // Stall: nothing comes back, the connection stays open; heal delivers it.
        let s = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        proxy.stall();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        (&s).write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
        let mut b = [0u8; 7];
        let e = (&s).read(&mut b).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "{e}"
        );
        proxy.heal();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        (&s).read_exact(&mut b).unwrap();
        assert_eq!(&b, b"+PONG\r\n");

        // Drop: open connections are closed, new ones too, until healed.
        proxy.drop_connections();
        let mut one = [0u8; 1];
        assert_eq!((&s).read(&mut one).unwrap_or(0), 0, "closed");
        assert!(ping(proxy.port(), Duration::from_secs(2)).is_err());
        proxy.heal();
        assert_eq!(
            ping(proxy.port(), Duration::from_secs(2)).unwrap(),
            "+PONG\r\n"
        );

        // Reset mid-reply: 10 bytes of a 1000-byte value, then ECONNRESET.
        server.cmd(&["SET", "big", &"x".repeat(1000)]);
        let s = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        proxy.reset_mid_reply(10);
        (&s).write_all(b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n").unwrap();
        let mut got = Vec::new();
        let e = loop {
            match (&s).read(&mut b) {
                Ok(0) => panic!("a FIN after {} bytes, not an RST", got.len()),
                Ok(n) => got.extend_from_slice(&b[..n]),
                Err(e) => break e,
            }
        };
        assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");
        // The RST may overtake bytes not yet read: at most the 10, and only those.
        assert!(b"$1000\r\nxxx".starts_with(&got), "{got:?}");
        assert_eq!(proxy.resets(), 1);
        assert_eq!(
            ping(proxy.port(), Duration::from_secs(2)).unwrap(),
            "+PONG\r\n"
        );

        // Slow reads: 1 byte per 20 ms.
        proxy.slow_reads(1, Duration::from_millis(20));
        let t = Instant::now();
        assert_eq!(
            ping(proxy.port(), Duration::from_secs(2)).unwrap(),
            "+PONG\r\n"
        );
        assert!(
            t.elapsed() >= Duration::from_millis(100),
            "{:?}",
            t.elapsed()
        );
        proxy.heal();
    }

    #[test]
    fn drop_closes_everything() {
        let server = RedisServer::start();
        let proxy = FaultProxy::to(&server);
        let port = proxy.port();
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        proxy.stall();
        (&s).write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(proxy.open_connections(), 1);
        let t = Instant::now();
        drop(proxy);
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let mut b = [0u8; 8];
        assert_eq!(
            (&s).read(&mut b).unwrap_or(0),
            0,
            "the held connection is closed"
        );
        assert!(
            TcpStream::connect(("127.0.0.1", port)).is_err(),
            "no listener left behind"
        );
    }
}
