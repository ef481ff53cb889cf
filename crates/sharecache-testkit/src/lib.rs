//! Real `redis-server` processes for tests, started on free ports and killed on drop.
//!
//! ```no_run
//! let server = sharecache_testkit::RedisServer::start();
//! let url = server.url();          // redis://127.0.0.1:<free port>
//! server.pause();                  // SIGSTOP: the server stops answering
//! server.resume();                 // SIGCONT
//! server.kill();                   // SIGKILL
//! server.restart();                // same port, same data directory
//! ```
//!
//! Each server gets its own temporary directory (removed on drop). Nothing here talks to
//! a server through sharecache: readiness and assertions use a minimal RESP client over
//! `std::net`, so the testkit never depends on the code it tests.
//!
//! Two multi-process topologies build on [`RedisServer`]:
//!
//! * [`RedisCluster`]: a 6-node Redis Cluster (3 masters, 3 replicas), see [`cluster`].
//! * [`RedisSentinels`]: a master, a replica and 3 sentinels, see [`sentinel`].
//!
//! [`FaultProxy`] sits between a client and a server and breaks the TCP stream on demand
//! (latency, stall, drop, reset mid-reply, slow reads), see [`proxy`].

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub mod cluster;
pub mod proxy;
pub mod sentinel;

pub use cluster::{ClusterConfig, RedisCluster};
pub use proxy::FaultProxy;
pub use sentinel::{RedisSentinels, SentinelConfig};

const INSTALL_HINT: &str = "redis-server was not found on PATH. Install it with:\n    \
    sudo apt-get update && sudo apt-get install -y redis-server\n\
    (or run scripts/test, which installs it when missing)";

/// Ports handed out in this process, so two servers started at once never race for one.
static TAKEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());

/// A port that was free a moment ago and that this process has not handed out before.
pub fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind an ephemeral port on 127.0.0.1")
            .port();
        let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
        if !taken.contains(&port) {
            taken.push(port);
            return port;
        }
    }
}

/// Records (or forgets) a started process in `$SHARECACHE_TESTKIT_PIDS`, a directory that
/// `scripts/test` sets and sweeps after the run: a test process that is killed outright
/// never runs `Drop`, and its servers must not outlive the run.
fn record_pid(pid: u32, started: bool) {
    let Some(dir) = std::env::var_os("SHARECACHE_TESTKIT_PIDS") else {
        return;
    };
    let path = Path::new(&dir).join(pid.to_string());
    if started {
        let _ = std::fs::write(path, b"redis-server");
    } else {
        let _ = std::fs::remove_file(path);
    }
}

/// Options for a server.
#[derive(Debug, Clone, Default)]
pub struct RedisConfig {
    /// Keep data across [`RedisServer::restart`] (AOF with `appendfsync always`).
    pub persistent: bool,
    /// Require this password (`--requirepass`); the testkit's own commands use it.
    pub password: Option<String>,
    /// Extra `redis-server` arguments, e.g. `["--maxmemory", "10mb"]`.
    pub extra_args: Vec<String>,
}

impl RedisConfig {
    /// A plain server with these extra arguments.
    pub fn args(args: &[&str]) -> Self {
        Self {
            extra_args: args.iter().map(|a| (*a).to_owned()).collect(),
            ..Self::default()
        }
    }

    /// A server that holds `mb` megabytes and then refuses writes with `OOM`
    /// (`maxmemory-policy noeviction`).
    pub fn full_at(mb: u32) -> Self {
        Self::args(&[
            "--maxmemory",
            &format!("{mb}mb"),
            "--maxmemory-policy",
            "noeviction",
        ])
    }
}

/// What a [`RedisServer`] process runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A plain server (also a sentinel deployment's data node).
    Standalone,
    /// `--cluster-enabled yes` with `<dir>/nodes.conf` as its cluster config file.
    ClusterNode,
    /// `redis-server <dir>/sentinel.conf --sentinel`.
    Sentinel,
}

/// A running `redis-server`, killed (and its directory removed) on drop.
///
/// The same type runs Redis Cluster nodes ([`RedisCluster::nodes`]) and sentinels
/// ([`RedisSentinels::sentinels`]), so `pause`/`resume`/`kill`/`restart`/`cmd` work on
/// every process of a topology.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    config: RedisConfig,
    kind: Kind,
    /// Started with `<dir>/redis.conf` (or `sentinel.conf`) as its config file, which
    /// `CONFIG REWRITE` (and a sentinel's own state changes) update.
    has_conf: bool,
    child: Mutex<Option<Child>>,
}

impl RedisServer {
    /// Starts a non-persistent server on a free port and waits until it answers PING.
    ///
    /// # Panics
    /// If `redis-server` is missing (with the command that installs it) or does not start.
    pub fn start() -> Self {
        Self::start_with(RedisConfig::default())
    }

    /// Starts a server with options.
    pub fn start_with(config: RedisConfig) -> Self {
        Self::launch(config, Kind::Standalone, None)
    }

    /// Starts a process of any kind; `conf` becomes its config file (`<dir>/redis.conf`,
    /// or `<dir>/sentinel.conf` for a sentinel, which requires one).
    fn launch(config: RedisConfig, kind: Kind, conf: Option<&str>) -> Self {
        let mut builder = tempfile::Builder::new();
        builder.prefix(match kind {
            Kind::Standalone => "sharecache-redis-",
            Kind::ClusterNode => "sharecache-cluster-",
            Kind::Sentinel => "sharecache-sentinel-",
        });
        // Sentinels rewrite their config (with fsync) on every state change: on a slow
        // disk that stalls their event loop into TILT mode. tmpfs when there is one.
        let shm = std::path::Path::new("/dev/shm");
        let dir = match kind {
            Kind::Sentinel if shm.is_dir() => {
                builder.tempdir_in(shm).or_else(|_| builder.tempdir())
            }
            _ => builder.tempdir(),
        }
        .expect("create temp dir");
        let server = Self {
            port: free_port(),
            dir,
            config,
            kind,
            has_conf: conf.is_some(),
            child: Mutex::new(None),
        };
        if let Some(body) = conf {
            std::fs::write(server.conf_path(), body).expect("write the server's config file");
        }
        server.spawn();
        server
    }

    fn conf_path(&self) -> PathBuf {
        self.dir.path().join(match self.kind {
            Kind::Sentinel => "sentinel.conf",
            Kind::Standalone | Kind::ClusterNode => "redis.conf",
        })
    }

    fn spawn(&self) {
        let mut cmd = Command::new("redis-server");
        if self.has_conf {
            cmd.arg(self.conf_path());
        }
        if self.kind == Kind::Sentinel {
            cmd.arg("--sentinel");
        }
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args([
                "--bind",
                "127.0.0.1",
                "--protected-mode",
                "no",
                "--daemonize",
                "no",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.log_path());
        if self.kind != Kind::Sentinel {
            cmd.args(["--save", ""]);
            if self.config.persistent {
                cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
            } else {
                cmd.args(["--appendonly", "no"]);
            }
        }
        if self.kind == Kind::ClusterNode {
            cmd.args(["--cluster-enabled", "yes", "--cluster-config-file"])
                .arg(self.dir.path().join("nodes.conf"));
        }
        if let Some(p) = &self.config.password {
            cmd.arg("--requirepass").arg(p);
        }
        cmd.args(&self.config.extra_args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{INSTALL_HINT}"),
            Err(e) => panic!("cannot start redis-server: {e}"),
        };
        record_pid(child.id(), true);
        *self.child.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
        if let Err(e) = wait_for_ping_auth(
            self.port,
            self.config.password.as_deref(),
            Duration::from_secs(10),
        ) {
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            panic!(
                "redis-server on port {} did not answer PING: {e}\nlog:\n{log}",
                self.port
            );
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// The last `lines` lines of the server's log, for failure messages.
    fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's data directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(Child::id)
    }

    fn signal(&self, sig: Signal) {
        if let Some(pid) = self.pid() {
            let _ = kill(Pid::from_raw(pid as i32), sig);
        }
    }

    /// SIGSTOP: the server keeps its sockets but stops answering.
    pub fn pause(&self) {
        self.signal(Signal::SIGSTOP);
    }

    /// SIGCONT after [`pause`](Self::pause).
    pub fn resume(&self) {
        self.signal(Signal::SIGCONT);
    }

    /// SIGKILL, and reap the process. The port is then closed.
    pub fn kill(&self) {
        let mut guard = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut child) = guard.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGCONT);
            let _ = child.kill();
            let _ = child.wait();
            record_pid(child.id(), false);
        }
    }

    /// Starts the server again on the same port and directory (after [`kill`](Self::kill),
    /// or kills it first).
    pub fn restart(&self) {
        self.kill();
        self.spawn();
    }

    /// Sends one command and returns the reply as text (see [`RespReply`]).
    pub fn cmd(&self, args: &[&str]) -> RespReply {
        command_auth(self.port, self.config.password.as_deref(), args)
            .unwrap_or_else(|e| panic!("redis command {args:?} on port {}: {e}", self.port))
    }

    /// [`cmd`](Self::cmd) for probes: an error instead of a panic, and `timeout` for the
    /// reply, so a paused (SIGSTOPped) process costs at most `timeout`.
    fn probe(&self, args: &[&str], timeout: Duration) -> std::io::Result<RespReply> {
        command_timeout(self.port, self.config.password.as_deref(), args, timeout)
    }

    /// `ROLE`'s first element (`master`, `slave`, `sentinel`); `None` when the process
    /// does not answer within one second (paused, killed).
    pub fn role(&self) -> Option<String> {
        match self.probe(&["ROLE"], PROBE) {
            Ok(RespReply::Array(r)) => match r.first() {
                Some(RespReply::Value(role)) => Some(role.clone()),
                _ => None,
            },
            _ => None,
        }
    }
}

/// How long a readiness or role probe waits for one reply.
const PROBE: Duration = Duration::from_secs(1);

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A RESP reply, simplified for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RespReply {
    /// `+OK`, `:1`, or a bulk string, as text.
    Value(String),
    /// A null bulk string or null array.
    Nil,
    /// An array of replies.
    Array(Vec<RespReply>),
    /// `-ERR ...`
    Error(String),
}

impl RespReply {
    /// The reply as text, `None` for nil; panics on arrays and errors.
    pub fn text(&self) -> Option<&str> {
        match self {
            RespReply::Value(s) => Some(s),
            RespReply::Nil => None,
            other => panic!("expected a scalar reply, got {other:?}"),
        }
    }
}

/// Sends one command to `127.0.0.1:port` on a fresh connection.
pub fn command(port: u16, args: &[&str]) -> std::io::Result<RespReply> {
    command_auth(port, None, args)
}

fn encode(args: &[&str]) -> Vec<u8> {
    let mut req = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        req.extend_from_slice(a.as_bytes());
        req.extend_from_slice(b"\r\n");
    }
    req
}

/// Sends one command on a fresh connection, after `AUTH password` when one is given.
pub fn command_auth(
    port: u16,
    password: Option<&str>,
    args: &[&str],
) -> std::io::Result<RespReply> {
    command_timeout(port, password, args, Duration::from_secs(5))
}

/// [`command_auth`] with `timeout` for connecting, writing and each read.
fn command_timeout(
    port: u16,
    password: Option<&str>,
    args: &[&str],
    timeout: Duration,
) -> std::io::Result<RespReply> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    if let Some(p) = password {
        w.write_all(&encode(&["AUTH", p]))?;
        if let RespReply::Error(e) = read_reply(&mut r)? {
            return Ok(RespReply::Error(e));
        }
    }
    w.write_all(&encode(args))?;
    read_reply(&mut r)
}

fn read_reply(r: &mut impl BufRead) -> std::io::Result<RespReply> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
    let mut line = String::new();
    r.read_line(&mut line)?;
    let line = line.trim_end_matches("\r\n");
    let (kind, rest) = line.split_at_checked(1).ok_or_else(|| bad("empty reply"))?;
    match kind {
        "+" | ":" => Ok(RespReply::Value(rest.to_owned())),
        "-" => Ok(RespReply::Error(rest.to_owned())),
        "$" => {
            let n: i64 = rest.parse().map_err(|_| bad("bad bulk length"))?;
            if n < 0 {
                return Ok(RespReply::Nil);
            }
            let mut buf = vec![0u8; n as usize + 2];
            std::io::Read::read_exact(r, &mut buf)?;
            buf.truncate(n as usize);
            Ok(RespReply::Value(String::from_utf8_lossy(&buf).into_owned()))
        }
        "*" => {
            let n: i64 = rest.parse().map_err(|_| bad("bad array length"))?;
            if n < 0 {
                return Ok(RespReply::Nil);
            }
            (0..n)
                .map(|_| read_reply(r))
                .collect::<std::io::Result<_>>()
                .map(RespReply::Array)
        }
        _ => Err(bad("unknown reply type")),
    }
}

/// Polls PING until the server answers PONG or `timeout` passes.
pub fn wait_for_ping(port: u16, timeout: Duration) -> Result<(), String> {
    wait_for_ping_auth(port, None, timeout)
}

/// [`wait_for_ping`] on a server that needs a password.
pub fn wait_for_ping_auth(
    port: u16,
    password: Option<&str>,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no attempt");
    while Instant::now() < deadline {
        match command_auth(port, password, &["PING"]) {
            Ok(RespReply::Value(v)) if v == "PONG" => return Ok(()),
            Ok(other) => last = format!("{other:?}"),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(last)
}

/// The value of `field` in an `INFO` reply (`field:value` lines).
fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(str::trim)
}

/// Percent-encodes all but RFC 3986 unreserved characters, for a URL's userinfo or query.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Polls `check` every 50 ms until it returns `Ok` or `timeout` passes; the error is the
/// last one `check` returned.
fn poll<T>(timeout: Duration, mut check: impl FnMut() -> Result<T, String>) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_pause_kill_restart() {
        let s = RedisServer::start_with(RedisConfig {
            persistent: true,
            ..Default::default()
        });
        assert_eq!(s.cmd(&["SET", "k", "v1"]), RespReply::Value("OK".into()));
        s.pause();
        let stalled = TcpStream::connect(("127.0.0.1", s.port())).unwrap();
        stalled
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        (&stalled).write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
        let mut buf = [0u8; 16];
        assert!(
            std::io::Read::read(&mut &stalled, &mut buf).is_err(),
            "a paused server must not answer"
        );
        s.resume();
        assert_eq!(s.cmd(&["GET", "k"]).text(), Some("v1"));
        s.kill();
        assert!(
            command(s.port(), &["PING"]).is_err(),
            "a killed server must refuse connections"
        );
        s.restart();
        assert_eq!(
            s.cmd(&["GET", "k"]).text(),
            Some("v1"),
            "persistent data survives a restart"
        );
        let pid = s.pid().unwrap();
        drop(s);
        assert!(
            kill(Pid::from_raw(pid as i32), None).is_err(),
            "drop must end the process"
        );
    }

    #[test]
    fn helpers() {
        let info = "# Replication\r\nrole:slave\r\nmaster_port:7000\r\nmaster_link_status:up\r\n";
        assert_eq!(info_field(info, "role"), Some("slave"));
        assert_eq!(info_field(info, "master_link_status"), Some("up"));
        assert_eq!(info_field(info, "master"), None);
        assert_eq!(percent_encode("a b@c:d/é~"), "a%20b%40c%3Ad%2F%C3%A9~");
    }

    #[test]
    fn ports_are_not_handed_out_twice() {
        let a: Vec<u16> = (0..50).map(|_| free_port()).collect();
        let mut b = a.clone();
        b.sort();
        b.dedup();
        assert_eq!(a.len(), b.len());
    }
}
