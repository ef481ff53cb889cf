//! The Redis backend: standalone, Cluster or Sentinel, split by role. Imports run one
//! way, top to bottom:
//!
//! * `commands`: the [`Kv`](super::Kv) and [`Coord`](super::Coord) operations as Redis
//!   commands and scripts. It never asks which topology it runs on.
//! * `scripts` (and `lua/`): every Lua script, one file each, each tested on a real
//!   server.
//! * `fanout`: one call spread over the slots and nodes it touches (multi-key commands,
//!   per-slot pipelines, SCAN over every master).
//! * `exec`: one request under the command timeout, routed to its slot's master on a
//!   cluster, its failure reported to the link.
//! * `link/`: the connections of each topology (`cluster`, `sentinel`, `node`), shared
//!   with the L1 tracking task and the events hub.
//! * `url`: backend URLs, node addresses, key slots, options, redaction.
//!
//! One multiplexed connection per node is shared by every task: the commands of
//! concurrent callers are pipelined onto one socket, which is what lets many callers in
//! one process outrun one-request-per-connection clients.
//!
//! **Guarantees**: every command runs under our own timeout, so a stalled server costs a
//! caller at most `command_timeout`; clear and pattern delete use `SCAN` + `UNLINK` in
//! batches, never `KEYS` or `FLUSHDB`; on a cluster no multi-key command spans two slots
//! (`mset` and the per-key pipelines are atomic per slot group, not as a whole batch) and
//! scripts touch keys of one hash tag only.

mod commands;
mod exec;
mod fanout;
pub(crate) mod link;
mod scripts;
pub(crate) mod url;

use std::sync::Arc;

use exec::Exec;
use link::Link;
use url::{RedisOptions, Topology};

use crate::error::{Error, Result};

/// A Redis deployment as a store.
pub(crate) struct RedisStore {
    exec: Exec,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.exec.display)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Creates the store without waiting for a connection: the first command (or the
    /// caller's ping) connects. A bad URL is an error here.
    pub(crate) fn open(url: &str, opts: RedisOptions) -> Result<Self> {
        let topo = Topology::parse(url)?;
        let link = Arc::new(Link::open(&topo, opts)?);
        Ok(Self {
            exec: Exec {
                display: topo.display(),
                link,
                opts,
            },
        })
    }

    /// The connection, shared with the L1 tracking task and the events hub.
    pub(crate) fn link(&self) -> Arc<Link> {
        self.exec.link.clone()
    }

    /// One connection attempt, so that refused credentials, a wrong database index or an
    /// unknown sentinel master surface as a clear configuration error at start instead of
    /// as timeouts. `Ok(Err(_))` is "unreachable right now" (a fallback may take over).
    pub(crate) async fn check(&self) -> Result<std::result::Result<(), Error>> {
        let opts = self.exec.opts;
        match tokio::time::timeout(
            opts.connect_timeout + opts.command_timeout * 2,
            self.exec.link.check(),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Ok(Err(self.exec.timeout_error())),
        }
    }

    /// The URL without its password, for logs and errors.
    pub(crate) fn display_url(&self) -> &str {
        &self.exec.display
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn bad_urls_are_clear_errors() {
        let opts = RedisOptions {
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_secs(1),
        };
        let e = RedisStore::open("http://localhost", opts).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
    }
}
