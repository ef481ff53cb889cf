//! `sharecache provision`: one Redis ACL user per `[[services]]` entry, on every node, so
//! that a service speaking RESP to the shared Redis is confined to its namespaces by Redis
//! itself. The rules and why each is there: [`acl`].
//!
//! **Guarantees**
//!
//! * Idempotent: each node's user is compared with what the config asks for (`ACL
//!   GETUSER`, commands compared by effect) and written only when they differ; a re-run
//!   with an unchanged config writes nothing and says "no change".
//! * Passwords are 256-bit random, kept in Redis only as `#<sha256>`, shown once. A
//!   user that exists keeps its passwords; `--rotate` adds one, `--rotate --finish`
//!   keeps only the newest.
//! * Users are removed only with `--prune`, only if their name starts with `sc-`, and
//!   never the user sharecache itself connects as.
//! * Every node is written (ACLs are not replicated); a node that cannot be reached or
//!   refuses is reported and the rest are still written; the exit status is then
//!   non-zero. Nodes that held different rules or passwords for a user are reported.

pub mod acl;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use redis::{Connection, Value};
use serde::Serialize;
use sharecache::RedisUrl;

use self::acl::{CommandTable, CurrentUser, UserSpec};
use crate::auth::{hash_token, new_token};
use crate::config::Config;
use crate::nodes::{self, Node, Role};

/// Users whose name starts with this are sharecache's to prune.
pub const MANAGED_PREFIX: &str = "sc-";

/// Arguments of `sharecache provision`.
#[derive(Debug, Clone, Args)]
pub struct ProvisionArgs {
    /// The config whose `[[services]]` grants become ACL users.
    #[arg(long, env = "SHARECACHE_CONFIG")]
    pub config: PathBuf,
    /// The Redis to provision (default: `[backend] url`, or `REDIS_URL`). Its user must
    /// be allowed `ACL SETUSER`, `GETUSER`, `USERS`, `CAT`, `DELUSER` and `COMMAND LIST`.
    #[arg(long)]
    pub url: Option<String>,
    /// Print the ACL lines and the differences; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Remove `sc-` users that are no longer in the config.
    #[arg(long)]
    pub prune: bool,
    /// Print the result as one JSON object (passwords included).
    #[arg(long)]
    pub json: bool,
    /// Write the users into this aclfile (mode 0600) instead of talking to Redis; other
    /// users' lines in it are kept.
    #[arg(long, value_name = "PATH", conflicts_with = "url")]
    pub aclfile: Option<PathBuf>,
    /// Write new passwords to this file (mode 0600, `user password` lines) instead of
    /// printing them.
    #[arg(long, value_name = "PATH")]
    pub password_file: Option<PathBuf>,
    /// Give this service's user a new password; the old one keeps working until
    /// `--rotate SERVICE --finish`.
    #[arg(long, value_name = "SERVICE")]
    pub rotate: Option<String>,
    /// With --rotate: keep only the newest password.
    #[arg(long, requires = "rotate")]
    pub finish: bool,
}

/// What provisioning should do, without the file and output choices.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Compare and report only.
    pub dry_run: bool,
    /// Remove `sc-` users not in the config.
    pub prune: bool,
    /// Rotate this service's password.
    pub rotate: Option<String>,
    /// Finish the rotation (keep the newest password only).
    pub finish: bool,
}

/// What happened to one user on one node.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UserResult {
    /// The ACL user.
    pub user: String,
    /// `create`, `update`, `unchanged`, `delete`, `kept` (not in the config, no
    /// `--prune`) or `error`.
    pub action: String,
    /// The differences (for `update`), or the error.
    pub diff: Vec<String>,
}

/// One node's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct NodeResult {
    /// `host:port`.
    pub node: String,
    /// Its role.
    pub role: Role,
    /// Why nothing (or not everything) was done there.
    pub error: Option<String>,
    /// Each user.
    pub users: Vec<UserResult>,
}

/// The outcome of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The Redis URL without its password (or the aclfile path).
    pub target: String,
    /// Nothing was changed.
    pub dry_run: bool,
    /// Per node.
    pub nodes: Vec<NodeResult>,
    /// Users whose rules or passwords differed between nodes before this run.
    pub disagreements: Vec<String>,
    /// New passwords by user, shown once.
    pub passwords: BTreeMap<String, String>,
    /// The `ACL SETUSER` line of each configured user (passwords as hashes).
    pub acl: BTreeMap<String, String>,
    /// Every node was reached and did what was asked.
    pub ok: bool,
}

/// Runs `sharecache provision`.
pub fn run(args: &ProvisionArgs) -> anyhow::Result<()> {
    let mut cfg = Config::load(&args.config)?;
    cfg.apply_env()?;
    let opts = Options {
        dry_run: args.dry_run,
        prune: args.prune,
        rotate: args.rotate.clone(),
        finish: args.finish,
    };
    let mut report = match &args.aclfile {
        Some(path) => provision_aclfile(&cfg, path, &opts)?,
        None => {
            let url = args.url.clone().unwrap_or_else(|| cfg.backend.url.clone());
            provision(&cfg, &url, &opts)?
        }
    };
    if let Some(path) = &args.password_file
        && !report.passwords.is_empty()
    {
        let text: String = report
            .passwords
            .iter()
            .map(|(u, p)| format!("{u} {p}\n"))
            .collect();
        write_private(path, &text)?;
        report.passwords.clear();
        eprintln!("new passwords written to {} (mode 0600)", path.display());
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    } else {
        print_text(&mut out, &report)?;
    }
    if !report.ok {
        bail!("provisioning did not complete on every node; see the errors above");
    }
    Ok(())
}

/// The users the config asks for.
pub fn specs(cfg: &Config) -> Vec<UserSpec> {
    let ns =
        |v: &[toml::Spanned<String>]| v.iter().map(|s| s.get_ref().clone()).collect::<Vec<_>>();
    cfg.services
        .iter()
        .map(|s| {
            UserSpec::new(
                s.acl_user(),
                s.name.get_ref().clone(),
                &ns(&s.read),
                &ns(&s.write),
                cfg.backend.key_prefix.as_deref(),
                s.acl_info,
            )
        })
        .collect()
}

/// Config::parse already refuses bad names; a config built in code is checked here.
fn check_names(specs: &[UserSpec]) -> anyhow::Result<()> {
    match specs
        .iter()
        .find(|s| !crate::config::valid_acl_user(&s.user))
    {
        Some(s) => bail!(
            "service {:?}: {:?} is not a usable Redis ACL user name (1 to 128 of letters, \
             digits, '.', '_', ':', '@' and '-', not \"default\"); set acl_user",
            s.service,
            s.user
        ),
        None => Ok(()),
    }
}

fn check_rotate(specs: &[UserSpec], opts: &Options) -> anyhow::Result<Option<String>> {
    match &opts.rotate {
        None => Ok(None),
        Some(svc) => match specs.iter().find(|s| &s.service == svc) {
            Some(s) => Ok(Some(s.user.clone())),
            None => bail!("--rotate {svc:?}: no [[services]] entry has that name"),
        },
    }
}

/// The password hashes `user` should end with, given what it has; a new password is
/// returned beside them when one is made (never in a dry run, which shows a placeholder).
fn wanted_hashes(
    have: Option<&[String]>,
    rotating: bool,
    finish: bool,
    dry_run: bool,
) -> (Vec<String>, Option<String>) {
    let fresh = || {
        if dry_run {
            ("<new password>".to_owned(), None)
        } else {
            let p = new_token();
            (hex::encode(hash_token(&p)), Some(p))
        }
    };
    match have.filter(|h| !h.is_empty()) {
        None => {
            let (h, p) = fresh();
            (vec![h], p)
        }
        Some(h) if rotating && finish => (h[h.len() - 1..].to_vec(), None),
        Some(h) if rotating => {
            let (n, p) = fresh();
            let mut v = h.to_vec();
            v.push(n);
            (v, p)
        }
        Some(h) => (h.to_vec(), None),
    }
}

/// What one reachable node holds.
struct NodeState {
    users: BTreeMap<String, Option<CurrentUser>>,
    table: CommandTable,
    managed_extra: Vec<String>,
}

fn query(conn: &mut Connection, args: &[&str]) -> Result<Value, String> {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(conn)
        .map_err(|e| format!("{} refused: {e}", args[..2.min(args.len())].join(" ")))
}

fn read_node(conn: &mut Connection, specs: &[UserSpec], own: &str) -> Result<NodeState, String> {
    let all = nodes::texts(&query(conn, &["ACL", "USERS"])?);
    let mut users = BTreeMap::new();
    for s in specs {
        let u = if all.contains(&s.user) {
            Some(get_user(conn, &s.user)?)
        } else {
            None
        };
        users.insert(s.user.clone(), u);
    }
    let wanted: BTreeSet<&str> = specs.iter().map(|s| s.user.as_str()).collect();
    let managed_extra = all
        .into_iter()
        .filter(|u| u.starts_with(MANAGED_PREFIX) && !wanted.contains(u.as_str()) && u != own)
        .collect();
    let mut table = CommandTable {
        commands: nodes::texts(&query(conn, &["COMMAND", "LIST"])?)
            .into_iter()
            .map(|c| c.to_ascii_lowercase())
            .collect(),
        ..Default::default()
    };
    let mut cats = BTreeSet::new();
    for s in specs {
        cats.extend(CommandTable::categories_in(&s.commands));
    }
    for u in users.values().flatten() {
        cats.extend(CommandTable::categories_in(&acl::split_rules(&u.commands)));
    }
    for cat in cats {
        let members = nodes::texts(&query(conn, &["ACL", "CAT", &cat])?);
        table.categories.insert(cat, members);
    }
    Ok(NodeState {
        users,
        table,
        managed_extra,
    })
}

fn get_user(conn: &mut Connection, user: &str) -> Result<CurrentUser, String> {
    let v = query(conn, &["ACL", "GETUSER", user])?;
    let mut cur = CurrentUser::default();
    for (k, v) in nodes::pairs_raw(&v) {
        match k.as_str() {
            "flags" => cur.flags = nodes::texts(&v),
            "passwords" => cur.passwords = nodes::texts(&v),
            "commands" => cur.commands = nodes::text(&v).unwrap_or_default(),
            "keys" => cur.keys = nodes::texts(&v).join(" "),
            "channels" => cur.channels = nodes::texts(&v).join(" "),
            "selectors" => {
                cur.selectors = match v {
                    Value::Array(a) => a.len(),
                    _ => 0,
                }
            }
            _ => {}
        }
    }
    Ok(cur)
}

/// Provisions every node behind `url`.
pub fn provision(cfg: &Config, url: &str, opts: &Options) -> anyhow::Result<Report> {
    if url.starts_with("memory") {
        bail!("provision needs a Redis URL, not {url:?}; pass --url or set [backend] url");
    }
    let parsed = RedisUrl::parse(url).map_err(|e| anyhow::anyhow!("{e}"))?;
    let own = parsed.username().unwrap_or_else(|| "default".into());
    let specs = specs(cfg);
    check_names(&specs)?;
    if let Some(s) = specs.iter().find(|s| s.user == own) {
        bail!(
            "service {:?} would be ACL user {own:?}, the user sharecache connects as; \
             give the service another acl_user",
            s.service
        );
    }
    let rotating = check_rotate(&specs, opts)?;
    let found = nodes::discover(&parsed).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut states: Vec<(Node, Result<NodeState, String>)> = found
        .nodes
        .into_iter()
        .map(|mut n| {
            let st = match &mut n.conn {
                Ok(c) => read_node(c, &specs, &own)
                    .map_err(|e| format!("{e} (for the user in the URL, {own:?})")),
                Err(e) => Err(format!("unreachable: {e}")),
            };
            (n, st)
        })
        .collect();

    let mut report = Report {
        target: found.display,
        dry_run: opts.dry_run,
        nodes: Vec::new(),
        disagreements: Vec::new(),
        passwords: BTreeMap::new(),
        acl: BTreeMap::new(),
        ok: true,
    };

    // One password set per user for every node: the first node (masters first) that has
    // the user with passwords is the reference.
    let mut hashes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in &specs {
        let have = states
            .iter()
            .filter_map(|(_, st)| st.as_ref().ok()?.users.get(&s.user)?.as_ref())
            .find(|u| !u.passwords.is_empty())
            .map(|u| u.passwords.clone());
        let rot = rotating.as_deref() == Some(s.user.as_str());
        let (h, new) = wanted_hashes(have.as_deref(), rot, opts.finish, opts.dry_run);
        if let Some(p) = new {
            report.passwords.insert(s.user.clone(), p);
        }
        report.acl.insert(
            s.user.clone(),
            format!("ACL SETUSER {} {}", s.user, s.setuser_args(&h).join(" ")),
        );
        hashes.insert(s.user.clone(), h);
        // Did the nodes agree before this run?
        let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (n, st) in &states {
            let Ok(st) = st else { continue };
            let key = match st.users.get(&s.user).and_then(Option::as_ref) {
                None => "absent".to_owned(),
                Some(u) => {
                    let mut p = u.passwords.clone();
                    p.sort();
                    format!("{}|{}", u.rules_fingerprint(&st.table), p.join(","))
                }
            };
            seen.entry(key).or_default().push(n.addr.clone());
        }
        if seen.len() > 1 {
            let groups: Vec<String> = seen
                .iter()
                .map(|(k, v)| {
                    let what = if k == "absent" {
                        "no such user"
                    } else {
                        "one version"
                    };
                    format!("{what} on {}", v.join(", "))
                })
                .collect();
            report.disagreements.push(format!(
                "nodes disagree on {}: {}; this run makes them equal",
                s.user,
                groups.join("; ")
            ));
        }
    }

    for (node, st) in &mut states {
        let mut res = NodeResult {
            node: node.addr.clone(),
            role: node.role,
            error: None,
            users: Vec::new(),
        };
        match (st, &mut node.conn) {
            (Err(e), _) | (Ok(_), Err(e)) => {
                res.error = Some(e.clone());
                report.ok = false;
            }
            (Ok(st), Ok(conn)) => {
                for s in &specs {
                    let h = &hashes[&s.user];
                    let (action, diff) = match st.users.get(&s.user).and_then(Option::as_ref) {
                        None => ("create", Vec::new()),
                        Some(cur) => {
                            let d = acl::diff(s, h, cur, &st.table);
                            (if d.is_empty() { "unchanged" } else { "update" }, d)
                        }
                    };
                    let mut r = UserResult {
                        user: s.user.clone(),
                        action: action.into(),
                        diff,
                    };
                    if action != "unchanged" && !opts.dry_run {
                        let mut args = vec!["ACL", "SETUSER", &s.user];
                        let rules = s.setuser_args(h);
                        args.extend(rules.iter().map(String::as_str));
                        if let Err(e) = query(conn, &args) {
                            r.action = "error".into();
                            r.diff = vec![format!(
                                "ACL SETUSER {} refused for {own:?}, the user in the URL: {}",
                                s.user,
                                e.trim_start_matches("ACL SETUSER refused: ")
                            )];
                            report.ok = false;
                        }
                    }
                    res.users.push(r);
                }
                for extra in &st.managed_extra {
                    let mut r = UserResult {
                        user: extra.clone(),
                        action: if opts.prune { "delete" } else { "kept" }.into(),
                        diff: if opts.prune {
                            Vec::new()
                        } else {
                            vec!["not in the config; --prune removes it".into()]
                        },
                    };
                    if opts.prune
                        && !opts.dry_run
                        && let Err(e) = query(conn, &["ACL", "DELUSER", extra])
                    {
                        r.action = "error".into();
                        r.diff = vec![format!(
                            "ACL DELUSER {extra} refused for {own:?}, the user in the URL: {}",
                            e.trim_start_matches("ACL DELUSER refused: ")
                        )];
                        report.ok = false;
                    }
                    res.users.push(r);
                }
            }
        }
        report.nodes.push(res);
    }
    Ok(report)
}

/// Writes the users into an aclfile: each configured user's line is replaced (its
/// passwords kept from the file), other lines are kept, `sc-` users not in the config
/// are dropped only with `--prune`.
pub fn provision_aclfile(cfg: &Config, path: &Path, opts: &Options) -> anyhow::Result<Report> {
    let specs = specs(cfg);
    check_names(&specs)?;
    let rotating = check_rotate(&specs, opts)?;
    let old = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let wanted: BTreeSet<&str> = specs.iter().map(|s| s.user.as_str()).collect();
    let mut have: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut kept_lines = Vec::new();
    let mut users = Vec::new();
    for line in old.lines() {
        let mut w = line.split_whitespace();
        match (w.next(), w.next()) {
            (Some("user"), Some(name)) if wanted.contains(name) => {
                let h = w
                    .filter_map(|t| t.strip_prefix('#'))
                    .map(str::to_owned)
                    .collect();
                have.insert(name.to_owned(), h);
            }
            (Some("user"), Some(name)) if name.starts_with(MANAGED_PREFIX) && opts.prune => {
                users.push(UserResult {
                    user: name.to_owned(),
                    action: "delete".into(),
                    diff: Vec::new(),
                });
            }
            _ => kept_lines.push(line.to_owned()),
        }
    }
    let mut report = Report {
        target: path.display().to_string(),
        dry_run: opts.dry_run,
        nodes: Vec::new(),
        disagreements: Vec::new(),
        passwords: BTreeMap::new(),
        acl: BTreeMap::new(),
        ok: true,
    };
    let mut lines = kept_lines;
    for s in &specs {
        let rot = rotating.as_deref() == Some(s.user.as_str());
        let prev = have.get(&s.user);
        let (h, new) = wanted_hashes(prev.map(Vec::as_slice), rot, opts.finish, opts.dry_run);
        if let Some(p) = new {
            report.passwords.insert(s.user.clone(), p);
        }
        let line = s.aclfile_line(&h);
        let same = old.lines().any(|l| l == line);
        users.push(UserResult {
            user: s.user.clone(),
            action: match (prev, same) {
                (None, _) => "create",
                (Some(_), true) => "unchanged",
                (Some(_), false) => "update",
            }
            .into(),
            diff: Vec::new(),
        });
        report.acl.insert(s.user.clone(), line.clone());
        lines.push(line);
    }
    let text = lines.join("\n") + "\n";
    if !opts.dry_run && text != old {
        write_private(path, &text)?;
    }
    report.nodes.push(NodeResult {
        node: path.display().to_string(),
        role: Role::Master,
        error: None,
        users,
    });
    Ok(report)
}

/// Writes `text` to `path`, readable by the owner only (it holds password hashes).
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let tmp = path.with_extension("tmp-sharecache");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

fn print_text(out: &mut impl Write, r: &Report) -> std::io::Result<()> {
    let verb = if r.dry_run {
        " (dry run: nothing changed)"
    } else {
        ""
    };
    writeln!(out, "provision {}{verb}", r.target)?;
    if r.dry_run {
        for line in r.acl.values() {
            writeln!(out, "  {line}")?;
        }
    }
    for d in &r.disagreements {
        writeln!(out, "warning: {d}")?;
    }
    for n in &r.nodes {
        match &n.error {
            Some(e) => writeln!(out, "{} ({}): error: {e}", n.node, n.role)?,
            None => writeln!(out, "{} ({}):", n.node, n.role)?,
        }
        for u in &n.users {
            let what = match (u.action.as_str(), r.dry_run) {
                ("unchanged", _) => "no change",
                ("create", true) => "would be created",
                ("update", true) => "would be updated",
                ("delete", true) => "would be removed",
                ("create", false) => "created",
                ("update", false) => "updated",
                ("delete", false) => "removed",
                ("kept", _) => "kept",
                (other, _) => other,
            };
            writeln!(out, "  {}: {what}", u.user)?;
            for d in &u.diff {
                writeln!(out, "    {d}")?;
            }
        }
    }
    if !r.passwords.is_empty() {
        writeln!(
            out,
            "new passwords (shown once; Redis keeps only their SHA-256; give each to its service):"
        )?;
        for (u, p) in &r.passwords {
            writeln!(out, "  {u}: {p}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_kept_rotated_and_finished() {
        let have = vec!["a".to_owned()];
        assert_eq!(
            wanted_hashes(Some(&have), false, false, false),
            (have.clone(), None)
        );
        let (h, p) = wanted_hashes(Some(&have), true, false, false);
        let p = p.unwrap();
        assert_eq!(h, ["a".to_owned(), hex::encode(hash_token(&p))]);
        assert_eq!(p.len(), 3 + 64, "sc_ and 256 bits in hex");
        assert_eq!(wanted_hashes(Some(&h), true, true, false).0, &h[1..]);
        let (h, p) = wanted_hashes(None, false, false, true);
        assert_eq!((h, p), (vec!["<new password>".to_owned()], None));
    }
}
