//! `sharecache export` and `sharecache import`, run as the real binary against real
//! redis-server processes from the testkit: a round trip of every type (a stream with a
//! consumer group and pending entries included) with millisecond TTLs, 100k keys on a
//! standalone Redis and on a 6-node Cluster (with a key prefix), under another namespace
//! with `--as`; damaged files (truncated, a flipped byte, a newer version) refused before
//! the target is even connected to; each conflict policy; keys whose deadline passed
//! (standalone and Cluster); and the export's peak memory against its key count.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sharecache_testkit::{RedisCluster, RedisServer};
use support::cli::{report, run, stderr};

/// A Redis the test reads and writes below the tool: one server, or every master of a
/// cluster (each key on the node of its slot).
enum Side<'a> {
    One(&'a RedisServer),
    Cluster(&'a RedisCluster),
}

fn conn(url: &str) -> redis::Connection {
    redis::Client::open(url)
        .unwrap()
        .get_connection()
        .expect("connect")
}

impl Side<'_> {
    fn url(&self) -> String {
        match self {
            Side::One(s) => s.url(),
            Side::Cluster(c) => c.url(),
        }
    }

    /// The servers that hold keys.
    fn masters(&self) -> Vec<&RedisServer> {
        match self {
            Side::One(s) => vec![*s],
            Side::Cluster(c) => c.masters(),
        }
    }

    fn master_of(&self, key: &str) -> &RedisServer {
        match self {
            Side::One(s) => s,
            Side::Cluster(c) => c.master_for_slot(RedisCluster::slot_of(key)),
        }
    }

    /// The port of the master serving each slot (one entry on a standalone server), read
    /// once: asking the cluster per key costs a connection to every node per key.
    fn slot_ports(&self) -> Vec<u16> {
        match self {
            Side::One(s) => vec![s.port()],
            Side::Cluster(c) => {
                let mut ports = vec![0u16; 16384];
                let slots: Vec<(u16, u16, u16)> = redis::cmd("CLUSTER")
                    .arg("SLOTS")
                    .query::<Vec<redis::Value>>(&mut conn(&c.masters()[0].url()))
                    .unwrap()
                    .into_iter()
                    .map(|row| {
                        let redis::Value::Array(r) = row else {
                            panic!("CLUSTER SLOTS: {row:?}")
                        };
                        let (redis::Value::Int(a), redis::Value::Int(b)) = (&r[0], &r[1]) else {
                            panic!("CLUSTER SLOTS: {r:?}")
                        };
                        let redis::Value::Array(m) = &r[2] else {
                            panic!("CLUSTER SLOTS: {r:?}")
                        };
                        let redis::Value::Int(port) = m[1] else {
                            panic!("CLUSTER SLOTS: {m:?}")
                        };
                        (*a as u16, *b as u16, port as u16)
                    })
                    .collect();
                for (a, b, port) in slots {
                    ports[a as usize..=b as usize].fill(port);
                }
                assert!(ports.iter().all(|&p| p != 0), "a slot without a master");
                ports
            }
        }
    }

    /// The port of the master of `key`, from [`Side::slot_ports`].
    fn port_of(ports: &[u16], key: &str) -> u16 {
        if ports.len() == 1 {
            ports[0]
        } else {
            ports[RedisCluster::slot_of(key) as usize]
        }
    }

    /// Runs single-key commands, each on the node of its key, pipelined per node.
    fn run(&self, cmds: Vec<(String, redis::Cmd)>) {
        let ports = self.slot_ports();
        let mut per_node: BTreeMap<u16, (redis::Connection, redis::Pipeline)> = BTreeMap::new();
        for (key, cmd) in cmds {
            let port = Self::port_of(&ports, &key);
            let (_, pipe) = per_node
                .entry(port)
                .or_insert_with(|| (conn(&format!("redis://127.0.0.1:{port}")), redis::pipe()));
            pipe.add_command(cmd).ignore();
        }
        for (_, (mut c, pipe)) in per_node {
            let () = pipe.query(&mut c).expect("seed commands");
        }
    }

    fn dbsize(&self) -> u64 {
        self.masters()
            .iter()
            .map(|m| {
                let n: u64 = redis::cmd("DBSIZE").query(&mut conn(&m.url())).unwrap();
                n
            })
            .sum()
    }

    fn pexpiretime(&self, key: &str) -> i64 {
        redis::cmd("PEXPIRETIME")
            .arg(key)
            .query(&mut conn(&self.master_of(key).url()))
            .unwrap()
    }

    fn get(&self, key: &str) -> Option<String> {
        redis::cmd("GET")
            .arg(key)
            .query(&mut conn(&self.master_of(key).url()))
            .unwrap()
    }
}

/// `cmd!("SET", key, value)`: a command with its arguments.
macro_rules! cmd {
    ($name:expr $(, $arg:expr)* $(,)?) => {{
        let mut c = redis::cmd($name);
        $(c.arg($arg);)*
        c
    }};
}

/// `len` pseudo-random hex digits from `seed` (xorshift): values that neither Redis's LZF
/// in DUMP nor the file's LZ4 can shrink, so their size is the memory they take.
fn noise(seed: u64, len: usize) -> String {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from_digit((x & 15) as u32, 16).unwrap()
        })
        .collect()
}

/// Fills namespace `head` (`[prefix:]ns:`) with `strings` strings of `value_len`
/// incompressible bytes (two in three with a TTL
/// of an odd number of milliseconds), a hash, a list, a set, a sorted set, a stream with a
/// consumer group and two pending entries, and the keys the coordination primitives
/// leave (a lock, a fence counter, a session, a queue stream): all are just keys.
fn seed(side: &Side, head: &str, strings: usize, value_len: usize) {
    let k = |s: &str| format!("{head}{s}");
    let mut cmds = Vec::new();
    for i in 0..strings {
        let key = k(&format!("s:{i}"));
        cmds.push((key.clone(), cmd!("SET", &key, noise(i as u64, value_len))));
        if i % 3 != 0 {
            let ttl = 600_000 + i as i64 * 7 + 3;
            cmds.push((key.clone(), cmd!("PEXPIRE", &key, &ttl)));
        }
    }
    let h = k("h:1");
    cmds.push((h.clone(), cmd!("HSET", &h, &"a", &"1", &"b", &"2")));
    cmds.push((h.clone(), cmd!("PEXPIRE", &h, &900_123)));
    let l = k("l:1");
    cmds.push((l.clone(), cmd!("RPUSH", &l, &"x", &"y", &"z", &"x")));
    let set = k("set:1");
    // Above the listpack limit: a hash-table set, whose DUMP order RESTORE may change.
    let members: Vec<String> = (0..300).map(|i| format!("m{i}")).collect();
    cmds.push((set.clone(), cmd!("SADD", &set, &members)));
    let z = k("z:1");
    cmds.push((
        z.clone(),
        cmd!("ZADD", &z, &1.5, &"one", &2.25, &"two", &-3.0, &"neg"),
    ));
    cmds.push((z.clone(), cmd!("PEXPIRE", &z, &700_001)));
    let st = k("st:1");
    for i in 1..=5 {
        cmds.push((
            st.clone(),
            cmd!("XADD", &st, &format!("{i}-0"), &"f", &format!("e{i}")),
        ));
    }
    cmds.push((st.clone(), cmd!("XGROUP", &"CREATE", &st, &"g1", &"0")));
    cmds.push((
        st.clone(),
        cmd!(
            "XREADGROUP",
            "GROUP",
            "g1",
            "c1",
            "COUNT",
            2,
            "STREAMS",
            &st,
            ">"
        ),
    ));
    let lock = k("lock:room:1");
    // Not 30 s as a live lock would have: the round trip of 100k keys on a Cluster takes
    // about that long, and a key expiring mid-run is restored but left out of the
    // read-back (within the tolerance of its deadline), so `verified` came out one short.
    cmds.push((
        lock.clone(),
        cmd!("SET", &lock, &"token-1", &"PX", &(SHORTEST_TTL_MS + 1)),
    ));
    let fence = k("fence:room:1");
    cmds.push((fence.clone(), cmd!("SET", &fence, &41)));
    let sess = k("session:abc");
    cmds.push((
        sess.clone(),
        cmd!("SET", &sess, &"sealed", &"PX", &86_400_000),
    ));
    let q = k("queue:email");
    cmds.push((q.clone(), cmd!("XADD", &q, &"*", &"job", &"{}")));
    cmds.push((q.clone(), cmd!("XGROUP", &"CREATE", &q, &"workers", &"0")));
    side.run(cmds);
}

/// Keys [`seed`] writes besides its strings.
const OTHERS: usize = 9;

/// Every TTL [`seed`] gives is longer than this (the strings' start at 600 010 ms, the
/// lock's is this plus one), so a round trip that ends within it sees no key expire: the
/// import restores and reads back every key, and its counts are exact.
const SHORTEST_TTL_MS: u64 = 600_000;

/// The import's default `--ttl-tolerance-ms`: verify leaves out a key whose deadline is
/// this close.
const TOLERANCE_MS: u64 = 1000;

/// Fails, saying why, once a round trip has run so long that a seeded key may have
/// expired (or come within the tolerance of its deadline), after which the exact counts
/// it asserts no longer hold.
fn within_the_shortest_ttl(seeded: Instant, what: &str) {
    let limit = Duration::from_millis(SHORTEST_TTL_MS - TOLERANCE_MS);
    assert!(
        seeded.elapsed() < limit,
        "{what} ended {:?} after the seed, past the seed's shortest TTL less the verify \
         tolerance ({limit:?}): keys may have expired mid-run",
        seeded.elapsed()
    );
}

/// What one key holds, read by type (a set's and a hash's members sorted), and its
/// expiry time (PEXPIRETIME).
type Content = (String, String, i64);

fn read_value(c: &mut redis::Connection, key: &str, ty: &str) -> String {
    let q = |c: &mut redis::Connection, cmd: redis::Cmd| -> redis::Value { cmd.query(c).unwrap() };
    let sorted = |v: redis::Value| {
        let mut items: Vec<String> = match v {
            redis::Value::Array(a) | redis::Value::Set(a) => {
                a.iter().map(|x| format!("{x:?}")).collect()
            }
            other => vec![format!("{other:?}")],
        };
        items.sort();
        items.join(",")
    };
    match ty {
        "string" => format!("{:?}", q(c, cmd!("GET", &key))),
        "list" => format!("{:?}", q(c, cmd!("LRANGE", &key, &0, &-1))),
        "hash" => {
            let pairs: Vec<(String, String)> = cmd!("HGETALL", &key).query(c).unwrap();
            let mut pairs = pairs;
            pairs.sort();
            format!("{pairs:?}")
        }
        "set" => sorted(q(c, cmd!("SMEMBERS", &key))),
        "zset" => format!("{:?}", q(c, cmd!("ZRANGE", &key, &0, &-1, &"WITHSCORES"))),
        "stream" => {
            let entries = q(c, cmd!("XRANGE", &key, &"-", &"+"));
            let groups: Vec<redis::Value> = cmd!("XINFO", &"GROUPS", &key).query(c).unwrap();
            let mut g = Vec::new();
            for group in groups {
                let redis::Value::Array(f) = group else {
                    panic!("XINFO GROUPS: {group:?}")
                };
                // Name, consumers, pending, last delivered id, entries read; not lag-free
                // idle times.
                let fields: Vec<String> = f
                    .chunks(2)
                    .filter(|p| {
                        let name = format!("{:?}", p[0]);
                        !name.contains("idle") && !name.contains("lag")
                    })
                    .map(|p| format!("{:?}={:?}", p[0], p[1]))
                    .collect();
                g.push(fields.join(";"));
                let name = match &f[1] {
                    redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                    other => format!("{other:?}"),
                };
                let pending = q(c, cmd!("XPENDING", &key, &name, &"-", &"+", &100));
                // Entry id, consumer, idle ms, deliveries: the idle time restarts.
                if let redis::Value::Array(rows) = pending {
                    for row in rows {
                        if let redis::Value::Array(r) = row {
                            g.push(format!("pending {:?} {:?} {:?}", r[0], r[1], r[3]));
                        }
                    }
                }
            }
            format!("{entries:?} groups {g:?}")
        }
        other => panic!("{key}: unexpected type {other}"),
    }
}

/// Every key under `head` on `side`, by its suffix: type, content, expiry time.
fn snapshot(side: &Side, head: &str) -> BTreeMap<String, Content> {
    let mut out = BTreeMap::new();
    for m in side.masters() {
        let mut c = conn(&m.url());
        // SCAN pages of 1000 (the iterator's default of 10 is a round trip per 10 keys of
        // the whole keyspace, both namespaces' on a shared cluster).
        let (mut keys, mut cursor) = (Vec::<String>::new(), 0u64);
        loop {
            let (next, page): (u64, Vec<String>) =
                cmd!("SCAN", &cursor, "MATCH", format!("{head}*"), "COUNT", 1000)
                    .query(&mut c)
                    .unwrap();
            keys.extend(page);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        for chunk in keys.chunks(2000) {
            let mut p = redis::pipe();
            for k in chunk {
                p.cmd("TYPE").arg(k).cmd("PEXPIRETIME").arg(k);
            }
            let meta: Vec<(String, i64)> = {
                let flat: Vec<redis::Value> = p.query(&mut c).unwrap();
                flat.chunks(2)
                    .map(|x| {
                        let ty = match &x[0] {
                            redis::Value::SimpleString(s) => s.clone(),
                            other => format!("{other:?}"),
                        };
                        let redis::Value::Int(e) = x[1] else {
                            panic!("PEXPIRETIME: {:?}", x[1])
                        };
                        (ty, e)
                    })
                    .collect()
            };
            // Strings (nearly all of them) in one pipeline; the rest key by key.
            let strings: Vec<&String> = chunk
                .iter()
                .zip(&meta)
                .filter(|(_, (t, _))| t == "string")
                .map(|(k, _)| k)
                .collect();
            let mut p = redis::pipe();
            for k in &strings {
                p.cmd("GET").arg(*k);
            }
            let values: Vec<redis::Value> = p.query(&mut c).unwrap();
            let mut values = values.into_iter();
            for (k, (ty, e)) in chunk.iter().zip(meta) {
                let v = if ty == "string" {
                    format!("{:?}", values.next().unwrap())
                } else {
                    read_value(&mut c, k, &ty)
                };
                out.insert(k[head.len()..].to_owned(), (ty, v, e));
            }
        }
    }
    out
}

/// A temporary directory for export files.
fn dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Exports `ns` of `from` to `file`; asserts success and returns the report.
fn export(from: &str, ns: &str, file: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![ns, "--from", from, "--to", path_str(file), "--json"];
    args.extend_from_slice(extra);
    let out = run("export", &args);
    assert!(out.status.success(), "export: {}", stderr(&out));
    let r = report(&out);
    assert_eq!(r["mode"], "export", "{r}");
    r
}

fn import(file: &Path, to: &str, extra: &[&str]) -> Output {
    let mut args = vec![path_str(file), "--to", to, "--json"];
    args.extend_from_slice(extra);
    run("import", &args)
}

fn n(r: &serde_json::Value, field: &str) -> u64 {
    r[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no {field} in {r}"))
}

/// Export `app` (beside `apple` and `other`, which must stay behind), import it `--as
/// copy` into `to`, and compare every key.
fn round_trip(from: &Side, to: &Side, strings: usize, prefix: Option<&str>) {
    let head = |ns: &str| sharecache::key::namespace_head(prefix, ns);
    let seeded = Instant::now();
    seed(from, &head("app"), strings, 40);
    eprintln!("seed of {strings} strings took {:?}", seeded.elapsed());
    // A namespace whose name starts with `app`, and another one: not exported.
    seed(from, &head("apple"), 50, 8);
    seed(from, "other:", 50, 8);
    let to_before = to.dbsize();
    let dir = dir();
    let file = dir.path().join("app.scxp");
    let prefix_args: Vec<&str> = prefix.map(|p| vec!["--key-prefix", p]).unwrap_or_default();
    let started = Instant::now();
    let r = export(&from.url(), "app", &file, &prefix_args);
    eprintln!("export of {strings} strings took {:?}", started.elapsed());
    let total = (strings + OTHERS) as u64;
    assert_eq!(n(&r, "scanned"), total, "{r}");
    assert_eq!(n(&r, "written"), total, "{r}");
    assert_eq!(n(&r, "failed"), 0, "{r}");
    assert!(n(&r, "file_bytes") > 0 && n(&r, "bytes") > 0, "{r}");
    assert!(
        !dir.path().join("app.scxp.tmp").exists(),
        "the temporary file is renamed"
    );
    let started = Instant::now();
    let mut args = vec!["--as", "copy"];
    args.extend_from_slice(&prefix_args);
    let out = import(&file, &to.url(), &args);
    eprintln!("import of {strings} strings took {:?}", started.elapsed());
    assert!(out.status.success(), "import: {}", stderr(&out));
    let r = report(&out);
    within_the_shortest_ttl(seeded, "the import");
    assert_eq!(r["mode"], "import", "{r}");
    assert_eq!(r["namespace"], "copy", "{r}");
    assert_eq!(r["from_namespace"], "app", "{r}");
    assert_eq!(n(&r, "scanned"), total, "{r}");
    assert_eq!(n(&r, "restored"), total, "{r}");
    assert_eq!(n(&r, "verified"), total, "{r}");
    assert_eq!(r["differences"]["total"], 0, "{r}");
    for f in ["skipped_expired", "conflicts", "failed", "unchanged"] {
        assert_eq!(n(&r, f), 0, "{f}: {r}");
    }
    // Only the namespace came along.
    assert_eq!(
        to.dbsize() - to_before,
        total,
        "keys of other namespaces were imported"
    );
    let started = Instant::now();
    let (a, b) = (snapshot(from, &head("app")), snapshot(to, &head("copy")));
    eprintln!("snapshots of both sides took {:?}", started.elapsed());
    within_the_shortest_ttl(seeded, "the snapshots");
    assert_eq!(a.len() as u64, total);
    assert_eq!(
        a.values().filter(|(_, _, e)| *e > 0).count(),
        strings - strings.div_ceil(3) + 2 + 2,
        "the seed's TTLs"
    );
    for (k, v) in &a {
        // The expiry time is the exported deadline to the millisecond (ABSTTL).
        assert_eq!(b.get(k), Some(v), "{k}");
    }
    assert_eq!(a, b);
    let st = &b["st:1"].1;
    assert!(st.contains("g1") && st.contains("pending"), "{st}");
}

/// Keys whose deadline passes between the export and the import are never restored and
/// are counted as `skipped_expired`; every other key is restored and read back, and
/// nothing else differs: `restored + skipped_expired == scanned`, `verified == restored`.
fn expired_keys_are_skipped(side: &Side, prefix: Option<&str>) {
    let head = |ns: &str| sharecache::key::namespace_head(prefix, ns);
    let (src, dst) = (head("brief"), head("brief2"));
    let (short, long, forever) = (20, 20, 5);
    let short_ms = 5000;
    let name = |h: &str, kind: &str, i: usize| format!("{h}{kind}:{i}");
    let mut cmds = Vec::new();
    for i in 0..short {
        let k = name(&src, "short", i);
        cmds.push((k.clone(), cmd!("SET", &k, &i, &"PX", &short_ms)));
    }
    for i in 0..long {
        let k = name(&src, "long", i);
        let px = SHORTEST_TTL_MS + i as u64;
        cmds.push((k.clone(), cmd!("SET", &k, &i, &"PX", &px)));
    }
    for i in 0..forever {
        let k = name(&src, "forever", i);
        cmds.push((k.clone(), cmd!("SET", &k, &i)));
    }
    let set_at = Instant::now();
    side.run(cmds);
    let dir = dir();
    let file = dir.path().join("brief.scxp");
    let prefix_args: Vec<&str> = prefix.map(|p| vec!["--key-prefix", p]).unwrap_or_default();
    let r = export(&side.url(), "brief", &file, &prefix_args);
    assert!(
        set_at.elapsed() < Duration::from_millis(short_ms - TOLERANCE_MS),
        "the export ended {:?} after the seed, too late to hold every short key",
        set_at.elapsed()
    );
    let total = (short + long + forever) as u64;
    assert_eq!(
        n(&r, "written"),
        total,
        "exported while the short keys lived: {r}"
    );
    // Wait, bounded, until every short key has expired on the source.
    let deadline = Instant::now() + Duration::from_secs(30);
    while (0..short).any(|i| side.get(&name(&src, "short", i)).is_some()) {
        assert!(Instant::now() < deadline, "the short keys did not expire");
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = side.dbsize();
    let mut args = vec!["--as", "brief2"];
    args.extend_from_slice(&prefix_args);
    let out = import(&file, &side.url(), &args);
    assert!(out.status.success(), "import: {}", stderr(&out));
    let r = report(&out);
    let live = (long + forever) as u64;
    assert_eq!(n(&r, "scanned"), total, "{r}");
    assert_eq!(n(&r, "skipped_expired"), short as u64, "{r}");
    assert_eq!(n(&r, "restored"), live, "{r}");
    assert_eq!(n(&r, "verified"), live, "{r}");
    assert_eq!(r["differences"]["total"], 0, "{r}");
    for f in ["conflicts", "failed", "unchanged"] {
        assert_eq!(n(&r, f), 0, "{f}: {r}");
    }
    assert_eq!(
        side.dbsize() - before,
        live,
        "only the live keys were written"
    );
    for i in 0..short {
        assert_eq!(
            side.get(&name(&dst, "short", i)),
            None,
            "an expired key came back"
        );
    }
    for (kind, count) in [("long", long), ("forever", forever)] {
        for i in 0..count {
            let (a, b) = (name(&src, kind, i), name(&dst, kind, i));
            assert_eq!(side.get(&b), Some(i.to_string()), "{b}");
            assert_eq!(side.pexpiretime(&b), side.pexpiretime(&a), "{b}");
        }
    }
}

#[test]
fn round_trip_of_100k_keys_of_every_type_on_standalone() {
    let (from, to) = (RedisServer::start(), RedisServer::start());
    let started = Instant::now();
    round_trip(&Side::One(&from), &Side::One(&to), 100_000, None);
    eprintln!("100k round trip: {:?}", started.elapsed());
}

/// A namespace with nothing in it (most often a misspelt name or a missing prefix) is
/// exported, but the command says so.
#[test]
fn exporting_an_empty_namespace_says_so() {
    let from = RedisServer::start();
    from.cmd(&["SET", "auth:k", "1"]);
    let dir = dir();
    let file = dir.path().join("e.scxp");
    let out = run(
        "export",
        &[
            "atuh",
            "--from",
            &from.url(),
            "--to",
            path_str(&file),
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(n(&report(&out), "written"), 0);
    let err = stderr(&out);
    assert!(
        err.contains("nothing of namespace atuh") && err.contains("--key-prefix"),
        "{err}"
    );
}

#[test]
fn round_trip_on_a_cluster_with_a_key_prefix() {
    let cluster = RedisCluster::start();
    let side = Side::Cluster(&cluster);
    let started = Instant::now();
    round_trip(&side, &side, 100_000, Some("tenant1"));
    eprintln!("100k round trip on a cluster: {:?}", started.elapsed());
    expired_keys_are_skipped(&side, Some("tenant1"));
}

/// A small export of `app` (every type) and a target that already holds keys.
fn small_export() -> (RedisServer, tempfile::TempDir, std::path::PathBuf) {
    let from = RedisServer::start();
    seed(&Side::One(&from), "app:", 200, 16);
    let dir = dir();
    let file = dir.path().join("app.scxp");
    export(&from.url(), "app", &file, &[]);
    (from, dir, file)
}

fn info_field(c: &mut redis::Connection, section: &str, field: &str) -> u64 {
    let info: String = redis::cmd("INFO").arg(section).query(c).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in INFO {section}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn damaged_or_newer_files_are_refused_before_anything_is_written() {
    let (_from, dir, file) = small_export();
    let good = std::fs::read(&file).unwrap();
    let to = RedisServer::start();
    to.cmd(&["SET", "copy:s:1", "kept"]);
    // One connection reads the target before and after: an import that refuses the file
    // never even connects.
    let mut watch = conn(&to.url());
    let connections_before = info_field(&mut watch, "stats", "total_connections_received");
    let size_before: u64 = redis::cmd("DBSIZE").query(&mut watch).unwrap();
    let mid = good.len() / 2;
    let mut flipped = good.clone();
    flipped[mid] ^= 0x01;
    let mut header = good.clone();
    header[12] ^= 0x01; // a byte of the creation time: covered by the trailer's checksum
    let mut newer = good.clone();
    newer[4..6].copy_from_slice(&2u16.to_le_bytes());
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated", good[..mid].to_vec(), "truncated"),
        ("no trailer", good[..good.len() - 4].to_vec(), "truncated"),
        ("a flipped byte in the middle", flipped, "checksum"),
        ("a changed header", header, "checksum"),
        (
            "a newer version",
            newer,
            "version 2, newer than this sharecache",
        ),
        (
            "not an export",
            b"hello world".to_vec(),
            "not a sharecache export",
        ),
    ];
    for (name, bytes, says) in cases {
        let bad = dir.path().join("bad.scxp");
        std::fs::write(&bad, &bytes).unwrap();
        let out = import(
            &bad,
            &to.url(),
            &["--as", "copy", "--on-conflict", "replace"],
        );
        assert!(!out.status.success(), "{name}: accepted");
        let err = stderr(&out);
        assert!(
            err.contains(says),
            "{name}: the error should say {says:?}: {err}"
        );
        assert!(err.contains("nothing was written"), "{name}: {err}");
        let size: u64 = redis::cmd("DBSIZE").query(&mut watch).unwrap();
        assert_eq!(size, size_before, "{name}: the target changed");
    }
    assert_eq!(
        info_field(&mut watch, "stats", "total_connections_received"),
        connections_before,
        "an import of a refused file connected to the target"
    );
    let kept: String = redis::cmd("GET").arg("copy:s:1").query(&mut watch).unwrap();
    assert_eq!(kept, "kept");
    // The good file goes in (the check above is not refusing everything).
    let out = import(
        &file,
        &to.url(),
        &["--as", "copy", "--on-conflict", "replace"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let size: u64 = redis::cmd("DBSIZE").query(&mut watch).unwrap();
    assert_eq!(size, (200 + OTHERS) as u64);
}

#[test]
fn import_over_existing_keys_under_each_conflict_policy() {
    let from = RedisServer::start();
    from.cmd(&["MSET", "app:s:1", "a", "app:s:2", "b", "app:s:3", "c"]);
    from.cmd(&["HSET", "app:h:1", "f", "v"]);
    let dir = dir();
    let file = dir.path().join("app.scxp");
    export(&from.url(), "app", &file, &[]);
    let to = RedisServer::start();
    let t = Side::One(&to);
    // `copy:s:1` holds another value (a conflict), `copy:s:2` the same (unchanged).
    let reset = || {
        to.cmd(&["FLUSHALL"]);
        to.cmd(&["MSET", "copy:s:1", "X", "copy:s:2", "b", "unrelated", "u"]);
    };
    let conflicts = |r: &serde_json::Value| -> Vec<String> {
        r["conflict_keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect()
    };

    reset();
    let out = import(&file, &to.url(), &["--as", "copy"]);
    assert!(!out.status.success(), "fail is the default and stops");
    let r = report(&out);
    assert_eq!(conflicts(&r), ["copy:s:1"], "{r}");
    assert_eq!(n(&r, "restored"), 0, "{r}");
    assert!(
        stderr(&out).contains("nothing was written"),
        "{}",
        stderr(&out)
    );
    assert_eq!(t.dbsize(), 3, "fail wrote something");
    assert_eq!(t.get("copy:s:1").as_deref(), Some("X"));
    assert_eq!(t.get("copy:s:3"), None);

    reset();
    let out = import(&file, &to.url(), &["--as", "copy", "--on-conflict", "skip"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = report(&out);
    assert_eq!(conflicts(&r), ["copy:s:1"], "{r}");
    assert_eq!(
        (n(&r, "restored"), n(&r, "unchanged"), n(&r, "conflicts")),
        (2, 1, 1),
        "{r}"
    );
    assert_eq!(
        r["differences"]["total"], 0,
        "the skipped key is not a difference: {r}"
    );
    assert_eq!(
        t.get("copy:s:1").as_deref(),
        Some("X"),
        "skip kept the target's"
    );
    assert_eq!(t.get("copy:s:3").as_deref(), Some("c"));
    assert_eq!(t.dbsize(), 5);

    reset();
    let out = import(
        &file,
        &to.url(),
        &["--as", "copy", "--on-conflict", "replace"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let r = report(&out);
    assert_eq!(conflicts(&r), ["copy:s:1"], "{r}");
    assert_eq!(
        (n(&r, "restored"), n(&r, "unchanged"), n(&r, "conflicts")),
        (3, 1, 1),
        "{r}"
    );
    assert_eq!(
        t.get("copy:s:1").as_deref(),
        Some("a"),
        "replace overwrote it"
    );
    assert_eq!(t.get("unrelated").as_deref(), Some("u"));
    assert_eq!(t.dbsize(), 5);
    // Running it again changes nothing: every key is there with the same value.
    let out = import(&file, &to.url(), &["--as", "copy"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = report(&out);
    assert_eq!((n(&r, "restored"), n(&r, "unchanged")), (0, 4), "{r}");
}

#[test]
fn keys_whose_deadline_passed_are_not_restored() {
    let from = RedisServer::start();
    from.cmd(&["SET", "app:short", "1", "PX", "400"]);
    from.cmd(&["SET", "app:long", "2", "PX", "600000"]);
    from.cmd(&["SET", "app:forever", "3"]);
    let dir = dir();
    let file = dir.path().join("app.scxp");
    let r = export(&from.url(), "app", &file, &[]);
    assert_eq!(
        n(&r, "written"),
        3,
        "exported while the short key lived: {r}"
    );
    // Wait, bounded, until the short key has expired on the source.
    let deadline = Instant::now() + Duration::from_secs(5);
    while from.cmd(&["EXISTS", "app:short"]).text() != Some("0") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(50));
    let to = RedisServer::start();
    let out = import(&file, &to.url(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = report(&out);
    assert_eq!((n(&r, "restored"), n(&r, "skipped_expired")), (2, 1), "{r}");
    let t = Side::One(&to);
    assert_eq!(t.get("app:short"), None);
    assert_eq!(t.get("app:long").as_deref(), Some("2"));
    assert_eq!(t.dbsize(), 2);
}

/// Runs an export and returns its peak resident memory (VmHWM), read from /proc while
/// it runs (a high-water mark: the last reading before it exits is the peak so far).
fn export_peak_rss_kb(from: &str, file: &Path) -> u64 {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sharecache"))
        .args(["export", "app", "--from", from, "--to", path_str(file)])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run sharecache");
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Ok(s) = std::fs::read_to_string(&status_file)
            && let Some(kb) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak = peak.max(kb);
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the export did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(status.success(), "export failed");
    assert!(peak > 0, "no VmHWM read");
    peak
}

#[test]
fn export_memory_stays_flat_as_the_key_count_grows() {
    // 1 KiB incompressible values: 5k keys are 5 MB, 50k keys 50 MB. An export that held
    // the namespace would grow by 45 MB or more (checked: one that kept every page's
    // items did), a streaming one by far less than the bound below.
    let (small, large) = (RedisServer::start(), RedisServer::start());
    seed(&Side::One(&small), "app:", 5_000, 1024);
    seed(&Side::One(&large), "app:", 50_000, 1024);
    let dir = dir();
    let a = export_peak_rss_kb(&small.url(), &dir.path().join("small.scxp"));
    let b = export_peak_rss_kb(&large.url(), &dir.path().join("large.scxp"));
    eprintln!("export peak RSS: 5k keys {a} kB, 50k keys {b} kB");
    let file_kb = std::fs::metadata(dir.path().join("large.scxp"))
        .unwrap()
        .len()
        / 1024;
    assert!(file_kb > 1024, "the large export holds data: {file_kb} kB");
    assert!(
        b < a + 20 * 1024,
        "peak RSS grew from {a} kB to {b} kB for 10x the keys: not bounded"
    );
}

#[test]
fn a_target_that_refuses_restore_is_a_clear_error() {
    let (_from, _dir, file) = small_export();
    let to = RedisServer::start();
    to.cmd(&[
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
    let url = format!("redis://mover:mover-pw@127.0.0.1:{}", to.port());
    let out = import(&file, &url, &[]);
    assert!(!out.status.success(), "an import without RESTORE succeeded");
    let err = stderr(&out);
    assert!(
        err.contains("through RESTORE") && err.contains("DUMP payloads only"),
        "{err}"
    );
    assert!(
        err.contains("exported from Redis 7."),
        "names the source's version: {err}"
    );
    assert_eq!(
        Side::One(&to).dbsize(),
        0,
        "nothing restored without RESTORE"
    );
}

#[test]
fn export_never_overwrites_a_file_and_takes_its_url_from_redis_url() {
    let from = RedisServer::start();
    from.cmd(&["SET", "app:k", "v"]);
    let dir = dir();
    let file = dir.path().join("app.scxp");
    std::fs::write(&file, b"precious").unwrap();
    let out = run(
        "export",
        &["app", "--from", &from.url(), "--to", path_str(&file)],
    );
    assert!(!out.status.success(), "an existing file was overwritten");
    assert!(stderr(&out).contains("exists"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&file).unwrap(), b"precious");
    // No --from and no REDIS_URL: says which to give.
    let fresh = dir.path().join("fresh.scxp");
    let bin = env!("CARGO_BIN_EXE_sharecache");
    let out = Command::new(bin)
        .args(["export", "app", "--to", path_str(&fresh)])
        .env_remove("REDIS_URL")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("--from") && err.contains("REDIS_URL"), "{err}");
    // REDIS_URL (the variable serve reads) is the default of --from and --to.
    let out = Command::new(bin)
        .args(["export", "app", "--to", path_str(&fresh)])
        .env("REDIS_URL", from.url())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let to = RedisServer::start();
    let out = Command::new(bin)
        .args(["import", path_str(&fresh), "--as", "back"])
        .env("REDIS_URL", to.url())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(Side::One(&to).get("back:k").as_deref(), Some("v"));
}

/// A cache on `url` whose sessions are sealed with `key` (the same on both sides, as two
/// deployments of one service share `[sessions] keys`).
async fn cache_on(url: &str, key: [u8; 32]) -> sharecache::Cache {
    sharecache::Cache::builder()
        .redis(url)
        .fallback(sharecache::Fallback::Fail)
        .session_keys(sharecache::session::SessionKeys::new(&[key]).unwrap())
        .build()
        .await
        .unwrap()
}

/// The namespace's coordination state travels with it: a session and its user's index,
/// a lock's fence counter, a queued message and a durable event, written through the
/// library, are there after export and import into an empty Redis; under `--as` the
/// queue, the event log and the fence move to the new namespace's keys. (Sessions are
/// sealed with their storage key as associated data: they open only under the namespace
/// and key prefix they were made in.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordination_state_travels_with_the_namespace() {
    let (from, to) = (RedisServer::start(), RedisServer::start());
    let key = sharecache::session::SessionKeys::generate();
    let src = cache_on(&from.url(), key).await;
    let ns = src.namespace("app").unwrap();
    let day = Duration::from_secs(86_400);
    let session = ns
        .sessions()
        .create_for("ada", serde_json::json!({"cart": 3}), day, day)
        .await
        .unwrap();
    let lease = ns
        .locks()
        .acquire_lease("payroll", Duration::from_secs(60), Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    let queued = ns.queue("jobs").unwrap().push(&"resize 42").await.unwrap();
    let (event, _) = ns
        .channel("audit")
        .unwrap()
        .publish_durable(&"paid")
        .await
        .unwrap();
    ns.set("k", &"v", sharecache::Ttl::NEVER).await.unwrap();
    let dir = dir();
    let file = dir.path().join("app.scxp");
    let (from_url, to_url) = (from.url(), to.url());
    let file2 = file.clone();
    let r = tokio::task::spawn_blocking(move || export(&from_url, "app", &file2, &[]))
        .await
        .unwrap();
    assert!(n(&r, "written") >= 6, "{r}");
    let file2 = file.clone();
    let out = tokio::task::spawn_blocking(move || import(&file2, &to_url, &[]))
        .await
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let dst = cache_on(&to.url(), key).await;
    let ns = dst.namespace("app").unwrap();
    let s = ns.sessions().get(&session.id).await.unwrap();
    assert_eq!(s.map(|s| s.data), Some(serde_json::json!({"cart": 3})));
    assert_eq!(ns.sessions().list("ada").await.unwrap().len(), 1);
    let claimed = ns
        .queue("jobs")
        .unwrap()
        .claim("w", 10, Duration::ZERO, &Default::default())
        .await
        .unwrap();
    assert_eq!(
        claimed.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        [queued.as_str()]
    );
    let events = ns.channel("audit").unwrap().since(None, 10).await.unwrap();
    assert!(events.iter().any(|(id, _)| *id == event), "{events:?}");
    assert_eq!(ns.get::<String>("k").await.unwrap().as_deref(), Some("v"));
    // The lock came along too (held until its TTL), and so did its fence counter.
    assert_eq!(to.cmd(&["EXISTS", "#lock:app:{payroll}"]).text(), Some("1"));
    let fence: u64 = to
        .cmd(&["GET", "#fence:app:{payroll}"])
        .text()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(fence, lease.fence, "the counter as it was");

    // Under another namespace: the same state at the new namespace's internal keys.
    let other = RedisServer::start();
    let (file2, other_url) = (file.clone(), other.url());
    let out = tokio::task::spawn_blocking(move || import(&file2, &other_url, &["--as", "copy"]))
        .await
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let copy = cache_on(&other.url(), key).await.namespace("copy").unwrap();
    let claimed = copy
        .queue("jobs")
        .unwrap()
        .claim("w", 10, Duration::ZERO, &Default::default())
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        other.cmd(&["EXISTS", "#fence:copy:{payroll}"]).text(),
        Some("1")
    );
    assert_eq!(
        other.cmd(&["EXISTS", "#fence:app:{payroll}"]).text(),
        Some("0")
    );
}
