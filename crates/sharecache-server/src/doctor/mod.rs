//! `sharecache doctor`: is this Redis set up for what sharecache keeps in it?
//!
//! Every check answers `pass`, `warn`, `fail` or `unknown`, with one line of why and one
//! line of fix. The checks read each data node (see [`crate::nodes`]): `INFO`, `CONFIG
//! GET`, `ACL LIST`/`DRYRUN`, `SLOWLOG`, `CLUSTER INFO`, and a bounded `SCAN` sample. A
//! node's answers are judged one by one and the worst result per check is reported, naming
//! the node.
//!
//! **Guarantee**: a check that cannot read what it needs (a managed Redis that refuses
//! `CONFIG` or `ACL`, a renamed command) says `unknown` with the refusal, never `fail`.
//!
//! [`diagnose`] is the whole run, blocking; the service runs it on a blocking thread
//! (`GET /v1/admin/doctor`). This file gathers and merges; `checks.rs` judges.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use redis::{Connection, Value};
use serde::Serialize;
use sharecache::{RedisKind, RedisUrl};

use crate::config::Config;
use crate::nodes::{self, Role};

mod checks;

pub use checks::is_loopback;
use checks::{acl_consistency, cluster_check, node_checks, slowlog_check, ttl_check, users_check};

/// Arguments of `sharecache doctor`.
#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// The Redis to check.
    #[arg(long, conflicts_with = "config")]
    pub url: Option<String>,
    /// Check the Redis of this config's `[backend] url` (or `REDIS_URL`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print one JSON line: `{"checks":[{"id","status","message","fix"}]}`.
    #[arg(long)]
    pub json: bool,
}

/// A check's verdict, from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Fine.
    Pass,
    /// Could not be read (refused or unsupported): not judged.
    Unknown,
    /// Works, but a risk worth fixing.
    Warn,
    /// Will lose data or expose it.
    Fail,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Pass => "pass",
            Status::Unknown => "unknown",
            Status::Warn => "warn",
            Status::Fail => "fail",
        })
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Check {
    /// Stable identifier (`maxmemory`, `security.default-user`...).
    pub id: String,
    /// The verdict.
    pub status: Status,
    /// Why, in one line.
    pub message: String,
    /// What to do, in one line (empty on pass).
    pub fix: String,
}

fn check(id: &str, status: Status, message: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        id: id.to_owned(),
        status,
        message: message.into(),
        fix: fix.into(),
    }
}

fn pass(id: &str, message: impl Into<String>) -> Check {
    check(id, Status::Pass, message, "")
}

/// The whole report.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Report {
    /// The URL without its password.
    #[serde(skip)]
    #[schema(ignore)]
    pub target: String,
    /// Every check, in a fixed order.
    pub checks: Vec<Check>,
}

impl Report {
    /// The check with this id.
    pub fn get(&self, id: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == id)
    }

    /// 0 when nothing failed, 1 when a check failed.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.checks.iter().any(|c| c.status == Status::Fail))
    }
}

/// Runs `sharecache doctor`: exit 0 (all pass or warn), 1 (a fail), 2 (no connection).
pub fn run(args: &DoctorArgs) -> ExitCode {
    let url = match (&args.url, &args.config) {
        (Some(u), _) => u.clone(),
        (None, path) => {
            let loaded = match path {
                Some(p) => Config::load(p),
                None => Ok(Config::default()),
            };
            match loaded.and_then(|mut c| c.apply_env().map(|()| c)) {
                Ok(c) => c.backend.url,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            }
        }
    };
    match diagnose(&url) {
        Ok(report) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string(&report).unwrap_or_else(|e| e.to_string())
                );
            } else {
                println!("doctor {}", report.target);
                for c in &report.checks {
                    println!(
                        "{:<8}{:<26}{}",
                        c.status.to_string().to_uppercase(),
                        c.id,
                        c.message
                    );
                    if !c.fix.is_empty() {
                        println!("{:<34}fix: {}", "", c.fix);
                    }
                }
            }
            ExitCode::from(report.exit_code())
        }
        Err(e) => {
            eprintln!("error: cannot connect: {e}");
            ExitCode::from(2)
        }
    }
}

/// What one node answered. Each field keeps the refusal when the command was refused.
struct Facts {
    addr: String,
    role: Role,
    info: Result<BTreeMap<String, String>, String>,
    config: Result<BTreeMap<String, String>, String>,
    acl: Result<Vec<String>, String>,
}

fn refused(cmd: &str, e: &redis::RedisError) -> String {
    format!("{cmd} refused: {e}")
}

fn gather(conn: &mut Connection, addr: &str, role: Role) -> Facts {
    let info = redis::cmd("INFO")
        .query::<String>(conn)
        .map(|t| nodes::info_fields(&t).into_iter().collect())
        .map_err(|e| refused("INFO", &e));
    let config = redis::cmd("CONFIG")
        .arg("GET")
        .arg("*")
        .query::<Value>(conn)
        .map(|v| nodes::pairs(&v).into_iter().collect())
        .map_err(|e| refused("CONFIG GET", &e));
    let acl = redis::cmd("ACL")
        .arg("LIST")
        .query::<Value>(conn)
        .map(|v| nodes::texts(&v))
        .map_err(|e| refused("ACL LIST", &e));
    Facts {
        addr: addr.to_owned(),
        role,
        info,
        config,
        acl,
    }
}

/// Checks every node behind `url`. `Err` when no node could be reached at all.
pub fn diagnose(url: &str) -> Result<Report, String> {
    if url.starts_with("memory") {
        return Err(format!(
            "{url:?} is the embedded memory store; pass --url redis://... or a config with [backend] url"
        ));
    }
    diagnose_url(&RedisUrl::parse(url).map_err(|e| e.to_string())?)
}

/// [`diagnose`] on a parsed URL (what the service keeps, since its `Debug` hides the
/// password).
pub fn diagnose_url(parsed: &RedisUrl) -> Result<Report, String> {
    let own = parsed.username().unwrap_or_else(|| "default".into());
    let found = nodes::discover(parsed)?;
    let kind = found.kind;
    let mut facts = Vec::new();
    let mut unreachable = Vec::new();
    let mut per_node: Vec<(String, Vec<Check>)> = Vec::new();
    for mut n in found.nodes {
        match &mut n.conn {
            Ok(conn) => {
                let f = gather(conn, &n.addr, n.role);
                let mut checks = node_checks(&f, &own);
                checks.push(slowlog_check(conn));
                checks.push(users_check(conn, &f, &own));
                if n.role == Role::Master {
                    checks.push(ttl_check(conn, &f));
                }
                if kind == RedisKind::Cluster {
                    checks.push(cluster_check(conn));
                }
                per_node.push((n.addr.clone(), checks));
                facts.push(f);
            }
            Err(e) => unreachable.push(format!("{}: {e}", n.addr)),
        }
    }
    if facts.is_empty() {
        return Err(format!("no node answered: {}", unreachable.join("; ")));
    }
    let mut checks = merge(per_node);
    if facts.len() + unreachable.len() > 1 {
        checks.push(if unreachable.is_empty() {
            pass("nodes", format!("all {} nodes answer", facts.len()))
        } else {
            check(
                "nodes",
                Status::Fail,
                format!("unreachable: {}", unreachable.join("; ")),
                "bring the node back or remove it from the deployment",
            )
        });
        checks.push(acl_consistency(&facts));
    }
    Ok(Report {
        target: found.display,
        checks,
    })
}

/// One check per id: the worst node's verdict, naming the node when there are several.
fn merge(per_node: Vec<(String, Vec<Check>)>) -> Vec<Check> {
    let many = per_node.len() > 1;
    let mut order: Vec<String> = Vec::new();
    let mut by_id: BTreeMap<String, Vec<(String, Check)>> = BTreeMap::new();
    for (addr, checks) in per_node {
        for c in checks {
            if !by_id.contains_key(&c.id) {
                order.push(c.id.clone());
            }
            by_id
                .entry(c.id.clone())
                .or_default()
                .push((addr.clone(), c));
        }
    }
    order
        .into_iter()
        .map(|id| {
            let all = &by_id[&id];
            let worst = all
                .iter()
                .map(|(_, c)| c.status)
                .max()
                .unwrap_or(Status::Pass);
            let same: Vec<&(String, Check)> =
                all.iter().filter(|(_, c)| c.status == worst).collect();
            let (addr, first) = same[0];
            let mut c = first.clone();
            if many && (worst != Status::Pass || all.iter().any(|(_, o)| o.message != c.message)) {
                c.message = match same.len() {
                    1 => format!("{addr}: {}", c.message),
                    n => format!("{addr} (and {} more): {}", n - 1, c.message),
                };
            }
            c
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_node_decides_and_is_named() {
        let merged = merge(vec![
            ("a:1".into(), vec![pass("x", "fine")]),
            ("b:2".into(), vec![check("x", Status::Warn, "meh", "do")]),
        ]);
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].status, Status::Warn);
        assert_eq!(merged[0].message, "b:2: meh");
        let merged = merge(vec![
            ("a:1".into(), vec![pass("x", "fine")]),
            ("b:2".into(), vec![pass("x", "fine")]),
        ]);
        assert_eq!(merged[0].message, "fine");
    }
}
