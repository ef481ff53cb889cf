//! The command tree. Each subcommand's arguments live next to the code that runs it.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// sharecache: one shared, namespaced cache and coordination layer for your services.
#[derive(Debug, Parser)]
#[command(name = "sharecache", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (embedded memory store unless a Redis URL is configured).
    Serve(crate::serve::ServeArgs),
    /// Make tokens and their hashes for the config.
    #[command(subcommand)]
    Token(crate::token::TokenCommand),
    /// Drive load through the library API and print ops/s, p50 and p99.
    Bench(crate::bench::BenchArgs),
}

/// Runs a parsed command line; returns the process exit code.
pub fn main(cli: Cli) -> ExitCode {
    init_tracing();
    let result = match cli.command {
        Command::Serve(args) => crate::serve::run_blocking(args),
        Command::Token(cmd) => crate::token::run(cmd),
        Command::Bench(args) => crate::bench::run_blocking(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SHARECACHE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bench_arguments_parse_and_refuse_nonsense() {
        let cli = Cli::try_parse_from([
            "sharecache",
            "bench",
            "--target",
            "memory://",
            "--op",
            "mixed",
            "--concurrency",
            "8",
            "--duration",
            "2",
            "--value-size",
            "64",
            "--keys",
            "100",
            "--json",
        ])
        .unwrap();
        let Command::Bench(b) = cli.command else {
            panic!("expected bench")
        };
        assert_eq!(
            (b.concurrency, b.keys, b.value_size, b.json),
            (8, 100, 64, true)
        );
        let cli = Cli::try_parse_from([
            "sharecache",
            "bench",
            "--op",
            "mget",
            "--batch",
            "50",
            "--keys",
            "10",
        ])
        .unwrap();
        let Command::Bench(b) = cli.command else {
            panic!("expected bench")
        };
        assert_eq!((b.op, b.batch), (crate::bench::Op::Mget, 50));
        // A batch bigger than the key set is refused before anything runs.
        let e = tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(crate::bench::run(&b))
            .unwrap_err();
        assert!(e.to_string().contains("cannot exceed"), "{e}");
        for bad in [
            vec!["sharecache", "bench", "--op", "explode"],
            vec!["sharecache", "bench", "--concurrency", "0"],
            vec!["sharecache", "bench", "--duration", "-1"],
            vec!["sharecache", "bench", "--keys", "0"],
            vec!["sharecache", "bench", "--value-size", "99999999999"],
            vec!["sharecache", "bench", "--op", "mget", "--batch", "0"],
            vec!["sharecache", "bench", "--op", "mget", "--batch", "10001"],
        ] {
            assert!(
                Cli::try_parse_from(&bad).is_err(),
                "{bad:?} must be refused"
            );
        }
    }
}
