//! `sharecache keys|get|set|del|ttl|stats|tail` against a real `sharecache serve` on a
//! real Redis: tables and `--json`, the token from the environment, the service's
//! refusals as errors with a failing exit code.

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod support;

use support::serve::{BIN, Served, serve};

/// Runs the client with the token in SHARECACHE_TOKEN (never on the command line).
fn sc(s: &Served, token: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("SHARECACHE_URL", &s.url)
        .env("SHARECACHE_TOKEN", token)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn client_commands_against_a_running_service() {
    let s = serve();
    let u = s.user.as_str();

    assert_eq!(
        ok(&sc(
            &s,
            u,
            &[
                "set",
                "user",
                "profile:1",
                r#"{"name":"Ada"}"#,
                "--ttl",
                "300"
            ]
        )),
        "stored user/profile:1\n"
    );
    ok(&sc(&s, u, &["set", "user", "profile:2", "2"]));
    ok(&sc(&s, u, &["set", "user", "_mget", "\"odd key\""]));
    // Not a TTY: `get` prints the value as stored, for pipes.
    assert_eq!(
        ok(&sc(&s, u, &["get", "user", "profile:1"])),
        "{\"name\":\"Ada\"}\n"
    );
    assert_eq!(ok(&sc(&s, u, &["get", "user", "_mget"])), "\"odd key\"\n");
    assert_eq!(
        ok(&sc(&s, u, &["keys", "user", "profile:*"])),
        "profile:1\nprofile:2\n"
    );
    let json = ok(&sc(&s, u, &["keys", "user", "--json"]));
    let mut keys: Vec<String> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    keys.sort();
    assert_eq!(keys, ["_mget", "profile:1", "profile:2"]);
    assert_eq!(
        ok(&sc(&s, u, &["keys", "user", "--limit", "1"]))
            .lines()
            .count(),
        1
    );

    let ttl = ok(&sc(&s, u, &["ttl", "user", "profile:1"]));
    let secs: f64 = ttl.trim().strip_suffix(" s").unwrap().parse().unwrap();
    assert!(secs > 290.0 && secs <= 300.0, "{ttl}");
    assert_eq!(ok(&sc(&s, u, &["ttl", "user", "profile:2"])), "no expiry\n");
    let j: serde_json::Value =
        serde_json::from_str(&ok(&sc(&s, u, &["ttl", "user", "profile:2", "--json"]))).unwrap();
    assert_eq!(j, serde_json::json!({"ttl_ms": null}));

    assert_eq!(ok(&sc(&s, u, &["del", "user", "profile:2"])), "deleted\n");
    let again = sc(&s, u, &["del", "user", "profile:2"]);
    assert!(!again.status.success());
    assert_eq!(String::from_utf8_lossy(&again.stdout), "no such key\n");
    let miss = sc(&s, u, &["get", "user", "profile:2"]);
    assert!(!miss.status.success());
    assert!(String::from_utf8_lossy(&miss.stderr).contains("404 not_found"));

    // stats: a table for a person, the document with --json; a service sees its own.
    let table = ok(&sc(&s, &s.admin, &["stats"]));
    let header = table.lines().find(|l| l.starts_with("namespace")).unwrap();
    assert!(
        header.contains("keys") && header.contains("hit ratio"),
        "{table}"
    );
    let user_row = table.lines().find(|l| l.starts_with("user ")).unwrap();
    assert_eq!(user_row.split_whitespace().nth(1), Some("2"), "{table}");
    assert!(table.starts_with("backend connected: "), "{table}");
    let doc: serde_json::Value =
        serde_json::from_str(&ok(&sc(&s, u, &["stats", "--json"]))).unwrap();
    let names: Vec<&str> = doc["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["namespace"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["chat", "user"]);

    // Refusals: the viewer may read but not write; a bad token and a bad value.
    assert_eq!(
        ok(&sc(&s, &s.viewer, &["get", "user", "profile:1"])),
        "{\"name\":\"Ada\"}\n"
    );
    let refused = sc(&s, &s.viewer, &["set", "user", "x", "1"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("403 forbidden"));
    let bad = sc(&s, "sc_wrong", &["keys", "user"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("401 unauthorized"));
    let not_json = sc(&s, u, &["set", "user", "x", "text"]);
    assert!(String::from_utf8_lossy(&not_json.stderr).contains("not JSON"));
    let no_token = Command::new(BIN)
        .args(["stats", "--url", &s.url])
        .env_remove("SHARECACHE_TOKEN")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&no_token.stderr).contains("no token"));

    // tail: events published after it subscribed, one line each, then --count stops it.
    let mut tail = Command::new(BIN)
        .args(["tail", "chat", "room:1", "--count", "2", "--json"])
        .env("SHARECACHE_URL", &s.url)
        .env("SHARECACHE_TOKEN", u)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let publish = publisher(&s.url, u);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut sent = 0;
    // Publish until the subscriber has counted two (it may subscribe after the first).
    let status = loop {
        if let Some(st) = tail.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "tail did not see two events");
        sent += 1;
        publish(&format!(r#"{{"n":{sent}}}"#));
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut out = String::new();
    tail.stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(status.success(), "{out}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0]["n"].as_u64().unwrap() < lines[1]["n"].as_u64().unwrap());
}

/// Publishes a JSON body on chat/room:1 over a plain socket (the test has no runtime).
fn publisher(url: &str, token: &str) -> impl Fn(&str) + use<> {
    use std::io::Write;
    use std::net::TcpStream;
    let addr = url.strip_prefix("http://").unwrap().to_owned();
    let token = token.to_owned();
    move |body: &str| {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let req = format!(
            "POST /v1/events/chat/room%3A1 HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    }
}
