//! `sharecache provision` against real redis-server processes: what the provisioned users
//! may and may not do, idempotence, prune, rotation, errors, and every node of a Cluster
//! and a Sentinel deployment (also after a failover).

mod support;

use std::time::Duration;

use redis::Value;
use sharecache_server::provision::{Options, Report, provision};
use sharecache_testkit::{RedisCluster, RedisServer, RespReply};
use support::acl::{denied, login, ok, services_config};

fn apply(url: &str, opts: &Options) -> Report {
    let cfg = services_config("");
    provision(&cfg, url, opts).unwrap()
}

fn actions(r: &Report) -> Vec<(String, String)> {
    r.nodes
        .iter()
        .flat_map(|n| n.users.iter().map(|u| (u.user.clone(), u.action.clone())))
        .collect()
}

fn acl_list(s: &RedisServer) -> Vec<String> {
    match s.cmd(&["ACL", "LIST"]) {
        RespReply::Array(a) => a.iter().map(|r| r.text().unwrap().to_owned()).collect(),
        other => panic!("ACL LIST: {other:?}"),
    }
}

#[test]
fn a_service_user_does_its_namespace_and_nothing_else() {
    let server = RedisServer::start();
    let port = server.port();
    server.cmd(&["SET", "user:secret", "s"]);
    server.cmd(&["SET", "shared:config", "c"]);
    let r = apply(&server.url(), &Options::default());
    assert!(r.ok, "{r:?}");
    let pw = r.passwords["sc-auth"].clone();
    let mut c = login(port, "sc-auth", &pw).unwrap();

    // Its own namespace, every data type.
    ok(&mut c, &["SET", "auth:session:1", "x", "EX", "3600"]);
    assert_eq!(
        ok(&mut c, &["GET", "auth:session:1"]),
        Value::BulkString(b"x".to_vec())
    );
    ok(&mut c, &["HSET", "auth:h", "f", "v"]);
    ok(&mut c, &["LPUSH", "auth:l", "a"]);
    ok(&mut c, &["SADD", "auth:s", "a"]);
    ok(&mut c, &["ZADD", "auth:z", "1", "a"]);
    ok(&mut c, &["XADD", "auth:x", "*", "f", "v"]);
    ok(&mut c, &["EXPIRE", "auth:h", "60"]);
    ok(
        &mut c,
        &["EVAL", "return redis.call('INCR', KEYS[1])", "1", "auth:n"],
    );
    ok(&mut c, &["PUBLISH", "auth:events", "hi"]);
    ok(&mut c, &["INFO", "server"]);
    // Read-only grant: reads yes, writes no.
    assert_eq!(
        ok(&mut c, &["GET", "shared:config"]),
        Value::BulkString(b"c".to_vec())
    );
    denied(&mut c, &["SET", "shared:config", "evil"]);
    denied(&mut c, &["DEL", "shared:config"]);
    // Outside: no reads, writes, listing, flushing, scripts, channels or tracking.
    denied(&mut c, &["GET", "user:secret"]);
    denied(&mut c, &["SET", "user:secret", "evil"]);
    denied(&mut c, &["SET", "authx", "evil"]);
    denied(&mut c, &["SCAN", "0"]);
    denied(&mut c, &["KEYS", "*"]);
    denied(&mut c, &["RANDOMKEY"]);
    denied(&mut c, &["FLUSHALL"]);
    denied(&mut c, &["FLUSHDB"]);
    denied(
        &mut c,
        &[
            "EVAL",
            "return redis.call('GET', KEYS[1])",
            "1",
            "user:secret",
        ],
    );
    denied(
        &mut c,
        &["EVAL", "return redis.call('GET', 'user:secret')", "0"],
    );
    denied(&mut c, &["PUBLISH", "user:events", "hi"]);
    denied(&mut c, &["CLIENT", "TRACKING", "on", "BCAST"]);
    denied(&mut c, &["CONFIG", "GET", "maxmemory"]);
    denied(&mut c, &["ACL", "LIST"]);
    denied(&mut c, &["PUBSUB", "CHANNELS"]);
    denied(&mut c, &["FUNCTION", "FLUSH"]);
    assert_eq!(server.cmd(&["GET", "user:secret"]).text(), Some("s"));
    assert_eq!(server.cmd(&["GET", "shared:config"]).text(), Some("c"));

    // Subscribe: its channels deliver, another namespace's are refused.
    let mut other = login(port, "sc-auth", &pw).unwrap();
    denied(&mut other, &["SUBSCRIBE", "user:events"]);
    denied(&mut other, &["PSUBSCRIBE", "*"]);
    let mut sub = login(port, "sc-auth", &pw).unwrap();
    let mut ps = sub.as_pubsub();
    ps.subscribe("auth:events").unwrap();
    ps.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    ok(&mut c, &["PUBLISH", "auth:events", "hello"]);
    let msg = ps.get_message().unwrap();
    assert_eq!(msg.get_payload::<String>().unwrap(), "hello");

    // Every denial is in ACL LOG, for the user, with what was refused.
    let log = format!("{:?}", server.cmd(&["ACL", "LOG", "100"]));
    for what in [
        "user:secret",
        "scan",
        "keys",
        "flushall",
        "client|tracking",
        "user:events",
    ] {
        assert!(log.contains(what), "ACL LOG lacks {what}: {log}");
    }
    assert!(log.contains("sc-auth"));

    // The second service is confined the other way round.
    let mut u = login(port, "sc-user", &r.passwords["sc-user"]).unwrap();
    ok(&mut u, &["GET", "user:secret"]);
    denied(&mut u, &["GET", "auth:session:1"]);
    denied(&mut u, &["GET", "shared:config"]);
}

#[test]
fn a_rerun_changes_nothing_and_a_dry_run_writes_nothing() {
    let server = RedisServer::start();
    let dry = apply(
        &server.url(),
        &Options {
            dry_run: true,
            ..Default::default()
        },
    );
    assert!(dry.passwords.is_empty(), "a dry run makes no password");
    assert!(
        dry.acl["sc-auth"].contains("~auth:* %R~shared:* resetchannels &auth:*"),
        "{dry:?}"
    );
    assert_eq!(
        acl_list(&server).len(),
        1,
        "only the default user after a dry run"
    );

    let first = apply(&server.url(), &Options::default());
    assert_eq!(
        actions(&first),
        [
            ("sc-auth".into(), "create".into()),
            ("sc-user".into(), "create".into())
        ]
    );
    let before = acl_list(&server);
    let again = apply(&server.url(), &Options::default());
    assert_eq!(
        actions(&again),
        [
            ("sc-auth".into(), "unchanged".into()),
            ("sc-user".into(), "unchanged".into())
        ]
    );
    assert!(again.passwords.is_empty(), "no new password on a re-run");
    assert_eq!(acl_list(&server), before);
    // The old password still works.
    login(server.port(), "sc-auth", &first.passwords["sc-auth"]).unwrap();

    // A hand edit is found and undone; a dry run shows it first.
    server.cmd(&["ACL", "SETUSER", "sc-auth", "~*", "+flushall"]);
    let d = apply(
        &server.url(),
        &Options {
            dry_run: true,
            ..Default::default()
        },
    );
    let auth = &d.nodes[0].users[0];
    assert_eq!(auth.action, "update");
    assert!(
        auth.diff.contains(&"keys: - ~*".to_owned()),
        "{:?}",
        auth.diff
    );
    assert!(
        auth.diff
            .iter()
            .any(|l| l.starts_with("commands: deny") && l.contains("flushall"))
    );
    let fixed = apply(&server.url(), &Options::default());
    assert_eq!(fixed.nodes[0].users[0].action, "update");
    assert_eq!(acl_list(&server), before);
}

#[test]
fn prune_removes_only_stale_sc_users_and_never_its_own() {
    let server = RedisServer::start();
    server.cmd(&[
        "ACL", "SETUSER", "sc-admin", "on", ">adminpw", "~*", "&*", "+@all",
    ]);
    server.cmd(&["ACL", "SETUSER", "sc-gone", "on", ">x", "~gone:*"]);
    server.cmd(&["ACL", "SETUSER", "legacy", "on", ">y", "~legacy:*"]);
    let url = support::acl::user_url(server.port(), "sc-admin", "adminpw");
    let kept = apply(&url, &Options::default());
    assert!(
        actions(&kept).contains(&("sc-gone".into(), "kept".into())),
        "{kept:?}"
    );
    let pruned = apply(
        &url,
        &Options {
            prune: true,
            ..Default::default()
        },
    );
    assert!(
        actions(&pruned).contains(&("sc-gone".into(), "delete".into())),
        "{pruned:?}"
    );
    let users = acl_list(&server).join("\n");
    assert!(!users.contains("sc-gone"), "{users}");
    for keep in [
        "user sc-admin",
        "user legacy",
        "user default",
        "user sc-auth",
        "user sc-user",
    ] {
        assert!(users.contains(keep), "{keep} missing: {users}");
    }
    // A service that would be the connecting user is refused outright.
    let cfg = services_config(&format!(
        "[[services]]\nname = \"admin\"\ntoken_sha256 = \"{}\"\nwrite = [\"admin\"]\n",
        "3".repeat(64)
    ));
    let e = provision(&cfg, &url, &Options::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("sc-admin") && e.contains("connects as"), "{e}");
}

#[test]
fn rotation_keeps_both_passwords_until_finished() {
    let server = RedisServer::start();
    let port = server.port();
    let old = apply(&server.url(), &Options::default()).passwords["sc-auth"].clone();
    let rot = Options {
        rotate: Some("auth".into()),
        ..Default::default()
    };
    let r = apply(&server.url(), &rot);
    let new = r.passwords["sc-auth"].clone();
    assert_eq!(
        r.passwords.len(),
        1,
        "only the rotated service gets a password"
    );
    login(port, "sc-auth", &old).unwrap();
    login(port, "sc-auth", &new).unwrap();
    let fin = Options {
        rotate: Some("auth".into()),
        finish: true,
        ..Default::default()
    };
    apply(&server.url(), &fin);
    assert!(
        login(port, "sc-auth", &old).is_err(),
        "the old password is gone"
    );
    login(port, "sc-auth", &new).unwrap();
    let cfg = services_config("");
    let e = provision(
        &cfg,
        &server.url(),
        &Options {
            rotate: Some("nobody".into()),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("nobody"), "{e}");
}

#[test]
fn no_acl_permission_names_the_user_and_the_command() {
    let server = RedisServer::start();
    server.cmd(&[
        "ACL",
        "SETUSER",
        "ops",
        "on",
        ">opspw",
        "~*",
        "&*",
        "+@all",
        "-acl|setuser",
    ]);
    let url = support::acl::user_url(server.port(), "ops", "opspw");
    let r = apply(&url, &Options::default());
    assert!(!r.ok);
    let u = &r.nodes[0].users[0];
    assert_eq!(u.action, "error");
    let msg = u.diff.join(" ");
    assert!(
        msg.contains("ACL SETUSER sc-auth") && msg.contains("\"ops\""),
        "{msg}"
    );
    assert!(msg.to_lowercase().contains("acl|setuser"), "{msg}");
}

#[test]
fn the_binary_prints_json_refuses_bad_names_and_fails_on_an_unreachable_node() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sharecache.toml");
    let text = format!(
        "[[services]]\nname = \"auth\"\ntoken_sha256 = \"{}\"\nwrite = [\"auth\"]\n",
        "1".repeat(64)
    );
    std::fs::write(&cfg, &text).unwrap();
    // `sharecache provision ARGS --config CFG`; `ok` also checks it succeeded.
    let provision = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_sharecache"))
            .arg("provision")
            .args(args)
            .arg("--config")
            .arg(&cfg)
            .output()
            .unwrap()
    };
    let ok = |args: &[&str]| {
        let out = provision(args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let out = ok(&["--json", "--url", &server.url()]);
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["nodes"][0]["users"][0]["action"], "create");
    let pw = j["passwords"]["sc-auth"].as_str().unwrap();
    login(server.port(), "sc-auth", pw).unwrap();
    let hash = format!("{:?}", server.cmd(&["ACL", "GETUSER", "sc-auth"]));
    assert!(!hash.contains(pw), "Redis holds only the hash");

    // New passwords can go to a 0600 file instead of the output.
    std::fs::write(
        &cfg,
        format!(
            "{text}[[services]]\nname = \"late\"\ntoken_sha256 = \"{}\"\nwrite = [\"late\"]\n",
            "5".repeat(64)
        ),
    )
    .unwrap();
    let pwfile = dir.path().join("passwords");
    let out = ok(&[
        "--url",
        &server.url(),
        "--password-file",
        pwfile.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let saved = std::fs::read_to_string(&pwfile).unwrap();
    let late_pw = saved.strip_prefix("sc-late ").unwrap().trim();
    assert!(!stdout.contains(late_pw), "{stdout}");
    assert!(stdout.contains("sc-auth: no change"), "{stdout}");
    login(server.port(), "sc-late", late_pw).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&pwfile).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    std::fs::write(&cfg, &text).unwrap();

    // The aclfile: 0600, the same rules, stable on a re-run.
    let aclfile = dir.path().join("users.acl");
    std::fs::write(&aclfile, "user default on nopass ~* &* +@all\n").unwrap();
    for _ in 0..2 {
        ok(&["--aclfile", aclfile.to_str().unwrap()]);
    }
    let acl = std::fs::read_to_string(&aclfile).unwrap();
    assert!(acl.starts_with("user default on nopass"), "{acl}");
    assert_eq!(acl.matches("user sc-auth ").count(), 1, "{acl}");
    let mode = std::fs::metadata(&aclfile).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // Redis loads it.
    let loaded = RedisServer::start_with(sharecache_testkit::RedisConfig {
        extra_args: vec!["--aclfile".into(), aclfile.display().to_string()],
        ..Default::default()
    });
    assert!(format!("{:?}", loaded.cmd(&["ACL", "LIST"])).contains("user sc-auth on"));

    // A bad ACL user name is a config error naming the line.
    std::fs::write(&cfg, format!("{text}acl_user = \"two words\"\n")).unwrap();
    let out = provision(&["--url", &server.url()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(":5:") && err.contains("acl_user"), "{err}");

    // Nothing listening: non-zero, and says where.
    std::fs::write(&cfg, &text).unwrap();
    let port = sharecache_testkit::free_port();
    let out = provision(&["--url", &format!("redis://127.0.0.1:{port}")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&port.to_string()));
}

#[test]
fn cluster_every_node_gets_the_users_and_keeps_them_through_a_failover() {
    let cluster = RedisCluster::start();
    let url = cluster.url();
    let r = apply(&url, &Options::default());
    assert!(r.ok, "{r:?}");
    assert_eq!(r.nodes.len(), 6);
    let pw = r.passwords["sc-auth"].clone();
    for n in cluster.nodes() {
        login(n.port(), "sc-auth", &pw).unwrap_or_else(|e| panic!("node {}: {e}", n.port()));
    }
    // Through the cluster client: its keys on every slot, nobody else's.
    let client = redis::cluster::ClusterClient::builder(
        cluster
            .nodes()
            .iter()
            .map(|n| support::acl::user_url(n.port(), "sc-auth", &pw)),
    )
    .build()
    .unwrap();
    let mut cc = client.get_connection().unwrap();
    for i in 0..20 {
        redis::cmd("SET")
            .arg(format!("auth:k{i}"))
            .arg(i)
            .query::<()>(&mut cc)
            .unwrap();
        assert!(
            redis::cmd("SET")
                .arg(format!("user:k{i}"))
                .arg(i)
                .query::<()>(&mut cc)
                .is_err()
        );
    }

    // A node that lost its user (a hand edit) is reported and repaired.
    let odd = cluster.replicas()[0];
    odd.cmd(&["ACL", "DELUSER", "sc-auth"]);
    let again = apply(&url, &Options::default());
    assert!(
        again.disagreements.iter().any(|d| d.contains("sc-auth")),
        "{again:?}"
    );
    login(odd.port(), "sc-auth", &pw).unwrap();
    let third = apply(&url, &Options::default());
    assert!(third.disagreements.is_empty(), "{third:?}");
    assert!(
        actions(&third).iter().all(|(_, a)| a == "unchanged"),
        "{third:?}"
    );

    // Failover: the promoted replica already has the user.
    let replica = cluster.replicas()[1];
    cluster.failover(replica);
    cluster
        .wait_until_master(replica, Duration::from_secs(30))
        .unwrap();
    let mut c = login(replica.port(), "sc-auth", &pw).unwrap();
    let key = (0..10_000)
        .map(|i| format!("auth:f{i}"))
        .find(|k| std::ptr::eq(cluster.master_for_slot(RedisCluster::slot_of(k)), replica))
        .expect("a key on the promoted node");
    ok(&mut c, &["SET", &key, "v"]);

    // A node that is down is reported; the others are still written.
    let down = cluster.replicas()[2];
    down.kill();
    let cfg = services_config(&format!(
        "[[services]]\nname = \"late\"\ntoken_sha256 = \"{}\"\nwrite = [\"late\"]\n",
        "4".repeat(64)
    ));
    let r = provision(&cfg, &url, &Options::default()).unwrap();
    assert!(!r.ok);
    let bad: Vec<_> = r.nodes.iter().filter(|n| n.error.is_some()).collect();
    assert_eq!(bad.len(), 1, "{r:?}");
    assert!(
        bad[0].node.ends_with(&format!(":{}", down.port())),
        "{:?}",
        bad[0]
    );
    for n in cluster.nodes().iter().filter(|n| n.port() != down.port()) {
        login(n.port(), "sc-late", &r.passwords["sc-late"]).unwrap();
    }
}

#[test]
fn sentinel_master_and_replica_get_the_users_and_keep_them_through_a_failover() {
    let s = sharecache_testkit::RedisSentinels::start("mymaster");
    let r = apply(&s.url(), &Options::default());
    assert!(r.ok, "{r:?}");
    assert_eq!(r.nodes.len(), 2, "{r:?}");
    let pw = r.passwords["sc-auth"].clone();
    let new_master = s.failover();
    let mut c = login(new_master, "sc-auth", &pw).unwrap();
    ok(&mut c, &["SET", "auth:after-failover", "v"]);
    denied(&mut c, &["SET", "user:after-failover", "v"]);
    let again = apply(&s.url(), &Options::default());
    assert!(
        actions(&again).iter().all(|(_, a)| a == "unchanged"),
        "{again:?}"
    );
}

/// The seeds' ioredis code (`keyPrefix: 'auth:'`, `setex` then `get`) through the
/// provisioned user. Needs node and `npm ci` in tests/node (scripts/test does both).
#[test]
fn ioredis_with_key_prefix_works_through_the_provisioned_user() {
    let server = RedisServer::start();
    let r = apply(&server.url(), &Options::default());
    let url = support::acl::user_url(server.port(), "sc-auth", &r.passwords["sc-auth"]);
    let j = support::node::run_node("ioredis_session.mjs", &[("REDIS_URL", &url)]);
    let key = j["key"].as_str().unwrap();
    assert!(key.starts_with("auth:session:"), "{j}");
    // The key is where sharecache's `auth` namespace reads it.
    assert!(
        server
            .cmd(&["GET", key])
            .text()
            .unwrap()
            .contains("\"userId\":42")
    );
}

#[test]
fn a_standalone_master_s_replicas_get_the_users_too() {
    let master = RedisServer::start();
    let replica = RedisServer::start_with(sharecache_testkit::RedisConfig {
        extra_args: vec![
            "--replicaof".into(),
            "127.0.0.1".into(),
            master.port().to_string(),
        ],
        ..Default::default()
    });
    // Bounded wait for the master to list its replica.
    let listed = (0..100).any(|_| {
        let info = format!("{:?}", master.cmd(&["INFO", "replication"]));
        let up = info.contains("connected_slaves:1");
        if !up {
            std::thread::sleep(Duration::from_millis(50));
        }
        up
    });
    assert!(listed, "the replica did not attach within 5 s");
    let r = apply(&master.url(), &Options::default());
    assert!(r.ok, "{r:?}");
    assert_eq!(r.nodes.len(), 2, "{r:?}");
    login(replica.port(), "sc-auth", &r.passwords["sc-auth"]).unwrap();
}

#[test]
fn the_key_prefix_and_acl_info_shape_the_rules() {
    let server = RedisServer::start();
    let mut cfg = support::acl::services_config("[backend]\nkey_prefix = \"app\"\n");
    cfg.services[1].acl_info = false;
    let r = provision(&cfg, &server.url(), &Options::default()).unwrap();
    let mut c = login(server.port(), "sc-auth", &r.passwords["sc-auth"]).unwrap();
    ok(&mut c, &["SET", "app/auth:k", "v"]);
    denied(&mut c, &["SET", "app:auth:k", "v"]);
    denied(&mut c, &["SET", "auth:k", "v"]);
    ok(&mut c, &["PUBLISH", "app/auth:events", "x"]);
    ok(&mut c, &["INFO"]);
    let mut u = login(server.port(), "sc-user", &r.passwords["sc-user"]).unwrap();
    ok(&mut u, &["SET", "app/user:k", "v"]);
    denied(&mut u, &["INFO"]);
}
