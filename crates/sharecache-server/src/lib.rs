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
//!   limits, locks, sessions, events, queues, presence, operations), the dashboard.
//! * [`metrics`]: Prometheus metrics.
//! * [`token`]: `sharecache token new|hash`.
//! * [`bench`](mod@bench): `sharecache bench`, a load generator that drives the library API.
//!
//! `src/main.rs` only parses the command line and calls [`cli::main`].

pub mod auth;
pub mod bench;
pub mod cli;
pub mod config;
pub mod http;
pub mod metrics;
pub mod serve;
pub mod token;
