//! The ACL rules of a service's Redis user, and the comparison with what a node holds.
//!
//! Pure functions: no connection here, so the rules and the diff are unit-tested.
//!
//! # The rules and why
//!
//! | rule | why |
//! | --- | --- |
//! | `reset` | start from nothing, so a rule removed from the config is removed from Redis |
//! | `on`, `#<sha256>` | enabled, with passwords stored only as SHA-256 |
//! | `~ns:*` | read and write every key of a write namespace |
//! | `%R~ns:*` | read-only keys of a read namespace (Redis 7 key permissions) |
//! | `resetchannels`, `&ns:*` | publish/subscribe only on the write namespaces' channels; `reset` alone grants every channel when `acl-pubsub-default` is `allchannels` |
//! | `+@all -@dangerous -@admin` | every data command; nothing that reconfigures, replicates, debugs or spies on the server |
//! | `+info` | back after `-@dangerous` (ioredis's ready check runs INFO), unless `acl_info = false` |
//! | `-scan -keys -randomkey` | key patterns do not confine them: they return other namespaces' key names |
//! | `-flushall -flushdb` | they delete every namespace (already in `@dangerous`; denied by name so that no category change brings them back) |
//! | `-client\|tracking` | broadcast tracking (`BCAST` without `PREFIX`) reports other users' key names on Redis 7.0 |
//! | `-function -script\|flush` | functions and the script cache are global: loading or flushing them affects every service |
//! | `-pubsub\|channels -pubsub\|shardchannels` | they list other namespaces' channel names |
//!
//! Read-only namespaces get no channels: Redis ACLs cannot allow SUBSCRIBE without PUBLISH.

use std::collections::{BTreeMap, BTreeSet};

/// The command rules every service user gets, in order, after `+@all`. INFO is put back
/// after `-@dangerous` by [`command_rules`] unless the service opts out.
const DENIED: &[&str] = &[
    "-scan",
    "-keys",
    "-randomkey",
    "-flushall",
    "-flushdb",
    "-client|tracking",
    "-function",
    "-script|flush",
    "-pubsub|channels",
    "-pubsub|shardchannels",
];

/// The command rules of a service user.
pub fn command_rules(allow_info: bool) -> Vec<String> {
    let mut r = vec!["+@all".to_owned(), "-@dangerous".into(), "-@admin".into()];
    if allow_info {
        r.push("+info".into());
    }
    r.extend(DENIED.iter().map(|s| (*s).to_owned()));
    r
}

/// What a service's user should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSpec {
    /// The ACL user name.
    pub user: String,
    /// The service it belongs to.
    pub service: String,
    /// Key rules: `~p/ns:*` (read-write) and `%R~p/ns:*` (read-only).
    pub keys: Vec<String>,
    /// Channel rules: `&p/ns:*`.
    pub channels: Vec<String>,
    /// Command rules, in order.
    pub commands: Vec<String>,
}

impl UserSpec {
    /// The user of a service with these grants; `prefix` is `[backend] key_prefix`.
    /// A namespace in both lists is written, so it is granted once, read-write.
    pub fn new(
        user: String,
        service: String,
        read: &[String],
        write: &[String],
        prefix: Option<&str>,
        allow_info: bool,
    ) -> Self {
        let head = |ns: &str| sharecache::key::namespace_head(prefix, ns) + "*";
        let write: BTreeSet<&str> = write.iter().map(String::as_str).collect();
        let read: BTreeSet<&str> = read
            .iter()
            .map(String::as_str)
            .filter(|ns| !write.contains(ns))
            .collect();
        let mut keys: Vec<String> = write.iter().map(|ns| format!("~{}", head(ns))).collect();
        keys.extend(read.iter().map(|ns| format!("%R~{}", head(ns))));
        Self {
            user,
            service,
            keys,
            channels: write.iter().map(|ns| format!("&{}", head(ns))).collect(),
            commands: command_rules(allow_info),
        }
    }

    /// The `ACL SETUSER` arguments after the user name, with these password hashes.
    pub fn setuser_args(&self, hashes: &[String]) -> Vec<String> {
        let mut a = vec!["reset".to_owned(), "on".into()];
        a.extend(hashes.iter().map(|h| format!("#{h}")));
        a.extend(self.keys.iter().cloned());
        a.push("resetchannels".into());
        a.extend(self.channels.iter().cloned());
        a.extend(self.commands.iter().cloned());
        a
    }

    /// The user's line in an aclfile (`user NAME rules...`).
    pub fn aclfile_line(&self, hashes: &[String]) -> String {
        // An aclfile line starts from a fresh user, so `reset` is not needed (and is
        // accepted); keep it for the same rules in both places.
        format!("user {} {}", self.user, self.setuser_args(hashes).join(" "))
    }
}

/// What a node holds for a user (`ACL GETUSER`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CurrentUser {
    /// `flags`: `on`/`off`, `nopass`, `sanitize-payload`...
    pub flags: Vec<String>,
    /// Password hashes, oldest first.
    pub passwords: Vec<String>,
    /// The command rules as Redis compacted them.
    pub commands: String,
    /// Key rules, space-separated.
    pub keys: String,
    /// Channel rules, space-separated.
    pub channels: String,
    /// Number of selectors (sharecache never sets any).
    pub selectors: usize,
}

impl CurrentUser {
    /// Everything but the passwords, for telling whether nodes agree on the rules.
    /// Commands count by effect: Redis lists compacted rules in hash-table order, which
    /// differs from one process to the next.
    pub fn rules_fingerprint(&self, table: &CommandTable) -> String {
        let mut flags = self.flags.clone();
        flags.sort();
        let rules = split_rules(&self.commands);
        let allowed = table.allowed(&rules, &table.universe(&[&rules]));
        format!(
            "{}|{}|{}|{}|{}",
            flags.join(","),
            sorted_words(&self.keys),
            sorted_words(&self.channels),
            allowed.into_iter().collect::<Vec<_>>().join(" "),
            self.selectors
        )
    }
}

fn sorted_words(s: &str) -> String {
    let mut w: Vec<&str> = s.split_whitespace().collect();
    w.sort_unstable();
    w.join(" ")
}

/// What Redis knows about commands on one node: every command name and the members of
/// each category a rule names. Command rules are compared by their effect over this
/// universe, because Redis rewrites rules (`-@admin` disappears after `-@dangerous`,
/// `-keys` is folded in) in a version-dependent way, so text comparison would never say
/// "no change".
#[derive(Debug, Clone, Default)]
pub struct CommandTable {
    /// Top-level command names (`COMMAND LIST`), lowercase.
    pub commands: BTreeSet<String>,
    /// `ACL CAT <category>` for each category needed: names and `cmd|sub` entries.
    pub categories: BTreeMap<String, Vec<String>>,
}

impl CommandTable {
    /// The categories that `rules` name (`+@x`, `-@x`), other than `all`.
    pub fn categories_in(rules: &[String]) -> BTreeSet<String> {
        rules
            .iter()
            .filter_map(|r| r.get(1..)?.strip_prefix('@'))
            .filter(|c| *c != "all")
            .map(str::to_ascii_lowercase)
            .collect()
    }

    /// The commands and subcommands `rules` allow, over this table and every name the
    /// rules mention (so that two rule sets are compared over the same universe).
    pub fn allowed(&self, rules: &[String], universe: &BTreeSet<String>) -> BTreeSet<String> {
        let mut allowed = BTreeSet::new();
        let apply = |allowed: &mut BTreeSet<String>, name: &str, add: bool| {
            let sub_prefix = format!("{name}|");
            let hit = universe
                .iter()
                .filter(|u| *u == name || (!name.contains('|') && u.starts_with(&sub_prefix)));
            for u in hit {
                if add {
                    allowed.insert(u.clone());
                } else {
                    allowed.remove(u);
                }
            }
        };
        for rule in rules {
            let rule = rule.to_ascii_lowercase();
            let (add, what) = match rule.as_str() {
                "allcommands" => (true, "@all"),
                "nocommands" => (false, "@all"),
                r => match r.split_at_checked(1) {
                    Some(("+", w)) => (true, w),
                    Some(("-", w)) => (false, w),
                    _ => continue,
                },
            };
            if what == "@all" {
                if add {
                    allowed.extend(universe.iter().cloned());
                } else {
                    allowed.clear();
                }
            } else if let Some(cat) = what.strip_prefix('@') {
                for m in self.categories.get(cat).into_iter().flatten() {
                    apply(&mut allowed, m, add);
                }
            } else {
                apply(&mut allowed, what, add);
            }
        }
        allowed
    }

    /// Every name known to the table or mentioned in any of `rule_sets`.
    pub fn universe(&self, rule_sets: &[&[String]]) -> BTreeSet<String> {
        let mut u = self.commands.clone();
        for members in self.categories.values() {
            u.extend(members.iter().cloned());
        }
        for rules in rule_sets {
            for r in *rules {
                let r = r.to_ascii_lowercase();
                if let Some(name) = r.strip_prefix(['+', '-'])
                    && !name.starts_with('@')
                {
                    u.insert(name.to_owned());
                }
            }
        }
        u
    }
}

/// Splits a compacted rule string (`+@all -@dangerous -scan`) into rules.
pub fn split_rules(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

/// The differences between a node's user and the wanted one, one line each, empty when
/// they are the same. `hashes` are the password hashes the user should end with.
pub fn diff(
    spec: &UserSpec,
    hashes: &[String],
    current: &CurrentUser,
    table: &CommandTable,
) -> Vec<String> {
    let mut out = Vec::new();
    let on = current.flags.iter().any(|f| f == "on");
    if !on {
        out.push("flags: off -> on".to_owned());
    }
    if current.flags.iter().any(|f| f == "nopass") {
        out.push("flags: nopass removed".to_owned());
    }
    let have: BTreeSet<&String> = current.passwords.iter().collect();
    let want: BTreeSet<&String> = hashes.iter().collect();
    let added = want.difference(&have).count();
    let removed = have.difference(&want).count();
    if added > 0 || removed > 0 {
        out.push(format!(
            "passwords: {added} added, {removed} removed ({} -> {})",
            have.len(),
            want.len()
        ));
    }
    let words = |s: &str| {
        s.split_whitespace()
            .map(str::to_owned)
            .collect::<BTreeSet<_>>()
    };
    for (what, have, want) in [
        (
            "keys",
            words(&current.keys),
            spec.keys.iter().cloned().collect(),
        ),
        (
            "channels",
            words(&current.channels),
            spec.channels.iter().cloned().collect::<BTreeSet<_>>(),
        ),
    ] {
        for w in want.difference(&have) {
            out.push(format!("{what}: + {w}"));
        }
        for h in have.difference(&want) {
            out.push(format!("{what}: - {h}"));
        }
    }
    let cur_rules = split_rules(&current.commands);
    let universe = table.universe(&[&cur_rules, &spec.commands]);
    let have = table.allowed(&cur_rules, &universe);
    let want = table.allowed(&spec.commands, &universe);
    let newly: Vec<&String> = want.difference(&have).collect();
    let dropped: Vec<&String> = have.difference(&want).collect();
    if !newly.is_empty() {
        out.push(format!("commands: allow {}", short_list(&newly)));
    }
    if !dropped.is_empty() {
        out.push(format!("commands: deny {}", short_list(&dropped)));
    }
    if current.selectors > 0 {
        out.push(format!("selectors: {} removed", current.selectors));
    }
    out
}

fn short_list(names: &[&String]) -> String {
    const SHOWN: usize = 12;
    let mut s = names
        .iter()
        .take(SHOWN)
        .map(|n| n.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    if names.len() > SHOWN {
        s.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> CommandTable {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        CommandTable {
            commands: [
                "get", "set", "info", "keys", "scan", "flushall", "client", "config",
            ]
            .iter()
            .map(|x| (*x).to_owned())
            .collect(),
            categories: [
                (
                    "dangerous".to_owned(),
                    s(&[
                        "info",
                        "keys",
                        "flushall",
                        "flushdb",
                        "config|set",
                        "client|kill",
                    ]),
                ),
                ("admin".to_owned(), s(&["config|set", "client|kill"])),
            ]
            .into_iter()
            .collect(),
        }
    }

    fn spec() -> UserSpec {
        UserSpec::new(
            "sc-auth".into(),
            "auth".into(),
            &["shared".into(), "auth".into()],
            &["auth".into()],
            None,
            true,
        )
    }

    #[test]
    fn rules_of_a_service() {
        let s = spec();
        assert_eq!(s.keys, ["~auth:*", "%R~shared:*"]);
        assert_eq!(s.channels, ["&auth:*"]);
        let p = UserSpec::new(
            "u".into(),
            "s".into(),
            &[],
            &["a".into()],
            Some("app"),
            false,
        );
        assert_eq!(p.keys, ["~app/a:*"]);
        assert!(!p.commands.contains(&"+info".to_owned()));
        let args = s.setuser_args(&["ab".into()]);
        assert_eq!(&args[..4], ["reset", "on", "#ab", "~auth:*"]);
        assert!(args.contains(&"resetchannels".to_owned()));
    }

    #[test]
    fn compacted_rules_compare_equal_and_changes_are_named() {
        let s = spec();
        let t = table();
        // What Redis 7.0 reports after SETUSER with our rules (compacted).
        let current = CurrentUser {
            flags: vec!["on".into(), "sanitize-payload".into()],
            passwords: vec!["ab".into()],
            commands: "+@all -@dangerous +info -scan -client|tracking -randomkey -function \
                       -script|flush -pubsub|channels -pubsub|shardchannels"
                .into(),
            keys: "%R~shared:* ~auth:*".into(),
            channels: "&auth:*".into(),
            selectors: 0,
        };
        assert_eq!(diff(&s, &["ab".into()], &current, &t), Vec::<String>::new());
        let mut loose = current.clone();
        loose.commands = "+@all".into();
        loose.keys = "~*".into();
        let d = diff(&s, &["ab".into(), "cd".into()], &loose, &t);
        assert!(
            d.contains(&"passwords: 1 added, 0 removed (1 -> 2)".to_owned()),
            "{d:?}"
        );
        assert!(d.contains(&"keys: - ~*".to_owned()), "{d:?}");
        assert!(d.contains(&"keys: + ~auth:*".to_owned()), "{d:?}");
        let deny = d.iter().find(|l| l.starts_with("commands: deny")).unwrap();
        for c in ["keys", "scan", "flushall", "config|set", "client|tracking"] {
            assert!(deny.split(' ').any(|w| w == c), "{c} in {deny}");
        }
        assert!(
            !deny.split(' ').any(|w| w == "info" || w == "get"),
            "{deny}"
        );
    }
}
