//! The `sharecache` binary: parses the command line and hands over to the library.

use clap::Parser;

// glibc malloc showed up at ~12% of the service's CPU under load (perf, HTTP GET at 50
// connections); mimalloc's thread-local free lists are cheaper for hyper's small buffers.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    sharecache_server::cli::main(sharecache_server::cli::Cli::parse())
}
