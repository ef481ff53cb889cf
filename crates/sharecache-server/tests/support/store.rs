//! The whole store read below the HTTP API, to check that a request changed nothing (or
//! only what it was allowed to).

use std::collections::BTreeMap;

use sharecache::BackendState;
use sharecache_testkit::RespReply;

use super::TestApp;

/// Stored key -> stored bytes, read below the API.
pub type Snap = BTreeMap<String, Vec<u8>>;

fn reply_array(r: RespReply, what: &str) -> Vec<RespReply> {
    match r {
        RespReply::Array(a) => a,
        other => panic!("{what}: expected an array, got {other:?}"),
    }
}

/// Every stored key and its bytes: raw `KEYS`/`MGET` on a Redis the app started; on the
/// other backends every opened namespace walked through the library, checked against the
/// store's key count (so no key hides outside the namespaces walked).
pub async fn snapshot(app: &TestApp) -> Snap {
    let mut out = Snap::new();
    match &app.server {
        Some(server) => {
            assert_eq!(
                app.cache.state(),
                BackendState::Connected,
                "redis must serve every call in these tests"
            );
            let keys: Vec<String> = reply_array(server.cmd(&["KEYS", "*"]), "KEYS")
                .into_iter()
                .map(|r| r.text().expect("key").to_owned())
                .collect();
            if keys.is_empty() {
                return out;
            }
            let mut args = vec!["MGET"];
            args.extend(keys.iter().map(String::as_str));
            let values = reply_array(server.cmd(&args), "MGET");
            assert_eq!(values.len(), keys.len());
            for (k, v) in keys.into_iter().zip(values) {
                let v = v
                    .text()
                    .unwrap_or_else(|| panic!("{k:?} vanished during the snapshot"))
                    .as_bytes()
                    .to_vec();
                out.insert(k, v);
            }
        }
        None => {
            for ns in app.cache.namespaces() {
                let n = app.cache.namespace(&ns).unwrap();
                let mut cursor: Option<String> = None;
                let mut done = false;
                for _ in 0..1000 {
                    let page = n.keys("*", cursor.as_deref(), 100).await.unwrap();
                    for k in page.keys {
                        let v = n
                            .get::<sharecache::RawJson>(&k)
                            .await
                            .unwrap()
                            .unwrap_or_else(|| panic!("{ns}:{k} listed but not readable"));
                        out.insert(format!("{ns}:{k}"), v.as_bytes().to_vec());
                    }
                    match page.cursor {
                        Some(c) => cursor = Some(c),
                        None => {
                            done = true;
                            break;
                        }
                    }
                }
                assert!(done, "listing {ns} did not finish");
            }
            // Every entry of the store belongs to a namespace walked above.
            let total = app.cache.stats().await.unwrap().keys;
            assert_eq!(
                total as usize,
                out.len(),
                "the store holds keys outside every opened namespace: {:?}",
                out.keys()
            );
        }
    }
    out
}

/// Describes how the store changed since `before`, or `None`.
pub async fn store_change(app: &TestApp, before: &Snap) -> Option<String> {
    let after = snapshot(app).await;
    if &after == before {
        return None;
    }
    let gone: Vec<_> = before.keys().filter(|k| !after.contains_key(*k)).collect();
    let new: Vec<_> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    let changed: Vec<_> = before
        .iter()
        .filter(|(k, v)| after.get(*k).is_some_and(|w| w != *v))
        .map(|(k, _)| k)
        .collect();
    Some(format!(
        "the store changed: gone {gone:?}, new {new:?}, changed {changed:?}"
    ))
}

/// Panics with what changed if the store is not exactly `before`.
pub async fn assert_unchanged(app: &TestApp, before: &Snap, ctx: &str) {
    if let Some(change) = store_change(app, before).await {
        panic!("{ctx}: {change}");
    }
}
