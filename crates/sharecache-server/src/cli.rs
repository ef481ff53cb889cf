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
    /// Copy each service's own Redis into the shared one under its namespace, then verify.
    Migrate(crate::migrate::MigrateArgs),
    /// Write one namespace (every key, its type, value and TTL) to a checksummed file.
    Export(crate::backup::ExportArgs),
    /// Restore a file written by `export` (under its namespace or `--as` another), then verify.
    Import(crate::backup::ImportArgs),
    /// Create or update one Redis ACL user per service from the config, on every node.
    Provision(crate::provision::ProvisionArgs),
    /// Check whether a Redis is set up for production; exit 0 (pass or warn), 1 (a
    /// check failed), 2 (could not connect).
    Doctor(crate::doctor::DoctorArgs),
    /// A client of a running service: keys, get, set, del, ttl, stats, tail.
    #[command(flatten)]
    Client(crate::client::ClientCommand),
}

/// Runs a parsed command line; returns the process exit code.
pub fn main(cli: Cli) -> ExitCode {
    // migrate, export, import, provision and doctor open redis-rs connections of their own.
    sharecache::install_tls_provider();
    if let Err(e) = init_tracing() {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Serve(args) => crate::serve::run_blocking(args),
        Command::Token(cmd) => crate::token::run(cmd),
        Command::Bench(args) => crate::bench::run_blocking(args),
        Command::Migrate(args) => crate::migrate::run_blocking(args),
        Command::Export(args) => crate::backup::export_blocking(args),
        Command::Import(args) => crate::backup::import_blocking(args),
        Command::Provision(args) => crate::provision::run(&args),
        Command::Doctor(args) => return crate::doctor::run(&args),
        Command::Client(cmd) => crate::client::run_blocking(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr at `SHARECACHE_LOG` (an env-filter, default `info`), as text (colour
/// only on a terminal, and never with `NO_COLOR` set) or, with
/// `SHARECACHE_LOG_FORMAT=json`, one JSON object per line.
fn init_tracing() -> Result<(), String> {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("SHARECACHE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let format = std::env::var("SHARECACHE_LOG_FORMAT").unwrap_or_default();
    // `try_init` fails only when a subscriber is already set (tests): keep that one.
    let _ = match format.as_str() {
        "" | "text" => fmt
            .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
            .try_init(),
        "json" => fmt.json().try_init(),
        other => {
            return Err(format!(
                "SHARECACHE_LOG_FORMAT={other:?}: use \"text\" (the default) or \"json\""
            ));
        }
    };
    Ok(())
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
    fn client_commands_parse() {
        let cli = Cli::try_parse_from([
            "sharecache",
            "set",
            "user",
            "k",
            "{\"a\":1}",
            "--ttl",
            "60",
            "--url",
            "http://h:1",
            "--token",
            "t",
            "--json",
        ])
        .unwrap();
        let Command::Client(crate::client::ClientCommand::Set { ttl, conn, .. }) = cli.command
        else {
            panic!("expected set")
        };
        assert_eq!(
            (ttl, conn.url.as_str(), conn.json),
            (Some(60), "http://h:1", true)
        );
        for ok in [
            vec!["sharecache", "keys", "user"],
            vec!["sharecache", "keys", "user", "p:*", "--limit", "5"],
            vec!["sharecache", "get", "user", "k"],
            vec!["sharecache", "del", "user", "k"],
            vec!["sharecache", "ttl", "user", "k"],
            vec!["sharecache", "stats"],
            vec!["sharecache", "tail", "chat", "room:1", "--count", "2"],
        ] {
            assert!(Cli::try_parse_from(&ok).is_ok(), "{ok:?}");
        }
        for bad in [
            vec!["sharecache", "set", "user", "k", "1", "--ttl", "0"],
            vec!["sharecache", "get", "user"],
            vec!["sharecache", "keys", "user", "--limit", "0"],
        ] {
            assert!(
                Cli::try_parse_from(&bad).is_err(),
                "{bad:?} must be refused"
            );
        }
    }

    #[test]
    fn provision_and_doctor_arguments() {
        let cli = Cli::try_parse_from([
            "sharecache",
            "provision",
            "--config",
            "c.toml",
            "--rotate",
            "auth",
            "--finish",
            "--dry-run",
            "--json",
        ])
        .unwrap();
        let Command::Provision(p) = cli.command else {
            panic!("expected provision")
        };
        assert_eq!(
            (p.rotate.as_deref(), p.finish, p.dry_run),
            (Some("auth"), true, true)
        );
        for bad in [
            vec!["sharecache", "provision", "--config", "c", "--finish"],
            vec![
                "sharecache",
                "provision",
                "--config",
                "c",
                "--aclfile",
                "a",
                "--url",
                "redis://h",
            ],
            vec![
                "sharecache",
                "doctor",
                "--url",
                "redis://h",
                "--config",
                "c",
            ],
        ] {
            assert!(
                Cli::try_parse_from(&bad).is_err(),
                "{bad:?} must be refused"
            );
        }
        let cli = Cli::try_parse_from(["sharecache", "doctor", "--url", "redis://h", "--json"]);
        assert!(matches!(cli.unwrap().command, Command::Doctor(d) if d.json));
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

    #[test]
    fn export_and_import_arguments_parse_and_refuse_nonsense() {
        let cli = Cli::try_parse_from([
            "sharecache",
            "export",
            "auth",
            "--to",
            "/tmp/auth.scxp",
            "--from",
            "redis+cluster://127.0.0.1:7000",
            "--key-prefix",
            "p",
            "--json",
        ])
        .unwrap();
        let Command::Export(e) = cli.command else {
            panic!("expected export")
        };
        assert_eq!(
            (e.namespace.as_str(), e.key_prefix.as_deref(), e.json),
            ("auth", Some("p"), true)
        );
        let cli = Cli::try_parse_from([
            "sharecache",
            "import",
            "/tmp/auth.scxp",
            "--to",
            "redis://h:1",
            "--as",
            "auth2",
            "--on-conflict",
            "skip",
        ])
        .unwrap();
        let Command::Import(i) = cli.command else {
            panic!("expected import")
        };
        assert_eq!(i.as_namespace.as_deref(), Some("auth2"));
        assert_eq!(i.on_conflict, crate::migrate::OnConflict::Skip);
        for bad in [
            vec!["sharecache", "export", "auth"],
            vec!["sharecache", "export", "--to", "f"],
            vec!["sharecache", "import"],
            vec!["sharecache", "import", "f", "--on-conflict", "overwrite"],
            vec!["sharecache", "import", "f", "--batch", "0"],
        ] {
            assert!(
                Cli::try_parse_from(&bad).is_err(),
                "{bad:?} must be refused"
            );
        }
    }

    #[test]
    fn migrate_arguments_parse_and_refuse_nonsense() {
        let cli = Cli::try_parse_from([
            "sharecache",
            "migrate",
            "--source",
            "auth=redis://127.0.0.1:6379",
            "--source",
            "user=redis://:pw@127.0.0.1:6380/2",
            "--to",
            "redis+cluster://127.0.0.1:7000",
            "--on-conflict",
            "replace",
            "--checkpoint",
            "/tmp/job.json",
            "--resume",
            "--json",
        ])
        .unwrap();
        let Command::Migrate(m) = cli.command else {
            panic!("expected migrate")
        };
        assert!(m.command.is_none());
        assert_eq!(m.copy.common.sources.len(), 2);
        assert_eq!(m.copy.on_conflict, crate::migrate::OnConflict::Replace);
        assert!(m.copy.resume && m.copy.common.json);
        let cli = Cli::try_parse_from([
            "sharecache",
            "migrate",
            "verify",
            "--source",
            "auth=redis://h:1",
            "--to",
            "redis://h:2",
            "--ttl-tolerance-ms",
            "50",
        ])
        .unwrap();
        let Command::Migrate(m) = cli.command else {
            panic!("expected migrate")
        };
        let Some(crate::migrate::MigrateCommand::Verify(v)) = m.command else {
            panic!("expected verify")
        };
        assert_eq!(v.ttl_tolerance_ms, 50);
        for bad in [
            vec!["sharecache", "migrate", "--resume"],
            vec!["sharecache", "migrate", "--follow", "--dry-run"],
            vec!["sharecache", "migrate", "--enable-notifications"],
            vec!["sharecache", "migrate", "--on-conflict", "overwrite"],
            vec!["sharecache", "migrate", "--batch", "0"],
            vec!["sharecache", "migrate", "verify", "--dry-run"],
        ] {
            assert!(
                Cli::try_parse_from(&bad).is_err(),
                "{bad:?} must be refused"
            );
        }
    }
}
