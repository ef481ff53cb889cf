//! The `sharecache` binary as an operator runs it: `serve` on the embedded default,
//! config errors, graceful shutdown, and Redis killed under HTTP load.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::{Backend, TestApp};

const BIN: &str = env!("CARGO_BIN_EXE_sharecache");

/// A `sharecache serve` child process, killed on drop if still running.
struct Served {
    child: Child,
    addr: String,
    token: Option<String>,
    /// What it wrote to stderr up to its "listening on" line.
    log: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(args: &[&str]) -> Served {
    serve_env(args, &[])
}

fn serve_env(args: &[&str], env: &[(&str, &str)]) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let port = sharecache_testkit::free_port();
    let mut child = Command::new(BIN)
        .arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .args(args)
        .current_dir(dir.path())
        .env_remove("REDIS_URL")
        .envs(env.iter().copied())
        .env_remove("CACHE_TYPE")
        .env_remove("SHARECACHE_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read stderr until the listening line; the generated admin token comes before it.
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut token = None;
    let mut log = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut line = String::new();
    while Instant::now() < deadline {
        line.clear();
        if err.read_line(&mut line).unwrap() == 0 {
            panic!("sharecache serve exited before listening");
        }
        if let Some(t) = line.split_whitespace().find(|w| w.starts_with("sc_")) {
            token = Some(t.to_owned());
        }
        log.push(line.trim_end().to_owned());
        if line.contains("listening on") {
            break;
        }
    }
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut sink = String::new();
        let _ = err.read_to_string(&mut sink);
    });
    Served {
        child,
        addr: format!("127.0.0.1:{port}"),
        token,
        log,
        _dir: dir,
    }
}

fn http(addr: &str, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn serve_runs_on_the_embedded_default_with_a_generated_admin_token() {
    let s = serve(&[]);
    let token = s
        .token
        .clone()
        .expect("a generated admin token is shown at first start");
    let health = http(
        &s.addr,
        "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let put = http(
        &s.addr,
        &format!(
            "PUT /v1/cache/demo/k HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n42"
        ),
    );
    assert!(put.starts_with("HTTP/1.1 204"), "{put}");
    let get = http(
        &s.addr,
        &format!(
            "GET /v1/cache/demo/k HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert!(
        get.starts_with("HTTP/1.1 200") && get.ends_with("42"),
        "{get}"
    );
    // Only the hash is on disk.
    let saved =
        std::fs::read_to_string(s._dir.path().join(".sharecache/admin_token.sha256")).unwrap();
    assert_eq!(saved.trim().len(), 64);
    assert!(!saved.contains(&token[3..]));
}

#[test]
fn sigterm_lets_in_flight_requests_finish() {
    let mut s = serve(&[]);
    let token = s.token.clone().unwrap();
    let mut conn = TcpStream::connect(&s.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let body = "\"slow upload\"";
    let head = format!(
        "PUT /v1/cache/demo/inflight HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(&body.as_bytes()[..4]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(s.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    conn.write_all(&body.as_bytes()[4..]).unwrap();
    let mut resp = String::new();
    let _ = conn.read_to_string(&mut resp);
    assert!(
        resp.starts_with("HTTP/1.1 204"),
        "the in-flight request must complete: {resp:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = s.child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "serve did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn config_errors_name_the_file_line_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sharecache.toml");
    std::fs::write(&path, "[server]\nlisten = \"127.0.0.1:0\"\n\n[[services]]\nname = \"auth\"\ntoken_sha256 = \"plaintext-token\"\nwrite = [\"auth\"]\n").unwrap();
    let out = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sharecache.toml:6:"), "{err}");
    assert!(err.contains("sharecache token new"), "{err}");
    assert!(
        !err.contains("plaintext-token"),
        "a config error must not echo a token: {err}"
    );
    let out = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(dir.path().join("missing.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}

/// An unreachable Redis at startup: a warning with the URL (password redacted) and the
/// fix; with `--require-backend` the service refuses to start.
#[test]
fn an_unreachable_redis_at_startup_is_named_and_can_refuse_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sharecache.toml");
    let port = sharecache_testkit::free_port();
    std::fs::write(
        &path,
        format!(
            "[backend]\nurl = \"redis://:hunter2@127.0.0.1:{port}/0\"\nconnect_timeout_ms = 300\n"
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args([
            "serve",
            "--require-backend",
            "--listen",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(&path)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("redis://:***@127.0.0.1:{port}/0")),
        "{err}"
    );
    assert!(
        err.contains("unreachable") && err.contains("[backend] url"),
        "{err}"
    );
    assert!(
        !err.contains("hunter2"),
        "the password is never printed: {err}"
    );

    // Without the flag it serves, and says what that means.
    let served = serve(&["--config", path.to_str().unwrap()]);
    let ready = http(
        &served.addr,
        "GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(ready.starts_with("HTTP/1.1 503"), "{ready}");
    assert!(ready.contains("\"code\":\"fallback\""), "{ready}");
}

/// Logs to a file carry no colour codes; `SHARECACHE_LOG_FORMAT=json` writes JSON lines;
/// an unknown format is refused with the choices.
#[test]
fn logs_are_plain_text_off_a_terminal_or_json_lines() {
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:1"])
        .env("SHARECACHE_LOG_FORMAT", "yaml")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("SHARECACHE_LOG_FORMAT") && err.contains("json"),
        "{err}"
    );

    for (format, check) in [("text", false), ("json", true)] {
        let served = serve_env(&[], &[("SHARECACHE_LOG_FORMAT", format)]);
        let logs: Vec<&str> = served.log.iter().map(String::as_str).collect();
        assert!(
            !logs.iter().any(|l| l.contains('\u{1b}')),
            "colour codes in {format} logs: {logs:?}"
        );
        let log_lines: Vec<&&str> = logs
            .iter()
            .filter(|l| l.contains("sharecache serving"))
            .collect();
        assert_eq!(log_lines.len(), 1, "{format}: {logs:?}");
        let parsed = serde_json::from_str::<serde_json::Value>(log_lines[0]);
        assert_eq!(parsed.is_ok(), check, "{format}: {}", log_lines[0]);
        if check {
            let v = parsed.unwrap();
            assert_eq!(v["level"], "INFO", "{v}");
            assert_eq!(v["fields"]["message"], "sharecache serving", "{v}");
        }
    }
}

/// `sharecache bench` writes only under its namespace, refuses one that holds keys, and
/// leaves nothing behind.
#[test]
fn bench_writes_only_its_namespace_and_cleans_up() {
    let server = sharecache_testkit::RedisServer::start();
    server.cmd(&["SET", "bench:mine", "1"]);
    let bench = |extra: &[&str]| {
        Command::new(BIN)
            .args([
                "bench",
                "--target",
                &server.url(),
                "--duration",
                "0.3",
                "--keys",
                "50",
            ])
            .args(["--concurrency", "4", "--json"])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = bench(&[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("already holds keys") && err.contains("--namespace"),
        "{err}"
    );
    assert_eq!(
        server.cmd(&["GET", "bench:mine"]).text(),
        Some("1"),
        "refused before writing"
    );

    for op in ["get", "mixed", "set"] {
        let out = bench(&["--namespace", "bench-run", "--op", op]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap()
            .to_owned();
        let r: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert!(r["removed_keys"].as_u64().unwrap() > 0, "{op}: {r}");
        assert_eq!(
            server.cmd(&["DBSIZE"]).text(),
            Some("1"),
            "{op}: only the key it found"
        );
    }
}

#[test]
fn token_new_prints_a_token_and_its_hash() {
    let out = Command::new(BIN).args(["token", "new"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let token = text
        .split_whitespace()
        .find(|w| w.starts_with("sc_"))
        .unwrap();
    let hash = text.split('"').nth(1).unwrap();
    assert_eq!(
        hash,
        hex::encode(sharecache_server::auth::hash_token(token))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_under_http_load_gives_no_5xx() {
    let app = TestApp::new(Backend::Redis).await;
    let addr = app.spawn().await;
    let server = app.server.as_ref().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    let fallback_seen = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for t in 0..16 {
        let (stop, ok, bad, fb, tok) = (
            stop.clone(),
            ok.clone(),
            bad.clone(),
            fallback_seen.clone(),
            app.user.clone(),
        );
        let c = support::client();
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) && i < 100_000 {
                let url = format!("http://{addr}/v1/cache/user/k{t}-{}", (i / 2) % 20);
                let r = if i.is_multiple_of(2) {
                    c.put(&url)
                        .bearer_auth(&tok)
                        .header("content-type", "application/json")
                        .body(i.to_string())
                        .send()
                        .await
                } else {
                    c.get(&url).bearer_auth(&tok).send().await
                };
                match r {
                    Ok(r) if r.status().is_server_error() => {
                        bad.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => {
                        if r.headers()
                            .get("x-cache-tier")
                            .is_some_and(|v| v == "fallback")
                        {
                            fb.fetch_add(1, Ordering::Relaxed);
                        }
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        bad.fetch_add(1, Ordering::Relaxed);
                    }
                }
                i += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.kill();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.cache.state() != sharecache::BackendState::Connected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        app.cache.state(),
        sharecache::BackendState::Connected,
        "service must recover by itself"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    println!(
        "ok {}, 5xx or failed {}, fallback answers {}",
        ok.load(Ordering::Relaxed),
        bad.load(Ordering::Relaxed),
        fallback_seen.load(Ordering::Relaxed)
    );
    assert_eq!(
        bad.load(Ordering::Relaxed),
        0,
        "no 5xx while Redis is killed and restarted"
    );
    assert!(
        fallback_seen.load(Ordering::Relaxed) > 0,
        "answers during the outage say x-cache-tier: fallback"
    );
    assert!(ok.load(Ordering::Relaxed) > 500);
}

fn header(resp: &str, name: &str) -> Option<String> {
    resp.lines().find_map(|l| {
        l.split_once(':')
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
    })
}

/// `method path` on `s` with token `t` and, if given, a JSON body; the whole answer.
fn call(s: &Served, t: &str, method: &str, path: &str, body: Option<&str>) -> String {
    let body_part = body.map_or(String::new(), |b| {
        format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        )
    });
    http(
        &s.addr,
        &format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t}\r\n{body_part}Connection: close\r\n\r\n{}",
            body.unwrap_or("")
        ),
    )
}

/// `PUT /v1/cache/hot/k` with JSON `v`.
fn put_hot(s: &Served, t: &str, v: &str) -> String {
    call(s, t, "PUT", "/v1/cache/hot/k", Some(v))
}

/// `GET /v1/cache/hot/k`.
fn get_hot(s: &Served, t: &str) -> String {
    call(s, t, "GET", "/v1/cache/hot/k", None)
}

/// Reads the hot key from `s` until it is answered from L1 (its tracking link is up),
/// checking every answer ends with `want`.
fn wait_for_l1_hit(s: &Served, t: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = get_hot(s, t);
        assert!(r.ends_with(want), "{r}");
        if header(&r, "x-cache-tier").as_deref() == Some("l1") {
            return;
        }
        assert!(Instant::now() < deadline, "never answered from L1: {r}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The binary on a Redis Cluster and on Sentinel, picked by `REDIS_URL` alone: two
/// processes on the cluster share values and keep their L1 coherent; one process on
/// Sentinel stores and reads through the master the sentinels name.
#[test]
fn serve_runs_on_cluster_and_sentinel_from_redis_url() {
    let cluster = sharecache_testkit::RedisCluster::start();
    let url = cluster.url();
    let a = serve_env(&[], &[("REDIS_URL", url.as_str())]);
    let b = serve_env(&[], &[("REDIS_URL", url.as_str())]);
    let (ta, tb) = (a.token.clone().unwrap(), b.token.clone().unwrap());
    assert!(put_hot(&a, &ta, "1").starts_with("HTTP/1.1 204"));
    wait_for_l1_hit(&b, &tb, "\r\n\r\n1");
    assert!(put_hot(&a, &ta, "2").starts_with("HTTP/1.1 204"));
    let start = Instant::now();
    while !get_hot(&b, &tb).ends_with("\r\n\r\n2") {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "stale L1 value on a cluster"
        );
    }
    let ready = http(
        &b.addr,
        "GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(
        ready.starts_with("HTTP/1.1 200") && ready.contains("connected"),
        "{ready}"
    );

    let group = sharecache_testkit::RedisSentinels::start("svc");
    let url = group.url();
    let s = serve_env(&[], &[("REDIS_URL", url.as_str())]);
    let t = s.token.clone().unwrap();
    assert!(put_hot(&s, &t, "7").starts_with("HTTP/1.1 204"));
    assert!(get_hot(&s, &t).ends_with("\r\n\r\n7"));
    assert_eq!(
        group.master().cmd(&["EXISTS", "hot:k"]).text(),
        Some("1"),
        "the value is on the master the sentinels name"
    );
}

/// Three `sharecache serve` processes on one Redis: a hot key is answered from L1
/// (`x-cache-tier: l1`), and a write through one process reaches the others' L1.
#[test]
fn serve_processes_keep_their_l1_coherent() {
    let redis = sharecache_testkit::RedisServer::start();
    let url = redis.url();
    let a = serve_env(&[], &[("REDIS_URL", url.as_str())]);
    let b = serve_env(&[], &[("REDIS_URL", url.as_str())]);
    let c = serve_env(&[], &[("REDIS_URL", url.as_str())]);
    let (ta, tb, tc) = (
        a.token.clone().unwrap(),
        b.token.clone().unwrap(),
        c.token.clone().unwrap(),
    );
    let (put, get) = (put_hot, get_hot);
    // Wait until B's and C's tracking links are up: a repeated read turns into an L1 hit.
    assert!(put(&a, &ta, "1").starts_with("HTTP/1.1 204"));
    for (s, t) in [(&b, &tb), (&c, &tc)] {
        wait_for_l1_hit(s, t, "1");
    }
    let mut worst = Duration::ZERO;
    for i in 2..50 {
        let v = i.to_string();
        let start = Instant::now();
        assert!(put(&a, &ta, &v).starts_with("HTTP/1.1 204"));
        for (s, t) in [(&b, &tb), (&c, &tc)] {
            loop {
                let r = get(s, t);
                if r.ends_with(&format!("\r\n\r\n{v}")) {
                    break;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(2),
                    "a process kept serving a stale value: {r}"
                );
            }
        }
        worst = worst.max(start.elapsed());
    }
    println!("worst time until B and C served A's write: {worst:?}");
}

/// `REDIS_KEY_PREFIX` in `serve`: deployment A (prefix `app`) and deployment B (none) on
/// one Redis. B's namespace `app` never reaches A's keys (reads, writes, listing, clear),
/// and two A processes keep their L1 coherent under the prefix.
#[test]
fn a_key_prefix_keeps_deployments_apart() {
    let redis = sharecache_testkit::RedisServer::start();
    let url = redis.url();
    let prefixed = [("REDIS_URL", url.as_str()), ("REDIS_KEY_PREFIX", "app")];
    let (a, a2) = (serve_env(&[], &prefixed), serve_env(&[], &prefixed));
    let b = serve_env(&[], &[("REDIS_URL", url.as_str())]);
    let (ta, ta2, tb) = (
        a.token.clone().unwrap(),
        a2.token.clone().unwrap(),
        b.token.clone().unwrap(),
    );
    let status = |r: &str| r.split_whitespace().nth(1).unwrap_or("").to_owned();
    let put = call(&a, &ta, "PUT", "/v1/cache/user/secret", Some("\"a\""));
    assert_eq!(status(&put), "204", "{put}");
    let lock = call(
        &a,
        &ta,
        "POST",
        "/v1/locks/user/payroll",
        Some(r#"{"ttl_ms":30000}"#),
    );
    assert_eq!(status(&lock), "200", "{lock}");
    assert_eq!(redis.cmd(&["EXISTS", "app/user:secret"]).text(), Some("1"));
    let a_keys = |r: &sharecache_testkit::RedisServer| {
        let sharecache_testkit::RespReply::Array(keys) = r.cmd(&["KEYS", "app/*"]) else {
            panic!("KEYS answers an array");
        };
        let mut k: Vec<String> = keys.iter().map(|k| k.text().unwrap().to_owned()).collect();
        k.sort();
        k
    };
    let before = a_keys(&redis);
    assert!(before.len() >= 3, "value, lock and fence: {before:?}");

    for path in ["/v1/cache/app/user:secret", "/v1/cache/app/secret"] {
        let r = call(&b, &tb, "GET", path, None);
        assert_eq!(status(&r), "404", "{path}: {r}");
    }
    let r = call(&b, &tb, "GET", "/v1/cache/app?match=*", None);
    assert!(r.contains(r#""keys":[]"#), "B lists nothing of A's: {r}");
    let r = call(&b, &tb, "PUT", "/v1/cache/app/user:secret", Some("\"b\""));
    assert_eq!(status(&r), "204", "{r}");
    let r = call(&b, &tb, "DELETE", "/v1/cache/app", None);
    assert_eq!(status(&r), "200", "{r}");
    assert_eq!(
        a_keys(&redis),
        before,
        "B's clear of `app` left A's keys alone"
    );
    let r = call(&a, &ta, "GET", "/v1/cache/user/secret", None);
    assert!(r.ends_with("\r\n\r\n\"a\""), "A still reads its value: {r}");

    // Coherence under the prefix: A's write reaches A2's L1.
    assert!(put_hot(&a, &ta, "1").starts_with("HTTP/1.1 204"));
    wait_for_l1_hit(&a2, &ta2, "\r\n\r\n1");
    assert!(put_hot(&a, &ta, "2").starts_with("HTTP/1.1 204"));
    let start = Instant::now();
    while !get_hot(&a2, &ta2).ends_with("\r\n\r\n2") {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "stale L1 value under a key prefix"
        );
    }
    // A bad prefix is refused at start, naming the variable.
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("REDIS_KEY_PREFIX", "App:x")
        .env_remove("REDIS_URL")
        .env_remove("SHARECACHE_CONFIG")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("REDIS_KEY_PREFIX"),
        "{err}"
    );
}

/// A Redis that may evict keys without a TTL is named loudly at start (and in `/ready`,
/// see tests/readiness.rs), before the service listens.
#[test]
fn an_evicting_policy_is_warned_about_at_start() {
    let redis =
        sharecache_testkit::RedisServer::start_with(sharecache_testkit::RedisConfig::args(&[
            "--maxmemory-policy",
            "allkeys-lfu",
        ]));
    let url = redis.url();
    let s = serve_env(&[], &[("REDIS_URL", url.as_str())]);
    assert!(
        s.log
            .iter()
            .any(|l| l.contains("maxmemory-policy is allkeys-lfu") && l.contains("noeviction")),
        "{:?}",
        s.log
    );
}
