//! Every Lua script the Redis backend runs: one `.lua` file each under `lua/`, loaded with
//! `include_str!`, so a script is read, diffed and reviewed as Lua.
//!
//! Each script touches the keys it is given only (on a cluster they share one hash tag,
//! so no script spans two slots), reads time from the server (`TIME`) where it needs
//! it, so every instance agrees, and is run through redis-rs `Script` (EVALSHA, and the
//! script itself on `NOSCRIPT` after a restart or `SCRIPT FLUSH`).
//!
//! **Guarantee**: each script has a test below that runs it on a real `redis-server`
//! started by the testkit.

use std::sync::LazyLock;

use redis::Script;

macro_rules! scripts {
    ($($(#[$doc:meta])* $name:ident = $file:literal;)*) => {
        $(
            $(#[$doc])*
            pub(crate) static $name: LazyLock<Script> =
                LazyLock::new(|| Script::new(include_str!(concat!("lua/", $file))));
        )*
        /// Every script, by file name.
        #[cfg(test)]
        static ALL: &[(&str, &LazyLock<Script>)] = &[$(($file, &$name)),*];
    };
}

scripts! {
    /// Compare-and-delete: `KEYS[1]`, expected value; 1 if deleted.
    DEL_IF_EQ = "del_if_eq.lua";
    /// Lock and fence in one step: lock, fence keys; token, ttl ms; the fence or nil.
    LOCK_ACQUIRE = "lock_acquire.lua";
    /// Extends a lock for its holder: lock key; token, ttl ms; 1 if extended.
    LOCK_EXTEND = "lock_extend.lua";
    /// One GCRA step: state key; limit, period ms, cost.
    GCRA = "gcra.lua";
    /// One sliding-window step: state key; limit, period ms, cost.
    SLIDING_WINDOW = "sliding_window.lua";
    /// Presence heartbeat: set key; member, ttl ms.
    PRESENCE_BEAT = "presence_beat.lua";
    /// Presence leave: set key; member; 1 if it was alive.
    PRESENCE_LEAVE = "presence_leave.lua";
    /// Presence list: set key; flat member, ms-left pairs, soonest first.
    PRESENCE_LIST = "presence_list.lua";
    /// Queue claim: stream, dead-letter stream; consumer, count, idle ms, max deliveries.
    QUEUE_CLAIM = "queue_claim.lua";
    /// Queue ack: stream; ids; how many were pending.
    QUEUE_ACK = "queue_ack.lua";
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use redis::aio::MultiplexedConnection;
    use sharecache_testkit::RedisServer;

    use super::*;

    async fn redis() -> (RedisServer, MultiplexedConnection) {
        let server = RedisServer::start();
        let conn = redis::Client::open(server.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        (server, conn)
    }

    async fn cmd<T: redis::FromRedisValue>(c: &mut MultiplexedConnection, args: &[&str]) -> T {
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query_async(c).await.unwrap()
    }

    #[tokio::test]
    async fn every_script_loads() {
        let (_s, mut c) = redis().await;
        for (file, script) in ALL {
            let sha: String = redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(include_lua(file))
                .query_async(&mut c)
                .await
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(sha, script.get_hash(), "{file}");
        }
    }

    /// The text of a script by file name (for `SCRIPT LOAD`).
    fn include_lua(file: &str) -> String {
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("src/store/redis/lua")
                .join(file),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn del_if_eq_deletes_only_the_expected_value() {
        let (_s, mut c) = redis().await;
        cmd::<()>(&mut c, &["SET", "k", "v"]).await;
        let n: i64 = DEL_IF_EQ
            .key("k")
            .arg("other")
            .invoke_async(&mut c)
            .await
            .unwrap();
        assert_eq!(n, 0);
        assert_eq!(
            cmd::<Option<String>>(&mut c, &["GET", "k"])
                .await
                .as_deref(),
            Some("v")
        );
        let n: i64 = DEL_IF_EQ
            .key("k")
            .arg("v")
            .invoke_async(&mut c)
            .await
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(cmd::<Option<String>>(&mut c, &["GET", "k"]).await, None);
    }

    #[tokio::test]
    async fn lock_acquire_draws_increasing_fences() {
        let (_s, mut c) = redis().await;
        let take = |tok: &'static str| {
            let mut inv = LOCK_ACQUIRE.key("{l}lock");
            inv.key("{l}fence").arg(tok).arg(10_000);
            inv
        };
        let f: Option<u64> = take("a").invoke_async(&mut c).await.unwrap();
        assert_eq!(f, Some(1));
        let f: Option<u64> = take("b").invoke_async(&mut c).await.unwrap();
        assert_eq!(f, None, "held");
        assert!(cmd::<i64>(&mut c, &["PTTL", "{l}lock"]).await > 0);
        assert_eq!(cmd::<i64>(&mut c, &["PTTL", "{l}fence"]).await, -1);
        cmd::<()>(&mut c, &["DEL", "{l}lock"]).await;
        let f: Option<u64> = take("b").invoke_async(&mut c).await.unwrap();
        assert_eq!(f, Some(2));
    }

    #[tokio::test]
    async fn lock_extend_only_for_the_holder() {
        let (_s, mut c) = redis().await;
        cmd::<()>(&mut c, &["SET", "lock", "tok", "PX", "1000"]).await;
        let n: i64 = LOCK_EXTEND
            .key("lock")
            .arg("other")
            .arg(60_000)
            .invoke_async(&mut c)
            .await
            .unwrap();
        assert_eq!(n, 0);
        assert!(cmd::<i64>(&mut c, &["PTTL", "lock"]).await <= 1000);
        let n: i64 = LOCK_EXTEND
            .key("lock")
            .arg("tok")
            .arg(60_000)
            .invoke_async(&mut c)
            .await
            .unwrap();
        assert_eq!(n, 1);
        assert!(cmd::<i64>(&mut c, &["PTTL", "lock"]).await > 1000);
        let n: i64 = LOCK_EXTEND
            .key("gone")
            .arg("tok")
            .arg(60_000)
            .invoke_async(&mut c)
            .await
            .unwrap();
        assert_eq!(n, 0);
    }

    type Step = (u64, u64, u64, u64);

    #[tokio::test]
    async fn gcra_allows_a_burst_then_refuses() {
        let (_s, mut c) = redis().await;
        let step = |cost: u64| {
            let mut inv = GCRA.key("rl");
            inv.arg(2).arg(60_000).arg(cost);
            inv
        };
        let (a, rem, retry, _): Step = step(1).invoke_async(&mut c).await.unwrap();
        assert_eq!((a, rem, retry), (1, 1, 0));
        let (a, rem, _, _): Step = step(1).invoke_async(&mut c).await.unwrap();
        assert_eq!((a, rem), (1, 0));
        let (a, rem, retry, reset): Step = step(1).invoke_async(&mut c).await.unwrap();
        assert_eq!((a, rem), (0, 0));
        assert!(retry > 0 && retry <= 30_000, "retry {retry}");
        assert!(reset > 30_000 && reset <= 60_000, "reset {reset}");
        // The state expires when the bucket is full again.
        let pttl = cmd::<i64>(&mut c, &["PTTL", "rl"]).await;
        assert!(pttl > 30_000 && pttl <= 60_000, "pttl {pttl}");
        // Cost 0 peeks without spending.
        let tat: String = cmd(&mut c, &["GET", "rl"]).await;
        let (a, rem, _, _): Step = step(0).invoke_async(&mut c).await.unwrap();
        assert_eq!((a, rem), (1, 0), "a peek is allowed and spends nothing");
        assert_eq!(cmd::<String>(&mut c, &["GET", "rl"]).await, tat);
    }

    #[tokio::test]
    async fn sliding_window_counts_in_its_window() {
        let (_s, mut c) = redis().await;
        let step = || {
            let mut inv = SLIDING_WINDOW.key("sw");
            inv.arg(2).arg(60_000).arg(1);
            inv
        };
        let (a, rem, _, _): Step = step().invoke_async(&mut c).await.unwrap();
        assert_eq!((a, rem), (1, 1));
        let (a, _, _, _): Step = step().invoke_async(&mut c).await.unwrap();
        assert_eq!(a, 1);
        let (a, rem, retry, reset): Step = step().invoke_async(&mut c).await.unwrap();
        assert_eq!((a, rem), (0, 0));
        assert!(retry > 0 && retry == reset);
        let state: String = cmd(&mut c, &["GET", "sw"]).await;
        let parts: Vec<u64> = state.split(',').map(|p| p.parse().unwrap()).collect();
        assert_eq!(parts.len(), 3, "{state}");
        assert_eq!(parts[2], 2, "current count: {state}");
        let pttl = cmd::<i64>(&mut c, &["PTTL", "sw"]).await;
        assert!(pttl > 60_000 && pttl <= 120_000, "kept two windows: {pttl}");
    }

    async fn beat(c: &mut MultiplexedConnection, member: &str, ttl_ms: u64) {
        let _: i64 = PRESENCE_BEAT
            .key("p")
            .arg(member)
            .arg(ttl_ms)
            .invoke_async(c)
            .await
            .unwrap();
    }

    async fn list(c: &mut MultiplexedConnection) -> Vec<(String, u64)> {
        let flat: Vec<String> = PRESENCE_LIST.key("p").invoke_async(c).await.unwrap();
        flat.chunks(2)
            .map(|p| (p[0].clone(), p[1].parse::<f64>().unwrap() as u64))
            .collect()
    }

    #[tokio::test]
    async fn presence_beat_keeps_the_set_as_long_as_its_last_member() {
        let (_s, mut c) = redis().await;
        beat(&mut c, "a", 60_000).await;
        beat(&mut c, "b", 5_000).await;
        let pttl = cmd::<i64>(&mut c, &["PTTL", "p"]).await;
        assert!(pttl > 5_000 && pttl <= 60_000, "pttl {pttl}");
        // A beat prunes members whose expiry passed.
        beat(&mut c, "gone", 1).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        beat(&mut c, "a", 60_000).await;
        assert_eq!(
            cmd::<Option<f64>>(&mut c, &["ZSCORE", "p", "gone"]).await,
            None
        );
    }

    #[tokio::test]
    async fn presence_list_returns_live_members_soonest_first() {
        let (_s, mut c) = redis().await;
        beat(&mut c, "a", 60_000).await;
        beat(&mut c, "b", 5_000).await;
        beat(&mut c, "gone", 1).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        let l = list(&mut c).await;
        assert_eq!(
            l.iter().map(|(m, _)| m.as_str()).collect::<Vec<_>>(),
            ["b", "a"]
        );
        assert!(l[0].1 <= 5_000 && l[0].1 > 4_000, "{l:?}");
        assert!(l[1].1 <= 60_000 && l[1].1 > 59_000, "{l:?}");
    }

    #[tokio::test]
    async fn presence_leave_says_whether_the_member_was_alive() {
        let (_s, mut c) = redis().await;
        beat(&mut c, "a", 60_000).await;
        beat(&mut c, "gone", 1).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        let leave = |m: &'static str| {
            let mut inv = PRESENCE_LEAVE.key("p");
            inv.arg(m);
            inv
        };
        assert_eq!(leave("a").invoke_async::<i64>(&mut c).await.unwrap(), 1);
        assert_eq!(leave("a").invoke_async::<i64>(&mut c).await.unwrap(), 0);
        assert_eq!(leave("gone").invoke_async::<i64>(&mut c).await.unwrap(), 0);
        assert!(list(&mut c).await.is_empty());
    }

    type Claimed = Vec<(String, String, u64)>;

    fn claim(consumer: &str, idle_ms: u64) -> redis::ScriptInvocation<'static> {
        let mut inv = QUEUE_CLAIM.key("{q}s");
        inv.key("{q}dlq").arg(consumer).arg(10).arg(idle_ms).arg(2);
        inv
    }

    #[tokio::test]
    async fn queue_claim_redelivers_then_dead_letters() {
        let (_s, mut c) = redis().await;
        let none: Claimed = claim("c1", 1).invoke_async(&mut c).await.unwrap();
        assert!(none.is_empty(), "no stream, nothing to claim");
        let id: String = cmd(&mut c, &["XADD", "{q}s", "*", "data", "m1"]).await;
        let first: Claimed = claim("c1", 1).invoke_async(&mut c).await.unwrap();
        assert_eq!(first, vec![(id.clone(), "m1".to_owned(), 1)]);
        tokio::time::sleep(Duration::from_millis(5)).await;
        let again: Claimed = claim("c2", 1).invoke_async(&mut c).await.unwrap();
        assert_eq!(again, vec![(id.clone(), "m1".to_owned(), 2)], "redelivered");
        tokio::time::sleep(Duration::from_millis(5)).await;
        let dead: Claimed = claim("c1", 1).invoke_async(&mut c).await.unwrap();
        assert!(dead.is_empty(), "max deliveries reached: dead-lettered");
        assert_eq!(cmd::<u64>(&mut c, &["XLEN", "{q}s"]).await, 0);
        let dlq: Vec<(String, Vec<(String, String)>)> =
            cmd(&mut c, &["XRANGE", "{q}dlq", "-", "+"]).await;
        assert_eq!(dlq.len(), 1);
        let fields = &dlq[0].1;
        assert!(
            fields.contains(&("data".to_owned(), "m1".to_owned())),
            "{fields:?}"
        );
        assert!(fields.contains(&("id".to_owned(), id)), "{fields:?}");
        assert!(
            fields.contains(&("deliveries".to_owned(), "2".to_owned())),
            "{fields:?}"
        );
    }

    #[tokio::test]
    async fn queue_ack_removes_pending_messages() {
        let (_s, mut c) = redis().await;
        let id: String = cmd(&mut c, &["XADD", "{q}s", "*", "data", "m1"]).await;
        let _: Claimed = claim("c1", 60_000).invoke_async(&mut c).await.unwrap();
        let ack = || {
            let mut inv = QUEUE_ACK.key("{q}s");
            inv.arg(&id);
            inv
        };
        assert_eq!(ack().invoke_async::<u64>(&mut c).await.unwrap(), 1);
        assert_eq!(ack().invoke_async::<u64>(&mut c).await.unwrap(), 0);
        assert_eq!(cmd::<u64>(&mut c, &["XLEN", "{q}s"]).await, 0);
        let gone: Claimed = claim("c1", 0).invoke_async(&mut c).await.unwrap();
        assert!(gone.is_empty());
    }
}
