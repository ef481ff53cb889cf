//! `sharecache migrate` and `migrate verify`, run as the real binary against real
//! redis-server processes from the testkit: two sources into a standalone target and into
//! a 6-node Cluster with every type (a stream with a consumer group included) and
//! millisecond TTLs, keys that expire mid-copy, each conflict policy, the dry run, verify
//! finding an injected difference of each kind, clear errors, and a `kill -9` mid-copy
//! followed by `--resume`.

mod support;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use redis::Commands;
use sharecache_testkit::{RedisCluster, RedisConfig, RedisServer, free_port};
use support::cli::{report, stderr};

const BIN: &str = env!("CARGO_BIN_EXE_sharecache");

/// Runs `sharecache migrate ARGS`; returns the output.
fn migrate(args: &[&str]) -> Output {
    migrate_env(args, &[])
}

/// `migrate` with these environment variables set for the process.
fn migrate_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    support::cli::run_env("migrate", args, env)
}

fn conn(url: &str) -> redis::Connection {
    redis::Client::open(url)
        .unwrap()
        .get_connection()
        .expect("connect")
}

/// Keys of one source, by kind, so that tests can check each.
const STRINGS: usize = 300;

/// Fills a source with every type: `STRINGS` strings (every other with a TTL of an odd
/// number of milliseconds), a hash, a list, a set, a sorted set, a stream with a
/// consumer group and two pending entries, and with `expiring` 50 keys that expire
/// 50 ms to 2 s from now, while the copy runs.
fn seed(url: &str, tag: &str, expiring: bool) {
    let mut c = conn(url);
    let mut p = redis::pipe();
    for i in 0..STRINGS {
        let k = format!("s:{i}");
        p.set(&k, format!("{tag}-value-{i}")).ignore();
        if i % 2 == 0 {
            p.pexpire(&k, 600_000 + i as i64 * 7 + 3).ignore();
        }
    }
    p.hset_multiple("h:1", &[("a", "1"), ("b", "2"), ("c", tag)])
        .ignore();
    p.pexpire("h:1", 900_123).ignore();
    p.rpush("l:1", &["x", "y", "z", tag]).ignore();
    p.sadd("set:1", &["m1", "m2", tag]).ignore();
    p.zadd_multiple("z:1", &[(1.5, "one"), (2.25, "two"), (-3.0, tag)])
        .ignore();
    for i in 0..5 {
        p.cmd("XADD")
            .arg("st:1")
            .arg(format!("{}-0", i + 1))
            .arg("f")
            .arg(format!("{tag}{i}"))
            .ignore();
    }
    p.cmd("XGROUP")
        .arg("CREATE")
        .arg("st:1")
        .arg("g1")
        .arg("0")
        .ignore();
    p.cmd("XREADGROUP")
        .arg("GROUP")
        .arg("g1")
        .arg("c1")
        .arg("COUNT")
        .arg(2)
        .arg("STREAMS")
        .arg("st:1")
        .arg(">")
        .ignore();
    for i in 0..if expiring { 50 } else { 0 } {
        p.set(format!("exp:{i}"), "soon").ignore();
        p.pexpire(format!("exp:{i}"), 50 + i as i64 * 40).ignore();
    }
    let () = p.query(&mut c).unwrap();
}

/// Every command a source served since `CONFIG RESETSTAT`.
fn commands_served(server: &RedisServer) -> Vec<String> {
    let mut c = conn(&server.url());
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut c)
        .unwrap();
    info.lines()
        .filter_map(|l| l.strip_prefix("cmdstat_"))
        .filter_map(|l| l.split(':').next())
        .map(str::to_owned)
        .collect()
}

/// Asserts a source was only read.
fn assert_only_read(server: &RedisServer) {
    const READS: &[&str] = &[
        "scan",
        "dump",
        "pexpiretime",
        "pttl",
        "type",
        "get",
        "lrange",
        "hgetall",
        "smembers",
        "zrange",
        "xrange",
        "xinfo",
        "xinfo|groups",
        "exists",
        "ping",
        "info",
        "dbsize",
        "memory",
        "memory|usage",
        "config|resetstat",
        "config|get",
        "config",
        "client",
        "client|setinfo",
        "hello",
    ];
    for cmd in commands_served(server) {
        assert!(READS.contains(&cmd.as_str()), "the source served {cmd}");
    }
}

fn reset_stats(server: &RedisServer) {
    server.cmd(&["CONFIG", "RESETSTAT"]);
}

/// How a test reads the target: one server, or the cluster node of each key's slot.
enum Target<'a> {
    One(&'a RedisServer),
    Cluster(&'a RedisCluster),
}

impl Target<'_> {
    fn node(&self, key: &str) -> redis::Connection {
        match self {
            Target::One(s) => conn(&s.url()),
            Target::Cluster(c) => conn(&c.master_for_slot(RedisCluster::slot_of(key)).url()),
        }
    }

    fn url(&self) -> String {
        match self {
            Target::One(s) => s.url(),
            Target::Cluster(c) => c.url(),
        }
    }
}

/// Checks that every key of `source` is on the target under `ns:` with the same value
/// (DUMP payload) and the same expiry time to the millisecond, that the stream kept its
/// group and pending entries, and that no `exp:` key is on the target without a TTL.
fn assert_copied(source: &RedisServer, target: &Target, ns: &str) {
    let mut s = conn(&source.url());
    let keys: Vec<String> = s.scan().unwrap().collect::<Result<_, _>>().unwrap();
    let mut checked = 0;
    for k in keys {
        let tk = format!("{ns}:{k}");
        let mut t = target.node(&tk);
        let sd: Option<Vec<u8>> = redis::cmd("DUMP").arg(&k).query(&mut s).unwrap();
        let td: Option<Vec<u8>> = redis::cmd("DUMP").arg(&tk).query(&mut t).unwrap();
        let se: i64 = redis::cmd("PEXPIRETIME").arg(&k).query(&mut s).unwrap();
        let te: i64 = redis::cmd("PEXPIRETIME").arg(&tk).query(&mut t).unwrap();
        if sd.is_none() {
            continue; // expired meanwhile
        }
        if k.starts_with("exp:") {
            // Either copied with its TTL (and maybe expired since) or skipped.
            assert!(te != -1, "{tk} is on the target without its TTL");
            continue;
        }
        if k.starts_with("set:") {
            // A set's DUMP lists members in hash-table order, which RESTORE may change.
            let mut sm: Vec<String> = s.smembers(&k).unwrap();
            let mut tm: Vec<String> = t.smembers(&tk).unwrap();
            sm.sort();
            tm.sort();
            assert_eq!(sm, tm, "{tk}: members");
        } else {
            assert_eq!(sd, td, "{tk}: value");
        }
        assert_eq!(se, te, "{tk}: expiry time (ms)");
        checked += 1;
    }
    assert_eq!(checked, STRINGS + 5, "every durable key checked");
    let mut t = target.node(&format!("{ns}:st:1"));
    let groups: redis::Value = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(format!("{ns}:st:1"))
        .query(&mut t)
        .unwrap();
    let text = format!("{groups:?}");
    assert!(text.contains("g1"), "stream group kept: {text}");
    let pending: redis::Value = redis::cmd("XPENDING")
        .arg(format!("{ns}:st:1"))
        .arg("g1")
        .query(&mut t)
        .unwrap();
    let redis::Value::Array(p) = pending else {
        panic!("XPENDING: {pending:?}")
    };
    assert_eq!(p[0], redis::Value::Int(2), "two pending entries kept");
}

fn assert_report_adds_up(r: &serde_json::Value, ns: &str) {
    let s = r["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["namespace"] == ns)
        .unwrap_or_else(|| panic!("no source {ns} in {r}"));
    for field in [
        "namespace",
        "scanned",
        "copied",
        "skipped_expired",
        "conflicts",
        "failed",
        "bytes",
    ] {
        assert!(s.get(field).is_some(), "report field {field}: {s}");
    }
    let n = |f: &str| s[f].as_u64().unwrap();
    assert_eq!(n("failed"), 0, "{s}");
    assert_eq!(n("conflicts"), 0, "{s}");
    assert!(n("copied") >= (STRINGS + 5) as u64, "{s}");
    assert_eq!(
        n("scanned"),
        n("copied") + n("skipped_expired") + n("unchanged"),
        "every scanned key accounted for: {s}"
    );
    assert!(n("bytes") > 0);
}

fn two_sources_into(target: Target) {
    let (a, b) = (RedisServer::start(), RedisServer::start());
    seed(&a.url(), "A", true);
    seed(&b.url(), "B", true);
    reset_stats(&a);
    reset_stats(&b);
    let (sa, sb, to) = (
        format!("auth={}", a.url()),
        format!("user={}", b.url()),
        target.url(),
    );
    let out = migrate(&[
        "--source", &sa, "--source", &sb, "--to", &to, "--batch", "64", "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = report(&out);
    assert_eq!(r["mode"], "copy");
    assert!(
        r["totals"]["scanned"].as_u64().unwrap() > 2 * (STRINGS as u64 + 5),
        "some short-lived keys were still there when the copy started: {r}"
    );
    assert_report_adds_up(&r, "auth");
    assert_report_adds_up(&r, "user");
    assert_eq!(r["differences"]["total"], 0, "{r}");
    assert!(r["totals"]["copied"].as_u64().unwrap() >= 2 * (STRINGS as u64 + 5));
    assert_copied(&a, &target, "auth");
    assert_copied(&b, &target, "user");
    assert_only_read(&a);
    assert_only_read(&b);
    // A re-run writes nothing new: every key is already there, unchanged.
    let again = migrate(&["--source", &sa, "--source", &sb, "--to", &to, "--json"]);
    assert!(again.status.success(), "{}", stderr(&again));
    let r = report(&again);
    assert_eq!(r["totals"]["copied"], 0, "{r}");
    assert_eq!(r["totals"]["conflicts"], 0, "{r}");
}

#[test]
fn two_sources_into_a_standalone_target() {
    let target = RedisServer::start();
    two_sources_into(Target::One(&target));
}

#[test]
fn two_sources_into_a_cluster() {
    let cluster = RedisCluster::start();
    two_sources_into(Target::Cluster(&cluster));
}

/// Source `s:1`=a, `s:2`=b, `s:3`=c; target `auth:s:1`=X (a conflict) and `auth:s:2`=b
/// (the same value: not a conflict).
fn conflict_setup() -> (RedisServer, RedisServer) {
    let (src, dst) = (RedisServer::start(), RedisServer::start());
    src.cmd(&["MSET", "s:1", "a", "s:2", "b", "s:3", "c"]);
    dst.cmd(&["MSET", "auth:s:1", "X", "auth:s:2", "b"]);
    (src, dst)
}

fn get(server: &RedisServer, key: &str) -> Option<String> {
    server.cmd(&["GET", key]).text().map(str::to_owned)
}

#[test]
fn on_conflict_fail_writes_nothing_and_lists_the_conflict() {
    let (src, dst) = conflict_setup();
    let s = format!("auth={}", src.url());
    let out = migrate(&["--source", &s, "--to", &dst.url(), "--json"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("nothing was written"),
        "{}",
        stderr(&out)
    );
    let r = report(&out);
    assert_eq!(r["sources"][0]["conflicts"], 1, "{r}");
    assert_eq!(r["sources"][0]["conflict_keys"][0], "auth:s:1");
    assert_eq!(r["sources"][0]["unchanged"], 1, "{r}");
    assert_eq!(get(&dst, "auth:s:1").as_deref(), Some("X"));
    assert_eq!(get(&dst, "auth:s:3"), None, "nothing written");
}

/// `migrate --on-conflict POLICY --json` over [`conflict_setup`]: the target and the
/// report of a successful run.
fn conflict_run(policy: &str) -> (RedisServer, serde_json::Value) {
    let (src, dst) = conflict_setup();
    let s = format!("auth={}", src.url());
    let out = migrate(&[
        "--source",
        &s,
        "--to",
        &dst.url(),
        "--on-conflict",
        policy,
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    (dst, report(&out))
}

/// A source report's (copied, conflicts, unchanged).
fn counts(s0: &serde_json::Value) -> (Option<u64>, Option<u64>, Option<u64>) {
    (
        s0["copied"].as_u64(),
        s0["conflicts"].as_u64(),
        s0["unchanged"].as_u64(),
    )
}

#[test]
fn on_conflict_skip_keeps_the_target_key_and_counts_it() {
    let (dst, r) = conflict_run("skip");
    let s0 = &r["sources"][0];
    assert_eq!(counts(s0), (Some(1), Some(1), Some(1)), "{r}");
    assert_eq!(s0["conflict_keys"][0], "auth:s:1");
    assert_eq!(get(&dst, "auth:s:1").as_deref(), Some("X"));
    assert_eq!(get(&dst, "auth:s:3").as_deref(), Some("c"));
}

#[test]
fn on_conflict_replace_overwrites_and_counts_it() {
    let (dst, r) = conflict_run("replace");
    let s0 = &r["sources"][0];
    assert_eq!(counts(s0), (Some(2), Some(1), Some(1)), "{r}");
    assert_eq!(s0["conflict_keys"][0], "auth:s:1");
    assert_eq!(get(&dst, "auth:s:1").as_deref(), Some("a"));
    assert_eq!(r["differences"]["total"], 0, "{r}");
}

#[test]
fn dry_run_counts_and_writes_nothing() {
    let (src, dst) = (RedisServer::start(), RedisServer::start());
    seed(&src.url(), "A", false);
    dst.cmd(&["SET", "auth:s:1", "other"]);
    reset_stats(&src);
    let s = format!("auth={}", src.url());
    let out = migrate(&["--source", &s, "--to", &dst.url(), "--dry-run", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = report(&out);
    assert_eq!(r["mode"], "dry-run");
    let s0 = &r["sources"][0];
    assert_eq!(s0["scanned"], STRINGS as u64 + 5, "{r}");
    assert_eq!(s0["types"]["string"], STRINGS as u64, "{r}");
    for t in ["hash", "list", "set", "zset", "stream"] {
        assert_eq!(s0["types"][t], 1, "{t}: {r}");
    }
    // Odd strings and list, set, zset, stream have no TTL.
    assert_eq!(s0["no_ttl"], STRINGS as u64 / 2 + 4, "{r}");
    assert_eq!(s0["conflicts"], 1, "{r}");
    assert_eq!(s0["conflict_keys"][0], "auth:s:1");
    assert!(s0["bytes"].as_u64().unwrap() > 0);
    assert!(r["estimate_secs"].as_f64().is_some());
    assert_eq!(
        dst.cmd(&["DBSIZE"]).text(),
        Some("1"),
        "the dry run wrote nothing"
    );
    assert_eq!(get(&dst, "auth:s:1").as_deref(), Some("other"));
    assert_only_read(&src);
}

#[test]
fn verify_finds_an_injected_difference_of_each_kind() {
    let (src, dst) = (RedisServer::start(), RedisServer::start());
    seed(&src.url(), "A", false);
    let s = format!("auth={}", src.url());
    let out = migrate(&["--source", &s, "--to", &dst.url(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let clean = migrate(&["verify", "--source", &s, "--to", &dst.url(), "--json"]);
    assert!(clean.status.success(), "{}", stderr(&clean));
    assert_eq!(report(&clean)["differences"]["total"], 0);
    // One of each kind.
    dst.cmd(&["DEL", "auth:s:1"]); // missing
    dst.cmd(&["SET", "auth:stray", "x"]); // extra
    dst.cmd(&["DEL", "auth:s:3"]);
    dst.cmd(&["SADD", "auth:s:3", "now-a-set"]); // type
    dst.cmd(&["SET", "auth:s:5", "changed"]); // value (s:5 has no TTL)
    dst.cmd(&["PEXPIRE", "auth:s:4", "5000000"]); // ttl, beyond the tolerance
    dst.cmd(&["HSET", "auth:h:1", "a", "changed"]); // value of a hash, TTL kept
    let out = migrate(&["verify", "--source", &s, "--to", &dst.url(), "--json"]);
    assert!(!out.status.success(), "differences give a non-zero exit");
    let d = &report(&out)["differences"];
    assert_eq!(d["missing"]["count"], 1, "{d}");
    assert_eq!(d["missing"]["examples"][0], "auth:s:1");
    assert_eq!(d["extra"]["count"], 1, "{d}");
    assert_eq!(d["extra"]["examples"][0], "auth:stray");
    assert_eq!(d["type"]["count"], 1, "{d}");
    assert_eq!(d["type"]["examples"][0], "auth:s:3");
    assert_eq!(d["value"]["count"], 2, "{d}");
    assert_eq!(d["ttl"]["count"], 1, "{d}");
    assert_eq!(d["ttl"]["examples"][0], "auth:s:4");
    assert_eq!(d["total"], 6, "{d}");
    // Within the tolerance a TTL is no difference.
    dst.cmd(&["DEL", "auth:stray"]);
    let src_exp = src.cmd(&["PEXPIRETIME", "s:4"]).text().unwrap().to_owned();
    let near = (src_exp.parse::<i64>().unwrap() + 400).to_string();
    dst.cmd(&["PEXPIREAT", "auth:s:4", &near]);
    let out = migrate(&["verify", "--source", &s, "--to", &dst.url(), "--json"]);
    let d = &report(&out)["differences"];
    assert_eq!(
        (d["ttl"]["count"].as_u64(), d["extra"]["count"].as_u64()),
        (Some(0), Some(0)),
        "{d}"
    );
}

#[test]
fn bad_urls_wrong_passwords_and_unreachable_servers_are_clear_errors() {
    let ok = RedisServer::start();
    let locked = RedisServer::start_with(RedisConfig {
        password: Some("right-pw".into()),
        ..RedisConfig::default()
    });
    let dead = format!("redis://127.0.0.1:{}", free_port());
    let src = format!("auth={}", ok.url());
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "--source".into(),
                src.clone(),
                "--to".into(),
                "memcached://h".into(),
            ],
            "unknown scheme",
        ),
        (
            vec![
                "--source".into(),
                "auth=redis://:topsecret@127.0.0.1:notaport".into(),
                "--to".into(),
                ok.url(),
            ],
            "not valid",
        ),
        (
            vec![
                "--source".into(),
                "Auth!=redis://h".into(),
                "--to".into(),
                ok.url(),
            ],
            "--source Auth!",
        ),
        (
            vec![
                "--source".into(),
                "no-equals-sign".into(),
                "--to".into(),
                ok.url(),
            ],
            "expected NS=URL",
        ),
        (vec!["--source".into(), src.clone()], "--to"),
        (
            vec!["--source".into(), src.clone(), "--to".into(), dead.clone()],
            "cannot reach target",
        ),
        (
            vec![
                "--source".into(),
                format!("auth={dead}"),
                "--to".into(),
                ok.url(),
            ],
            "cannot reach source auth",
        ),
        (
            vec![
                "--source".into(),
                src.clone(),
                "--to".into(),
                format!("redis://:topsecret@127.0.0.1:{}", locked.port()),
            ],
            "target (redis://:***@127.0.0.1",
        ),
        (
            vec![
                "--source".into(),
                format!("auth=redis://127.0.0.1:{}", locked.port()),
                "--to".into(),
                ok.url(),
            ],
            "source auth (redis://127.0.0.1",
        ),
    ];
    for (args, want) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = migrate(&args);
        assert!(!out.status.success(), "{args:?} must fail");
        let e = stderr(&out);
        assert!(e.contains(want), "{args:?}: expected {want:?} in {e}");
        assert!(
            !e.contains("topsecret"),
            "{args:?} leaked the password: {e}"
        );
        if want.contains("127.0.0.1") {
            assert!(e.contains("refused the credentials"), "{e}");
        }
    }
}

#[test]
fn out_of_memory_on_the_target_stops_with_a_message() {
    let src = RedisServer::start();
    let dst = RedisServer::start_with(RedisConfig {
        extra_args: vec![
            "--maxmemory".into(),
            "2mb".into(),
            "--maxmemory-policy".into(),
            "noeviction".into(),
        ],
        ..RedisConfig::default()
    });
    let mut c = conn(&src.url());
    let big = "v".repeat(10_000);
    let mut p = redis::pipe();
    for i in 0..600 {
        p.set(format!("big:{i}"), &big).ignore();
    }
    let () = p.query(&mut c).unwrap();
    let s = format!("auth={}", src.url());
    let out = migrate(&["--source", &s, "--to", &dst.url(), "--batch", "50"]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains("out of memory"), "{e}");
    assert_eq!(
        e.matches("out of memory").count(),
        1,
        "one message, not one per key: {e}"
    );
}

#[test]
fn kill_9_mid_copy_then_resume_loses_nothing() {
    let (src, dst) = (RedisServer::start(), RedisServer::start());
    let mut c = conn(&src.url());
    const N: usize = 30_000;
    for chunk in 0..(N / 1000) {
        let mut p = redis::pipe();
        for i in chunk * 1000..(chunk + 1) * 1000 {
            p.set(format!("k:{i}"), format!("value-{i}")).ignore();
            if i % 3 == 0 {
                p.pexpire(format!("k:{i}"), 3_600_000 + i as i64).ignore();
            }
        }
        let () = p.query(&mut c).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("job.json");
    let ckpt_s = ckpt.to_str().unwrap().to_owned();
    let s = format!("auth={}", src.url());
    let to = dst.url();
    let args = [
        "migrate",
        "--source",
        &s,
        "--to",
        &to,
        "--batch",
        "20",
        "--checkpoint",
        &ckpt_s,
    ];
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait (bounded) for a few checkpoints, then kill -9.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut copied_at_kill = 0;
    while Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(&ckpt)
            && let Ok(j) = serde_json::from_str::<serde_json::Value>(&text)
        {
            copied_at_kill = j["sources"][0]["report"]["copied"].as_u64().unwrap_or(0);
            if copied_at_kill >= 2000 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let on_target: u64 = dst.cmd(&["DBSIZE"]).text().unwrap().parse().unwrap();
    eprintln!("killed with {copied_at_kill} copied in the checkpoint, {on_target} on the target");
    assert!(copied_at_kill > 0, "the copy never wrote a checkpoint");
    assert!(
        (on_target as usize) < N,
        "the copy finished before the kill; make it slower"
    );
    // Without --resume an existing checkpoint is refused, not overwritten.
    let out = migrate(&args[1..]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--resume"), "{}", stderr(&out));
    let mut resumed: Vec<&str> = args[1..].to_vec();
    resumed.extend(["--resume", "--json"]);
    let out = migrate(&resumed);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = report(&out);
    let s0 = &r["sources"][0];
    assert_eq!(s0["failed"], 0, "{r}");
    assert_eq!(s0["conflicts"], 0, "{r}");
    assert_eq!(r["differences"]["total"], 0, "{r}");
    assert_eq!(dst.cmd(&["DBSIZE"]).text(), Some(N.to_string().as_str()));
    let copied = s0["copied"].as_u64().unwrap() + s0["unchanged"].as_u64().unwrap();
    assert!(
        copied >= N as u64,
        "every key copied once or found unchanged: {r}"
    );
    let mut t = conn(&to);
    let e: i64 = redis::cmd("PEXPIRETIME")
        .arg("auth:k:300")
        .query(&mut t)
        .unwrap();
    let se: i64 = redis::cmd("PEXPIRETIME")
        .arg("k:300")
        .query(&mut c)
        .unwrap();
    assert_eq!(e, se);
}

#[test]
fn follow_without_keyspace_notifications_says_so_and_writes_nothing() {
    let (src, dst) = (RedisServer::start(), RedisServer::start());
    src.cmd(&["SET", "a", "1"]);
    let out = migrate(&["--source", &s_url(&src), "--to", &dst.url(), "--follow"]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains("keyspace notifications are off"), "{e}");
    assert!(e.contains("--enable-notifications"), "{e}");
    assert_eq!(dst.cmd(&["DBSIZE"]).text(), Some("0"));
    assert_eq!(
        src.cmd(&["CONFIG", "GET", "notify-keyspace-events"]),
        sharecache_testkit::RespReply::Array(vec![
            sharecache_testkit::RespReply::Value("notify-keyspace-events".into()),
            sharecache_testkit::RespReply::Value(String::new()),
        ]),
        "not switched on unless asked"
    );
}

/// Polls `check` every 20 ms for up to 20 s.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("not within 20 s: {what}");
}

#[test]
fn follow_copies_writes_deletes_and_expirations_until_ctrl_c_then_verifies() {
    let (src, dst) = (RedisServer::start(), RedisServer::start());
    src.cmd(&["MSET", "a", "1", "b", "2", "c", "3"]);
    src.cmd(&["HSET", "h", "f", "1"]);
    let child = Command::new(BIN)
        .args([
            "migrate",
            "--source",
            &s_url(&src),
            "--to",
            &dst.url(),
            "--follow",
            "--enable-notifications",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    eventually("the snapshot", || dst.cmd(&["DBSIZE"]).text() == Some("4"));
    src.cmd(&["SET", "new", "n"]); // a write
    src.cmd(&["DEL", "b"]); // a delete
    src.cmd(&["PEXPIRE", "c", "100"]); // an expiration
    src.cmd(&["HSET", "h", "g", "2"]); // a change
    src.cmd(&["SET", "a", "changed", "PX", "600000"]); // a new value and TTL
    eventually("the changes", || {
        get(&dst, "auth:new").as_deref() == Some("n")
            && get(&dst, "auth:b").is_none()
            && get(&dst, "auth:c").is_none()
            && dst.cmd(&["HGET", "auth:h", "g"]).text() == Some("2")
            && get(&dst, "auth:a").as_deref() == Some("changed")
    });
    let se = src.cmd(&["PEXPIRETIME", "a"]).text().unwrap().to_owned();
    assert_eq!(
        dst.cmd(&["PEXPIRETIME", "auth:a"]).text(),
        Some(se.as_str())
    );
    // Ctrl-C: the cutover.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    eprintln!("{}", stderr(&out));
    assert!(out.status.success(), "{}", stderr(&out));
    let r = report(&out);
    assert_eq!(r["differences"]["total"], 0, "{r}");
    let f = &r["follow"];
    assert!(f["updated"].as_u64().unwrap() >= 3, "{r}");
    assert!(f["deleted"].as_u64().unwrap() >= 2, "{r}");
    assert_eq!(f["failed"], 0, "{r}");
}

/// No key of the per-type copy's temporary names is left on `server`.
fn assert_no_temp_keys(server: &RedisServer) {
    let mut c = conn(&server.url());
    let left: Vec<String> = c
        .scan_match("*sharecache-migrate-tmp*")
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(left.is_empty(), "temporary keys left: {left:?}");
}

#[test]
fn a_target_user_without_restore_gets_the_per_type_copy() {
    let (src, dst) = (RedisServer::start(), RedisServer::start());
    seed(&src.url(), "A", false);
    dst.cmd(&[
        "ACL",
        "SETUSER",
        "mover",
        "on",
        ">mover-pw",
        "~*",
        "&*",
        "+@all",
        "-restore",
    ]);
    let to = format!("redis://mover:mover-pw@127.0.0.1:{}", dst.port());
    let out = migrate(&["--source", &s_url(&src), "--to", &to, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = report(&out);
    assert_eq!(r["sources"][0]["copied"], STRINGS as u64 + 5, "{r}");
    assert_eq!(r["sources"][0]["failed"], 0, "{r}");
    assert_eq!(
        r["differences"]["total"], 0,
        "verify compares content and TTLs: {r}"
    );
    let mut s = conn(&src.url());
    let mut t = conn(&dst.url());
    for k in ["s:0", "s:2", "h:1", "s:1"] {
        let se: i64 = redis::cmd("PEXPIRETIME").arg(k).query(&mut s).unwrap();
        let te: i64 = redis::cmd("PEXPIRETIME")
            .arg(format!("auth:{k}"))
            .query(&mut t)
            .unwrap();
        assert_eq!(se, te, "{k}: expiry time to the ms");
    }
    let pending: redis::Value = redis::cmd("XPENDING")
        .arg("auth:st:1")
        .arg("g1")
        .query(&mut t)
        .unwrap();
    let redis::Value::Array(p) = pending else {
        panic!("{pending:?}")
    };
    assert_eq!(p[0], redis::Value::Int(2), "pending entries recreated");
    let z: Vec<(String, f64)> = t.zrange_withscores("auth:z:1", 0, -1).unwrap();
    assert_eq!(
        z,
        vec![
            ("A".into(), -3.0),
            ("one".into(), 1.5),
            ("two".into(), 2.25)
        ]
    );
    assert_no_temp_keys(&dst);
    // A re-run finds every key unchanged.
    let out = migrate(&["--source", &s_url(&src), "--to", &to, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(report(&out)["totals"]["unchanged"], STRINGS as u64 + 5);
}

fn s_url(src: &RedisServer) -> String {
    format!("auth={}", src.url())
}

#[test]
fn a_value_above_the_targets_proto_max_bulk_len_is_copied_in_chunks() {
    let src = RedisServer::start();
    let dst = RedisServer::start_with(RedisConfig {
        extra_args: vec!["--proto-max-bulk-len".into(), "1mb".into()],
        ..RedisConfig::default()
    });
    let mut c = conn(&src.url());
    let big: String = (0..3_000_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let () = c.set_ex("big", &big, 3600).unwrap();
    let fields: Vec<(String, String)> = (0..3000)
        .map(|i| (format!("f{i}"), "x".repeat(1000)))
        .collect();
    let () = c.hset_multiple("bighash", &fields).unwrap();
    let () = c.set("small", "1").unwrap();
    let out = migrate(&["--source", &s_url(&src), "--to", &dst.url(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = report(&out);
    assert_eq!(r["sources"][0]["copied"], 3, "{r}");
    assert_eq!(r["differences"]["total"], 0, "{r}");
    let mut t = conn(&dst.url());
    let got: String = t.get("auth:big").unwrap();
    assert!(got == big, "the 3 MB string arrived whole");
    let n: usize = t.hlen("auth:bighash").unwrap();
    assert_eq!(n, 3000);
    let se: i64 = redis::cmd("PEXPIRETIME").arg("big").query(&mut c).unwrap();
    let te: i64 = redis::cmd("PEXPIRETIME")
        .arg("auth:big")
        .query(&mut t)
        .unwrap();
    assert_eq!(se, te);
    assert_no_temp_keys(&dst);
}

#[test]
fn match_and_key_prefix_select_and_place_the_keys() {
    let (src, dst) = (RedisServer::start(), RedisServer::start());
    src.cmd(&["MSET", "session:1", "a", "session:2", "b", "other:1", "c"]);
    let common = [
        "--source",
        &s_url(&src),
        "--to",
        &dst.url(),
        "--match",
        "session:*",
        "--key-prefix",
        "app",
        "--json",
    ]
    .map(str::to_owned);
    let args: Vec<&str> = common.iter().map(String::as_str).collect();
    let out = migrate(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(report(&out)["sources"][0]["copied"], 2);
    assert_eq!(get(&dst, "app/auth:session:1").as_deref(), Some("a"));
    assert_eq!(get(&dst, "app/auth:other:1"), None);
    assert_eq!(dst.cmd(&["DBSIZE"]).text(), Some("2"));
    let mut verify = vec!["verify"];
    verify.extend(&args);
    let out = migrate(&verify);
    assert!(out.status.success(), "{}", stderr(&out));
    // REDIS_KEY_PREFIX, the services' own variable, stands for --key-prefix.
    let by_env: Vec<&str> = verify
        .iter()
        .copied()
        .filter(|a| !matches!(*a, "--key-prefix" | "app"))
        .collect();
    assert!(
        migrate(&by_env).status.code() != Some(0),
        "no prefix: nothing found"
    );
    let out = migrate_env(&by_env, &[("REDIS_KEY_PREFIX", "app")]);
    assert!(out.status.success(), "{}", stderr(&out));
    // An extra key under the prefix and namespace that matches is found; one that does
    // not match --match is not this run's business.
    dst.cmd(&["SET", "app/auth:session:9", "x"]);
    dst.cmd(&["SET", "app/auth:unrelated", "x"]);
    let out = migrate(&verify);
    assert!(!out.status.success());
    let d = &report(&out)["differences"];
    assert_eq!(
        d["extra"]["examples"],
        serde_json::json!(["app/auth:session:9"]),
        "{d}"
    );
}

#[test]
fn a_cluster_source_is_read_from_every_master() {
    let cluster = RedisCluster::start();
    let dst = RedisServer::start();
    const N: usize = 600;
    let mut by_node: std::collections::HashMap<u16, redis::Pipeline> = Default::default();
    for i in 0..N {
        let k = format!("k:{i}");
        let node = cluster.master_for_slot(RedisCluster::slot_of(&k)).port();
        let p = by_node.entry(node).or_default();
        p.set(&k, i).ignore();
        p.pexpire(&k, 500_000 + i as i64).ignore();
    }
    for (port, p) in by_node {
        let () = p
            .query(&mut conn(&format!("redis://127.0.0.1:{port}")))
            .unwrap();
    }
    let s = format!("auth={}", cluster.url());
    let out = migrate(&["--source", &s, "--to", &dst.url(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = report(&out);
    assert_eq!(r["sources"][0]["copied"], N as u64, "{r}");
    assert_eq!(r["differences"]["total"], 0, "{r}");
    let mut t = conn(&dst.url());
    let e: i64 = redis::cmd("PEXPIRETIME")
        .arg("auth:k:7")
        .query(&mut t)
        .unwrap();
    let mut s7 = conn(&cluster.master_for_slot(RedisCluster::slot_of("k:7")).url());
    let se: i64 = redis::cmd("PEXPIRETIME").arg("k:7").query(&mut s7).unwrap();
    assert_eq!(e, se);
}

#[test]
fn a_source_that_disappears_mid_copy_stops_the_run_and_resume_finishes_it() {
    let src = RedisServer::start_with(RedisConfig {
        persistent: true,
        ..RedisConfig::default()
    });
    let dst = RedisServer::start();
    const N: usize = 20_000;
    let mut c = conn(&src.url());
    for chunk in 0..(N / 1000) {
        let mut p = redis::pipe();
        for i in chunk * 1000..(chunk + 1) * 1000 {
            p.set(format!("k:{i}"), i).ignore();
        }
        let () = p.query(&mut c).unwrap();
    }
    drop(c);
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("job.json").to_str().unwrap().to_owned();
    let s = s_url(&src);
    let to = dst.url();
    let args = [
        "migrate",
        "--source",
        &s,
        "--to",
        &to,
        "--batch",
        "20",
        "--checkpoint",
        &ckpt,
    ];
    let child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && !std::path::Path::new(&ckpt).exists() {
        std::thread::sleep(Duration::from_millis(5));
    }
    src.kill();
    let out = child.wait_with_output().unwrap();
    let e = stderr(&out);
    eprintln!("{e}");
    assert!(!out.status.success(), "the run must fail: {e}");
    assert!(e.contains("source auth"), "{e}");
    assert!(e.contains("--resume"), "{e}");
    src.restart();
    let mut resumed: Vec<&str> = args[1..].to_vec();
    resumed.extend(["--resume", "--json"]);
    let out = migrate(&resumed);
    assert!(out.status.success(), "{}", stderr(&out));
    // A restarted server has another hash seed: the old cursor would skip keys.
    assert!(stderr(&out).contains("starts over"), "{}", stderr(&out));
    let r = report(&out);
    assert_eq!(r["differences"]["total"], 0, "{r}");
    assert_eq!(dst.cmd(&["DBSIZE"]).text(), Some(N.to_string().as_str()));
}

#[test]
fn many_keys_from_two_sources() {
    let (a, b, dst) = (
        RedisServer::start(),
        RedisServer::start(),
        RedisServer::start(),
    );
    const N: usize = 50_000;
    for server in [&a, &b] {
        let mut c = conn(&server.url());
        for chunk in 0..(N / 5000) {
            let mut p = redis::pipe();
            for i in chunk * 5000..(chunk + 1) * 5000 {
                p.set(format!("k:{i}"), "v".repeat(100)).ignore();
                p.pexpire(format!("k:{i}"), 3_600_000 + i as i64).ignore();
            }
            let () = p.query(&mut c).unwrap();
        }
    }
    let (sa, sb) = (format!("auth={}", a.url()), format!("user={}", b.url()));
    let start = Instant::now();
    let out = migrate(&[
        "--source",
        &sa,
        "--source",
        &sb,
        "--to",
        &dst.url(),
        "--json",
    ]);
    eprintln!(
        "{} keys in {:?} (debug build, with verify)",
        2 * N,
        start.elapsed()
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let r = report(&out);
    assert_eq!(r["totals"]["copied"], 2 * N as u64, "{r}");
    assert_eq!(r["differences"]["total"], 0, "{r}");
    assert_eq!(
        dst.cmd(&["DBSIZE"]).text(),
        Some((2 * N).to_string().as_str())
    );
}

#[test]
fn a_sentinel_source_is_read_from_its_master() {
    let sentinels = sharecache_testkit::RedisSentinels::start("svc");
    sentinels.master().cmd(&["MSET", "a", "1", "b", "2"]);
    sentinels.master().cmd(&["PEXPIRE", "a", "700007"]);
    let dst = RedisServer::start();
    let s = format!("auth={}", sentinels.url());
    let out = migrate(&["--source", &s, "--to", &dst.url(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = report(&out);
    assert_eq!(r["sources"][0]["copied"], 2, "{r}");
    assert_eq!(r["differences"]["total"], 0, "{r}");
    let se = sentinels
        .master()
        .cmd(&["PEXPIRETIME", "a"])
        .text()
        .unwrap()
        .to_owned();
    assert_eq!(
        dst.cmd(&["PEXPIRETIME", "auth:a"]).text(),
        Some(se.as_str())
    );
}

#[test]
fn the_target_given_as_a_source_is_refused() {
    let server = RedisServer::start();
    server.cmd(&["SET", "a", "1"]);
    // The same server under another name: caught by its run_id, not its URL.
    let other_name = format!("auth=redis://localhost:{}", server.port());
    let out = migrate(&["--source", &other_name, "--to", &server.url()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is the target itself"),
        "{}",
        stderr(&out)
    );
    assert_eq!(server.cmd(&["DBSIZE"]).text(), Some("1"));
}
