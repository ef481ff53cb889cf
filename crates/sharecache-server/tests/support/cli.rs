//! The `sharecache` binary run as a user runs it: one subcommand, its output, and the JSON
//! report its `--json` prints as the last line (migrate, export, import).

use std::process::{Command, Output, Stdio};

/// Runs `sharecache SUBCOMMAND ARGS` to its end (stdin closed); the output is echoed to the
/// test's stderr, so a failing test shows what the command said.
pub fn run(subcommand: &str, args: &[&str]) -> Output {
    run_env(subcommand, args, &[])
}

/// [`run`] with these environment variables set for the process.
pub fn run_env(subcommand: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_sharecache"))
        .arg(subcommand)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run sharecache");
    eprintln!(
        "sharecache {subcommand} {args:?}: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The JSON report: the last line of stdout.
pub fn report(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().expect("a report line");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("not JSON ({e}): {last}"))
}

/// The command's stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
