//! The sharecache service and command-line tool.
//!
//! # Layout
//!
//! * [`cli`]: the clap command tree and the dispatch of each subcommand.
//! * [`serve`]: `sharecache serve`: config, cache, HTTP server, graceful shutdown.
//! * [`config`]: `sharecache.toml` parsing and validation, environment overrides.
//! * [`auth`]: tokens (SHA-256 hashes, constant-time comparison), grants per service.
//! * [`http`]: the HTTP API v1: the routes (each declared once, with its OpenAPI entry),
//!   the permission extractors, the error policy, one file per route family (cache, rate
//!   limits, locks, sessions, events, queues, presence, operations), the dashboard with
//!   its logins, audit log, key browser and the views of each namespace's primitives.
//! * [`metrics`]: Prometheus metrics.
//! * [`token`]: `sharecache token new|hash`.
//! * [`client`]: `sharecache keys|get|set|del|ttl|stats|tail`, a client of a running
//!   service over the HTTP API (tables on a terminal, `--json`).
//! * [`bench`](mod@bench): `sharecache bench`, a load generator that drives the library API.
//! * [`migrate`]: `sharecache migrate` and `migrate verify`: per-service Redis into the
//!   shared one under namespaces (`endpoint`: connections and batches per topology;
//!   `copy`: copy, conflict pre-check, dry run; `bytype`: the chunked per-type copy;
//!   `follow`: changes after the snapshot; `verify`; `value`: TTLs and value digests;
//!   `checkpoint`; `progress`).
//! * [`backup`]: `sharecache export` and `import`: one namespace to a versioned,
//!   checksummed, compressed file and back (`format`: the file), through migrate's read
//!   and RESTORE paths.
//! * [`provision`]: `sharecache provision`, a Redis ACL user per service on every node
//!   (the rules and their reasons in [`provision::acl`]).
//! * [`doctor`]: `sharecache doctor`, production checks of a Redis (pass, warn, fail,
//!   unknown, each with why and fix), reusable by the service.
//! * [`nodes`]: every data node behind a backend URL (standalone and its replicas,
//!   Cluster, Sentinel), each on its own connection, for `provision` and `doctor`.
//!
//! `src/main.rs` only parses the command line and calls [`cli::main`].

pub mod auth;
pub mod backup;
pub mod bench;
pub mod cli;
pub mod client;
pub mod config;
pub mod doctor;
pub mod http;
pub mod metrics;
pub mod migrate;
pub mod nodes;
pub mod provision;
pub mod serve;
pub mod token;
