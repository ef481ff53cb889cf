//! The deploy files (Dockerfile, compose.yaml, deploy/sharecache.service,
//! deploy/sharecache.toml) checked as far as a machine without a container runtime can:
//! they parse, the commands they run are accepted by the CLI, the systemd unit passes
//! `systemd-analyze verify`, and `sharecache doctor` passes on a redis-server started
//! with the flags compose.yaml gives Redis.

use clap::Parser;
use sharecache_server::cli::{Cli, Command};
use sharecache_server::config::Config;
use sharecache_server::doctor::{Status, diagnose};
use sharecache_testkit::{RedisConfig, RedisServer};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn read(rel: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/{rel}")).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// compose.yaml as JSON, through PyYAML (installed with openapi-spec-validator by
/// scripts/test).
fn compose() -> serde_json::Value {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(format!("{ROOT}/compose.yaml"))
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "compose.yaml does not parse as YAML: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected a list, got {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

fn assert_serve(args: &[String], what: &str) {
    let cli =
        Cli::try_parse_from(std::iter::once("sharecache".to_owned()).chain(args.iter().cloned()))
            .unwrap_or_else(|e| panic!("{what}: {args:?}: {e}"));
    assert!(matches!(cli.command, Command::Serve(_)), "{what}: {args:?}");
}

#[test]
fn doctor_passes_on_the_redis_settings_of_compose_yaml() {
    let c = compose();
    let mut args = strings(&c["services"]["redis"]["command"]);
    assert_eq!(args.remove(0), "redis-server");
    // The password comes from .env: the testkit sets it (and uses it for its own probes).
    let i = args
        .iter()
        .position(|a| a == "--requirepass")
        .expect("compose sets a password");
    assert!(
        args[i + 1].contains("${REDIS_PASSWORD"),
        "{:?}",
        args[i + 1]
    );
    args.drain(i..i + 2);
    let server = RedisServer::start_with(RedisConfig {
        password: Some("compose-test-password".into()),
        extra_args: args,
        ..Default::default()
    });
    let r = diagnose(&format!(
        "redis://:compose-test-password@127.0.0.1:{}",
        server.port()
    ))
    .unwrap();
    assert_eq!(r.exit_code(), 0, "{r:#?}");
    let not_passing: Vec<_> = r
        .checks
        .iter()
        .filter(|c| c.status != Status::Pass)
        .map(|c| (c.id.as_str(), c.status))
        .collect();
    // The shared password's default user may run everything: documented in deploy.md.
    assert_eq!(
        not_passing,
        [("security.default-user", Status::Warn)],
        "{r:#?}"
    );

    // sharecache beside it: a command the CLI accepts, the URL from the same password.
    let sc = &c["services"]["sharecache"];
    assert_serve(&strings(&sc["command"]), "compose.yaml sharecache.command");
    let url = sc["environment"]["REDIS_URL"].as_str().unwrap();
    assert!(
        url.contains("${REDIS_PASSWORD") && url.ends_with("@redis:6379"),
        "{url}"
    );
    assert_eq!(
        sc["depends_on"]["redis"]["condition"], "service_healthy",
        "sharecache waits for Redis"
    );
}

#[test]
fn the_dockerfile_builds_in_two_stages_and_runs_as_non_root_with_a_ready_check() {
    let d = read("Dockerfile");
    let from: Vec<&str> = d.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(from.len(), 2, "multi-stage: {from:?}");
    assert!(from[1].contains("slim"), "{from:?}");
    let user = d
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER line");
    assert!(
        !user.starts_with('0') && !user.starts_with("root"),
        "{user}"
    );
    let health = d
        .split("HEALTHCHECK")
        .nth(1)
        .expect("a HEALTHCHECK")
        .split("\nENTRYPOINT")
        .next()
        .unwrap();
    assert!(
        health.contains("/ready") && health.contains(" 200 "),
        "{health}"
    );
    let cmd = d.lines().find_map(|l| l.strip_prefix("CMD ")).unwrap();
    let cmd: Vec<String> = serde_json::from_str(cmd).unwrap();
    assert_serve(&cmd, "Dockerfile CMD");
    // The config the image ships parses.
    let cfg = Config::parse("deploy/sharecache.toml", &read("deploy/sharecache.toml")).unwrap();
    assert_eq!(cfg.server.listen, "0.0.0.0:7070");
    assert!(cfg.server.state_dir.is_absolute());
}

#[test]
fn the_systemd_unit_verifies_and_runs_serve() {
    let unit = read("deploy/sharecache.service");
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let words: Vec<String> = exec.split_whitespace().map(str::to_owned).collect();
    assert_eq!(words[0], "/usr/local/bin/sharecache");
    assert_serve(&words[1..], "ExecStart");
    for needed in [
        "DynamicUser=yes",
        "StateDirectory=sharecache",
        "KillSignal=SIGTERM",
        "NoNewPrivileges=yes",
    ] {
        assert!(unit.contains(needed), "{needed}");
    }
    // systemd-analyze (where installed) checks every directive; the binary path is
    // pointed at the one cargo built.
    let Ok(probe) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
    else {
        eprintln!("systemd-analyze is not installed: only the ExecStart line was checked");
        return;
    };
    assert!(probe.status.success());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sharecache.service");
    std::fs::write(
        &path,
        unit.replace(
            "/usr/local/bin/sharecache",
            env!("CARGO_BIN_EXE_sharecache"),
        ),
    )
    .unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !err.contains("sharecache.service:"),
        "{err}"
    );
}
