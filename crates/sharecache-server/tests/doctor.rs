//! `sharecache doctor` against real redis-server processes: a well-set Redis passes every
//! check; each misconfiguration fails or warns on exactly its check; a user that may not
//! run CONFIG or ACL gets `unknown`, never a false fail; a Cluster whose nodes disagree on
//! ACL users is reported; the binary's exit status and JSON line.

mod support;

use sharecache_server::doctor::{Report, Status, diagnose};
use sharecache_testkit::{RedisCluster, RedisConfig, RedisServer};
use support::acl::user_url;

/// The settings of a production-ready Redis (also what compose.yaml would set).
const WELL_SET: &[&str] = &[
    "--maxmemory",
    "100mb",
    "--maxmemory-policy",
    "volatile-lru",
    "--appendonly",
    "yes",
    "--latency-monitor-threshold",
    "100",
];

/// A well-set server with `extra` arguments after (and so overriding) the good ones.
/// Unless `open_default`, the default user is turned off and doctor runs as `admin`.
fn server(extra: &[&str], open_default: bool) -> (RedisServer, String) {
    let args = WELL_SET
        .iter()
        .chain(extra)
        .map(|s| (*s).to_owned())
        .collect();
    let s = RedisServer::start_with(RedisConfig {
        extra_args: args,
        ..Default::default()
    });
    if open_default {
        let url = s.url();
        return (s, url);
    }
    s.cmd(&[
        "ACL", "SETUSER", "admin", "on", ">adminpw", "~*", "&*", "+@all",
    ]);
    s.cmd(&["ACL", "SETUSER", "default", "off"]);
    let url = user_url(s.port(), "admin", "adminpw");
    (s, url)
}

/// Runs a command as `admin` (the testkit's own commands use the default user, which
/// [`server`] turns off).
fn as_admin(s: &RedisServer, args: &[&str]) {
    let mut c = support::acl::login(s.port(), "admin", "adminpw").unwrap();
    support::acl::ok(&mut c, args);
}

/// The ids of the checks that did not pass, with their status.
fn not_passing(r: &Report) -> Vec<(String, Status)> {
    r.checks
        .iter()
        .filter(|c| c.status != Status::Pass)
        .map(|c| (c.id.clone(), c.status))
        .collect()
}

#[test]
fn a_well_set_redis_passes_every_check() {
    let (_s, url) = server(&[], false);
    let r = diagnose(&url).unwrap();
    assert_eq!(not_passing(&r), [], "{r:#?}");
    assert_eq!(r.exit_code(), 0);
    for id in [
        "maxmemory",
        "maxmemory-policy",
        "persistence",
        "replication",
        "latency-monitor",
        "slowlog",
        "security.default-user",
        "security.protected-mode",
        "security.tls",
        "security.debug-command",
        "security.users",
        "clients",
        "ttl",
        "notify-keyspace-events",
    ] {
        assert!(r.get(id).is_some(), "no {id} check: {r:#?}");
    }
}

#[test]
fn each_misconfiguration_shows_on_exactly_its_check() {
    let cases: &[(&[&str], bool, &str, Status)] = &[
        (&["--maxmemory", "0"], false, "maxmemory", Status::Fail),
        (
            &["--maxmemory-policy", "allkeys-lru"],
            false,
            "maxmemory-policy",
            Status::Warn,
        ),
        (
            &["--maxmemory-policy", "noeviction"],
            false,
            "maxmemory-policy",
            Status::Warn,
        ),
        (&["--appendonly", "no"], false, "persistence", Status::Fail),
        (
            &["--latency-monitor-threshold", "0"],
            false,
            "latency-monitor",
            Status::Warn,
        ),
        (
            &["--enable-debug-command", "yes"],
            false,
            "security.debug-command",
            Status::Warn,
        ),
        (&[], true, "security.default-user", Status::Fail),
    ];
    for (extra, open_default, id, status) in cases {
        let (_s, url) = server(extra, *open_default);
        let r = diagnose(&url).unwrap();
        assert_eq!(
            not_passing(&r),
            [((*id).to_owned(), *status)],
            "{extra:?}: {r:#?}"
        );
        let c = r.get(id).unwrap();
        assert!(!c.message.is_empty() && !c.fix.is_empty(), "{c:?}");
    }
}

#[test]
fn users_keys_and_replicas_are_judged() {
    // Another user that may run dangerous commands.
    let (s, url) = server(&[], false);
    as_admin(&s, &["ACL", "SETUSER", "ops", "on", ">x", "~*", "+@all"]);
    let r = diagnose(&url).unwrap();
    assert_eq!(
        not_passing(&r),
        [("security.users".into(), Status::Warn)],
        "{r:#?}"
    );
    assert!(r.get("security.users").unwrap().message.contains("ops"));

    // Keys without a TTL under volatile-lru: counted per namespace.
    let (s, url) = server(&[], false);
    let mut c = support::acl::login(s.port(), "admin", "adminpw").unwrap();
    for i in 0..30 {
        support::acl::ok(&mut c, &["SET", &format!("queue:{i}"), "v"]);
    }
    support::acl::ok(&mut c, &["SET", "auth:s", "v", "EX", "60"]);
    let r = diagnose(&url).unwrap();
    assert_eq!(not_passing(&r), [("ttl".into(), Status::Warn)], "{r:#?}");
    assert!(
        r.get("ttl").unwrap().message.contains("queue 30/30"),
        "{r:#?}"
    );

    // A replica whose master is gone.
    let gone = sharecache_testkit::free_port().to_string();
    let (_s, url) = server(&["--replicaof", "127.0.0.1", &gone], false);
    let r = diagnose(&url).unwrap();
    assert_eq!(
        not_passing(&r),
        [("replication".into(), Status::Fail)],
        "{r:#?}"
    );
}

#[test]
fn a_user_without_config_or_acl_gets_unknown_never_fail() {
    let (s, _) = server(&[], false);
    as_admin(
        &s,
        &[
            "ACL", "SETUSER", "app", "on", ">apppw", "~*", "&*", "+@all", "-config",
        ],
    );
    let r = diagnose(&user_url(s.port(), "app", "apppw")).unwrap();
    // Unknowns, and the one true finding: `admin` may run anything.
    assert_eq!(r.exit_code(), 0, "{r:#?}");
    for (id, st) in not_passing(&r) {
        assert!(
            st == Status::Unknown || (id == "security.users" && st == Status::Warn),
            "{id} {st:?}: {r:#?}"
        );
    }
    for id in [
        "latency-monitor",
        "security.protected-mode",
        "security.tls",
        "notify-keyspace-events",
    ] {
        let c = r.get(id).unwrap();
        assert_eq!(c.status, Status::Unknown, "{c:?}");
        assert!(c.message.contains("CONFIG"), "{c:?}");
    }
    // INFO still tells maxmemory, the policy and AOF.
    for id in ["maxmemory", "maxmemory-policy", "persistence"] {
        assert_eq!(r.get(id).unwrap().status, Status::Pass, "{r:#?}");
    }

    // A managed-style user with neither CONFIG nor ACL nor SLOWLOG.
    as_admin(
        &s,
        &[
            "ACL", "SETUSER", "managed", "on", ">m", "~*", "&*", "+@all", "-@admin",
        ],
    );
    let r = diagnose(&user_url(s.port(), "managed", "m")).unwrap();
    assert!(
        not_passing(&r).iter().all(|(_, st)| *st == Status::Unknown),
        "{r:#?}"
    );
    for id in ["security.default-user", "security.users", "slowlog"] {
        assert_eq!(r.get(id).unwrap().status, Status::Unknown, "{id}: {r:#?}");
    }
    assert_eq!(r.exit_code(), 0);
}

#[test]
fn a_cluster_node_with_other_acl_users_is_reported() {
    let cluster = RedisCluster::start();
    let r = diagnose(&cluster.url()).unwrap();
    assert_eq!(r.get("cluster").unwrap().status, Status::Pass, "{r:#?}");
    assert_eq!(r.get("nodes").unwrap().status, Status::Pass, "{r:#?}");
    assert_eq!(
        r.get("acl-consistency").unwrap().status,
        Status::Pass,
        "{r:#?}"
    );
    let odd = cluster.nodes()[4].port();
    cluster.nodes()[4].cmd(&["ACL", "SETUSER", "sc-auth", "on", ">x", "~auth:*"]);
    let r = diagnose(&cluster.url()).unwrap();
    let c = r.get("acl-consistency").unwrap();
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(c.message.contains("sc-auth"), "{c:?}");
    assert!(
        c.message.contains(&odd.to_string()) || c.message.contains("missing"),
        "{c:?}"
    );
}

#[test]
fn the_binary_exits_0_1_2_and_prints_one_json_line() {
    let bin = env!("CARGO_BIN_EXE_sharecache");
    let (_good, good_url) = server(&[], false);
    let (_bad, bad_url) = server(&["--maxmemory", "0"], false);
    let run = |url: &str| {
        std::process::Command::new(bin)
            .args(["doctor", "--json", "--url", url])
            .output()
            .unwrap()
    };
    let out = run(&good_url);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let last = text.lines().last().unwrap();
    let j: serde_json::Value = serde_json::from_str(last).unwrap();
    let first = &j["checks"][0];
    for k in ["id", "status", "message", "fix"] {
        assert!(first.get(k).is_some(), "{k} in {first}");
    }
    assert!(!text.contains("adminpw"), "no password in the output");
    assert_eq!(run(&bad_url).status.code(), Some(1));
    let nobody = format!("redis://127.0.0.1:{}", sharecache_testkit::free_port());
    let out = run(&nobody);
    assert_eq!(out.status.code(), Some(2));
    // --config: the backend URL of a config file.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sharecache.toml");
    std::fs::write(&cfg, format!("[backend]\nurl = \"{good_url}\"\n")).unwrap();
    let out = std::process::Command::new(bin)
        .args(["doctor", "--config"])
        .arg(&cfg)
        .env_remove("REDIS_URL")
        .env_remove("CACHE_TYPE")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("PASS"));
}

#[tokio::test]
async fn the_admin_gets_the_same_report_over_http() {
    use axum::http::{Method, StatusCode};
    let app = support::TestApp::new(support::Backend::Redis).await;
    let r = app
        .call(Method::GET, "/v1/admin/doctor", Some(&app.admin), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let j = r.json();
    let checks = j["checks"].as_array().unwrap();
    let maxmemory = checks.iter().find(|c| c["id"] == "maxmemory").unwrap();
    // The testkit's Redis has no maxmemory: the same verdict as the command line.
    assert_eq!(maxmemory["status"], "fail", "{j}");
    assert!(!maxmemory["fix"].as_str().unwrap().is_empty());
    let r = app
        .call(Method::GET, "/v1/admin/doctor", Some(&app.auth), None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let mem = support::TestApp::new(support::Backend::Memory).await;
    let r = mem
        .call(Method::GET, "/v1/admin/doctor", Some(&mem.admin), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["checks"][0]["status"], "unknown");
}

#[test]
fn a_sentinel_deployment_is_checked_on_the_master_and_the_replica() {
    let s = sharecache_testkit::RedisSentinels::start("mymaster");
    s.wait_in_sync(std::time::Duration::from_secs(10)).unwrap();
    let r = diagnose(&s.url()).unwrap();
    assert_eq!(r.get("nodes").unwrap().status, Status::Pass, "{r:#?}");
    assert_eq!(r.get("replication").unwrap().status, Status::Pass, "{r:#?}");
    assert_eq!(
        r.get("acl-consistency").unwrap().status,
        Status::Pass,
        "{r:#?}"
    );
    // The replica's ACL differs: reported, naming the user.
    s.replica()
        .cmd(&["ACL", "SETUSER", "sc-x", "on", ">x", "~x:*"]);
    let r = diagnose(&s.url()).unwrap();
    let c = r.get("acl-consistency").unwrap();
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(c.message.contains("sc-x"), "{c:?}");
}
