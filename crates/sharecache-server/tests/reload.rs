//! SIGHUP reloads the credentials of a real `sharecache serve` from its config file: a
//! service added is let in, one removed is let go, a bad file is refused with the error
//! logged and the running credentials kept; an open event stream stays open through all
//! of it, unless its credential loses the namespace, which ends it (`event: revoked`).

mod support;

use std::time::Duration;

use futures_util::StreamExt;
use sharecache_server::auth::{hash_token, new_token};
use support::serve::{Served, serve};

fn hangup(s: &Served) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(s.child.id() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
}

async fn put(s: &Served, token: &str, path: &str) -> u16 {
    support::client()
        .put(format!("{}{path}", s.url))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body("1")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn sighup_reloads_the_credentials_without_dropping_connections() {
    let s = tokio::task::spawn_blocking(serve).await.unwrap();
    let original = std::fs::read_to_string(&s.config).unwrap();
    assert_eq!(put(&s, &s.user, "/v1/cache/user/k").await, 204);
    // Event streams opened before any reload: the admin's, and the service's.
    let mut admin_events = subscribe(&s, &s.admin).await;
    let mut user_events = subscribe(&s, &s.user).await;

    // A service added to the file.
    let late = new_token();
    let with_late = format!(
        "{original}\n[[services]]\nname = \"late\"\ntoken_sha256 = \"{}\"\nwrite = [\"room\"]\n",
        hex::encode(hash_token(&late))
    );
    assert_eq!(put(&s, &late, "/v1/cache/room/k").await, 401, "not yet");
    std::fs::write(&s.config, &with_late).unwrap();
    hangup(&s);
    let line = s
        .wait_for_line("SIGHUP", Duration::from_secs(10))
        .expect("the reload is logged");
    assert!(
        line.contains("reloaded the credentials") && line.contains("services=2"),
        "{line}"
    );
    assert_eq!(put(&s, &late, "/v1/cache/room/k").await, 204);
    assert_eq!(put(&s, &s.user, "/v1/cache/user/k").await, 204);

    // A broken file is refused and changes nothing.
    std::fs::write(&s.config, "[[services]\nname = ").unwrap();
    hangup(&s);
    let line = s
        .wait_for_line("SIGHUP", Duration::from_secs(10))
        .expect("the refusal is logged");
    assert!(
        line.contains("refused") && line.contains("stay in force"),
        "{line}"
    );
    assert_eq!(put(&s, &late, "/v1/cache/room/k").await, 204);
    assert_eq!(put(&s, &s.user, "/v1/cache/user/k").await, 204);

    // A service removed is let go; the others stay.
    let without_user = with_late
        .replace("name = \"user\"", "name = \"gone\"")
        .replace(
            &hex::encode(hash_token(&s.user)),
            &hex::encode(hash_token(&new_token())),
        );
    std::fs::write(&s.config, &without_user).unwrap();
    hangup(&s);
    let line = s.wait_for_line("SIGHUP", Duration::from_secs(10)).unwrap();
    assert!(line.contains("reloaded"), "{line}");
    assert_eq!(put(&s, &s.user, "/v1/cache/user/k").await, 401);
    assert_eq!(put(&s, &late, "/v1/cache/room/k").await, 204);
    // The removed service's open stream is ended, saying why.
    let (ended, seen) = read_until(&mut user_events, "event: revoked").await;
    assert!(ended && seen.contains("credential_revoked"), "{seen}");

    // The stream opened at the start still delivers.
    let r = support::client()
        .post(format!("{}/v1/events/user/news", s.url))
        .bearer_auth(&s.admin)
        .header("content-type", "application/json")
        .body(r#"{"after":"reloads"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (got, seen) = read_until(&mut admin_events, "reloads").await;
    assert!(
        got,
        "the admin's stream stayed open through three reloads: {seen}"
    );
}

type Events =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<axum::body::Bytes>> + Send>>;

async fn subscribe(s: &Served, token: &str) -> Events {
    let r = reqwest::Client::new()
        .get(format!("{}/v1/events/user/news", s.url))
        .bearer_auth(token)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    Box::pin(r.bytes_stream())
}

/// Reads the stream (at most 10 s) until `needle` shows; whether it did, and what came.
async fn read_until(events: &mut Events, needle: &str) -> (bool, String) {
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = events.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if seen.contains(needle) {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    (found, seen)
}
