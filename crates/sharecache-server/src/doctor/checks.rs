//! The checks themselves: each reads what one node answered (or asks it) and gives one
//! [`Check`]. A refused read gives `unknown`, never `fail`.

use std::collections::BTreeMap;

use redis::{Connection, Value};

use super::{Check, Facts, Status, check, pass, refused};
use crate::nodes;

fn field<'a>(m: &'a Result<BTreeMap<String, String>, String>, k: &str) -> Option<&'a str> {
    m.as_ref().ok()?.get(k).map(String::as_str)
}

fn num(m: &Result<BTreeMap<String, String>, String>, k: &str) -> Option<u64> {
    field(m, k)?.parse().ok()
}

fn unknown(id: &str, why: &str) -> Check {
    check(
        id,
        Status::Unknown,
        format!("cannot tell: {why}"),
        "run doctor as a user allowed to read it, or check the setting in your provider's console",
    )
}

/// The checks that need only INFO and CONFIG.
pub(super) fn node_checks(f: &Facts, own: &str) -> Vec<Check> {
    let mut out = Vec::new();
    let why = |r: &Result<BTreeMap<String, String>, String>| {
        r.as_ref().err().cloned().unwrap_or_default()
    };
    let both_why = format!("{}; {}", why(&f.info), why(&f.config));

    // maxmemory: INFO memory carries it, so a Redis that refuses CONFIG still answers.
    let maxmemory = num(&f.info, "maxmemory").or_else(|| num(&f.config, "maxmemory"));
    out.push(match maxmemory {
        None => unknown("maxmemory", &both_why),
        Some(0) => check(
            "maxmemory",
            Status::Fail,
            "maxmemory is 0: Redis grows until the machine runs out of memory and the OS kills it",
            "CONFIG SET maxmemory <about 3/4 of the memory Redis may use> and CONFIG REWRITE (or set it in redis.conf)",
        ),
        Some(m) => {
            let used = num(&f.info, "used_memory").unwrap_or(0);
            pass("maxmemory", format!("maxmemory {} MiB, {}% used", m >> 20, used * 100 / m.max(1)))
        }
    });

    let policy =
        field(&f.info, "maxmemory_policy").or_else(|| field(&f.config, "maxmemory-policy"));
    out.push(match policy {
        None => unknown("maxmemory-policy", &both_why),
        Some(p) if p.starts_with("allkeys-") => check(
            "maxmemory-policy",
            Status::Warn,
            format!("{p} evicts any key when memory is full: locks, sessions, queues and rate-limit state too"),
            "CONFIG SET maxmemory-policy volatile-lru (evicts only keys with a TTL; queues and other keys without one stay)",
        ),
        Some("noeviction") => check(
            "maxmemory-policy",
            Status::Warn,
            "noeviction: a full Redis refuses every write (OOM) instead of dropping old cache entries",
            "CONFIG SET maxmemory-policy volatile-lru, so cache entries (which carry TTLs) make room",
        ),
        Some(p) => pass(
            "maxmemory-policy",
            format!("{p}: only keys with a TTL are evicted; coordination state without one stays"),
        ),
    });

    out.push(persistence(f));
    out.push(replication(f));

    let cfg = |k: &str| field(&f.config, k);
    let config_why = why(&f.config);
    out.push(match cfg("latency-monitor-threshold").map(str::parse::<u64>) {
        None | Some(Err(_)) => unknown("latency-monitor", &config_why),
        Some(Ok(0)) => check(
            "latency-monitor",
            Status::Warn,
            "latency-monitor-threshold is 0: latency spikes (forks, expiry storms, slow commands) are not recorded",
            "CONFIG SET latency-monitor-threshold 100 (ms), then LATENCY LATEST shows what stalled",
        ),
        Some(Ok(ms)) => pass("latency-monitor", format!("spikes over {ms} ms are recorded")),
    });

    // Security: the default user.
    out.push(match &f.acl {
        Err(e) => unknown("security.default-user", e),
        Ok(lines) => {
            let default = lines.iter().find(|l| l.starts_with("user default "));
            let words: Vec<&str> = default.map(|l| l.split(' ').collect()).unwrap_or_default();
            let on = words.contains(&"on");
            if on && words.contains(&"nopass") {
                check(
                    "security.default-user",
                    Status::Fail,
                    "the default user is on with no password: anyone who reaches the port can do anything",
                    "set a password (requirepass) or ACL SETUSER default off after creating named users",
                )
            } else if on && words.contains(&"+@all") && words.iter().all(|w| !w.starts_with('-')) {
                check(
                    "security.default-user",
                    Status::Warn,
                    "the default user may run every command: whoever knows the shared password can flush or reconfigure Redis",
                    "give each service its own user (sharecache provision) and turn the default user off",
                )
            } else if own == "default" && on {
                pass("security.default-user", "the default user has a password")
            } else {
                pass("security.default-user", "the default user is off or restricted")
            }
        }
    });

    let binds: Vec<String> = cfg("bind")
        .map(|b| b.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    let public = binds.iter().any(|b| !is_loopback(b)) || (f.config.is_ok() && binds.is_empty());
    out.push(match cfg("protected-mode") {
        None => unknown("security.protected-mode", &config_why),
        Some("no") if public => check(
            "security.protected-mode",
            Status::Fail,
            format!(
                "protected-mode is off and Redis listens on {}",
                binds.join(" ")
            ),
            "bind only private addresses, keep protected-mode yes, and require passwords",
        ),
        Some(p) => pass(
            "security.protected-mode",
            format!("protected-mode {p}, bind {}", binds.join(" ")),
        ),
    });
    out.push(match (cfg("tls-port"), f.config.is_ok()) {
        (_, false) => unknown("security.tls", &config_why),
        (Some(t), true) if public && (t == "0" || t.is_empty()) => check(
            "security.tls",
            Status::Warn,
            format!(
                "Redis listens on {} without TLS: passwords and values cross the network in clear",
                binds.join(" ")
            ),
            "enable tls-port (and rediss:// URLs), or keep Redis on a private network only",
        ),
        _ => pass(
            "security.tls",
            if public { "TLS is on" } else { "loopback only" },
        ),
    });
    out.push(match cfg("enable-debug-command") {
        None => unknown("security.debug-command", &config_why),
        Some("yes") => check(
            "security.debug-command",
            Status::Warn,
            "enable-debug-command yes: DEBUG can crash, freeze or reconfigure the server from any connection",
            "set enable-debug-command no (or local) in redis.conf and restart",
        ),
        Some(v) => pass("security.debug-command", format!("enable-debug-command {v}")),
    });

    // Clients.
    let connected = num(&f.info, "connected_clients");
    let max = num(&f.info, "maxclients").or_else(|| num(&f.config, "maxclients"));
    let rejected = num(&f.info, "rejected_connections").unwrap_or(0);
    out.push(match (connected, max) {
        (Some(c), Some(m)) if rejected > 0 => check(
            "clients",
            Status::Warn,
            format!("{rejected} connections were rejected (maxclients {m}, {c} connected now)"),
            "raise maxclients (and the open-file limit), or pool connections in the services",
        ),
        (Some(c), Some(m)) if c * 10 > m * 8 => check(
            "clients",
            Status::Warn,
            format!("{c} of {m} client slots in use"),
            "raise maxclients, or pool connections in the services",
        ),
        (Some(c), Some(m)) => pass(
            "clients",
            format!("{c} of {m} client slots in use, none rejected"),
        ),
        _ => unknown("clients", &both_why),
    });

    out.push(match cfg("notify-keyspace-events") {
        None => unknown("notify-keyspace-events", &config_why),
        Some("") => pass(
            "notify-keyspace-events",
            "off (no cost); `sharecache migrate --follow` needs it on while it runs",
        ),
        Some(v) => pass(
            "notify-keyspace-events",
            format!("{v:?}: keyspace events are published (migrate --follow can use them; each write costs a publish)"),
        ),
    });
    out
}

/// Whether a `bind` address only listens on this machine (a leading `-` marks an
/// optional address).
pub fn is_loopback(bind: &str) -> bool {
    let b = bind.trim_start_matches('-');
    b == "localhost"
        || b == "::1"
        || b.parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.is_loopback())
}

fn persistence(f: &Facts) -> Check {
    const ID: &str = "persistence";
    let Ok(info) = &f.info else {
        return unknown(ID, f.info.as_ref().err().map_or("", String::as_str));
    };
    let aof = info.get("aof_enabled").map(String::as_str) == Some("1");
    let rdb = field(&f.config, "save").map(|s| !s.trim().is_empty());
    for (k, what) in [
        ("rdb_last_bgsave_status", "the last RDB snapshot"),
        ("aof_last_bgrewrite_status", "the last AOF rewrite"),
        ("aof_last_write_status", "the last AOF write"),
    ] {
        if info.get(k).is_some_and(|v| v != "ok") {
            return check(
                ID,
                Status::Fail,
                format!(
                    "{what} failed ({k}:{}): Redis may be refusing writes",
                    info[k]
                ),
                "look at the Redis log (disk full? permissions?) and fix the cause",
            );
        }
    }
    let fork_ms = info
        .get("latest_fork_usec")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        / 1000;
    match (aof, rdb) {
        (false, Some(false)) => check(
            ID,
            Status::Fail,
            "neither AOF nor RDB snapshots are on: a restart loses every session, lock, queue and cached value",
            "CONFIG SET appendonly yes and CONFIG REWRITE (or appendonly yes in redis.conf)",
        ),
        (false, None) => unknown(
            ID,
            &format!(
                "AOF is off and whether RDB snapshots are configured is unknown ({})",
                f.config.as_ref().err().map_or("", String::as_str)
            ),
        ),
        _ if fork_ms > 1000 => check(
            ID,
            Status::Warn,
            format!(
                "the last fork took {fork_ms} ms: Redis stalls that long on each snapshot or rewrite"
            ),
            "give Redis less memory per instance, disable transparent huge pages, or use a faster machine",
        ),
        _ => pass(
            ID,
            format!(
                "{}, last fork {fork_ms} ms",
                match (aof, rdb) {
                    (true, Some(true)) => "AOF and RDB snapshots on",
                    (true, _) => "AOF on",
                    _ => "RDB snapshots on (up to one snapshot interval of writes can be lost)",
                }
            ),
        ),
    }
}

fn replication(f: &Facts) -> Check {
    const ID: &str = "replication";
    let Ok(info) = &f.info else {
        return unknown(ID, f.info.as_ref().err().map_or("", String::as_str));
    };
    match info.get("role").map(String::as_str) {
        Some("slave") => {
            let link = info
                .get("master_link_status")
                .map_or("unknown", String::as_str);
            let io = info
                .get("master_last_io_seconds_ago")
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(-1);
            if link != "up" {
                check(
                    ID,
                    Status::Fail,
                    format!(
                        "replica of {}:{} with the link {link}: it serves stale data and cannot take over",
                        info.get("master_host").map_or("?", String::as_str),
                        info.get("master_port").map_or("?", String::as_str)
                    ),
                    "check that the master is up and reachable, and masterauth/masteruser",
                )
            } else if io > 10 {
                check(
                    ID,
                    Status::Warn,
                    format!("replica: nothing heard from the master for {io} s"),
                    "check the network between the replica and the master",
                )
            } else {
                pass(ID, format!("replica, link up ({} role)", f.role))
            }
        }
        Some(_) => {
            let n = info
                .get("connected_slaves")
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            let mut lagging = Vec::new();
            for i in 0..n {
                let Some(line) = info.get(&format!("slave{i}")) else {
                    continue;
                };
                let get = |k: &str| {
                    line.split(',')
                        .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
                };
                let lag = get("lag").and_then(|l| l.parse::<u64>().ok()).unwrap_or(0);
                if get("state") != Some("online") || lag > 10 {
                    lagging.push(format!(
                        "{}:{} state {} lag {lag} s",
                        get("ip").unwrap_or("?"),
                        get("port").unwrap_or("?"),
                        get("state").unwrap_or("?")
                    ));
                }
            }
            if !lagging.is_empty() {
                check(
                    ID,
                    Status::Warn,
                    format!("master with replicas behind: {}", lagging.join("; ")),
                    "check the replicas' logs and the network; a lagging replica loses writes on failover",
                )
            } else if n == 0 {
                pass(
                    ID,
                    "master without replicas (a crash stops service until restart)",
                )
            } else {
                pass(ID, format!("master with {n} replicas in sync"))
            }
        }
        None => unknown(ID, "INFO has no role"),
    }
}

pub(super) fn slowlog_check(conn: &mut Connection) -> Check {
    const ID: &str = "slowlog";
    let v: Value = match redis::cmd("SLOWLOG").arg("GET").arg(5).query(conn) {
        Ok(v) => v,
        Err(e) => return unknown(ID, &refused("SLOWLOG GET", &e)),
    };
    // Each entry: [id, timestamp, microseconds, [args...], ...].
    let mut entries: Vec<(u64, String)> = match v {
        Value::Array(items) => items
            .iter()
            .filter_map(|e| match e {
                Value::Array(f) if f.len() >= 4 => {
                    let us = nodes::text(&f[2])?.parse::<u64>().ok()?;
                    let cmd = nodes::texts(&f[3]).into_iter().next().unwrap_or_default();
                    Some((us, cmd))
                }
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    entries.sort_by_key(|e| std::cmp::Reverse(e.0));
    let top = entries
        .iter()
        .take(3)
        .map(|(us, c)| format!("{c} {} ms", us / 1000))
        .collect::<Vec<_>>()
        .join(", ");
    match entries.first() {
        None => pass(ID, "no slow commands logged"),
        Some((us, _)) if *us >= 1_000_000 => check(
            ID,
            Status::Warn,
            format!("a command took over a second: {top}"),
            "find who sends it (SLOWLOG GET shows the client); KEYS, large DEL and big Lua scripts are usual causes",
        ),
        Some(_) => pass(ID, format!("slowest recent: {top}")),
    }
}

/// Users that may run dangerous commands (other than the default user, judged above, and
/// the user doctor runs as). `ACL DRYRUN` asks Redis itself, rules are not guessed.
pub(super) fn users_check(conn: &mut Connection, f: &Facts, own: &str) -> Check {
    const ID: &str = "security.users";
    let lines = match &f.acl {
        Ok(l) => l,
        Err(e) => return unknown(ID, e),
    };
    let mut loose = Vec::new();
    for line in lines {
        let mut w = line.split(' ');
        let (Some("user"), Some(name)) = (w.next(), w.next()) else {
            continue;
        };
        if name == "default" || name == own || !line.split(' ').any(|x| x == "on") {
            continue;
        }
        let probes: [&[&str]; 3] = [
            &["FLUSHALL"],
            &["CONFIG", "SET", "maxmemory", "0"],
            &["KEYS", "*"],
        ];
        for probe in probes {
            let mut c = redis::cmd("ACL");
            c.arg("DRYRUN").arg(name);
            for a in probe {
                c.arg(*a);
            }
            match c.query::<Value>(conn) {
                Ok(Value::Okay) => {
                    loose.push(format!("{name} ({})", probe[0].to_ascii_lowercase()));
                    break;
                }
                Ok(_) => {}
                Err(e) => return unknown(ID, &refused("ACL DRYRUN", &e)),
            }
        }
    }
    if loose.is_empty() {
        pass(
            ID,
            "no other enabled user may flush, reconfigure or list every key",
        )
    } else {
        check(
            ID,
            Status::Warn,
            format!(
                "users that may run dangerous commands: {}",
                loose.join(", ")
            ),
            "add -@dangerous to their rules (sharecache provision does for service users)",
        )
    }
}

/// Keys without a TTL, per namespace, from a bounded SCAN sample of a master.
pub(super) fn ttl_check(conn: &mut Connection, f: &Facts) -> Check {
    const ID: &str = "ttl";
    const MAX_KEYS: usize = 1000;
    const MAX_CALLS: usize = 20;
    let mut cursor = 0u64;
    let mut keys = Vec::new();
    for _ in 0..MAX_CALLS {
        let r: Result<(u64, Vec<String>), _> = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(200)
            .query(conn);
        match r {
            Ok((next, batch)) => {
                keys.extend(batch);
                cursor = next;
            }
            Err(e) => return unknown(ID, &refused("SCAN", &e)),
        }
        if cursor == 0 || keys.len() >= MAX_KEYS {
            break;
        }
    }
    keys.truncate(MAX_KEYS);
    if keys.is_empty() {
        return pass(ID, "no keys to sample");
    }
    let mut pipe = redis::pipe();
    for k in &keys {
        pipe.cmd("PTTL").arg(k);
    }
    let ttls: Vec<i64> = match pipe.query(conn) {
        Ok(t) => t,
        Err(e) => return unknown(ID, &refused("PTTL", &e)),
    };
    let mut per_ns: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (k, t) in keys.iter().zip(&ttls) {
        let ns = namespace_of(k);
        let e = per_ns.entry(ns).or_default();
        e.0 += 1;
        if *t == -1 {
            e.1 += 1;
        }
    }
    let without: usize = per_ns.values().map(|v| v.1).sum();
    let summary = per_ns
        .iter()
        .filter(|(_, v)| v.1 > 0)
        .map(|(ns, (n, w))| format!("{ns} {w}/{n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let policy = field(&f.info, "maxmemory_policy").unwrap_or("");
    if policy.starts_with("volatile-") && without * 2 > keys.len() {
        check(
            ID,
            Status::Warn,
            format!(
                "{without} of {} sampled keys have no TTL ({summary}); {policy} cannot evict them, so a full Redis refuses writes",
                keys.len()
            ),
            "give cache entries a TTL, or size maxmemory for the keys that must stay",
        )
    } else if without == 0 {
        pass(ID, format!("all {} sampled keys have a TTL", keys.len()))
    } else {
        pass(
            ID,
            format!(
                "{without} of {} sampled keys have no TTL: {summary}",
                keys.len()
            ),
        )
    }
}

/// `ns` of `ns:key`, or of `#kind:ns:name` (sharecache's internal keys); `(none)` for
/// keys outside any namespace.
fn namespace_of(key: &str) -> String {
    let rest = key
        .strip_prefix('#')
        .and_then(|r| r.split_once(':'))
        .map_or(key, |(_, r)| r);
    match rest.split_once(':') {
        Some((ns, _)) if !ns.is_empty() => ns.to_owned(),
        _ => "(none)".to_owned(),
    }
}

pub(super) fn cluster_check(conn: &mut Connection) -> Check {
    const ID: &str = "cluster";
    let text: String = match redis::cmd("CLUSTER").arg("INFO").query(conn) {
        Ok(t) => t,
        Err(e) => return unknown(ID, &refused("CLUSTER INFO", &e)),
    };
    let f: BTreeMap<String, String> = nodes::info_fields(&text).into_iter().collect();
    let get = |k: &str| f.get(k).map_or("?", String::as_str);
    let ok = get("cluster_state") == "ok"
        && get("cluster_slots_assigned") == "16384"
        && get("cluster_slots_fail") == "0"
        && get("cluster_slots_pfail") == "0";
    let msg = format!(
        "state {}, {} of 16384 slots assigned, {} failing, {} possibly failing",
        get("cluster_state"),
        get("cluster_slots_assigned"),
        get("cluster_slots_fail"),
        get("cluster_slots_pfail")
    );
    if ok {
        pass(ID, msg)
    } else {
        check(
            ID,
            Status::Fail,
            msg,
            "redis-cli --cluster check <node> shows which slots lack a master; fix or add nodes",
        )
    }
}

/// ACL users must be the same on every node (ACLs are not replicated; a failover to a
/// node that lacks a user locks that service out).
pub(super) fn acl_consistency(facts: &[Facts]) -> Check {
    const ID: &str = "acl-consistency";
    let mut per_user: BTreeMap<String, BTreeMap<String, Vec<&str>>> = BTreeMap::new();
    for f in facts {
        let Ok(lines) = &f.acl else {
            return unknown(
                ID,
                &format!(
                    "{}: {}",
                    f.addr,
                    f.acl.as_ref().err().map_or("", String::as_str)
                ),
            );
        };
        for line in lines {
            let mut w: Vec<&str> = line.split(' ').collect();
            let Some(name) = w.get(1).map(|s| (*s).to_owned()) else {
                continue;
            };
            // Redis lists compacted command rules in hash-table order, which differs
            // between processes: compare the words, not their order.
            w.sort_unstable();
            per_user
                .entry(name)
                .or_default()
                .entry(w.join(" "))
                .or_default()
                .push(&f.addr);
        }
    }
    let mut differ = Vec::new();
    for (user, versions) in &per_user {
        let holders: usize = versions.values().map(Vec::len).sum();
        if versions.len() > 1 || holders < facts.len() {
            let missing: Vec<&str> = facts
                .iter()
                .map(|f| f.addr.as_str())
                .filter(|a| !versions.values().any(|v| v.contains(a)))
                .collect();
            let mut s = format!("{user} ({} versions", versions.len());
            if !missing.is_empty() {
                s.push_str(&format!(", missing on {}", missing.join(" ")));
            }
            s.push(')');
            differ.push(s);
        }
    }
    if differ.is_empty() {
        pass(
            ID,
            format!(
                "{} users, the same on all {} nodes",
                per_user.len(),
                facts.len()
            ),
        )
    } else {
        check(
            ID,
            Status::Fail,
            format!("users differ between nodes: {}", differ.join(", ")),
            "run sharecache provision (it writes every node), or fix the users by hand on each node",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_binds() {
        for b in ["127.0.0.1", "-::1", "::1", "localhost", "127.0.0.2"] {
            assert!(is_loopback(b), "{b}");
        }
        for b in ["0.0.0.0", "*", "::", "10.0.0.5", "-::*"] {
            assert!(!is_loopback(b), "{b}");
        }
    }

    #[test]
    fn namespaces_of_keys() {
        assert_eq!(namespace_of("auth:session:1"), "auth");
        assert_eq!(namespace_of("#lock:chat:room"), "chat");
        assert_eq!(namespace_of("plain"), "(none)");
    }
}
