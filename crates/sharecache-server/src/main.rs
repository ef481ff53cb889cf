//! The `sharecache` binary: parses the command line and hands over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    sharecache_server::cli::main(sharecache_server::cli::Cli::parse())
}
