//! Redis ACL helpers shared by the `provision` and `doctor` tests: a config with service
//! grants, connections as a given ACL user, and commands whose refusal is the point.

use redis::{Connection, RedisResult, Value};
use sharecache_server::config::Config;

/// A config with `auth` (write `auth`, read `shared`) and `user` (write `user`), plus
/// `extra` appended (more `[[services]]`, a `[backend]`...).
pub fn services_config(extra: &str) -> Config {
    let text = format!(
        "[[services]]\nname = \"auth\"\ntoken_sha256 = \"{}\"\nread = [\"shared\"]\nwrite = [\"auth\"]\n\n\
         [[services]]\nname = \"user\"\ntoken_sha256 = \"{}\"\nwrite = [\"user\"]\n\n{extra}",
        "1".repeat(64),
        "2".repeat(64),
    );
    Config::parse("test.toml", &text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// `redis://user:password@127.0.0.1:port`.
pub fn user_url(port: u16, user: &str, password: &str) -> String {
    format!("redis://{user}:{password}@127.0.0.1:{port}")
}

/// A connection as `user` (AUTH checked at connect), with a 5 s reply timeout.
pub fn login(port: u16, user: &str, password: &str) -> RedisResult<Connection> {
    let c = redis::Client::open(user_url(port, user, password))?
        .get_connection_with_timeout(std::time::Duration::from_secs(5))?;
    c.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    Ok(c)
}

/// Runs one command given as words.
pub fn run(c: &mut Connection, args: &[&str]) -> RedisResult<Value> {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(c)
}

/// Runs a command that must succeed.
#[track_caller]
pub fn ok(c: &mut Connection, args: &[&str]) -> Value {
    run(c, args).unwrap_or_else(|e| panic!("{args:?} must be allowed: {e}"))
}

/// Runs a command that must be refused with NOPERM (or a script's permission error).
#[track_caller]
pub fn denied(c: &mut Connection, args: &[&str]) {
    match run(c, args) {
        Ok(v) => panic!("{args:?} must be refused, got {v:?}"),
        Err(e) => {
            let s = e.to_string();
            assert!(
                s.contains("NOPERM") || s.contains("no permissions") || s.contains("can't access"),
                "{args:?} failed, but not for permissions: {s}"
            );
        }
    }
}
