//! Node scripts of `tests/node` (ioredis and fetch, pinned in its package-lock.json):
//! the clients the seeds' services use, run against real servers.

/// Runs `tests/node/<script>` with `env`; returns the JSON line it prints. Panics with its
/// output when it fails, and with the install command when ioredis is missing.
pub fn run_node(script: &str, env: &[(&str, &str)]) -> serde_json::Value {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/node");
    assert!(
        std::path::Path::new(dir)
            .join("node_modules/ioredis")
            .exists(),
        "ioredis is not installed: run `npm ci --prefix {dir}` (scripts/test does)"
    );
    let out = std::process::Command::new("node")
        .arg(format!("{dir}/{script}"))
        .envs(env.iter().copied())
        .output()
        .expect("node is installed (scripts/test installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{script} printed {stdout:?}: {e}"))
}
