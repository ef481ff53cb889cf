//! Every data node behind a backend URL, each on its own connection: what `provision` and
//! `doctor` need, because ACL users, `CONFIG` and `INFO` are per node (Redis replicates
//! neither ACLs nor configuration).
//!
//! * standalone: the server, and the replicas its `INFO replication` lists;
//! * Cluster: every node of `CLUSTER NODES` (masters and replicas), from the first seed
//!   that answers;
//! * Sentinel: the master the first answering sentinel names, and its replicas.
//!
//! A node that is listed but does not answer is kept with its error, so callers report it
//! and go on with the rest. Connections are synchronous with timeouts: these are one-shot
//! command-line tools, and the service runs them on a blocking thread.

use std::time::Duration;

use redis::{Connection, Value};
use sharecache::{RedisKind, RedisUrl};

/// How long connecting to a node and each reply may take.
pub const NODE_TIMEOUT: Duration = Duration::from_secs(3);

/// A node's role when it was discovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Takes writes.
    Master,
    /// Copies a master.
    Replica,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Master => "master",
            Role::Replica => "replica",
        })
    }
}

/// One data node and its connection (or why there is none).
pub struct Node {
    /// `host:port`, for messages.
    pub addr: String,
    /// Its role at discovery.
    pub role: Role,
    /// The open connection, or the error that prevented it.
    pub conn: Result<Connection, String>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("addr", &self.addr)
            .field("role", &self.role)
            .field("connected", &self.conn.is_ok())
            .finish()
    }
}

/// The nodes behind one URL.
#[derive(Debug)]
pub struct Nodes {
    /// The URL without its password.
    pub display: String,
    /// Standalone, Cluster or Sentinel.
    pub kind: RedisKind,
    /// Masters first, then replicas, each in discovery order.
    pub nodes: Vec<Node>,
}

/// Opens a connection to one URL with [`NODE_TIMEOUT`] for connecting and for replies.
pub fn connect(url: &str) -> Result<Connection, String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let conn = client
        .get_connection_with_timeout(NODE_TIMEOUT)
        .map_err(|e| e.to_string())?;
    conn.set_read_timeout(Some(NODE_TIMEOUT))
        .map_err(|e| e.to_string())?;
    conn.set_write_timeout(Some(NODE_TIMEOUT))
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

/// Finds and connects to every data node behind `url`. An error means discovery itself
/// failed (no seed, sentinel or server answered): nothing could be reached.
pub fn discover(url: &RedisUrl) -> Result<Nodes, String> {
    let found = match url.kind() {
        RedisKind::Cluster => cluster_nodes(url)?,
        RedisKind::Sentinel => sentinel_nodes(url)?,
        _ => return standalone_nodes(url),
    };
    let mut nodes: Vec<Node> = found
        .into_iter()
        .map(|(host, port, role)| {
            let addr = host_port(&host, port);
            let conn = url
                .node_url(&host, port)
                .ok_or_else(|| "no URL for this node".to_owned())
                .and_then(|u| connect(&u));
            Node { addr, role, conn }
        })
        .collect();
    nodes.sort_by_key(|n| n.role == Role::Replica);
    Ok(Nodes {
        display: url.display(),
        kind: url.kind(),
        nodes,
    })
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn standalone_nodes(url: &RedisUrl) -> Result<Nodes, String> {
    let seed = url.seed_urls().remove(0);
    let mut conn = connect(&seed).map_err(|e| format!("{}: {e}", url.display()))?;
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut conn)
        .unwrap_or_default();
    let fields = info_fields(&info);
    let role = match fields.iter().find(|(k, _)| k == "role") {
        Some((_, r)) if r == "slave" => Role::Replica,
        _ => Role::Master,
    };
    let addr = redis::Client::open(seed.as_str())
        .ok()
        .map(|c| match &c.get_connection_info().addr() {
            redis::ConnectionAddr::Tcp(h, p)
            | redis::ConnectionAddr::TcpTls {
                host: h, port: p, ..
            } => host_port(h, *p),
            other => other.to_string(),
        })
        .unwrap_or_else(|| url.display());
    let mut nodes = vec![Node {
        addr,
        role,
        conn: Ok(conn),
    }];
    // A master's replicas: `slaveN:ip=...,port=...,state=...`.
    for (k, v) in &fields {
        if !k.starts_with("slave") || !k[5..].bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let get = |name: &str| {
            v.split(',')
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        };
        if let (Some(ip), Some(Ok(port))) = (get("ip"), get("port").map(str::parse::<u16>)) {
            let conn = url
                .node_url(ip, port)
                .ok_or_else(|| "no URL for this node".to_owned())
                .and_then(|u| connect(&u));
            nodes.push(Node {
                addr: host_port(ip, port),
                role: Role::Replica,
                conn,
            });
        }
    }
    Ok(Nodes {
        display: url.display(),
        kind: RedisKind::Standalone,
        nodes,
    })
}

fn cluster_nodes(url: &RedisUrl) -> Result<Vec<(String, u16, Role)>, String> {
    let mut errors = Vec::new();
    for seed in url.seed_urls() {
        let text: Result<String, String> = connect(&seed).and_then(|mut c| {
            redis::cmd("CLUSTER")
                .arg("NODES")
                .query(&mut c)
                .map_err(|e| e.to_string())
        });
        match text {
            Ok(text) => return Ok(parse_cluster_nodes(&text, &seed)),
            Err(e) => errors.push(e),
        }
    }
    Err(format!(
        "{}: no seed node answered CLUSTER NODES: {}",
        url.display(),
        errors.join("; ")
    ))
}

/// `CLUSTER NODES` lines: `<id> <ip:port@cport[,hostname]> <flags> <master> ...`. A node
/// still in handshake, or without an address, is left out; a failed one is kept (its
/// connection error is then reported).
fn parse_cluster_nodes(text: &str, seed: &str) -> Vec<(String, u16, Role)> {
    let seed_host = redis::Client::open(seed)
        .ok()
        .and_then(|c| match c.get_connection_info().addr() {
            redis::ConnectionAddr::Tcp(h, _) | redis::ConnectionAddr::TcpTls { host: h, .. } => {
                Some(h.clone())
            }
            _ => None,
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 3 || f[2].contains("handshake") || f[2].contains("noaddr") {
            continue;
        }
        let addr = f[1].split(['@', ',']).next().unwrap_or("");
        let Some((host, port)) = addr.rsplit_once(':') else {
            continue;
        };
        let Ok(port) = port.parse::<u16>() else {
            continue;
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        // `myself` may list an empty ip before the node learned its address.
        let host = if host.is_empty() { &seed_host } else { host };
        let role = if f[2].split(',').any(|x| x == "slave") {
            Role::Replica
        } else {
            Role::Master
        };
        out.push((host.to_owned(), port, role));
    }
    out
}

fn sentinel_nodes(url: &RedisUrl) -> Result<Vec<(String, u16, Role)>, String> {
    let master = url.master_name().unwrap_or_default();
    let mut errors = Vec::new();
    for s in url.seed_urls() {
        let found = connect(&s).and_then(|mut c| {
            let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(master)
                .query(&mut c)
                .map_err(|e| e.to_string())?;
            let (host, port) =
                addr.ok_or_else(|| format!("the sentinel knows no master {master:?}"))?;
            let replicas: Value = redis::cmd("SENTINEL")
                .arg("replicas")
                .arg(master)
                .query(&mut c)
                .map_err(|e| e.to_string())?;
            let mut out = vec![(host, port, Role::Master)];
            if let Value::Array(list) = replicas {
                for r in list {
                    let kv = pairs(&r);
                    let get = |k: &str| kv.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
                    if let (Some(ip), Some(Ok(port))) =
                        (get("ip"), get("port").map(|p| p.parse::<u16>()))
                    {
                        out.push((ip, port, Role::Replica));
                    }
                }
            }
            Ok(out)
        });
        match found {
            Ok(v) => return Ok(v),
            Err(e) => errors.push(e),
        }
    }
    Err(format!(
        "{}: no sentinel named the master: {}",
        url.display(),
        errors.join("; ")
    ))
}

/// `INFO` text as `(field, value)` pairs, section headers and blank lines left out.
pub fn info_fields(info: &str) -> Vec<(String, String)> {
    info.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.trim_end().split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// A reply as text: bulk and simple strings, integers; `None` for anything else.
pub fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Okay => Some("OK".into()),
        _ => None,
    }
}

/// A flat `[k, v, k, v...]` array (RESP2) or a map (RESP3) as text pairs; values that are
/// not text are left as `Value`s by [`pairs_raw`].
pub fn pairs(v: &Value) -> Vec<(String, String)> {
    pairs_raw(v)
        .into_iter()
        .filter_map(|(k, v)| Some((k, text(&v)?)))
        .collect()
}

/// [`pairs`] keeping each value as it came.
pub fn pairs_raw(v: &Value) -> Vec<(String, Value)> {
    match v {
        Value::Array(items) => items
            .chunks(2)
            .filter_map(|c| match c {
                [k, v] => Some((text(k)?, v.clone())),
                _ => None,
            })
            .collect(),
        Value::Map(items) => items
            .iter()
            .filter_map(|(k, v)| Some((text(k)?, v.clone())))
            .collect(),
        _ => Vec::new(),
    }
}

/// A list reply as text items.
pub fn texts(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) | Value::Set(items) => items.iter().filter_map(text).collect(),
        other => text(other).into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_nodes_lines() {
        let text = "\
a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7001@17001,host-b slave a1 0 0 1 connected
c3 :7002@17002 master,fail - 0 0 2 connected 5461-10922
d4 127.0.0.1:7003@17003 handshake - 0 0 0 connected
";
        let nodes = parse_cluster_nodes(text, "redis://10.1.1.1:7000");
        assert_eq!(
            nodes,
            [
                ("127.0.0.1".to_owned(), 7000, Role::Master),
                ("127.0.0.1".to_owned(), 7001, Role::Replica),
                ("10.1.1.1".to_owned(), 7002, Role::Master),
            ]
        );
    }

    #[test]
    fn info_and_pairs() {
        let f = info_fields("# Replication\r\nrole:master\r\nslave0:ip=1.2.3.4,port=6380\r\n\r\n");
        assert_eq!(f[0], ("role".into(), "master".into()));
        assert_eq!(f.len(), 2);
        let v = Value::Array(vec![
            Value::BulkString(b"ip".to_vec()),
            Value::BulkString(b"1.2.3.4".to_vec()),
            Value::BulkString(b"port".to_vec()),
            Value::Int(6380),
        ]);
        assert_eq!(pairs(&v)[1], ("port".into(), "6380".into()));
    }
}
