//! The checkpoint: per source, a SCAN cursor per node and the counts so far, written
//! after every batch that the target fully answered, so a resumed run redoes at most one
//! batch (whose keys the target then already holds: they count as `unchanged`).
//!
//! **Guarantee**: the file is replaced atomically (written to `FILE.tmp`, synced, renamed),
//! so a `kill -9` at any moment leaves either the old or the new checkpoint, never half.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::SourceReport;

/// Where one node's SCAN stands.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct NodeCursor {
    /// The node's address (a cluster master, or the source itself).
    pub(crate) node: String,
    /// The cursor of the next SCAN.
    pub(crate) cursor: u64,
    /// SCAN returned cursor 0: the node is done.
    pub(crate) done: bool,
    /// The node's `run_id` when the cursor was taken.
    pub(crate) run_id: String,
}

/// One source's progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SourceState {
    /// The source URL without credentials (a resumed job must name the same sources).
    pub(crate) url: String,
    pub(crate) nodes: Vec<NodeCursor>,
    pub(crate) report: SourceReport,
}

/// The whole job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Job {
    pub(crate) version: u32,
    /// The target URL without credentials.
    pub(crate) target: String,
    pub(crate) pattern: String,
    pub(crate) key_prefix: Option<String>,
    pub(crate) sources: Vec<SourceState>,
}

impl Job {
    /// Reads a checkpoint and checks it describes the same job. A node that restarted
    /// since (another `run_id`) starts its SCAN over, with a note on stderr: its old
    /// cursor would skip keys, as the hash seed changed. Keys already copied then count
    /// as `unchanged`.
    pub(crate) fn load(path: &Path, expected: &Job) -> anyhow::Result<Job> {
        let mut job = Self::read(path, expected)?;
        for (s, now) in job.sources.iter_mut().zip(&expected.sources) {
            for (n, fresh) in s.nodes.iter_mut().zip(&now.nodes) {
                if n.run_id != fresh.run_id {
                    eprintln!(
                        "source {} node {} restarted since the checkpoint: its SCAN starts over \
                         (keys already copied count as unchanged)",
                        s.report.namespace, n.node
                    );
                    *n = fresh.clone();
                }
            }
        }
        Ok(job)
    }

    fn read(path: &Path, expected: &Job) -> anyhow::Result<Job> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read the checkpoint {}", path.display()))?;
        let job: Job = serde_json::from_str(&text)
            .with_context(|| format!("the checkpoint {} is not valid", path.display()))?;
        if job.version != 1 {
            bail!(
                "the checkpoint {} has version {}; expected 1",
                path.display(),
                job.version
            );
        }
        let same_sources = job.sources.len() == expected.sources.len()
            && job.sources.iter().zip(&expected.sources).all(|(a, b)| {
                a.url == b.url
                    && a.report.namespace == b.report.namespace
                    && a.nodes
                        .iter()
                        .map(|n| &n.node)
                        .eq(b.nodes.iter().map(|n| &n.node))
            });
        if job.target != expected.target
            || job.pattern != expected.pattern
            || job.key_prefix != expected.key_prefix
            || !same_sources
        {
            bail!(
                "the checkpoint {} is for another job (target {}, sources {}); give the same \
                 --source, --to, --match and --key-prefix, or start without --resume",
                path.display(),
                job.target,
                job.sources
                    .iter()
                    .map(|s| format!("{}={}", s.report.namespace, s.url))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
        Ok(job)
    }

    /// Replaces the file atomically.
    pub(crate) fn save(&self, path: &Path) -> anyhow::Result<()> {
        let tmp: PathBuf = {
            let mut p = path.as_os_str().to_owned();
            p.push(".tmp");
            p.into()
        };
        let body = serde_json::to_vec_pretty(self)?;
        let mut f = std::fs::File::create(&tmp)
            .with_context(|| format!("write the checkpoint {}", tmp.display()))?;
        f.write_all(&body)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
            .with_context(|| format!("replace the checkpoint {}", path.display()))?;
        Ok(())
    }
}
