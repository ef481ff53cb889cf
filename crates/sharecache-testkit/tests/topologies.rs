//! The Redis Cluster and Sentinel topologies: they form, route keys, fail over, and leave
//! no process behind.

use std::path::Path;
use std::time::{Duration, Instant};

use sharecache_testkit::{
    ClusterConfig, RedisCluster, RedisSentinels, RedisServer, RespReply, SentinelConfig, command,
};

fn ok() -> RespReply {
    RespReply::Value("OK".into())
}

fn role(node: &RedisServer) -> String {
    match node.cmd(&["ROLE"]) {
        RespReply::Array(r) => r[0].text().unwrap().to_owned(),
        other => panic!("ROLE: {other:?}"),
    }
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Every pid of `servers`, asserting each process runs.
fn pids<'a>(servers: impl IntoIterator<Item = &'a RedisServer>) -> Vec<u32> {
    let pids: Vec<u32> = servers.into_iter().map(|s| s.pid().unwrap()).collect();
    assert!(pids.iter().all(|&p| alive(p)));
    pids
}

#[test]
fn cluster_routes_keys_and_fails_over_manually() {
    let t = Instant::now();
    let cluster = RedisCluster::start();
    eprintln!("cluster start: {:?}", t.elapsed());

    assert_eq!(cluster.nodes().len(), 6);
    assert_eq!(cluster.masters().len(), 3);
    assert_eq!(cluster.replicas().len(), 3);
    let seeds: Vec<String> = cluster.nodes()[..3]
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port()))
        .collect();
    assert_eq!(
        cluster.url(),
        format!("redis+cluster://{}", seeds.join(","))
    );
    for (i, master) in cluster.nodes()[..3].iter().enumerate() {
        assert_eq!(
            cluster.replica_of(master).port(),
            cluster.nodes()[i + 3].port()
        );
    }

    for key in [
        "foo",
        "bar",
        "{user1000}.following",
        "user:42",
        "a{}b",
        "éé",
    ] {
        let slot = RedisCluster::slot_of(key);
        let keyslot = cluster.nodes()[0].cmd(&["CLUSTER", "KEYSLOT", key]);
        assert_eq!(keyslot.text(), Some(slot.to_string().as_str()), "{key}");
        let master = cluster.master_for_slot(slot);
        assert_eq!(master.cmd(&["SET", key, "v"]), ok(), "{key}");
        let other = cluster
            .masters()
            .into_iter()
            .find(|m| m.port() != master.port())
            .unwrap();
        match other.cmd(&["GET", key]) {
            RespReply::Error(e) => {
                assert_eq!(e, format!("MOVED {slot} 127.0.0.1:{}", master.port()))
            }
            reply => panic!("a master that does not serve {key} answered {reply:?}"),
        }
    }

    let slot = RedisCluster::slot_of("foo");
    let old = cluster.master_for_slot(slot);
    let replica = cluster.replica_of(old);
    let t = Instant::now();
    cluster.failover(replica);
    eprintln!("cluster manual failover: {:?}", t.elapsed());
    assert_eq!(role(replica), "master");
    assert_eq!(role(old), "slave");
    assert_eq!(cluster.master_for_slot(slot).port(), replica.port());
    assert_eq!(cluster.replica_of(replica).port(), old.port());
    assert_eq!(replica.cmd(&["GET", "foo"]).text(), Some("v"));
    assert_eq!(cluster.masters().len(), 3);
    assert_eq!(cluster.replicas().len(), 3);

    let pids = pids(cluster.nodes());
    drop(cluster);
    assert!(pids.iter().all(|&p| !alive(p)), "drop ends every node");
}

#[test]
fn cluster_with_password_replaces_a_paused_master() {
    let t = Instant::now();
    let cluster = RedisCluster::start_with(ClusterConfig {
        password: Some("s3cr@t pw".into()),
        ..Default::default()
    });
    eprintln!("cluster start (password): {:?}", t.elapsed());
    let url = cluster.url();
    assert!(
        url.starts_with("redis+cluster://:s3cr%40t%20pw@127.0.0.1:"),
        "{url}"
    );
    match command(cluster.nodes()[0].port(), &["PING"]).unwrap() {
        RespReply::Error(e) => assert!(e.starts_with("NOAUTH"), "{e}"),
        other => panic!("PING without a password: {other:?}"),
    }

    let slot = RedisCluster::slot_of("k");
    let master = cluster.master_for_slot(slot);
    let replica = cluster.replica_of(master);
    assert_eq!(master.cmd(&["SET", "k", "v"]), ok());
    assert_eq!(master.cmd(&["WAIT", "1", "5000"]).text(), Some("1"));

    master.pause();
    let t = Instant::now();
    cluster
        .wait_until_master(replica, Duration::from_secs(20))
        .unwrap();
    eprintln!("cluster automatic failover: {:?}", t.elapsed());
    assert_eq!(cluster.master_for_slot(slot).port(), replica.port());
    assert_eq!(replica.cmd(&["GET", "k"]).text(), Some("v"));
    // The paused node answers nothing, so it is neither master nor replica.
    assert_eq!(cluster.masters().len(), 3);
    assert_eq!(cluster.replicas().len(), 2);

    master.resume();
    let t = Instant::now();
    cluster.wait_healthy(Duration::from_secs(20)).unwrap();
    eprintln!("cluster healthy after resume: {:?}", t.elapsed());
    assert_eq!(role(master), "slave");
    assert_eq!(cluster.replica_of(replica).port(), master.port());

    // A restarted node keeps its identity (`<dir>/nodes.conf`) and rejoins.
    assert!(master.dir().join("nodes.conf").exists());
    master.restart();
    let t = Instant::now();
    cluster.wait_healthy(Duration::from_secs(20)).unwrap();
    eprintln!("cluster healthy after a replica restart: {:?}", t.elapsed());
    assert_eq!(cluster.replica_of(replica).port(), master.port());
    assert_eq!(cluster.masters().len(), 3);
    assert_eq!(cluster.replicas().len(), 3);
}

#[test]
fn sentinels_fail_over_on_request() {
    let t = Instant::now();
    let s = RedisSentinels::start("mymaster");
    eprintln!("sentinels start: {:?}", t.elapsed());
    let hosts: Vec<String> = s
        .sentinels()
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port()))
        .collect();
    assert_eq!(
        s.url(),
        format!("redis+sentinel://{}/mymaster", hosts.join(","))
    );
    let (first, second) = (&s.servers()[0], &s.servers()[1]);
    assert_eq!(s.master().port(), first.port());
    assert_eq!(s.replica().port(), second.port());
    assert_eq!(s.master().cmd(&["SET", "k", "v"]), ok());
    s.wait_in_sync(Duration::from_secs(10)).unwrap();
    assert_eq!(second.cmd(&["GET", "k"]).text(), Some("v"));

    let t = Instant::now();
    let new = s.failover();
    eprintln!("sentinel failover: {:?}", t.elapsed());
    assert_eq!(new, second.port());
    assert_eq!(s.master().port(), second.port());
    assert_eq!(role(second), "master");
    assert_eq!(s.replica().port(), first.port());
    assert_eq!(second.cmd(&["GET", "k"]).text(), Some("v"));
    // The old master turning into a replica takes ~10 s more; the paused-master test
    // below waits for it.

    let pids = pids(s.servers().iter().chain(s.sentinels()));
    drop(s);
    assert!(pids.iter().all(|&p| !alive(p)), "drop ends every process");
}

#[test]
fn sentinels_with_passwords_replace_a_paused_master() {
    let t = Instant::now();
    let s = RedisSentinels::start_with(SentinelConfig {
        master_name: "cache".into(),
        password: Some("data pw".into()),
        sentinel_password: Some("sent&pw".into()),
        ..Default::default()
    });
    eprintln!("sentinels start (passwords): {:?}", t.elapsed());
    let url = s.url();
    assert!(
        url.starts_with("redis+sentinel://:data%20pw@127.0.0.1:")
            && url.ends_with("/cache?sentinel_password=sent%26pw"),
        "{url}"
    );
    for port in [s.sentinels()[0].port(), s.servers()[0].port()] {
        match command(port, &["PING"]).unwrap() {
            RespReply::Error(e) => assert!(e.starts_with("NOAUTH"), "{e}"),
            other => panic!("PING without a password on {port}: {other:?}"),
        }
    }

    let old = s.master();
    assert_eq!(old.cmd(&["SET", "k", "v"]), ok());
    assert_eq!(old.cmd(&["WAIT", "1", "5000"]).text(), Some("1"));
    old.pause();
    let t = Instant::now();
    let new = s.wait_master_change(old.port(), Duration::from_secs(20));
    eprintln!("sentinel automatic failover: {:?}", t.elapsed());
    assert_eq!(new, s.servers()[1].port());
    assert_eq!(s.master().cmd(&["GET", "k"]).text(), Some("v"));

    assert_eq!(s.master().cmd(&["SET", "k2", "v2"]), ok());

    old.resume();
    let t = Instant::now();
    s.wait_in_sync(Duration::from_secs(20)).unwrap();
    eprintln!("paused master back as a replica: {:?}", t.elapsed());
    assert_eq!(role(old), "slave");
    assert_eq!(old.cmd(&["GET", "k2"]).text(), Some("v2"));
    // The sentinels' CONFIG REWRITE keeps the new role across a restart.
    let conf = std::fs::read_to_string(old.dir().join("redis.conf")).unwrap();
    assert!(
        conf.contains(&format!("replicaof 127.0.0.1 {new}")),
        "{conf}"
    );
}

#[test]
fn a_panicking_test_leaves_no_process() {
    let mut pids = Vec::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let s = RedisSentinels::start("m");
        pids.extend(self::pids(s.servers().iter().chain(s.sentinels())));
        s.master().pause();
        panic!("test failure with a paused master");
    }));
    assert!(result.is_err());
    assert_eq!(pids.len(), 5);
    assert!(
        pids.iter().all(|&p| !alive(p)),
        "unwinding ends every process"
    );
}
