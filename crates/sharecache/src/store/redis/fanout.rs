//! One logical call spread over the slots and nodes it touches: the only place that asks
//! which topology the backend runs on (with [`Exec`]'s routing).
//!
//! * Multi-key commands (`MGET`, `UNLINK`) go as one command per slot, one pipeline per
//!   node, all nodes at once, over the direct routes; without them through the cluster
//!   connection, which splits by slot. On one server: commands of at most
//!   [`MULTI_BATCH`] keys, so no single command blocks the server for long.
//! * Per-key pipelines and atomic groups are cut by slot ([`Exec::slot_groups`]).
//! * Whole-keyspace work (SCAN, stats) walks every node ([`Exec::nodes`]): the server,
//!   or every cluster master in turn. A cluster listing cursor names the shard
//!   (`<first slot>-<node cursor>`); a standalone one is the server's cursor.
//!
//! **Guarantee**: no multi-key command ever spans two slots, so no `CROSSSLOT` reaches a
//! caller.

use std::collections::HashMap;

use super::exec::Exec;
use super::link::Link;
use super::url::key_slot;
use crate::error::{Error, ErrorKind, Result};

/// Keys per `MGET`/`MSET`/`UNLINK` command, and per `SCAN` step of a pattern delete.
pub(crate) const MULTI_BATCH: usize = 1000;
/// SCAN calls one cluster listing page may make before it returns what it has.
const MAX_SCAN_STEPS: usize = 16;

/// Where a whole-keyspace command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Node {
    /// The one server (standalone, or the master Sentinel names).
    Server,
    /// The master of the cluster shard that serves this slot.
    Shard(u16),
}

impl Exec {
    /// Key indexes grouped so that one pipeline or `MULTI` may carry each group: all keys
    /// on one server, one group per hash slot on a cluster.
    pub(crate) fn slot_groups<'a>(&self, keys: impl Iterator<Item = &'a str>) -> Vec<Vec<usize>> {
        if !self.link.is_cluster() {
            return vec![keys.enumerate().map(|(i, _)| i).collect()];
        }
        let mut groups: HashMap<u16, Vec<usize>> = HashMap::new();
        for (i, k) in keys.enumerate() {
            groups.entry(key_slot(k.as_bytes())).or_default().push(i);
        }
        groups.into_values().collect()
    }

    /// Runs one pipeline per group of [`slot_groups`](Self::slot_groups), all at once;
    /// `add` appends key `i`'s command. Returns one reply per key, in key order.
    pub(crate) async fn per_key<T: redis::FromRedisValue>(
        &self,
        keys: &[String],
        add: impl Fn(&mut redis::Pipeline, usize),
    ) -> Result<Vec<T>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let groups = self.slot_groups(keys.iter().map(String::as_str));
        let runs = groups.into_iter().map(|idx| {
            let mut pipe = redis::pipe();
            for &i in &idx {
                add(&mut pipe, i);
            }
            async move { (idx, self.run_pipe::<Vec<T>>(&pipe).await) }
        });
        let mut out: Vec<Option<T>> = (0..keys.len()).map(|_| None).collect();
        for (idx, r) in futures_util::future::join_all(runs).await {
            for (i, v) in idx.into_iter().zip(r?) {
                out[i] = Some(v);
            }
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// Runs `name key...` (`MGET`, `UNLINK`) over `keys` in commands that never span two
    /// slots; returns each command's key indexes with its reply.
    pub(crate) async fn multi_key<T: redis::FromRedisValue>(
        &self,
        keys: &[String],
        name: &str,
    ) -> Result<Vec<(Vec<usize>, T)>> {
        if self.link.is_cluster()
            && let Some(r) = self.by_node(keys, name).await
        {
            return r;
        }
        // One server, or a cluster without direct routes: the cluster connection splits
        // each command by slot.
        let mut out = Vec::new();
        for (n, chunk) in keys.chunks(MULTI_BATCH).enumerate() {
            let start = n * MULTI_BATCH;
            let v: T = self.run(redis::cmd(name).arg(chunk)).await?;
            out.push(((start..start + chunk.len()).collect(), v));
        }
        Ok(out)
    }

    /// Cluster: one `name key...` command per slot, sent as one pipeline per node over
    /// the direct connections, all nodes at once. `None` when a route is unknown or a
    /// node redirected (the slot moved): the caller then uses the cluster connection,
    /// which follows redirects. (A redirect met halfway through an `UNLINK` can make the
    /// returned count low: keys deleted before it are not found again.)
    async fn by_node<T: redis::FromRedisValue>(
        &self,
        keys: &[String],
        name: &str,
    ) -> Option<Result<Vec<(Vec<usize>, T)>>> {
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let groups = self.link.by_node(&refs)?;
        let runs = groups.into_iter().map(|(conn, slots)| {
            let mut pipe = redis::pipe();
            for idx in &slots {
                let c = pipe.cmd(name);
                for &i in idx {
                    c.arg(&keys[i]);
                }
            }
            async move {
                let mut c = conn.clone();
                let r = tokio::time::timeout(
                    self.opts.command_timeout,
                    pipe.query_async::<Vec<T>>(&mut c),
                )
                .await;
                (conn, slots, r)
            }
        });
        let mut out = Vec::new();
        for (conn, slots, r) in futures_util::future::join_all(runs).await {
            match self.settle_direct(&conn, r)? {
                Ok(vals) => out.extend(slots.into_iter().zip(vals)),
                Err(e) => return Some(Err(e)),
            }
        }
        Some(Ok(out))
    }

    /// Every node a whole-keyspace command must visit, in a stable order.
    pub(crate) async fn nodes(&self) -> Result<Vec<Node>> {
        match &*self.link {
            Link::Cluster(cl) => Ok(cl
                .shards()
                .await?
                .into_iter()
                .map(|s| Node::Shard(s.first_slot))
                .collect()),
            Link::Standalone { .. } | Link::Sentinel(_) => Ok(vec![Node::Server]),
        }
    }

    /// Runs `cmd` on `node`.
    pub(crate) async fn on_node<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
        node: Node,
    ) -> Result<T> {
        match (&*self.link, node) {
            (Link::Cluster(cl), Node::Shard(slot)) => {
                match tokio::time::timeout(self.opts.command_timeout, cl.on_slot(cmd, slot)).await {
                    Ok(r) => r,
                    Err(_) => Err(self.timeout_error()),
                }
            }
            _ => self.run(cmd).await,
        }
    }

    /// Deletes every key matching `pattern` on every node, `SCAN` + `UNLINK` in batches
    /// (never `KEYS`); returns how many.
    pub(crate) async fn delete_matching(&self, pattern: &str) -> Result<u64> {
        let mut deleted = 0;
        for node in self.nodes().await? {
            let mut cursor = 0u64;
            loop {
                let (next, keys): (u64, Vec<String>) = self
                    .on_node(&scan_cmd(cursor, pattern, MULTI_BATCH), node)
                    .await?;
                if !keys.is_empty() {
                    let counts = self.multi_key::<u64>(&keys, "UNLINK").await?;
                    deleted += counts.into_iter().map(|(_, n)| n).sum::<u64>();
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(deleted)
    }

    /// One page of a listing of keys matching `pattern`: the keys and the cursor of the
    /// next page (`None` when the walk is complete).
    pub(crate) async fn scan_page(
        &self,
        pattern: &str,
        cursor: Option<&str>,
        count: usize,
    ) -> Result<(Vec<String>, Option<String>)> {
        if !self.link.is_cluster() {
            let start = parse_cursor(cursor)?;
            let (next, keys): (u64, Vec<String>) =
                self.run(&scan_cmd(start, pattern, count.max(1))).await?;
            return Ok((keys, (next != 0).then(|| next.to_string())));
        }
        self.scan_shards(pattern, cursor, count).await
    }

    /// One page of a listing that walks every cluster master in turn.
    async fn scan_shards(
        &self,
        pattern: &str,
        cursor: Option<&str>,
        count: usize,
    ) -> Result<(Vec<String>, Option<String>)> {
        let (slot, mut node_cursor) = parse_cluster_cursor(cursor)?;
        let shards: Vec<u16> = self
            .nodes()
            .await?
            .into_iter()
            .filter_map(|n| match n {
                Node::Shard(s) => Some(s),
                Node::Server => None,
            })
            .collect();
        let mut keys = Vec::new();
        // The shard the cursor names (or the next one, if the topology changed).
        let Some(mut idx) = shards.iter().position(|&s| s >= slot) else {
            return Ok((keys, None));
        };
        if shards[idx] != slot {
            node_cursor = 0;
        }
        // A page keeps scanning (bounded) until it has `count` keys, so sparse nodes do
        // not hand out runs of empty pages.
        let mut steps = 0;
        loop {
            steps += 1;
            let slot = shards[idx];
            let (next, mut page): (u64, Vec<String>) = self
                .on_node(
                    &scan_cmd(node_cursor, pattern, count.max(1)),
                    Node::Shard(slot),
                )
                .await?;
            keys.append(&mut page);
            if next != 0 {
                if keys.len() < count && steps < MAX_SCAN_STEPS {
                    node_cursor = next;
                    continue;
                }
                return Ok((keys, Some(format!("{slot}-{next}"))));
            }
            idx += 1;
            node_cursor = 0;
            if idx == shards.len() {
                return Ok((keys, None));
            }
            if keys.len() >= count || steps >= MAX_SCAN_STEPS {
                return Ok((keys, Some(format!("{}-0", shards[idx]))));
            }
        }
    }
}

fn scan_cmd(cursor: u64, pattern: &str, count: usize) -> redis::Cmd {
    let mut c = redis::cmd("SCAN");
    c.arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(count);
    c
}

fn bad_cursor() -> Error {
    Error::new(
        ErrorKind::InvalidCursor,
        "invalid cursor: pass back the cursor a listing returned",
    )
}

/// A cluster listing cursor: `<first slot of the shard>-<that node's SCAN cursor>`.
fn parse_cluster_cursor(cursor: Option<&str>) -> Result<(u16, u64)> {
    match cursor {
        None => Ok((0, 0)),
        Some(c) => {
            let (slot, node) = c.split_once('-').ok_or_else(bad_cursor)?;
            let slot = slot.parse::<u16>().ok().filter(|s| *s < 16384);
            match (slot, node.parse::<u64>()) {
                (Some(s), Ok(n)) => Ok((s, n)),
                _ => Err(bad_cursor()),
            }
        }
    }
}

fn parse_cursor(cursor: Option<&str>) -> Result<u64> {
    match cursor {
        None => Ok(0),
        Some(c) => c.parse::<u64>().map_err(|_| bad_cursor()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_cursors_are_clear_errors() {
        assert!(parse_cursor(Some("12x")).unwrap_err().kind() == ErrorKind::InvalidCursor);
        assert_eq!(parse_cursor(Some("42")).unwrap(), 42);
        assert_eq!(parse_cluster_cursor(Some("5461-7")).unwrap(), (5461, 7));
        for bad in ["5461", "16384-0", "x-1", "1-y"] {
            assert_eq!(
                parse_cluster_cursor(Some(bad)).unwrap_err().kind(),
                ErrorKind::InvalidCursor,
                "{bad}"
            );
        }
    }
}
