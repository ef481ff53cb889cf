//! The sharecache service and command-line tool.
//!
//! # Layout
//!
//! * [`cli`]: the clap command tree and the dispatch of each subcommand.
//! * [`bench`]: `sharecache bench`, a load generator that drives the library API.
//!
//! `src/main.rs` only parses the command line and calls [`cli::main`].

pub mod bench;
pub mod cli;
