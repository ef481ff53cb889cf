//! A real `sharecache serve` process on a real redis-server the testkit starts, with an
//! admin, a service (`user`, writing `user` and `chat`) and a viewer (`ops`); killed by
//! its pid when dropped.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sharecache_server::auth::{hash_token, new_token};
use sharecache_testkit::RedisServer;

/// The `sharecache` binary of this build.
pub const BIN: &str = env!("CARGO_BIN_EXE_sharecache");

pub struct Served {
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    pub admin: String,
    pub user: String,
    pub viewer: String,
    pub dir: tempfile::TempDir,
    pub redis: RedisServer,
    /// Its config file.
    pub config: PathBuf,
    /// The lines it writes to stderr after it started listening.
    pub stderr: mpsc::Receiver<String>,
}

impl Served {
    /// Waits (at most `timeout`) for a line of its stderr containing `needle`.
    pub fn wait_for_line(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the service (config written to a temp dir, which is also its state dir) and
/// waits, at most 20 s, for it to listen.
pub fn serve() -> Served {
    serve_with("")
}

/// Like [`serve`], with `server` (TOML lines) added to the `[server]` section.
pub fn serve_with(server: &str) -> Served {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (admin, user, viewer) = (new_token(), new_token(), new_token());
    let h = |t: &str| hex::encode(hash_token(t));
    let config = dir.path().join("sharecache.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\n{server}\nstate_dir = \"{}\"\n[backend]\nurl = \"{}\"\n[admin]\ntoken_sha256 = \"{}\"\n\
             [[services]]\nname = \"user\"\ntoken_sha256 = \"{}\"\nwrite = [\"user\", \"chat\"]\n\
             [[viewers]]\nname = \"ops\"\ntoken_sha256 = \"{}\"\n",
            dir.path().display(),
            redis.url(),
            h(&admin),
            h(&user),
            h(&viewer)
        ),
    )
    .unwrap();
    let port = sharecache_testkit::free_port();
    let mut child = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .current_dir(dir.path())
        .env_remove("REDIS_URL")
        .env_remove("CACHE_TYPE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Lines of its stderr through a channel, so the wait for "listening on" is bounded
    // even if the process hangs silently; the thread drains the rest until it exits.
    let err = BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in err.lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("listening on") => break,
            Ok(line) => seen.push(line),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "serve did not start ({e:?}); its stderr:\n{}",
                    seen.join("\n")
                );
            }
        }
    }
    Served {
        child,
        url: format!("http://127.0.0.1:{port}"),
        admin,
        user,
        viewer,
        dir,
        redis,
        config,
        stderr: rx,
    }
}
